"""Firing: due jobs become runs.

One step claims a batch of due jobs and, in one transaction, writes one run per
occurrence, advances each job by the job-state rules (app.jobstate), writes their audit
entries, and delivers the runs of in-transaction targets (the built-in queue). Runs for
remote targets are left `pending` for the delivery loop: firing never waits on a target.

The unique key on (job, scheduled_for) lets the database refuse a second run of one
occurrence, however many dispatchers claim side by side.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, Text, cast, select

from app import audit, jobstate, payloads, timing
from app.clock import Clock
from app.database import Record, id_text, records, write_connection
from app.ids import new_id
from app.instants import format_instant
from app.jobstate import JobState, MisfirePolicy
from app.metrics import CounterWriter, by_target, lag_counts
from app.models import AuditEntry, Job, Run
from app.scheduler.bulk import Bulk
from app.scheduler.settings import DispatcherSettings
from app.scheduler.wake import seconds_until_soonest
from app.targets.base import Delivery, Target

log = logging.getLogger(__name__)

jobs, runs, audit_log = Job.__table__, Run.__table__, AuditEntry.__table__
MAX_ORIGIN: int = runs.c.origin.type.length  # runs.origin's length
JOB_COLUMNS = (
    id_text(jobs.c.id),  # passed on as text: into the job's runs, audit entries, messages
    jobs.c.payload,
    jobs.c.template,
    jobs.c.name,
    jobs.c.recurring,
    jobs.c.first_at,
    jobs.c.timezone,
    jobs.c.cron,
    jobs.c.interval,
    jobs.c.start_at,
    jobs.c.end_at,
    jobs.c.max_runs,
    jobs.c.rrule,
    jobs.c.exclude,
    jobs.c.on_excluded,
    jobs.c.dst_gap,
    jobs.c.dst_repeat,
    cast(jobs.c.target, Text).label("target"),  # decoded once per batch and distinct spec
    jobs.c.misfire,
    jobs.c.max_catch_up,
    jobs.c.status,
    jobs.c.next_run_at,
    jobs.c.run_count,
    jobs.c.last_run_at,
    jobs.c.occurrence_count,
    jobs.c.last_occurrence_at,
    jobs.c.skipped_count,
    jobs.c.due_since,
    jobs.c.window,
)


class Firing:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        local_targets: Mapping[str, Any],
        remote_targets: Mapping[str, Target],
        settings: DispatcherSettings,
        bulk: Bulk,
        counters: CounterWriter,
        wrote_remote_runs: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.local_targets = local_targets  # type -> InTransactionTarget
        self.remote_targets = remote_targets
        self.settings = settings
        self.bulk = bulk
        self.counters = counters
        self.wrote_remote_runs = wrote_remote_runs

    def fire_due(self) -> int:
        """Fire one batch of due jobs. Returns how many jobs fired (0: nothing was due)."""
        now = self.clock.now()
        with write_connection(self.engine) as conn:
            rows = records(conn, due_claim(now, self.settings.fire_batch))
            if not rows:
                return 0
            fired, remote = self._fire(conn, rows, now)
        if remote:
            self.wrote_remote_runs()
        return fired

    def seconds_until_due(self) -> float | None:
        return seconds_until_soonest(self.engine, jobs.c.next_run_at, self.clock.now())

    def _fire(self, conn: Connection, rows: Sequence[Record], now: datetime) -> tuple[int, int]:
        """Write the runs, jobs and audit entries of a claimed batch; (jobs fired, remote
        runs written). A batch writes about fire_batch runs: jobs catching up on many missed
        occurrences beyond that are left for the next step (their claim ends with this
        transaction), so one job's backlog cannot crowd out the others."""
        run_rows: list[dict[str, Any]] = []
        job_rows: list[dict[str, Any]] = []
        audits: list[dict[str, Any]] = []
        specs = Specs()
        targets: dict[str, dict[str, Any]] = {}  # a job's id -> its target spec
        skipped = 0
        for row in rows:
            if len(run_rows) >= self.settings.fire_batch:
                break
            state = JobState.of(row)
            change = jobstate.fire(timing.timing_of(row), state, now, self._misfire(row))
            if change.fire_times:
                spec = targets[row.id] = specs[row.target]
                origin = self._origin(spec)
                run_rows += [
                    self._run_row(row, spec, state, origin, t, now) for t in change.fire_times
                ]
            job_rows.append({"id": row.id, **change.state.columns()})
            skipped += change.state.skipped_count - (row.skipped_count or 0)
            audits += audit.dispatcher_entries(now, row.id, change.audits)
        self.bulk.update(conn, jobs, "id", job_rows)
        self.bulk.insert(conn, audit_log, audits)
        inserted = self._insert_runs(conn, run_rows)  # once: it writes the whole batch
        written = [r for r in run_rows if r["id"] in inserted]
        delivered = self._deliver_local(conn, rows, targets, written, now)
        lags = [(now - r["due_at"]).total_seconds() for r in written]
        increments: dict[str, float] = {"fires": len(written), "deliveries_delivered": delivered}
        increments |= by_target("delivered", "queue", delivered)  # the local target's
        self.counters.add(conn, increments | {"skipped": skipped} | lag_counts(lags))
        log.debug("fired", extra={"action": "fire", "jobs": len(job_rows), "runs": len(written)})
        return len(job_rows), len(written) - delivered

    def _misfire(self, row: Record) -> MisfirePolicy:
        return MisfirePolicy(
            row.misfire,
            self.settings.misfire_grace,
            row.max_catch_up or self.settings.catch_up_limit,
        )

    def _origin(self, target: dict[str, Any]) -> str | None:
        """Where a job's runs go (None for in-transaction targets): once per job."""
        if target["type"] in self.local_targets:
            return None
        return origin_of(self.remote_targets, target)

    def _run_row(
        self, job: Record, target: dict[str, Any], state: JobState, origin: str | None,
        scheduled_for: datetime, now: datetime,
    ) -> dict[str, Any]:  # fmt: skip
        local = target["type"] in self.local_targets
        return {
            "id": new_id(),
            "job_id": job.id,
            "scheduled_for": scheduled_for,
            "due_at": jobstate.due_at(state, scheduled_for),
            "fired_at": now,
            "status": "delivered" if local else "pending",
            "attempts": 1 if local else 0,
            "next_attempt_at": None if local else now,
            "delivered_at": now if local else None,
            "origin": origin,
        }

    def _insert_runs(self, conn: Connection, rows: list[dict[str, Any]]) -> set[Any]:
        """Insert runs, skipping an occurrence already fired; return the ids written."""
        written = self.bulk.insert(conn, runs, rows, ignore_conflicts=True)
        ids = [row["id"] for row in rows]
        if written == len(rows):
            return set(ids)
        # Rare: some occurrence had a run already (a run now at the very same instant).
        return set(conn.execute(select(runs.c.id).where(runs.c.id.in_(ids))).scalars())

    def _deliver_local(
        self, conn: Connection, jobs_rows: Sequence[Record], targets: dict[str, dict[str, Any]],
        written: list[dict[str, Any]], now: datetime,
    ) -> int:  # fmt: skip
        """Deliver the runs of in-transaction targets with this transaction."""
        by_job = {row.id: row for row in jobs_rows}
        by_type: dict[str, list[Delivery]] = defaultdict(list)
        for run in written:
            target = targets[run["job_id"]]
            if target["type"] in self.local_targets:
                delivery = delivery_of(run, by_job[run["job_id"]], target, 1)
                by_type[target["type"]].append(delivery)
        for kind, deliveries in by_type.items():
            self.local_targets[kind].write(conn, deliveries, now)
        return sum(len(d) for d in by_type.values())


