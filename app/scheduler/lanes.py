"""The runs the delivery loop holds, from their claim until their outcome is recorded.

Claimed runs are registered here and handed to the call loop (app.scheduler.calls), in a
thread of this process or a child process of its own; each call's outcomes come back
here and go to the recorder with the runs they settle. A run is held, and its lease
renewed, until the recorder has written its outcome: an answered run whose write waits
(behind a slow commit, or while the database is away) is not taken over by a peer that
would deliver it again. Then its room is freed. The claim threads ask how much is held
(in all, and per origin) to know how much more to claim.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.retry import RetryPolicy
from app.scheduler.calls import CallLoop, Work
from app.scheduler.deadletters import DeadLetterTo
from app.targets.base import Delivery, Outcome


@dataclass(slots=True)
class Held:
    """A leased run the delivery loop holds until its outcome is handed to the recorder."""

    delivery: Delivery
    fired_at: datetime  # when its run fired: its age counts from here (retry maxAge)
    policy: RetryPolicy
    timeout: float  # seconds its call may take, as its target says
    lease: float  # seconds one lease of this run lasts
    lease_until: datetime
    origin: str
    limit: int  # calls in flight to its origin, at most
    dead_letter: DeadLetterTo | None = None  # where its dead letter goes, if it dies
    answered: bool = False  # its outcome is with the recorder, not yet written

    def work(self) -> Work:
        return Work(self.delivery, self.timeout, self.origin, self.limit)


# Writes the outcomes of these runs, then calls back (from the recorder's thread).
Record = Callable[[list[tuple[Held, Outcome]], Callable[[], None]], None]
MAX_RATES = 10_000  # origins whose answer rate is kept
RATE_WINDOW = 0.5  # seconds over which an origin's answers per second are counted


class AnswerRate:
    """Answers per second from one origin: counted over the last whole window, or over the
    current one once it runs long (an origin that stopped answering falls towards 0)."""

    def __init__(self, now: float) -> None:
        self.since, self.count, self.last = now, 0, 0.0

    def add(self, count: int, now: float) -> None:
        self.count += count
        if now - self.since >= RATE_WINDOW:
            self.last = self.count / (now - self.since)
            self.since, self.count = now, 0

    def per_second(self, now: float) -> float:
        elapsed = now - self.since
        return self.count / elapsed if elapsed >= 2 * RATE_WINDOW else self.last


class Lanes:
    def __init__(self, calls: CallLoop, record: Record) -> None:
        self.calls = calls
        self.record = record
        self.on_free: Callable[[], None] = lambda: None  # room freed: claim more
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._held: dict[str, Held] = {}
        self._held_by_origin: Counter[str] = Counter()
        self._rates: dict[str, AnswerRate] = {}
        calls.start(self._reported, self._dropped, self._lost)

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def held_for(self, origin: str) -> int:
        """This origin's runs waiting for a call or in one (not those answered, whose
        outcomes wait to be written: they take no call's room)."""
        with self._lock:
            return self._held_by_origin[origin]

    def answer_rate(self, origin: str) -> float:
        """How many of this origin's calls have been answered per second of late."""
        with self._lock:
            rate = self._rates.get(origin)
            return rate.per_second(time.monotonic()) if rate else 0.0

    def held(self) -> list[Held]:
        with self._lock:
            return list(self._held.values())

    def submit(self, items: Sequence[Held]) -> None:
        with self._lock:
            for item in items:
                self._held[item.delivery.run_id] = item
                self._held_by_origin[item.origin] += 1
        self.calls.send([item.work() for item in items])

    def forget(self, run_ids: Iterable[str]) -> None:
        """These leases were lost to another dispatcher: drop the runs still waiting (one
        already in flight finishes, and its outcome is refused as no longer ours)."""
        self.calls.drop(set(run_ids))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every held run's outcome went to the recorder."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._held, timeout)

    def close(self, timeout: float) -> None:
        """Let calls in flight finish for up to `timeout` s, then cancel the rest (their
        leases expire and they are delivered again) and close the targets."""
        self.wait_idle(timeout)
        self.calls.close()

    def _reported(self, outcomes: list[Outcome]) -> None:
        with self._lock:
            pairs = [(self._held[o.run_id], o) for o in outcomes if o.run_id in self._held]
            for held, _ in pairs:
                held.answered = True
                self._leave_origin(held.origin)
            self._answered(Counter(held.origin for held, _ in pairs), time.monotonic())
        self.on_free()  # their origins have room for more calls
        run_ids = [held.delivery.run_id for held, _ in pairs]
        self.record(pairs, lambda: self._release(run_ids))

    def _answered(self, answers: Counter[str], now: float) -> None:
        for origin, count in answers.items():
            rate = self._rates.get(origin)
            if rate is None:
                if len(self._rates) >= MAX_RATES:  # origins come and go: keep the held ones
                    held = self._held_by_origin
                    self._rates = {o: r for o, r in self._rates.items() if o in held}
                rate = self._rates[origin] = AnswerRate(now)
            rate.add(count, now)

    def _dropped(self, run_ids: list[str]) -> None:
        self._release(run_ids)

    def _lost(self) -> None:
        """The calls in hand are gone: their leases expire and they are delivered again
        (the answered ones are released once their outcomes are written)."""
        with self._lock:
            run_ids = [run_id for run_id, item in self._held.items() if not item.answered]
        self._release(run_ids)

    def _release(self, run_ids: Iterable[str]) -> None:
        with self._idle:
            for run_id in run_ids:
                item = self._held.pop(run_id, None)
                if item is not None and not item.answered:
                    self._leave_origin(item.origin)
            self._idle.notify_all()
        self.on_free()

    def _leave_origin(self, origin: str) -> None:
        self._held_by_origin[origin] -= 1
        if not self._held_by_origin[origin]:
            del self._held_by_origin[origin]
