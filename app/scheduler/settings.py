"""The scheduler process's settings, read once from the application's configuration."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.retry import RetryPolicy

HELD_SECONDS = 1.0  # a fast origin's share of held runs: what it answers in this long


@dataclass(frozen=True)
class DispatcherSettings:
    fire_batch: int  # jobs claimed per fire transaction (and about as many runs written)
    delivery_batch: int  # runs claimed per delivery transaction
    lease: float  # the shortest lease of a run in flight, seconds
    lease_margin: float  # a lease is at least the call's timeout plus this
    misfire_grace: float  # seconds late before an occurrence counts as missed (skip)
    catch_up_limit: int  # misfire "all" fires at most this many missed occurrences
    max_in_flight: int  # delivery calls in flight, all origins together
    origin_in_flight: int  # delivery calls in flight to one origin (a target may lower it)
    max_held: int  # runs the delivery loop holds at once (waiting for a slot or in flight)
    origin_backoff: float  # the longest an unreachable origin is left alone, seconds
    default_retry: RetryPolicy
    outcome_linger: float = 0.005  # outcomes arriving this close together share a write
    fire_workers: int = 1  # firing loops side by side (PostgreSQL only: SQLite has one writer)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DispatcherSettings:
        return cls(
            fire_batch=int(config["DISPATCH_BATCH_SIZE"]),
            delivery_batch=int(config["DELIVERY_BATCH_SIZE"]),
            lease=float(config["DELIVERY_LEASE"]),
            lease_margin=float(config["DELIVERY_LEASE_MARGIN"]),
            misfire_grace=float(config["MISFIRE_GRACE"]),
            catch_up_limit=int(config["MAX_CATCH_UP"]),
            max_in_flight=int(config["DELIVERY_MAX_IN_FLIGHT"]),
            origin_in_flight=int(config["DELIVERY_ORIGIN_IN_FLIGHT"]),
            max_held=int(config["DELIVERY_MAX_HELD"]),
            origin_backoff=float(config["DELIVERY_ORIGIN_BACKOFF"]),
            default_retry=RetryPolicy.of(config["DEFAULT_RETRY"]),
            fire_workers=int(config["FIRE_WORKERS"]),
        )

    def origin_held(self, limit: int, rate: float = 0.0) -> int:
        """Runs held for one origin at most: a few rounds of its in-flight limit, or what it
        answers in HELD_SECONDS if that is more. A slow origin's backlog waits in the
        database, not in memory, and leaves room for others; a fast one, whose rounds are
        a few milliseconds, has enough in hand to outlast the claim that tops it up."""
        return min(self.max_held, max(4 * limit, math.ceil(rate * HELD_SECONDS)))
