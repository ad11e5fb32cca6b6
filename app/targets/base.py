"""What every target speaks.

A remote target (SQS, webhook, ...) takes a small batch of deliveries and answers one
Outcome per delivery; the delivery loop calls it on its event loop, many calls in flight
at once, at most `max_in_flight` for one origin. Targets do no database work: the
delivery loop records the outcomes.

A target that delivers inside the fire transaction (the built-in queue) says so with
`in_transaction = True` and writes its deliveries with the firing's connection instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import Connection


def reduce_by_fields(self: Any) -> tuple[Any, tuple[Any, ...]]:
    """How a slots dataclass crosses a process boundary: its fields in order (pickle's
    default for slots dataclasses asks dataclasses.fields() for every object)."""
    kind = type(self)
    fields = _FIELDS.get(kind)
    if fields is None:  # one getter per class, reading all its fields at once (two or more)
        fields = _FIELDS[kind] = attrgetter(*kind.__slots__)
    return kind, fields(self)


_FIELDS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to hand one run to its target."""

    run_id: str
    job_id: str
    scheduled_for: datetime  # the run's nominal time, aware UTC
    payload: str
    target: dict[str, Any]  # the job's target spec, as stored (camelCase keys)
    attempt: int  # 1 for the first attempt

    __reduce__ = reduce_by_fields

    def log_context(self) -> dict[str, Any]:
        """What a log line about this delivery names (never a header, secret or payload)."""
        return {
            "job_id": self.job_id,
            "run_id": self.run_id,
            "target": target_summary(self.target),
            "attempt": self.attempt,
        }


def target_summary(target: Mapping[str, Any]) -> str:
    """A target in a log line: its type and where, without query strings or credentials."""
    kind = str(target.get("type", "?"))
    where = target.get("url") or target.get("queueUrl") or target.get("name") or ""
    text = str(where).split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = text.partition("://")
    if sep:  # drop user:password@ from a URL
        host, slash, path = rest.partition("/")
        text = f"{scheme}://{host.rsplit('@', 1)[-1]}{slash}{path}"
    return f"{kind} {text}".strip()


@dataclass(slots=True)
class Outcome:
    run_id: str
    ok: bool
    error: str | None = None
    permanent: bool = False  # True: retrying cannot help, the run goes dead at once
    retry_after: float | None = None  # seconds the target asked us to wait
    disable_job: bool = False  # the target said the job should stop (webhook 410)
    unreachable: bool = False  # no connection could be made: back the whole origin off
    response_status: int | None = None
    response_ms: float | None = None
    response_body: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    __reduce__ = reduce_by_fields


class Target(Protocol):
    """A remote destination, driven by the delivery loop's event loop."""

    in_transaction: bool  # False: delivered by the delivery loop
    batch_size: int  # the most deliveries one call takes (SQS: 10, webhook: 1)
    # True: the target's own client ends every call within timeout() (the delivery loop
    # then sets no timer of its own per call); False: the loop abandons calls that overrun.
    bounds_its_calls: bool

    def origin(self, target: Mapping[str, Any]) -> str:
        """The destination a job's target (its stored spec) delivers to, e.g.
        'https://host:443': deliveries to one origin share its in-flight limit and its
        back-off when it cannot be reached. Asked when runs are fired and claimed."""
        ...

    def timeout(self, delivery: Delivery) -> float:
        """The longest one call for this delivery may take, in seconds (its lease covers it)."""
        ...

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Deliver a batch (at most batch_size, all to one origin); exactly one Outcome per
        Delivery, any order. Never raises."""
        ...

    async def aclose(self) -> None:
        """Release connections; called on the event loop that delivered."""
        ...


class BlockingTarget:
    """The Target methods of one whose client blocks (boto3, kombu): its calls run on a
    thread pool of its own, the delivery loop deciding how many are in flight. A subclass
    gives send(), blocking, one Outcome per Delivery in order."""

    in_transaction = False
    bounds_its_calls = False  # a thread blocked in a client call is the loop's to abandon

    def __init__(self, max_threads: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix=name)

    def send(self, deliveries: list[Delivery]) -> list[Outcome]:
        raise NotImplementedError

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.send, list(deliveries))

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class InTransactionTarget(Protocol):
    """A target whose delivery is a row written in the fire transaction itself."""

    in_transaction: bool  # True

    def write(self, conn: Connection, deliveries: Sequence[Delivery], now: datetime) -> None:
        """Write these deliveries with the caller's connection, in its transaction."""
        ...
