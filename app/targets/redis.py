"""Redis target: a run becomes a stream entry (XADD, optionally capped with MAXLEN ~) or a
list item (LPUSH of a JSON object), with the fields payload, runId, jobId, scheduledFor.

A batch is one pipeline (not a transaction): one round trip, and one answer per command,
so a key of the wrong type fails its own runs only.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from app.targets.base import Delivery, Outcome
from app.targets.common import BrokerTarget, down, failure, failures, run_fields, short
from app.targets.connections import UnknownConnection

logger = logging.getLogger(__name__)

BATCH = 100  # commands in one pipeline
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 5.0
CALL_TIMEOUT = CONNECT_TIMEOUT + SOCKET_TIMEOUT + 2
# Replies about the key or the account, not the server's health: resending cannot help.
PERMANENT_REPLIES = ("WRONGTYPE", "NOPERM")


class RedisTarget(BrokerTarget):
    kind = "redis"
    batch_size = BATCH
    call_timeout = CALL_TIMEOUT

    def __init__(self, connections: Mapping[str, str]) -> None:
        super().__init__(connections)
        self._clients: dict[str, aioredis.Redis] = {}  # by URL, made on the delivery loop

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        try:
            client = self._client(deliveries[0].target)
        except UnknownConnection as exc:
            return failures(deliveries, str(exc), permanent=True)
        started = time.monotonic()
        try:
            async with client.pipeline(transaction=False) as pipe:
                for d in deliveries:
                    _command(pipe, d)
                replies = await pipe.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            logger.warning("redis unreachable", extra={"error": str(exc)[:200]})
            return down(deliveries, "Redis", exc)
        except RedisError as exc:
            return failures(deliveries, f"Redis error: {exc}")
        elapsed_ms = (time.monotonic() - started) * 1000
        pairs = zip(deliveries, replies, strict=True)
        return [_outcome(d, reply, elapsed_ms) for d, reply in pairs]

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client(self, target: Mapping[str, Any]) -> aioredis.Redis:
        url = self.url_of(target)
        client = self._clients.get(url)
        if client is None:
            client = aioredis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                # The dispatcher retries with backoff; a call of its own should fail fast.
                retry=Retry(NoBackoff(), 0),
                max_connections=64,
            )
            self._clients[url] = client
        return client


def _command(pipe: Any, d: Delivery) -> None:
    fields = {"payload": d.payload, **run_fields(d)}
    target = d.target
    if "stream" in target:
        max_len = target.get("maxLen")
        pipe.xadd(target["stream"], fields, maxlen=max_len, approximate=True)
    else:
        pipe.lpush(target["list"], json.dumps(fields, separators=(",", ":")))


def _outcome(d: Delivery, reply: Any, elapsed_ms: float) -> Outcome:
    if isinstance(reply, ResponseError):
        text = str(reply)
        outcome = failure(d, f"Redis: {text}", permanent=text.startswith(PERMANENT_REPLIES))
    elif isinstance(reply, Exception):
        outcome = failure(d, short(f"Redis: {reply}"))
    else:
        entry = reply.decode() if isinstance(reply, bytes) else str(reply)
        outcome = Outcome(d.run_id, ok=True, extra={"messageId": entry})
    outcome.response_ms = elapsed_ms
    return outcome
