"""Runs delivered end to end to the broker targets: jobs made through the API with a
target naming a connection (CONNECTIONS), fired and delivered by the dispatcher to the real
brokers on loopback, through a proxy that can take each broker away. For each target: the
run id on the message, an outage then recovery that loses nothing, a permanent error that
ends the run dead with it, and a Celery worker process running what was sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import aio_pika
import nats
import pytest
import redis
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher
from tests.support.aio import LoopThread
from tests.support.brokers import celery_worker, proxied, unique, wait_for
from tests.support.sqs_server import TcpProxy

AT = "2030-01-01T00:00:01Z"


@pytest.fixture
def app_config(app_config: dict[str, Any], proxies: dict[str, TcpProxy]) -> dict[str, Any]:
    """The app's CONNECTIONS lead through the proxies (so a test can stop a broker)."""
    return app_config | {"CONNECTIONS": proxied(proxies)}


@pytest.fixture
def redis_client(brokers: dict[str, str]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(brokers["cache"], decode_responses=True)
    yield client
    client.close()


class Sink:
    """Where one kind of target delivers, and what arrived there: (run id, payload)."""

    kind = ""
    payload = "m{i}"

    def target(self) -> dict[str, Any]:
        raise NotImplementedError

    def broken(self) -> tuple[dict[str, Any], str]:
        """A target with a permanent error, and the words its error has."""
        raise NotImplementedError

    def received(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RedisSink(Sink):
    kind = "redis"

    def __init__(self, client: redis.Redis, loop: LoopThread, brokers: dict[str, str]) -> None:
        self.client, self.stream, self.taken = client, unique("stream"), unique("string")
        client.set(self.taken, "x")

    def target(self) -> dict[str, Any]:
        return {"type": "redis", "connection": "cache", "stream": self.stream}

    def broken(self) -> tuple[dict[str, Any], str]:
        return {"type": "redis", "connection": "cache", "stream": self.taken}, "WRONGTYPE"

    def received(self) -> list[tuple[str, str]]:
        return [(f["runId"], f["payload"]) for _, f in self.client.xrange(self.stream)]

    def close(self) -> None:
        self.client.delete(self.stream, self.taken)


class AmqpSink(Sink):
    kind = "amqp"

    def __init__(self, client: redis.Redis, loop: LoopThread, brokers: dict[str, str]) -> None:
        self.loop, self.url, self.queue = loop, brokers["rabbit"], unique("q")
        self.got: list[tuple[str, str]] = []
        self.loop.run(self._declare())

    async def _declare(self) -> None:
        async with await aio_pika.connect(self.url) as connection:
            await (await connection.channel()).declare_queue(self.queue)

    def target(self) -> dict[str, Any]:
        return {"type": "amqp", "connection": "rabbit", "exchange": "", "routingKey": self.queue}

    def broken(self) -> tuple[dict[str, Any], str]:
        spec = {"type": "amqp", "connection": "rabbit", "exchange": unique("nx"), "routingKey": "k"}
        return spec, "no exchange named"

    def received(self) -> list[tuple[str, str]]:
        return self.loop.run(self._drain())

    async def _drain(self) -> list[tuple[str, str]]:
        async with await aio_pika.connect(self.url) as connection:
            queue = await (await connection.channel()).get_queue(self.queue)
            while (message := await queue.get(fail=False)) is not None:
                await message.ack()
                self.got.append((str(message.message_id), message.body.decode()))
        return list(self.got)

    def close(self) -> None:
        self.loop.run(self._delete())

    async def _delete(self) -> None:
        async with await aio_pika.connect(self.url) as connection:
            await (await connection.channel()).queue_delete(self.queue)


class NatsSink(Sink):
    kind = "nats"

    def __init__(self, client: redis.Redis, loop: LoopThread, brokers: dict[str, str]) -> None:
        self.loop, self.name = loop, unique("S").replace("-", "")
        self.connection, self.js = loop.run(self._open(brokers["events"]))

    async def _open(self, url: str) -> Any:
        connection = await nats.connect(url)
        js = connection.jetstream()
        await js.add_stream(name=self.name, subjects=[f"{self.name}.>"])
        return connection, js

    def target(self) -> dict[str, Any]:
        return {"type": "nats", "connection": "events", "subject": f"{self.name}.fired"}

    def broken(self) -> tuple[dict[str, Any], str]:
        spec = {"type": "nats", "connection": "events", "subject": unique("nowhere")}
        return spec, "no stream takes subject"

    def received(self) -> list[tuple[str, str]]:
        return self.loop.run(self._all())

    async def _all(self) -> list[tuple[str, str]]:
        count = (await self.js.stream_info(self.name)).state.messages
        messages = [await self.js.get_msg(self.name, seq) for seq in range(1, count + 1)]
        return [(m.headers["Nats-Msg-Id"], m.data.decode()) for m in messages]

    def close(self) -> None:
        self.loop.run(self.js.delete_stream(self.name))
        self.loop.run(self.connection.close())


class CelerySink(Sink):
    """A real Celery worker consuming from RabbitMQ (directly, not through the proxy)."""

    kind = "celery"

    def __init__(self, client: redis.Redis, loop: LoopThread, brokers: dict[str, str]) -> None:
        self.client, self.queue, self.results = client, unique("celery"), unique("results")
        self.payload = json.dumps({"args": [self.results, "m{i}"]})
        self._worker = celery_worker(brokers["rabbit"], self.queue)
        self._worker.__enter__()  # it declares the queue

    def target(self) -> dict[str, Any]:
        return {
            "type": "celery",
            "connection": "rabbit",
            "task": "tests.record",
            "queue": self.queue,
        }

    def broken(self) -> tuple[dict[str, Any], str]:
        spec = {"type": "celery", "connection": "rabbit", "task": "t", "queue": unique("nq")}
        return spec, "no queue named"

    def received(self) -> list[tuple[str, str]]:
        entries = [json.loads(e) for e in self.client.lrange(self.results, 0, -1)]
        return [(e["id"], e["args"][0]) for e in entries]

    def close(self) -> None:
        self._worker.__exit__(None, None, None)
        self.client.delete(self.results)


SINKS = {s.kind: s for s in (RedisSink, AmqpSink, NatsSink, CelerySink)}


@pytest.fixture(params=sorted(SINKS))
def sink(
    request: pytest.FixtureRequest, redis_client: redis.Redis, loop_thread: LoopThread,
    brokers: dict[str, str],
) -> Iterator[Sink]:  # fmt: skip
    made = SINKS[request.param](redis_client, loop_thread, brokers)
    yield made
    made.close()


def create_many(client: FlaskClient, sink: Sink, target: dict[str, Any], n: int) -> list[str]:
    jobs = [
        {"payload": sink.payload.replace("m{i}", f"m{i}"), "at": AT, "target": target}
        for i in range(n)
    ]
    response = client.post("/schedules:batch", json={"jobs": jobs})
    assert response.status_code == 201, response.get_json()
    return [job["jobId"] for job in response.get_json()["jobs"]]


def received_all(sink: Sink, n: int) -> list[tuple[str, str]]:
    return wait_for(
        lambda: (got := sink.received()) and len(got) >= n and got, what=f"{n} messages"
    )


def test_delivered_with_the_run_id_outage_then_recovery_loses_nothing(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    proxies: dict[str, TcpProxy], sink: Sink,
) -> None:  # fmt: skip
    create_many(client, sink, sink.target(), 10)
    dispatcher = make_dispatcher()
    proxies["amqp" if sink.kind == "celery" else sink.kind].disable()
    clock.advance(1)
    dispatcher.step()
    for _ in range(2):  # still down: every attempt fails, is rescheduled, the origin backs off
        clock.advance(400)
        dispatcher.deliver_due()
    runs = client.get("/runs?status=retrying").get_json()
    assert len(runs) == 10 and {r["attempts"] for r in runs} == {3}
    assert all("unreachable" in r["lastError"] for r in runs)

    proxies["amqp" if sink.kind == "celery" else sink.kind].enable()
    clock.advance(400)
    assert dispatcher.deliver_due() == 10
    delivered = client.get("/runs?status=delivered").get_json()
    assert len(delivered) == 10
    got = received_all(sink, 10)
    assert len(got) == 10  # nothing twice
    assert sorted(run_id for run_id, _ in got) == sorted(r["runId"] for r in delivered)
    assert sorted(payload for _, payload in got) == sorted(f"m{i}" for i in range(10))


def test_a_permanent_error_ends_the_run_dead_with_it(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher], sink: Sink,
) -> None:  # fmt: skip
    target, words = sink.broken()
    [job_id] = create_many(client, sink, target, 1)
    clock.advance(1)
    make_dispatcher().step()
    [run] = client.get(f"/schedules/{job_id}/runs").get_json()
    assert run["status"] == "dead" and run["attempts"] == 1
    assert words in run["lastError"]


def test_a_dead_letter_reaches_a_celery_task_as_its_one_argument(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    redis_client: redis.Redis, brokers: dict[str, str],
) -> None:  # fmt: skip
    """A task's payload is its arguments: the letter goes to the task as its one argument."""
    queue, results = unique("letters"), unique("results")
    broken = {"type": "celery", "connection": "rabbit", "task": "t", "queue": unique("nq")}
    to = {"type": "celery", "connection": "rabbit", "task": "tests.record_letter", "queue": queue}
    body = {"payload": json.dumps([results]), "at": AT, "target": broken, "deadLetter": to}
    with celery_worker(brokers["rabbit"], queue):
        response = client.post("/schedules", json=body)
        assert response.status_code == 201, response.get_json()
        job_id = response.get_json()["jobId"]
        clock.advance(1)
        dispatcher = make_dispatcher()
        dispatcher.step()  # the run dies at once: no such queue
        assert dispatcher.deliver_due() == 1  # its dead letter, a run of its own
        runs = {r["deadLetter"]: r for r in client.get(f"/schedules/{job_id}/runs").get_json()}
        assert runs[True]["status"] == "delivered", runs[True]
        [entry] = map(json.loads, wait_for(lambda: redis_client.lrange(results, 0, -1)))
    redis_client.delete(results)
    assert entry["id"] == runs[True]["runId"]
    letter = entry["letter"]
    assert letter["runId"] == runs[False]["runId"] and letter["jobId"] == job_id
    assert letter["payload"] == json.dumps([results]) and "no queue named" in letter["lastError"]
