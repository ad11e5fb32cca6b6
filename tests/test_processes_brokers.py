"""kill -9 of the scheduler process while it delivers a burst to a broker target (a Redis
stream on loopback): nothing is lost, and only runs that were in flight are sent again,
each with its own run id (which is what consumers de-duplicate on)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from tests.support.brokers import unique
from tests.support.burst import assert_each_job_fired_once, insert_one_shot_jobs
from tests.support.processes import process_env, running, start_scheduler, wait_until

pytestmark = pytest.mark.slow
JOBS = 10_000


def test_kill_9_mid_burst_repeats_only_runs_in_flight_with_their_run_id(
    database_url: str, tmp_path: Path, brokers: dict[str, str]
) -> None:
    stream = unique("burst")
    client = redis.Redis.from_url(brokers["cache"], decode_responses=True)
    engine = create_engine(database_url)
    target = {"type": "redis", "connection": "cache", "stream": stream}
    insert_one_shot_jobs(engine, JOBS, datetime.now(UTC) + timedelta(seconds=2), target=target)
    env = process_env(
        database_url, CONNECTIONS=json.dumps({"cache": brokers["cache"]}),
        DELIVERY_LEASE="5", DELIVERY_LEASE_MARGIN="1",
    )  # fmt: skip
    try:
        first = start_scheduler(env, tmp_path / "first.log")
        wait_until(lambda: client.xlen(stream) > 500, 60, first, step=0.01)
        first.kill()
        sent_before = client.xlen(stream)
        with engine.connect() as conn:
            in_flight = conn.execute(
                text("SELECT count(*) FROM runs WHERE status = 'delivering'")
            ).scalar_one()
        assert sent_before < JOBS, "the burst was delivered before the kill: make it larger"

        with running(start_scheduler(env, tmp_path / "second.log")) as second:

            def all_delivered() -> bool:
                with engine.connect() as conn:
                    return bool(
                        conn.execute(
                            text("SELECT count(*) FROM runs WHERE status = 'delivered'")
                        ).scalar_one()
                        == JOBS
                    )

            wait_until(all_delivered, 120, second)
            assert second.terminate() == 0

        assert_each_job_fired_once(engine, JOBS)
        with engine.connect() as conn:
            runs = {str(r): str(j) for r, j in conn.execute(text("SELECT id, job_id FROM runs"))}
        entries = [fields for _, fields in client.xrange(stream)]
        sent = Counter(fields["runId"] for fields in entries)
        # Ids as stored (SQLite: hex without dashes) and as sent (with dashes) compared alike.
        stored = {run.replace("-", ""): job.replace("-", "") for run, job in runs.items()}
        assert {run.replace("-", "") for run in sent} == set(stored)  # every run, no other
        for fields in entries:  # each message carries its own run's job
            assert stored[fields["runId"].replace("-", "")] == fields["jobId"].replace("-", "")
        repeated = sum(count - 1 for count in sent.values())
        assert repeated <= in_flight, (repeated, in_flight)
        print(f"sent before the kill {sent_before}, in flight {in_flight}, repeated {repeated}")
    finally:
        client.delete(stream)
        client.close()
        engine.dispose()
