"""The dispatcher's steps, one at a time, with the clock moved by hand."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, func, select

from app.clock import ManualClock
from app.database import IMMEDIATE, db
from app.models import QueueMessage, Run
from app.scheduler.dispatcher import Dispatcher
from app.scheduler.process import end_pauses
from tests.conftest import START
from tests.support.engine_events import listening


@pytest.fixture
def dispatcher(make_dispatcher: Callable[..., Dispatcher]) -> Dispatcher:
    return make_dispatcher()


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


def test_no_job_fires_twice_when_two_dispatchers_share_the_database(
    client: FlaskClient, app: Flask, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:05Z"} for i in range(300)]
    client.post("/schedules:batch", json={"jobs": jobs})
    first, second = make_dispatcher(), make_dispatcher()
    clock.advance(timedelta(seconds=5).total_seconds())
    first.firing.settings = replace(first.settings, fire_batch=50)
    total = 0
    while step := first.fire_due() + second.fire_due():
        total += step
    assert total == 300
    assert count(app, Run) == 300


def test_firing_workers_claim_side_by_side_and_fire_each_occurrence_once(
    client: FlaskClient, app: Flask, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    db_kind: str,
) -> None:  # fmt: skip
    """On PostgreSQL a second firing worker claims while the first holds its batch (SKIP
    LOCKED passes over it); SQLite, one writer at a time, gets one worker."""
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:05Z"} for i in range(300)]
    client.post("/schedules:batch", json={"jobs": jobs})
    dispatcher = make_dispatcher()
    if db_kind == "sqlite":
        assert len(dispatcher.firings) == 1
    else:
        first, second = dispatcher.firings
        for firing in (first, second):
            firing.settings = replace(firing.settings, fire_batch=25)
        clock.advance(5)
        claimed, other_done = threading.Event(), threading.Event()
        held = first._fire

        def fire_after_the_other(conn: Connection, rows: Any, now: Any) -> tuple[int, int]:
            claimed.set()  # its batch is claimed, locked until it commits
            assert other_done.wait(10), "the second worker waited on the first"
            return held(conn, rows, now)

        first._fire = fire_after_the_other  # type: ignore[method-assign]
        holding = concurrent.futures.ThreadPoolExecutor(1).submit(first.fire_due)
        assert claimed.wait(10)
        assert second.fire_due() == 25
        other_done.set()
        assert holding.result(timeout=10) == 25
        first._fire = held  # type: ignore[method-assign]
    total = 0
    clock.advance(5)
    while step := sum(firing.fire_due() for firing in dispatcher.firings):
        total += step
    assert count(app, Run) == count(app, QueueMessage) == 300
    assert total == 300 - (50 if db_kind != "sqlite" else 0)


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


def audit_of(client: FlaskClient, job_id: str) -> list[tuple[str, str, str | None]]:
    entries = client.get(f"/audit?jobId={job_id}").get_json()
    return [(e["actor"], e["action"], e.get("detail")) for e in entries]


def test_catch_up_is_bounded_and_the_skip_is_visible(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock, app: Flask
) -> None:
    """Ten days down with a job due every second (misfire all) must not fill the database."""
    body = {"recurring": "interval", "interval": 1, "at": "2030-01-01T00:00:00Z"}
    job = create(client, **body, misfire="all")
    clock.advance(10 * 86400)  # the dispatcher was down for ten days
    while dispatcher.fire_due():
        pass
    runs = sorted(runs_of(client, job["jobId"]), key=lambda run: run["scheduledFor"])
    assert len(runs) == 100  # MAX_CATCH_UP, the oldest first
    assert runs[0]["scheduledFor"] == "2030-01-01T00:00:00Z"
    assert runs[-1]["scheduledFor"] == "2030-01-01T00:01:39Z"
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    missed = 10 * 86400 + 1 - 100  # every second of the ten days, less the 100 fired
    assert after["skippedCount"] == missed
    assert after["nextRunAt"] == "2030-01-11T00:00:01Z"  # on from now
    assert (
        "dispatcher",
        "skip",
        f"{missed} occurrences missed beyond the catch-up limit of 100",
    ) in audit_of(client, job["jobId"])
    metrics = text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
    (skipped,) = [m for m in metrics if m.name == "scheduler_skipped"]
    assert skipped.samples[0].value == missed


def test_a_job_may_set_its_own_catch_up_bound(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client, recurring="interval", interval=60, misfire="all", maxCatchUp=3)
    assert job["maxCatchUp"] == 3
    clock.advance(600)
    while dispatcher.fire_due():
        pass
    assert len(runs_of(client, job["jobId"])) == 3
    assert client.get(f"/schedules/{job['jobId']}").get_json()["skippedCount"] == 7
    page = client.get(f"/ui/jobs/{job['jobId']}").get_data(as_text=True)
    assert 'id="job-skipped-count">7 missed times not fired<' in page
    assert client.post("/schedules", json={"payload": "x", "maxCatchUp": 0}).status_code == 422


def test_one_job_catching_up_does_not_crowd_out_the_others(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    """A fire transaction writes about one batch of runs: a backlog waits for the next."""
    dispatcher.firing.settings = replace(dispatcher.settings, fire_batch=50)
    backlog = create(
        client, recurring="interval", interval=1, misfire="all", at="2030-01-01T00:00:00Z"
    )
    others = [create(client, payload=f"other {i}", at="2030-01-01T00:10:00Z") for i in range(60)]
    clock.advance(3600)  # down for an hour: the backlog has 3,600 missed occurrences
    assert dispatcher.fire_due() == 1  # the backlog's 100 runs fill this transaction
    assert len(runs_of(client, backlog["jobId"])) == 100
    assert dispatcher.fire_due() == 50 and dispatcher.fire_due() == 10
    assert all(len(runs_of(client, job["jobId"])) == 1 for job in others)


def test_a_new_recurring_job_starts_at_its_next_occurrence_and_a_one_shot_at_once(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    """An anchor in the past says when the rule's times fall, not that they were missed."""
    clock.advance(18 * 3600 + 48 * 60)  # 18:48 on 2030-01-01
    daily = create(client, recurring="daily", at="2030-01-01T00:00:00Z", timezone="UTC")
    weekly = create(client, recurring="weekly", at="2029-12-30T09:00:00Z", timezone="UTC")
    interval = create(client, recurring="interval", interval=3600, at="2030-01-01T00:30:00Z")
    this_second = create(client, recurring="daily", at="2030-01-01T18:48:00Z", timezone="UTC")
    once = create(client, at="2029-06-01T00:00:00Z")
    assert daily["nextRunAt"] == "2030-01-02T00:00:00Z"
    assert weekly["nextRunAt"] == "2030-01-06T09:00:00Z"
    assert interval["nextRunAt"] == "2030-01-01T19:30:00Z"
    assert this_second["nextRunAt"] == "2030-01-01T18:48:00Z"  # due now: fires now
    assert once["nextRunAt"] == "2029-06-01T00:00:00Z"  # a one-shot in the past: at once
    assert dispatcher.fire_due() == 2
    assert runs_of(client, daily["jobId"]) == []


