"""Part 7: webhook delivery. The dispatcher delivering one-shot webhook jobs to local HTTP
receivers (scripts/bench/receiver.py, one process on loopback) beside a bare aiohttp loop
sending the same requests at the same concurrency to the same receiver, in the same run.

Definitions, also printed in docs/BENCHMARKS.md:
- deliveries/s (dispatcher): N jobs due at one instant T, read back with SQL once all are
  delivered: N ÷ (last `delivered_at` - the earliest call start), a call's start being its
  run's `delivered_at - response_ms` (`response_ms` is timed by the target around the
  call; `delivered_at` is stamped a little later, when the outcome is written). Firing and
  claiming before the first call are left out; they are in "all delivered after T";
- deliveries/s (bare loop): N ÷ (last response read - first request started);
- all delivered after T: last `delivered_at` - T (firing, claiming and the calls);
- in flight: the receiver's own count of requests received and not yet answered (slow and
  hanging receivers), or of connections open at once (fast receiver: it answers each
  request inside its read callback, so a request is never in flight there);
- queue lag (hanging webhook): `runs.fired_at - runs.scheduled_for` of the built-in queue
  jobs only, N of them due 1 ms apart from T + 1 s, while the webhook runs of 1,000 jobs
  due at T wait on a receiver that answers after 10 s; beside it the same with no webhook
  jobs (a fresh database and dispatcher, same run).

Design goals: ≥ 2,000 deliveries/s to a fast receiver and ≥ 90% of the bare loop; ≥ 500
deliveries/s to four receivers answering after 1 s; built-in queue lag p99 ≤ 100 ms while
webhook calls hang.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import psutil
import requests
from sqlalchemy import Engine, func, select

from app import jobstate, timing
from app.ids import new_id
from app.jobstate import JobState, MisfirePolicy
from app.scheduler.firing import origin_of
from app.scheduler.process import remote_targets
from app.targets.signing import sign
from app.targets.webhook import USER_AGENT
from bench.common import (
    Context,
    Databases,
    Goal,
    cpu_seconds,
    insert_due,
    job_row,
    jobs,
    machine_busy_seconds,
    percentile,
    processes,
    retrying,
    runs,
    server_cpu_seconds,
    start_dispatcher,
    stop,
    stopped_on_error,
    wait_all_fired,
    waiting_for_core_seconds,
)
from bench.dispatch import sample_ids
from tests.support.processes import Proc, wait_until

RECEIVER = Path(__file__).with_name("receiver.py")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TIMEOUT = 30.0  # the webhook target's timeout, s
ENV = {"WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}  # loopback is refused otherwise
ORIGIN_IN_FLIGHT = 250  # DELIVERY_ORIGIN_IN_FLIGHT's default: the bare loops' concurrency
PAYLOAD_PAD = 160  # the body: a JSON object of about 200 bytes
SLOW_RECEIVERS, SLOW_DELAY = 4, 1.0
HANG_DELAY, HANG_START = 10.0, 1.0  # the hanging receiver's answer; queue jobs from T + this
POLL_DELIVERED = 0.25  # s between looks at "all delivered?" (the figures come from the rows)
NARROW_IN_FLIGHT = 100  # the slow variant: the per-origin limit set lower


def payload(i: int) -> str:
    return json.dumps({"event": "bench.delivery", "n": i, "data": "x" * PAYLOAD_PAD})


def webhook(url: str) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "timeout": TIMEOUT, "secret": SECRET}


def fired(rows: list[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """These one-shot jobs as the dispatcher leaves them once fired at `at`: advanced by the
    service's own job-state rules (completed, no next run). Their audit entries are left
    out: delivery never reads them."""
    if not rows:
        return rows
    columns = {c.name: None for c in jobs.columns} | rows[0]
    sample = SimpleNamespace(**columns)
    misfire = MisfirePolicy(sample.misfire, 60.0, 100)
    change = jobstate.fire(timing.timing_of(sample), JobState.of(sample), at, misfire)
    return [row | change.state.columns() for row in rows]


def pending_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run for each fired job of a remote target, as firing writes one (pending, due for
    its first attempt at the instant it fired, with the origin its delivery goes to)."""
    fired_jobs = (r for r in rows if r["target_type"] != "queue" and r["next_run_at"] is None)
    targets = remote_targets([])  # what names origins, as the dispatcher's firing does
    origins: dict[str, str | None] = {}  # by target spec: once per distinct target

    def origin(spec: dict[str, Any]) -> str | None:
        key = json.dumps(spec)
        if key not in origins:
            origins[key] = origin_of(targets, spec)
        return origins[key]

    return [
        {
            "id": new_id(),
            "job_id": row["id"],
            "scheduled_for": row["first_at"],
            "fired_at": row["first_at"],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": row["first_at"],
            "delivered_at": None,
            "origin": origin(row["target"]),
        }
        for row in fired_jobs
    ]


