"""What the broker targets (redis, amqp, nats, celery) share: the run's fields every
message carries, outcomes, short errors, and the connection a target names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.targets.base import Delivery, Outcome
from app.targets.connections import UnknownConnection
from app.targets.sqs import rfc3339

MAX_ERROR_CHARS = 200


class BrokerTarget:
    """What every broker target is: connections by name, an origin per connection (its
    in-flight limit and back-off are the broker's), one timeout for a call."""

    in_transaction = False
    bounds_its_calls = False  # broker clients wait on acks: the loop bounds the call
    kind = ""  # the target type
    call_timeout = 10.0  # seconds

    def __init__(self, connections: Mapping[str, str]) -> None:
        self._connections = dict(connections)

    def origin(self, target: Mapping[str, Any]) -> str:
        return f"{self.kind}:{target.get('connection')}"

    def timeout(self, delivery: Delivery) -> float:
        return self.call_timeout

    def url_of(self, target: Mapping[str, Any]) -> str:
        """The URL of the connection the target names; UnknownConnection if none."""
        return connection_url(self._connections, target)


def run_fields(d: Delivery) -> dict[str, str]:
    """runId (for de-duplication), jobId and scheduledFor, as every message carries them."""
    return {"runId": d.run_id, "jobId": d.job_id, "scheduledFor": rfc3339(d.scheduled_for)}


def connection_url(connections: Mapping[str, str], target: Mapping[str, Any]) -> str:
    """The URL of the connection a stored target names; UnknownConnection if the settings
    no longer have it (a permanent error until someone fixes the job or the settings)."""
    name = str(target.get("connection") or "")
    url = connections.get(name)
    if url is None:
        raise UnknownConnection(f"no connection named {name!r} in CONNECTIONS")
    return url


def failure(d: Delivery, error: str, permanent: bool = False, unreachable: bool = False) -> Outcome:
    return Outcome(
        d.run_id, ok=False, error=short(error), permanent=permanent, unreachable=unreachable
    )


def failures(
    deliveries: Any, error: str, permanent: bool = False, unreachable: bool = False
) -> list[Outcome]:
    return [failure(d, error, permanent, unreachable) for d in deliveries]


def down(deliveries: Any, what: str, exc: BaseException) -> list[Outcome]:
    """Every delivery failed because `what` (the broker) could not be reached: transient,
    and its origin backs off."""
    return failures(deliveries, down_text(what, exc), unreachable=True)


def down_text(what: str, exc: BaseException) -> str:
    return f"{what} unreachable ({type(exc).__name__})"


def short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
