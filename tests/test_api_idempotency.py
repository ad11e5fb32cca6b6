"""Idempotent creation: one key, one job, whatever the retries and however they race."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import idempotency
from app.clock import ManualClock
from app.database import db
from app.models import IdempotencyKey, Job
from tests.support.processes import free_port, process_env, running, start_web
from tests.test_access import bearer, make_key

JOB = {"payload": "invoice", "at": "2030-01-01T09:00:00Z", "name": "billing"}


def post(client: FlaskClient, body: dict[str, Any], key: str, url: str = "/schedules") -> Any:
    return client.post(url, json=body, headers={"Idempotency-Key": key})


def job_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_retry_answers_the_first_answer_and_creates_nothing(
    client: FlaskClient, app: Flask
) -> None:
    first = post(client, JOB, "order-17")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    reordered = dict(reversed(list(JOB.items())))  # the same body, keys in another order
    again = post(client, reordered, "order-17")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert again.headers["Location"] == first.headers["Location"]
    assert job_count(app) == 1
    # Another key, or no key, is another job.
    assert post(client, JOB, "order-18").get_json()["jobId"] != first.get_json()["jobId"]
    assert client.post("/schedules", json=JOB).status_code == 201
    assert job_count(app) == 3


def test_the_same_key_with_another_body_is_refused(client: FlaskClient, app: Flask) -> None:
    assert post(client, JOB, "k").status_code == 201
    other = post(client, JOB | {"payload": "refund"}, "k")
    assert other.status_code == 422
    assert other.get_json()["errors"][0]["field"] == "Idempotency-Key"
    elsewhere = post(client, {"jobs": [JOB]}, "k", "/schedules:batch")  # another path
    assert elsewhere.status_code == 422
    assert job_count(app) == 1


def test_a_batch_is_created_once(client: FlaskClient, app: Flask) -> None:
    body = {"jobs": [JOB, JOB | {"name": "second"}]}
    first = post(client, body, "nightly", "/schedules:batch")
    again = post(client, body, "nightly", "/schedules:batch")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"]
    assert job_count(app) == 2


def test_a_key_lasts_a_day(client: FlaskClient, app: Flask, clock: ManualClock) -> None:
    first = post(client, JOB, "daily").get_json()["jobId"]
    clock.advance(24 * 3600 - 1)
    assert post(client, JOB, "daily").get_json()["jobId"] == first
    clock.advance(1)
    assert post(client, JOB, "daily").get_json()["jobId"] != first  # a new day, a new job
    with app.app_context():  # the expired answer was replaced, not kept beside the new one
        assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_keys_belong_to_their_caller(make_app: Any) -> None:
    app = make_app()
    alice, bob = make_key(app, "alice"), make_key(app, "bob")
    client = app.test_client()
    headers = {"Idempotency-Key": "same"}
    a = client.post("/schedules", json=JOB, headers=headers | bearer(alice)).get_json()
    b = client.post("/schedules", json=JOB, headers=headers | bearer(bob)).get_json()
    assert a["jobId"] != b["jobId"]  # bob's retry never gets alice's answer (nor secret)


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "two words"])
def test_a_bad_key_is_a_400_naming_the_header(client: FlaskClient, app: Flask, key: str) -> None:
    answer = post(client, JOB, key)
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == "Idempotency-Key"
    assert job_count(app) == 0


def test_the_loser_of_a_race_answers_the_winners_answer(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests looked and found no answer; the winner committed first: the loser's
    jobs are rolled back and it answers what the winner answered."""
    winner = post(client, JOB, "race")
    real_recall = idempotency.recall
    looks: list[str] = []

    def first_look_finds_nothing(claim: idempotency.Claim, now: Any) -> Any:
        looks.append(claim.key)
        return None if len(looks) == 1 else real_recall(claim, now)

    monkeypatch.setattr(idempotency, "recall", first_look_finds_nothing)
    loser = post(client, JOB, "race")
    assert looks == ["race", "race"]
    assert loser.status_code == 201 and loser.headers["Idempotent-Replayed"] == "true"
    assert loser.get_json()["jobId"] == winner.get_json()["jobId"]
    assert job_count(app) == 1
    assert client.get("/audit").get_json()[0]["action"] == "create"  # one create audited
    assert len(client.get("/audit").get_json()) == 1


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_concurrent_retries_through_gunicorn_make_one_job(
    database_url: str, tmp_path: Path, app: Flask, batch: bool
) -> None:
    """Eight clients send the same create (one job, or a batch of three) with one key at
    the same moment, to two gunicorn workers with four threads each (on PostgreSQL, truly
    in parallel): it is made once, and all eight get its answer."""
    port = free_port()
    env = process_env(database_url, SECRET_KEY="idempotency")
    with running(start_web(env, tmp_path / "web.log", port)):
        base = f"http://127.0.0.1:{port}/schedules"
        url, body = (f"{base}:batch", {"jobs": [JOB] * 3}) if batch else (base, JOB)
        answers: list[requests.Response] = []
        start = threading.Barrier(8)

        def send() -> None:
            start.wait()
            headers = {"Idempotency-Key": "together"}
            answers.append(requests.post(url, json=body, headers=headers, timeout=30))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
        made = [a.json()["jobs"] if batch else [a.json()] for a in answers]
        assert len({tuple(job["jobId"] for job in jobs) for jobs in made}) == 1
        assert sum(1 for a in answers if "Idempotent-Replayed" not in a.headers) == 1
        listed = requests.get(base, timeout=5).json()
        assert len(listed) == (3 if batch else 1)
