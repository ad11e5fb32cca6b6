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

    @classmethod
    def of(cls, spec: Mapping[str, Any] | None, defaults: RetryPolicy | None = None) -> RetryPolicy:
        """The job's `retry` (API names), each missing field taken from `defaults`."""
        base = defaults or DEFAULT_RETRY
        spec = spec or {}
        return cls(
            attempts=int(spec.get("attempts", base.attempts)),
            backoff=float(spec.get("backoff", base.backoff)),
            max_backoff=float(spec.get("maxBackoff", base.max_backoff)),
        )

    def as_spec(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "backoff": self.backoff, "maxBackoff": self.max_backoff}

    def gives_up(self, attempt: int) -> bool:
        """True when `attempt` (1 for the first) was the last one allowed."""
        return attempt >= self.attempts

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before the attempt after `attempt`: exponential backoff with equal jitter,
        never sooner than the target asked, never longer than max_backoff."""
        step = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay = step / 2 + rng.uniform(0, step / 2)
        return max(delay, min(retry_after or 0.0, self.max_backoff))


DEFAULT_RETRY = RetryPolicy()
