"""retry.maxAge: a run not delivered within maxAge seconds of its fire is not tried again.

The policy's rule alone, then the dispatcher with the manual clock and a webhook that always
fails: the run is retried while its next attempt falls within its max age, and dead after.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.retry import DEFAULT_RETRY, RetryPolicy
from app.scheduler.dispatcher import Dispatcher
from app.targets.webhook import WebhookTarget
from tests.support.http_target import HttpTarget, Response


def test_the_policy_gives_up_past_its_max_age() -> None:
    policy = RetryPolicy.of({"attempts": 10, "maxAge": 60})
    assert policy.max_age == 60.0
    assert not policy.gives_up(1, age=59.5)
    assert not policy.gives_up(1, age=60)  # at its max age, still tried
    assert policy.gives_up(1, age=60.5)
    assert policy.gives_up(10, age=0)  # the last attempt, whatever its age


def test_no_max_age_means_no_age_limit() -> None:
    assert DEFAULT_RETRY.max_age is None
    assert not DEFAULT_RETRY.gives_up(1, age=10**9)
    assert "maxAge" not in DEFAULT_RETRY.as_spec()  # answers unchanged for jobs without it


def test_max_age_is_taken_from_the_defaults_and_kept_in_the_spec() -> None:
    defaults = RetryPolicy.of({"maxAge": 600})
    policy = RetryPolicy.of({"attempts": 3}, defaults)
    assert policy.max_age == 600.0
    assert policy.as_spec() == {"attempts": 3, "backoff": 2.0, "maxBackoff": 300.0, "maxAge": 600.0}
    assert RetryPolicy.of(policy.as_spec()) == policy


@pytest.mark.parametrize("attempt", [1, 2, 3, 8])
def test_the_delay_is_unchanged_by_max_age(attempt: int) -> None:
    with_age = RetryPolicy.of({"maxAge": 60})
    assert with_age.delay(attempt, None, random.Random(7)) == DEFAULT_RETRY.delay(
        attempt, None, random.Random(7)
    )


def create(client: FlaskClient, url: str, retry: dict[str, Any]) -> str:
    body = {
        "payload": "p",
        "at": "2030-01-01T00:00:01Z",
        "target": {"type": "webhook", "url": url},
        "retry": retry,
    }
    response = client.post("/schedules", json=body)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["jobId"])


def run_of(client: FlaskClient, job_id: str) -> dict[str, Any]:
    (run,) = client.get(f"/schedules/{job_id}/runs").get_json()
    return dict(run)


def test_a_run_dies_when_its_next_retry_would_be_past_its_max_age(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/fail", Response(500))
    # Backoff 20 s: retries 10-20 s, then 20-40 s, then 40-80 s after each failure (the clock
    # moves up to a second more: answers show times to the second). With maxAge 65 the second
    # retry still falls within 65 s of the fire (at most 21 + 40 s); the third cannot (at
    # least 10 + 20 + 40 s).
    aged = create(client, http_target.url + "/fail", {"attempts": 10, "backoff": 20, "maxAge": 65})
    ageless = create(client, http_target.url + "/fail", {"attempts": 10, "backoff": 20})
    dispatcher = make_dispatcher({"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])})
    clock.advance(1)
    dispatcher.step()
    for attempts in (1, 2):
        for job_id in (aged, ageless):
            run = run_of(client, job_id)
            assert (run["status"], run["attempts"]) == ("retrying", attempts), run
        next_at = max(
            datetime.fromisoformat(run_of(client, job_id)["nextAttemptAt"])
            for job_id in (aged, ageless)
        )
        clock.advance((next_at - clock.now()).total_seconds() + 1)
        dispatcher.deliver_due()
    dead = run_of(client, aged)
    assert (dead["status"], dead["attempts"]) == ("dead", 3)
    assert dead["nextAttemptAt"] is None
    assert "older than its max age (65 s)" in dead["lastError"]
    assert "500" in dead["lastError"]  # the failure itself is still named
    still = run_of(client, ageless)
    assert (still["status"], still["attempts"]) == ("retrying", 3)
    assert len(http_target.requests_to("/fail")) == 6


def test_a_retry_due_after_downtime_past_its_max_age_is_not_tried(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/fail", Response(500))
    job_id = create(client, http_target.url + "/fail", {"attempts": 10, "maxAge": 60})
    dispatcher = make_dispatcher({"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])})
    clock.advance(1)
    dispatcher.step()
    assert run_of(client, job_id)["status"] == "retrying"  # due within a few seconds
    clock.advance(3600)  # the dispatcher was away for an hour
    dispatcher.deliver_due()
    run = run_of(client, job_id)
    assert (run["status"], run["attempts"]) == ("dead", 2)
    assert run["lastError"].startswith("not retried: older than its max age (60 s); ")
    assert "500" in run["lastError"]  # the failure before is kept
    assert len(http_target.requests_to("/fail")) == 1  # not tried again


def test_a_dead_run_retried_by_hand_gets_one_attempt_past_its_max_age(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/fail", Response(500))
    job_id = create(client, http_target.url + "/fail", {"attempts": 1, "maxAge": 60})
    dispatcher = make_dispatcher({"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])})
    clock.advance(1)
    dispatcher.step()
    run = run_of(client, job_id)
    assert run["status"] == "dead"
    clock.advance(3600)
    assert client.post(f"/runs/{run['runId']}/retry").status_code == 202
    dispatcher.deliver_due()
    run = run_of(client, job_id)
    assert (run["status"], run["attempts"]) == ("dead", 1)
    assert "older than its max age" in run["lastError"]
    assert len(http_target.requests_to("/fail")) == 2  # the attempt asked for was made
