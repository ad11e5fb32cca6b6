"""Delivery calls: the lanes of one event loop, and where that loop runs.

Work handed to the loop waits in its origin's lane; a lane starts a call while it has
fewer than its limit in flight and the loop as a whole fewer than `max_in_flight`, lanes
taking turns, so one slow origin fills only its own lane. An origin that cannot be
reached is backed off as a whole: until its back-off ends, its deliveries fail at once,
without a connection attempt. Each call's outcomes are reported the moment it ends.

The loop runs in a thread of the scheduler process (ThreadLoop: tests and stepping, and
DELIVERY_PROCESS=false) or in a child process of its own (app.scheduler.callprocess), so
that HTTP work never waits for the claim and record threads' turn at the interpreter lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.clock import Clock
from app.targets.base import Delivery, Outcome, Target, reduce_by_fields

log = logging.getLogger(__name__)

Report = Callable[[list[Outcome]], None]  # a call's outcomes, one per delivery
Dropped = Callable[[list[str]], None]  # run ids dropped before their call started
Lost = Callable[[], None]  # the loop was lost with every call in it (its process died)


@dataclass(frozen=True, slots=True)
class Work:
    """One leased run for the loop to deliver."""

    delivery: Delivery
    timeout: float  # seconds its call may take, as its target says
    origin: str
    limit: int  # calls in flight to its origin, at most

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight: int  # calls in flight, all origins together
    backoff_ceiling: float  # the longest an unreachable origin is left alone, seconds
    grace: float  # seconds a call may overrun its timeout before it is abandoned


class CallLoop(Protocol):
    """Where the calls run; every method but start may be called from any thread."""

    def start(self, report: Report, dropped: Dropped, lost: Lost) -> None: ...

    def send(self, works: list[Work]) -> None: ...

    def drop(self, run_ids: set[str]) -> None: ...

    def close(self) -> None:
        """Cancel the calls still in flight and close the targets."""
        ...


class Lane:
    """The calls waiting for one origin and its back-off state."""

    def __init__(self, origin: str, limit: int) -> None:
        self.origin = origin
        self.limit = limit
        self.waiting: deque[list[Work]] = deque()
        self.in_flight = 0  # its workers (each makes one call at a time)
        self.working = 0  # of them, those in a call
        self.failures = 0  # connection failures in a row
        self.blocked_until: datetime | None = None

    def blocked(self, clock: Clock) -> bool:
        # The clock is read only while a back-off is on: most calls never need it.
        return self.blocked_until is not None and clock.now() < self.blocked_until

    def observe(self, outcomes: Sequence[Outcome], clock: Clock, ceiling: float) -> None:
        """Back off after a connection failure (1 s, 2 s, 4 s ... up to `ceiling`); any
        answer from the origin ends the back-off."""
        for outcome in outcomes:
            if outcome.unreachable:
                self.failures += 1
                delay = min(ceiling, 2.0 ** (self.failures - 1))
                self.blocked_until = clock.now() + timedelta(seconds=delay)
                return
        if outcomes:
            self.failures, self.blocked_until = 0, None

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.in_flight and self.blocked_until is None


class Calls:
    """The lanes and their calls; every method runs on the event loop's own thread."""

    def __init__(
        self, targets: Mapping[str, Target], clock: Clock, report: Report, limits: Limits
    ) -> None:
        self.targets = targets
        self.clock = clock
        self.report = report
        self.limits = limits
        self._lanes: dict[str, Lane] = {}
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def accept(self, works: list[Work]) -> None:
        batches: dict[tuple[str, str], list[Work]] = defaultdict(list)
        for work in works:
            batches[(work.origin, work.delivery.target["type"])].append(work)
        for (origin, kind), batch in batches.items():
            lane = self._lanes.get(origin)
            if lane is None:
                lane = self._lanes[origin] = Lane(origin, batch[-1].limit)
            lane.limit = batch[-1].limit  # the latest setting wins
            size = max(1, self.targets[kind].batch_size)
            lane.waiting.extend(batch[i : i + size] for i in range(0, len(batch), size))
        self._pump()

    def drop(self, run_ids: set[str]) -> list[str]:
        """Drop these runs where they still wait; returns those dropped (a call already in
        flight finishes and reports)."""
        dropped: list[str] = []
        for lane in self._lanes.values():
            kept: deque[list[Work]] = deque()
            for batch in lane.waiting:
                dropped += [w.delivery.run_id for w in batch if w.delivery.run_id in run_ids]
                rest = [w for w in batch if w.delivery.run_id not in run_ids]
                if rest:
                    kept.append(rest)
            lane.waiting = kept
        return dropped

    async def shut(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for target in self.targets.values():
            try:
                await target.aclose()
            except Exception:
                log.exception("closing a target failed", extra={"action": "stop"})
        await asyncio.get_running_loop().shutdown_default_executor()

    def _pump(self) -> None:
        """Start workers, one per lane per round, while limits allow."""
        most = self.limits.max_in_flight
        started = True
        while started and self._in_flight < most:
            started = False
            for lane in list(self._lanes.values()):
                if self._in_flight >= most:
                    break
                if len(lane.waiting) > lane.in_flight - lane.working and (
                    lane.in_flight < lane.limit
                ):
                    self._start(lane)
                    started = True
        for origin in [o for o, lane in self._lanes.items() if lane.idle]:
            del self._lanes[origin]

    def _start(self, lane: Lane) -> None:
        self._lanes[lane.origin] = self._lanes.pop(lane.origin)  # to the back: lanes take turns
        lane.in_flight += 1
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._work(lane))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, lane: Lane) -> None:
        """One slot of a lane: calls, one after another, while its lane has work and no
        other lane waits for a slot (then the slot goes round, as _pump gives it)."""
        try:
            while lane.waiting and lane.in_flight <= lane.limit:
                batch = lane.waiting.popleft()
                lane.working += 1
                try:
                    outcomes = await self._outcomes(lane, batch)
                finally:
                    lane.working -= 1
                self.report(outcomes)
                if self._in_flight >= self.limits.max_in_flight and self._others_wait(lane):
                    break
        finally:
            lane.in_flight -= 1
            self._in_flight -= 1
        self._pump()

    def _others_wait(self, lane: Lane) -> bool:
        return any(
            other.waiting and other.in_flight < other.limit
            for other in self._lanes.values()
            if other is not lane
        )

    async def _outcomes(self, lane: Lane, batch: list[Work]) -> list[Outcome]:
        if lane.blocked(self.clock):
            assert lane.blocked_until is not None
            until = lane.blocked_until.isoformat(timespec="seconds")
            error = f"{lane.origin} could not be reached; not tried again before {until}"
            return [Outcome(w.delivery.run_id, ok=False, error=error) for w in batch]
        target = self.targets[batch[0].delivery.target["type"]]
        deliveries = [w.delivery for w in batch]
        try:
            async with self._guard(target, batch):
                answered = await target.deliver(deliveries)
        except Exception as exc:  # a target must not raise; if one does, retry the runs
            log.exception("delivery call failed", extra={"action": "deliver"})
            error = f"delivery call failed ({type(exc).__name__})"
            answered = [Outcome(d.run_id, ok=False, error=error) for d in deliveries]
        outcomes = _one_each(deliveries, answered)
        lane.observe(outcomes, self.clock, self.limits.backoff_ceiling)
        return outcomes

    def _guard(self, target: Target, batch: list[Work]) -> AbstractAsyncContextManager[Any]:
        """The loop's own timer on a call, for a target whose client does not end its calls
        (a timer per call costs ~7 us of a ~250 us webhook call)."""
        if target.bounds_its_calls:
            return nullcontext()
        limit = max(w.timeout for w in batch) + self.limits.grace
        return asyncio.timeout(limit)  # no task of its own, unlike wait_for


