"""kill -9 of the scheduler process while it delivers a burst to a broker target, for each
broker target against the real broker on loopback (a Redis stream, a RabbitMQ queue, a NATS
JetStream stream, Celery tasks through RabbitMQ and through Redis): nothing is lost, and
only runs that were in flight are sent again, each with its own run id (which is what
consumers de-duplicate on).

Each target has a small reader: the target spec the jobs use, how many messages the broker
has taken so far, and every message it took, as (run id, job id), read back raw."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import nats
import pytest
import redis
from sqlalchemy import Engine, create_engine, insert, text, update

from app.models import Job, Run
from tests.support.aio import LoopThread
from tests.support.brokers import unique
from tests.support.burst import assert_each_job_fired_once, one_shot_rows
from tests.support.processes import process_env, running, start_scheduler, wait_until

pytestmark = pytest.mark.slow
KILL_AFTER = 500  # messages the broker has taken when the first process is killed
CELERY_TASK = "tests.record"

Message = tuple[str, str]  # (run id, job id) as a message carries them


def key(uuid_text: str) -> str:
    """Ids as stored (SQLite: hex without dashes) and as sent (with dashes) compared alike."""
    return uuid_text.replace("-", "").lower()


class Reader:
    """The destination of one case: `target` for its jobs, `sent()` while the burst goes
    on, `messages()` (every message sent, repeats included) once it is over."""

    target: dict[str, Any]
    connection: str  # the name of its connection in `brokers`

    def sent(self) -> int:
        raise NotImplementedError

    def messages(self) -> list[Message]:
        raise NotImplementedError

    def kept(self) -> list[Message] | None:
        """What the destination keeps, when that is not everything sent (a stream that
        drops repeats itself); None: it keeps every message sent."""
        return None

    def close(self) -> None:
        raise NotImplementedError


def celery_task(headers: dict[str, Any], body: bytes) -> Message:
    """A Celery protocol v2 task message: the task id is the run id."""
    assert headers["task"] == CELERY_TASK and headers["runId"] == headers["id"], headers
    args, kwargs, embed = json.loads(body)
    assert isinstance(args, list) and kwargs == {} and set(embed) >= {"callbacks", "chain"}
    return str(headers["id"]), str(headers["jobId"])


class RedisStream(Reader):
    def __init__(self, brokers: dict[str, str], loop: LoopThread) -> None:
        self.name = unique("burst")
        self.client = redis.Redis.from_url(brokers["cache"], decode_responses=True)
        self.connection = "cache"
        self.target = {"type": "redis", "connection": "cache", "stream": self.name}

    def sent(self) -> int:
        return int(self.client.xlen(self.name))

    def messages(self) -> list[Message]:
        entries: list[Any] = self.client.xrange(self.name)  # type: ignore[assignment]
        return [(str(f["runId"]), str(f["jobId"])) for _, f in entries]

    def close(self) -> None:
        self.client.delete(self.name)
        self.client.close()


class CeleryRedisList(RedisStream):
    """Celery through Redis: kombu LPUSHes each task message (JSON) onto the queue's list."""

    def __init__(self, brokers: dict[str, str], loop: LoopThread) -> None:
        super().__init__(brokers, loop)
        self.target = {"type": "celery", "connection": "cache", "task": CELERY_TASK,
                       "queue": self.name}  # fmt: skip

    def sent(self) -> int:
        return int(self.client.llen(self.name))

    def messages(self) -> list[Message]:
        found = []
        for raw in self.client.lrange(self.name, 0, -1):
            item = json.loads(raw)
            assert item["properties"]["body_encoding"] == "base64", item["properties"]
            assert item["properties"]["correlation_id"] == item["headers"]["id"]
            found.append(celery_task(item["headers"], base64.b64decode(item["body"])))
        return found


