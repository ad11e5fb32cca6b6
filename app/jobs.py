"""The job store: every change to a job goes through here, from the API and the UI alike."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import Select, func, insert, literal, or_, select, text, tuple_

from app import audit, jobstate, timing
from app.cursors import decode_cursor, encode_cursor
from app.database import begin_write, db, is_postgresql
from app.jobstate import JobState
from app.models import Job, Run
from app.netguard import check_address, parse_ip_literal
from app.problems import Problem, field_problem, not_found
from app.retry import RetryPolicy
from app.schemas import JobIn, TimingFields
from app.targets.webhook import generate_secret

NOTIFY_CHANNEL = "scheduler_due"
JOB_COLUMNS = tuple(Job.__table__.columns)


def make_timing(fields: TimingFields) -> timing.Timing:
    """The timing rules of a request, or a 422 problem naming the field at fault."""
    minute = fields.minute
    if minute is not None and fields.at is not None:
        # Answers carry both; get-modify-put sends both back. They must agree.
        at = instant_field("at", fields.at)
        if math.floor(at.timestamp() / 60) == minute:
            minute = None
    try:
        return timing.make_timing(
            recurring=fields.recurring,
            minute=minute,
            at=fields.at,
            timezone=fields.timezone,
            cron=fields.cron,
            interval=fields.interval,
            start_at=fields.startAt,
            end_at=fields.endAt,
            max_runs=fields.maxRuns,
        )
    except timing.TimingError as exc:
        raise field_problem(exc.field, exc.message) from exc


def instant_field(name: str, value: str, status: int = 422) -> datetime:
    """An RFC 3339 instant from a request (the timing rules' parser), or a problem naming
    the field."""
    try:
        return timing.parse_instant(value, name)
    except timing.TimingError as exc:
        raise field_problem(name, exc.message, status) from exc


def job_timing(job: Job) -> timing.Timing:
    return timing.timing_of(job)


def _check_payload(payload: str, field: str = "payload") -> None:
    limit = current_app.config["MAX_PAYLOAD_BYTES"]
    if len(payload.encode()) > limit:
        raise Problem(
            413,
            "Payload too large",
            f"{field}: larger than {limit} bytes",
            errors=[{"field": field, "message": f"larger than {limit} bytes"}],
        )


def _resolve_target(data: JobIn, old: dict[str, Any] | None) -> dict[str, Any]:
    if data.target is None:
        default = current_app.config.get("DEFAULT_TARGET") or {"type": "queue", "name": "default"}
        return dict(default)
    target = data.target.model_dump(exclude_none=True)
    if target["type"] == "webhook":
        _check_webhook_address(target["url"])
    if target["type"] == "webhook" and not target.get("secret"):
        # Keep the secret across get-modify-put (answers never show it); make one otherwise.
        kept = old.get("secret") if old and old.get("type") == "webhook" else None
        target["secret"] = kept or generate_secret()
    return target


def allowed_networks() -> list[str]:
    networks = current_app.config["WEBHOOK_ALLOW_NETWORKS"].split(",")
    return [n.strip() for n in networks if n.strip()]


def _check_webhook_address(url: str) -> None:
    """Refuse a webhook to a literal private address now; names are checked when connecting
    (what a name resolves to can change, so the dispatcher checks every connection)."""
    host = urlsplit(url).hostname or ""
    address = parse_ip_literal(host)
    if address is None:
        return
    refusal = check_address(address, allowed_networks())
    if refusal:
        raise field_problem("target.url", f"refused: {refusal} (see WEBHOOK_ALLOW_NETWORKS)")


def _apply(job: Job, data: JobIn, now: datetime) -> None:
    """Write a request's fields onto a job and work out its next run."""
    _check_payload(data.payload)
    rules = make_timing(data)
    job.payload = data.payload
    job.name = data.name
    job.recurring = rules.recurring
    job.first_at = rules.first_at
    job.timezone = rules.timezone
    job.cron = rules.cron
    job.interval = rules.interval
    job.start_at = rules.start_at
    job.end_at = rules.end_at
    job.max_runs = rules.max_runs
    job.target = _resolve_target(data, job.target)
    job.target_type = job.target["type"]
    defaults = RetryPolicy.of(current_app.config["DEFAULT_RETRY"])
    asked = data.retry.model_dump(exclude_none=True) if data.retry else None
    job.retry = RetryPolicy.of(asked, defaults).as_spec()
    job.misfire = data.misfire
    job.max_catch_up = data.maxCatchUp
    job.updated_at = now
    state = jobstate.schedule(rules, JobState.of(job), now, paused=data.status == "paused")
    _set_state(job, state)


def _set_state(job: Job, state: JobState) -> None:
    for column, value in state.columns().items():
        setattr(job, column, value)


def _change(
    job: Job, change: jobstate.Change, now: datetime, *, touch: bool = True, **audit_fields: Any
) -> None:
    """Write a transition decided by app.jobstate, and its audit entries (`touch`: it
    changes the job itself, so updatedAt moves)."""
    _set_state(job, change.state)
    if change.audits and touch:
        job.updated_at = now
    for entry in change.audits:
        audit.record(entry.action, now, job_id=job.id, detail=entry.detail, **audit_fields)


def _notify_if_due_soon(jobs: Sequence[Job], now: datetime) -> None:
    """Wake the dispatchers (PostgreSQL) when a job is due before their next pass.

    NOTIFY takes a global lock at commit, so one per transaction at most, and only when
    it makes a difference.
    """
    if not is_postgresql(db.engine):
        return
    horizon = now + timedelta(seconds=current_app.config["DISPATCH_INTERVAL"])
    if any(job.next_run_at is not None and job.next_run_at <= horizon for job in jobs):
        db.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def create_job(data: JobIn, now: datetime) -> Job:
    return create_jobs([data], now)[0]


def create_jobs(items: Sequence[JobIn], now: datetime) -> list[Job]:
    """Create jobs all-or-nothing; per-item errors are reported with the item's index."""
    jobs, errors = [], []
    for index, data in enumerate(items):
        job = Job(id=uuid.uuid4(), created_at=now, target=None)
        _set_state(job, JobState(status=jobstate.ACTIVE))
        try:
            _apply(job, data, now)
        except Problem as problem:
            prefix = f"jobs.{index}." if len(items) > 1 else ""
            errors += [{**e, "field": prefix + e["field"]} for e in problem.errors]
            if len(items) == 1:
                raise
            continue
        jobs.append(job)
    if errors:
        raise Problem(422, "Invalid request", "no job was created", errors=errors)
    begin_write()
    # One multi-row INSERT: the ORM's unit of work costs more than the rows themselves.
    db.session.execute(insert(Job), [_columns(job) for job in jobs])
    audit.record_many("create", now, [job.id for job in jobs])
    _notify_if_due_soon(jobs, now)
    db.session.commit()
    return jobs


def _columns(job: Job) -> dict[str, Any]:
    return {column.key: getattr(job, column.key) for column in JOB_COLUMNS}


def get_job(job_id: str) -> Job:
    job = db.session.get(Job, _uuid(job_id, "jobId"))
    if job is None:
        raise not_found(f"job {job_id}")
    return job


def _locked_job(job_id: str) -> Job:
    begin_write()
    job = db.session.execute(
        select(Job)
        .where(Job.id == _uuid(job_id, "jobId"))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None:
        raise not_found(f"job {job_id}")
    return job


def update_job(job_id: str, data: JobIn, now: datetime) -> Job:
    job = _locked_job(job_id)
    if _timing_key(job) != _timing_key_of(data):
        _set_state(job, jobstate.new_rule(JobState.of(job)))
    _apply(job, data, now)
    audit.record("update", now, job_id=job.id)
    _notify_if_due_soon([job], now)
    db.session.commit()
    return job


def _timing_key(job: Job) -> tuple[Any, ...]:
    return (job.recurring, job.first_at, job.timezone, job.cron, job.interval)


def _timing_key_of(data: JobIn) -> tuple[Any, ...]:
    rules = make_timing(data)
    return (rules.recurring, rules.first_at, rules.timezone, rules.cron, rules.interval)


def delete_job(job_id: str, now: datetime) -> None:
    job = _locked_job(job_id)
    audit.record("delete", now, job_id=job.id, detail=job.name or job.payload[:200])
    db.session.delete(job)
    db.session.commit()


def pause_job(job_id: str, now: datetime) -> Job:
    job = _locked_job(job_id)
    _change(job, jobstate.pause(JobState.of(job)), now)
    db.session.commit()
    return job


def resume_job(job_id: str, now: datetime) -> Job:
    """Resume from now: occurrences that fell while paused are not fired."""
    job = _locked_job(job_id)
    _change(job, jobstate.resume(job_timing(job), JobState.of(job), now), now)
    _notify_if_due_soon([job], now)
    db.session.commit()
    return job


def run_job_now(job_id: str, now: datetime) -> Run:
    """Fire once, now, outside the job's rules (it counts as a run, not towards maxRuns)."""
    job = _locked_job(job_id)
    run = Run(
        id=uuid.uuid4(),
        job_id=job.id,
        scheduled_for=now,
        due_at=now,
        fired_at=now,
        status="pending",
        attempts=0,
        next_attempt_at=now,
    )
    db.session.add(run)
    _change(job, jobstate.run_now(JobState.of(job), now), now, touch=False, run_id=run.id)
    if is_postgresql(db.engine):
        db.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    db.session.commit()
    return run


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    recurring: str | None = None
    target_type: str | None = None
    search: str | None = None


def list_jobs(
    limit: int, cursor: str | None, filters: JobFilter = JobFilter()
) -> tuple[list[Job], str | None]:
    """A page of jobs by creation order (keyset, never OFFSET) and the next page's cursor."""
    query: Select[tuple[Job]] = select(Job).order_by(Job.created_at, Job.id).limit(limit + 1)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        # A row comparison, so the index range starts at the cursor (an OR scans from the top).
        query = query.where(
            tuple_(Job.created_at, Job.id)
            > tuple_(*key_values(Job.created_at, Job.id, created_at, last_id))
        )
    query = _filtered(query, filters)
    jobs = list(db.session.execute(query).scalars())
    if len(jobs) <= limit:
        return jobs, None
    last = jobs[limit - 1]
    return jobs[:limit], encode_cursor(last.created_at, last.id)


def _filtered(query: Select[Any], filters: JobFilter) -> Select[Any]:
    if filters.status:
        query = query.where(Job.status == filters.status)
    if filters.recurring:
        query = query.where(Job.recurring == filters.recurring)
    if filters.target_type:
        query = query.where(Job.target_type == filters.target_type)
    if filters.search:
        pattern = "%" + filters.search.replace("\\", "\\\\").replace("%", "\\%") + "%"
        query = query.where(
            or_(Job.name.ilike(pattern, escape="\\"), Job.payload.ilike(pattern, escape="\\"))
        )
    return query


def count_by_status() -> dict[str, int]:
    rows = db.session.execute(select(Job.status, func.count()).group_by(Job.status))
    counts = {"active": 0, "paused": 0, "completed": 0}
    counts.update({status: count for status, count in rows})
    return counts


def due_between(start: datetime, end: datetime, limit: int = 200) -> list[Job]:
    """Jobs whose next run falls in [start, end), soonest first."""
    query = (
        select(Job)
        .where(Job.next_run_at >= start, Job.next_run_at < end)
        .order_by(Job.next_run_at)
        .limit(limit)
    )
    return list(db.session.execute(query).scalars())


def key_values(
    time_column: Any, id_column: Any, instant: datetime, key: uuid.UUID
) -> tuple[Any, Any]:
    """A cursor's values as typed parameters, for a row comparison with (time, id)."""
    return literal(instant, time_column.type), literal(key, id_column.type)


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise not_found(f"{field} {value}") from exc


def jobs_by_id(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """The jobs with these ids (absent ones left out), to show runs next to their job."""
    if not ids:
        return {}
    query = select(Job).where(Job.id.in_(set(ids)))
    return {job.id: job for job in db.session.execute(query).scalars()}
