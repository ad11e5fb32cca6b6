"""Prometheus metrics.

The dispatcher counts what it does into the `counters` table, in the transactions that do
it; the web process reads them (and a few gauges) when /metrics is scraped. The two
processes share nothing but the database, and counters survive restarts.
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from app.database import is_postgresql
from app.models import Counter, Job, Run
from app.queue import counts_by_queue

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0)
SHARDS = 8
# The scheduler's heartbeat: one a firing pass. It says the process is alive, not that
# anything the pages show has changed (app.changes leaves it out of the change marker).
PASSES = "passes"
counters = Counter.__table__


LAG_NAMES = tuple(f"lag_le_{bound}" for bound in LAG_BUCKETS)


def by_target(outcome: str, target_type: object, count: float = 1) -> dict[str, float]:
    """The counter of deliveries to one kind of target with one outcome."""
    return {f"deliveries_by_target:{target_type}:{outcome}": count}


def lag_counts(lags: Iterable[float]) -> dict[str, float]:
    """Histogram counter increments for a batch of lags (seconds): each lag counted once,
    in its own bucket, then summed upwards (a batch costs one pass, not one per bucket)."""
    own = [0] * (len(LAG_BUCKETS) + 1)  # the last: above every bound
    total, count = 0.0, 0
    for lag in lags:
        total += lag
        count += 1
        own[bisect_left(LAG_BUCKETS, lag)] += 1
    if not count:
        return {}
    increments: dict[str, float] = {"lag_count": count, "lag_sum": total}
    below = 0
    for name, in_bucket in zip(LAG_NAMES, own, strict=False):
        below += in_bucket
        if below:
            increments[name] = below
    return increments


class CounterWriter:
    """Adds to the dispatcher's counters inside the caller's transaction."""

    def __init__(self, engine: Engine) -> None:
        dialect = postgresql if is_postgresql(engine) else sqlite
        statement = dialect.insert(counters)
        self.statement = statement.on_conflict_do_update(
            index_elements=["name", "shard"],
            set_={"value": counters.c.value + statement.excluded.value},
        )
        self.shard = random.randrange(SHARDS)

    def add(self, conn: Connection, increments: Mapping[str, float]) -> None:
        rows = [
            {"name": name, "shard": self.shard, "value": value}
            for name, value in sorted(increments.items())  # a fixed order: no lock cycles
            if value
        ]
        if rows:
            conn.execute(self.statement, rows)


class DatabaseCollector:
    """Reads counters and gauges from the database at scrape time."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def collect(self) -> Iterator[Metric]:
        rows = self.conn.execute(
            select(counters.c.name, func.sum(counters.c.value)).group_by(counters.c.name)
        )
        totals: dict[str, float] = {name: float(value) for name, value in rows}
        yield from self._counters(totals)
        yield self._lag(totals)
        yield from self._gauges()

    def _counters(self, totals: Mapping[str, float]) -> Iterator[Metric]:
        fires = CounterMetricFamily("scheduler_fires", "Runs fired (occurrences turned into runs)")
        fires.add_metric([], totals.get("fires", 0.0))
        yield fires
        deliveries = CounterMetricFamily(
            "scheduler_deliveries", "Delivery attempts by outcome", labels=["outcome"]
        )
        for outcome in ("delivered", "retrying", "dead"):
            deliveries.add_metric([outcome], totals.get(f"deliveries_{outcome}", 0.0))
        yield deliveries
        yield self._by_target(totals)
        skipped = CounterMetricFamily(
            "scheduler_skipped",
            "Occurrences skipped instead of fired (misfire skip, catch-up bound)",
        )
        skipped.add_metric([], totals.get("skipped", 0.0))
        yield skipped
        passes = CounterMetricFamily(
            "scheduler_passes", "Firing passes the scheduler processes completed (about 1/s each)"
        )
        passes.add_metric([], totals.get(PASSES, 0.0))
        yield passes
        retries = CounterMetricFamily("scheduler_retries", "Delivery attempts after the first")
        retries.add_metric([], totals.get("retries", 0.0))
        yield retries
        queue = CounterMetricFamily(
            "scheduler_queue_messages", "Built-in queue messages by what consumers did",
            labels=["action"],
        )  # fmt: skip
        for action in ("received", "acked"):
            queue.add_metric([action], totals.get(f"queue_{action}", 0.0))
        yield queue

    def _by_target(self, totals: Mapping[str, float]) -> Metric:
        family = CounterMetricFamily(
            "scheduler_deliveries_by_target",
            "Delivery attempts by target type and outcome",
            labels=["target", "outcome"],
        )
        for name, value in sorted(totals.items()):
            prefix, _, rest = name.partition(":")
            target, _, outcome = rest.partition(":")
            if prefix == "deliveries_by_target" and target and outcome:
                family.add_metric([target, outcome], value)
        return family

    def _lag(self, totals: Mapping[str, float]) -> Metric:
        lag = HistogramMetricFamily("scheduler_fire_lag_seconds", "Fire time minus nominal time")
        buckets = [
            (str(b), totals.get(name, 0.0)) for b, name in zip(LAG_BUCKETS, LAG_NAMES, strict=True)
        ]
        buckets.append(("+Inf", totals.get("lag_count", 0.0)))
        lag.add_metric([], buckets, totals.get("lag_sum", 0.0))
        return lag

    def _gauges(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("scheduler_jobs", "Jobs by status", labels=["status"])
        for status, count in self.conn.execute(
            select(Job.status, func.count()).group_by(Job.status)
        ):
            jobs.add_metric([status], count)
        yield jobs
        depth = GaugeMetricFamily(
            "scheduler_queue_depth", "Built-in queue messages visible now", labels=["queue"]
        )
        in_flight = GaugeMetricFamily(
            "scheduler_queue_in_flight", "Built-in queue messages received, not acknowledged",
            labels=["queue"],
        )  # fmt: skip
        for queue, visible, hidden, _oldest in self.conn.execute(counts_by_queue(self.now)):
            depth.add_metric([queue], visible)
            in_flight.add_metric([queue], hidden)
        yield depth
        yield in_flight
        pending = GaugeMetricFamily(
            "scheduler_runs_awaiting_delivery", "Runs waiting for a delivery attempt"
        )
        pending.add_metric(
            [],
            self.conn.scalar(
                select(func.count()).select_from(Run).where(Run.next_attempt_at.is_not(None))
            )
            or 0,
        )
        yield pending


def render(engine: Engine, now: datetime) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    with engine.connect() as conn:
        registry.register(DatabaseCollector(conn, now))
        return generate_latest(registry)
