"""The scheduler process: APScheduler drives the dispatcher's passes.

Run it with `flask --app wsgi scheduler run`. Never start it inside web workers: one
scheduler per worker would mean as many timers (the unique run key would still keep
fires exact, but the work would be wasted).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from app import clock_of
from app.database import db, is_postgresql
from app.dispatcher import Dispatcher, DispatcherSettings, Waiter
from app.jobs import allowed_networks
from app.retention import prune
from app.targets.base import Target
from app.targets.sqs import SqsTarget, default_client_factory
from app.targets.webhook import WebhookTarget

log = logging.getLogger(__name__)


def build_targets(app: Flask) -> dict[str, Target]:
    return {
        "sqs": SqsTarget(default_client_factory),
        "webhook": WebhookTarget(allow_networks=allowed_networks()),
    }


def build_dispatcher(
    app: Flask, targets: dict[str, Target] | None = None, *, background_delivery: bool = False
) -> Dispatcher:
    settings = DispatcherSettings(
        batch_size=int(app.config["DISPATCH_BATCH_SIZE"]),
        delivery_batch_size=int(app.config["DELIVERY_BATCH_SIZE"]),
        lease=float(app.config["DELIVERY_LEASE"]),
        misfire_grace=float(app.config["MISFIRE_GRACE"]),
        default_retry=app.config["DEFAULT_RETRY"],
    )
    return Dispatcher(
        db.engine,
        clock_of(app),
        targets or build_targets(app),
        settings,
        background_delivery=background_delivery,
    )


def make_waiter(app: Flask, dispatcher: Dispatcher) -> Waiter:
    if is_postgresql(db.engine):
        from app.notify import NotifyWaiter

        return NotifyWaiter(db.engine, dispatcher.stopping)
    return Waiter(dispatcher.stopping)


def run_scheduler(app: Flask) -> None:
    """Run dispatch passes until SIGTERM or SIGINT; finish the batch in hand, then exit."""
    interval = float(app.config["DISPATCH_INTERVAL"])
    dispatcher = build_dispatcher(app, background_delivery=True)
    waiter = make_waiter(app, dispatcher)
    scheduler = BlockingScheduler(timezone="UTC")
    idle = threading.Lock()

    def dispatch_pass() -> None:
        # A pass lasts until the next tick, or longer while work is due. The next tick's
        # pass queues on this lock instead of being skipped (max_instances=2): skipping it
        # would leave the dispatcher idle until the tick after.
        with idle, app.app_context():
            dispatcher.run_pass(interval, waiter)

    scheduler.add_job(
        dispatch_pass,
        "interval",
        seconds=interval,
        id="dispatch",
        max_instances=2,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=clock_of(app).now(),
    )

    def prune_pass() -> None:
        with app.app_context():
            try:
                prune(
                    db.engine,
                    clock_of(app).now(),
                    run_days=float(app.config["RUN_RETENTION_DAYS"]),
                    queue_days=float(app.config["QUEUE_RETENTION_DAYS"]),
                    audit_days=float(app.config["AUDIT_RETENTION_DAYS"]),
                )
            except Exception:  # the database may be briefly away: try again next time
                log.exception("pruning failed", extra={"action": "prune"})

    scheduler.add_job(prune_pass, "interval", seconds=60, id="prune", max_instances=1)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"action": "stop", "signal": signum})
        dispatcher.stop()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("scheduler started", extra={"action": "start", "interval": interval})
    scheduler.start()
    with idle:  # the pass in hand has finished its batch
        dispatcher.finish_deliveries()
        for target in dispatcher.targets.values():
            close = getattr(target, "close", None)
            if close is not None:
                close()
        log.info("scheduler stopped", extra={"action": "stop"})
