"""The API fields the form shows that came late: an SQS FIFO queue's message group, retry
maxAge, and a webhook's signing secrets (made when absent, shown once, rotated, dropped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher
from app.targets.signing import sign
from app.targets.sqs import SqsTarget
from app.targets.webhook import WebhookTarget
from tests.support.http_target import HttpTarget
from tests.support.sqs_server import receive_all

FIFO_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"


def post(client: FlaskClient, **fields: Any) -> Any:
    body = {"payload": "p", "at": "2030-01-01T00:00:01Z"} | fields
    return client.post("/schedules", json=body)


def created(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    response = post(client, **fields)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def fields_at_fault(response: Any) -> list[str]:
    assert response.status_code == 422, response.get_json()
    return [error["field"] for error in response.get_json()["errors"]]


# SQS: the FIFO message group


def test_a_fifo_target_keeps_its_message_group(client: FlaskClient) -> None:
    target = {"type": "sqs", "queueUrl": FIFO_URL, "region": "eu-west-1", "messageGroupId": "o-1"}
    job = created(client, target=target)
    assert job["target"] == target
    assert client.get(f"/schedules/{job['jobId']}").get_json()["target"] == target


@pytest.mark.parametrize(
    ("url", "group", "words"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/1/plain", "g", "FIFO"),
        (FIFO_URL, "", "1-128"),
        (FIFO_URL, "x" * 129, "1-128"),
        (FIFO_URL, "with space", "1-128"),
        (FIFO_URL, "ünïcode", "1-128"),
    ],
)
def test_a_message_group_is_refused_naming_the_field(
    client: FlaskClient, url: str, group: str, words: str
) -> None:
    response = post(client, target={"type": "sqs", "queueUrl": url, "messageGroupId": group})
    assert fields_at_fault(response) == ["target.sqs.messageGroupId"]  # as target.sqs.queueUrl
    assert words in response.get_json()["errors"][0]["message"]


def test_every_character_sqs_allows_in_a_group(client: FlaskClient) -> None:
    group = "aZ09" + "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum())
    job = created(client, target={"type": "sqs", "queueUrl": FIFO_URL, "messageGroupId": group})
    assert job["target"]["messageGroupId"] == group


@pytest.fixture
def sqs(sqs_client: Any) -> Iterator[SqsTarget]:
    with SqsTarget(lambda region: sqs_client) as target:
        yield target


def test_a_fifo_message_goes_out_in_the_jobs_group(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    sqs: SqsTarget, sqs_client: Any, sqs_fifo_queue: str,
) -> None:  # fmt: skip
    grouped = created(
        client, target={"type": "sqs", "queueUrl": sqs_fifo_queue, "messageGroupId": "tenant-7"}
    )
    plain = created(client, target={"type": "sqs", "queueUrl": sqs_fifo_queue}, payload="q")
    clock.advance(1)
    make_dispatcher({"sqs": sqs}).step()
    messages = receive_all(sqs_client, sqs_fifo_queue, 2)
    groups = {m["Body"]: m["Attributes"]["MessageGroupId"] for m in messages}
    assert groups == {"p": "tenant-7", "q": plain["jobId"]}  # no group given: the job id
    assert grouped["jobId"] not in groups.values()


# Retry: maxAge


def test_retry_max_age_is_kept_and_shown(client: FlaskClient) -> None:
    job = created(client, retry={"attempts": 4, "maxAge": 3600})
    assert job["retry"] == {"attempts": 4, "backoff": 2.0, "maxBackoff": 300.0, "maxAge": 3600.0}


def test_without_max_age_the_retry_answer_is_as_before(client: FlaskClient) -> None:
    assert created(client)["retry"] == {"attempts": 5, "backoff": 2.0, "maxBackoff": 300.0}


@pytest.mark.parametrize("age", [59, 86401, "3600", True, -1])
def test_a_max_age_out_of_range_is_refused(client: FlaskClient, age: Any) -> None:
    assert fields_at_fault(post(client, retry={"maxAge": age})) == ["retry.maxAge"]


def test_the_document_describes_the_new_fields(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    age = schemas["RetryIn"]["properties"]["maxAge"]
    assert {"minimum": 60, "maximum": 86400}.items() <= next(
        option for option in age["anyOf"] if option.get("type") == "number"
    ).items()
    group = schemas["SqsTarget"]["properties"]["messageGroupId"]
    assert group["pattern"] == "^[!-~]{1,128}$"
    paths = document["paths"]
    for action in ("rotate-secret", "drop-old-secrets"):
        operation = paths[f"/schedules/{{jobId}}/{action}"]["post"]
        assert {"200", "404", "409"} <= set(operation["responses"])


# Webhook signing secrets


def webhook(client: FlaskClient, **target: Any) -> dict[str, Any]:
    return created(client, target={"type": "webhook", "url": "http://127.0.0.1:9/h"} | target)


def test_a_webhook_gets_a_secret_shown_only_in_the_create_answer(client: FlaskClient) -> None:
    job = webhook(client)
    secret = job["target"]["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in client.get(f"/schedules/{job['jobId']}").get_json()["target"]
    listed = [j for j in client.get("/schedules").get_json() if j["jobId"] == job["jobId"]]
    assert "secret" not in listed[0]["target"]


def test_rotating_puts_a_new_secret_first_and_keeps_the_old_one(client: FlaskClient) -> None:
    job = webhook(client)
    old = job["target"]["secret"]
    response = client.post(f"/schedules/{job['jobId']}/rotate-secret")
    assert response.status_code == 200
    secrets = response.get_json()["target"]["secret"]
    assert len(secrets) == 2 and secrets[1] == old and secrets[0].startswith("whsec_")
    assert secrets[0] != old
    assert "secret" not in client.get(f"/schedules/{job['jobId']}").get_json()["target"]
    # A PUT without a secret (as a GET gives it) keeps both.
    again = client.get(f"/schedules/{job['jobId']}").get_json()
    assert client.put(f"/schedules/{job['jobId']}", json=again).status_code == 200
    rotated = client.post(f"/schedules/{job['jobId']}/rotate-secret").get_json()
    assert rotated["target"]["secret"][1:] == secrets


def test_dropping_old_secrets_keeps_only_the_newest(client: FlaskClient) -> None:
    job = webhook(client)
    newest = client.post(f"/schedules/{job['jobId']}/rotate-secret").get_json()["target"]
    response = client.post(f"/schedules/{job['jobId']}/drop-old-secrets")
    assert response.status_code == 200
    assert "secret" not in response.get_json()["target"]
    rotated = client.post(f"/schedules/{job['jobId']}/rotate-secret").get_json()
    assert rotated["target"]["secret"] == [rotated["target"]["secret"][0], newest["secret"][0]]


def test_rotation_holds_at_most_ten_secrets(client: FlaskClient) -> None:
    job = webhook(client)
    seen = [job["target"]["secret"]]
    for _ in range(12):
        answer = client.post(f"/schedules/{job['jobId']}/rotate-secret").get_json()
        seen.insert(0, answer["target"]["secret"][0])
    assert answer["target"]["secret"] == seen[:10]  # the oldest went


def test_rotating_needs_a_webhook_job(client: FlaskClient) -> None:
    job = created(client)
    for action in ("rotate-secret", "drop-old-secrets"):
        response = client.post(f"/schedules/{job['jobId']}/{action}")
        assert response.status_code == 409
        assert "webhook" in response.get_json()["detail"]
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.post(f"/schedules/{missing}/rotate-secret").status_code == 404


def test_rotation_is_audited(client: FlaskClient) -> None:
    job = webhook(client)
    client.post(f"/schedules/{job['jobId']}/rotate-secret")
    client.post(f"/schedules/{job['jobId']}/drop-old-secrets")
    entries = client.get(f"/audit?jobId={job['jobId']}").get_json()
    details = [entry["detail"] for entry in entries if entry["action"] == "update"]
    assert details == ["old signing secrets dropped", "signing secret rotated"]
    assert not any("whsec_" in str(entry) for entry in entries)


def test_during_a_rotation_each_delivery_is_signed_with_every_secret(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    job = created(client, target={"type": "webhook", "url": http_target.url + "/signed"})
    secrets = client.post(f"/schedules/{job['jobId']}/rotate-secret").get_json()["target"]["secret"]
    clock.advance(1)
    make_dispatcher({"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])}).step()
    (request,) = http_target.requests_to("/signed")
    stamp = int(request.headers["webhook-timestamp"])
    run_id = request.headers["webhook-id"]
    expected = " ".join(sign(s, run_id, stamp, request.body) for s in secrets)
    assert request.headers["webhook-signature"] == expected
