"""The broker targets against the real brokers on loopback: Redis, RabbitMQ, NATS
JetStream, and Celery tasks run by a real worker process (from RabbitMQ and from Redis).
Each: the run's fields on the message, the permanent errors, a broker that cannot be
reached (unreachable, so its origin backs off), and the same run sent twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import nats
import pytest
import redis

from app.targets.amqp import AmqpTarget
from app.targets.base import Delivery
from app.targets.celery import CeleryTarget, task_arguments
from app.targets.nats import NatsTarget
from app.targets.redis import RedisTarget
from tests.support.aio import LoopThread
from tests.support.brokers import celery_worker, proxied, unique, wait_for
from tests.support.sqs_server import TcpProxy

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
FIELDS = {"scheduledFor": "2030-01-02T03:04:05Z"}


def delivery(target: dict[str, Any], payload: str = "hello") -> Delivery:
    return Delivery(str(uuid.uuid4()), str(uuid.uuid4()), WHEN, payload, target, 1)


def run_fields(d: Delivery) -> dict[str, str]:
    return {"runId": d.run_id, "jobId": d.job_id, **FIELDS}


@pytest.fixture
def redis_client(brokers: dict[str, str]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(brokers["cache"], decode_responses=True)
    yield client
    client.close()


# Redis


def test_redis_stream_entry_carries_the_run(
    loop_thread: LoopThread, brokers: dict[str, str], redis_client: redis.Redis
) -> None:
    stream = unique("stream")
    target = RedisTarget(brokers)
    d = delivery({"type": "redis", "connection": "cache", "stream": stream, "maxLen": 1000})
    try:
        [outcome] = loop_thread.run(target.deliver([d]))
        assert outcome.ok, outcome.error
        [(entry_id, fields)] = redis_client.xrange(stream)
        assert fields == {"payload": "hello", **run_fields(d)}
        assert outcome.extra["messageId"] == entry_id
    finally:
        loop_thread.run(target.aclose())
        redis_client.delete(stream)


def test_redis_list_item_is_a_json_object(
    loop_thread: LoopThread, brokers: dict[str, str], redis_client: redis.Redis
) -> None:
    key = unique("list")
    target = RedisTarget(brokers)
    batch = [
        delivery({"type": "redis", "connection": "cache", "list": key}, f"m{i}") for i in range(3)
    ]
    try:
        assert all(o.ok for o in loop_thread.run(target.deliver(batch)))
        items = [json.loads(item) for item in reversed(redis_client.lrange(key, 0, -1))]  # LPUSH
        assert items == [{"payload": d.payload, **run_fields(d)} for d in batch]
    finally:
        loop_thread.run(target.aclose())
        redis_client.delete(key)


def test_redis_wrong_type_is_permanent_for_its_run_only(
    loop_thread: LoopThread, brokers: dict[str, str], redis_client: redis.Redis
) -> None:
    taken, good = unique("string"), unique("stream")
    redis_client.set(taken, "not a stream")
    target = RedisTarget(brokers)
    bad_d = delivery({"type": "redis", "connection": "cache", "stream": taken})
    good_d = delivery({"type": "redis", "connection": "cache", "stream": good})
    try:
        bad, ok = loop_thread.run(target.deliver([bad_d, good_d]))
        assert not bad.ok and bad.permanent and "WRONGTYPE" in (bad.error or "")
        assert ok.ok and redis_client.xlen(good) == 1
    finally:
        loop_thread.run(target.aclose())
        redis_client.delete(taken, good)


def test_a_connection_no_longer_configured_is_permanent(loop_thread: LoopThread) -> None:
    for target, spec in (
        (RedisTarget({}), {"type": "redis", "connection": "gone", "stream": "s"}),
        (AmqpTarget({}), {"type": "amqp", "connection": "gone", "routingKey": "k"}),
        (NatsTarget({}), {"type": "nats", "connection": "gone", "subject": "s"}),
        (CeleryTarget({}), {"type": "celery", "connection": "gone", "task": "t"}),
    ):
        [outcome] = loop_thread.run(target.deliver([delivery(spec)]))  # type: ignore[attr-defined]
        assert outcome.permanent and "no connection named 'gone'" in (outcome.error or "")
        loop_thread.run(target.aclose())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kind, spec",
    [
        ("redis", {"type": "redis", "connection": "cache", "stream": "never-written"}),
        ("amqp", {"type": "amqp", "connection": "rabbit", "routingKey": "k"}),
        ("nats", {"type": "nats", "connection": "events", "subject": "never.written"}),
        ("celery", {"type": "celery", "connection": "rabbit", "task": "t"}),
    ],
)
def test_a_broker_down_is_transient_and_unreachable(
    loop_thread: LoopThread, proxies: dict[str, TcpProxy], kind: str, spec: dict[str, Any]
) -> None:
    proxies["amqp" if kind == "celery" else kind].disable()
    made = {"redis": RedisTarget, "amqp": AmqpTarget, "nats": NatsTarget, "celery": CeleryTarget}
    target = made[kind](proxied(proxies))
    try:
        [outcome] = loop_thread.run(target.deliver([delivery(spec, "[]")]))
        assert not outcome.ok and not outcome.permanent and outcome.unreachable
        assert "unreachable" in (outcome.error or "")
    finally:
        loop_thread.run(target.aclose())


# RabbitMQ


async def _declare_queue(url: str, name: str, bind_to: str | None = None) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, auto_delete=False)
        if bind_to:
            await queue.bind(bind_to, routing_key=name)


async def _get_all(url: str, name: str, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(url)
    got = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(name)
        for _ in range(200):
            message = await queue.get(fail=False)
            if message is None:
                if len(got) >= count:
                    break
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
        await queue.delete(if_unused=False, if_empty=False)
    return got


def test_amqp_message_is_persistent_with_the_run_id(
    loop_thread: LoopThread, brokers: dict[str, str]
) -> None:
    queue = unique("q")
    loop_thread.run(_declare_queue(brokers["rabbit"], queue, bind_to="amq.direct"))
    target = AmqpTarget(brokers)
    batch = [
        delivery(
            {"type": "amqp", "connection": "rabbit", "exchange": "amq.direct", "routingKey": queue}
        ),
        delivery({"type": "amqp", "connection": "rabbit", "exchange": "", "routingKey": queue}),
    ]
    try:
        outcomes = loop_thread.run(target.deliver(batch))
        assert all(o.ok for o in outcomes), outcomes
        messages = loop_thread.run(_get_all(brokers["rabbit"], queue, 2))
    finally:
        loop_thread.run(target.aclose())
    assert sorted(m.message_id or "" for m in messages) == sorted(d.run_id for d in batch)
    for message in messages:
        d = next(d for d in batch if d.run_id == message.message_id)
        assert message.body == b"hello" and message.delivery_mode == 2
        assert message.headers == run_fields(d)


def test_amqp_unknown_exchange_is_permanent_and_spares_the_others(
    loop_thread: LoopThread, brokers: dict[str, str]
) -> None:
    queue = unique("q")
    loop_thread.run(_declare_queue(brokers["rabbit"], queue))
    target = AmqpTarget(brokers)
    missing = delivery(
        {"type": "amqp", "connection": "rabbit", "exchange": unique("nx"), "routingKey": "k"}
    )
    good = delivery({"type": "amqp", "connection": "rabbit", "routingKey": queue})
    try:
        outcomes = {o.run_id: o for o in loop_thread.run(target.deliver([missing, good]))}
        assert outcomes[missing.run_id].permanent and "no exchange named" in str(
            outcomes[missing.run_id].error
        )
        assert outcomes[good.run_id].ok
        assert len(loop_thread.run(_get_all(brokers["rabbit"], queue, 1))) == 1
    finally:
        loop_thread.run(target.aclose())


def test_amqp_returned_message_fails_and_is_retried(
    loop_thread: LoopThread, brokers: dict[str, str]
) -> None:
    target = AmqpTarget(brokers)
    d = delivery(
        {
            "type": "amqp",
            "connection": "rabbit",
            "exchange": "amq.direct",
            "routingKey": unique("nobody"),
        }
    )
    try:
        [outcome] = loop_thread.run(target.deliver([d]))
    finally:
        loop_thread.run(target.aclose())
    assert not outcome.ok and not outcome.permanent and not outcome.unreachable
    assert "returned unroutable" in (outcome.error or "")


# NATS


async def _stream(url: str, name: str) -> Any:
    connection = await nats.connect(url)
    js = connection.jetstream()
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    return connection, js


def test_nats_publish_carries_msg_id_and_the_stream_drops_a_repeat(
    loop_thread: LoopThread, brokers: dict[str, str]
) -> None:
    name = unique("S").replace("-", "")
    connection, js = loop_thread.run(_stream(brokers["events"], name))
    target = NatsTarget(brokers)
    d = delivery({"type": "nats", "connection": "events", "subject": f"{name}.fired"})
    try:
        first, again = loop_thread.run(target.deliver([d])), loop_thread.run(target.deliver([d]))
        assert first[0].ok and again[0].ok and again[0].extra["duplicate"]
        info = loop_thread.run(js.stream_info(name))
        assert info.state.messages == 1  # the stream itself dropped the repeat
        message = loop_thread.run(js.get_msg(name, 1))
        assert message.data == b"hello"
        assert message.headers == {"Nats-Msg-Id": d.run_id, **run_fields(d)}
    finally:
        loop_thread.run(js.delete_stream(name))
        loop_thread.run(connection.close())
        loop_thread.run(target.aclose())


def test_nats_no_stream_is_permanent(loop_thread: LoopThread, brokers: dict[str, str]) -> None:
    target = NatsTarget(brokers)
    try:
        [outcome] = loop_thread.run(
            target.deliver(
                [delivery({"type": "nats", "connection": "events", "subject": unique("none")})]
            )
        )
    finally:
        loop_thread.run(target.aclose())
    assert outcome.permanent and "no stream takes subject" in (outcome.error or "")


# Celery


def test_celery_payload_shapes() -> None:
    assert task_arguments('{"args": [1, 2], "kwargs": {"a": 3}}') == ([1, 2], {"a": 3})
    assert task_arguments("[1]") == ([1], {})
    assert task_arguments("{}") == ([], {})
    for bad in ("nope", '"text"', '{"args": 1}', '{"kwargs": []}', '{"other": 1}'):
        with pytest.raises(ValueError, match="args"):
            task_arguments(bad)


@pytest.mark.parametrize("connection", ["rabbit", "cache"])
def test_a_real_celery_worker_runs_the_task_with_the_run_id(
    loop_thread: LoopThread, brokers: dict[str, str], redis_client: redis.Redis, connection: str
) -> None:
    queue, results = unique("celery"), unique("results")
    spec = {"type": "celery", "connection": connection, "task": "tests.record", "queue": queue}
    batch = [
        delivery(spec, json.dumps({"args": [results, i], "kwargs": {"n": i}})) for i in range(3)
    ]
    target = CeleryTarget(brokers)
    try:
        with celery_worker(brokers[connection], queue):  # it declares the queue
            outcomes = loop_thread.run(target.deliver(batch))
            assert all(o.ok for o in outcomes), outcomes
            wait_for(lambda: redis_client.llen(results) >= 3, what="the worker to run them")
            ran = redis_client.lrange(results, 0, -1)
        entries = sorted((json.loads(e) for e in ran), key=lambda e: e["args"][0])
        assert [e["id"] for e in entries] == [d.run_id for d in batch]
        assert [(e["args"], e["kwargs"]) for e in entries] == [([i], {"n": i}) for i in range(3)]
    finally:
        loop_thread.run(target.aclose())
        redis_client.delete(results, queue)


def test_celery_bad_payload_and_missing_queue_are_permanent(
    loop_thread: LoopThread, brokers: dict[str, str]
) -> None:
    target = CeleryTarget(brokers)
    spec = {"type": "celery", "connection": "rabbit", "task": "tests.record"}
    try:
        bad, missing = loop_thread.run(
            target.deliver(
                [delivery(spec, "not json"), delivery(spec | {"queue": unique("nq")}, "[]")]
            )
        )
    finally:
        loop_thread.run(target.aclose())
    assert bad.permanent and "payload must be JSON" in (bad.error or "")
    assert missing.permanent and "no queue named" in (missing.error or "")
