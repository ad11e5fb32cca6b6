"""AMQP (RabbitMQ) target: a run is published to an exchange with a routing key, as a
persistent message whose message id and `runId` header are the run id, on a channel with
publisher confirms: the broker's ack is the success. A message the broker returns
(mandatory, nothing bound to take it) or nacks is a failure that is retried.

Publishing to an exchange that does not exist would close the channel under every other
message in flight, so an exchange is first checked on a channel of its own (passive
declare, remembered for a while): a missing one is a permanent error for its runs only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika import exceptions as amqp_errors
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from pamqp.commands import Basic

from app.targets.base import Delivery, Outcome
from app.targets.common import BrokerTarget, down, down_text, failure, failures, run_fields
from app.targets.connections import UnknownConnection, redacted

logger = logging.getLogger(__name__)

BATCH = 50  # messages one call publishes, their confirms awaited together
CONNECT_TIMEOUT = 5.0
CONFIRM_TIMEOUT = 10.0
CALL_TIMEOUT = CONNECT_TIMEOUT + CONFIRM_TIMEOUT + 5
EXCHANGE_CHECK_TTL = 30.0  # seconds an exchange found stays found
BROKER = "AMQP broker"


class _Unreachable(Exception):
    pass


class _NoExchange(Exception):
    pass


@dataclass
class _Link:
    """One connection and its publishing channel, per URL."""

    connection: AbstractConnection
    channel: AbstractChannel
    exchanges: dict[str, float] = field(default_factory=dict)  # name -> checked until

    @property
    def usable(self) -> bool:
        return not self.connection.is_closed and not self.channel.is_closed


class AmqpTarget(BrokerTarget):
    kind = "amqp"
    batch_size = BATCH
    call_timeout = CALL_TIMEOUT

    def __init__(self, connections: Mapping[str, str]) -> None:
        super().__init__(connections)
        self._links: dict[str, _Link] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        target = deliveries[0].target  # one origin: one connection
        try:
            url = self.url_of(target)
            link = await self._link(url)
        except UnknownConnection as exc:
            return failures(deliveries, str(exc), permanent=True)
        except _Unreachable as exc:
            return failures(deliveries, str(exc), unreachable=True)
        by_exchange: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_exchange.setdefault(str(d.target.get("exchange", "")), []).append(d)
        results = await asyncio.gather(
            *(self._publish(url, link, name, group) for name, group in by_exchange.items())
        )
        return [outcome for group in results for outcome in group]

    async def aclose(self) -> None:
        links, self._links = list(self._links.values()), {}
        for link in links:
            try:
                await link.connection.close()
            except Exception:  # closing a connection that already broke
                logger.debug("amqp close failed", exc_info=True)

    async def _link(self, url: str) -> _Link:
        link = self._links.get(url)
        if link is not None and link.usable:
            return link
        async with self._locks.setdefault(url, asyncio.Lock()):
            link = self._links.get(url)
            if link is not None and link.usable:
                return link
            try:
                connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT)
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            except (amqp_errors.AMQPError, OSError, TimeoutError) as exc:
                logger.warning("amqp unreachable", extra={"url": redacted(url), "error": repr(exc)})
                raise _Unreachable(down_text(BROKER, exc)) from None
            link = self._links[url] = _Link(connection, channel)
            return link

    async def _exchange(self, link: _Link, name: str) -> AbstractExchange:
        if name == "":
            return link.channel.default_exchange
        if link.exchanges.get(name, 0.0) < time.monotonic():
            checker = await link.connection.channel(publisher_confirms=False)
            try:
                await checker.declare_exchange(name, passive=True)
            except amqp_errors.ChannelNotFoundEntity:
                raise _NoExchange(f"AMQP: no exchange named {name!r} (404 NOT_FOUND)") from None
            finally:
                if not checker.is_closed:
                    await checker.close()
            link.exchanges[name] = time.monotonic() + EXCHANGE_CHECK_TTL
        return await link.channel.get_exchange(name, ensure=False)

    async def _publish(
        self, url: str, link: _Link, name: str, group: list[Delivery]
    ) -> list[Outcome]:
        started = time.monotonic()
        try:
            exchange = await self._exchange(link, name)
        except _NoExchange as exc:
            return failures(group, str(exc), permanent=True)
        except (amqp_errors.AMQPError, OSError, TimeoutError) as exc:
            self._links.pop(url, None)
            return down(group, BROKER, exc)
        answers = await asyncio.gather(
            *(exchange.publish(_message(d), str(d.target.get("routingKey", "")), mandatory=True,
                               timeout=CONFIRM_TIMEOUT) for d in group),
            return_exceptions=True,
        )  # fmt: skip
        elapsed_ms = (time.monotonic() - started) * 1000
        outcomes = [self._outcome(url, d, answer) for d, answer in zip(group, answers, strict=True)]
        for outcome in outcomes:
            outcome.response_ms = elapsed_ms
        return outcomes

    def _outcome(self, url: str, d: Delivery, answer: Any) -> Outcome:
        if not isinstance(answer, BaseException):
            return Outcome(d.run_id, ok=True, extra={"messageId": d.run_id})
        if isinstance(answer, amqp_errors.DeliveryError):
            returned = isinstance(answer.frame, Basic.Return)
            why = "returned unroutable (no queue bound to its key)" if returned else "nacked"
            return failure(d, f"AMQP: message {why}")
        if isinstance(answer, TimeoutError):
            return failure(d, "AMQP: no publisher confirm in time")
        self._links.pop(url, None)  # a broken connection or channel: the next call reconnects
        return failure(d, down_text(BROKER, answer), unreachable=True)


def _message(d: Delivery) -> aio_pika.Message:
    return aio_pika.Message(
        body=d.payload.encode(),
        message_id=d.run_id,  # consumers de-duplicate on it
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=dict(run_fields(d)),
        content_encoding="utf-8",
    )