# -- the receiver --------------------------------------------------------------------------


@dataclass
class Receiver:
    proc: Proc
    ports: list[int]
    control: int

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/hook" for port in self.ports]

    def stats(self, reset: bool = False) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.control}/_{'reset' if reset else 'stats'}"
        answer = (requests.post if reset else requests.get)(url, timeout=5)
        answer.raise_for_status()
        return dict(answer.json())

    def cpu(self) -> float:
        """CPU seconds (user + system) the receiver has used."""
        return cpu_seconds(self.proc.popen.pid)


@contextmanager
def receiving(ctx: Context, name: str, ports: int = 1, delay: float = 0.0) -> Iterator[Receiver]:
    """A receiver process for the duration of the block (stopped on the way out, whatever
    happens; it also exits by itself if this process dies)."""
    args = [sys.executable, str(RECEIVER), "--ports", str(ports), "--delay", str(delay),
            "--parent", str(os.getpid()), "--lifetime", "1800"]  # fmt: skip
    proc = Proc(args, dict(os.environ), ctx.log(name))
    try:
        with stopped_on_error(ctx, proc):
            wait_until(lambda: "listening" in proc.output(), 15, proc, step=0.05)
        words = proc.output().split("listening ", 1)[1].split()
        yield Receiver(proc, [int(p) for p in words[0].split(",")], int(words[2]))
    finally:
        if proc.popen.poll() is None or not proc.handle.closed:
            stop(ctx, proc)


# -- the bare loop -------------------------------------------------------------------------


@dataclass
class Bare:
    rate: float | None  # deliveries/s; None: did not finish
    failed: int
    cpu: float  # % of one core the loop's process used
    stats: dict[str, Any]  # the receiver's counts
    cpu_per_delivery: float  # µs of its process's CPU per request


def bare_loop(ctx: Context, receiver: Receiver, count: int, per_origin: int) -> Bare:
    """N signed POSTs as the webhook target sends them (method, body, headers), request i to
    receiver URL i mod the URLs, `per_origin` in flight to each URL, with aiohttp set up as
    the target sets it up (no connector limits, no cookies, no proxies, the same timeouts);
    in this process, on its own event loop."""
    receiver.stats(reset=True)
    cpu = cpu_seconds(os.getpid())
    began = time.time()
    done: list[float] = []
    failed = asyncio.run(_bare(receiver.urls, count, per_origin, done, 60 + count / 100))
    wall = time.time() - began
    cpu = cpu_seconds(os.getpid()) - cpu
    finished = len(done) == count and failed == 0
    rate = count / (max(done) - began) if finished else None
    left = failed if finished else count - len(done)
    return Bare(rate, left, 100 * cpu / wall, receiver.stats(), 1e6 * cpu / count)


