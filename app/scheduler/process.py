"""The scheduler process: APScheduler drives the dispatcher's periodic work.

Run it with `flask --app wsgi scheduler run`. Never start it inside web workers: one
scheduler per worker would mean as many timers (the unique run key would still keep
fires exact, but the work would be wasted).

APScheduler runs, each on its own schedule and thread: the firing pass, the delivery
pass, lease renewal and retention. The delivery calls themselves run on the lanes' event
loop, so neither pass ever waits for a target.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, g

from app import audit, clock_of, jobs, logs
from app.config import allow_networks, connections_of
from app.database import db, is_postgresql, write_connection
from app.metrics import PASSES, CounterWriter
from app.scheduler.bulk import bulk_for
from app.scheduler.callprocess import ProcessLoop, quiet_collector
from app.scheduler.calls import CallLoop, Limits
from app.scheduler.dispatcher import Dispatcher
from app.scheduler.retention import prune
from app.scheduler.settings import DispatcherSettings
from app.scheduler.wake import Stopping, Waiter
from app.targets.amqp import AmqpTarget
from app.targets.base import Target
from app.targets.celery import CeleryTarget
from app.targets.eventbridge import EventBridgeTarget
from app.targets.nats import NatsTarget
from app.targets.queue import QueueTarget
from app.targets.redis import RedisTarget
from app.targets.sns import SnsTarget
from app.targets.sqs import SqsTarget, default_client_factory
from app.targets.webhook import WebhookTarget

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 10.0  # seconds calls in flight may take to finish at shutdown
HEARTBEAT_EVERY = 10.0  # seconds between writes of the passes counted (they are one write each)
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def remote_targets(
    allow_networks: list[str], connections: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Every remote target; connections: CONNECTIONS, the broker URLs by name."""
    brokers = dict(connections or {})
    return {
        "sqs": SqsTarget(default_client_factory),
        "webhook": WebhookTarget(allow_networks=allow_networks),
        "sns": SnsTarget(),
        "eventbridge": EventBridgeTarget(),
        "redis": RedisTarget(brokers),
        "amqp": AmqpTarget(brokers),
        "nats": NatsTarget(brokers),
        "celery": CeleryTarget(brokers),
    }


def build_targets(app: Flask) -> dict[str, Any]:
    return targets_factory(app)()


def targets_factory(app: Flask) -> Callable[[], dict[str, Any]]:
    """What builds this app's remote targets: picklable, for the delivery process too."""
    return partial(remote_targets, allow_networks(app.config), connections_of(app.config))


def build_dispatcher(
    app: Flask,
    targets: dict[str, Any] | None = None,
    *,
    background: bool = False,
    delivery_process: bool = False,
) -> Dispatcher:
    """The dispatcher of this app's database; `targets` replaces the remote ones.
    delivery_process: the delivery calls run in a child process, with targets of its own
    built as build_targets builds them."""
    every = {"queue": QueueTarget(bulk_for(db.engine))} | (targets or build_targets(app))
    settings = DispatcherSettings.from_config(app.config)
    call_loop = None
    if delivery_process:
        make_targets = targets_factory(app)

        def call_loop(_targets: Mapping[str, Target], limits: Limits) -> CallLoop:
            setup = partial(configure_logging, str(app.config["LOG_FORMAT"]))
            return ProcessLoop(make_targets, limits, setup=setup)

    return Dispatcher(
        db.engine, clock_of(app), every, settings, background=background, call_loop=call_loop
    )


def configure_logging(fmt: str = "text") -> None:
    """The scheduler process's log lines (its delivery child's too): LOG_FORMAT's format."""
    logs.configure(fmt)


def make_waiter(app: Flask, dispatcher: Dispatcher) -> Waiter:
    if is_postgresql(db.engine):
        from app.scheduler.wake import NotifyWaiter

        return NotifyWaiter(db.engine, dispatcher.stopping)
    return Waiter(dispatcher.stopping)