def _one_each(deliveries: Sequence[Delivery], outcomes: Sequence[Any]) -> list[Outcome]:
    """Exactly one Outcome per delivery, whatever the target answered."""
    by_run = {o.run_id: o for o in outcomes if isinstance(o, Outcome)}
    missing = "the target gave no outcome for this run"
    return [by_run.get(d.run_id) or Outcome(d.run_id, ok=False, error=missing) for d in deliveries]


class ThreadLoop:
    """The calls on an event loop in a thread of this process."""

    def __init__(self, targets: Mapping[str, Target], limits: Limits, clock: Clock) -> None:
        self.targets = targets
        self.clock = clock
        self.limits = limits
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delivery-io")
        self._thread.daemon = True
        self._calls: Calls | None = None
        self._dropped: Dropped = lambda _: None

    def start(self, report: Report, dropped: Dropped, lost: Lost) -> None:
        self._calls = Calls(self.targets, self.clock, report, self.limits)
        self._dropped = dropped
        self._thread.start()

    def send(self, works: list[Work]) -> None:
        assert self._calls is not None
        self._loop.call_soon_threadsafe(self._calls.accept, works)

    def drop(self, run_ids: set[str]) -> None:
        calls = self._calls
        assert calls is not None
        self._loop.call_soon_threadsafe(lambda: self._dropped(calls.drop(run_ids)))

    def close(self) -> None:
        assert self._calls is not None
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._calls.shut(), self._loop)
        try:
            future.result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()
