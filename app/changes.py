"""The change marker: one cheap query whose answer moves whenever what the live pages show
(jobs, runs, queues) changes, so that a poll can tell "nothing new" without reading the pages.

What moves it:
- every change people make through the API or the UI (create, update, pause, resume, run
  now, delete, retry): each writes an audit entry, and the newest entry's id grows;
- everything the dispatcher does (fires, delivery outcomes, retries): it adds to the
  counters, and their sum grows (not its heartbeat, the count of passes); consumers
  receiving and acknowledging built-in queue messages add to the counters too (app.queue);
- the soonest next run and the oldest queue message: they set how fine the pages' relative
  texts are ("in 12 s", "12 s ago"), see needs_seconds.
Each part is an index lookup (a primary key or an index's first entry) or a read of the
counters table (a few rows per counter name), whatever the number of jobs and runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.database import db, earliest
from app.metrics import PASSES
from app.models import AuditEntry, Counter, Job, QueueMessage


@dataclass(frozen=True)
class Marker:
    last_audit: int
    counted: float
    soonest_run: datetime | None
    oldest_message: datetime | None

    def needs_seconds(self, now: datetime, shows: Sequence[str]) -> bool:
        """Whether a page that `shows` "next runs" and/or "queue messages" as relative times
        may show one under a minute (they count seconds there, minutes or more from then on)."""
        near = [self.soonest_run] if "next runs" in shows else []
        near += [self.oldest_message] if "queue messages" in shows else []
        return any(abs(t - now) < timedelta(minutes=1) for t in near if t is not None)


def marker() -> Marker:
    """One statement: four scalar subqueries, each an index or a tiny table."""
    row = db.session.execute(
        select(
            select(func.max(AuditEntry.id)).scalar_subquery(),
            # The counts only: a float sum of lags could swallow a +1; and not the
            # heartbeat, which grows every second whether anything changed or not.
            select(func.coalesce(func.sum(Counter.value), 0))
            .where(Counter.name.not_like("lag_%"), Counter.name != PASSES)
            .scalar_subquery(),
            earliest(Job.next_run_at).scalar_subquery(),
            earliest(QueueMessage.created_at).scalar_subquery(),
        )
    ).one()
    last_audit, counted, soonest, oldest = row
    return Marker(int(last_audit or 0), float(counted or 0), soonest, oldest)
