"""Runs delivered by the dispatcher to real targets: SQS (moto server mode) and webhooks
(a local HTTP server), including outages, retries, dead runs and a crash mid-delivery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.dispatcher import Dispatcher
from app.scheduler import build_dispatcher
from app.targets.base import Outcome
from app.targets.sqs import SqsTarget
from app.targets.webhook import WebhookTarget
from tests.support.http_target import HttpTarget, Response
from tests.support.sqs_server import TcpProxy, receive_all

NO_RETRIES = {"retries": {"max_attempts": 1, "mode": "standard"}}


@pytest.fixture
def webhooks() -> Iterator[WebhookTarget]:
    with WebhookTarget(allow_networks=["127.0.0.0/8"]) as target:
        yield target


@pytest.fixture
def sqs_via_proxy(sqs_proxy: TcpProxy, sqs_client_factory: Any) -> Iterator[SqsTarget]:
    client = sqs_client_factory(sqs_proxy.url, connect_timeout=1, **NO_RETRIES)
    with SqsTarget(lambda region: client) as target:
        yield target


def dispatcher_for(app: Flask, **targets: Any) -> Dispatcher:
    with app.app_context():
        return build_dispatcher(app, targets=targets)


def create(client: FlaskClient, target: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"payload": '{"hello": "world"}', "at": "2030-01-01T00:00:01Z", "target": target}
    response = client.post("/schedules", json=body | fields)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def runs_of(client: FlaskClient, job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/schedules/{job_id}/runs").get_json())


def test_sqs_delivery_carries_the_run(
    client: FlaskClient, app: Flask, clock: ManualClock, sqs_via_proxy: SqsTarget,
    sqs_client: Any, sqs_queue: str,
) -> None:  # fmt: skip
    job = create(client, {"type": "sqs", "queueUrl": sqs_queue})
    clock.advance(1)
    dispatcher_for(app, sqs=sqs_via_proxy).fire_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivered" and run["attempts"] == 1
    (message,) = receive_all(sqs_client, sqs_queue, 1)
    assert message["Body"] == '{"hello": "world"}'
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "runId": run["runId"],
        "jobId": job["jobId"],
        "scheduledFor": "2030-01-01T00:00:01Z",
    }


def test_sqs_outage_retries_and_loses_nothing(
    client: FlaskClient, app: Flask, clock: ManualClock, sqs_via_proxy: SqsTarget,
    sqs_proxy: TcpProxy, sqs_client: Any, sqs_queue: str,
) -> None:  # fmt: skip
    target = {"type": "sqs", "queueUrl": sqs_queue}
    jobs = [{"payload": f"m{i}", "at": "2030-01-01T00:00:01Z", "target": target} for i in range(30)]
    client.post("/schedules:batch", json={"jobs": jobs})
    dispatcher = dispatcher_for(app, sqs=sqs_via_proxy)
    sqs_proxy.disable()
    clock.advance(1)
    dispatcher.fire_due()
    for _ in range(3):  # still down: every attempt fails and is rescheduled
        clock.advance(400)
        dispatcher.deliver_due()
    runs = client.get("/runs?status=retrying").get_json()
    assert len(runs) == 30 and {r["attempts"] for r in runs} == {4}
    assert all("unreachable" in r["lastError"] for r in runs)

    sqs_proxy.enable()
    clock.advance(400)
    assert dispatcher.deliver_due() == 30
    assert len(client.get("/runs?status=delivered").get_json()) == 30
    bodies = sorted(m["Body"] for m in receive_all(sqs_client, sqs_queue, 30))
    assert bodies == sorted(f"m{i}" for i in range(30))


def test_webhook_retries_with_the_same_id_then_delivers(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: WebhookTarget,
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/hook", Response(503, {"Retry-After": "7"}), Response(200, body=b"ok"))
    job = create(client, {"type": "webhook", "url": http_target.url + "/hook"})
    dispatcher = dispatcher_for(app, webhook=webhooks)
    clock.advance(1)
    dispatcher.fire_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "retrying" and run["responseStatus"] == 503
    assert run["nextAttemptAt"] == "2030-01-01T00:00:08Z"  # Retry-After: 7 beats the backoff
    clock.advance(300)
    dispatcher.deliver_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivered" and run["attempts"] == 2
    assert run["responseStatus"] == 200 and run["responseBody"] == "ok"
    ids = {r.headers["webhook-id"] for r in http_target.requests_to("/hook")}
    assert ids == {run["runId"]}


def test_webhook_gone_disables_the_job(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: WebhookTarget,
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/gone", Response(410))
    target = {"type": "webhook", "url": http_target.url + "/gone"}
    job = create(client, target, recurring="interval", interval=60)
    clock.advance(1)
    dispatcher_for(app, webhook=webhooks).fire_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "dead"
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    assert after["status"] == "paused" and after["nextRunAt"] is None


def test_dead_run_is_retried_from_the_api(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: WebhookTarget,
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/flaky", Response(500), Response(500), Response(200))
    target = {"type": "webhook", "url": http_target.url + "/flaky"}
    job = create(client, target, retry={"attempts": 2, "backoff": 1.0})
    dispatcher = dispatcher_for(app, webhook=webhooks)
    clock.advance(1)
    dispatcher.fire_due()
    clock.advance(10)
    dispatcher.deliver_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "dead" and run["attempts"] == 2
    assert client.get("/runs?status=dead").get_json()[0]["runId"] == run["runId"]

    retried = client.post(f"/runs/{run['runId']}/retry")
    assert retried.status_code == 202
    assert client.post(f"/runs/{run['runId']}/retry").status_code == 409  # not dead now
    dispatcher.deliver_due()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivered"


class CrashBeforeRecording(Dispatcher):
    """A dispatcher that dies after handing runs to the target, before recording them."""

    def _record(self, leased: Any, outcomes: list[Outcome]) -> None:
        raise SystemExit("crash")


def test_crash_after_delivery_means_one_redelivery_with_the_same_id(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: WebhookTarget,
    http_target: HttpTarget,
) -> None:  # fmt: skip
    job = create(client, {"type": "webhook", "url": http_target.url + "/once"})
    first = dispatcher_for(app, webhook=webhooks)
    crashing = CrashBeforeRecording(first.engine, clock, first.targets, first.settings)
    clock.advance(1)
    with pytest.raises(SystemExit):
        crashing.fire_due()
    assert len(http_target.requests_to("/once")) == 1
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivering"  # in flight as far as the database knows

    survivor = dispatcher_for(app, webhook=webhooks)
    assert survivor.deliver_due() == 0  # the lease still holds
    clock.advance(app.config["DELIVERY_LEASE"] + 1)
    assert survivor.deliver_due() == 1
    requests = http_target.requests_to("/once")
    assert len(requests) == 2
    assert {r.headers["webhook-id"] for r in requests} == {run["runId"]}
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivered"


def test_a_slow_webhook_does_not_hold_up_firing(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: WebhookTarget,
    http_target: HttpTarget,
) -> None:  # fmt: skip
    """In the scheduler process, deliveries run beside the firing."""
    http_target.respond("/slow", Response(200, delay=60.0))
    slow = create(client, {"type": "webhook", "url": http_target.url + "/slow"})
    quick = create(client, {"type": "queue", "name": "default"}, at="2030-01-01T00:00:02Z")
    with app.app_context():
        dispatcher = build_dispatcher(app, {"webhook": webhooks}, background_delivery=True)
    clock.advance(1)
    assert dispatcher.fire_due() == 1  # hands the webhook run to a delivery thread
    assert runs_of(client, slow["jobId"])[0]["status"] == "delivering"  # still in flight
    clock.advance(1)
    assert dispatcher.fire_due() == 1  # the next job fires while the webhook waits
    assert runs_of(client, quick["jobId"])[0]["status"] == "delivered"
    http_target.stopping.set()  # the endpoint hangs up instead of answering
    dispatcher.finish_deliveries(timeout=30)
    assert runs_of(client, slow["jobId"])[0]["status"] == "retrying"  # recorded, to retry
