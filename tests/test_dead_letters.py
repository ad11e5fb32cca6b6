"""Dead letters: a run that goes dead sends a message about itself to the job's dead letter
target (or DEFAULT_DEAD_LETTER), delivered as a run of its own with the job's retries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.config import ConfigError, settings
from app.database import db
from app.models import Job
from app.retry import RetryPolicy
from app.scheduler.deadletters import DeadLetterTo
from app.scheduler.dispatcher import Dispatcher
from app.scheduler.lanes import Held
from app.targets.base import Delivery, Outcome
from app.targets.webhook import WebhookTarget
from tests.conftest import START
from tests.support.http_target import HttpTarget, Response

RETRY = {"attempts": 2, "backoff": 1.0}


@pytest.fixture
def dispatcher(make_dispatcher: Callable[..., Dispatcher]) -> Dispatcher:
    return make_dispatcher({"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])})


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"payload": '{"order": 7}', "at": "2030-01-01T00:00:01Z", "retry": RETRY}
    response = client.post("/schedules", json=body | fields)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def runs_of(client: FlaskClient, job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/schedules/{job_id}/runs").get_json())


def kill(clock: ManualClock, dispatcher: Dispatcher) -> None:
    """Fire the job and spend its two attempts: the run is dead."""
    clock.advance(1)
    dispatcher.step()
    clock.advance(10)
    dispatcher.deliver_due()


def receive(client: FlaskClient, queue: str) -> list[dict[str, Any]]:
    response = client.post(f"/queues/{queue}/receive", json={"max": 10})
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["messages"])


def failing(http_target: HttpTarget, path: str = "/down") -> dict[str, Any]:
    http_target.respond(path, Response(503))
    return {"type": "webhook", "url": http_target.url + path}


def test_a_dead_run_sends_its_dead_letter_to_the_built_in_queue(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher, http_target: HttpTarget
) -> None:
    job = create(client, target=failing(http_target), deadLetter={"type": "queue", "name": "dlq"})
    assert job["deadLetter"] == {"type": "queue", "name": "dlq"}
    kill(clock, dispatcher)
    letter, dead = runs_of(client, job["jobId"])  # written with the run's death
    assert dead["status"] == "dead" and dead["deadLetter"] is False
    assert letter["status"] == "pending" and letter["deadLetter"] is True
    assert receive(client, "dlq") == []
    dispatcher.deliver_due()  # the dead letter is a run of its own, delivered by a claim
    letter, dead = runs_of(client, job["jobId"])
    assert letter["deadLetter"] is True and letter["status"] == "delivered"
    assert letter["scheduledFor"] == dead["scheduledFor"]
    assert dead["deadLetterRunId"] == letter["runId"]
    assert client.get(f"/runs/{dead['runId']}").get_json()["deadLetterRunId"] == letter["runId"]
    (message,) = receive(client, "dlq")
    assert message["runId"] == letter["runId"] and message["jobId"] == job["jobId"]
    assert json.loads(message["payload"]) == {
        "payload": '{"order": 7}',
        "runId": dead["runId"],
        "jobId": job["jobId"],
        "attempts": 2,
        "lastError": dead["lastError"],
        "lastStatus": 503,
        "scheduledFor": "2030-01-01T00:00:01Z",
        "firedAt": dead["firedAt"],
    }
    assert "503" in dead["lastError"]


def test_a_dead_letter_goes_to_a_webhook_and_retries_by_the_jobs_policy(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher, http_target: HttpTarget
) -> None:
    http_target.respond("/dlq", Response(500), Response(200))
    dead_letter = {"type": "webhook", "url": http_target.url + "/dlq"}
    job = create(client, target=failing(http_target), deadLetter=dead_letter)
    kill(clock, dispatcher)
    dispatcher.deliver_due()
    letter, dead = runs_of(client, job["jobId"])
    assert letter["status"] == "retrying" and letter["attempts"] == 1  # the job's backoff
    clock.advance(10)
    dispatcher.deliver_due()
    letter, dead = runs_of(client, job["jobId"])
    assert letter["status"] == "delivered" and letter["attempts"] == 2
    first, second = http_target.requests_to("/dlq")
    assert first.body == second.body
    assert first.headers["webhook-id"] == letter["runId"]
    body = json.loads(second.body)
    assert body["runId"] == dead["runId"] and body["lastStatus"] == 503
    assert body["payload"] == '{"order": 7}' and body["attempts"] == 2


def test_a_dead_letter_that_dies_sends_none(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher, http_target: HttpTarget
) -> None:
    job = create(client, target=failing(http_target), deadLetter=failing(http_target, "/dlq"))
    kill(clock, dispatcher)
    dispatcher.deliver_due()
    clock.advance(10)
    dispatcher.deliver_due()
    letter, _ = runs_of(client, job["jobId"])
    assert letter["status"] == "dead" and letter["attempts"] == 2
    assert letter["deadLetterRunId"] is None
    for _ in range(3):
        clock.advance(60)
        assert dispatcher.deliver_due() == 0
    assert len(runs_of(client, job["jobId"])) == 2
    assert len(http_target.requests_to("/dlq")) == 2


def test_a_run_retried_by_hand_that_dies_again_sends_no_second_dead_letter(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher, http_target: HttpTarget
) -> None:
    job = create(client, target=failing(http_target), deadLetter={"type": "queue", "name": "dlq"})
    kill(clock, dispatcher)
    dispatcher.deliver_due()
    letter, dead = runs_of(client, job["jobId"])
    assert client.post(f"/runs/{dead['runId']}/retry").status_code == 202
    dispatcher.deliver_due()
    clock.advance(10)
    dispatcher.deliver_due()
    dispatcher.deliver_due()
    runs = runs_of(client, job["jobId"])
    assert [r["status"] for r in runs] == ["delivered", "dead"]
    assert runs[1]["attempts"] == 2 and runs[1]["deadLetterRunId"] == letter["runId"]
    assert len(receive(client, "dlq")) == 1


def test_no_dead_letter_without_a_target_for_it(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher, http_target: HttpTarget
) -> None:
    job = create(client, target=failing(http_target))
    assert job["deadLetter"] is None
    kill(clock, dispatcher)
    dispatcher.deliver_due()
    (dead,) = runs_of(client, job["jobId"])
    assert dead["status"] == "dead" and dead["deadLetterRunId"] is None


def test_default_dead_letter_serves_jobs_without_one(
    make_app: Callable[..., Flask], make_dispatcher: Any, clock: ManualClock,
    http_target: HttpTarget,
) -> None:  # fmt: skip
    app = make_app(DEFAULT_DEAD_LETTER={"type": "queue", "name": "all-dead"})
    client = app.test_client()
    own = create(client, target=failing(http_target), deadLetter={"type": "queue", "name": "mine"})
    job = create(client, target=failing(http_target))
    assert job["deadLetter"] == {"type": "queue", "name": "all-dead"}
    assert own["deadLetter"] == {"type": "queue", "name": "mine"}
    with app.app_context():
        from app.scheduler.process import build_dispatcher

        dispatcher = build_dispatcher(
            app, {"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])}
        )
    try:
        kill(clock, dispatcher)
        dispatcher.deliver_due()
    finally:
        dispatcher.stop()
        dispatcher.close(timeout=5)
    (message,) = receive(client, "all-dead")
    assert json.loads(message["payload"])["jobId"] == job["jobId"]
    assert len(receive(client, "mine")) == 1


def test_a_dead_letter_is_checked_as_a_target_is(client: FlaskClient) -> None:
    cases = [
        ({"type": "webhook", "url": "ftp://example.com"}, "deadLetter.webhook.url"),
        ({"type": "webhook", "url": "http://10.0.0.1/x"}, "deadLetter.url"),
        ({"type": "sqs"}, "deadLetter.sqs.queueUrl"),
        ({"type": "queue", "name": "no spaces"}, "deadLetter.queue.name"),
        ({"type": "carrier-pigeon"}, "deadLetter"),
    ]
    for dead_letter, field in cases:
        body = {"payload": "x", "at": "2030-01-01T00:00:01Z", "deadLetter": dead_letter}
        response = client.post("/schedules", json=body)
        assert response.status_code == 422, (dead_letter, response.get_json())
        fields = [error["field"] for error in response.get_json()["errors"]]
        assert any(f.startswith(field) for f in fields), (dead_letter, fields)


def test_a_dead_letter_webhooks_secret_is_kept_and_never_shown(client: FlaskClient) -> None:
    secret = "whsec_QUFBQUFBQUFBQUFBQUFBQQ=="
    dead_letter = {"type": "webhook", "url": "https://example.com/dlq", "secret": secret}
    job = create(client, deadLetter=dead_letter)
    shown = {"type": "webhook", "url": "https://example.com/dlq", "method": "POST",
             "headers": {}, "timeout": 10.0}  # fmt: skip
    assert job["deadLetter"] == shown
    # get-modify-put sends no secret back: the dead letter keeps it
    assert client.put(f"/schedules/{job['jobId']}", json=job).status_code == 200
    plain = create(client, deadLetter={"type": "webhook", "url": "https://example.com/dlq"})
    with client.application.app_context():
        assert stored_dead_letter(job["jobId"])["secret"] == secret
        assert "secret" not in stored_dead_letter(plain["jobId"])  # none made for it


def stored_dead_letter(job_id: str) -> dict[str, Any]:
    job = db.session.get(Job, uuid.UUID(job_id))
    assert job is not None and job.dead_letter is not None
    return job.dead_letter


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ('{"type": "queue", "name": "dlq"}', {"type": "queue", "name": "dlq"})],
)
def test_default_dead_letter_setting_empty_is_none(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: Any
) -> None:
    monkeypatch.setenv("DEFAULT_DEAD_LETTER", value)
    assert settings({}, {})["DEFAULT_DEAD_LETTER"] == expected


def test_default_dead_letter_setting_is_checked_as_a_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEFAULT_DEAD_LETTER", '{"type": "webhook"}')
    with pytest.raises(ConfigError, match=r"DEFAULT_DEAD_LETTER\.webhook\.url: Field required"):
        settings({}, {})


def test_a_run_dead_at_its_claim_sends_its_dead_letter_too(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher
) -> None:
    """A target this scheduler lacks kills the run when it is claimed, not by an outcome."""
    sqs = {"type": "sqs", "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q"}
    job = create(client, target=sqs, deadLetter={"type": "queue", "name": "dlq"})
    clock.advance(1)
    dispatcher.step()
    dispatcher.deliver_due()
    dead, letter = sorted(runs_of(client, job["jobId"]), key=lambda run: run["deadLetter"])
    assert dead["status"] == "dead" and letter["status"] == "delivered"
    (message,) = receive(client, "dlq")
    body = json.loads(message["payload"])
    assert body["lastError"] == "no sqs target configured in this scheduler"
    assert body["lastStatus"] is None and body["attempts"] == 1


def test_an_outcome_whose_lease_was_lost_writes_no_dead_letter(
    client: FlaskClient, clock: ManualClock, dispatcher: Dispatcher, http_target: HttpTarget
) -> None:
    """A late "dead" from a dispatcher whose lease was taken over records nothing: neither
    the run's death nor its dead letter."""
    job = create(client, target=failing(http_target), deadLetter={"type": "queue", "name": "dlq"})
    clock.advance(1)
    dispatcher.fire_due()  # pending, not leased by anyone
    (run,) = runs_of(client, job["jobId"])
    delivery = Delivery(
        run["runId"], job["jobId"], START.replace(second=1), "p", job["target"], attempt=2
    )
    held = Held(
        delivery, START, RetryPolicy.of(RETRY), 10.0, 60.0, START, "o", 1,
        DeadLetterTo({"type": "queue", "name": "dlq"}, None),
    )  # fmt: skip
    dispatcher.recorder.write([(held, Outcome(run["runId"], ok=False, permanent=True))])
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "pending"
