"""Waiting between passes, and being woken early.

A pass sleeps until work is due; it wakes sooner when told (the firing loop tells the
delivery loop it wrote runs) and, on PostgreSQL, when the web process sends NOTIFY for a
job due before the next pass (app.jobs sends it; the firing loop listens here).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine, func, select

log = logging.getLogger(__name__)
CHANNEL = "scheduler_due"
SLICE = 0.25  # seconds: how soon a stop request is noticed while listening


def seconds_until_soonest(
    engine: Engine, column: Any, now: datetime, where: Any = None
) -> float | None:
    """Seconds until the earliest instant in `column` (0 if past), of the rows `where` picks;
    None when there is none."""
    query = select(func.min(column))
    with engine.connect() as conn:
        soonest = conn.scalar(query if where is None else query.where(where))
    return None if soonest is None else max(0.0, (soonest - now).total_seconds())


class Waiter:
    """Sleeps until a deadline, until woken, or until stopped."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self._woken = threading.Event()

    def wake(self) -> None:
        self._woken.set()

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._woken.wait(min(SLICE, remaining)):
                break
        self._woken.clear()


class NotifyWaiter(Waiter):
    """Also wakes on a NOTIFY on CHANNEL (PostgreSQL)."""

    def __init__(self, engine: Engine, stopping: threading.Event) -> None:
        super().__init__(stopping)
        url = engine.url.set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None

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
                if any(
                    True for _ in self.conn.notifies(timeout=min(SLICE, remaining), stop_after=1)
                ):
                    break
            except psycopg.Error:
                log.warning("LISTEN connection lost; retrying", extra={"action": "listen"})
                self.conn = None
                self.stopping.wait(min(SLICE, remaining))
        self._woken.clear()
