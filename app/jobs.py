"""The job store: every change to a job goes through here, from the API and the UI alike."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, insert, literal, or_, select, text, tuple_

from app import audit, jobstate, timing
from app.cursors import decode_cursor, encode_cursor
from app.database import begin_write, db, is_postgresql
from app.errors import Conflict, NotFound
from app.jobinput import JobValues
from app.jobstate import JobState
from app.models import Job, Run
from app.schemas import MAX_SECRETS
from app.targets.webhook import generate_secret

NOTIFY_CHANNEL = "scheduler_due"
JOB_COLUMNS = tuple(Job.__table__.columns)


def job_timing(job: Job) -> timing.Timing:
    return timing.timing_of(job)


def _apply(job: Job, values: JobValues, now: datetime) -> None:
    """Write a request's values onto a job and work out its next run."""
    rules = values.rules
    job.payload = values.payload
    job.name = values.name
    job.recurring = rules.recurring
    job.first_at = rules.first_at
    job.timezone = rules.timezone
    job.cron = rules.cron
    job.interval = rules.interval
    job.start_at = rules.start_at
    job.end_at = rules.end_at
    job.max_runs = rules.max_runs
    job.target = _with_secret(values.target, job.target)
    job.target_type = job.target["type"]
    job.retry = values.retry
    job.misfire = values.misfire
    job.max_catch_up = values.max_catch_up
    job.updated_at = now
    state = jobstate.schedule(rules, JobState.of(job), now, paused=values.paused)
    _set_state(job, state)


def _with_secret(target: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """A webhook without a secret keeps the job's (answers never show it, so get-modify-put
    sends none back), or gets a new one."""
    if target["type"] != "webhook" or target.get("secret"):
        return target
    kept = old.get("secret") if old and old.get("type") == "webhook" else None
    return target | {"secret": kept or generate_secret()}


def secrets_of(target: dict[str, Any]) -> list[str]:
    """A webhook target's signing secrets, the newest first (one, or several mid-rotation)."""
    secret = target.get("secret") if target.get("type") == "webhook" else None
    return [secret] if isinstance(secret, str) else list(secret or [])


def rotate_secret(job_id: str, now: datetime) -> Job:
    """Standard Webhooks rotation: a new secret goes first and the current ones stay valid
    (every delivery is signed with each) until drop_old_secrets; the oldest go beyond
    MAX_SECRETS."""
    job = _locked_job(job_id)
    current = _webhook_secrets(job)
    job.target = job.target | {"secret": [generate_secret(), *current][:MAX_SECRETS]}
    job.updated_at = now
    audit.record("update", now, job_id=job.id, detail="signing secret rotated")
    db.session.commit()
    return job


def drop_old_secrets(job_id: str, now: datetime) -> Job:
    """End a rotation: only the newest secret signs from now on."""
    job = _locked_job(job_id)
    current = _webhook_secrets(job)
    if len(current) > 1:
        job.target = job.target | {"secret": current[0]}
        job.updated_at = now
        audit.record("update", now, job_id=job.id, detail="old signing secrets dropped")
    db.session.commit()
    return job


def _webhook_secrets(job: Job) -> list[str]:
    if job.target.get("type") != "webhook":
        db.session.rollback()
        raise Conflict(
            "Not a webhook",
            f"job {job.id} has a {job.target_type} target; only a webhook has a secret",
        )
    return secrets_of(job.target)


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


def create_job(values: JobValues, now: datetime) -> Job:
    return create_jobs([values], now)[0]


def create_jobs(items: Sequence[JobValues], now: datetime) -> list[Job]:
    """Create jobs, all in one transaction."""
    jobs = []
    for values in items:
        job = Job(id=uuid.uuid4(), created_at=now, target=None)
        _set_state(job, JobState(status=jobstate.ACTIVE))
        _apply(job, values, now)
        jobs.append(job)
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
        raise NotFound(f"job {job_id}")
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
        raise NotFound(f"job {job_id}")
    return job


def update_job(job_id: str, values: JobValues, now: datetime) -> Job:
    job = _locked_job(job_id)
    if _timing_key(job_timing(job)) != _timing_key(values.rules):
        _set_state(job, jobstate.new_rule(JobState.of(job)))
    _apply(job, values, now)
    audit.record("update", now, job_id=job.id)
    _notify_if_due_soon([job], now)
    db.session.commit()
    return job


def _timing_key(rules: timing.Timing) -> tuple[Any, ...]:
    """What makes a rule new: a change here starts a new sequence (jobstate.new_rule)."""
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
        raise NotFound(f"{field} {value}") from exc


def jobs_by_id(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """The jobs with these ids (absent ones left out), to show runs next to their job."""
    if not ids:
        return {}
    query = select(Job).where(Job.id.in_(set(ids)))
    return {job.id: job for job in db.session.execute(query).scalars()}
