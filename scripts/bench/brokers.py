"""Part 7: the broker targets. The dispatcher delivering to the real Redis (a stream),
RabbitMQ (the default exchange, publisher confirms) and NATS JetStream on loopback,
beside a bare client loop against the same broker in the same run: the same client
library, the same batch size, a fixed number of batches in flight. CPU per message is
counted for each side (the loop's process, or the scheduler and its delivery process;
the broker's server and, on PostgreSQL, the database server's), since on two cores what
the dispatcher spends beside the client's own work is what bounds its rate.

Design goal: the dispatcher's deliveries/s to a broker ≥ 90% of the bare loop's.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aio_pika
import nats
import psutil
import redis.asyncio as aioredis

from app.targets.amqp import BATCH as AMQP_BATCH
from app.targets.nats import BATCH as NATS_BATCH
from app.targets.redis import BATCH as REDIS_BATCH
from bench.common import (
    Context,
    Databases,
    Goal,
    cpu_seconds,
    insert_due,
    job_row,
    named_cpu_seconds,
    processes,
    retrying,
    server_cpu_seconds,
    start_dispatcher,
)
from bench.delivery import fired, pending_runs
from bench.sqs import _wait_delivered

CONNECTIONS = {
    "cache": "redis://127.0.0.1:6379/0",
    "rabbit": "amqp://guest:guest@127.0.0.1:5672//",
    "events": "nats://127.0.0.1:4222",
}
IN_FLIGHT = 8  # batches the bare loop keeps in flight
FIELDS = {"runId": "", "jobId": "", "scheduledFor": "2030-01-01T09:30:00Z"}
Send = Callable[[list[int]], Awaitable[None]]


def brokers(ctx: Context, databases: Databases, kind: str) -> None:
    count = ctx.sizes.broker_messages
    for broker in ("redis", "amqp", "nats"):
        for run in range(ctx.runs):
            print(
                f"  {broker} {kind}: {count:,} messages, bare loop then dispatcher, run {run + 1}"
            )
            name = f"bench-{uuid.uuid4().hex[:10]}"
            bare = asyncio.run(_bare(ctx, broker, kind, count, name + "-bare"))
            _dispatcher(ctx, databases, kind, broker, count, bare, name)
            asyncio.run(_clean(broker, name))


def _fields() -> dict[str, str]:
    return FIELDS | {"runId": str(uuid.uuid4()), "jobId": str(uuid.uuid4())}


async def _loop(count: int, batch: int, send: Send) -> float:
    """messages/s of `send` over `count` messages in batches, IN_FLIGHT batches at once."""
    batches = [list(range(at, min(count, at + batch))) for at in range(0, count, batch)]
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for each in batches:
        queue.put_nowait(each)

    async def worker() -> None:
        while not queue.empty():
            await send(queue.get_nowait())

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return count / (time.perf_counter() - began)


SERVERS = {"redis": "redis-server", "amqp": "beam.smp", "nats": "nats-server"}


def broker_cpu_seconds(broker: str) -> float:
    """CPU seconds the broker's server processes have used (those alive now)."""
    return named_cpu_seconds(SERVERS[broker])


def _cpu_rows(ctx: Context, kind: str, label: str, count: int, spent: dict[str, float]) -> None:
    """µs of CPU per message, each part and all of them."""
    for part, seconds in [*spent.items(), ("all", sum(spent.values()))]:
        ctx.results.add("brokers", kind, f"{label}: CPU per message, {part}",
                        1e6 * seconds / count, "µs")  # fmt: skip


async def _bare(ctx: Context, broker: str, kind: str, count: int, name: str) -> float:
    before = cpu_seconds(os.getpid()), broker_cpu_seconds(broker)
    rate = await _bare_loop(broker, count, name)
    client, server = cpu_seconds(os.getpid()) - before[0], broker_cpu_seconds(broker) - before[1]
    ctx.results.add(
        "brokers", kind, f"{broker}: bare client loop, {count:,} messages", rate, "msgs/s"
    )
    _cpu_rows(ctx, kind, f"{broker}: bare loop", count,
              {"the loop's process": client, "the broker": server})  # fmt: skip
    return rate


async def _bare_loop(broker: str, count: int, name: str) -> float:
    if broker == "redis":
        client = aioredis.Redis.from_url(CONNECTIONS["cache"])

        async def send_redis(batch: list[int]) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for i in batch:
                    pipe.xadd(name, {"payload": f"m{i}", **_fields()})
                await pipe.execute()

        rate = await _loop(count, REDIS_BATCH, send_redis)
        await client.delete(name)
        await client.aclose()
    elif broker == "amqp":
        connection = await aio_pika.connect(CONNECTIONS["rabbit"])
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(name)

        async def send_amqp(batch: list[int]) -> None:
            await asyncio.gather(*(channel.default_exchange.publish(
                aio_pika.Message(f"m{i}".encode(), message_id=str(uuid.uuid4()),
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers=_fields()),
                name, mandatory=True) for i in batch))  # fmt: skip

        rate = await _loop(count, AMQP_BATCH, send_amqp)
        await queue.delete(if_unused=False, if_empty=False)
        await connection.close()
    else:
        client = await nats.connect(CONNECTIONS["events"])
        js = client.jetstream()
        await js.add_stream(name=name, subjects=[f"{name}.>"])

        async def send_nats(batch: list[int]) -> None:
            def headers() -> dict[str, str]:
                return {"Nats-Msg-Id": str(uuid.uuid4()), **_fields()}

            subject = f"{name}.fired"  # acks on one subscription, as the target has them
            acks = [await js.publish_async(subject, f"m{i}".encode(), headers=headers())
                    for i in batch]  # fmt: skip
            await asyncio.gather(*acks)

        rate = await _loop(count, NATS_BATCH, send_nats)
        await js.delete_stream(name)
        await client.close()
    return rate


