"""Celery target: a run becomes a Celery task message (message protocol v2) sent through
kombu to the broker the connection names (RabbitMQ or Redis), so any Celery worker
consuming that queue runs it. The task id is the run id: a repeat of the run is the same
task id, which is what Celery's own de-duplication (and result backend) go by.

The payload is the task's arguments as JSON: {"args": [...], "kwargs": {...}} (either may
be left out) or a bare array of args. A dead letter goes to its task as its one argument.

kombu is blocking, so calls go out on a small thread pool, each with a connection of the
connection's pool. On RabbitMQ, publisher confirms make the broker's ack the success, and
a queue that does not exist (a message to it would be dropped) is a permanent error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import kombu
from kombu.connection import ConnectionPool

from app.targets.base import BlockingTarget, Delivery, Outcome
from app.targets.common import BrokerTarget, down, down_text, failure, failures, run_fields
from app.targets.connections import UnknownConnection, redacted, scheme

logger = logging.getLogger(__name__)

BATCH = 10  # tasks one call sends
MAX_THREADS = 16
CONNECT_TIMEOUT = 3.0
CALL_TIMEOUT = 20.0
DEFAULT_QUEUE = "celery"  # Celery's task_default_queue
QUEUE_CHECK_TTL = 30.0  # seconds a queue found stays found
MAX_REPR = 1024  # argsrepr/kwargsrepr, as Celery shortens them
ORIGIN = f"scheduler@{socket.gethostname()}"
BROKER = "Celery broker"


def task_arguments(payload: str) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) of a payload, or ValueError saying what a payload must be."""
    shape = 'must be JSON: {"args": [...], "kwargs": {...}} or an array of args'
    try:
        value = json.loads(payload)
    except ValueError:
        raise ValueError(shape) from None
    if isinstance(value, list):
        return value, {}
    if not isinstance(value, dict) or set(value) - {"args", "kwargs"}:
        raise ValueError(shape)
    args, kwargs = value.get("args", []), value.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError(shape)
    return args, kwargs


def as_one_argument(value: Any) -> str:
    """A payload that hands `value` to the task as its one argument (a dead letter)."""
    return json.dumps({"args": [value]})


def task_message(d: Delivery) -> tuple[list[Any], dict[str, Any]]:
    """(body, headers) of the run's task message, protocol v2."""
    args, kwargs = task_arguments(d.payload)
    headers: dict[str, Any] = {
        "lang": "py",
        "task": d.target["task"],
        "id": d.run_id,
        "root_id": d.run_id,
        "parent_id": None,
        "group": None,
        "shadow": None,
        "eta": None,
        "expires": None,
        "retries": 0,
        "timelimit": [None, None],
        "argsrepr": repr(args)[:MAX_REPR],
        "kwargsrepr": repr(kwargs)[:MAX_REPR],
        "origin": ORIGIN,
        "ignore_result": False,
        **run_fields(d),
    }
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    return [args, kwargs, embed], headers


class _NoQueue(Exception):
    pass


class CeleryTarget(BrokerTarget, BlockingTarget):
    kind = "celery"
    batch_size = BATCH
    call_timeout = CALL_TIMEOUT

    def __init__(self, connections: Mapping[str, str], max_threads: int = MAX_THREADS) -> None:
        BrokerTarget.__init__(self, connections)
        BlockingTarget.__init__(self, max_threads, "celery")
        self._max_threads = max_threads
        self._pools: dict[str, ConnectionPool] = {}
        self._queues: dict[tuple[str, str], float] = {}  # (url, queue) -> checked until
        self._lock = threading.Lock()

    def close(self) -> None:
        super().close()
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.force_close_all()

    def send(self, deliveries: list[Delivery]) -> list[Outcome]:
        """Send the batch's tasks (blocking); one outcome per delivery, in order."""
        try:
            url = self.url_of(deliveries[0].target)
        except UnknownConnection as exc:
            return failures(deliveries, str(exc), permanent=True)
        try:
            with self._broker_pool(url).acquire(block=True, timeout=CALL_TIMEOUT / 2) as conn:
                return self._send_on(conn, url, deliveries)
        except Exception as exc:  # no connection to be had: the broker is away
            logger.warning("celery unreachable", extra={"url": redacted(url), "error": repr(exc)})
            return down(deliveries, BROKER, exc)

    def _broker_pool(self, url: str) -> ConnectionPool:
        with self._lock:
            pool = self._pools.get(url)
            if pool is None:
                options = {"confirm_publish": True} if scheme(url).startswith("amqp") else {}
                connection = kombu.Connection(
                    url, connect_timeout=CONNECT_TIMEOUT, transport_options=options
                )
                pool = self._pools[url] = connection.Pool(limit=self._max_threads)
            return pool

    def _send_on(self, conn: Any, url: str, deliveries: list[Delivery]) -> list[Outcome]:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT)
        except Exception as exc:
            conn.collect()
            return down(deliveries, BROKER, exc)
        producer = conn.Producer()
        outcomes = []
        for d in deliveries:
            started = time.monotonic()
            outcome = self._send_one(conn, producer, url, d)
            outcome.response_ms = (time.monotonic() - started) * 1000
            outcomes.append(outcome)
            if outcome.unreachable:  # the connection broke: the rest would fail the same way
                conn.collect()
                rest = deliveries[len(outcomes) :]
                return outcomes + failures(rest, outcome.error or "", unreachable=True)
        return outcomes

    def _send_one(self, conn: Any, producer: Any, url: str, d: Delivery) -> Outcome:
        queue = str(d.target.get("queue") or DEFAULT_QUEUE)
        try:
            body, headers = task_message(d)
            self._check_queue(conn, url, queue)
            producer.publish(
                body, exchange="", routing_key=queue, serializer="json", headers=headers,
                correlation_id=d.run_id, delivery_mode=2, retry=False,
            )  # fmt: skip
        except ValueError as exc:
            return failure(d, f"Celery payload {exc}", permanent=True)
        except _NoQueue as exc:
            return failure(d, str(exc), permanent=True)
        except conn.connection_errors as exc:
            return failure(d, down_text(BROKER, exc), unreachable=True)
        except conn.channel_errors as exc:
            return failure(d, f"Celery broker refused the message: {exc}")
        return Outcome(d.run_id, ok=True, extra={"taskId": d.run_id})

    def _check_queue(self, conn: Any, url: str, queue: str) -> None:
        """On RabbitMQ, a queue nobody declared drops what is sent to it: refuse that.
        (Redis keeps a list for a worker that comes later.)"""
        if not scheme(url).startswith("amqp"):
            return
        if self._queues.get((url, queue), 0.0) > time.monotonic():
            return
        channel = conn.channel()
        try:
            channel.queue_declare(queue=queue, passive=True)
        except conn.channel_errors:
            raise _NoQueue(f"Celery: no queue named {queue!r} (404 NOT_FOUND)") from None
        finally:
            with contextlib.suppress(Exception):  # a channel the broker already closed
                channel.close()
        self._queues[(url, queue)] = time.monotonic() + QUEUE_CHECK_TTL
