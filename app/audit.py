"""The audit log: every change to a job, with who made it and when.

Entries are added to the caller's session, so they commit (or roll back) with the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from flask import g, has_app_context, has_request_context
from sqlalchemy import Select, insert, select

from app import scope
from app.database import db
from app.jobstate import Audit
from app.models import AuditEntry

ACTIONS = ("create", "update", "delete", "pause", "resume", "run", "retry", "complete", "skip")
DISPATCHER = "dispatcher"  # the actor of the changes the scheduler process makes
# Built once (writing an entry is most of a create), and inline: the new ids are not read
# back (no RETURNING).
INSERT_ENTRIES = insert(AuditEntry.__table__).inline()


def current_actor() -> str:
    """The request's actor; outside a request, the scheduler process's own work names
    itself in g.actor (DISPATCHER), anything else is "system"."""
    actor = g.get("actor") if has_app_context() else None
    return str(actor or ("anonymous" if has_request_context() else "system"))


def record(
    action: str,
    now: datetime,
    *,
    job_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> None:
    record_many(action, now, [job_id], run_id=run_id, detail=detail)


def record_many(
    action: str,
    now: datetime,
    job_ids: Sequence[uuid.UUID | None],
    *,
    run_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> None:
    """One entry per job, written in the caller's transaction (one statement for a batch)."""
    actor = current_actor()
    rows = [entry(now, actor, action, job_id, run_id=run_id, detail=detail) for job_id in job_ids]
    db.session.execute(INSERT_ENTRIES, rows)


def dispatcher_entries(
    now: datetime, job_id: uuid.UUID, audits: Iterable[Audit]
) -> list[dict[str, Any]]:
    """The rows of the dispatcher's own transitions of one job (app.jobstate's audits)."""
    return [entry(now, DISPATCHER, a.action, job_id, detail=a.detail) for a in audits]


def entry(
    now: datetime,
    actor: str,
    action: str,
    job_id: uuid.UUID | None,
    *,
    run_id: uuid.UUID | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """One audit row, for whoever writes it (the store's session, the dispatcher's bulk)."""
    return {
        "at": now,
        "actor": actor,
        "action": action,
        "job_id": job_id,
        "run_id": run_id,
        "detail": detail,
    }


def list_entries(
    limit: int, before_id: int | None, job_id: uuid.UUID | None = None
) -> list[AuditEntry]:
    """Newest first (keyset on id); one more than `limit` tells there is a next page."""
    query: Select[tuple[AuditEntry]] = (
        select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    )
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if job_id:
        query = query.where(AuditEntry.job_id == job_id)
    in_scope = scope.job_ids_in_scope()
    if in_scope is not None:  # a slice sees its jobs' entries (a deleted job's are gone)
        query = query.where(AuditEntry.job_id.in_(in_scope))
    return list(db.session.execute(query).scalars())
