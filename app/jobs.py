"""The job store: every change to a job goes through here, from the API and the UI alike."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, delete, func, insert, literal, or_, select, text, tuple_

from app import audit, jobstate, scope, timing
from app.cursors import decode_cursor, decode_sort_cursor, encode_cursor, encode_sort_cursor
from app.database import begin_write, db, is_postgresql
from app.errors import Conflict, Invalid, NotFound, TooLarge
from app.ids import new_id
from app.instants import format_instant
from app.jobinput import JobValues
from app.jobstate import JobState
from app.models import Job, JobLabel, Run
from app.schemas import MAX_SECRETS
from app.targets.signing import generate_secret

NOTIFY_CHANNEL = "scheduler_due"
# Core statements built once: a create is a few small statements, and building one (its
# cache key too) costs about as much as running it.
INSERT_JOBS = insert(Job.__table__)
JOB_KEYS = tuple(Job.__table__.columns.keys())
INSERT_LABELS = insert(JobLabel.__table__)


def job_timing(job: Job) -> timing.Timing:
    return timing.timing_of(job)


def upcoming_fires(job: Job, count: int) -> list[datetime]:
    """When an active job fires next, `count` times (each occurrence at its point in the
    job's flexible window, if it has one)."""
    if job.next_run_at is None or count < 1:
        return []
    state = JobState.of(job)
    nominal = state.next_run_at
    assert nominal is not None
    later = timing.occurrences(job_timing(job), nominal, count - 1, fired=job.occurrence_count + 1)
    return [job.next_run_at, *(t + state.offset for t in later)]


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
    job.rrule = rules.rrule
    job.exclude = None if rules.exclude is None else rules.exclude.as_json()
    job.on_excluded = None if rules.on_excluded == "skip" else rules.on_excluded
    job.dst_gap = None if rules.dst_gap == "shift" else rules.dst_gap
    job.dst_repeat = None if rules.dst_repeat == "first" else rules.dst_repeat
    job.target = _with_secret(values.target, job.target)
    job.target_type = job.target["type"]
    job.retry = values.retry
    job.misfire = values.misfire
    job.max_catch_up = values.max_catch_up
    job.dead_letter = _kept_secret(values.dead_letter, job.dead_letter)
    job.on_complete = values.on_complete
    job.template = values.template
    job.window = values.window  # before the state below: its offset comes from it
    job.labels = scope.labels_in_scope(values.labels)
    job.updated_at = now
    state = jobstate.schedule(rules, JobState.of(job), now, paused=values.paused)
    _set_state(job, state)
    if job.status != jobstate.PAUSED:  # a pause's terms last as long as the pause
        job.pause_note = job.paused_until = None


def _with_secret(target: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """A webhook without a secret keeps the job's (answers never show it, so get-modify-put
    sends none back), or gets a new one."""
    if target["type"] != "webhook" or target.get("secret"):
        return target
    kept = old.get("secret") if old and old.get("type") == "webhook" else None
    return target | {"secret": kept or generate_secret()}


def _kept_secret(
    target: dict[str, Any] | None, old: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A dead letter webhook without a secret keeps the one it had (answers never show it);
    none is made for it: it is signed only when given one."""
    if not target or target["type"] != "webhook" or target.get("secret"):
        return target
    kept = old.get("secret") if old and old.get("type") == "webhook" else None
    return target | {"secret": kept} if kept else target


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
) -> bool:
    """Write a transition decided by app.jobstate, and its audit entries (`touch`: it
    changes the job itself, so updatedAt moves); whether it changed anything."""
    _set_state(job, change.state)
    if change.audits and touch:
        job.updated_at = now
    for entry in change.audits:
        audit.record(entry.action, now, job_id=job.id, detail=entry.detail, **audit_fields)
    return bool(change.audits)


def _notify_if_due_soon(jobs: Sequence[Job], now: datetime) -> None:
    """Wake the dispatchers (PostgreSQL) when a job is due before their next pass.

    NOTIFY takes a global lock at commit, so one per transaction at most, and only when
    it makes a difference.
    """
    if not is_postgresql(db.engine):
        return
    horizon = now + timedelta(seconds=current_app.config["DISPATCH_INTERVAL"])
    if any(job.next_run_at is not None and job.next_run_at <= horizon for job in jobs):
        _wake_dispatchers()


BeforeCommit = Callable[[list["Job"]], None]


def create_job(values: JobValues, now: datetime, before_commit: BeforeCommit | None = None) -> Job:
    return create_jobs([values], now, before_commit)[0]


def create_jobs(
    items: Sequence[JobValues], now: datetime, before_commit: BeforeCommit | None = None
) -> list[Job]:
    """Create jobs, all in one transaction (`before_commit` adds to it: the answer an
    idempotency key keeps)."""
    jobs = []
    for values in items:
        job = Job(id=new_id(), created_at=now, target=None)
        _set_state(job, JobState(status=jobstate.ACTIVE))
        _apply(job, values, now)
        jobs.append(job)
    begin_write()
    # One multi-row INSERT: the ORM's unit of work costs more than the rows themselves.
    db.session.execute(INSERT_JOBS, [_columns(job) for job in jobs])
    _write_labels(jobs)
    audit.record_many("create", now, [job.id for job in jobs])
    _notify_if_due_soon(jobs, now)
    if before_commit is not None:
        before_commit(jobs)
    db.session.commit()
    return jobs


def _columns(job: Job) -> dict[str, Any]:
    values = job.__dict__  # the instance's own values: every column is set by now
    return {key: values.get(key) for key in JOB_KEYS}


def at_most_a_batch(field: str, count: int) -> None:
    """One request creates or changes at most MAX_BATCH_JOBS jobs."""
    limit = current_app.config["MAX_BATCH_JOBS"]
    if count > limit:
        raise TooLarge.field(field, f"at most {limit} jobs a request")


def get_job(job_id: str) -> Job:
    """The job, if it is in the caller's slice (app.scope): else it does not exist."""
    query = scope.jobs_in_scope(select(Job).where(Job.id == _uuid(job_id, "jobId")))
    job = db.session.execute(query).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_id}")
    return job


def _locked_job(job_id: str) -> Job:
    begin_write()
    job = db.session.execute(
        scope.jobs_in_scope(select(Job).where(Job.id == _uuid(job_id, "jobId")))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_id}")
    return job


def _write_labels(jobs: Sequence[Job], *, replace: bool = False) -> None:
    """The jobs' labels, one row each in job_labels (what lists and bulk actions find by)."""
    if replace:
        db.session.execute(delete(JobLabel).where(JobLabel.job_id.in_([j.id for j in jobs])))
    rows = [
        {"job_id": job.id, "key": key, "value": value}
        for job in jobs
        for key, value in (job.labels or {}).items()
    ]
    if rows:
        db.session.execute(INSERT_LABELS, rows)


def update_job(job_id: str, values: JobValues, now: datetime) -> Job:
    job = _locked_job(job_id)
    if _timing_key(job_timing(job)) != _timing_key(values.rules):
        _set_state(job, jobstate.new_rule(JobState.of(job)))
    old_labels = job.labels or {}
    _apply(job, values, now)
    if job.labels != old_labels:
        _write_labels([job], replace=True)
    audit.record("update", now, job_id=job.id)
    _notify_if_due_soon([job], now)
    db.session.commit()
    return job


def _timing_key(rules: timing.Timing) -> tuple[Any, ...]:
    """What makes a rule new: a change here starts a new sequence (jobstate.new_rule)."""
    return (rules.recurring, rules.first_at, rules.timezone, rules.cron, rules.interval)


def delete_job(job_id: str, now: datetime) -> None:
    _delete(_locked_job(job_id), now)
    db.session.commit()


@dataclass(frozen=True)
class PauseTerms:
    """Why a job is paused, and when the pause ends by itself (end_pauses)."""

    note: str | None = None
    until: datetime | None = None

    def detail(self) -> str | None:
        parts = [self.note] if self.note else []
        parts += [f"until {format_instant(self.until)}"] if self.until else []
        return "; ".join(parts) or None


def pause_job(job_id: str, now: datetime, terms: PauseTerms = PauseTerms()) -> Job:
    if terms.until is not None and terms.until <= now:
        raise Invalid.field("until", "must be in the future")
    job = _locked_job(job_id)
    _pause(job, now, terms)
    db.session.commit()
    return job


def end_pauses(now: datetime, limit: int = 500) -> int:
    """Resume the paused jobs whose pause has ended, the longest over first; how many.
    The scheduler process calls this every pass: a look at an index (empty most of the
    time), and a write transaction only when a pause has ended."""
    if db.session.scalar(select(Job.id).where(Job.paused_until <= now).limit(1)) is None:
        return 0
    begin_write()
    ended = list(
        db.session.execute(
            select(Job)
            .where(Job.paused_until <= now)
            .order_by(Job.paused_until)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ).scalars()
    )
    for job in ended:
        _resume(job, now, detail=f"the pause ended (until {format_instant(job.paused_until)})")
    _notify_if_due_soon(ended, now)
    db.session.commit()
    return len(ended)


def resume_job(job_id: str, now: datetime) -> Job:
    """Resume from now: occurrences that fell while paused are not fired."""
    job = _locked_job(job_id)
    _resume(job, now)
    _notify_if_due_soon([job], now)
    db.session.commit()
    return job


def run_job_now(job_id: str, now: datetime) -> Run:
    """Fire once, now, outside the job's rules (it counts as a run, not towards maxRuns)."""
    job = _locked_job(job_id)
    run = _run_now(job, now)
    _wake_dispatchers()
    db.session.commit()
    return run


def _delete(job: Job, now: datetime) -> bool:
    """Delete the job; while runs of it are still to be delivered, it only stops firing and
    leaves every caller's view, and the retention task removes it once they are done: a
    run in flight is never lost with its job."""
    audit.record("delete", now, job_id=job.id, detail=job.name or job.payload[:200])
    if not db.session.scalar(select(Run.to_deliver(job.id))):
        db.session.delete(job)
    else:
        _set_state(job, jobstate.delete_later(JobState.of(job)))
        job.updated_at = now
    return True


def _pause(job: Job, now: datetime, terms: PauseTerms = PauseTerms()) -> bool:
    kept = PauseTerms(job.pause_note, job.paused_until)
    new_terms = bool(terms.note or terms.until) and terms != kept
    change = jobstate.pause(JobState.of(job), detail=terms.detail(), new_terms=new_terms)
    changed = _change(job, change, now)
    if changed:
        job.pause_note, job.paused_until = terms.note, terms.until
    return changed


def _resume(job: Job, now: datetime, detail: str | None = None) -> bool:
    change = jobstate.resume(job_timing(job), JobState.of(job), now, detail=detail)
    changed = _change(job, change, now)
    if changed:
        job.pause_note = job.paused_until = None
    return changed


def pending_run(job: Job, scheduled_for: datetime, now: datetime, first_attempt: datetime) -> Run:
    """A run made outside the dispatcher (run now, backfill), due now, first tried then."""
    return Run(
        id=new_id(),
        job_id=job.id,
        scheduled_for=scheduled_for,
        due_at=now,
        fired_at=now,
        status="pending",
        attempts=0,
        next_attempt_at=first_attempt,
    )


def _run_now(job: Job, now: datetime) -> Run:
    run = pending_run(job, now, now, now)
    db.session.add(run)
    _change(job, jobstate.run_now(JobState.of(job), now), now, touch=False, run_id=run.id)
    return run


def _wake_dispatchers() -> None:
    if is_postgresql(db.engine):
        db.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


# Each takes a locked job and says whether it changed it (pausing a paused job does not).
BULK_ACTIONS: dict[str, Callable[[Job, datetime], bool]] = {
    "pause": _pause,
    "resume": _resume,
    "run": lambda job, now: bool(_run_now(job, now)),
    "delete": _delete,
}


@dataclass(frozen=True)
class BulkResult:
    changed: list[uuid.UUID]
    unchanged: list[uuid.UUID]  # found, but already as asked (paused, active, completed)


def bulk_action(
    action: str,
    now: datetime,
    job_ids: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> BulkResult:
    """One action on many jobs, given by id or by labels (all of them), in one transaction,
    audited per job. Jobs not found (deleted meanwhile, or never were) are in neither list."""
    if (job_ids is None) == (labels is None):
        raise Invalid.field("jobIds", "give jobIds or labels, one of them")
    apply = BULK_ACTIONS[action]
    begin_write()
    if labels is not None:
        ids = _labelled(labels)
    else:
        at_most_a_batch("jobIds", len(job_ids or ()))
        ids = sorted({_uuid(job_id, "jobIds") for job_id in job_ids or ()})
    # Locked in id order, so two bulk actions never wait on each other in a cycle.
    found = list(
        db.session.execute(
            scope.jobs_in_scope(select(Job).where(Job.id.in_(ids)))
            .order_by(Job.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalars()
    )
    result = BulkResult([], [])
    for job in found:
        (result.changed if apply(job, now) else result.unchanged).append(job.id)
    if action == "run":
        _wake_dispatchers()
    elif action == "resume":
        _notify_if_due_soon(found, now)
    db.session.commit()
    return result


def _labelled(labels: Mapping[str, str]) -> list[uuid.UUID]:
    """The ids of the jobs carrying all these labels; TooLarge past MAX_BATCH_JOBS."""
    limit = current_app.config["MAX_BATCH_JOBS"]
    matching = scope.with_labels(scope.jobs_in_scope(select(Job.id)), labels.items())
    query = matching.order_by(Job.id).limit(limit + 1)
    ids = list(db.session.execute(query).scalars())
    if len(ids) > limit:
        raise TooLarge.field("labels", f"match more than {limit} jobs: narrow them down")
    return ids


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    recurring: str | None = None
    target_type: str | None = None
    search: str | None = None
    labels: tuple[tuple[str, str | None], ...] = ()  # every one of them; None: any value


@dataclass(frozen=True)
class JobOrder:
    """A list order: by one column then id, rows without a value (nullable) after the rest."""

    column: Any
    descending: bool = False
    nullable: bool = False

    def by(self, *columns: Any) -> list[Any]:
        return [c.desc() if self.descending else c.asc() for c in columns]


# The orders the jobs list offers (the API's `sort`); "created" is the original order.
JOB_ORDERS = {
    "created": JobOrder(Job.created_at),
    "-created": JobOrder(Job.created_at, descending=True),
    "nextRun": JobOrder(Job.next_run_at, nullable=True),
    "name": JobOrder(Job.name, nullable=True),
}
JOB_SORTS = tuple(JOB_ORDERS)
Key = tuple[datetime | str | None, uuid.UUID]


def list_jobs(
    limit: int, cursor: str | None, filters: JobFilter = JobFilter(), sort: str = "created"
) -> tuple[list[Job], str | None]:
    """A page of jobs in a JOB_ORDERS order (keyset, never OFFSET) and the next page's
    cursor. Creation and next-run orders follow an index; by name, the filtered jobs are
    sorted (a top-N sort: names change too rarely to pay for an index on every fire)."""
    order = JOB_ORDERS[sort]
    after = _decode_job_cursor(cursor, sort) if cursor else None
    jobs: list[Job] = []
    if after is None or after[0] is not None:
        jobs = _keyed_page(order, after, filters, limit + 1)
    if order.nullable and len(jobs) <= limit:
        tail_after = after[1] if after and after[0] is None else None
        jobs += _tail_page(order, tail_after, filters, limit + 1 - len(jobs))
    if len(jobs) <= limit:
        return jobs, None
    return jobs[:limit], _job_cursor(sort, jobs[limit - 1])


def _keyed_page(order: JobOrder, after: Key | None, filters: JobFilter, limit: int) -> list[Job]:
    """The jobs that have a value in the order's column, from the cursor on."""
    column = order.column
    query = select(Job).order_by(*order.by(column, Job.id)).limit(limit)
    if order.nullable:
        query = query.where(column.is_not(None))
    if after:
        # A row comparison, so the index range starts at the cursor (an OR scans from the top).
        key = tuple_(*key_values(column, Job.id, *after))
        row = tuple_(column, Job.id)
        query = query.where(row < key if order.descending else row > key)
    return list(db.session.execute(_filtered(query, filters)).scalars())


def _tail_page(
    order: JobOrder, after: uuid.UUID | None, filters: JobFilter, limit: int
) -> list[Job]:
    """The jobs without a value in the order's column (no next run, no name), by id."""
    query = select(Job).where(order.column.is_(None)).order_by(Job.id).limit(limit)
    if after:
        query = query.where(Job.id > literal(after, Job.id.type))
    return list(db.session.execute(_filtered(query, filters)).scalars())


def _job_cursor(sort: str, job: Job) -> str:
    value = getattr(job, JOB_ORDERS[sort].column.key)
    if sort == "created":  # the original cursor, so cursors given out before stay good
        return encode_cursor(value, job.id)
    return encode_sort_cursor(sort, value, job.id)


def _decode_job_cursor(cursor: str, sort: str) -> Key:
    if sort == "created":
        return decode_cursor(cursor)
    timed = sort != "name"
    return decode_sort_cursor(cursor, sort, timed=timed)


def _filtered(query: Select[Any], filters: JobFilter) -> Select[Any]:
    query = scope.with_labels(scope.jobs_in_scope(query), filters.labels)
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
    query = scope.jobs_in_scope(select(Job.status, func.count()).group_by(Job.status))
    rows = db.session.execute(query)
    counts = {"active": 0, "paused": 0, "completed": 0}
    counts.update({status: count for status, count in rows})
    return counts


def due_between(start: datetime, end: datetime, limit: int = 200) -> list[Job]:
    """Jobs whose next run falls in [start, end), soonest first."""
    query = (
        scope.jobs_in_scope(select(Job))
        .where(Job.next_run_at >= start, Job.next_run_at < end)
        .order_by(Job.next_run_at)
        .limit(limit)
    )
    return list(db.session.execute(query).scalars())


def key_values(
    column: Any, id_column: Any, value: datetime | str | None, key: uuid.UUID
) -> tuple[Any, Any]:
    """A cursor's values as typed parameters, for a row comparison with (column, id)."""
    return literal(value, column.type), literal(key, id_column.type)


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(f"{field} {value}") from exc


def jobs_by_id(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """The jobs with these ids (absent ones left out), to show runs next to their job."""
    if not ids:
        return {}
    query = scope.jobs_in_scope(select(Job).where(Job.id.in_(set(ids))))
    return {job.id: job for job in db.session.execute(query).scalars()}