async def _bare(
    urls: list[str], count: int, per_origin: int, done: list[float], timeout: float
) -> int:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    session = aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    client_timeout = aiohttp.ClientTimeout(total=TIMEOUT, connect=10, ceil_threshold=math.inf)
    failed = 0

    async def worker(url: str, todo: Iterator[int]) -> None:
        nonlocal failed
        for i in todo:
            body = payload(i).encode()
            run_id = str(uuid.uuid4())
            stamp = int(time.time())
            headers = {
                "user-agent": USER_AGENT,
                "content-type": "application/json",
                "webhook-id": run_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(SECRET, run_id, stamp, body),
            }
            try:
                async with session.post(
                    url, data=body, headers=headers, timeout=client_timeout, allow_redirects=False
                ) as response:
                    while await response.content.read(16384):
                        pass
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                done.append(time.time())
            else:
                failed += 1

    try:
        workers = []
        for u, url in enumerate(urls):
            todo = iter(range(u, count, len(urls)))  # shared by the URL's workers
            workers += [worker(url, todo) for _ in range(per_origin)]
        await asyncio.wait_for(asyncio.gather(*workers), timeout)
    except TimeoutError:
        pass
    finally:
        await session.close()
    return failed


# -- the dispatcher ------------------------------------------------------------------------


@dataclass
class Delivered:
    rate: float  # deliveries/s, the first call's start to the last delivered_at
    after_t: float  # last delivered_at - T, s
    cpu: float  # % of one core the dispatcher used, T to the last delivery
    calls_cpu: float  # % of one core its delivery process (the calls) used, the same span
    calls_waiting: float  # % of the span its delivery process was ready to run, not running
    receiver_cpu: float  # % of one core the receiver used, the same span
    server_cpu: float  # % of one core the PostgreSQL server used (SQLite: 0), the same span
    machine_busy: float  # % of all cores busy, the same span
    stats: dict[str, Any]
    cpu_per_delivery: float  # µs: the dispatcher, its delivery process and the server's


def dispatched(
    ctx: Context,
    databases: Databases,
    kind: str,
    receiver: Receiver,
    count: int,
    env: dict[str, str] | None = None,
    due_jobs: bool = False,
) -> Delivered | str:
    """N one-shot webhook jobs, job i to receiver URL i mod the URLs, delivered by a real
    scheduler process: fired at T already (their runs due for delivery at T), or, with
    `due_jobs`, due at T (the dispatcher fires them too). Returns the figures, or why
    there are none."""
    with databases.fresh(kind) as database, processes(ctx) as procs:
        engine = database.engine()
        procs.append(start_dispatcher(ctx, database, f"delivery-{kind}", ENV | (env or {})))
        receiver.stats(reset=True)
        now, urls = datetime.now(UTC), receiver.urls

        def rows(due: datetime) -> list[dict[str, Any]]:
            targets = [webhook(url) for url in urls]
            made = [job_row(payload(i), due, now, targets[i % len(urls)]) for i in range(count)]
            return made if due_jobs else fired(made, due)

        due, _ = insert_due(ctx, database, engine, count, rows, pending_runs)
        time.sleep(max(0.0, due.timestamp() - time.time()))
        pid = procs[0].popen.pid
        children = psutil.Process(pid).children(recursive=True)  # the delivery process
        calls_cpu = sum(cpu_seconds(child.pid) for child in children)
        waiting = sum(waiting_for_core_seconds(child.pid) for child in children)
        cpu, receiver_cpu, began = cpu_seconds(pid), receiver.cpu(), time.monotonic()
        server_cpu, busy = server_cpu_seconds(), machine_busy_seconds()
        timeout = 60 + count / 100
        left = wait_delivered(engine, count, due.timestamp() + timeout, procs)
        cpu, receiver_cpu = cpu_seconds(pid) - cpu, receiver.cpu() - receiver_cpu
        server_cpu, busy = server_cpu_seconds() - server_cpu, machine_busy_seconds() - busy
        calls_cpu = sum(cpu_seconds(child.pid) for child in children) - calls_cpu
        waiting = sum(waiting_for_core_seconds(child.pid) for child in children) - waiting
        wall = time.monotonic() - began
        stats = receiver.stats()
        if left:
            return f"did not finish in {timeout:.0f} s ({_statuses(engine)})"
        first, last = _delivered_span(engine)
        if stats["requests"] != count:
            ctx.results.anomaly(f"delivery {kind}: {stats['requests']:,} requests for {count:,}")
        return Delivered(
            rate=count / (last - first).total_seconds(),
            after_t=(last - due).total_seconds(),
            cpu=100 * cpu / wall,
            calls_cpu=100 * calls_cpu / wall,
            calls_waiting=100 * waiting / wall,
            receiver_cpu=100 * receiver_cpu / wall,
            server_cpu=100 * server_cpu / wall,
            machine_busy=100 * busy / wall / (psutil.cpu_count() or 1),
            stats=stats,
            cpu_per_delivery=1e6 * (cpu + calls_cpu + server_cpu) / count,
        )


