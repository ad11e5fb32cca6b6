"""SQLite's writers take turns on a lock file, so none of them sleeps for the write lock.

SQLite has one writer at a time. A BEGIN IMMEDIATE that finds the write lock taken is
retried by SQLite's busy handler, which sleeps between tries (1 ms, then longer, up to
100 ms a try): under many writers (a web worker's threads, two web workers and the
scheduler process) a writer sleeps on while the lock stands free, and those sleeps were
most of a single create's p99 (445 ms at 673 creates/s). Here each connection holds an
open file on `<database>-writers.lock` and takes an exclusive flock on it before its
BEGIN IMMEDIATE, held until its COMMIT or ROLLBACK has run: a writer then waits in the
kernel and is woken the moment the one before it is done, in whichever process it runs.
SQLite's busy handler is still there for a writer that does not take the lock (a
migration, a deferred transaction that starts to write).

The kernel drops a dead process's flock, so kill -9 leaves no lock behind.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from sqlalchemy import Engine, event

LOCK_FD = "writers_lock_fd"  # a pooled connection's open lock file (its record's info)
HELD = "writers_lock_held"


def take_turns(engine: Engine, database_path: str) -> None:
    """Make the IMMEDIATE transactions of `engine` take the lock file of `database_path`."""
    path = database_path + "-writers.lock"
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _open(_dbapi_connection: Any, record: Any) -> None:
        record.info[LOCK_FD] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @event.listens_for(engine, "close")
    def _close(_dbapi_connection: Any, record: Any) -> None:
        fd = record.info.pop(LOCK_FD, None)
        record.info.pop(HELD, None)
        if fd is not None:
            os.close(fd)  # releases the lock too, if it was held

    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(connection: Any) -> None:
        try:
            commit(connection)
        finally:
            _release_of(connection)

    def do_rollback(connection: Any) -> None:
        try:
            rollback(connection)
        finally:
            _release_of(connection)

    # The dialect's own commit and rollback, then the lock: another writer's BEGIN
    # IMMEDIATE then finds SQLite's write lock free (released before the COMMIT, it would
    # find it taken, and sleep in the busy handler).
    dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]


def acquire(info: dict[str, Any]) -> None:
    """Wait for this connection's turn to write (before its BEGIN IMMEDIATE)."""
    fd = info.get(LOCK_FD)
    if fd is not None and not info.get(HELD):
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits without the GIL
        info[HELD] = True


def _release_of(connection: Any) -> None:
    """End this pooled connection's turn, if it has one (the first connect's rollback goes
    through a connection that belongs to no pool: it has none)."""
    try:
        info = connection.info
    except NotImplementedError:
        return
    if info.pop(HELD, False):
        fcntl.flock(info[LOCK_FD], fcntl.LOCK_UN)
