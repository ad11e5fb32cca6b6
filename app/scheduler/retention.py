"""Retention: the scheduler process prunes old history in small batches.

Each batch is its own short transaction, so pruning a large backlog never holds a long
lock on the tables the dispatcher writes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, Table, delete, select

from app.database import write_connection
from app.idempotency import KEY_LIFETIME
from app.models import AuditEntry, IdempotencyKey, QueueMessage, Run

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
    limit: int = 100_000,
) -> dict[str, int]:
    """Delete finished runs, queue messages, audit entries and idempotency keys older than
    their age.

    At most `limit` rows of each per call: a huge backlog is worked off over several calls.
    """
    runs, messages, audit = Run.__table__, QueueMessage.__table__, AuditEntry.__table__
    keys = IdempotencyKey.__table__
    pruned = {
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
    if any(pruned.values()):
        log.info("pruned history", extra={"action": "prune", **pruned})
    return pruned
