"""The SNS and EventBridge targets against moto in server mode, through real boto3 calls:
SNS delivering to a subscribed SQS queue, EventBridge through a rule to an SQS queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher
from app.targets.base import Delivery
from app.targets.eventbridge import EventBridgeTarget, resources
from app.targets.sns import SnsTarget
from tests.support.sqs_server import REGION, TcpProxy, receive_all

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
NO_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 1}}


def client_for(session: boto3.session.Session, service: str, endpoint: str, **config: Any) -> Any:
    from botocore.config import Config

    return session.client(
        service, endpoint_url=endpoint, config=Config(connect_timeout=1, **config)
    )


@pytest.fixture
def sns(sqs_endpoint: str, _boto_session: boto3.session.Session) -> Iterator[Any]:
    client = client_for(_boto_session, "sns", sqs_endpoint)
    yield client
    client.close()


@pytest.fixture
def events(sqs_endpoint: str, _boto_session: boto3.session.Session) -> Iterator[Any]:
    client = client_for(_boto_session, "events", sqs_endpoint)
    yield client
    client.close()


def queue_arn(sqs_client: Any, url: str) -> str:
    attributes = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


@pytest.fixture
def topic(sns: Any, sqs_client: Any, sqs_queue: str) -> Iterator[str]:
    """A new topic whose messages arrive, raw, in sqs_queue."""
    arn = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:12]}")["TopicArn"]
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=queue_arn(sqs_client, sqs_queue),
        Attributes={"RawMessageDelivery": "true"},
    )  # fmt: skip
    yield arn
    sns.delete_topic(TopicArn=arn)


@pytest.fixture
def bus(events: Any, sqs_client: Any, sqs_queue: str) -> Iterator[str]:
    """A new event bus with a rule sending source 'scheduler.test' to sqs_queue."""
    name = f"bus-{uuid.uuid4().hex[:12]}"
    events.create_event_bus(Name=name)
    events.put_rule(
        Name="all", EventBusName=name, EventPattern=json.dumps({"source": ["scheduler.test"]})
    )
    events.put_targets(
        Rule="all",
        EventBusName=name,
        Targets=[{"Id": "q", "Arn": queue_arn(sqs_client, sqs_queue)}],
    )
    yield name
    events.remove_targets(Rule="all", EventBusName=name, Ids=["q"])
    events.delete_rule(Name="all", EventBusName=name)
    events.delete_event_bus(Name=name)


def delivery(target: dict[str, Any], payload: str = '{"drink": "water"}') -> Delivery:
    return Delivery(str(uuid.uuid4()), str(uuid.uuid4()), WHEN, payload, target, 1)


def test_sns_publish_batch_in_tens_with_the_run_attributes(
    sns: Any, sqs_client: Any, sqs_queue: str, topic: str
) -> None:
    calls: list[int] = []
    sns.meta.events.register(
        "provide-client-params.sns.PublishBatch",
        lambda params, **_: calls.append(len(params["PublishBatchRequestEntries"])),
    )
    batch = [
        delivery({"type": "sns", "topicArn": topic, "region": REGION}, f"m{i}") for i in range(12)
    ]
    target = SnsTarget(lambda region: sns)
    try:
        outcomes = target.send(batch)
    finally:
        target.close()
    assert all(o.ok and o.extra["messageId"] for o in outcomes)
    assert sorted(calls) == [2, 10]
    messages = receive_all(sqs_client, sqs_queue, 12)
    by_run = {m["MessageAttributes"]["runId"]["StringValue"]: m for m in messages}
    assert sorted(by_run) == sorted(d.run_id for d in batch)
    for d in batch:
        message = by_run[d.run_id]
        assert message["Body"] == d.payload
        assert message["MessageAttributes"]["jobId"]["StringValue"] == d.job_id
        assert message["MessageAttributes"]["scheduledFor"]["StringValue"] == "2030-01-02T03:04:05Z"


def test_sns_fifo_topic_takes_the_run_as_deduplication_id(sns: Any) -> None:
    arn = sns.create_topic(
        Name=f"f-{uuid.uuid4().hex[:12]}.fifo", Attributes={"FifoTopic": "true"}
    )["TopicArn"]
    entries: list[dict[str, Any]] = []
    sns.meta.events.register(
        "provide-client-params.sns.PublishBatch",
        lambda params, **_: entries.extend(params["PublishBatchRequestEntries"]),
    )
    d = delivery({"type": "sns", "topicArn": arn})
    target = SnsTarget(lambda region: sns)
    try:
        [outcome] = target.send([d])
    finally:
        target.close()
        sns.delete_topic(TopicArn=arn)
    assert outcome.ok, outcome.error
    assert entries[0]["MessageDeduplicationId"] == d.run_id
    assert entries[0]["MessageGroupId"] == d.job_id


def test_sns_missing_topic_is_permanent(sns: Any) -> None:
    missing = f"arn:aws:sns:{REGION}:123456789012:no-such-{uuid.uuid4().hex[:8]}"
    target = SnsTarget(lambda region: sns)
    try:
        [outcome] = target.send([delivery({"type": "sns", "topicArn": missing})])
    finally:
        target.close()
    assert not outcome.ok and outcome.permanent and "NotFound" in (outcome.error or "")


def test_eventbridge_payload_is_the_detail(
    events: Any, sqs_client: Any, sqs_queue: str, bus: str
) -> None:
    spec = {
        "type": "eventbridge",
        "eventBus": bus,
        "source": "scheduler.test",
        "detailType": "Fired",
    }
    batch = [delivery(spec, json.dumps({"n": i})) for i in range(12)]
    target = EventBridgeTarget(lambda region: events)
    try:
        outcomes = target.send(batch)
    finally:
        target.close()
    assert all(o.ok and o.extra["eventId"] for o in outcomes)
    bodies = [json.loads(m["Body"]) for m in receive_all(sqs_client, sqs_queue, 12)]
    assert sorted(b["detail"]["n"] for b in bodies) == list(range(12))
    assert {b["detail-type"] for b in bodies} == {"Fired"} and {b["source"] for b in bodies} == {
        "scheduler.test"
    }
    by_n = {b["detail"]["n"]: b for b in bodies}
    for i, d in enumerate(batch):
        assert by_n[i]["resources"] == resources(d.run_id, d.job_id)


def test_eventbridge_payload_not_an_object_is_permanent_without_a_call(events: Any) -> None:
    spec = {"type": "eventbridge", "eventBus": "default", "source": "s", "detailType": "d"}
    target = EventBridgeTarget(lambda region: events)
    try:
        [outcome] = target.send([delivery(spec, "[1]")])
    finally:
        target.close()
    assert outcome.permanent and "JSON object" in (outcome.error or "")


def test_an_unreachable_endpoint_is_transient_and_unreachable(
    sqs_proxy: TcpProxy, _boto_session: boto3.session.Session
) -> None:
    sns = client_for(_boto_session, "sns", sqs_proxy.url, **NO_RETRIES)
    events = client_for(_boto_session, "events", sqs_proxy.url, **NO_RETRIES)
    sqs_proxy.disable()
    arn = f"arn:aws:sns:{REGION}:123456789012:t"
    spec = {"type": "eventbridge", "eventBus": "default", "source": "s", "detailType": "d"}
    for target, d in (
        (SnsTarget(lambda region: sns), delivery({"type": "sns", "topicArn": arn})),
        (EventBridgeTarget(lambda region: events), delivery(spec)),
    ):
        try:
            [outcome] = target.send([d])
        finally:
            target.close()
        assert not outcome.ok and not outcome.permanent and outcome.unreachable
        assert "unreachable" in (outcome.error or "")


def test_sns_end_to_end_outage_then_recovery(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    sqs_proxy: TcpProxy, _boto_session: boto3.session.Session, sqs_client: Any,
    sqs_queue: str, topic: str,
) -> None:  # fmt: skip
    sns = client_for(_boto_session, "sns", sqs_proxy.url, **NO_RETRIES)
    target = {"type": "sns", "topicArn": topic, "region": REGION}
    jobs = [{"payload": f"m{i}", "at": "2030-01-01T00:00:01Z", "target": target} for i in range(15)]
    assert client.post("/schedules:batch", json={"jobs": jobs}).status_code == 201
    dispatcher = make_dispatcher({"sns": SnsTarget(lambda region: sns)})
    sqs_proxy.disable()
    clock.advance(1)
    dispatcher.step()
    runs = client.get("/runs?status=retrying").get_json()
    assert len(runs) == 15 and all("unreachable" in r["lastError"] for r in runs)
    sqs_proxy.enable()
    clock.advance(400)
    assert dispatcher.deliver_due() == 15
    assert len(client.get("/runs?status=delivered").get_json()) == 15
    bodies = sorted(m["Body"] for m in receive_all(sqs_client, sqs_queue, 15))
    assert bodies == sorted(f"m{i}" for i in range(15))


def test_eventbridge_missing_bus_is_permanent_and_spares_the_others(events: Any, bus: str) -> None:
    good = {"type": "eventbridge", "eventBus": bus, "source": "scheduler.test", "detailType": "d"}
    missing = good | {"eventBus": f"no-such-{uuid.uuid4().hex[:8]}"}
    target = EventBridgeTarget(lambda region: events)
    try:
        ok, failed = target.send([delivery(good), delivery(missing)])
    finally:
        target.close()
    assert ok.ok, ok.error
    assert not failed.ok and failed.permanent and "EventBridge" in (failed.error or "")


def test_eventbridge_entries_failed_in_one_call_fail_their_own_runs(
    events: Any, sqs_client: Any, sqs_queue: str, bus: str
) -> None:
    """PutEvents answers entry by entry: moto fails an entry without a source or detail type
    (InvalidArgument) and takes the others of the same call. (An event bus that does not
    exist fails moto's whole call instead, and the target groups calls by bus anyway.)"""
    good = {"type": "eventbridge", "eventBus": bus, "source": "scheduler.test", "detailType": "d"}
    no_source, no_type = good | {"source": ""}, good | {"detailType": ""}
    specs = [good] * 12
    for position in (1, 4, 8):
        specs[position] = no_source
    specs[6] = specs[11] = no_type  # 11: in the second call
    batch = [delivery(spec, json.dumps({"n": i})) for i, spec in enumerate(specs)]
    calls: list[list[bool]] = []  # per call: whether each entry has a source and a type
    events.meta.events.register(
        "provide-client-params.events.PutEvents",
        lambda params, **_: calls.append(
            [bool(e["Source"] and e["DetailType"]) for e in params["Entries"]]
        ),
    )
    target = EventBridgeTarget(lambda region: events)
    try:
        outcomes = target.send(batch)
    finally:
        target.close()
    # Two calls (ten entries, then two), each mixing entries that fail and entries that do not.
    assert [len(c) for c in calls] == [10, 2] and all(any(c) and not all(c) for c in calls)
    assert [o.run_id for o in outcomes] == [d.run_id for d in batch]
    for d, outcome in zip(batch, outcomes, strict=True):
        if d.target is good:
            assert outcome.ok and outcome.extra["eventId"], outcome.error
        else:
            missing = "Source" if d.target is no_source else "DetailType"
            assert not outcome.ok and outcome.permanent, outcome
            assert f"InvalidArgument: Parameter {missing} is not valid" in (outcome.error or "")
    event_ids = [o.extra["eventId"] for o in outcomes if o.ok]
    assert len(set(event_ids)) == len(event_ids) == 7
    bodies = [json.loads(m["Body"]) for m in receive_all(sqs_client, sqs_queue, len(batch))]
    sent = {i: d for i, d in enumerate(batch) if d.target is good}
    assert sorted(b["detail"]["n"] for b in bodies) == sorted(sent)  # the others, only them
    for body in bodies:
        d = sent[body["detail"]["n"]]
        assert body["resources"] == resources(d.run_id, d.job_id)
        assert body["id"] == outcomes[body["detail"]["n"]].extra["eventId"]


def test_eventbridge_a_throttled_entry_is_transient_and_goes_out_on_the_retry(
    events: Any, sqs_client: Any, sqs_queue: str, bus: str
) -> None:
    """AWS may throttle one entry of a PutEvents call and take the others; moto never does.
    So the first call is made as AWS would see it: entry 2 is held back from the request
    and answered ThrottlingException, the others go to moto for real."""
    good = {"type": "eventbridge", "eventBus": bus, "source": "scheduler.test", "detailType": "d"}
    batch = [delivery(good, json.dumps({"n": i})) for i in range(4)]
    first_call: dict[str, Any] = {}

    def hold_back(params: dict[str, Any], **_: Any) -> None:
        if "held" not in first_call:
            first_call["held"] = params["Entries"].pop(2)

    def throttle(parsed: dict[str, Any], **_: Any) -> None:
        if not first_call.get("answered"):
            first_call["answered"] = True
            throttled = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
            parsed["Entries"].insert(2, throttled)
            parsed["FailedEntryCount"] = parsed.get("FailedEntryCount", 0) + 1

    events.meta.events.register("before-parameter-build.events.PutEvents", hold_back)
    events.meta.events.register("after-call.events.PutEvents", throttle)
    target = EventBridgeTarget(lambda region: events)
    try:
        outcomes = target.send(batch)
        retried = target.send([batch[2]])
    finally:
        target.close()
    assert [o.ok for o in outcomes] == [True, True, False, True]
    assert not outcomes[2].permanent, "a throttled entry is retried, not dead"
    assert "ThrottlingException: Rate exceeded" in (outcomes[2].error or "")
    assert retried[0].ok and retried[0].extra["eventId"], retried[0].error
    bodies = [json.loads(m["Body"]) for m in receive_all(sqs_client, sqs_queue, len(batch))]
    assert sorted(b["detail"]["n"] for b in bodies) == [0, 1, 2, 3]  # each once