def test_completion_is_audited_as_the_dispatcher(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    job = create(client)
    clock.advance(10)
    dispatcher.fire_due()
    assert audit_of(client, job["jobId"])[0] == ("dispatcher", "complete", None)


def test_run_now_is_counted(client: FlaskClient, dispatcher: Dispatcher) -> None:
    job = create(client, recurring="interval", interval=60, maxRuns=1)
    run = client.post(f"/schedules/{job['jobId']}/run").get_json()
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    assert after["runCount"] == 1 and after["lastRunAt"] == run["scheduledFor"]
    # Outside the rule: the job's own sequence (and maxRuns) is untouched.
    assert after["status"] == "active" and after["nextRunAt"] == "2030-01-01T00:00:10Z"
    assert dispatcher.deliver_due() == 1


def test_lag_counts_from_when_the_service_could_have_fired(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    """The README's "due now" idiom (at in 2020) is not 10 years late; downtime still is."""
    idiom = create(client, at="2020-01-01T00:00:00Z")  # created at 2030-01-01T00:00:00
    down = create(client, recurring="interval", interval=60, at="2030-01-01T00:01:00Z")
    moved = create(client, at="2030-01-01T01:00:00Z")
    clock.advance(0.25)
    dispatcher.fire_due()
    clock.advance(300)  # the dispatcher was down for five minutes
    body = {"payload": "hello", "at": "2029-12-31T00:00:00Z"}  # moved into the past
    assert client.put(f"/schedules/{moved['jobId']}", json=body).status_code == 200
    clock.advance(0.5)
    dispatcher.fire_due()
    (run,) = runs_of(client, idiom["jobId"])
    assert run["scheduledFor"] == "2020-01-01T00:00:00Z"  # the nominal time, as it was
    assert run["dueAt"] == "2030-01-01T00:00:00Z" and run["lagMs"] == 250.0
    (changed,) = runs_of(client, moved["jobId"])
    assert changed["lagMs"] == 500.0  # from the change, not from the day before
    (late,) = runs_of(client, down["jobId"])  # coalesced: the latest missed occurrence
    assert late["dueAt"] == late["scheduledFor"] == "2030-01-01T00:05:00Z"
    assert late["lagMs"] == 750.0
    metrics = text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
    (lag,) = [m for m in metrics if m.name == "scheduler_fire_lag_seconds"]
    buckets = {s.labels["le"]: s.value for s in lag.samples if s.name.endswith("_bucket")}
    assert buckets["1.0"] == 3 and buckets["+Inf"] == 3  # none of them years late


@contextmanager
def write_transactions(app: Flask) -> Iterator[list[bool]]:
    """Counts the write transactions begun on the app's engine while inside."""
    begun: list[bool] = []

    def on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(IMMEDIATE, False):
            begun.append(True)

    with listening(app, "begin", on_begin):
        yield begun


def test_an_idle_scheduler_opens_no_write_transaction(
    app: Flask, client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    """Idle passes only look: a write transaction every pass costs CPU on both databases
    and, on SQLite, takes the one write lock that the web process's creates queue on."""
    create(client)  # due in 10 s
    paused = create(client, at="2030-01-01T00:00:20Z")["jobId"]
    client.post(f"/schedules/{paused}/pause", json={"until": "2030-01-01T00:00:05Z"})
    with write_transactions(app) as begun:
        assert dispatcher.run_pass(window=0.2)
        dispatcher.run_delivery_pass(window=0.2)
        with app.app_context():
            end_pauses(app)
    assert begun == []
    clock.advance(10)  # now one fires and one pause ends: each writes
    with write_transactions(app) as begun:
        assert dispatcher.run_pass(window=0.2)
        with app.app_context():
            end_pauses(app)
    assert len(begun) >= 2
    assert client.get(f"/schedules/{paused}").get_json()["status"] == "active"


def test_jobs_runs_and_their_messages_get_time_ordered_ids(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher, app: Flask
) -> None:
    """Version 7 ids: a burst's runs (and their queue messages, which share the run's id)
    go into the last pages of their primary keys' indexes, not one random page each."""
    made = [create(client, payload=f"job {i}") for i in range(3)]
    clock.advance(10)
    assert dispatcher.step() == 3
    with app.app_context():
        run_ids = list(db.session.scalars(select(Run.id)))
        message_ids = set(db.session.scalars(select(QueueMessage.id)))
    assert {uuid.UUID(job["jobId"]).version for job in made} == {7}
    assert {run_id.version for run_id in run_ids} == {7}
    assert message_ids == set(run_ids)
