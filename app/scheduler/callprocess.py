"""The call loop in a child process of the scheduler process.

HTTP work is most of a delivery's CPU time. In a thread of the scheduler process it would
wait for the interpreter lock whenever the claim or record threads hold it, and the loop
could not keep its hundreds of calls moving (measured: a thread burning CPU beside the loop
cut its calls to a tenth). In a child of its own it has a core to itself.

Parent and child speak over a pipe: the parent sends ("work", [Work]), ("drop", run ids)
and ("close", None); the child answers ("done", [Outcome]), ("dropped", run ids) and, once
its calls are cancelled and its targets closed, ("closed", None). The child exits when the
pipe closes, so it never outlives the scheduler process, even after kill -9. Should the
child die, the runs it held are released (their leases expire and they are delivered
again) and a new child starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from app.clock import SystemClock
from app.scheduler.calls import Calls, Dropped, Limits, Lost, Report, Work
from app.targets.base import Outcome, Target

log = logging.getLogger(__name__)

TargetsFactory = Callable[[], Mapping[str, Target]]  # picklable: the child builds its own
CLOSE_WAIT = 30.0  # seconds the child may take to cancel its calls and close its targets
RESTART_AFTER = 1.0  # seconds between a child's death and its replacement
GC_THRESHOLDS = (50_000, 20, 100)  # allocations per young collection; older ones: per younger


class ProcessLoop:
    def __init__(
        self, make_targets: TargetsFactory, limits: Limits, setup: Callable[[], None]
    ) -> None:
        """setup: run first in the child (logging as the parent has it); picklable."""
        self.make_targets = make_targets
        self.limits = limits
        self.setup = setup
        self._send_lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = threading.Event()
        self._process: Any = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self._report: Report = lambda _: None
        self._dropped: Dropped = lambda _: None
        self._lost: Lost = lambda: None
        self._spawn()  # now: made before the scheduler process starts its threads, it can fork

    def start(self, report: Report, dropped: Dropped, lost: Lost) -> None:
        self._report, self._dropped, self._lost = report, dropped, lost
        self._reader = threading.Thread(target=self._read, name="delivery-process", daemon=True)
        self._reader.start()

    def send(self, works: list[Work]) -> None:
        if not self._send(("work", works)):  # never reached the child: give them back
            self._dropped([work.delivery.run_id for work in works])

    def drop(self, run_ids: set[str]) -> None:
        self._send(("drop", run_ids))  # a child that is gone has dropped them all

    def close(self) -> None:
        self._closing.set()
        self._send(("close", None))
        if not self._closed.wait(CLOSE_WAIT):
            log.warning("the delivery process did not close in time", extra={"action": "stop"})
        process = self._process
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)

    @property
    def process(self) -> Any:
        """The child now serving (a multiprocessing process)."""
        return self._process

    def _spawn(self) -> None:
        # A forked child starts at once, with what this process has imported; a spawned one
        # imports it all again (2 s of CPU here, which a restart storm of dispatchers felt).
        # Fork only while this process has a single thread: a lock another thread held would
        # stay held in the child. The database connections it inherits it never touches,
        # and it leaves by os._exit, which closes none of them.
        method = "fork" if threading.active_count() == 1 else "spawn"
        context: Any = multiprocessing.get_context(method)  # typeshed: a context per method
        ours, theirs = context.Pipe()
        process = context.Process(
            target=serve,
            args=(theirs, self.make_targets, self.limits, self.setup, ours),
            name="scheduler-delivery",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child's end: ours reads EOF once the child is gone
        log.info(
            "delivery process started",
            extra={"action": "start", "pid": process.pid, "start_method": method},
        )
        with self._send_lock:
            self._process, self._conn = process, ours

    def _send(self, message: tuple[str, Any]) -> bool:
        with self._send_lock:
            assert self._conn is not None
            try:
                self._conn.send(message)
                return True
            except OSError:  # the child is gone: the reader releases its runs and restarts it
                return False

    def _read(self) -> None:
        while True:
            conn = self._conn
            assert conn is not None
            try:
                kind, body = conn.recv()
            except (EOFError, OSError):
                kind, body = "lost", None
            if kind == "done":
                self._report(body)
            elif kind == "dropped":
                self._dropped(body)
            elif kind == "closed" or self._closing.is_set():
                self._closed.set()
                return
            else:  # the child died: what it held is lost; start another
                code = self._process.exitcode if self._process is not None else None
                log.error(
                    "the delivery process died; its runs are delivered again when their leases end",
                    extra={"action": "deliver", "exit_code": code},
                )
                self._lost()
                time.sleep(RESTART_AFTER)
                if self._closing.is_set():
                    self._closed.set()
                    return
                conn.close()
                self._process.join(timeout=1)  # reap it
                self._spawn()


def serve(
    conn: Connection,
    make_targets: TargetsFactory,
    limits: Limits,
    setup: Callable[[], None],
    parents_end: Connection,
) -> None:
    """The child's main: deliver what the pipe brings until told to close, or until the
    scheduler process is gone."""
    parents_end.close()  # a forked child holds it too: with it open, no EOF would ever come
    # Ctrl-C and SIGTERM are the scheduler process's to handle: it closes us when done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup()
    quiet_collector()
    asyncio.run(_serve(conn, make_targets(), limits))


def quiet_collector() -> None:
    """Collect garbage less often (the scheduler process and its delivery process). Each
    claim, record and call allocates objects that live for tens of milliseconds
    (a call: its round trip): with the default thresholds (700 allocations a
    young collection) they are collected again and again while alive, and promoted, so
    older collections run too. Measured on a fast receiver: 40-70 us of each delivery's
    140-250 us went to the collector; with these thresholds, under 1 us. What the process
    inherited (modules, settings) is frozen out of every collection."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _serve(conn: Connection, targets: Mapping[str, Target], limits: Limits) -> None:
    loop = asyncio.get_running_loop()
    outbox: list[Outcome] = []
    finished = loop.create_future()

    def flush() -> None:
        if outbox:
            _answer(conn, ("done", list(outbox)))
            outbox.clear()

    def report(outcomes: list[Outcome]) -> None:
        if not outbox:  # the outcomes of one turn of the loop go back together
            loop.call_soon(flush)
        outbox.extend(outcomes)

    calls = Calls(targets, SystemClock(), report, limits)

    def readable() -> None:
        try:
            while conn.poll():
                kind, body = conn.recv()
                if kind == "work":
                    calls.accept(body)
                elif kind == "drop":
                    _answer(conn, ("dropped", calls.drop(body)))
                elif kind == "close":
                    break
            else:
                return
        except (EOFError, OSError):  # the scheduler process is gone
            pass
        loop.remove_reader(conn.fileno())
        if not finished.done():
            finished.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    await finished
    await calls.shut()
    flush()
    _answer(conn, ("closed", None))


def _answer(conn: Connection, message: tuple[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the scheduler process is gone; so are we, soon
        conn.send(message)