def run_scheduler(app: Flask) -> None:
    """Run until SIGTERM or SIGINT; finish the calls in hand, then exit."""
    # The stop signals are taken by the main thread, waiting for them, never by a handler:
    # a handler runs inside whatever the main thread was doing, and stopping from there
    # (APScheduler's shutdown, waking the loops) takes locks the interrupted code may hold
    # (seen: SIGTERM during APScheduler's submission of a pass hung the process). Blocked
    # before any thread starts, so every thread inherits the mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    interval = float(app.config["DISPATCH_INTERVAL"])
    quiet_collector()  # before the delivery process forks: it inherits the frozen heap
    dispatcher = build_dispatcher(
        app, background=True, delivery_process=bool(app.config["DELIVERY_PROCESS"])
    )
    waiter = make_waiter(app, dispatcher)
    scheduler = BackgroundScheduler(timezone="UTC")
    now = clock_of(app).now()
    periodic = PeriodicWork(app, dispatcher.stopping)

    def every(seconds: float, name: str, work: Callable[[], Any], *, passes: bool) -> None:
        # A pass lasts until the next tick, or longer while work is due. The next tick's
        # pass queues on its lock instead of being skipped (max_instances=2): skipping it
        # would leave the loop idle until the tick after.
        # Passes start at once; the rest first run one interval from now.
        start = {"next_run_time": now} if passes else {}
        scheduler.add_job(
            periodic.guarded(name, work), "interval", seconds=seconds, id=name,
            max_instances=2 if passes else 1, coalesce=True, misfire_grace_time=None, **start,
        )  # fmt: skip

    heartbeat = CounterWriter(db.engine)
    unwritten = {"passes": 0, "since": -HEARTBEAT_EVERY}  # passes not yet counted in the database

    def fire() -> None:
        if not dispatcher.run_pass(interval, waiter):
            return
        # /metrics: scheduler_passes_total, which the "not passing" alert watches over
        # minutes: written every HEARTBEAT_EVERY s, not a write transaction every pass.
        unwritten["passes"] += 1
        if time.monotonic() - unwritten["since"] >= HEARTBEAT_EVERY:
            with write_connection(db.engine) as conn:
                heartbeat.add(conn, {PASSES: unwritten["passes"]})
            unwritten.update(passes=0, since=time.monotonic())

    every(interval, "fire", fire, passes=True)
    for worker in range(1, len(dispatcher.firings)):  # PostgreSQL: more firing workers
        every(interval, f"fire-{worker}", partial(dispatcher.run_pass, interval, worker=worker),
              passes=True)  # fmt: skip
    every(interval, "deliver", lambda: dispatcher.run_delivery_pass(interval), passes=True)
    every(dispatcher.settings.lease / 4, "renew", dispatcher.renew_leases, passes=False)
    every(60, "prune", lambda: prune_history(app), passes=False)
    every(interval, "end-pauses", lambda: end_pauses(app), passes=False)

    log.info("scheduler started", extra={"action": "start", "interval": interval})
    scheduler.start()
    signum = signal.sigwait(STOP_SIGNALS)  # a second one, while finishing, stays pending
    log.info("stopping", extra={"action": "stop", "signal": int(signum)})
    # Should stopping ever take far longer than it may, the log shows where it waits.
    faulthandler.dump_traceback_later(3 * SHUTDOWN_GRACE, exit=False)
    dispatcher.stop()
    scheduler.shutdown(wait=False)
    # shutdown(wait=False) leaves the work in hand running: let it end (a pass notices the
    # stop within one step) before the lanes close under a claim that is handing runs over.
    periodic.wait_ended(SHUTDOWN_GRACE)
    dispatcher.close(SHUTDOWN_GRACE)
    faulthandler.cancel_dump_traceback_later()
    log.info("scheduler stopped", extra={"action": "stop"})


class PeriodicWork:
    """The process's periodic work, each kind under a lock of its own: one runs at a time,
    and a run due meanwhile queues on the lock. Once stopping, a queued run returns at
    once, so that nothing waits past the work that was running at the stop."""

    def __init__(self, app: Flask, stopping: Stopping) -> None:
        self.app = app
        self.stopping = stopping
        self._locks: list[threading.Lock] = []

    def guarded(self, name: str, work: Callable[[], Any]) -> Callable[[], None]:
        lock = threading.Lock()
        self._locks.append(lock)

        def run() -> None:
            with lock:
                if self.stopping.is_set():
                    return
                with self.app.app_context():
                    try:
                        work()
                    except Exception:  # the database may be briefly away: try again next time
                        log.exception(f"{name} failed", extra={"action": name})

        return run

    def wait_ended(self, timeout: float) -> None:
        """After the stop: wait up to `timeout` s (for all together) for the runs in hand."""
        deadline = time.monotonic() + timeout
        for lock in self._locks:
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                log.warning("a pass did not end in time", extra={"action": "stop"})
                continue
            lock.release()  # a run queued behind it may go on: it returns at once


def end_pauses(app: Flask) -> None:
    """Resume the jobs whose pause has ended, as the dispatcher (the audit log's actor)."""
    g.actor = audit.DISPATCHER
    jobs.end_pauses(clock_of(app).now())


def prune_history(app: Flask) -> None:
    prune(
        db.engine,
        clock_of(app).now(),
        run_days=float(app.config["RUN_RETENTION_DAYS"]),
        queue_days=float(app.config["QUEUE_RETENTION_DAYS"]),
        audit_days=float(app.config["AUDIT_RETENTION_DAYS"]),
        completed_job_days=float(app.config["COMPLETED_JOB_RETENTION_DAYS"]),
    )
