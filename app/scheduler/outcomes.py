"""Recording outcomes: each run's result is written as soon as its call ends.

Outcomes that arrive within a few milliseconds of each other share one transaction; none
waits for a neighbour's call. Only the holder of a run's live lease records it (the row
must still be `delivering` at the attempt it leased), so a run taken over by another
dispatcher is never overwritten by a late answer.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from app import audit, jobstate
from app.clock import Clock
from app.database import write_connection
from app.jobstate import JobState
from app.metrics import CounterWriter, by_target
from app.models import AuditEntry, Job, Run
from app.scheduler import deadletters
from app.scheduler.bulk import Bulk
from app.scheduler.lanes import Held
from app.targets.base import Outcome

log = logging.getLogger(__name__)

jobs, runs, audit_log = Job.__table__, Run.__table__, AuditEntry.__table__
MAX_ERROR_CHARS = 2000
MAX_BATCH = 1000
RETRY_WRITE_AFTER = 1.0  # seconds, when the database is away
_STOP = object()


def settle(held: Held, outcome: Outcome, now: datetime, rng: random.Random) -> dict[str, Any]:
    """The run's columns after this outcome, by its retry policy."""
    attempt = held.delivery.attempt
    values: dict[str, Any] = {
        "id": outcome.run_id,  # as text: the bulk writer stores it as an id
        "attempts": attempt,  # matched, not set: the attempt this lease was for
        "response_status": outcome.response_status,
        "response_ms": outcome.response_ms,
        "response_body": outcome.response_body,
    }
    if outcome.ok:
        return values | {
            "status": "delivered",
            "next_attempt_at": None,
            "delivered_at": now,
            "last_error": None,
        }
    policy = held.policy
    retry_at = now + timedelta(seconds=policy.delay(attempt, outcome.retry_after, rng))
    age = (retry_at - held.fired_at).total_seconds()  # the run's age at its next attempt
    dead = outcome.permanent or policy.gives_up(attempt, age)
    error = outcome.error or "delivery failed"
    if dead and not outcome.permanent and policy.too_old(age):
        error = f"{policy.too_old_error()}; {error}"
    return values | {
        "status": "dead" if dead else "retrying",
        "next_attempt_at": None if dead else retry_at,
        "delivered_at": None,
        "last_error": error[:MAX_ERROR_CHARS],
    }


def _counts(pairs: Sequence[tuple[Held, Outcome]], values: list[dict[str, Any]]) -> Counter[str]:
    """The counters these outcomes add to: per outcome, and per outcome and target type."""
    kinds = Counter(
        (v["status"], held.delivery.target.get("type"))
        for (held, _), v in zip(pairs, values, strict=True)
    )
    counts: Counter[str] = Counter()
    for (status, kind), count in kinds.items():
        counts[f"deliveries_{status}"] += count
        counts.update(by_target(status, kind, count))
    return counts


class OutcomeRecorder:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        bulk: Bulk,
        counters: CounterWriter,
        rng: random.Random,
        *,
        linger: float,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.bulk = bulk
        self.counters = counters
        self.rng = rng
        self.linger = linger
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="outcomes", daemon=True)
        self._thread.start()

    def put(self, pairs: list[tuple[Held, Outcome]], written: Callable[[], None]) -> None:
        """Write these outcomes soon, then call `written` (from the recorder's thread)."""
        self._queue.put((pairs, written))

    def flush(self) -> None:
        """Wait until every outcome put so far is written."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            batch, callbacks = list(first[0]), [first[1]]
            deadline = time.monotonic() + self.linger
            while len(batch) < MAX_BATCH and (remaining := deadline - time.monotonic()) > 0:
                try:
                    more = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if more is _STOP:
                    self._queue.task_done()
                    self._queue.put(_STOP)  # after this batch
                    break
                batch += more[0]
                callbacks.append(more[1])
            self._write_until_done(batch)
            for written in callbacks:
                written()
                self._queue.task_done()

    def _write_until_done(self, batch: list[tuple[Held, Outcome]]) -> None:
        while True:
            try:
                self.write(batch)
                return
            except Exception:  # the database may be away: the runs' leases are still renewed
                log.exception("recording outcomes failed", extra={"action": "record"})
                time.sleep(RETRY_WRITE_AFTER)

    def write(self, pairs: Sequence[tuple[Held, Outcome]]) -> None:
        now = self.clock.now()
        values = [settle(held, outcome, now, self.rng) for held, outcome in pairs]
        gone = {
            uuid.UUID(held.delivery.job_id): outcome.error or "the target asked to stop"
            for held, outcome in pairs
            if outcome.disable_job
        }
        with write_connection(self.engine) as conn:
            ours = self.bulk.update(
                conn, runs, "id", values, condition="status = 'delivering'", match=("attempts",)
            )
            self.counters.add(conn, _counts(pairs, values))
            deadletters.write(conn, self._dead_letters(pairs, values), now)
            if gone:
                self._pause_gone(conn, gone, now)
        for (held, _), v in zip(pairs, values, strict=True):
            if v["status"] == "dead":  # the end of a run's attempts: a line of its own
                context = held.delivery.log_context() | {"error": v["last_error"]}
                log.error("run dead", extra={"action": "dead", **context})
        if ours < len(values):  # another dispatcher took these runs over: it delivers them
            log.warning(
                "outcomes of runs whose lease was lost, not recorded",
                extra={"action": "record", "runs": len(values) - ours},
            )
        failed = sum(1 for _, o in pairs if not o.ok)
        if failed:
            log.warning(
                "deliveries failed",
                extra={"action": "deliver", "failed": failed, "total": len(pairs)},
            )

    def _dead_letters(
        self, pairs: Sequence[tuple[Held, Outcome]], values: list[dict[str, Any]]
    ) -> list[deadletters.Dead]:
        return [
            deadletters.Dead(
                held.delivery,
                held.fired_at,
                held.dead_letter,
                v["last_error"],
                o.response_status,
            )
            for (held, o), v in zip(pairs, values, strict=True)
            if v["status"] == "dead" and held.dead_letter is not None
        ]

    def _pause_gone(self, conn: Any, reasons: dict[uuid.UUID, str], now: datetime) -> None:
        """Jobs whose target said "gone": paused by the job-state rules, audited."""
        rows = conn.execute(
            select(jobs).where(jobs.c.id.in_(list(reasons))).with_for_update()
        ).all()
        for row in rows:
            change = jobstate.gone(JobState.of(row), reasons[row.id])
            if not change.audits:
                continue
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(**change.state.columns(), updated_at=now)
            )
            self.bulk.insert(conn, audit_log, audit.dispatcher_entries(now, row.id, change.audits))
