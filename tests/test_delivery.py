"""Runs delivered by the dispatcher to real targets: SQS (moto server mode) and webhooks
(a local HTTP server), including outages, retries, dead runs and a crash mid-delivery."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import ManualClock
from app.database import db
from app.models import Run
from app.scheduler import retention
from app.scheduler.dispatcher import Dispatcher
from app.scheduler.lanes import AnswerRate
from app.scheduler.settings import DispatcherSettings
from app.targets.sqs import SqsTarget
from app.targets.webhook import WebhookTarget
from tests.support.http_target import HttpTarget, Response
from tests.support.sqs_server import TcpProxy, receive_all

NO_RETRIES = {"retries": {"max_attempts": 1, "mode": "standard"}}


Webhooks = Callable[[], WebhookTarget]


@pytest.fixture
def webhooks() -> Webhooks:
    """A new webhook target for each dispatcher (it lives on that dispatcher's event loop,
    which closes it)."""
    return lambda: WebhookTarget(allow_networks=["127.0.0.0/8"])


@pytest.fixture
def sqs_via_proxy(sqs_proxy: TcpProxy, sqs_client_factory: Any) -> Iterator[SqsTarget]:
    client = sqs_client_factory(sqs_proxy.url, connect_timeout=1, **NO_RETRIES)
    with SqsTarget(lambda region: client) as target:
        yield target


@pytest.fixture
def dispatcher_for(make_dispatcher: Callable[..., Dispatcher]) -> Callable[..., Dispatcher]:
    def make(**targets: Any) -> Dispatcher:
        return make_dispatcher(targets)

    return make


def create(client: FlaskClient, target: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"payload": '{"hello": "world"}', "at": "2030-01-01T00:00:01Z", "target": target}
    response = client.post("/schedules", json=body | fields)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def one_call_origin(client: FlaskClient, http_target: HttpTarget, count: int, delay: float) -> None:
    """`count` jobs due at 00:00:01 to a slow endpoint taking one call at a time (so its
    share of held runs is 4, for a slow origin)."""
    http_target.respond("/slow", *[Response(200, delay=delay)] * count)
    target = {"type": "webhook", "url": http_target.url + "/slow", "maxInFlight": 1}
    jobs = [
        {"payload": str(i), "at": "2030-01-01T00:00:01Z", "target": target} for i in range(count)
    ]
    response = client.post("/schedules:batch", json={"jobs": jobs})
    assert response.status_code == 201, response.get_json()


def runs_of(client: FlaskClient, job_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/schedules/{job_id}/runs").get_json())


def test_sqs_delivery_carries_the_run(
    client: FlaskClient, app: Flask, clock: ManualClock, sqs_via_proxy: SqsTarget,
    sqs_client: Any, sqs_queue: str, dispatcher_for: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    job = create(client, {"type": "sqs", "queueUrl": sqs_queue})
    clock.advance(1)
    dispatcher_for(sqs=sqs_via_proxy).step()
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
    dispatcher_for: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    target = {"type": "sqs", "queueUrl": sqs_queue}
    jobs = [{"payload": f"m{i}", "at": "2030-01-01T00:00:01Z", "target": target} for i in range(30)]
    client.post("/schedules:batch", json={"jobs": jobs})
    dispatcher = dispatcher_for(sqs=sqs_via_proxy)
    sqs_proxy.disable()
    clock.advance(1)
    dispatcher.step()
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
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: Webhooks,
    dispatcher_for: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/hook", Response(503, {"Retry-After": "7"}), Response(200, body=b"ok"))
    job = create(client, {"type": "webhook", "url": http_target.url + "/hook"})
    dispatcher = dispatcher_for(webhook=webhooks())
    clock.advance(1)
    dispatcher.step()
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


def test_a_job_deleted_with_a_run_in_flight_goes_once_the_run_is_done(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: Webhooks,
    dispatcher_for: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    """Deleting a job never loses a run still to be delivered: the job is gone for callers
    at once and never fires again; its run is retried and delivered; then the retention
    task removes the job with its history."""
    http_target.respond("/hook", Response(503), Response(200, body=b"ok"))
    job = create(client, {"type": "webhook", "url": http_target.url + "/hook"},
                 recurring="interval", interval=60)  # fmt: skip
    dispatcher = dispatcher_for(webhook=webhooks())
    clock.advance(1)
    dispatcher.step()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "retrying"
    assert client.delete(f"/schedules/{job['jobId']}").status_code == 200
    assert client.get(f"/schedules/{job['jobId']}").status_code == 404
    assert client.get(f"/schedules/{job['jobId']}/runs").status_code == 404
    assert job["jobId"] not in {j["jobId"] for j in client.get("/schedules").get_json()}
    assert client.delete(f"/schedules/{job['jobId']}").status_code == 404  # deleted once
    clock.advance(300)
    assert dispatcher.fire_due() == 0  # its next occurrences are not fired
    assert dispatcher.deliver_due() == 1
    (after,) = client.get("/runs?status=delivered").get_json()
    assert (after["runId"], after["attempts"]) == (run["runId"], 2)
    assert [r.headers["webhook-id"] for r in http_target.requests_to("/hook")] == [run["runId"]] * 2
    with app.app_context():
        pruned = retention.prune_completed_jobs(db.engine, clock.now(), 30, 1000)
        assert pruned["jobs_deleted"] == 1
        assert db.session.scalar(select(func.count()).select_from(Run)) == 0  # with its run
    (entry, *_) = client.get(f"/audit?jobId={job['jobId']}").get_json()
    assert entry["action"] == "delete"  # the caller's delete; the removal is not a second one


def test_webhook_gone_disables_the_job(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: Webhooks,
    dispatcher_for: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/gone", Response(410))
    target = {"type": "webhook", "url": http_target.url + "/gone"}
    job = create(client, target, recurring="interval", interval=60)
    clock.advance(1)
    dispatcher_for(webhook=webhooks()).step()
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "dead"
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    assert after["status"] == "paused" and after["nextRunAt"] is None


def test_dead_run_is_retried_from_the_api(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: Webhooks,
    dispatcher_for: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/flaky", Response(500), Response(500), Response(200))
    target = {"type": "webhook", "url": http_target.url + "/flaky"}
    job = create(client, target, retry={"attempts": 2, "backoff": 1.0})
    dispatcher = dispatcher_for(webhook=webhooks())
    clock.advance(1)
    dispatcher.step()
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


def test_crash_after_delivery_means_one_redelivery_with_the_same_id(
    client: FlaskClient, app: Flask, clock: ManualClock, webhooks: Webhooks,
    dispatcher_for: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    job = create(client, {"type": "webhook", "url": http_target.url + "/once"})
    crashing = dispatcher_for(webhook=webhooks())
    # It dies after the call, before recording: its outcome is never written (and its run
    # leaves its lanes, so neither its step nor its close waits for a write never coming).
    crashing.lanes.record = lambda pairs, written: written()
    clock.advance(1)
    crashing.step()
    assert len(http_target.requests_to("/once")) == 1
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivering"  # in flight as far as the database knows

    survivor = dispatcher_for(webhook=webhooks())
    assert survivor.deliver_due() == 0  # the lease still holds
    clock.advance(app.config["DELIVERY_LEASE"] + 1)
    assert survivor.deliver_due() == 1
    requests = http_target.requests_to("/once")
    assert len(requests) == 2
    assert {r.headers["webhook-id"] for r in requests} == {run["runId"]}
    (run,) = runs_of(client, job["jobId"])
    assert run["status"] == "delivered"


def test_a_slow_webhook_does_not_hold_up_firing(
    client: FlaskClient, clock: ManualClock, webhooks: Webhooks, http_target: HttpTarget,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    """In the scheduler process, deliveries run beside the firing."""
    http_target.respond("/slow", Response(200, delay=60.0))
    slow = create(client, {"type": "webhook", "url": http_target.url + "/slow"})
    quick = create(client, {"type": "queue", "name": "default"}, at="2030-01-01T00:00:02Z")
    dispatcher = make_dispatcher({"webhook": webhooks()}, background=True)
    clock.advance(1)
    assert dispatcher.fire_due() == 1  # a pending run: firing never calls a target
    assert dispatcher.deliver_due() == 1  # handed to the lanes, and back at once
    assert runs_of(client, slow["jobId"])[0]["status"] == "delivering"  # still in flight
    clock.advance(1)
    assert dispatcher.fire_due() == 1  # the next job fires while the webhook waits
    assert runs_of(client, quick["jobId"])[0]["status"] == "delivered"
    http_target.stopping.set()  # the endpoint hangs up instead of answering
    dispatcher.settle(timeout=30)
    assert runs_of(client, slow["jobId"])[0]["status"] == "retrying"  # recorded, to retry


def attempts_at(client: FlaskClient, job_id: str) -> dict[str, Any]:
    (run,) = runs_of(client, job_id)
    return run


def test_a_jobs_own_retry_policy_holds_from_the_first_failure(
    client: FlaskClient, clock: ManualClock, dispatcher_for: Callable[..., Dispatcher],
    webhooks: Webhooks, http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/once", Response(500))
    http_target.respond("/slow", Response(500))
    http_target.respond("/capped", Response(503, {"Retry-After": "86400"}))
    hook = {"type": "webhook", "url": http_target.url}
    once = create(client, hook | {"url": hook["url"] + "/once"}, retry={"attempts": 1})
    slow = create(client, hook | {"url": hook["url"] + "/slow"}, retry={"backoff": 30.0})
    capped = create(client, hook | {"url": hook["url"] + "/capped"}, retry={"maxBackoff": 5.0})
    dispatcher = dispatcher_for(webhook=webhooks())
    clock.advance(1)
    dispatcher.step()
    assert attempts_at(client, once["jobId"])["status"] == "dead"  # one attempt means one
    retry_at = datetime.fromisoformat(attempts_at(client, slow["jobId"])["nextAttemptAt"])
    failed_at = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert 15 <= (retry_at - failed_at).total_seconds() <= 30  # backoff 30: 15-30 s after
    assert attempts_at(client, capped["jobId"])["nextAttemptAt"] == "2030-01-01T00:00:06Z"
    assert client.get(f"/schedules/{slow['jobId']}").get_json()["retry"] == {
        "attempts": 5, "backoff": 30.0, "maxBackoff": 300.0,
    }  # fmt: skip


def test_a_410_pauses_the_job_audited_and_it_fires_no_more(
    client: FlaskClient, clock: ManualClock, dispatcher_for: Callable[..., Dispatcher],
    webhooks: Webhooks, http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/gone", Response(410))
    target = {"type": "webhook", "url": http_target.url + "/gone"}
    job = create(client, target, recurring="interval", interval=1)
    dispatcher = dispatcher_for(webhook=webhooks())
    clock.advance(1)
    dispatcher.step()
    entries = client.get(f"/audit?jobId={job['jobId']}").get_json()
    assert (entries[0]["actor"], entries[0]["action"]) == ("dispatcher", "pause")
    assert "410" in entries[0]["detail"]
    for _ in range(3):
        clock.advance(1)
        assert dispatcher.step() == 0
    assert len(http_target.requests_to("/gone")) == 1


def test_an_unreachable_origin_is_backed_off_as_a_whole(
    client: FlaskClient, clock: ManualClock, dispatcher_for: Callable[..., Dispatcher],
    webhooks: Webhooks,
) -> None:  # fmt: skip
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    target = {"type": "webhook", "url": url, "maxInFlight": 1}
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:01Z", "target": target} for i in range(5)]
    client.post("/schedules:batch", json={"jobs": jobs})
    dispatcher = dispatcher_for(webhook=webhooks())
    clock.advance(1)
    dispatcher.step()
    errors = sorted(r["lastError"] for r in client.get("/runs?status=retrying").get_json())
    # Four held for the origin (4 x its maxInFlight of 1); the fifth waits in the database.
    assert len(errors) == 4 and len(client.get("/runs?status=pending").get_json()) == 1
    assert errors[0] == "connection to 127.0.0.1 failed: Connection refused"
    # One call found the origin down; the three behind it were not even tried.
    assert sum("could not be reached; not tried again before" in e for e in errors) == 3


def test_a_full_origins_backlog_waits_untouched_until_half_is_worked_off(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    webhooks: Webhooks, http_target: HttpTarget,
) -> None:  # fmt: skip
    """Claims pass over the runs of an origin that has its share held: no write per look,
    no busy loop; the loop claims again once the origin is down to half its share."""
    one_call_origin(client, http_target, 10, delay=0.5)
    dispatcher = make_dispatcher({"webhook": webhooks()}, background=True)
    clock.advance(1)
    dispatcher.fire_due()
    assert dispatcher.deliver_due() == 10  # 4 held (4 x maxInFlight), 6 left as they were
    pending = client.get("/runs?status=pending").get_json()
    assert len(pending) == 6
    assert {r["nextAttemptAt"] for r in pending} == {"2030-01-01T00:00:01Z"}  # not put back
    assert dispatcher.deliver_due() == 0  # passed over, not claimed and written again
    assert dispatcher.seconds_until_delivery() is None  # so the loop sleeps until woken
    assert not dispatcher.delivering.room_freed()
    dispatcher.settle(timeout=10)
    assert dispatcher.delivering.room_freed()  # what wakes the loop
    assert dispatcher.seconds_until_delivery() == 0
    assert dispatcher.deliver_due() == 6
    dispatcher.settle(timeout=10)
    assert len(client.get("/runs?status=delivered").get_json()) == 8
    assert len(http_target.requests_to("/slow")) == 8


def test_a_slow_run_does_not_hold_its_neighbours_outcomes(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    webhooks: Webhooks, http_target: HttpTarget,
) -> None:  # fmt: skip
    """Each outcome is written when its own call ends, not when a chunk's slowest does."""
    http_target.respond("/slow", Response(200, delay=10.0))
    slow = {"type": "webhook", "url": http_target.url + "/slow", "timeout": 30.0}
    fast = {"type": "webhook", "url": http_target.url + "/fast"}
    jobs = [{"payload": "s", "at": "2030-01-01T00:00:01Z", "target": slow}]
    jobs += [{"payload": str(i), "at": "2030-01-01T00:00:01Z", "target": fast} for i in range(30)]
    client.post("/schedules:batch", json={"jobs": jobs})
    dispatcher = make_dispatcher({"webhook": webhooks()}, background=True)
    clock.advance(1)
    dispatcher.fire_due()
    started = time.monotonic()
    dispatcher.deliver_due()
    while len(client.get("/runs?status=delivered").get_json()) < 30:
        assert time.monotonic() - started < 3, "fast runs waited for the slow one"
        time.sleep(0.05)
    (in_flight,) = client.get("/runs?status=delivering").get_json()
    assert in_flight["jobId"] != "" and len(http_target.requests_to("/fast")) == 30
    # The slow run's own lease covers its 30 s timeout (plus the margin).
    assert in_flight["nextAttemptAt"] == "2030-01-01T00:01:01Z"
    http_target.stopping.set()


