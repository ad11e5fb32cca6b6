"""Retention: the scheduler process prunes old history in small batches.

Each batch is its own short transaction, so pruning a large backlog never holds a long
lock on the tables the dispatcher writes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, Table, delete, func, insert, select

from app import audit
from app.database import write_connection
from app.idempotency import KEY_LIFETIME
from app.jobstate import DELETED
from app.models import AuditEntry, IdempotencyKey, Job, QueueMessage, Run

log = logging.getLogger(__name__)
BATCH = 1000


def prune_batch(engine: Engine, table: Table, condition: ColumnElement[bool]) -> int:
    with write_connection(engine) as conn:
        ids = select(table.c.id).where(condition).limit(BATCH).scalar_subquery()
        return int(conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount)


def prune_all(engine: Engine, table: Table, condition: ColumnElement[bool], limit: int) -> int:
    total = 0
    while total < limit:
        deleted = prune_batch(engine, table, condition)
        total += deleted
        if deleted < BATCH:
            break
    return total


def prune(
    engine: Engine,
    now: datetime,
    *,
    run_days: float,
    queue_days: float,
    audit_days: float,
    completed_job_days: float = 30.0,
    limit: int = 100_000,
) -> dict[str, int]:
    """Delete finished runs, queue messages, audit entries and idempotency keys older than
    their age.

    At most `limit` rows of each per call: a huge backlog is worked off over several calls.
    """
    runs, messages, audit = Run.__table__, QueueMessage.__table__, AuditEntry.__table__
    keys = IdempotencyKey.__table__
    pruned = {
        **prune_completed_jobs(engine, now, completed_job_days, limit),
        "runs": prune_all(
            engine,
            runs,
            (runs.c.fired_at < now - timedelta(days=run_days)) & runs.c.next_attempt_at.is_(None),
            limit,
        ),
        "queue_messages": prune_all(
            engine, messages, messages.c.created_at < now - timedelta(days=queue_days), limit
        ),
        "audit_log": prune_all(engine, audit, audit.c.at < now - timedelta(days=audit_days), limit),
        "idempotency_keys": prune_all(engine, keys, keys.c.created_at <= now - KEY_LIFETIME, limit),
    }
    if any(pruned.values()):  # (a deleted job's runs go with it: "runs" counts the rest)
        log.info("pruned history", extra={"action": "prune", **pruned})
    return pruned


def prune_completed_jobs(
    engine: Engine, now: datetime, completed_days: float, limit: int
) -> dict[str, int]:
    """Delete completed jobs, with their runs, once none of their runs is still to be
    delivered: those that asked for it (onComplete "delete", audited as the dispatcher's
    delete) and those completed longer ago than `completed_days`. A run still pending,
    being delivered or waiting for a retry holds its job until it is finished."""
    jobs = Job.__table__
    unfinished = Run.to_deliver(jobs.c.id)
    done = (jobs.c.status == "completed") & ~unfinished
    completed_at = func.coalesce(jobs.c.last_run_at, jobs.c.updated_at)
    old = completed_at < now - timedelta(days=completed_days)
    asked = delete_jobs(engine, now, done & (jobs.c.on_complete == "delete"), limit, audited=True)
    # Deleted by a caller while runs were in flight (audited then): removed once they are done.
    left = (jobs.c.status == DELETED) & ~unfinished
    return {
        "jobs_deleted": asked + delete_jobs(engine, now, left, limit),
        "jobs_expired": delete_jobs(engine, now, done & old, limit),
    }


def delete_jobs(
    engine: Engine,
    now: datetime,
    condition: ColumnElement[bool],
    limit: int,
    *,
    audited: bool = False,
) -> int:
    jobs, audit_log = Job.__table__, AuditEntry.__table__
    total = 0
    while total < limit:
        with write_connection(engine) as conn:
            # Locked (skipping what another dispatcher holds), then deleted if still done.
            query = (
                select(jobs.c.id).where(condition).limit(BATCH).with_for_update(skip_locked=True)
            )
            ids = list(conn.execute(query).scalars())
            if not ids:
                break
            deleted = conn.execute(delete(jobs).where(jobs.c.id.in_(ids), condition)).rowcount
            if audited:
                rows = [
                    audit.entry(now, audit.DISPATCHER, "delete", i, detail="onComplete: delete")
                    for i in ids
                ]
                conn.execute(insert(audit_log), rows)
        total += int(deleted)
        if len(ids) < BATCH:
            break
    return total
