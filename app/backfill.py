"""Backfill: one run for each occurrence of a job's rule in a past range that has none yet.

The runs are written under the job's lock, in one transaction, and the unique key (job,
nominal time) keeps each occurrence to one run whatever else fires it. Their first attempts
are spread out (PACE apart, from now: 100 a second), so the delivery loop, which takes runs
by their next attempt, still reaches a live fire first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app import audit, timing
from app.database import db
from app.errors import Invalid
from app.jobs import _locked_job, _wake_dispatchers, get_job, job_timing, pending_run
from app.models import Job, Run

MAX_RUNS = 10_000
PACE = timedelta(milliseconds=10)  # between first attempts: 100 backfilled runs a second
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Backfill:
    occurrences: int  # of the rule in the range
    existing: int  # of those that had a run already
    written: int  # runs made now (0 for a dry run)


def backfill(
    job_id: str, start: datetime, end: datetime, now: datetime, *, dry_run: bool
) -> Backfill:
    """Runs for the occurrences in [start, end] that have none; with dry_run, only count."""
    if end < start:
        raise Invalid.field("to", "to must not be before from")
    if end > now:
        raise Invalid.field("to", "to must not be in the future: those times fire by themselves")
    job = get_job(job_id) if dry_run else _locked_job(job_id)
    if job.recurring == "none":
        raise Invalid.field("jobId", "a one-shot job has nothing to backfill")
    times = _occurrences(job, start, end)
    existing = _existing(job, start, end)
    missing = [t for t in times if t not in existing]
    if dry_run:
        return Backfill(len(times), len(times) - len(missing), 0)
    for index, nominal in enumerate(missing):
        db.session.add(pending_run(job, nominal, now, now + PACE * index))
    job.run_count = (job.run_count or 0) + len(missing)
    detail = f"{len(missing)} runs for {start.isoformat()} to {end.isoformat()}"
    audit.record("backfill", now, job_id=job.id, detail=detail)
    _wake_dispatchers()
    db.session.commit()
    return Backfill(len(times), len(times) - len(missing), len(missing))


def _occurrences(job: Job, start: datetime, end: datetime) -> list[datetime]:
    found = [
        t for t in timing.occurrences(job_timing(job), start - _TICK, MAX_RUNS + 1) if t <= end
    ]
    if len(found) > MAX_RUNS:
        raise Invalid.field(
            "to", f"the range holds more than {MAX_RUNS:,} occurrences: backfill a shorter one"
        )
    return found


def _existing(job: Job, start: datetime, end: datetime) -> set[datetime]:
    query = select(Run.scheduled_for).where(
        Run.job_id == job.id,
        Run.scheduled_for >= start,
        Run.scheduled_for <= end,
        Run.dead_letter.is_(False),
    )
    return set(db.session.scalars(query))
