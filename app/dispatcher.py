"""The dispatcher: fires due jobs and delivers their runs.

It is built from small steps that each say whether they found work, so a test can run one
step with a moved clock:

- fire_due: claim a batch of due jobs and, in one transaction, write one run per
  occurrence and advance each job's next_run_at. Runs for the built-in queue are
  enqueued in that same transaction; the others are leased and delivered right after
  (in the scheduler process on delivery threads, so a slow target never delays a fire),
  in chunks, each outcome recorded as its chunk finishes.
- deliver_due: claim runs whose next attempt is due (retries, run-now, leases left
  behind by a crashed dispatcher) and deliver them.

Claims use FOR UPDATE SKIP LOCKED on PostgreSQL, so dispatchers can run side by side; on
SQLite the write lock (BEGIN IMMEDIATE) serialises them. The unique key on
(job, scheduled_for) lets the database refuse a second run of one occurrence.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, func, select, tuple_, update

from app import queue, timing
from app.bulk import bulk_for
from app.clock import Clock
from app.database import write_connection
from app.metrics import CounterWriter, lag_counts
from app.models import Job, Run
from app.targets.base import Delivery, Outcome, Target

log = logging.getLogger(__name__)

jobs = Job.__table__
runs = Run.__table__

MAX_BATCHES_IN_FLIGHT = 4  # leased batches waiting for the delivery threads, at most
# An occurrence later than this counts as missed for the "all" policy's catch-up per pass.
MAX_CATCH_UP_PER_PASS = 100
JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.payload,
    jobs.c.recurring,
    jobs.c.first_at,
    jobs.c.timezone,
    jobs.c.cron,
    jobs.c.interval,
    jobs.c.start_at,
    jobs.c.end_at,
    jobs.c.max_runs,
    jobs.c.target,
    jobs.c.misfire,
    jobs.c.next_run_at,
    jobs.c.run_count,
    jobs.c.last_run_at,
)


@dataclass(frozen=True)
class DispatcherSettings:
    batch_size: int = 1000
    delivery_batch_size: int = 500
    lease: float = 60.0
    # Runs handed to a target at a time. A lease covers one chunk's delivery, not a batch's.
    delivery_chunk: int = 64
    # SQS calls carry 10 runs and answer fast: bigger chunks keep its calls in flight.
    # 240 runs = 24 calls, 3 waves of 8, within the lease even at boto's timeouts.
    chunk_by_target: Mapping[str, int] = field(default_factory=lambda: {"sqs": 240})
    misfire_grace: float = 60.0
    default_retry: Mapping[str, Any] = field(
        default_factory=lambda: {"attempts": 5, "backoff": 2.0, "maxBackoff": 300.0}
    )


@dataclass
class Plan:
    """What one claimed job becomes: the occurrences to fire and its next state."""

    fire_times: list[datetime]
    next_run_at: datetime | None


@dataclass
class Leased:
    """A run handed to a remote target, waiting for its outcome."""

    delivery: Delivery
    retry: Mapping[str, Any]


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        targets: Mapping[str, Target],
        settings: DispatcherSettings | None = None,
        rng: random.Random | None = None,
        *,
        background_delivery: bool = False,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.targets = targets
        self.settings = settings or DispatcherSettings()
        self.rng = rng or random.Random()
        self.stopping = threading.Event()
        self.bulk = bulk_for(engine)
        self.counters = CounterWriter(engine)
        # In the scheduler process, remote deliveries run beside the firing, so a slow
        # webhook never delays the next fire. Tests step synchronously.
        self._delivering = (
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="deliver")
            if background_delivery
            else None
        )
        self._in_flight: set[Future[None]] = set()

    # -- steps ---------------------------------------------------------------------------

    def fire_due(self) -> int:
        """Fire one batch of due jobs. Returns how many jobs were claimed."""
        now = self.clock.now()
        leased: list[Leased] = []
        with write_connection(self.engine) as conn:
            rows = conn.execute(
                select(*JOB_COLUMNS)
                .where(jobs.c.next_run_at <= now)
                .order_by(jobs.c.next_run_at)
                .limit(self.settings.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            leased = self._write_fires(conn, rows, now)
        self._hand_off(leased)
        return len(rows)

    def deliver_due(self) -> int:
        """Deliver one batch of runs whose next attempt is due. Returns how many."""
        now = self.clock.now()
        with write_connection(self.engine) as conn:
            rows = conn.execute(
                select(
                    runs.c.id,
                    runs.c.job_id,
                    runs.c.scheduled_for,
                    runs.c.attempts,
                    jobs.c.payload,
                    jobs.c.target,
                    jobs.c.retry,
                )
                .join(jobs, jobs.c.id == runs.c.job_id)
                .where(runs.c.next_attempt_at <= now)
                .order_by(runs.c.next_attempt_at)
                .limit(self.settings.delivery_batch_size)
                .with_for_update(skip_locked=True, of=runs)
            ).all()
            if not rows:
                return 0
            leased = self._lease(conn, rows, now)
        self._hand_off(leased)
        return len(rows)

    def step(self) -> int:
        return self.fire_due() + self.deliver_due()

    def seconds_until_due(self) -> float | None:
        """How long until the next job or delivery attempt is due; None when nothing is."""
        with self.engine.connect() as conn:
            soonest = conn.execute(
                select(func.min(jobs.c.next_run_at)).union_all(
                    select(func.min(runs.c.next_attempt_at))
                )
            ).scalars()
            times = [t for t in soonest if t is not None]
        if not times:
            return None
        return max(0.0, (min(times) - self.clock.now()).total_seconds())

    # -- firing --------------------------------------------------------------------------

    def _write_fires(
        self, conn: Connection, rows: Sequence[Row[Any]], now: datetime
    ) -> list[Leased]:
        run_rows: list[dict[str, Any]] = []
        job_updates: list[dict[str, Any]] = []
        for row in rows:
            plan = self._plan(row, now)
            for scheduled_for in plan.fire_times:
                run_rows.append(self._run_row(row, scheduled_for, now))
            job_updates.append(
                {
                    "id": row.id,
                    "next_run_at": plan.next_run_at,
                    "status": "active" if plan.next_run_at else "completed",
                    "run_count": row.run_count + len(plan.fire_times),
                    "last_run_at": plan.fire_times[-1] if plan.fire_times else row.last_run_at,
                }
            )
        self.bulk.update(conn, jobs, "id", job_updates)
        written = self._insert_runs(conn, run_rows)
        by_job = {row.id: row for row in rows}
        messages, leased = [], []
        for run in run_rows:
            if run["id"] not in written:
                continue
            job = by_job[run["job_id"]]
            source = JobSource(job.id, job.payload, job.target, None)
            if job.target["type"] == "queue":
                messages.append(source.message(run, now))
            else:
                leased.append(self._leased(source, run, attempt=1))
        queue.enqueue(conn, self.bulk, messages)
        lags = [(now - r["scheduled_for"]).total_seconds() for r in run_rows if r["id"] in written]
        fired = {"fires": len(lags), "deliveries_delivered": len(messages)}
        self.counters.add(conn, fired | lag_counts(lags))
        log.debug("fired", extra={"action": "fire", "jobs": len(rows), "runs": len(written)})
        return leased

    def _insert_runs(self, conn: Connection, rows: list[dict[str, Any]]) -> set[Any]:
        """Insert runs, skipping an occurrence already fired; return the ids written."""
        written = self.bulk.insert(conn, runs, rows, ignore_conflicts=True)
        ids = [row["id"] for row in rows]
        if written == len(rows):
            return set(ids)
        # Rare: some occurrence had a run already (a run-now at the very same instant).
        stored = conn.execute(select(runs.c.id).where(runs.c.id.in_(ids))).scalars()
        return set(stored)

    def _plan(self, row: Row[Any], now: datetime) -> Plan:
        rules = timing.timing_of(row)
        due: datetime = row.next_run_at
        fired = row.run_count
        if row.misfire == "all":
            times: list[datetime] = []
            upcoming: datetime | None = due
            while upcoming is not None and upcoming <= now and len(times) < MAX_CATCH_UP_PER_PASS:
                times.append(upcoming)
                upcoming = timing.next_fire(rules, upcoming, fired=fired + len(times))
            return Plan(times, upcoming)
        latest = timing.latest_fire(rules, due, now) or due
        if row.misfire == "skip" and (now - latest).total_seconds() > self.settings.misfire_grace:
            return Plan([], timing.next_fire(rules, now, fired=fired))
        # coalesce: one run for everything missed, at the latest occurrence.
        return Plan([latest], timing.next_fire(rules, latest, fired=fired + 1))

    def _run_row(self, job: Row[Any], scheduled_for: datetime, now: datetime) -> dict[str, Any]:
        remote = job.target["type"] != "queue"
        return {
            "id": uuid.uuid4(),
            "job_id": job.id,
            "scheduled_for": scheduled_for,
            "fired_at": now,
            "status": "delivering" if remote else "delivered",
            "attempts": 1,
            "next_attempt_at": now + timedelta(seconds=self.settings.lease) if remote else None,
            "delivered_at": None if remote else now,
        }

    def _leased(self, job: JobSource, run: dict[str, Any], attempt: int) -> Leased:
        delivery = Delivery(
            run_id=str(run["id"]),
            job_id=str(job.id),
            scheduled_for=run["scheduled_for"],
            payload=job.payload,
            target=job.target,
            attempt=attempt,
        )
        return Leased(delivery, job.retry or self.settings.default_retry)

    # -- delivering ----------------------------------------------------------------------

    def _lease(self, conn: Connection, rows: Sequence[Row[Any]], now: datetime) -> list[Leased]:
        """Mark claimed runs in flight; deliver built-in queue runs on the spot."""
        lease_until = now + timedelta(seconds=self.settings.lease)
        leased, messages, delivered = [], [], []
        for row in rows:
            run = {"id": row.id, "scheduled_for": row.scheduled_for}
            job = JobSource(row.job_id, row.payload, row.target, row.retry)
            if row.target["type"] == "queue":
                messages.append(job.message(run, now))
                delivered.append(
                    {
                        "id": row.id,
                        "status": "delivered",
                        "attempts": row.attempts + 1,
                        "next_attempt_at": None,
                        "delivered_at": now,
                        "last_error": None,
                    }
                )
            else:
                leased.append(self._leased(job, run, attempt=row.attempts + 1))
        queue.enqueue(conn, self.bulk, messages)
        self.bulk.update(conn, runs, "id", delivered)
        retries = sum(1 for row in rows if row.attempts >= 1)
        self.counters.add(conn, {"deliveries_delivered": len(delivered), "retries": retries})
        self.bulk.update(
            conn,
            runs,
            "id",
            [
                {
                    "id": uuid.UUID(item.delivery.run_id),
                    "status": "delivering",
                    "attempts": item.delivery.attempt,
                    "next_attempt_at": lease_until,
                }
                for item in leased
            ],
        )
        return leased

    def _hand_off(self, leased: list[Leased]) -> None:
        """Deliver now, or hand the batch to the delivery threads (at most a few batches
        wait there: beyond that, firing waits, so memory stays bounded)."""
        if not leased:
            return
        if self._delivering is None:
            self._deliver(leased)
            return
        self._in_flight = {f for f in self._in_flight if not f.done()}
        while len(self._in_flight) >= MAX_BATCHES_IN_FLIGHT:
            _, self._in_flight = wait(self._in_flight, return_when=FIRST_COMPLETED)
        self._in_flight.add(self._delivering.submit(self._deliver_in_background, leased))

    def _deliver_in_background(self, leased: list[Leased]) -> None:
        try:
            self._deliver(leased, renew_first=True)  # it may have waited for a thread
        except Exception:  # the leases expire and the runs are delivered again: log only
            log.exception("delivery failed", extra={"action": "deliver", "runs": len(leased)})

    def finish_deliveries(self, timeout: float = 30.0) -> None:
        """Wait for the deliveries in hand (at shutdown); unfinished ones are left to
        their leases."""
        if self._delivering is not None:
            wait(self._in_flight, timeout=timeout)
            self._delivering.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, leased: list[Leased], *, renew_first: bool = False) -> None:
        """Deliver in chunks, recording each chunk's outcomes as soon as it is done.

        Before each chunk after the first, its runs are leased again: a batch to a slow
        target can take longer than the lease, and then another dispatcher may take over
        runs still waiting here. Those are left to it (no duplicate), and a run is only
        ever delivered by the holder of a live lease. A crash repeats at most one chunk.
        """
        by_type: dict[str, list[Leased]] = defaultdict(list)
        for item in leased:
            by_type[item.delivery.target["type"]].append(item)
        renew = renew_first
        for kind, items in by_type.items():
            size = max(1, self.settings.chunk_by_target.get(kind, self.settings.delivery_chunk))
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                self._deliver_chunk(self._renew(chunk) if renew else chunk)
                renew = True

    def _renew(self, chunk: list[Leased]) -> list[Leased]:
        """Lease these runs again from now; return those still ours (another dispatcher
        taking one over set its status or bumped its attempts)."""
        until = self.clock.now() + timedelta(seconds=self.settings.lease)
        keys = [(uuid.UUID(item.delivery.run_id), item.delivery.attempt) for item in chunk]
        with write_connection(self.engine) as conn:
            ours = set(
                conn.execute(
                    update(runs)
                    .where(tuple_(runs.c.id, runs.c.attempts).in_(keys))
                    .where(runs.c.status == "delivering")
                    .values(next_attempt_at=until)
                    .returning(runs.c.id)
                ).scalars()
            )
        return [item for item in chunk if uuid.UUID(item.delivery.run_id) in ours]

    def _deliver_chunk(self, leased: list[Leased]) -> None:
        if not leased:
            return
        by_type: dict[str, list[Delivery]] = defaultdict(list)
        for item in leased:
            by_type[item.delivery.target["type"]].append(item.delivery)
        outcomes: list[Outcome] = []
        for kind, deliveries in by_type.items():
            target = self.targets.get(kind)
            if target is None:
                error = f"no {kind} target configured"
                outcomes += [Outcome(d.run_id, False, error, permanent=True) for d in deliveries]
                continue
            outcomes += target.deliver(deliveries)
        self._record(leased, outcomes)

    def _record(self, leased: Iterable[Leased], outcomes: list[Outcome]) -> None:
        now = self.clock.now()
        by_run = {item.delivery.run_id: item for item in leased}
        values, disabled = [], []
        for outcome in outcomes:
            item = by_run[outcome.run_id]
            values.append(self._outcome_values(item, outcome, now))
            if outcome.disable_job:
                disabled.append({"key": uuid.UUID(item.delivery.job_id)})
        with write_connection(self.engine) as conn:
            self.bulk.update(conn, runs, "id", values, condition="status != 'delivered'")
            outcomes_by_status = Counter(f"deliveries_{v['status']}" for v in values)
            self.counters.add(conn, outcomes_by_status)
            if disabled:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == bindparam("key"))
                    .values(status="paused", next_run_at=None),
                    disabled,
                )
        failed = sum(1 for o in outcomes if not o.ok)
        if failed:
            log.warning(
                "deliveries failed",
                extra={"action": "deliver", "failed": failed, "total": len(outcomes)},
            )

    def _outcome_values(self, item: Leased, outcome: Outcome, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {
            "id": uuid.UUID(outcome.run_id),
            "response_status": outcome.response_status,
            "response_ms": outcome.response_ms,
            "response_body": outcome.response_body,
        }
        if outcome.ok:
            return values | {
                "status": "delivered",
                "next_attempt_at": None,
                "delivered_at": now,
                "last_error": None,
            }
        attempts_allowed = int(item.retry.get("attempts", 5))
        dead = outcome.permanent or item.delivery.attempt >= attempts_allowed
        delay = self.backoff(item.retry, item.delivery.attempt, outcome.retry_after)
        return values | {
            "status": "dead" if dead else "retrying",
            "next_attempt_at": None if dead else now + timedelta(seconds=delay),
            "delivered_at": None,
            "last_error": (outcome.error or "delivery failed")[:2000],
        }

    def backoff(self, retry: Mapping[str, Any], attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter, never sooner than the target asked
        (up to maxBackoff)."""
        base = float(retry.get("backoff", 2.0))
        ceiling = float(retry.get("maxBackoff", 300.0))
        step = min(ceiling, base * 2 ** (attempt - 1))
        delay = step / 2 + self.rng.uniform(0, step / 2)
        # A target may ask for any wait; never longer than the job's own longest delay.
        return max(delay, min(retry_after or 0.0, ceiling))

    # -- the pass ------------------------------------------------------------------------

    def run_pass(self, window: float, waiter: Waiter | None = None) -> None:
        """Work until nothing is due, then wait for work until `window` seconds have passed.

        APScheduler starts a pass every `window` seconds; within it, the pass wakes for a
        job due sooner than the next pass (and, on PostgreSQL, when notified).
        """
        waiter = waiter or Waiter(self.stopping)
        deadline = time.monotonic() + window
        while not self.stopping.is_set():
            try:
                if self.step():
                    continue
                wake = self.seconds_until_due()
            except Exception:  # a database outage must not kill the process: retry next pass
                log.exception("dispatch pass failed", extra={"action": "dispatch"})
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            waiter.wait(remaining if wake is None else min(wake, remaining))

    def stop(self) -> None:
        self.stopping.set()


@dataclass(frozen=True, slots=True)
class JobSource:
    """What a delivery needs of its job."""

    id: Any
    payload: str
    target: dict[str, Any]
    retry: Mapping[str, Any] | None

    def message(self, run: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """The built-in queue message that delivers `run`."""
        name = self.target.get("name", "default")
        return queue.message_row(name, self.payload, self.id, run["id"], run["scheduled_for"], now)


class Waiter:
    """Sleeps until a deadline or until stopped."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping

    def wait(self, seconds: float) -> None:
        self.stopping.wait(seconds)
