"""Part 6: SQS. The dispatcher delivering to moto (server mode, on loopback, in its own process)
against a bare boto3 SendMessageBatch loop with the same concurrency and message shape. Both
spread their messages over the same number of fresh queues (see QUEUE_DEPTH).

Design goal: the dispatcher's throughput to an endpoint ≥ 90% of the bare loop's.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from sqlalchemy import func, select

from app.targets.sqs import MAX_BATCH_ENTRIES, MAX_THREADS
from bench.common import (
    Context,
    Databases,
    Goal,
    insert_due,
    job_row,
    processes,
    retrying,
    runs,
    start_dispatcher,
    wait_all_fired,
)
from tests.support.processes import Proc, free_port, wait_until

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The SQS target's client settings (app/targets/sqs.py), so the bare loop is no better armed.
CLIENT_CONFIG = Config(
    retries={"mode": "standard"}, connect_timeout=5, read_timeout=5,
    max_pool_connections=MAX_THREADS,
)  # fmt: skip
# Calls in flight at once: the target's thread pool bounds them (the lanes allow more).
MAX_IN_FLIGHT = MAX_THREADS
# Messages per queue at most: moto counts every message of a queue on each send, so a send
# slows as its queue fills; a run spreads its messages over enough fresh queues.
QUEUE_DEPTH = 200
MOTO = (
    "import sys, time; from moto.server import ThreadedMotoServer; "
    "ThreadedMotoServer(ip_address='127.0.0.1', port=int(sys.argv[1]), verbose=False).start(); "
    "time.sleep(10**6)"
)
endpoint: dict[str, Any] = {}  # the one moto server of this bench: {"proc": ..., "url": ...}


def start_endpoint(ctx: Context) -> str:
    if not endpoint:
        port = free_port()
        proc = Proc([sys.executable, "-c", MOTO, str(port)], dict(os.environ), ctx.log("moto"))
        endpoint.update(proc=proc, url=f"http://127.0.0.1:{port}")
        wait_until(_answers, 30, proc, step=0.2)
        _warm_up()
    return str(endpoint["url"])


def _answers() -> bool:
    try:
        _client().list_queues()
        return True
    except BotoCoreError:
        return False


def _warm_up() -> None:
    """moto loads its SQS backend on first use: pay that before anything is timed."""
    client = _client()
    url = client.create_queue(QueueName=f"warm-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    client.send_message_batch(QueueUrl=url, Entries=[_entry(i) for i in range(10)])
    client.delete_queue(QueueUrl=url)
    client.close()


def stop_endpoint(ctx: Context) -> None:
    if endpoint:
        proc = endpoint["proc"]
        if proc.popen.poll() is None:
            proc.kill()
        endpoint.clear()


def _client() -> Any:
    session = boto3.session.Session(
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return session.client("sqs", endpoint_url=endpoint["url"], config=CLIENT_CONFIG)


def _queue_depth(client: Any, url: str) -> int:
    attributes = client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@contextmanager
def fresh_queues(client: Any, prefix: str, count: int) -> Iterator[list[str]]:
    """Enough new queues that none holds more than QUEUE_DEPTH of `count` messages."""
    urls = [
        client.create_queue(QueueName=f"{prefix}-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        for _ in range(math.ceil(count / QUEUE_DEPTH))
    ]
    try:
        yield urls
    finally:
        for url in urls:
            client.delete_queue(QueueUrl=url)


def sqs(ctx: Context, databases: Databases, kind: str) -> None:
    start_endpoint(ctx)
    count = ctx.sizes.sqs_messages
    for run in range(ctx.runs):
        print(f"  sqs {kind}: {count:,} messages, bare loop then dispatcher, run {run + 1}")
        bare = _bare(ctx, kind, count)
        retrying(partial(_dispatcher, ctx, databases, kind, count, bare))


def _entry(index: int) -> dict[str, Any]:
    """A message as the SQS target sends it: the payload and three attributes."""
    strings = {"runId": str(uuid.uuid4()), "jobId": str(uuid.uuid4()),
               "scheduledFor": "2030-01-01T09:30:00Z"}  # fmt: skip
    return {
        "Id": str(index % MAX_BATCH_ENTRIES),
        "MessageBody": f"sqs {index}",
        "MessageAttributes": {
            name: {"DataType": "String", "StringValue": value} for name, value in strings.items()
        },
    }


def _bare(ctx: Context, kind: str, count: int) -> float:
    """messages/s of a bare SendMessageBatch loop, MAX_IN_FLIGHT calls in flight; message i
    goes to queue i mod queues, in batches of 10 per queue, as the target groups them."""
    client = _client()
    with fresh_queues(client, "bare", count) as urls:
        calls = []
        for q, url in enumerate(urls):
            mine = range(q, count, len(urls))
            calls += [
                (url, [_entry(k) for k in range(len(mine))[at : at + MAX_BATCH_ENTRIES]])
                for at in range(0, len(mine), MAX_BATCH_ENTRIES)
            ]

        def send(call: tuple[str, list[dict[str, Any]]]) -> int:
            answer = client.send_message_batch(QueueUrl=call[0], Entries=call[1])
            return len(answer.get("Successful", []))

        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT) as pool:
            sent = sum(pool.map(send, calls))
        rate = count / (time.perf_counter() - began)
    client.close()
    if sent != count:
        ctx.results.anomaly(f"sqs bare loop: {sent:,} of {count:,} messages accepted")
    ctx.results.add("sqs", kind, f"bare boto3 loop, {count:,} messages", rate, "msgs/s")
    return rate


def _dispatcher(ctx: Context, databases: Databases, kind: str, count: int, bare: float) -> None:
    client = _client()
    env = CREDENTIALS | {"AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL_SQS": endpoint["url"],
                         "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    add, label = ctx.results.add, f"{count:,} messages"
    with fresh_queues(client, "dispatch", count) as urls:
        with databases.fresh(kind) as database, processes(ctx) as procs:
            engine = database.engine()
            procs.append(start_dispatcher(ctx, database, f"sqs-{kind}", env))
            now = datetime.now(UTC)

            def rows(due: datetime) -> list[dict[str, Any]]:
                targets = [{"type": "sqs", "queueUrl": url} for url in urls]
                return [job_row(f"sqs {i}", due, now, targets[i % len(urls)]) for i in range(count)]

            due, _ = insert_due(ctx, database, engine, count, rows)
            timeout = 60 + count / 100
            fired = wait_all_fired(engine, due, procs, timeout).done
            delivered = _wait_delivered(engine, count, due.timestamp() + timeout)
            if fired is None or delivered is None:
                note = f"did not finish in {timeout:.0f} s"
                add("sqs", kind, f"dispatcher, {label}", None, "msgs/s", note=note)
                return
            rate = count / (delivered - due.timestamp())
            add("sqs", kind, f"dispatcher, {label}", rate, "msgs/s")
            add("sqs", kind, f"dispatcher ÷ bare loop, {label}", rate / bare, "x",
                Goal(">=", 0.90))  # fmt: skip
        depth = sum(_queue_depth(client, url) for url in urls)
        if depth != count:
            ctx.results.anomaly(f"sqs {kind}: {depth:,} messages in the queues for {count:,} runs")
    client.close()


def _wait_delivered(engine: Any, count: int, deadline: float) -> float | None:
    """When the last run was recorded delivered (max delivered_at, epoch s); None: timeout."""
    query = select(func.count(), func.max(runs.c.delivered_at)).where(runs.c.status == "delivered")
    with engine.connect() as conn:
        while time.time() < deadline:
            delivered, last = conn.execute(query).one()
            conn.rollback()
            if delivered >= count:
                return float(last.timestamp())
            time.sleep(0.05)
    return None