class Specs(dict[str, Any]):
    """Target specs by their JSON text, each decoded once: a claim's runs mostly share a
    few, and a target that parses its spec keeps what it parsed for all of them."""

    def __missing__(self, text: str) -> Any:
        spec = self[text] = json.loads(text)
        return spec


def due_claim(now: datetime, limit: int) -> Select[Any]:
    """The jobs due by `now`, soonest first, locked (passing over those a peer holds)."""
    return (
        select(*JOB_COLUMNS)
        .where(jobs.c.next_run_at <= now)
        .order_by(jobs.c.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def delivery_of(
    run: Mapping[str, Any],
    job: Any,
    target: dict[str, Any],
    attempt: int,
    *,
    own_payload: str | None = None,
) -> Delivery:
    """A run's attempt (`run`: its id, job_id, scheduled_for, fired_at; `job`: a row with the
    job's payload, template and name); a template's placeholders are filled here, for every
    target alike. `own_payload`: a run's own message (a dead letter's), sent as it is."""
    if own_payload is not None:
        payload = own_payload
    elif job.template:  # other jobs' payloads are not looked at: they go out as stored
        payload = payloads.fill(job.payload, _template_values(run, job.name, attempt))
    else:
        payload = job.payload
    return Delivery(
        run_id=str(run["id"]),
        job_id=str(run["job_id"]),
        scheduled_for=run["scheduled_for"],
        payload=payload,
        target=target,
        attempt=attempt,
    )


def _template_values(run: Mapping[str, Any], name: str | None, attempt: int) -> dict[str, str]:
    return {
        "scheduledFor": format_instant(run["scheduled_for"]) or "",
        "firedAt": format_instant(run["fired_at"]) or "",
        "runId": str(run["id"]),
        "jobId": str(run["job_id"]),
        "name": name or "",
        "attempt": str(attempt),
    }


def origin_of(targets: Mapping[str, Target], spec: Mapping[str, Any]) -> str | None:
    """The origin a job's target delivers to, as runs store it (a long one shortened, still
    one string per origin); None when this process has no such target."""
    target = targets.get(spec["type"])
    if target is None:
        return None
    try:
        origin = target.origin(spec)
    except Exception:  # a stored spec that no longer parses: delivery reports it
        origin = f"{spec['type']}:invalid"
    if len(origin) <= MAX_ORIGIN:
        return origin
    digest = hashlib.sha256(origin.encode()).hexdigest()
    return f"{origin[: MAX_ORIGIN - len(digest) - 1]}#{digest}"