def wait_delivered(engine: Engine, count: int, deadline: float, procs: list[Proc]) -> int:
    """Poll until `count` runs are delivered; returns how many were not (0: all were)."""
    query = select(func.count()).select_from(runs).where(runs.c.status == "delivered")
    delivered = 0
    with engine.connect() as conn:
        while time.time() < deadline:
            delivered = int(conn.execute(query).scalar_one())
            conn.rollback()  # no old snapshot held between looks
            if delivered >= count:
                return 0
            for proc in procs:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"dispatcher exited:\n{proc.output()[-3000:]}")
            time.sleep(POLL_DELIVERED)
    return count - delivered


def _delivered_span(engine: Engine) -> tuple[datetime, datetime]:
    """The earliest call start (delivered_at - response_ms) and the last delivered_at."""
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.delivered_at, runs.c.response_ms)).all()
    starts = [at - timedelta(milliseconds=ms or 0) for at, ms in rows]
    return min(starts), max(at for at, _ in rows)


def _statuses(engine: Engine) -> str:
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.status, func.count(), func.max(runs.c.last_error)).group_by(runs.c.status)
        ).all()
    return ", ".join(
        f"{n:,} {status}" + (f" (e.g. {error[:80]!r})" if error else "")
        for status, n, error in rows
    )


# -- the part ------------------------------------------------------------------------------


def delivery(ctx: Context, databases: Databases, kind: str) -> None:
    sizes = ctx.sizes
    for run in range(ctx.runs):
        print(f"  delivery {kind}: fast receiver, {sizes.delivery_fast:,} webhooks, bare loop "
              f"then dispatcher, then {sizes.delivery_due:,} jobs due, run {run + 1}")  # fmt: skip
        _fast(ctx, databases, kind, sizes.delivery_fast, sizes.delivery_due)
    for per_origin in (ORIGIN_IN_FLIGHT, NARROW_IN_FLIGHT):
        for run in range(ctx.runs):
            print(
                f"  delivery {kind}: {SLOW_RECEIVERS} slow receivers, {sizes.delivery_slow:,} "
                f"webhooks, {SLOW_RECEIVERS} x {per_origin} in flight, run {run + 1}"
            )
            _slow(ctx, databases, kind, sizes.delivery_slow, per_origin)
    for run in range(ctx.runs):
        print(f"  delivery {kind}: queue lag, {sizes.lag_jobs:,} queue jobs 1 ms apart, without "
              f"then with {sizes.delivery_hang:,} hanging webhooks, run {run + 1}")  # fmt: skip
        _hanging(ctx, databases, kind, sizes.lag_jobs, sizes.delivery_hang)


