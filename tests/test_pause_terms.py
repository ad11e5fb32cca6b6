"""Pause with a note and until a time (Temporal's pause notes): the job resumes by itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from app import jobs
from app.clock import ManualClock
from tests.support.processes import (
    free_port,
    process_env,
    running,
    start_scheduler,
    start_web,
    wait_until,
)


def every_minute(client: FlaskClient) -> dict[str, Any]:
    body = {"payload": "p", "recurring": "interval", "interval": 60, "at": "2030-01-01T00:00:30Z"}
    return dict(client.post("/schedules", json=body).get_json())


def pause(client: FlaskClient, job_id: str, **body: Any) -> Any:
    return client.post(f"/schedules/{job_id}/pause", json=body)


def audit_of(client: FlaskClient, job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/audit?jobId={job_id}").get_json())


def test_a_pause_with_a_note_and_an_end(client: FlaskClient) -> None:
    job = every_minute(client)["jobId"]
    paused = pause(client, job, note="database migration", until="2030-01-01T02:00:00Z")
    assert paused.status_code == 200
    answer = paused.get_json()
    assert answer["status"] == "paused" and answer["nextRunAt"] is None
    assert answer["pauseNote"] == "database migration"
    assert answer["pausedUntil"] == "2030-01-01T02:00:00Z"
    entry = audit_of(client, job)[0]
    assert entry["action"] == "pause"
    assert entry["detail"] == "database migration; until 2030-01-01T02:00:00Z"
    # New terms for a paused job are taken and audited; the same again changes nothing.
    later = pause(client, job, until="2030-01-01T03:00:00Z").get_json()
    assert later["pausedUntil"] == "2030-01-01T03:00:00Z" and later["pauseNote"] is None
    pause(client, job, until="2030-01-01T03:00:00Z")
    assert [e["action"] for e in audit_of(client, job)] == ["pause", "pause", "create"]
    # get-modify-put sends the terms back: they are read-only, and the pause keeps them.
    kept = client.put(f"/schedules/{job}", json=later).get_json()
    assert kept["status"] == "paused" and kept["pausedUntil"] == "2030-01-01T03:00:00Z"
    resumed = client.post(f"/schedules/{job}/resume").get_json()
    assert resumed["status"] == "active" and resumed["pausedUntil"] is None


def test_a_pause_without_a_body_is_the_original_pause(client: FlaskClient) -> None:
    job = every_minute(client)["jobId"]
    answer = client.post(f"/schedules/{job}/pause")
    assert answer.status_code == 200 and answer.get_json()["pauseNote"] is None


def test_bad_terms_name_their_field_and_change_nothing(client: FlaskClient) -> None:
    job = every_minute(client)["jobId"]
    for body, field in [
        ({"until": "2029-12-31T23:59:59Z"}, "until"),  # the clock is at 2030-01-01
        ({"until": "tomorrow"}, "until"),
        ({"note": "x" * 501}, "note"),
        ({"note": 5}, "note"),
        ({"reason": "typo"}, "reason"),
    ]:
        answer = pause(client, job, **body)
        assert answer.status_code == 422, body
        assert answer.get_json()["errors"][0]["field"] == field
    assert client.get(f"/schedules/{job}").get_json()["status"] == "active"


def test_the_pause_ends_by_itself(client: FlaskClient, app: Flask, clock: ManualClock) -> None:
    job = every_minute(client)["jobId"]
    pause(client, job, note="quiet hours", until="2030-01-01T00:10:00Z")
    other = every_minute(client)["jobId"]
    pause(client, other)  # no end: stays paused
    with app.app_context():
        assert jobs.end_pauses(clock.now()) == 0
    clock.advance(10 * 60 + 5)
    with app.app_context():
        assert jobs.end_pauses(clock.now()) == 1
        assert jobs.end_pauses(clock.now()) == 0  # once
    resumed = client.get(f"/schedules/{job}").get_json()
    assert resumed["status"] == "active" and resumed["pauseNote"] is None
    # Occurrences that fell while paused are not fired: the next one from now on.
    assert resumed["nextRunAt"] == "2030-01-01T00:10:30Z"
    entry = audit_of(client, job)[0]
    assert (entry["action"], entry["actor"]) == ("resume", "system")
    assert entry["detail"] == "the pause ended (until 2030-01-01T00:10:00Z)"
    assert client.get(f"/schedules/{other}").get_json()["status"] == "paused"


def test_the_scheduler_process_ends_a_pause(database_url: str, tmp_path: Path) -> None:
    """Real processes and real time: paused until two seconds from now, then fired."""
    env = process_env(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        running(start_web(env, tmp_path / "web.log", port)),
        running(start_scheduler(env, tmp_path / "scheduler.log")),
    ):
        now = datetime.now(UTC).replace(microsecond=0)
        body = {"payload": "p", "recurring": "interval", "interval": 1,
                "at": (now - timedelta(seconds=1)).isoformat()}  # fmt: skip
        job = requests.post(f"{base}/schedules", json=body, timeout=5).json()["jobId"]
        until = (now + timedelta(seconds=2)).isoformat()
        requests.post(f"{base}/schedules/{job}/pause", json={"until": until}, timeout=5)
        runs_when_paused = len(requests.get(f"{base}/schedules/{job}/runs", timeout=5).json())

        def resumed_and_fired() -> bool:
            answer = requests.get(f"{base}/schedules/{job}", timeout=5).json()
            return answer["status"] == "active" and answer["runCount"] > runs_when_paused

        wait_until(resumed_and_fired, 15)
        entry = requests.get(f"{base}/audit?jobId={job}", timeout=5).json()
        resume = next(e for e in entry if e["action"] == "resume")
        assert resume["actor"] == "dispatcher"


def test_the_ui_pauses_with_terms_and_shows_them(client: FlaskClient) -> None:
    from tests.test_ui_views import text, token

    job = every_minute(client)["jobId"]
    form = {"csrf_token": token(client), "next": f"/ui/jobs/{job}"}
    past = client.post(f"/ui/jobs/{job}/pause", data=form | {"until": "2029-12-31T10:00"})
    assert past.status_code == 422 and "until: must be in the future" in text(past)
    bad = client.post(f"/ui/jobs/{job}/pause", data=form | {"until": "soon"})
    assert bad.status_code == 422 and "until" in text(bad)
    assert client.get(f"/schedules/{job}").get_json()["status"] == "active"
    done = client.post(
        f"/ui/jobs/{job}/pause", data=form | {"note": "audit <week>", "until": "2030-01-01T02:00"}
    )
    assert done.status_code == 303
    page = text(client.get(f"/ui/jobs/{job}"))
    assert "Job paused until Tue 1 Jan, 02:00:00 UTC" in page
    assert 'id="job-pause">until' in page and "audit &lt;week&gt;" in page  # escaped
    assert "resumes in 2 h" in text(client.get("/ui/jobs"))