class AmqpQueue(Reader):
    """A RabbitMQ queue the target reaches through the default exchange ("", the routing
    key is the queue's name); read back with aio_pika."""

    def __init__(self, brokers: dict[str, str], loop: LoopThread) -> None:
        self.loop, self.url, self.name = loop, brokers["rabbit"], unique("burst")
        self.connection = "rabbit"
        self.target = {"type": "amqp", "connection": "rabbit", "exchange": "",
                       "routingKey": self.name}  # fmt: skip
        self.link, self.channel = loop.run(self._open())

    async def _open(self) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel]:
        link = await aio_pika.connect(self.url)
        channel = await link.channel()
        await channel.declare_queue(self.name, durable=True)
        return link, channel

    async def _count(self) -> int:
        queue = await self.channel.declare_queue(self.name, passive=True)
        return int(queue.declaration_result.message_count or 0)

    def sent(self) -> int:
        return self.loop.run(self._count())

    def messages(self) -> list[Message]:
        return self.loop.run(self._drain(), timeout=120)

    async def _drain(self) -> list[Message]:
        count = await self._count()
        queue = await self.channel.get_queue(self.name)
        found: list[Message] = []
        async with queue.iterator(no_ack=True) as incoming:
            async for message in incoming:
                found.append(self.parse(message))
                if len(found) == count:
                    break
        return found

    def parse(self, message: aio_pika.abc.AbstractIncomingMessage) -> Message:
        headers = message.headers
        assert headers["runId"] == message.message_id and message.delivery_mode == 2
        return str(message.message_id), str(headers["jobId"])

    def close(self) -> None:
        async def close() -> None:
            await self.channel.queue_delete(self.name)
            await self.link.close()

        self.loop.run(close())


class CeleryAmqpQueue(AmqpQueue):
    """Celery through RabbitMQ: the queue a worker would consume (declared durable, as
    Celery does), its task messages read raw."""

    def __init__(self, brokers: dict[str, str], loop: LoopThread) -> None:
        super().__init__(brokers, loop)
        self.target = {"type": "celery", "connection": "rabbit", "task": CELERY_TASK,
                       "queue": self.name}  # fmt: skip

    def parse(self, message: aio_pika.abc.AbstractIncomingMessage) -> Message:
        assert message.correlation_id == message.headers["id"]
        return celery_task(dict(message.headers), message.body)


class NatsStream(Reader):
    """A JetStream stream, which drops a repeat by Nats-Msg-Id (the run id) itself; a core
    subscription on the subject sees every publish, so it counts what was sent."""

    def __init__(self, brokers: dict[str, str], loop: LoopThread) -> None:
        self.loop, self.url = loop, brokers["events"]
        self.name = unique("burst").replace("-", "")
        self.subject = f"{self.name}.fired"
        self.connection = "events"
        self.target = {"type": "nats", "connection": "events", "subject": self.subject}
        self.client, self.js, self.seen = loop.run(self._open())

    async def _open(self) -> tuple[Any, Any, Any]:
        client = await nats.connect(self.url)
        js = client.jetstream()
        await js.add_stream(name=self.name, subjects=[f"{self.name}.>"])
        seen = await client.subscribe(self.subject, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await client.flush()
        return client, js, seen

    def sent(self) -> int:
        return int(self.seen.delivered)

    def messages(self) -> list[Message]:
        async def read() -> list[Message]:
            await self.client.flush()  # what the server sent us before now has arrived
            return [_nats_message(await self.seen.next_msg(5)) for _ in range(self.sent())]

        return self.loop.run(read(), timeout=120)

    def kept(self) -> list[Message]:
        async def read() -> list[Message]:
            info = await self.js.stream_info(self.name)
            reader = await self.js.subscribe(self.subject, ordered_consumer=True)
            found = [_nats_message(await reader.next_msg(5)) for _ in range(info.state.messages)]
            await reader.unsubscribe()
            return found

        return self.loop.run(read(), timeout=120)

    def close(self) -> None:
        async def close() -> None:
            await self.js.delete_stream(self.name)
            await self.client.close()

        self.loop.run(close())


def _nats_message(message: Any) -> Message:
    headers = message.headers
    assert headers["Nats-Msg-Id"] == headers["runId"], headers
    return headers["runId"], headers["jobId"]


# Jobs per case: enough that a kill after KILL_AFTER messages lands mid-burst on 2 cores.
CASES: dict[str, tuple[Callable[[dict[str, str], LoopThread], Reader], int]] = {
    "redis": (RedisStream, 10_000),
    "amqp": (AmqpQueue, 5_000),
    "nats": (NatsStream, 5_000),
    "celery-rabbitmq": (CeleryAmqpQueue, 3_000),
    "celery-redis": (CeleryRedisList, 3_000),
}


@pytest.fixture(params=list(CASES))
def case(
    request: pytest.FixtureRequest, brokers: dict[str, str], loop_thread: LoopThread
) -> Iterator[tuple[str, Reader, int]]:
    make, jobs = CASES[request.param]
    reader = make(brokers, loop_thread)
    try:
        yield request.param, reader, jobs
    finally:
        reader.close()


def insert_jobs(engine: Engine, jobs: int, target: dict[str, Any]) -> None:
    """One-shot jobs due in 2 s, each with a JSON array payload (what Celery takes)."""
    rows = one_shot_rows(jobs, datetime.now(UTC) + timedelta(seconds=2), target=target)
    for i, row in enumerate(rows):
        row["payload"] = json.dumps([i])
    with engine.begin() as conn:
        for start in range(0, jobs, 5000):
            conn.execute(insert(Job.__table__), rows[start : start + 5000])


def count_runs(engine: Engine, status: str) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM runs WHERE status = :status")
        return int(conn.execute(query, {"status": status}).scalar_one())


def expire_leases(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Run.__table__)
            .where(Run.status == "delivering")
            .values(next_attempt_at=datetime.now(UTC))
        )


