"""The service as a user runs it: gunicorn and the scheduler process, real signals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, insert, text

from app.models import Job
from tests.support.processes import (
    free_port,
    process_env,
    running,
    start_scheduler,
    start_web,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_job_due_now_reaches_a_consumer(database_url: str, tmp_path: Path) -> None:
    env = process_env(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        running(start_scheduler(env, tmp_path / "scheduler.log")) as scheduler,
        running(start_web(env, tmp_path / "web.log", port)),
    ):
        minute = int(datetime.now(UTC).timestamp() // 60)  # the current minute: already due
        created = requests.post(
            f"{base}/schedules", json={"payload": "cool stuff", "minute": minute}, timeout=5
        )
        assert created.status_code == 201
        answer = requests.post(
            f"{base}/queues/default/receive", json={"max": 10, "wait": 10}, timeout=15
        ).json()
        assert [m["payload"] for m in answer["messages"]] == ["cool stuff"]
        assert answer["messages"][0]["jobId"] == created.json()["jobId"]
        assert scheduler.terminate() == 0, scheduler.output()


def test_kill_9_in_a_burst_loses_and_repeats_nothing(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    due = datetime.now(UTC) + timedelta(seconds=2)
    jobs = 10_000
    now = datetime.now(UTC)
    rows = [
        {
            "id": uuid.UUID(int=i + 1),
            "payload": f"job {i}",
            "recurring": "none",
            "first_at": due,
            "timezone": "UTC",
            "target": {"type": "queue", "name": "default"},
            "target_type": "queue",
            "misfire": "coalesce",
            "status": "active",
            "next_run_at": due,
            "run_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(jobs)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Job.__table__), rows)
    env = process_env(database_url, DISPATCH_BATCH_SIZE="200")

    def fired() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM runs")).scalar_one())

    first = start_scheduler(env, tmp_path / "first.log")
    wait_until(lambda: fired() > 500, 60, first, step=0.01)
    first.kill()
    partial = fired()
    assert partial < jobs, "the burst finished before the kill: make it larger"

    with running(start_scheduler(env, tmp_path / "second.log")) as second:
        wait_until(lambda: fired() == jobs, 120, second)
        assert second.terminate() == 0

    with engine.connect() as conn:
        per_job = conn.execute(
            text(
                "SELECT count(*) FROM jobs j LEFT JOIN runs r ON r.job_id = j.id "
                "GROUP BY j.id HAVING count(r.id) != 1"
            )
        ).all()
        assert per_job == []
        undelivered = conn.execute(
            text("SELECT count(*) FROM runs WHERE status != 'delivered'")
        ).scalar_one()
        messages = conn.execute(text("SELECT count(DISTINCT run_id) FROM queue_messages"))
        assert undelivered == 0
        assert messages.scalar_one() == jobs
    engine.dispose()