def test_a_peer_never_takes_over_a_run_whose_lease_is_renewed(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    webhooks: Webhooks, http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/slow", Response(200, delay=3.0))
    target = {"type": "webhook", "url": http_target.url + "/slow", "timeout": 30.0}
    create(client, target)
    holder = make_dispatcher({"webhook": webhooks()}, background=True)
    peer = make_dispatcher({"webhook": webhooks()})
    clock.advance(1)
    holder.step()
    for _ in range(4):  # 4 x 40 s: far beyond the first lease, renewed each time
        clock.advance(40)
        assert holder.renew_leases() == 1
        assert peer.deliver_due() == 0
    holder.settle(timeout=10)
    assert len(http_target.requests_to("/slow")) == 1
    assert client.get("/runs?status=delivered").get_json()[0]["attempts"] == 1


def test_a_peer_never_takes_over_a_run_whose_outcome_waits_to_be_written(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    webhooks: Webhooks, http_target: HttpTarget,
) -> None:  # fmt: skip
    """An answered run stays held, its lease renewed, until its outcome is written (a
    slow commit, or the database away): a peer claiming it would deliver it again."""
    http_target.respond("/hook", Response(204))
    create(client, {"type": "webhook", "url": http_target.url + "/hook"})
    holder = make_dispatcher({"webhook": webhooks()}, background=True)
    peer = make_dispatcher({"webhook": webhooks()})
    writing, commit = threading.Event(), threading.Event()
    write = holder.recorder.write

    def slow_write(pairs: Any) -> None:
        writing.set()
        commit.wait(30)
        write(pairs)

    holder.recorder.write = slow_write  # type: ignore[method-assign]
    clock.advance(1)
    holder.step()
    assert writing.wait(10), "the call was never answered"
    for _ in range(3):  # 3 x 40 s: far beyond the lease of the run that was answered
        clock.advance(40)
        assert holder.renew_leases() == 1
        assert peer.deliver_due() == 0
    commit.set()
    holder.settle(timeout=10)
    assert holder.lanes.held_count() == 0
    assert len(http_target.requests_to("/hook")) == 1
    (run,) = client.get("/runs?status=delivered").get_json()
    assert run["attempts"] == 1


def test_an_origins_share_of_held_runs_grows_with_its_answer_rate(app: Flask) -> None:
    """A slow origin holds a few rounds of its limit; a fast one, a second of its answers
    (its rounds last milliseconds, shorter than the claim that tops it up)."""
    settings = DispatcherSettings.from_config(app.config)
    rate = AnswerRate(now=0.0)
    for step in range(1, 11):  # 6,000 answers a second, counted every 0.1 s
        rate.add(600, now=step / 10)
    assert rate.per_second(now=1.0) == pytest.approx(6_000)
    assert settings.origin_held(250, rate.per_second(now=1.0)) == 6_000
    assert settings.origin_held(250, 100.0) == 1_000  # slow: four rounds of 250
    assert settings.origin_held(250, 1e9) == settings.max_held  # never above the whole
    assert rate.per_second(now=5.0) == 0.0  # it stopped answering: back to the rounds


def test_an_origin_let_in_again_is_topped_up_even_when_its_rate_dips(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    webhooks: Webhooks, http_target: HttpTarget, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """An origin full at a share its answer rate set is let in again at half that share;
    the claim then tops it up to that share, even if the rate measured has dipped since
    (a claim that read its runs and held none of them was a wasted transaction)."""
    one_call_origin(client, http_target, 30, delay=0.1)
    dispatcher = make_dispatcher({"webhook": webhooks()}, background=True)
    lanes = dispatcher.lanes
    monkeypatch.setattr(lanes, "answer_rate", lambda origin: 10.0)  # a share of 10 runs
    origin = f"http://127.0.0.1:{urlsplit(http_target.url).port}"
    clock.advance(1)
    dispatcher.fire_due()
    dispatcher.deliver_due()
    assert lanes.held_for(origin) == 10
    deadline = time.monotonic() + 10
    while not dispatcher.delivering.room_freed():  # worked down to half its share
        assert time.monotonic() < deadline
        time.sleep(0.02)
    monkeypatch.setattr(lanes, "answer_rate", lambda origin: 1.0)  # its floor share: 4
    held = lanes.held_for(origin)
    assert held <= 5
    dispatcher.deliver_due()
    assert lanes.held_for(origin) > held  # topped up towards 10, not left as it was
    dispatcher.settle(timeout=30)
    delivered = client.get("/runs?status=delivered").get_json()
    assert len(http_target.requests_to("/slow")) == len(delivered) >= 15


def test_an_origin_filled_to_its_share_exactly_is_passed_over_at_once(
    app: Flask, client: FlaskClient, clock: ManualClock,
    make_dispatcher: Callable[..., Dispatcher], webhooks: Webhooks, http_target: HttpTarget,
) -> None:  # fmt: skip
    """A claim that fills an origin's share to the last run marks it full: the next claim
    does not read (and, on PostgreSQL, lock) its runs only to hold none of them."""
    one_call_origin(client, http_target, 8, delay=0.2)
    app.config["DELIVERY_BATCH_SIZE"] = 4  # one claim: the origin's share of 4 runs
    dispatcher = make_dispatcher({"webhook": webhooks()}, background=True)
    clock.advance(1)
    dispatcher.fire_due()
    assert dispatcher.deliver_due() == 4
    assert dispatcher.deliver_due() == 0
    assert dispatcher.seconds_until_delivery() is None  # the loop sleeps until woken
    dispatcher.settle(timeout=10)
    assert len(http_target.requests_to("/slow")) == 4
