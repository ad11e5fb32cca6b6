"""The run store: history, and retrying dead runs. The dispatcher writes runs; this reads them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, Integer, Select, func, or_, select, tuple_, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app import audit, scope
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
    query = runs_in_scope(query)
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


def dead_letters_of(found: list[Run]) -> dict[uuid.UUID, uuid.UUID]:
    """The dead letter run of each dead run among these: {dead run id: its dead letter's
    id}. One lookup in the unique key (job, scheduled_for, dead_letter), only for dead runs."""
    dead = {
        (r.job_id, r.scheduled_for): r.id for r in found if r.status == "dead" and not r.dead_letter
    }
    if not dead:
        return {}
    query = select(Run.id, Run.job_id, Run.scheduled_for).where(
        Run.dead_letter.is_(True), tuple_(Run.job_id, Run.scheduled_for).in_(list(dead))
    )
    return {dead[(job, at)]: letter for letter, job, at in db.session.execute(query)}


def get_run(run_id: str) -> Run:
    try:
        key = uuid.UUID(run_id)
    except ValueError as exc:
        raise NotFound(f"run {run_id}") from exc
    run = db.session.execute(runs_in_scope(select(Run).where(Run.id == key))).scalar_one_or_none()
    if run is None:
        raise NotFound(f"run {run_id}")
    return run


def runs_in_scope(query: Select[Any]) -> Select[Any]:
    """A query over runs, narrowed to the caller's slice of jobs (app.scope)."""
    ids = scope.job_ids_in_scope()
    return query if ids is None else query.where(Run.job_id.in_(ids))


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
    ids = scope.job_ids_in_scope()
    if ids is not None:
        query = query.where(Run.job_id.in_(ids))
    if job_id:
        query = query.where(Run.job_id == job_id)
    changed = rowcount(
        db.session.execute(query.values(status="retrying", attempts=0, next_attempt_at=now))
    )
    audit.record("retry", now, job_id=job_id, detail=f"{changed} dead runs")
    db.session.commit()
    return int(changed)


class epoch_ms(FunctionElement[float]):
    """An instant as milliseconds since the Unix epoch, in SQL. SQLite keeps UTC text and
    reads it to the millisecond: rounded, the double is that whole millisecond exactly."""

    type = Float()
    inherit_cache = True
    name = "epoch_ms"


@compiles(epoch_ms, "sqlite")
def _epoch_ms_sqlite(element: epoch_ms, compiler: SQLCompiler, **kw: Any) -> str:
    clause = compiler.process(element.clauses, **kw)
    return f"ROUND((julianday({clause}) - 2440587.5) * 86400000.0)"


@compiles(epoch_ms, "postgresql")
def _epoch_ms_postgresql(element: epoch_ms, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) * 1000 AS FLOAT)"


class epoch_minute(FunctionElement[int]):
    """The minute an instant falls in, counted from the Unix epoch (exact: whole seconds)."""

    type = Integer()
    inherit_cache = True
    name = "epoch_minute"


@compiles(epoch_minute, "sqlite")
def _epoch_minute_sqlite(element: epoch_minute, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER) / 60)"


@compiles(epoch_minute, "postgresql")
def _epoch_minute_postgresql(element: epoch_minute, compiler: SQLCompiler, **kw: Any) -> str:
    clause = compiler.process(element.clauses, **kw)
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {clause}) / 60) AS BIGINT)"


@dataclass(frozen=True)
class MinuteLag:
    minute: datetime
    runs: int
    p50_ms: float | None  # None: no run fired that minute
    p99_ms: float | None


def lag_per_minute(now: datetime, minutes: int = 60) -> list[MinuteLag]:
    """Runs fired per minute over the last `minutes` minutes and their lag's 50th and 99th
    percentiles (nearest rank; lag as Run.lag_seconds: fired_at - due_at), oldest first.

    One query, the same on SQLite and PostgreSQL: the window's runs are read through the
    fired_at index and ranked by lag within their minute in the database; at most two rows
    a minute come back (the p50 and the p99 run), never the runs themselves. The work is
    bounded by the window: the runs fired in the last `minutes` minutes.
    """
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    minute = epoch_minute(Run.fired_at)
    lag = epoch_ms(Run.fired_at) - epoch_ms(func.coalesce(Run.due_at, Run.scheduled_for))
    window = select(
        minute.label("minute"),
        lag.label("lag"),
        func.row_number().over(partition_by=minute, order_by=lag).label("rank"),
        func.count().over(partition_by=minute).label("runs"),
    ).where(Run.fired_at >= since, Run.fired_at < since + timedelta(minutes=minutes))
    ranked = runs_in_scope(window).subquery()
    p50_rank = (ranked.c.runs + 1) // 2  # ceil(0.5 n)
    p99_rank = (ranked.c.runs * 99 + 99) // 100  # ceil(0.99 n)
    rows = db.session.execute(
        select(
            ranked.c.minute, ranked.c.runs, ranked.c.rank, ranked.c.lag, p50_rank, p99_rank
        ).where(or_(ranked.c.rank == p50_rank, ranked.c.rank == p99_rank))
    )
    found: dict[int, tuple[int, float | None, float | None]] = {}
    for number, count, rank, lag_ms, p50_at, p99_at in rows:
        _, p50, p99 = found.get(int(number), (count, None, None))
        found[int(number)] = (
            int(count),
            float(lag_ms) if rank == p50_at else p50,
            float(lag_ms) if rank == p99_at else p99,
        )
    first = int(since.timestamp()) // 60
    return [
        MinuteLag(since + timedelta(minutes=i), *found.get(first + i, (0, None, None)))
        for i in range(minutes)
    ]


WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def outcomes(now: datetime) -> dict[str, dict[str, int]]:
    """Runs fired in the last hour and the last day, by status: {"hour": {"dead": 2, …}, …}.
    One aggregate over the day's range of the fired_at index."""
    hour_ago, day_ago = now - WINDOWS["hour"], now - WINDOWS["day"]
    rows = db.session.execute(
        runs_in_scope(
            select(Run.status, func.count().filter(Run.fired_at >= hour_ago), func.count())
            .where(Run.fired_at >= day_ago, Run.fired_at <= now)
            .group_by(Run.status)
        )
    )
    counts: dict[str, dict[str, int]] = {"hour": {}, "day": {}}
    for status, in_hour, in_day in rows:
        counts["hour"][status] = int(in_hour)
        counts["day"][status] = int(in_day)
    return counts


def count_by_status() -> dict[str, int]:
    query = runs_in_scope(select(Run.status, func.count()).group_by(Run.status))
    return {status: count for status, count in db.session.execute(query)}
