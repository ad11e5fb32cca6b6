"""Backfill: a run for each occurrence in a past range that has none, once, paced, audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.models import Run
from app.scheduler.dispatcher import Dispatcher
from tests.test_dispatcher import count, create, runs_of


@pytest.fixture
def dispatcher(make_dispatcher: Callable[..., Dispatcher]) -> Dispatcher:
    return make_dispatcher()


def backfill(client: FlaskClient, job_id: str, **body: object) -> dict[str, object]:
    response = client.post(f"/schedules/{job_id}/backfill", json=body)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def test_backfill_makes_each_missing_run_once_and_paced(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 12, 10, 12, tzinfo=UTC))
    job = create(client, recurring="rrule", rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
                 at="2026-12-01T00:00:00", timezone="Europe/Berlin",
                 exclude={"dates": ["2026-12-05"]})  # fmt: skip
    span = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-10T00:00:00Z"}
    counted = backfill(client, job["jobId"], **span, dryRun=True)
    assert counted == {"occurrences": 8, "existing": 0, "written": 0}  # the 5th is excluded
    assert runs_of(client, job["jobId"]) == []
    done = backfill(client, job["jobId"], **span)
    assert done == {"occurrences": 8, "existing": 0, "written": 8}
    found = runs_of(client, job["jobId"])
    assert sorted(r["scheduledFor"] for r in found) == [
        f"2026-12-{day:02d}T08:00:00Z" for day in (1, 2, 3, 4, 6, 7, 8, 9)
    ]
    # Paced: the first attempts are spread from now, BACKFILL_PACE apart.
    attempts = sorted(datetime.fromisoformat(r["nextAttemptAt"].replace("Z", "+00:00"))
                      for r in found)  # fmt: skip
    assert attempts[0] == clock.now() and attempts[-1] - attempts[0] == timedelta(seconds=0.07)
    # Again: nothing new. A wider range makes only the new ones.
    assert backfill(client, job["jobId"], **span)["written"] == 0
    wider = backfill(
        client, job["jobId"], **{"from": "2026-11-01T00:00:00Z", "to": "2026-12-10T12:00:00Z"}
    )
    assert wider == {"occurrences": 9, "existing": 8, "written": 1}  # the 10th
    entries = client.get(f"/audit?jobId={job['jobId']}").get_json()
    assert next(e["detail"] for e in entries if e["action"] == "backfill").startswith("1 runs")
    assert sum(e["action"] == "backfill" for e in entries) == 3


def test_a_backfilled_run_is_delivered_and_a_live_fire_is_not_delayed(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock, app: Flask
) -> None:
    clock.set(datetime(2026, 12, 10, 8, 59, 59, tzinfo=UTC))
    job = create(client, recurring="interval", interval=60, at="2026-12-03T00:00:00Z")
    done = backfill(
        client, job["jobId"], **{"from": "2026-12-09T00:00:00Z", "to": "2026-12-10T08:59:00Z"}
    )
    assert done["written"] == 32 * 60 + 59 + 1  # every minute, both ends included
    clock.set(datetime(2026, 12, 10, 9, 0, 0, tzinfo=UTC))
    assert dispatcher.fire_due() == 1  # the live occurrence fires at its time
    live = [r for r in runs_of(client, job["jobId"]) if r["scheduledFor"] == "2026-12-10T09:00:00Z"]
    assert live and live[0]["lagMs"] == 0 and live[0]["status"] == "delivered"
    # The backfilled runs wait their turn (the newest page of them, all still pending).
    assert count(app, Run) == 1981
    waiting = [r for r in runs_of(client, job["jobId"]) if r["status"] == "pending"]
    assert len(waiting) == len(runs_of(client, job["jobId"])) - 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "2026-12-09T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
        ({"from": "2026-12-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}, "to"),  # future
        ({"from": "2000-01-01T00:00:00Z", "to": "2026-12-10T00:00:00Z"}, "to"),  # > 10,000
        ({"from": "yesterday", "to": "2026-12-10T00:00:00Z"}, "from"),
    ],
)
def test_a_bad_range_is_a_422_naming_it(
    client: FlaskClient, clock: ManualClock, body: dict[str, str], field: str
) -> None:
    clock.set(datetime(2026, 12, 10, 12, tzinfo=UTC))
    job = create(client, recurring="interval", interval=60, at="2000-01-01T00:00:00Z")
    response = client.post(f"/schedules/{job['jobId']}/backfill", json=body)
    assert response.status_code == 422, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == [field]
    assert runs_of(client, job["jobId"]) == []


def test_a_one_shot_has_nothing_to_backfill(client: FlaskClient, clock: ManualClock) -> None:
    clock.set(datetime(2026, 12, 10, 12, tzinfo=UTC))
    job = create(client, at="2026-12-01T00:00:00Z")
    body = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}
    response = client.post(f"/schedules/{job['jobId']}/backfill", json=body)
    assert response.status_code == 422
