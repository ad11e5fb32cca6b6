"""SqsTarget against moto in server mode, through real boto3 SendMessageBatch calls."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from app.targets import sqs
from app.targets.base import Delivery, Outcome
from app.targets.sqs import SqsTarget, default_client_factory
from tests.support.sqs_server import TcpProxy, receive_all

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
NO_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 1}}


def delivery(
    queue_url: str, payload: str = "hello", job_id: str | None = None, **target: Any
) -> Delivery:
    return Delivery(
        run_id=str(uuid.uuid4()),
        job_id=job_id or str(uuid.uuid4()),
        scheduled_for=WHEN,
        payload=payload,
        target={"type": "sqs", "queueUrl": queue_url, "region": "us-east-1", **target},
        attempt=1,
    )


@pytest.fixture
def target(sqs_client: Any) -> Iterator[SqsTarget]:
    with SqsTarget(lambda region: sqs_client) as t:
        yield t


def count_batch_calls(client: Any) -> list[int]:
    """Entries per SendMessageBatch call made by `client`, in call order."""
    calls: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Entries"]))

    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    return calls


def test_message_carries_payload_and_attributes(
    target: SqsTarget, sqs_client: Any, sqs_queue: str
) -> None:
    d = delivery(sqs_queue, payload='{"drink": "water"}')

    [outcome] = target.send([d])

    assert outcome.ok and outcome.run_id == d.run_id and outcome.extra["messageId"]
    [message] = receive_all(sqs_client, sqs_queue, 1)
    assert message["Body"] == '{"drink": "water"}'
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "runId": d.run_id,
        "jobId": d.job_id,
        "scheduledFor": "2030-01-02T03:04:05Z",
    }
    assert {v["DataType"] for v in message["MessageAttributes"].values()} == {"String"}


def test_fifo_uses_job_as_group_and_run_as_dedup_id(
    target: SqsTarget, sqs_client: Any, sqs_fifo_queue: str
) -> None:
    job = str(uuid.uuid4())
    batch = [delivery(sqs_fifo_queue, payload=str(i), job_id=job) for i in range(15)]

    outcomes = target.send(batch)

    assert all(o.ok for o in outcomes)
    messages = receive_all(sqs_client, sqs_fifo_queue, 15)
    assert [m["Body"] for m in messages] == [str(i) for i in range(15)]  # order kept
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {job}
    assert [m["Attributes"]["MessageDeduplicationId"] for m in messages] == [
        d.run_id for d in batch
    ]


def test_25_deliveries_make_3_batch_calls(
    target: SqsTarget, sqs_client: Any, sqs_queue: str
) -> None:
    calls = count_batch_calls(sqs_client)
    batch = [delivery(sqs_queue, payload=f"m{i}") for i in range(25)]

    outcomes = target.send(batch)

    assert sorted(calls) == [5, 10, 10]
    assert [o.run_id for o in outcomes] == [d.run_id for d in batch]  # one each, in order
    assert all(o.ok for o in outcomes)
    received = receive_all(sqs_client, sqs_queue, 25)
    assert sorted(m["Body"] for m in received) == sorted(f"m{i}" for i in range(25))


def test_batches_stay_under_the_size_limit(
    target: SqsTarget, sqs_client: Any, sqs_queue: str
) -> None:
    calls = count_batch_calls(sqs_client)
    big = "x" * 100_000  # three of these exceed 256 KiB together

    outcomes = target.send([delivery(sqs_queue, payload=big) for _ in range(5)])

    assert all(o.ok for o in outcomes)
    assert sorted(calls) == [1, 2, 2]


def test_groups_by_queue(
    target: SqsTarget, sqs_client: Any, sqs_queue: str, sqs_fifo_queue: str
) -> None:
    batch = [delivery(sqs_queue if i % 2 else sqs_fifo_queue, payload=str(i)) for i in range(6)]

    outcomes = target.send(batch)

    assert all(o.ok for o in outcomes)
    assert sorted(m["Body"] for m in receive_all(sqs_client, sqs_queue, 3)) == ["1", "3", "5"]
    assert sorted(m["Body"] for m in receive_all(sqs_client, sqs_fifo_queue, 3)) == ["0", "2", "4"]


def test_nonexistent_queue_is_permanent_and_spares_the_others(
    target: SqsTarget, sqs_queue: str, sqs_endpoint: str
) -> None:
    missing = f"{sqs_endpoint}/123456789012/no-such-queue-{uuid.uuid4().hex[:8]}"
    good, bad = delivery(sqs_queue), delivery(missing)

    ok, failed = target.send([good, bad])

    assert ok.ok
    assert not failed.ok and failed.permanent
    assert "NonExistentQueue" in (failed.error or "")


def test_missing_queue_url_is_permanent_without_a_call(sqs_client: Any) -> None:
    calls = count_batch_calls(sqs_client)
    d = Delivery("r", "j", WHEN, "p", {"type": "sqs"}, 1)

    with SqsTarget(lambda region: sqs_client) as target:
        [outcome] = target.send([d])

    assert outcome.permanent and not outcome.ok and calls == []


def test_unreachable_endpoint_retries_then_delivers_everything_once(
    sqs_proxy: TcpProxy, sqs_client_factory: Any, sqs_client: Any, sqs_queue: str
) -> None:
    """SQS unreachable for a while: runs retry, none lost, all delivered once it is back."""
    via_proxy = sqs_client_factory(sqs_proxy.url, connect_timeout=1, **NO_RETRIES)
    batch = [delivery(sqs_queue, payload=f"m{i}") for i in range(25)]
    with SqsTarget(lambda region: via_proxy) as target:
        sqs_proxy.disable()
        down = target.send(batch)
        assert [o.run_id for o in down] == [d.run_id for d in batch]
        assert all(not o.ok and not o.permanent for o in down)
        assert all("unreachable" in (o.error or "") for o in down)

        sqs_proxy.enable()
        up = target.send(batch)  # the dispatcher's retry

    assert all(o.ok for o in up)
    received = receive_all(sqs_client, sqs_queue, 26)
    assert sorted(m["MessageAttributes"]["runId"]["StringValue"] for m in received) == sorted(
        d.run_id for d in batch
    )


def test_default_client_factory_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, sqs_endpoint: str, sqs_client: Any, sqs_queue: str
) -> None:
    monkeypatch.setattr(sqs, "_clients", {})
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    d = delivery(sqs_queue, region=None)  # no region: boto3's default applies

    try:
        assert default_client_factory(None) is default_client_factory(None)  # cached
        with SqsTarget() as target:
            [outcome] = target.send([d])
    finally:
        for client in sqs._clients.values():
            client.close()

    assert outcome.ok, outcome.error
    assert len(receive_all(sqs_client, sqs_queue, 1)) == 1


# --- result mapping, with a stub client (exact control over what SQS answers) -----------------


class StubClient:
    def __init__(self, answer: Any = None, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.calls: list[list[dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        with self._lock:
            self.calls.append(Entries)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if isinstance(self.answer, Exception):
                raise self.answer
            if callable(self.answer):
                return self.answer(Entries)
            return {"Successful": [{"Id": e["Id"], "MessageId": "m"} for e in Entries]}
        finally:
            with self._lock:
                self.in_flight -= 1


def deliver_with(client: StubClient, batch: list[Delivery]) -> list[Outcome]:
    with SqsTarget(lambda region: client) as target:
        return target.send(batch)


def test_per_entry_failures_follow_sender_fault() -> None:
    def answer(entries: list[dict[str, Any]]) -> Any:
        return {
            "Successful": [{"Id": "0", "MessageId": "m0"}],
            "Failed": [
                {
                    "Id": "1",
                    "SenderFault": True,
                    "Code": "InvalidMessageContents",
                    "Message": "bad",
                },
                {"Id": "2", "SenderFault": False, "Code": "InternalError", "Message": "oops"},
            ],
        }  # and no word about entry 3

    outcomes = deliver_with(StubClient(answer), [delivery("https://q/1") for _ in range(4)])

    assert [(o.ok, o.permanent) for o in outcomes] == [
        (True, False),
        (False, True),
        (False, False),
        (False, False),
    ]
    assert outcomes[1].error == "SQS InvalidMessageContents: bad"


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (
            ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "SendMessageBatch"),
            True,
        ),
        (
            ClientError({"Error": {"Code": "InvalidParameterValue", "Message": "x"}}, "op"),
            True,
        ),
        (ClientError({"Error": {"Code": "ThrottlingException"}}, "SendMessageBatch"), False),
        (ClientError({"Error": {"Code": "InternalFailure"}}, "SendMessageBatch"), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), False),
        (NoCredentialsError(), False),
        (RuntimeError("boom"), False),
    ],
)
def test_whole_call_failures(error: Exception, permanent: bool) -> None:
    batch = [delivery("https://q/1") for _ in range(12)]

    outcomes = deliver_with(StubClient(error), batch)

    assert [o.run_id for o in outcomes] == [d.run_id for d in batch]
    assert all(not o.ok and o.permanent is permanent and o.error for o in outcomes)


def test_an_unreachable_endpoint_says_so_for_the_origin_back_off() -> None:
    client = StubClient(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))

    outcomes = deliver_with(client, [delivery("https://q/1") for _ in range(3)])

    assert all(o.unreachable and not o.permanent for o in outcomes)
    assert all("unreachable" in (o.error or "") for o in outcomes)
    [throttled] = deliver_with(StubClient(ClientError({"Error": {"Code": "Throttling"}}, "op")),
                               [delivery("https://q/1")])  # fmt: skip
    assert not throttled.unreachable  # the endpoint answered


def test_origin_is_the_endpoint_and_a_fifo_queue_goes_one_call_at_a_time() -> None:
    with SqsTarget(lambda region: None) as target:
        standard = delivery("https://sqs.eu-west-1.amazonaws.com/1/a", region="eu-west-1").target
        fifo = delivery("https://sqs.eu-west-1.amazonaws.com/1/a.fifo", region="eu-west-1").target
        assert target.origin(standard) == "sqs:eu-west-1:https://sqs.eu-west-1.amazonaws.com"
        assert target.max_in_flight(standard) is None
        assert target.origin(fifo).endswith("/1/a.fifo") and target.max_in_flight(fifo) == 1


def test_error_text_never_echoes_signature_details() -> None:
    leaky = "The request signature ... AKIAEXAMPLE secret=abc123"
    error = ClientError({"Error": {"Code": "SignatureDoesNotMatch", "Message": leaky}}, "op")

    [outcome] = deliver_with(StubClient(error), [delivery("https://q/1")])

    assert outcome.error == "SQS SignatureDoesNotMatch"


def test_fifo_batches_go_in_sequence() -> None:
    client = StubClient(delay=0.01)

    outcomes = deliver_with(
        client, [delivery("https://q/1.fifo", payload=str(i)) for i in range(30)]
    )

    assert all(o.ok for o in outcomes)
    assert client.max_in_flight == 1
    assert [e["MessageBody"] for call in client.calls for e in call] == [str(i) for i in range(30)]


def test_rfc3339() -> None:
    assert sqs.rfc3339(datetime(2030, 1, 1, tzinfo=UTC)) == "2030-01-01T00:00:00Z"
    assert sqs.rfc3339(datetime(2030, 1, 1, 0, 0, 0, 5000, tzinfo=UTC)) == (
        "2030-01-01T00:00:00.005000Z"
    )
