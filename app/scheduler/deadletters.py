"""Dead letters: when a run goes dead, a message about it goes to the job's dead letter target.

The message is a run of its own (`runs.dead_letter`), of the same job and scheduled_for,
with its own target and payload: it is claimed, leased, retried by the job's policy and
recorded like any run. It is written in the transaction that records the run dead, and
only if that transaction did (a late answer from a lost lease writes none). A dead letter
that dies itself makes none: no loops. The unique key (job, scheduled_for, dead_letter)
makes it one dead letter per run, however often a run is retried by hand and dies again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from app.ids import new_id
from app.instants import format_instant
from app.models import Run
from app.targets import celery
from app.targets.base import Delivery

runs = Run.__table__


@dataclass(frozen=True, slots=True)
class DeadLetterTo:
    """Where a run's dead letter goes: the job's dead letter target and its origin."""

    target: dict[str, Any]
    origin: str | None  # as runs.origin; None for an in-transaction target (the queue)


@dataclass(frozen=True, slots=True)
class Dead:
    """A run recorded dead, with what its dead letter tells."""

    delivery: Delivery
    fired_at: datetime
    to: DeadLetterTo
    error: str | None
    status: int | None  # the last response's status, if there was one


def message(dead: Dead) -> str:
    """The dead letter's payload: the letter as JSON; to a Celery task, as its argument (a
    task's payload is its arguments)."""
    d = dead.delivery
    letter = {
        "payload": d.payload,
        "runId": d.run_id,
        "jobId": d.job_id,
        "attempts": d.attempt,
        "lastError": dead.error,
        "lastStatus": dead.status,
        "scheduledFor": format_instant(d.scheduled_for),
        "firedAt": format_instant(dead.fired_at),
    }
    if dead.to.target.get("type") == "celery":
        return celery.as_one_argument(letter)
    return json.dumps(letter)


def write(conn: Connection, found: Sequence[Dead], now: datetime) -> int:
    """Write the dead letters of these runs, those still dead at the attempt they died at
    (an outcome whose lease was lost recorded nothing); how many were written."""
    if not found:
        return 0
    keys = [(uuid.UUID(d.delivery.run_id), d.delivery.attempt) for d in found]
    still = set(
        conn.execute(
            select(runs.c.id, runs.c.attempts).where(
                runs.c.id.in_([key for key, _ in keys]), runs.c.status == "dead"
            )
        ).tuples()
    )
    rows = [_row(d, now) for d, key in zip(found, keys, strict=True) if key in still]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(runs).on_conflict_do_nothing()
    return int(conn.execute(statement, rows).rowcount or 0)


def _row(dead: Dead, now: datetime) -> dict[str, Any]:
    d = dead.delivery
    return {
        "id": new_id(),
        "job_id": uuid.UUID(d.job_id),
        "scheduled_for": d.scheduled_for,
        "due_at": now,
        "fired_at": now,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "origin": dead.to.origin,
        "dead_letter": True,
        "target": dead.to.target,
        "payload": message(dead),
    }
