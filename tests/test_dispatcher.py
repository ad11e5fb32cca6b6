"""The dispatcher's steps, one at a time, with the clock moved by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import ManualClock
from app.database import db
from app.dispatcher import Dispatcher
from app.models import QueueMessage, Run
from app.scheduler import build_dispatcher
from tests.conftest import START


@pytest.fixture
def dispatcher(app: Flask) -> Dispatcher:
    with app.app_context():
        return build_dispatcher(app)


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"payload": "hello", "at": "2030-01-01T00:00:10Z"} | fields
    response = client.post("/schedules", json=body)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def runs_of(client: FlaskClient, job_id: str) -> list[dict[str, Any]]:
    return list(reversed(client.get(f"/schedules/{job_id}/runs").get_json()))


def count(app: Flask, model: type[Any]) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_one_shot_fires_once_at_its_time(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock, app: Flask
) -> None:
    job = create(client)
    assert dispatcher.fire_due() == 0
    clock.advance(10)
    assert dispatcher.fire_due() == 1
    assert dispatcher.fire_due() == 0
    (run,) = runs_of(client, job["jobId"])
    assert run["scheduledFor"] == "2030-01-01T00:00:10Z"
    assert run["status"] == "delivered" and run["lagMs"] == 0
    done = client.get(f"/schedules/{job['jobId']}").get_json()
    assert done["status"] == "completed" and done["nextRunAt"] is None and done["runCount"] == 1
    assert count(app, QueueMessage) == 1


def test_daily_advances_by_wall_clock_day(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client, recurring="daily", at="2030-03-30T01:30:00Z", timezone="Europe/Berlin")
    clock.set(START.replace(month=3, day=30, hour=1, minute=30))
    dispatcher.fire_due()
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    # 02:30 CET on the 30th; the 31st is the spring-forward day: 02:30 does not exist -> 03:00.
    assert after["nextRunAt"] == "2030-03-31T01:00:00Z"


def test_coalesce_fires_once_for_what_was_missed(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client, recurring="interval", interval=60)
    clock.advance(3600)
    dispatcher.fire_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["scheduledFor"] == "2030-01-01T00:59:10Z"
    assert client.get(f"/schedules/{job['jobId']}").get_json()["nextRunAt"] == (
        "2030-01-01T01:00:10Z"
    )


def test_all_policy_fires_every_missed_occurrence(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client, recurring="interval", interval=60, misfire="all")
    clock.advance(600)
    while dispatcher.fire_due():
        pass
    assert len(runs_of(client, job["jobId"])) == 10


def test_skip_policy_drops_what_is_too_late(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client, recurring="interval", interval=3600, misfire="skip")
    clock.advance(1800)
    dispatcher.fire_due()
    assert runs_of(client, job["jobId"]) == []
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    assert after["nextRunAt"] == "2030-01-01T01:00:10Z"


def test_max_runs_completes_the_job(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client, recurring="interval", interval=10, maxRuns=3)
    for _ in range(5):
        clock.advance(10)
        dispatcher.fire_due()
    assert len(runs_of(client, job["jobId"])) == 3
    assert client.get(f"/schedules/{job['jobId']}").get_json()["status"] == "completed"


def test_paused_job_does_not_fire(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client)
    client.post(f"/schedules/{job['jobId']}/pause")
    clock.advance(60)
    assert dispatcher.fire_due() == 0


def test_run_now_is_delivered_by_the_next_step(
    client: FlaskClient, dispatcher: Dispatcher, app: Flask
) -> None:
    job = create(client)
    client.post(f"/schedules/{job['jobId']}/run")
    assert dispatcher.deliver_due() == 1
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivered"
    assert count(app, QueueMessage) == 1


def test_a_batch_larger_than_one_claim(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock, app: Flask
) -> None:
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:05Z"} for i in range(1200)]
    assert client.post("/schedules:batch", json={"jobs": jobs[:1000]}).status_code == 201
    assert client.post("/schedules:batch", json={"jobs": jobs[1000:]}).status_code == 201
    clock.advance(5)
    fired = 0
    while claimed := dispatcher.fire_due():
        fired += claimed
    assert fired == 1200
    assert count(app, Run) == 1200 and count(app, QueueMessage) == 1200


def test_seconds_until_due(client: FlaskClient, dispatcher: Dispatcher) -> None:
    assert dispatcher.seconds_until_due() is None
    create(client)
    assert dispatcher.seconds_until_due() == pytest.approx(10)


def test_backoff_grows_with_jitter_and_honours_retry_after(dispatcher: Dispatcher) -> None:
    retry = {"backoff": 2.0, "maxBackoff": 60.0}
    delays = [dispatcher.backoff(retry, attempt, None) for attempt in range(1, 10)]
    for attempt, delay in enumerate(delays, start=1):
        step = min(60.0, 2.0 * 2 ** (attempt - 1))
        assert step / 2 <= delay <= step
    assert dispatcher.backoff(retry, 1, 30.0) == 30.0
    assert dispatcher.backoff(retry, 1, 3600.0) == 60.0  # capped at maxBackoff


def test_no_job_fires_twice_when_two_dispatchers_share_the_database(
    client: FlaskClient, app: Flask, clock: ManualClock
) -> None:
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:05Z"} for i in range(300)]
    client.post("/schedules:batch", json={"jobs": jobs})
    with app.app_context():
        first, second = build_dispatcher(app), build_dispatcher(app)
    clock.advance(timedelta(seconds=5).total_seconds())
    first.settings = replace(first.settings, batch_size=50)
    total = 0
    while step := first.fire_due() + second.fire_due():
        total += step
    assert total == 300
    assert count(app, Run) == 300


def test_a_busy_sqlite_database_delays_a_fire_but_loses_nothing(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock, app: Flask, db_kind: str
) -> None:
    """Another process holding the write lock for a while: the dispatcher waits it out."""
    if db_kind != "sqlite":
        pytest.skip("SQLite's single-writer lock")
    import sqlite3
    import threading

    create(client)
    clock.advance(10)
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        assert dispatcher.fire_due() == 1  # blocked until the other writer committed
    finally:
        released.join()
        holder.close()
    assert count(app, Run) == 1
