"""The database handle and the few things SQLite needs to share one file safely.

SQLite runs in WAL mode with a busy timeout so the web and scheduler processes can share
the file. pysqlite's own transaction handling is switched off and we emit BEGIN ourselves:
a transaction that will write starts with BEGIN IMMEDIATE (it waits for the write lock up
front instead of failing to upgrade a read lock half-way through), after its turn on the
writers' lock file (app/writers.py).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeAlias

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    DateTime,
    Dialect,
    Engine,
    Executable,
    Result,
    Select,
    String,
    cast,
    event,
    func,
    select,
    type_coerce,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from app import writers

IMMEDIATE = "sqlite_immediate"
Record: TypeAlias = Any  # a named tuple of a query's columns, as records() returns them


class Base(DeclarativeBase):
    pass


# Objects keep their values after commit: an answer is built from what was just written,
# without reading it back. Store functions that lock a row re-read it (populate_existing).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: aware UTC in Python, timestamptz on PostgreSQL, UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: instants must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name == "sqlite":  # one parse into an aware instant: 0.4 µs, not 2 µs
            return _instant_from_sqlite
        return super().result_processor(dialect, coltype)


def _instant_from_sqlite(value: str | None) -> datetime | None:
    """An instant as SQLite holds it: UTC text, `YYYY-MM-DD HH:MM:SS[.ffffff]`."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text with an offset of its own
        return datetime.fromisoformat(value).astimezone(UTC)


class IdText(TypeDecorator[str]):
    """An id read as its text, as str(UUID) writes it (SQLite stores 32 hex digits)."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or len(value) != 32:  # PostgreSQL's text of a uuid has its dashes
            return value
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def id_text(column: ColumnElement[Any]) -> ColumnElement[str]:
    """A uuid column read as its text, under its own name: for ids the dispatcher only
    passes on (into a message, a row it writes), which it would otherwise parse into a
    UUID and format again (about 3 µs each)."""
    return type_coerce(cast(column, String), IdText()).label(column.key)


def earliest(column: Any) -> Select[Any]:
    """The least value of an instant column. IS NOT NULL changes no answer (min skips
    NULL) but lets a partial index of the non-NULL rows serve it (SQLite would scan)."""
    return select(func.min(column)).where(column.is_not(None))


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        connect_args = {"isolation_level": None, "timeout": 30, "check_same_thread": False}
        return {"connect_args": connect_args}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}


def configure_engine(engine: Engine) -> None:
    """Install the SQLite pragmas and BEGIN handling; nothing to do for PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(IMMEDIATE, False):
            writers.acquire(conn.connection.info)
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    path = engine.url.database
    if path and path != ":memory:" and not path.startswith("file:"):
        writers.take_turns(engine, path)


def begin_write() -> None:
    """Start the session's transaction as a writer (BEGIN IMMEDIATE on SQLite).

    Call it first thing in a store function that writes. A read transaction already open
    (a request that looked something up first, such as whether API keys exist) is ended on
    SQLite, which cannot upgrade it safely. PostgreSQL writes on in it: at READ COMMITTED
    each statement sees fresh rows, and ending it would cost a commit, a second checkout
    and its ping, about a third of a single create's round trips.
    """
    session = db.session()
    if session.in_transaction():
        if is_postgresql(db.engine):
            return
        session.commit()
    session.connection(execution_options={IMMEDIATE: True})


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a write transaction, committed on success."""
    with engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        yield conn


def records(conn: Connection, statement: Executable) -> list[Record]:
    """Every row of `statement` as a plain named tuple. The dispatcher reads a dozen columns
    of each row it claims, by name: a Row looks the name up on each read (about 0.7 µs),
    a named tuple's field costs a few tens of nanoseconds."""
    result = conn.execute(statement)
    return list(map(_record_type(tuple(result.keys()))._make, result.all()))


@lru_cache(maxsize=64)
def _record_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Record", names)


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (claims check it: another process may have won)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
