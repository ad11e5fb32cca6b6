"""The raw-SQL loop: the limit the dispatcher's fires are measured against.

The same unit of work per fire as the dispatcher's, with the database driver alone (no
SQLAlchemy, no planning, no counters or audit): in one transaction per batch, claim up to
1,000 due jobs, insert their runs and their built-in queue messages, and advance the jobs
(one-shots: done). Values are written as the service writes them (SQLite: UUIDs as 32 hex
digits, instants as naive UTC text; PostgreSQL: uuid and timestamptz), into the service's
own schema and indexes, with its own (time-ordered) run ids. Several copies may run at
once (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's single writer takes turns).

    python scripts/bench/rawloop.py DATABASE_URL T DEADLINE   (epoch seconds)

From T on, it loops until a claim finds nothing due, or the deadline passes.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _service_ids() -> Callable[[], uuid.UUID]:
    """The service's own run ids (time-ordered), loaded from app/ids.py alone: importing
    the app package would load Flask and SQLAlchemy, too slow for a loop started just
    before T."""
    spec = importlib.util.spec_from_file_location("ids", Path(__file__).parents[2] / "app/ids.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.new_id  # type: ignore[no-any-return]


new_id = _service_ids()
BATCH = 1000
IDLE = 0.005  # s between looks while nothing is due yet

CLAIM = (
    "SELECT id, payload, target, next_run_at FROM jobs WHERE next_run_at <= {now} "
    "ORDER BY next_run_at LIMIT {batch}"
)
INSERT_RUN = (
    "INSERT INTO runs (id, job_id, scheduled_for, due_at, fired_at, status, attempts, "
    "delivered_at, dead_letter) VALUES ({p}, {p}, {p}, {p}, {p}, 'delivered', 1, {p}, {false}) "
    "ON CONFLICT DO NOTHING"
)
INSERT_MESSAGE = (
    "INSERT INTO queue_messages (id, queue, payload, job_id, run_id, scheduled_for, "
    "created_at, visible_at, receive_count) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, 0)"
)
ADVANCE = (
    "UPDATE jobs SET next_run_at = NULL, status = 'completed', run_count = run_count + 1, "
    "occurrence_count = occurrence_count + 1, last_run_at = {p}, last_occurrence_at = {p}, "
    "due_since = NULL, updated_at = {p} WHERE id = {p}"
)


def main(url: str, due: float, until: float) -> int:
    if url.startswith("sqlite"):
        return _loop(_Sqlite(url.split("///", 1)[1]), due, until)
    return _loop(_Postgres(url), due, until)


class _Sqlite:
    param, false = "?", "0"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            self.conn.execute(f"PRAGMA {pragma}")

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def claim(self, now: datetime) -> list[Any]:
        sql = CLAIM.format(now="?", batch=BATCH)
        return self.conn.execute(sql, (self.instant(now),)).fetchall()

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    def key(self, value: uuid.UUID) -> Any:
        return value.hex

    def instant(self, value: datetime) -> Any:
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def text(self, stored: Any) -> str:
        return str(stored)


class _Postgres(_Sqlite):
    param, false = "%s", "false"

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))

    def begin(self) -> None:
        pass  # psycopg opens the transaction with the first statement

    def commit(self) -> None:
        self.conn.commit()

    def claim(self, now: datetime) -> list[Any]:
        sql = CLAIM.format(now="%s", batch=BATCH) + " FOR UPDATE SKIP LOCKED"
        return self.conn.execute(sql, (now,)).fetchall()

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(sql, rows)

    def key(self, value: uuid.UUID) -> Any:
        return value

    def instant(self, value: datetime) -> Any:
        return value

    def text(self, stored: Any) -> str:
        return stored if isinstance(stored, str) else json.dumps(stored)


def _loop(db: _Sqlite, due: float, until: float) -> int:
    p = db.param
    insert_run = INSERT_RUN.format(p=p, false=db.false)
    insert_message = INSERT_MESSAGE.format(p=p)
    advance = ADVANCE.format(p=p)
    while time.time() < until:
        now = datetime.now(UTC)
        db.begin()
        rows = db.claim(now)
        if not rows:
            db.commit()
            if now.timestamp() >= due:
                return 0  # the burst is all fired (or held by another copy)
            time.sleep(IDLE)
            continue
        at = db.instant(now)
        runs, messages, jobs = [], [], []
        for job_id, payload, target, scheduled in rows:
            run_id = db.key(new_id())
            queue = json.loads(db.text(target)).get("name", "default")
            runs.append((run_id, job_id, scheduled, scheduled, at, at))
            messages.append((run_id, queue, payload, job_id, run_id, scheduled, at, at))
            jobs.append((at, scheduled, at, job_id))
        db.many(insert_run, runs)
        db.many(insert_message, messages)
        db.many(advance, jobs)
        db.commit()
    return 1  # the deadline passed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
