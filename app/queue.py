"""The built-in queue: the dispatcher enqueues (app.targets.queue), consumers receive and
acknowledge.

A received message stays hidden for its visibility timeout; unacknowledged, it comes back.
Each receive gives a fresh receipt, so a late ack of an earlier receive cannot delete a
message that someone else now holds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select, update

from app.database import begin_write, db, rowcount
from app.models import QueueMessage

table = QueueMessage.__table__
POLL_SECONDS = 0.05


def receive(
    queue: str,
    max_messages: int,
    visibility_timeout: float,
    wait: float,
    now: Callable[[], datetime],
) -> list[QueueMessage]:
    """Take up to max_messages visible messages; long-poll up to `wait` seconds for one."""
    deadline = time.monotonic() + wait
    while True:
        messages = _receive_once(queue, max_messages, visibility_timeout, now())
        if messages or time.monotonic() >= deadline:
            return messages
        time.sleep(min(POLL_SECONDS * 4, max(0.0, deadline - time.monotonic())))


def _receive_once(
    queue: str, max_messages: int, visibility_timeout: float, now: datetime
) -> list[QueueMessage]:
    begin_write()
    ids = list(
        db.session.execute(
            select(QueueMessage.id)
            .where(QueueMessage.queue == queue, QueueMessage.visible_at <= now)
            .order_by(QueueMessage.visible_at, QueueMessage.id)
            .limit(max_messages)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        db.session.rollback()
        return []
    hidden_until = now + timedelta(seconds=visibility_timeout)
    # Hex digits: a receipt that began with "-" would read as an option on a command line.
    receipts = {key: secrets.token_hex(24) for key in ids}
    db.session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("key"))
        .values(
            visible_at=hidden_until,
            receipt=bindparam("new_receipt"),
            receive_count=table.c.receive_count + 1,
        ),
        [{"key": key, "new_receipt": receipt} for key, receipt in receipts.items()],
    )
    messages = list(
        db.session.execute(
            select(QueueMessage)
            .where(QueueMessage.id.in_(ids))
            .order_by(QueueMessage.visible_at, QueueMessage.id)
            .execution_options(populate_existing=True)
        ).scalars()
    )
    _count("queue_received", len(messages))
    db.session.commit()
    return messages


def ack(queue: str, receipts: Sequence[str]) -> int:
    begin_write()
    deleted = rowcount(
        db.session.execute(
            delete(QueueMessage).where(
                QueueMessage.queue == queue, QueueMessage.receipt.in_(list(receipts))
            )
        )
    )
    _count("queue_acked", deleted)
    db.session.commit()
    return int(deleted)


def extend(queue: str, receipts: Sequence[str], visibility_timeout: float, now: datetime) -> int:
    """Hide the messages these receipts hold for `visibility_timeout` from now. A receipt
    is replaced at each receive, so an old one cannot hide a message someone else holds."""
    begin_write()
    changed = rowcount(
        db.session.execute(
            update(QueueMessage)
            .where(QueueMessage.queue == queue, QueueMessage.receipt.in_(list(receipts)))
            .values(visible_at=now + timedelta(seconds=visibility_timeout))
        )
    )
    db.session.commit()
    return int(changed)


def _count(name: str, value: int) -> None:
    """Add to a counter in this transaction: receiving and acknowledging change what the
    queue pages show, and the counters are what app.changes watches."""
    from app.metrics import CounterWriter  # app.metrics reads this module's counts

    CounterWriter(db.engine).add(db.session.connection(), {name: value})


def counts_by_queue(now: datetime) -> Select[tuple[str, int, int, datetime]]:
    """Per queue: messages visible now (depth), received but not acknowledged (in
    flight), and the oldest one's time. For the API and for /metrics."""
    return select(
        QueueMessage.queue,
        func.count().filter(QueueMessage.visible_at <= now),
        func.count().filter(QueueMessage.visible_at > now),
        func.min(QueueMessage.created_at),
    ).group_by(QueueMessage.queue)


def stats(queue: str, now: datetime) -> dict[str, Any]:
    row = db.session.execute(counts_by_queue(now).where(QueueMessage.queue == queue)).one_or_none()
    _, depth, in_flight, oldest = row or (queue, 0, 0, None)
    return {"name": queue, "depth": depth, "inFlight": in_flight, "oldestAt": oldest}


def depth(now: datetime) -> int:
    """Messages visible now, in all queues (the overview's figure)."""
    query = select(func.count()).where(QueueMessage.visible_at <= now)
    return int(db.session.execute(query).scalar_one())


def queue_names(limit: int = 1000) -> list[str]:
    query = select(QueueMessage.queue).distinct().order_by(QueueMessage.queue).limit(limit)
    return list(db.session.execute(query).scalars())


def peek(queue: str, limit: int = 20) -> list[QueueMessage]:
    """The oldest messages, without receiving them."""
    query = (
        select(QueueMessage)
        .where(QueueMessage.queue == queue)
        .order_by(QueueMessage.created_at, QueueMessage.id)
        .limit(limit)
    )
    return list(db.session.execute(query).scalars())
