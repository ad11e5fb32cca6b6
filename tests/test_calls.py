"""The call loop's lanes: limits per origin and in all, and turns between origins."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from app.clock import ManualClock
from app.scheduler.calls import Calls, Limits, Work
from app.targets.base import Delivery, Outcome


class GatedTarget:
    """Each call waits until the test opens its gate."""

    in_transaction = False
    batch_size = 1
    bounds_its_calls = False  # the loop's own timer ends a call that overruns

    def __init__(self) -> None:
        self.started: list[str] = []  # the origin of each call, in the order they started
        self.in_call: list[str] = []  # run ids in a call, oldest first
        self.gates: dict[str, asyncio.Event] = {}

    def origin(self, target: Mapping[str, Any]) -> str:
        return str(target["origin"])

    def timeout(self, delivery: Delivery) -> float:
        return 10.0

    async def deliver(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        (d,) = deliveries
        self.started.append(d.target["origin"])
        self.in_call.append(d.run_id)
        await self.gates.setdefault(d.run_id, asyncio.Event()).wait()
        self.in_call.remove(d.run_id)
        return [Outcome(d.run_id, ok=True)]

    async def aclose(self) -> None:
        pass

    def open_oldest(self) -> None:
        self.gates.setdefault(self.in_call[0], asyncio.Event()).set()


def work(origin: str, n: int, limit: int) -> Work:
    target = {"type": "gated", "origin": origin}
    delivery = Delivery(f"{origin}{n}", "job", ManualClock().now(), "{}", target, 1)
    return Work(delivery, 10.0, origin, limit)


async def turns() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def run_calls(works: list[Work], max_in_flight: int) -> tuple[list[str], list[int], int]:
    """Open the oldest call's gate until every work is reported; returns the origins in the
    order their calls started, the calls in flight after each turn, and the outcomes."""

    async def scenario() -> tuple[list[str], list[int], int]:
        target = GatedTarget()
        reported: list[Outcome] = []
        calls = Calls(
            {"gated": target}, ManualClock(), reported.extend, Limits(max_in_flight, 60, 1)
        )
        calls.accept(works)
        await turns()
        in_flight = [len(target.in_call)]
        while len(reported) < len(works):
            target.open_oldest()
            await turns()
            in_flight.append(len(target.in_call))
        await calls.shut()
        return target.started, in_flight, len(reported)

    return asyncio.run(scenario())


def test_origins_take_turns_when_every_slot_is_taken() -> None:
    works = [work(origin, n, limit=2) for origin in "AB" for n in range(4)]
    started, in_flight, reported = run_calls(works, max_in_flight=2)
    assert started == list("ABABABAB")  # not all of A first: it came first
    assert max(in_flight) == 2 and reported == 8


def test_one_origin_keeps_to_its_own_limit() -> None:
    _, in_flight, reported = run_calls([work("A", n, limit=3) for n in range(10)], 100)
    assert in_flight[:7] == [3] * 7 and max(in_flight) == 3 and reported == 10