def _dispatcher_cpu(pid: int, broker: str, kind: str) -> dict[str, float]:
    """CPU seconds so far: the scheduler process, its delivery process, the servers."""
    children = psutil.Process(pid).children(recursive=True)
    spent = {
        "the scheduler process": cpu_seconds(pid),
        "its delivery process": sum(cpu_seconds(child.pid) for child in children),
        "the broker": broker_cpu_seconds(broker),
    }
    if kind == "postgresql":  # SQLite's work is the scheduler process's own
        spent["the database server"] = server_cpu_seconds()
    return spent


async def _prepare(broker: str, name: str) -> dict[str, Any]:
    """The destination for the dispatcher's run, made ready; its target spec."""
    if broker == "redis":
        return {"type": "redis", "connection": "cache", "stream": name}
    if broker == "amqp":
        async with await aio_pika.connect(CONNECTIONS["rabbit"]) as connection:
            await (await connection.channel()).declare_queue(name)
        return {"type": "amqp", "connection": "rabbit", "routingKey": name}
    client = await nats.connect(CONNECTIONS["events"])
    await client.jetstream().add_stream(name=name, subjects=[f"{name}.>"])
    await client.close()
    return {"type": "nats", "connection": "events", "subject": f"{name}.fired"}


async def _received(broker: str, name: str) -> int:
    if broker == "redis":
        client = aioredis.Redis.from_url(CONNECTIONS["cache"])
        length = int(await client.xlen(name))
        await client.aclose()
        return length
    if broker == "amqp":
        async with await aio_pika.connect(CONNECTIONS["rabbit"]) as connection:
            queue = await (await connection.channel()).declare_queue(name, passive=True)
            return int(queue.declaration_result.message_count or 0)
    client = await nats.connect(CONNECTIONS["events"])
    messages = (await client.jetstream().stream_info(name)).state.messages
    await client.close()
    return int(messages)


async def _clean(broker: str, name: str) -> None:
    if broker == "redis":
        client = aioredis.Redis.from_url(CONNECTIONS["cache"])
        await client.delete(name)
        await client.aclose()
    elif broker == "amqp":
        async with await aio_pika.connect(CONNECTIONS["rabbit"]) as connection:
            await (await connection.channel()).queue_delete(name)
    else:
        client = await nats.connect(CONNECTIONS["events"])
        await client.jetstream().delete_stream(name)
        await client.close()


def _dispatcher(
    ctx: Context, databases: Databases, kind: str, broker: str, count: int, bare: float,
    name: str,
) -> None:  # fmt: skip
    """The delivery loop alone (the jobs stored as fired at T, one run each due at T, as
    the webhook rows do), then firing included (the jobs due at T)."""
    add = ctx.results.add
    target = asyncio.run(_prepare(broker, name))
    delivering = f"{broker}: dispatcher, {count:,} messages"
    firing = f"{broker}: dispatcher, jobs due at T (firing included), {count:,} messages"
    for fired_at_t, label in ((True, delivering), (False, firing)):
        rate = retrying(
            partial(_dispatched, ctx, databases, kind, broker, name, target, count, fired_at_t)
        )
        figure, note = (None, rate) if isinstance(rate, str) else (rate, "")
        add("brokers", kind, label, figure, "msgs/s", note=note)
        if fired_at_t:  # a run that did not finish counts as not met
            ratio = figure / bare if figure is not None else None
            add("brokers", kind, f"{broker}: dispatcher ÷ bare loop", ratio, "x",
                Goal(">=", 0.90), note)  # fmt: skip


def _dispatched(
    ctx: Context, databases: Databases, kind: str, broker: str, name: str,
    target: dict[str, Any], count: int, fired_at_t: bool,
) -> float | str:  # fmt: skip
    """msgs/s from T (when the runs, or the jobs, were due) to the last delivered_at; or why
    there is no figure."""
    env = {"CONNECTIONS": json.dumps(CONNECTIONS)}
    with databases.fresh(kind) as database, processes(ctx) as procs:
        engine = database.engine()
        procs.append(start_dispatcher(ctx, database, f"{broker}-{kind}", env))
        now = datetime.now(UTC)

        def rows(due: datetime) -> list[dict[str, Any]]:
            made = [job_row(f"m{i}", due, now, target) for i in range(count)]
            return fired(made, due) if fired_at_t else made

        before = asyncio.run(_received(broker, name))
        made_runs = pending_runs if fired_at_t else None
        due, _ = insert_due(ctx, database, engine, count, rows, made_runs)
        cpu = _dispatcher_cpu(procs[0].popen.pid, broker, kind)  # before T: it idles until then
        timeout = 60 + count / 100
        delivered = _wait_delivered(engine, count, due.timestamp() + timeout)
        if delivered is None:
            return f"did not finish in {timeout:.0f} s"
        after = _dispatcher_cpu(procs[0].popen.pid, broker, kind)
        spent = {part: seconds - cpu[part] for part, seconds in after.items()}
        if fired_at_t:
            _cpu_rows(ctx, kind, f"{broker}: dispatcher", count, spent)
    got = asyncio.run(_received(broker, name)) - before
    if got != count:
        ctx.results.anomaly(f"{broker} {kind}: {got:,} messages for {count:,} runs")
    return count / (delivered - due.timestamp())
