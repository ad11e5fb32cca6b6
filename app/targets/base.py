"""What every target speaks: a batch of deliveries in, one outcome per delivery out.

Targets do no database work; the dispatcher records the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to hand one run to its target."""

    run_id: str
    job_id: str
    scheduled_for: datetime  # the run's nominal time, aware UTC
    payload: str
    target: dict[str, Any]  # the job's target spec, as stored (camelCase keys)
    attempt: int  # 1 for the first attempt


@dataclass(slots=True)
class Outcome:
    run_id: str
    ok: bool
    error: str | None = None
    permanent: bool = False  # True: retrying cannot help, the run goes dead at once
    retry_after: float | None = None  # seconds the target asked us to wait
    disable_job: bool = False  # the target said the job should stop (webhook 410)
    response_status: int | None = None
    response_ms: float | None = None
    response_body: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """A delivery failed; `permanent` says whether a retry could help."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Target(Protocol):
    def deliver(self, deliveries: list[Delivery]) -> list[Outcome]:
        """Deliver a batch; return exactly one Outcome per Delivery (any order). Never raises."""
        ...
