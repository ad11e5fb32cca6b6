"""The run store: history, and retrying dead runs. The dispatcher writes runs; this reads them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select, tuple_, update

from app import audit
from app.cursors import decode_cursor, encode_cursor
from app.database import begin_write, db, rowcount
from app.errors import BadLookup, Conflict, NotFound
from app.jobs import key_values
from app.models import RUN_STATUSES, Run


@dataclass(frozen=True)
class RunFilter:
    job_id: uuid.UUID | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_runs(
    limit: int, cursor: str | None, filters: RunFilter = RunFilter()
) -> tuple[list[Run], str | None]:
    """Newest first, by firing time (keyset)."""
    query: Select[tuple[Run]] = (
        select(Run).order_by(Run.fired_at.desc(), Run.id.desc()).limit(limit + 1)
    )
    if cursor:
        fired_at, last_id = decode_cursor(cursor)
        query = query.where(
            tuple_(Run.fired_at, Run.id)
            < tuple_(*key_values(Run.fired_at, Run.id, fired_at, last_id))
        )
    if filters.job_id:
        query = query.where(Run.job_id == filters.job_id)
    if filters.status:
        if filters.status not in RUN_STATUSES:
            raise BadLookup.field("status", f"must be one of {', '.join(RUN_STATUSES)}")
        query = query.where(Run.status == filters.status)
    if filters.since:
        query = query.where(Run.fired_at >= filters.since)
    if filters.until:
        query = query.where(Run.fired_at < filters.until)
    runs = list(db.session.execute(query).scalars())
    if len(runs) <= limit:
        return runs, None
    last = runs[limit - 1]
    return runs[:limit], encode_cursor(last.fired_at, last.id)


def get_run(run_id: str) -> Run:
    try:
        key = uuid.UUID(run_id)
    except ValueError as exc:
        raise NotFound(f"run {run_id}") from exc
    run = db.session.get(Run, key)
    if run is None:
        raise NotFound(f"run {run_id}")
    return run


def retry_run(run_id: str, now: datetime) -> Run:
    """Give a dead run a fresh set of attempts, starting now."""
    begin_write()
    run = get_run(run_id)
    changed = rowcount(
        db.session.execute(
            update(Run)
            .where(Run.id == run.id, Run.status == "dead")
            .values(status="retrying", attempts=0, next_attempt_at=now)
        )
    )
    if changed != 1:
        db.session.rollback()
        raise Conflict("Not retryable", f"run {run_id} is {run.status}; only dead runs retry")
    audit.record("retry", now, job_id=run.job_id, run_id=run.id)
    db.session.commit()
    db.session.refresh(run)
    return run


def retry_all_dead(now: datetime, job_id: uuid.UUID | None = None) -> int:
    begin_write()
    query = update(Run).where(Run.status == "dead")
    if job_id:
        query = query.where(Run.job_id == job_id)
    changed = rowcount(
        db.session.execute(query.values(status="retrying", attempts=0, next_attempt_at=now))
    )
    audit.record("retry", now, job_id=job_id, detail=f"{changed} dead runs")
    db.session.commit()
    return int(changed)


def runs_per_minute(now: datetime, minutes: int = 60) -> list[tuple[datetime, int, float]]:
    """(minute, runs fired, average lag in ms) for the last `minutes` minutes, oldest first."""
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    rows = db.session.execute(
        select(Run.fired_at, func.coalesce(Run.due_at, Run.scheduled_for))
        .where(Run.fired_at >= since)
        .limit(200_000)
    )
    buckets: dict[datetime, list[float]] = {
        since + timedelta(minutes=i): [] for i in range(minutes)
    }
    for fired_at, due_at in rows:
        key = fired_at.replace(second=0, microsecond=0)
        if key in buckets:
            buckets[key].append((fired_at - due_at).total_seconds() * 1000)
    return [(m, len(lags), sum(lags) / len(lags) if lags else 0.0) for m, lags in buckets.items()]


def count_by_status() -> dict[str, int]:
    rows = db.session.execute(select(Run.status, func.count()).group_by(Run.status))
    return {status: count for status, count in rows}
