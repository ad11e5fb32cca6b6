"""A flexible window (EventBridge's FlexibleTimeWindow): each occurrence fires at the job's
point within [nominal, nominal + window); the run keeps its nominal time."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from app import jobstate
from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher
from tests.test_dispatcher import create, runs_of
from tests.test_ui_views import element, text


@pytest.fixture
def dispatcher(make_dispatcher: Callable[..., Dispatcher]) -> Dispatcher:
    return make_dispatcher()


def test_the_point_is_in_the_window_the_same_each_time_and_spread() -> None:
    job_id = uuid.uuid4()
    offset = jobstate.window_offset(job_id, 900)
    assert timedelta(0) <= offset < timedelta(seconds=900)
    assert jobstate.window_offset(job_id, 900) == offset  # restarts, other dispatchers
    assert jobstate.window_offset(str(job_id), 900) == offset  # as a row or a model has it
    assert jobstate.window_offset(job_id, None) == timedelta(0)
    # A hundred thousand jobs due at once with a 60 s window: an even spread over its seconds.
    per_second = [0] * 60
    for _ in range(100_000):
        per_second[int(jobstate.window_offset(uuid.uuid4(), 60).total_seconds())] += 1
    mean = statistics.mean(per_second)
    assert max(per_second) < mean * 1.1 and min(per_second) > mean * 0.9


def test_an_occurrence_fires_at_its_point_and_keeps_its_nominal_time(
    client: FlaskClient,
    dispatcher: Dispatcher,
    clock: ManualClock,
) -> None:
    job = create(client, recurring="interval", interval=3600, at="2030-01-01T00:10:00Z",
                 window=600)  # fmt: skip
    offset = jobstate.window_offset(job["jobId"], 600)
    nominal = datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
    planned = nominal + offset
    assert job["window"] == 600
    assert job["nextRunAt"] == planned.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    clock.set(planned - timedelta(milliseconds=1))
    assert dispatcher.fire_due() == 0  # the nominal time has passed, its point has not
    clock.set(planned)
    assert dispatcher.fire_due() == 1
    (run,) = runs_of(client, job["jobId"])
    assert run["scheduledFor"] == "2030-01-01T00:10:00Z"
    assert run["dueAt"] == job["nextRunAt"] and run["lagMs"] == 0  # on time in its window
    # The UI's run row shows the planned time beside the nominal one.
    row = element(text(client.get(f"/ui/runs?job={job['jobId']}")), f"due-{run['runId']}")
    assert ">due <time" in row and f'datetime="{job["nextRunAt"]}"' in row
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    following = planned + timedelta(hours=1)
    assert after["nextRunAt"] == following.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_after_downtime_it_coalesces_on_the_shifted_clock(
    client: FlaskClient,
    dispatcher: Dispatcher,
    clock: ManualClock,
) -> None:
    job = create(client, recurring="interval", interval=60, at="2030-01-01T00:01:00Z",
                 window=30)  # fmt: skip
    offset = jobstate.window_offset(job["jobId"], 30)
    clock.set(datetime(2030, 1, 1, 1, 0, 0, tzinfo=UTC) + offset)  # an hour down
    dispatcher.fire_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["scheduledFor"] == "2030-01-01T01:00:00Z"  # the latest due at its point
    later: dict[str, Any] = client.get(f"/schedules/{job['jobId']}").get_json()
    expected = datetime(2030, 1, 1, 1, 1, tzinfo=UTC) + offset
    assert later["nextRunAt"] == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_window_out_of_range_names_the_field(client: FlaskClient) -> None:
    for window in (0, 86401, 1.5, "60"):
        answer = client.post("/schedules", json={"payload": "p", "minute": 1, "window": window})
        assert answer.status_code == 422, window
        assert answer.get_json()["errors"][0]["field"] == "window"