def _fast(ctx: Context, databases: Databases, kind: str, count: int, due_count: int) -> None:
    add, label = ctx.results.add, f"{count:,} webhooks"
    fast = "fast receiver:"
    with receiving(ctx, f"receiver-fast-{kind}") as receiver:
        bare = bare_loop(ctx, receiver, count, ORIGIN_IN_FLIGHT)
        name = f"{fast} bare aiohttp loop, {ORIGIN_IN_FLIGHT} in flight, {label}"
        note = "" if bare.rate else f"did not finish ({bare.failed:,} failed or missing)"
        add("delivery", kind, name, bare.rate, "deliveries/s", note=note)
        add("delivery", kind, f"{fast} bare loop's own CPU", bare.cpu, "%")
        add("delivery", kind, f"{fast} bare loop's CPU per delivery", bare.cpu_per_delivery, "µs")
        got = retrying(partial(dispatched, ctx, databases, kind, receiver, count))
        end_to_end = retrying(
            partial(dispatched, ctx, databases, kind, receiver, due_count, due_jobs=True)
        )
    goal = Goal(">=", 2_000)
    if isinstance(got, str):
        add("delivery", kind, f"{fast} dispatcher, {label}", None, "deliveries/s", goal, got)
        add("delivery", kind, f"{fast} dispatcher ÷ bare loop, {label}", None, "x",
            Goal(">=", 0.90), got)  # fmt: skip
    else:
        add("delivery", kind, f"{fast} dispatcher, {label}", got.rate, "deliveries/s", goal)
        ratio = got.rate / bare.rate if bare.rate else None
        add("delivery", kind, f"{fast} dispatcher ÷ bare loop, {label}", ratio, "x",
            Goal(">=", 0.90))  # fmt: skip
        add("delivery", kind, f"{fast} dispatcher, all delivered after T, {label}", got.after_t,
            "s")  # fmt: skip
        add("delivery", kind, f"{fast} dispatcher, connections open at the receiver, most",
            got.stats["max_connections"], "calls")  # fmt: skip
        add("delivery", kind, f"{fast} dispatcher CPU, T to the last delivery", got.cpu, "%")
        add("delivery", kind, f"{fast} its delivery process's CPU, the same span", got.calls_cpu,
            "%")  # fmt: skip
        add("delivery", kind, f"{fast} its delivery process ready but waiting for a core, the "
            "same span", got.calls_waiting, "%")  # fmt: skip
        add("delivery", kind, f"{fast} CPU per delivery: dispatcher, delivery process"
            + (" and PostgreSQL server" if kind == "postgresql" else ""), got.cpu_per_delivery,
            "µs")  # fmt: skip
        add("delivery", kind, f"{fast} receiver CPU, T to the last delivery", got.receiver_cpu,
            "%")  # fmt: skip
        if kind == "postgresql":
            add("delivery", kind, f"{fast} PostgreSQL server CPU, the same span", got.server_cpu,
                "%")  # fmt: skip
        add("delivery", kind, f"{fast} machine busy (all cores), the same span",
            got.machine_busy, "%")  # fmt: skip
    due_label = f"{fast} jobs due at T (firing included), {due_count:,} webhooks"
    if isinstance(end_to_end, str):
        add("delivery", kind, f"{due_label}: dispatcher", None, "deliveries/s", goal, end_to_end)
        return
    add("delivery", kind, f"{due_label}: dispatcher", end_to_end.rate, "deliveries/s", goal)
    add("delivery", kind, f"{due_label}: all delivered after T", end_to_end.after_t, "s")


def _slow(ctx: Context, databases: Databases, kind: str, count: int, per_origin: int) -> None:
    add = ctx.results.add
    narrow = per_origin != ORIGIN_IN_FLIGHT
    limit = f"{SLOW_RECEIVERS} x {per_origin} in flight"
    slow = f"{SLOW_RECEIVERS} receivers x {SLOW_DELAY:g} s, {limit}:"
    label = f"{count:,} webhooks"
    name = f"{slow} bare aiohttp loop, {label}"
    with receiving(ctx, f"receiver-slow-{kind}", SLOW_RECEIVERS, SLOW_DELAY) as receiver:
        bare = bare_loop(ctx, receiver, count, per_origin)
        note = "" if bare.rate else f"did not finish ({bare.failed:,} failed or missing)"
        add("delivery", kind, name, bare.rate, "deliveries/s", note=note)
        add("delivery", kind, f"{slow} bare loop, calls in flight, most",
            bare.stats["max_in_flight"], "calls")  # fmt: skip
        env = {"DELIVERY_ORIGIN_IN_FLIGHT": str(per_origin)} if narrow else {}
        got = retrying(partial(dispatched, ctx, databases, kind, receiver, count, env))
    goal = None if narrow else Goal(">=", 500)
    dispatcher = f"{slow} dispatcher" + (f" (DELIVERY_ORIGIN_IN_FLIGHT={per_origin})" * narrow)
    if isinstance(got, str):
        add("delivery", kind, f"{dispatcher}, {label}", None, "deliveries/s", goal, got)
        return
    add("delivery", kind, f"{dispatcher}, {label}", got.rate, "deliveries/s", goal)
    ratio = got.rate / bare.rate if bare.rate else None
    add("delivery", kind, f"{slow} dispatcher ÷ bare loop, {label}", ratio, "x")
    add("delivery", kind, f"{slow} dispatcher, calls in flight, most",
        got.stats["max_in_flight"], "calls")  # fmt: skip


