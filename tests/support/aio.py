"""One asyncio event loop in a thread, as the delivery loop runs in production, so that a
test drives one async target on one loop across many calls from ordinary sync code.

def test_x(loop_thread):
    outcomes = loop_thread.run(target.deliver([d]))
    ...
    loop_thread.run(target.aclose())
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the loop and wait for its result (or raise its exception). On a timeout
        the coroutine is cancelled and TimeoutError raised."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Cancel what is still running, then stop and close the loop (and its executor)."""
        if self.loop.is_closed():
            return
        self.run(_cancel_others())
        self.run(self.loop.shutdown_asyncgens())
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _cancel_others() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    with LoopThread() as loop:
        yield loop
