"""The built-in queue as a target: a run is delivered by writing its message in the very
transaction that fires it (or, for a retry or a run now, that claims it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from app.models import QueueMessage
from app.scheduler.bulk import Bulk
from app.targets.base import Delivery

table = QueueMessage.__table__


class QueueTarget:
    in_transaction = True

    def __init__(self, bulk: Bulk) -> None:
        self.bulk = bulk

    def write(self, conn: Connection, deliveries: Sequence[Delivery], now: datetime) -> None:
        self.bulk.insert(conn, table, [message_row(d, now) for d in deliveries])


def message_row(d: Delivery, now: datetime) -> dict[str, Any]:
    return {  # ids as text: the bulk writer stores them as ids
        "id": d.run_id,  # one message per run: the run id is the message id
        "queue": d.target.get("name", "default"),
        "payload": d.payload,
        "job_id": d.job_id,
        "run_id": d.run_id,
        "scheduled_for": d.scheduled_for,
        "created_at": now,
        "visible_at": now,
        "receipt": None,
        "receive_count": 0,
    }
