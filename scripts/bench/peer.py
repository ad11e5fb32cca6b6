"""Part 5: the same burst through APScheduler 3.11 used as its documentation shows: a
BackgroundScheduler with a SQLAlchemyJobStore, one `date` job per occurrence.

The jobs are added while the scheduler is paused, each stored by the job store as APScheduler
does (one INSERT and commit each); only the firing is timed, from T as for our burst.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, create_engine, event

from bench.common import (
    MIN_LEAD,
    POLL,
    Context,
    Database,
    Databases,
    Overrun,
    percentile,
    retrying,
)

FIRES: list[float] = []  # time.time() of every call of fire(); list.append is thread-safe
# Seconds APScheduler's store takes to add one job, per kind: how far ahead T must be.
add_cost = {"sqlite": 1e-3, "postgresql": 2e-3}
PEER_REPEAT_MAX = 10_000  # larger bursts run once: APScheduler takes minutes to store them


def fire() -> None:
    """The job: note when it ran (APScheduler stores it as the reference bench.peer:fire)."""
    FIRES.append(time.time())


def peer(ctx: Context, databases: Databases, kind: str) -> None:
    for count in ctx.sizes.peer_sizes:
        name = f"APScheduler fires/s, N={count:,}"
        for run in range(ctx.runs if count <= PEER_REPEAT_MAX else 1):
            print(f"  peer {kind}: APScheduler, N={count:,}, run {run + 1}")
            if add_cost[kind] * count > ctx.sizes.peer_timeout * 2:
                note = f"not run: adding {count:,} jobs would take ~{add_cost[kind] * count:.0f} s"
                ctx.results.add("peer", kind, name, None, "fires/s", note=note)
                return
            if not retrying(partial(_once, ctx, databases, kind, count)):
                return  # a larger or repeated run would not finish either
            ours = ctx.results.figures.get(("burst", kind, f"fires/s, N={count:,}, 1 dispatcher"))
            if ours and ours.median:
                ratio = ours.median / ctx.results.figures[("peer", kind, name)].values[-1]
                ctx.results.add("peer", kind, f"ours ÷ APScheduler fires/s, N={count:,}", ratio,
                                "x")  # fmt: skip


def _engine(database: Database) -> Engine:
    """The store's engine; on SQLite the service's own WAL settings, for a fair comparison."""
    engine = create_engine(database.url)
    if database.kind == "sqlite":

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    database.engines.append(engine)
    return engine


def _once(ctx: Context, databases: Databases, kind: str, count: int) -> bool:
    """One burst; returns whether it finished within the timeout."""
    label, add = f"N={count:,}", ctx.results.add
    with databases.fresh(kind, migrated=False) as database:
        store = SQLAlchemyJobStore(engine=_engine(database), tablename="apscheduler_jobs")
        scheduler = BackgroundScheduler(
            jobstores={"default": store},
            job_defaults={"misfire_grace_time": None},  # late is fine; dropped is not
            timezone=UTC,
        )
        scheduler.start(paused=True)
        try:
            FIRES.clear()
            due = datetime.now(UTC) + timedelta(seconds=MIN_LEAD + 1.5 * add_cost[kind] * count)
            began = time.monotonic()
            for _ in range(count):
                scheduler.add_job(fire, "date", run_date=due, id=uuid.uuid4().hex)
            add_cost[kind] = (time.monotonic() - began) / count
            left = (due - datetime.now(UTC)).total_seconds()
            if left < 0.2:
                add_cost[kind] *= 2
                raise Overrun(f"adding {count:,} jobs to APScheduler left {left:.2f} s before T")
            add("peer", kind, f"APScheduler add_job (ms each, untimed), {label}",
                add_cost[kind] * 1000, "ms")  # fmt: skip
            scheduler.resume()
            deadline = due.timestamp() + ctx.sizes.peer_timeout
            while len(FIRES) < count and time.time() < deadline:
                time.sleep(POLL)
        finally:
            # Jobs left due at shutdown make APScheduler's loop run once more and trip over
            # its own stopped store (JobLookupError); none left, nothing to trip over.
            scheduler.remove_all_jobs()
            scheduler.shutdown(wait=False)
    fires = sorted(t - due.timestamp() for t in FIRES)
    if len(fires) < count:
        note = f"did not finish in {ctx.sizes.peer_timeout:.0f} s ({len(fires):,} of {count:,})"
        add("peer", kind, f"APScheduler fires/s, {label}", None, "fires/s", note=note)
        return False
    add("peer", kind, f"APScheduler fires/s, {label}", count / fires[-1], "fires/s")
    add("peer", kind, f"APScheduler all fired, {label}", fires[-1], "s")
    add("peer", kind, f"APScheduler lag p50, {label}", percentile(fires, 50) * 1000, "ms")
    add("peer", kind, f"APScheduler lag p99, {label}", percentile(fires, 99) * 1000, "ms")
    return True
