"""Delivery lanes: one event loop holds every delivery call in flight.

The loop runs in its own thread. Leased runs handed to it wait in their origin's lane; a
lane starts a call while it has fewer than its limit in flight and the loop as a whole
fewer than `max_in_flight`, lanes taking turns, so one slow origin fills only its own
lane. An origin that cannot be reached is backed off as a whole: until its back-off ends,
its deliveries fail at once, without a connection attempt. Each call's outcomes go to the
recorder the moment the call ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.clock import Clock
from app.retry import RetryPolicy
from app.targets.base import Delivery, Outcome, Target

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Held:
    """A leased run the delivery loop holds until its outcome is handed to the recorder."""

    delivery: Delivery
    policy: RetryPolicy
    lease: float  # seconds one lease of this run lasts
    lease_until: datetime
    origin: str
    limit: int  # calls in flight to its origin, at most


Record = Callable[[list[tuple[Held, Outcome]]], None]


class Lane:
    """The calls waiting for one origin and its back-off state (event loop only)."""

    def __init__(self, origin: str, limit: int) -> None:
        self.origin = origin
        self.limit = limit
        self.waiting: deque[list[Held]] = deque()
        self.in_flight = 0
        self.failures = 0  # connection failures in a row
        self.blocked_until: datetime | None = None

    def blocked(self, now: datetime) -> bool:
        return self.blocked_until is not None and now < self.blocked_until

    def observe(self, outcomes: Sequence[Outcome], now: datetime, ceiling: float) -> None:
        """Back off after a connection failure (1 s, 2 s, 4 s ... up to `ceiling`); any
        answer from the origin ends the back-off."""
        if any(o.unreachable for o in outcomes):
            self.failures += 1
            delay = min(ceiling, 2.0 ** (self.failures - 1))
            self.blocked_until = now + timedelta(seconds=delay)
        elif outcomes:
            self.failures, self.blocked_until = 0, None

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.in_flight and self.blocked_until is None


class Lanes:
    def __init__(
        self,
        targets: Mapping[str, Target],
        clock: Clock,
        record: Record,
        *,
        max_in_flight: int,
        backoff_ceiling: float,
        grace: float,
    ) -> None:
        self.targets = targets
        self.clock = clock
        self.record = record
        self.max_in_flight = max_in_flight
        self.backoff_ceiling = backoff_ceiling
        self.grace = grace  # seconds a call may overrun its timeout before it is abandoned
        self.on_free: Callable[[], None] = lambda: None  # capacity freed: claim more
        # Shared with the claiming threads, under the lock:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._held: dict[str, Held] = {}
        self._held_by_origin: Counter[str] = Counter()
        # The event loop's own:
        self._lanes: dict[str, Lane] = {}
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delivery-io")
        self._thread.daemon = True
        self._thread.start()

    # -- any thread ----------------------------------------------------------------------

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def held_for(self, origin: str) -> int:
        with self._lock:
            return self._held_by_origin[origin]

    def held(self) -> list[Held]:
        with self._lock:
            return list(self._held.values())

    def submit(self, items: Sequence[Held]) -> None:
        with self._lock:
            for item in items:
                self._held[item.delivery.run_id] = item
                self._held_by_origin[item.origin] += 1
        self._loop.call_soon_threadsafe(self._accept, list(items))

    def forget(self, run_ids: Iterable[str]) -> None:
        """These leases were lost to another dispatcher: drop the runs still waiting (one
        already in flight finishes, and its outcome is refused as no longer ours)."""
        self._loop.call_soon_threadsafe(self._drop, set(run_ids))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every held run's outcome went to the recorder."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._held, timeout)

    def close(self, timeout: float) -> None:
        """Let calls in flight finish for up to `timeout` s, then cancel the rest (their
        leases expire and they are delivered again) and close the targets."""
        self.wait_idle(timeout)
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._shut(), self._loop)
        try:
            future.result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()

    # -- the event loop ------------------------------------------------------------------

    def _accept(self, items: list[Held]) -> None:
        batches: dict[tuple[str, str], list[Held]] = defaultdict(list)
        for item in items:
            batches[(item.origin, item.delivery.target["type"])].append(item)
        for (origin, kind), batch in batches.items():
            lane = self._lanes.get(origin)
            if lane is None:
                lane = self._lanes[origin] = Lane(origin, batch[-1].limit)
            lane.limit = batch[-1].limit  # the latest setting wins
            size = max(1, self.targets[kind].batch_size)
            lane.waiting.extend(batch[i : i + size] for i in range(0, len(batch), size))
        self._pump()

    def _pump(self) -> None:
        """Start waiting calls, one per lane per round, while limits allow."""
        started = True
        while started and self._in_flight < self.max_in_flight:
            started = False
            for lane in list(self._lanes.values()):
                if self._in_flight >= self.max_in_flight:
                    break
                if lane.waiting and lane.in_flight < lane.limit:
                    self._start(lane, lane.waiting.popleft())
                    started = True
        for origin in [o for o, lane in self._lanes.items() if lane.idle]:
            del self._lanes[origin]

    def _start(self, lane: Lane, batch: list[Held]) -> None:
        lane.in_flight += 1
        self._in_flight += 1
        task = self._loop.create_task(self._call(lane, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, lane: Lane, batch: list[Held]) -> None:
        try:
            outcomes = await self._outcomes(lane, batch)
        finally:
            lane.in_flight -= 1
            self._in_flight -= 1
        self._finish(batch, outcomes)
        self._pump()

    async def _outcomes(self, lane: Lane, batch: list[Held]) -> list[Outcome]:
        now = self.clock.now()
        if lane.blocked(now):
            assert lane.blocked_until is not None
            until = lane.blocked_until.isoformat(timespec="seconds")
            error = f"{lane.origin} could not be reached; not tried again before {until}"
            return [Outcome(item.delivery.run_id, ok=False, error=error) for item in batch]
        target = self.targets[batch[0].delivery.target["type"]]
        deliveries = [item.delivery for item in batch]
        limit = max(target.timeout(d) for d in deliveries) + self.grace
        try:
            async with asyncio.timeout(limit):  # no task of its own, unlike wait_for
                answered = await target.deliver(deliveries)
        except Exception as exc:  # a target must not raise; if one does, retry the runs
            log.exception("delivery call failed", extra={"action": "deliver"})
            error = f"delivery call failed ({type(exc).__name__})"
            answered = [Outcome(d.run_id, ok=False, error=error) for d in deliveries]
        outcomes = _one_each(deliveries, answered)
        lane.observe(outcomes, self.clock.now(), self.backoff_ceiling)
        return outcomes

    def _finish(self, batch: list[Held], outcomes: list[Outcome]) -> None:
        by_run = {o.run_id: o for o in outcomes}
        self.record([(item, by_run[item.delivery.run_id]) for item in batch])
        self._release(batch)

    def _release(self, items: Iterable[Held]) -> None:
        with self._idle:
            for item in items:
                if self._held.pop(item.delivery.run_id, None) is not None:
                    self._held_by_origin[item.origin] -= 1
                    if not self._held_by_origin[item.origin]:
                        del self._held_by_origin[item.origin]
            self._idle.notify_all()
        self.on_free()

    def _drop(self, run_ids: set[str]) -> None:
        dropped: list[Held] = []
        for lane in self._lanes.values():
            kept: deque[list[Held]] = deque()
            for batch in lane.waiting:
                dropped += [item for item in batch if item.delivery.run_id in run_ids]
                rest = [item for item in batch if item.delivery.run_id not in run_ids]
                if rest:
                    kept.append(rest)
            lane.waiting = kept
        self._release(dropped)

    async def _shut(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._loop.shutdown_default_executor()
        for target in self.targets.values():
            try:
                await target.aclose()
            except Exception:
                log.exception("closing a target failed", extra={"action": "stop"})


def _one_each(deliveries: Sequence[Delivery], outcomes: Sequence[Any]) -> list[Outcome]:
    """Exactly one Outcome per delivery, whatever the target answered."""
    by_run = {o.run_id: o for o in outcomes if isinstance(o, Outcome)}
    missing = "the target gave no outcome for this run"
    return [by_run.get(d.run_id) or Outcome(d.run_id, ok=False, error=missing) for d in deliveries]
