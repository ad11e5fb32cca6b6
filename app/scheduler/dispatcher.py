"""The dispatcher: the firing and delivery loops of the scheduler process, put together.

Its steps say whether they found work, so a test can run one step with a moved clock:

- fire_due (app.scheduler.firing): due jobs become runs; never waits on a target. On
  PostgreSQL several firing workers claim side by side (FOR UPDATE SKIP LOCKED keeps their
  batches apart), so one's Python work overlaps another's wait on the server.
- deliver_due (app.scheduler.delivery): runs due for an attempt are leased and handed to
  the lanes (app.scheduler.lanes), whose outcomes the recorder writes as they come
  (app.scheduler.outcomes). Stepping by hand, it waits for those outcomes; in the
  scheduler process it returns at once and the lanes deliver beside the next steps.
- renew_leases: keeps the leases of runs still held.

Each loop runs in passes: work until nothing is due, then sleep until something is (or
until woken), for at most one window; APScheduler starts a pass every window.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from sqlalchemy import Engine

from app.clock import Clock
from app.database import is_postgresql
from app.metrics import CounterWriter
from app.scheduler.bulk import bulk_for
from app.scheduler.calls import CallLoop, Limits, ThreadLoop
from app.scheduler.delivery import Delivering
from app.scheduler.firing import Firing
from app.scheduler.lanes import Lanes
from app.scheduler.outcomes import OutcomeRecorder
from app.scheduler.settings import DispatcherSettings
from app.scheduler.wake import Stopping, Waiter
from app.targets.base import Target

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        targets: Mapping[str, Any],
        settings: DispatcherSettings,
        rng: random.Random | None = None,
        *,
        background: bool = False,
        call_loop: Callable[[Mapping[str, Target], Limits], CallLoop] | None = None,
    ) -> None:
        """call_loop: where the delivery calls run (default: a thread of this process)."""
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.background = background
        self.stopping = Stopping()
        self.delivery_waiter = Waiter(self.stopping)
        bulk = bulk_for(engine)
        counters = CounterWriter(engine)
        local = {kind: t for kind, t in targets.items() if t.in_transaction}
        remote = {kind: t for kind, t in targets.items() if not t.in_transaction}
        limits = Limits(
            max_in_flight=settings.max_in_flight,
            backoff_ceiling=settings.origin_backoff,
            grace=settings.lease_margin / 2,
        )
        # The call loop first, while this process has no threads of its own: a delivery
        # process is forked from it.
        calls = (call_loop or partial(ThreadLoop, clock=clock))(remote, limits)
        self.recorder = OutcomeRecorder(
            engine, clock, bulk, counters, rng or random.Random(), linger=settings.outcome_linger
        )
        self.lanes = Lanes(calls, self.recorder.put)
        # SQLite has one writer at a time: a second worker would only queue on it.
        workers = settings.fire_workers if is_postgresql(engine) else 1
        self.firings = [
            Firing(
                engine, clock, local, remote, settings, bulk,
                counters if worker == 0 else CounterWriter(engine),  # a counter shard each
                self.delivery_waiter.wake,
            )
            for worker in range(workers)
        ]  # fmt: skip
        self.firing = self.firings[0]
        # For firing passes given no waiter of their own: one each.
        self.fire_waiters = [Waiter(self.stopping) for _ in self.firings]
        self.delivering = Delivering(
            engine, clock, local, remote, settings, bulk, counters, self.lanes
        )
        self._lanes_full = False  # the delivery loop waits for the lanes to have room
        self.lanes.on_free = self._room_freed

    def _room_freed(self) -> None:
        """Runs were released: wake the delivery loop if it waits for that room (the lanes
        held all they may, or a full origin is down to half its share)."""
        if self._lanes_full and self.lanes.held_count() <= self.settings.max_held // 2:
            self._lanes_full = False
            self.delivery_waiter.wake()
        elif self.delivering.room_freed():
            self.delivery_waiter.wake()

    # -- steps ---------------------------------------------------------------------------

    def fire_due(self) -> int:
        return self.firing.fire_due()

    def deliver_due(self) -> int:
        claimed = self.delivering.deliver_due()
        if claimed and not self.background:
            self.settle()
        return claimed

    def step(self) -> int:
        return self.fire_due() + self.deliver_due()

    def renew_leases(self) -> int:
        return self.delivering.renew_leases()

    def settle(self, timeout: float | None = 120.0) -> None:
        """Wait until the runs handed to the lanes are delivered and recorded; a run still
        held after `timeout` s is an error (a step by hand must not pass by waiting it out)."""
        if not self.lanes.wait_idle(timeout):
            raise TimeoutError(f"{self.lanes.held_count()} run(s) still held after {timeout} s")
        self.recorder.flush()

    def seconds_until_due(self) -> float | None:
        """How long until the next job is due to fire; None when none is."""
        return self.firing.seconds_until_due()

    def seconds_until_delivery(self) -> float | None:
        """How long until the next run is due for an attempt; None when none is."""
        return self.delivering.seconds_until_due()

    # -- the passes ----------------------------------------------------------------------

    def run_pass(self, window: float, waiter: Waiter | None = None, worker: int = 0) -> bool:
        """A firing worker's pass (False: it failed). On PostgreSQL the first worker's
        waiter also wakes on NOTIFY."""
        firing = self.firings[worker]
        waiter = waiter or self.fire_waiters[worker]
        # The steps are looked up at each call: a test may swap one mid-pass.
        return self._pass(
            lambda: firing.fire_due(), lambda: firing.seconds_until_due(), window, waiter
        )

    def run_delivery_pass(self, window: float) -> None:
        """The delivery loop's pass; woken when runs are fired or lanes have room again."""

        def due() -> float | None:
            if self.lanes.held_count() >= self.settings.max_held:
                self._lanes_full = True
                return None  # full: wait to be woken by a lane
            return self.seconds_until_delivery()

        self._pass(self.delivering.deliver_due, due, window, self.delivery_waiter)

    def _pass(
        self,
        step: Callable[[], int],
        soonest: Callable[[], float | None],
        window: float,
        waiter: Waiter,
    ) -> bool:
        deadline = time.monotonic() + window
        while not self.stopping.is_set():
            try:
                # A look first (a read): a step is a write transaction, which an idle
                # scheduler would otherwise open every pass, and which SQLite's writers queue on.
                wake = soonest()
                if wake == 0:
                    while step() and not self.stopping.is_set():
                        pass  # batch after batch while any is due
                    wake = soonest()
            except Exception:  # a database outage must not kill the process: retry next pass
                log.exception("dispatch pass failed", extra={"action": "dispatch"})
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            waiter.wait(remaining if wake is None else min(wake, remaining))
        return True

    def stop(self) -> None:
        self.stopping.set()  # wakes the waiters

    def close(self, timeout: float = 30.0) -> None:
        """Finish the calls in flight (up to `timeout` s), record them, close the targets."""
        self.lanes.close(timeout)
        self.recorder.flush()
        self.recorder.close()
