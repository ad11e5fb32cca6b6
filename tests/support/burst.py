"""Many one-shot jobs written straight into the database, for bursts and load tests.

The API would take longer than the burst itself; these rows are what it would write.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, text

from app.ids import new_id
from app.jobstate import window_offset
from app.models import Job

QUEUE_TARGET = {"type": "queue", "name": "default"}


def one_shot_rows(
    count: int,
    due: datetime,
    *,
    target: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    spread: float = 0.0,
    window: int | None = None,
) -> list[dict[str, Any]]:
    """`count` jobs due at `due`, or spread evenly over `spread` seconds from it; with a
    flexible `window` (seconds), each planned at its point in it, as the API plans it."""
    now = datetime.now(UTC)
    target = target or QUEUE_TARGET
    rows = []
    for i in range(count):
        at = due + timedelta(seconds=spread * i / count) if spread else due
        job_id = new_id()
        rows.append(
            {
                "id": job_id,
                "payload": f"job {i}",
                "recurring": "none",
                "first_at": at,
                "timezone": "UTC",
                "target": target,
                "target_type": target["type"],
                "retry": retry,
                "misfire": "coalesce",
                "status": "active",
                "window": window,
                "next_run_at": at + window_offset(job_id, window),
                "run_count": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def insert_one_shot_jobs(engine: Engine, count: int, due: datetime, **options: Any) -> None:
    rows = one_shot_rows(count, due, **options)
    with engine.begin() as conn:
        for start in range(0, count, 5000):
            conn.execute(insert(Job.__table__), rows[start : start + 5000])


def assert_each_job_fired_once(engine: Engine, jobs: int) -> None:
    with engine.connect() as conn:
        wrong = conn.execute(
            text(
                "SELECT j.payload, count(r.id) FROM jobs j LEFT JOIN runs r ON r.job_id = j.id "
                "GROUP BY j.id, j.payload HAVING count(r.id) != 1 LIMIT 10"
            )
        ).all()
        assert wrong == [], f"jobs without exactly one run: {wrong}"
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == jobs
        unfinished = conn.execute(
            text("SELECT count(*) FROM jobs WHERE status != 'completed' OR next_run_at IS NOT NULL")
        ).scalar_one()
        assert unfinished == 0


def assert_all_delivered_to_the_queue(engine: Engine, jobs: int) -> None:
    """One message per run, and every run says delivered."""
    with engine.connect() as conn:
        undelivered = conn.execute(
            text("SELECT count(*) FROM runs WHERE status != 'delivered'")
        ).scalar_one()
        assert undelivered == 0
        messages, distinct = conn.execute(
            text("SELECT count(*), count(DISTINCT run_id) FROM queue_messages")
        ).one()
        assert (messages, distinct) == (jobs, jobs)
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM runs r LEFT JOIN queue_messages m ON m.run_id = r.id "
                "WHERE m.id IS NULL OR m.job_id != r.job_id"
            )
        ).scalar_one()
        assert orphans == 0
