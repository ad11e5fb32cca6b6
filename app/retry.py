"""The retry policy: how often a failed delivery is tried again, and how long to wait.

Built once per run from the job's `retry` over the configured defaults, and used for every
attempt, the first included. The defaults are written here and nowhere else.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # attempts in all, the first included
    backoff: float = 2.0  # seconds before the first retry (before jitter)
    max_backoff: float = 300.0  # the longest wait, whatever a target asks for
    max_age: float | None = None  # seconds after its fire a run is no longer retried; None: never

    @classmethod
    def of(cls, spec: Mapping[str, Any] | None, defaults: RetryPolicy | None = None) -> RetryPolicy:
        """The job's `retry` (API names), each missing field taken from `defaults`."""
        base = defaults or DEFAULT_RETRY
        spec = spec or {}
        return cls(
            attempts=int(spec.get("attempts", base.attempts)),
            backoff=float(spec.get("backoff", base.backoff)),
            max_backoff=float(spec.get("maxBackoff", base.max_backoff)),
            max_age=_seconds_or_none(spec.get("maxAge", base.max_age)),
        )

    def as_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "maxBackoff": self.max_backoff,
        }
        if self.max_age is not None:
            spec["maxAge"] = self.max_age
        return spec

    def gives_up(self, attempt: int, age: float = 0.0) -> bool:
        """True when `attempt` (1 for the first) was the last one allowed, or when the next
        attempt would start `age` seconds after the run fired, later than max_age allows."""
        return attempt >= self.attempts or self.too_old(age)

    def too_old(self, age: float) -> bool:
        """True when a run `age` seconds past its fire is beyond max_age."""
        return self.max_age is not None and age > self.max_age

    def too_old_error(self) -> str:
        """Why a run too old for another attempt is dead."""
        return f"not retried: older than its max age ({self.max_age:g} s)"

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before the attempt after `attempt`: exponential backoff with equal jitter,
        never sooner than the target asked, never longer than max_backoff."""
        step = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay = step / 2 + rng.uniform(0, step / 2)
        return max(delay, min(retry_after or 0.0, self.max_backoff))


def _seconds_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


DEFAULT_RETRY = RetryPolicy()