def test_kill_9_mid_burst_repeats_only_runs_in_flight_with_their_run_id(
    database_url: str, tmp_path: Path, brokers: dict[str, str], case: tuple[str, Reader, int]
) -> None:
    name, reader, jobs = case
    started = time.monotonic()
    engine = create_engine(database_url)
    insert_jobs(engine, jobs, reader.target)
    env = process_env(
        database_url, CONNECTIONS=json.dumps({reader.connection: brokers[reader.connection]}),
        DELIVERY_LEASE="5", DELIVERY_LEASE_MARGIN="1",
    )  # fmt: skip
    try:
        first = start_scheduler(env, tmp_path / "first.log")
        wait_until(lambda: reader.sent() > KILL_AFTER, 60, first, step=0.01)
        first.kill()
        killed_at = time.monotonic() - started
        in_flight = count_runs(engine, "delivering")
        delivered_before = count_runs(engine, "delivered")
        sent_before = reader.sent()  # about: the broker may still read what was on the wire
        # The kill landed mid-burst: runs were left to deliver, and some were in flight.
        assert sent_before < jobs and delivered_before < jobs, "make the burst larger"
        assert in_flight > 0, "nothing was in flight at the kill"
        # Time moves on past the dead process's leases (each call's timeout plus the 1-s
        # margin: 11-21 s), as waiting them out would: the runs they held are due again.
        expire_leases(engine)

        with running(start_scheduler(env, tmp_path / "second.log")) as second:
            wait_until(lambda: count_runs(engine, "delivered") == jobs, 120, second)
            assert second.terminate() == 0

        assert_each_job_fired_once(engine, jobs)
        with engine.connect() as conn:
            runs = {
                key(str(r)): key(str(j))
                for r, j in conn.execute(text("SELECT id, job_id FROM runs"))
            }
        sent = reader.messages()
        times = Counter(key(run) for run, _ in sent)
        assert set(times) == set(runs)  # every run, no other
        for run, job in sent:  # each message carries its own run's job
            assert runs[key(run)] == key(job), (run, job)
        repeated = sum(count - 1 for count in times.values())
        assert repeated <= in_flight, (repeated, in_flight)
        kept = reader.kept()
        if kept is not None:  # the destination drops repeats itself: each run exactly once
            assert sorted(key(run) for run, _ in kept) == sorted(runs)
            assert all(runs[key(run)] == key(job) for run, job in kept)
        print(
            f"\n{name}: {jobs} jobs, killed at {killed_at:.1f} s with "
            f"{sent_before} sent, {delivered_before} delivered, {in_flight} in flight; "
            f"{len(sent)} messages, {repeated} repeated; {time.monotonic() - started:.1f} s"
        )
    finally:
        engine.dispose()