def _hanging(ctx: Context, databases: Databases, kind: str, count: int, hooks: int) -> None:
    with receiving(ctx, f"receiver-hang-{kind}", 1, HANG_DELAY) as receiver:
        retrying(partial(_lag, ctx, databases, kind, count, None, 0))
        retrying(partial(_lag, ctx, databases, kind, count, receiver, hooks))


def _lag(
    ctx: Context,
    databases: Databases,
    kind: str,
    count: int,
    receiver: Receiver | None,
    hooks: int,
) -> None:
    """Built-in queue jobs 1 ms apart from T + HANG_START (as the lag part schedules them),
    and `hooks` webhook jobs due at T to a receiver that hangs."""
    traffic = f"{hooks:,} webhooks hanging {HANG_DELAY:g} s" if receiver else "no webhook traffic"
    label = f"at 1,000 fires/s, {traffic}"
    add = ctx.results.add
    with databases.fresh(kind) as database, processes(ctx) as procs:
        engine = database.engine()
        procs.append(start_dispatcher(ctx, database, f"delivery-lag-{kind}", ENV))
        if receiver:
            receiver.stats(reset=True)
        now = datetime.now(UTC)

        def rows(first: datetime) -> list[dict[str, Any]]:
            start, step = first + timedelta(seconds=HANG_START), timedelta(milliseconds=1)
            queue = [job_row(f"steady {i}", start + i * step, now) for i in range(count)]
            url = receiver.urls[0] if receiver else ""
            hooked = [job_row(payload(i), first, now, webhook(url)) for i in range(hooks)]
            return queue + fired(hooked, first)

        first, inserted = insert_due(ctx, database, engine, count + hooks, rows, pending_runs)
        queued = inserted[:count]
        sample = sample_ids(queued)
        timeout = HANG_START + count / 1000 + 30
        observed = wait_all_fired(engine, first, procs, timeout, sample)
        stats = receiver.stats() if receiver else {}
        goal = Goal("<=", 100) if receiver else None
        if observed.done is None:
            note = f"did not finish in {timeout:.0f} s"
            add("delivery", kind, f"queue lag p99 {label}", None, "ms", goal, note)
            return
        lags = queue_lags_ms(engine)
        add("delivery", kind, f"queue lag p50 {label}", percentile(lags, 50), "ms")
        add("delivery", kind, f"queue lag p99 {label}", percentile(lags, 99), "ms", goal)
        add("delivery", kind, f"queue lag max {label}", lags[-1], "ms")
        due_at = {row["id"]: row["next_run_at"].timestamp() for row in queued}
        committed = sorted((observed.seen[key] - due_at[key]) * 1000 for key in sample)
        add("delivery", kind, f"queue commit lag p99 (sampled) {label}",
            percentile(committed, 99), "ms")  # fmt: skip
        if receiver:
            add("delivery", kind, f"calls in flight at the hanging receiver, most, {traffic}",
                stats["max_in_flight"], "calls")  # fmt: skip
            if stats["requests"] == 0:
                ctx.results.anomaly(f"delivery lag {kind}: no webhook reached the receiver")
        if len(lags) != count:
            ctx.results.anomaly(f"delivery lag {kind}: {len(lags):,} queue runs for {count:,}")


def queue_lags_ms(engine: Engine) -> list[float]:
    """fired_at - scheduled_for of the built-in queue jobs' runs, in ms, sorted."""
    query = (
        select(runs.c.scheduled_for, runs.c.fired_at)
        .join(jobs, jobs.c.id == runs.c.job_id)
        .where(jobs.c.target_type == "queue")
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return sorted((fired - scheduled).total_seconds() * 1000 for scheduled, fired in rows)
