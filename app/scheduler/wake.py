"""Waiting between passes, and being woken early.

A pass sleeps until work is due; it wakes sooner when told (the firing loop tells the
delivery loop it wrote runs; a stop request wakes every waiter) and, on PostgreSQL, when
the web process sends NOTIFY for a job due before the next pass (app.jobs sends it; the
firing loop listens here). A waiter sleeps in one call until then: an idle scheduler
process wakes only for its passes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from datetime import datetime
from select import select as select_readable
from typing import Any

import psycopg
from sqlalchemy import Engine

from app.database import earliest

log = logging.getLogger(__name__)
CHANNEL = "scheduler_due"
RETRY_PAUSE = 0.25  # seconds between tries to listen again, after the connection was lost


def seconds_until_soonest(
    engine: Engine, column: Any, now: datetime, where: Any = None
) -> float | None:
    """Seconds until the earliest instant in `column` (0 if past), of the rows `where` picks;
    None when there is none."""
    query = earliest(column)
    with engine.connect() as conn:
        soonest = conn.scalar(query if where is None else query.where(where))
    return None if soonest is None else max(0.0, (soonest - now).total_seconds())


class Stopping:
    """A stop request: an event that also wakes the waiters made with it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._waiters: weakref.WeakSet[Waiter] = weakref.WeakSet()

    def set(self) -> None:
        self._event.set()
        for waiter in list(self._waiters):
            waiter.wake()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def add(self, waiter: Waiter) -> None:
        self._waiters.add(waiter)


class Waiter:
    """Sleeps until a deadline, until woken, or until stopped."""

    def __init__(self, stopping: Stopping) -> None:
        self.stopping = stopping
        self._woken = threading.Event()
        stopping.add(self)

    def wake(self) -> None:
        self._woken.set()

    def wait(self, seconds: float) -> None:
        if not self.stopping.is_set():
            self._woken.wait(max(0.0, seconds))
        self._woken.clear()


class NotifyWaiter(Waiter):
    """Also wakes on a NOTIFY on CHANNEL (PostgreSQL): it waits on the listening socket and
    on a pipe that wake() writes to, in one select."""

    def __init__(self, engine: Engine, stopping: Stopping) -> None:
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        super().__init__(stopping)
        url = engine.url.set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None

    def wake(self) -> None:
        super().wake()
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending already
            os.write(self._wake_write, b"!")

    def _listen(self) -> psycopg.Connection[tuple[object, ...]]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            self.conn.execute(f"LISTEN {CHANNEL}")
        return self.conn

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and not self._woken.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if self.conn is None or self.conn.closed:
                    self._listen()
                    # A NOTIFY sent before LISTEN took effect is lost: let the caller look
                    # for work once more, now that no later one can be missed.
                    break
                if self._notified(self.conn, remaining):
                    break
            except psycopg.Error:
                log.warning("LISTEN connection lost; retrying", extra={"action": "listen"})
                self.conn = None
                self.stopping.wait(min(RETRY_PAUSE, remaining))
        self._woken.clear()
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 64):
                pass

    def _notified(self, conn: psycopg.Connection[tuple[object, ...]], timeout: float) -> bool:
        """Whether a NOTIFY came within `timeout` s (False also when woken: the pipe)."""
        ready, _, _ = select_readable([conn.fileno(), self._wake_read], [], [], timeout)
        if conn.fileno() not in ready:
            return False
        # Readable: a NOTIFY, another message, or the server gone (which raises here).
        return any(True for _ in conn.notifies(timeout=0, stop_after=1))
