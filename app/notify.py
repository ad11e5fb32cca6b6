"""PostgreSQL LISTEN/NOTIFY: wake the dispatchers when a job becomes due sooner than
their next pass. The web process sends NOTIFY (app.jobs); the dispatcher waits here."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy import Engine

from app.dispatcher import Waiter

log = logging.getLogger(__name__)
CHANNEL = "scheduler_due"
SLICE = 0.25  # seconds: how soon a stop request is noticed while waiting


class NotifyWaiter(Waiter):
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
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                if self.conn is None or self.conn.closed:
                    self._listen()
                    # A NOTIFY sent before LISTEN took effect is lost: let the caller look
                    # for work once more, now that no later one can be missed.
                    return
                for _ in self.conn.notifies(timeout=min(SLICE, remaining), stop_after=1):
                    return
            except psycopg.Error:
                log.warning("LISTEN connection lost; retrying", extra={"action": "listen"})
                self.conn = None
                self.stopping.wait(min(SLICE, remaining))
