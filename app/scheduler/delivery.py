"""Delivery: runs whose attempt is due are claimed, leased and handed to the lanes.

A step claims runs due for an attempt (new, retrying, or left behind by a crashed
dispatcher), as many as the lanes have room for. In the claim's transaction, runs of an
in-transaction target (the built-in queue) are delivered on the spot; runs of a target
this process lacks go dead; the rest are leased, each for its own call's timeout plus a
margin, and handed to the lanes. Leases of runs still held are renewed, so a run waiting
for a slot, in a long call or waiting for its outcome to be written is never taken over
by a live peer.

An origin that has its share held (a few rounds of its in-flight limit) is full: claims
pass over its runs (runs.origin, written when they fire) and its backlog waits in the
database, untouched, until the lanes have worked it down to half; then the delivery loop
is woken to claim again. So a slow origin neither fills memory nor costs a write per
run per look, and a fast one is topped up before its lane runs dry.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Text,
    and_,
    cast,
    or_,
    select,
    true,
    tuple_,
    update,
)

from app.clock import Clock
from app.database import Record, id_text, records, write_connection
from app.metrics import CounterWriter, by_target
from app.models import Job, Run
from app.retry import RetryPolicy
from app.scheduler import deadletters
from app.scheduler.bulk import Bulk
from app.scheduler.firing import Specs, delivery_of, origin_of
from app.scheduler.lanes import Held, Lanes
from app.scheduler.outcomes import MAX_ERROR_CHARS
from app.scheduler.settings import DispatcherSettings
from app.scheduler.wake import seconds_until_soonest
from app.targets.base import Delivery, Target

log = logging.getLogger(__name__)

jobs, runs = Job.__table__, Run.__table__
RENEW_CHUNK = 500
MAX_REOPENED = 10_000  # origins let in again, remembered until their next claim
# A dead letter run carries its own target and payload; other runs, the job's dead letter
# target (NULL, for most jobs: nothing to decode).
DEAD_LETTER_COLUMNS = (
    runs.c.dead_letter,
    runs.c.payload.label("own_payload"),
    cast(runs.c.target, Text).label("own_target"),
    cast(jobs.c.dead_letter, Text).label("dead_letter_target"),
)


@dataclass(frozen=True, slots=True)
class Route:
    """Where the runs of one target go and how they are tried: the same for all of them."""

    timeout: float  # seconds one call may take, as the target says
    lease: float  # seconds one lease lasts: at least the timeout plus the margin
    lease_until: datetime  # when a lease taken by this claim ends
    origin: str
    limit: int  # calls in flight to the origin, at most
    policy: RetryPolicy

    def held(
        self,
        delivery: Delivery,
        fired_at: datetime,
        dead_letter: deadletters.DeadLetterTo | None,
    ) -> Held:
        return Held(
            delivery=delivery,
            fired_at=fired_at,
            policy=self.policy,
            timeout=self.timeout,
            lease=self.lease,
            lease_until=self.lease_until,
            origin=self.origin,
            limit=self.limit,
            dead_letter=dead_letter,
        )


class Delivering:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        local_targets: Mapping[str, Any],
        remote_targets: Mapping[str, Target],
        settings: DispatcherSettings,
        bulk: Bulk,
        counters: CounterWriter,
        lanes: Lanes,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.local_targets = local_targets
        self.remote_targets = remote_targets
        self.settings = settings
        self.bulk = bulk
        self.counters = counters
        self.lanes = lanes
        self._full: dict[str, int] = {}  # full origins -> their share of held runs
        # Origins let in again, drained to half their share: the next claim tops them up to
        # that share at least (their answer rate may have dipped meanwhile, and a claim that
        # holds nothing of what it read would be a wasted transaction).
        self._reopened: dict[str, int] = {}
        self._lock = threading.Lock()  # _full is read by the lanes' thread too

    def deliver_due(self) -> int:
        """Claim one batch of runs due for an attempt. Returns how many were claimed (0:
        none due, or the lanes are full)."""
        room = min(self.settings.max_held - self.lanes.held_count(), self.settings.delivery_batch)
        if room <= 0:
            return 0
        now = self.clock.now()
        with write_connection(self.engine) as conn:
            rows = records(
                conn,
                select(
                    id_text(runs.c.id),  # passed on as text, as a delivery's run id
                    id_text(runs.c.job_id),
                    runs.c.scheduled_for,
                    runs.c.fired_at,
                    runs.c.attempts,
                    runs.c.last_error,  # a retry too old to try again keeps it in its own
                    runs.c.origin,
                    jobs.c.payload,
                    jobs.c.template,
                    jobs.c.name,
                    cast(jobs.c.target, Text).label("target"),  # decoded once per claim
                    cast(jobs.c.retry, Text).label("retry"),  # the same
                    *DEAD_LETTER_COLUMNS,
                )
                .join(jobs, jobs.c.id == runs.c.job_id)
                .where(self._claimable(now))
                .order_by(runs.c.next_attempt_at)
                .limit(room)
                .with_for_update(skip_locked=True, of=runs),
            )
            if not rows:
                return 0
            held = self._take(conn, rows, now)
        self.lanes.submit(held)
        return len(rows)

    def seconds_until_due(self) -> float | None:
        """How long until a run this loop would claim is due (runs of full origins wait
        for the lanes to wake the loop); None when none is."""
        now = self.clock.now()
        return seconds_until_soonest(self.engine, runs.c.next_attempt_at, now, self._claimable())

    def room_freed(self) -> bool:
        """Whether runs just released make a claim worth it: a full origin is down to half
        its share. (An origin that is not full never waits for room.)"""
        with self._lock:
            return any(self._drained(o, share) for o, share in self._full.items())

    def _drained(self, origin: str, share: int) -> bool:
        """A full origin the lanes have worked down to half its share: claim for it again."""
        return self.lanes.held_for(origin) <= share // 2

    def _claimable(self, now: datetime | None = None) -> ColumnElement[bool]:
        """Runs due for an attempt by `now` (or at any time: the soonest-instant read asks
        for a time, IS NOT NULL, itself), not of a full origin."""
        due = runs.c.next_attempt_at <= now if now else true()
        with self._lock:
            for origin, share in list(self._full.items()):
                if self._drained(origin, share):
                    if len(self._reopened) >= MAX_REOPENED:  # origins whose runs went away
                        self._reopened.clear()
                    self._reopened[origin] = self._full.pop(origin)
            full = sorted(self._full)
        if not full:
            return due
        return and_(due, or_(runs.c.origin.is_(None), runs.c.origin.not_in(full)))

    def _take(self, conn: Connection, rows: Sequence[Record], now: datetime) -> list[Held]:
        local: dict[str, list[Delivery]] = defaultdict(list)
        held: list[Held] = []
        leased: list[str] = []  # their run ids
        dead: list[tuple[Record, Delivery, str]] = []
        labels: list[dict[str, Any]] = []  # runs left due, their origin newly known
        taken: Counter[str] = Counter()
        # Runs of one target share one decoded spec, so a target that parses it keeps what
        # it parsed for all of them (and the delivery process receives it once per claim);
        # and one route, worked out for the first of them.
        specs = Specs()
        routes: dict[tuple[str, str | None], Route] = {}
        shares: dict[str, int] = {}  # an origin's share of held runs, this claim
        for row in rows:
            payload, spec_text = _own(row)
            spec = specs[spec_text]
            kind = spec["type"]
            run = {
                "id": row.id,
                "job_id": row.job_id,
                "scheduled_for": row.scheduled_for,
                "fired_at": row.fired_at,
            }
            # A dead letter's message goes out as written; a job's payload may be a template.
            own = payload if row.dead_letter else None
            delivery = delivery_of(run, row, spec, row.attempts + 1, own_payload=own)
            if kind in self.local_targets:
                local[kind].append(delivery)
                continue
            target = self.remote_targets.get(kind)
            if target is None:
                dead.append((row, delivery, f"no {kind} target configured in this scheduler"))
                continue
            route = routes.get((spec_text, row.retry))
            if route is None:
                route = self._route(target, delivery, row.retry, now)
                routes[spec_text, row.retry] = route
            if row.attempts and route.policy.too_old((now - row.fired_at).total_seconds()):
                error = f"{route.policy.too_old_error()}; {row.last_error or 'delivery failed'}"
                dead.append((row, delivery, error[:MAX_ERROR_CHARS]))  # late, as after downtime
                continue
            origin = route.origin
            share = shares.get(origin)
            if share is None:
                rate = self.lanes.answer_rate(origin)
                share = self.settings.origin_held(route.limit, rate)
                with self._lock:
                    share = shares[origin] = max(share, self._reopened.pop(origin, 0))
                taken[origin] = self.lanes.held_for(origin)
            if taken[origin] >= share:
                self._fill(origin, share)
                if row.origin != origin:  # so that the next claims pass over it
                    labels.append({"id": row.id, "origin": origin})
                continue
            taken[origin] += 1
            if taken[origin] >= share:  # full now: the next claim passes over its runs
                self._fill(origin, share)
            held.append(route.held(delivery, row.fired_at, self._dead_letter_to(row, specs)))
            leased.append(row.id)
        self._write_local(conn, local, now)
        self._write_dead(conn, dead, specs, now)
        self.bulk.update(conn, runs, "id", labels)
        self._write_leases(conn, leased, held)
        retries = sum(1 for row in rows if row.attempts >= 1)
        delivered = sum(len(d) for d in local.values())
        counts: Counter[str] = Counter({"deliveries_delivered": delivered, "retries": retries})
        counts["deliveries_dead"] = len(dead)
        for kind, done in local.items():
            counts.update(by_target("delivered", kind, len(done)))
        for _, d, _ in dead:
            counts.update(by_target("dead", d.target.get("type", "unknown")))
        self.counters.add(conn, counts)
        return held

    def _fill(self, origin: str, share: int) -> None:
        with self._lock:
            self._full[origin] = share

    def _route(self, target: Target, delivery: Delivery, retry: str | None, now: datetime) -> Route:
        """What every run of this delivery's target and retry policy shares, in a claim at
        `now`."""
        timeout = target.timeout(delivery)
        limit = delivery.target.get("maxInFlight") or self.settings.origin_in_flight
        # A destination may impose its own limit (a FIFO queue: one call at a time).
        imposed = getattr(target, "max_in_flight", lambda _: None)(delivery.target)
        limit = min(limit, imposed or limit)
        lease = max(self.settings.lease, timeout + self.settings.lease_margin)
        return Route(
            timeout=timeout,
            lease=lease,
            lease_until=now + timedelta(seconds=lease),
            origin=origin_of(self.remote_targets, delivery.target) or "",
            limit=min(int(limit), self.settings.max_in_flight),
            policy=RetryPolicy.of(
                json.loads(retry) if retry else None, self.settings.default_retry
            ),
        )

    def _write_local(
        self, conn: Connection, local: Mapping[str, list[Delivery]], now: datetime
    ) -> None:
        for kind, deliveries in local.items():
            self.local_targets[kind].write(conn, deliveries, now)
        delivered = [
            {
                "id": d.run_id,
                "status": "delivered",
                "attempts": d.attempt,
                "next_attempt_at": None,
                "delivered_at": now,
                "last_error": None,
            }
            for deliveries in local.values()
            for d in deliveries
        ]
        self.bulk.update(conn, runs, "id", delivered)

    def _write_dead(
        self,
        conn: Connection,
        dead: list[tuple[Record, Delivery, str]],
        specs: Specs,
        now: datetime,
    ) -> None:
        rows = [
            {
                "id": d.run_id,
                "status": "dead",
                "attempts": d.attempt,
                "next_attempt_at": None,
                "last_error": error,
            }
            for _, d, error in dead
        ]
        self.bulk.update(conn, runs, "id", rows)
        letters = [
            deadletters.Dead(d, row.fired_at, to, error, None)
            for row, d, error in dead
            if (to := self._dead_letter_to(row, specs)) is not None
        ]
        deadletters.write(conn, letters, now)

    def _dead_letter_to(self, row: Record, specs: Specs) -> deadletters.DeadLetterTo | None:
        """Where this run's dead letter would go: none for a dead letter itself (no loops)."""
        text = row.dead_letter_target
        if row.dead_letter or text is None:
            return None
        spec = specs[text]
        if not spec:  # a JSON null
            return None
        local = spec["type"] in self.local_targets
        return deadletters.DeadLetterTo(
            spec, None if local else origin_of(self.remote_targets, spec)
        )

    def _write_leases(self, conn: Connection, ids: list[str], held: list[Held]) -> None:
        rows = [
            {
                "id": run_id,
                "status": "delivering",
                "attempts": item.delivery.attempt,
                "next_attempt_at": item.lease_until,
                "origin": item.origin,
            }
            for run_id, item in zip(ids, held, strict=True)
        ]
        self.bulk.update(conn, runs, "id", rows)

    def renew_leases(self) -> int:
        """Renew the leases of held runs past half their length; forget the runs whose
        lease another dispatcher has taken over. Returns how many were renewed."""
        now = self.clock.now()
        due = [h for h in self.lanes.held() if h.lease_until - now < timedelta(seconds=h.lease / 2)]
        by_length: dict[float, list[Held]] = defaultdict(list)
        for item in due:
            by_length[item.lease].append(item)
        renewed: set[str] = set()
        for lease, items in by_length.items():
            for start in range(0, len(items), RENEW_CHUNK):
                renewed |= self._renew(items[start : start + RENEW_CHUNK], now, lease)
        for item in due:
            if item.delivery.run_id in renewed:
                item.lease_until = now + timedelta(seconds=item.lease)
        # An answered run not renewed had its outcome written meanwhile; any other was
        # taken over by a peer, after a stall longer than half its lease.
        lost = [
            i.delivery.run_id for i in due if i.delivery.run_id not in renewed and not i.answered
        ]
        if lost:
            log.warning(
                "leases lost to another dispatcher", extra={"action": "renew", "runs": len(lost)}
            )
            self.lanes.forget(lost)
        return len(renewed)

    def _renew(self, items: list[Held], now: datetime, lease: float) -> set[str]:
        keys = [(uuid.UUID(item.delivery.run_id), item.delivery.attempt) for item in items]
        with write_connection(self.engine) as conn:
            ours = conn.execute(
                update(runs)
                .where(tuple_(runs.c.id, runs.c.attempts).in_(keys))
                .where(runs.c.status == "delivering")
                .values(next_attempt_at=now + timedelta(seconds=lease))
                .returning(runs.c.id)
            ).scalars()
            return {str(key) for key in ours}


def _own(row: Record) -> tuple[str, str]:
    """The payload and target (JSON text) a claimed run delivers: a dead letter's own, else
    its job's."""
    if row.dead_letter:
        return row.own_payload, row.own_target
    return row.payload, row.target
