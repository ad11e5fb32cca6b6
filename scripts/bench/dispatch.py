"""Parts 1 and 2: a burst of one-shot jobs all due at one instant T, and a steady 1,000 due
jobs a second; real `flask --app wsgi scheduler run --no-migrate` processes.

A fire is a run committed with its job's next time saved (and, for the built-in queue, the
message in the same transaction). Definitions, also printed in docs/BENCHMARKS.md:
- all fired: the wall-clock instant the harness first saw no job left with a next run (it
  looks every 10 ms, so commits are counted, not claims) minus T;
- fires/s: N ÷ all fired (the dispatcher's wake-up at T included);
- lag: runs.fired_at - runs.scheduled_for, read back with SQL; fired_at is stamped by the
  dispatcher when it claims the batch, before that batch's transaction commits;
- commit lag (sampled): for 200 random jobs, when the harness first saw the job fired
  (committed), looking every 10 ms, - its due time. An upper bound, one poll coarse.

Part 3, a windowed burst: N one-shot jobs due at T with `window: 60`, each firing at its own
point of [T, T + 60 s). Fires per second are counted from runs.fired_at in each whole second
of the window; the spread is the largest distance of one second's count from their mean, in %
of the mean; the lag is fired_at - due_at (the point the job was planned to fire).
"""

from __future__ import annotations

import os
import random
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from app import jobstate
from bench.common import (
    Context,
    Database,
    Databases,
    Goal,
    count_rows,
    insert_due,
    job_row,
    lags_ms,
    messages,
    percentile,
    processes,
    retrying,
    runs,
    start_dispatcher,
    wait_all_fired,
)
from tests.support.processes import Proc

RAW_LOOP = Path(__file__).with_name("rawloop.py")
RAW_GOAL = 0.80  # "Fires: >= 80% of the raw-SQL loop"
SAMPLE = 200  # jobs per run whose commit time the harness observes
WINDOW = 60  # seconds: the windowed burst's flexible window
WINDOW_SPREAD_GOAL = 20.0  # % "fires per second flat within ±20%"
STEADY_RATES = (1_000, 5_000)  # fires/s of the lag part's steady series (the first sets the span)
INSTANT_JOBS = 1_000  # "1,000 jobs due in the same second are all committed within 100 ms"
BURST_GOAL_JOBS = 100_000  # "100,000 one-shot jobs due in the same second all fired within 20 s"


def burst(ctx: Context, databases: Databases, kind: str) -> None:
    for count in ctx.sizes.bursts:
        for dispatchers in (1, 2):
            for run in range(ctx.runs):
                print(f"  burst {kind}: N={count:,}, {dispatchers} dispatcher(s), run {run + 1}")
                profile = ctx.profile and run == 0 and dispatchers == 1
                profile = profile and count == max(ctx.sizes.bursts)
                ours = retrying(partial(_burst, ctx, databases, kind, count, dispatchers, profile))
                raw = retrying(partial(_raw_burst, ctx, databases, kind, count, dispatchers))
                label = burst_label(count, dispatchers)
                ratio = ours / raw if ours and raw else None
                ctx.results.add("burst", kind, f"ours ÷ raw-SQL loop, {label}", ratio, "x",
                                Goal(">=", RAW_GOAL))  # fmt: skip


def burst_label(count: int, dispatchers: int) -> str:
    return f"N={count:,}, {dispatchers} dispatcher{'s' if dispatchers > 1 else ''}"


def _burst(
    ctx: Context, databases: Databases, kind: str, count: int, dispatchers: int, profile: bool
) -> float | None:
    """Returns the fires/s (None: it did not finish)."""
    label = burst_label(count, dispatchers)
    with databases.fresh(kind) as database, processes(ctx) as procs:
        engine = database.engine()
        for i in range(dispatchers):
            svg = ctx.profile_path(kind) if profile and i == 0 else None
            procs.append(start_dispatcher(ctx, database, f"burst-{kind}-{i}", profile_to=svg))
        now = datetime.now(UTC)

        def rows(due: datetime) -> list[dict[str, Any]]:
            return [job_row(f"burst {i}", due, now) for i in range(count)]

        due, inserted = insert_due(ctx, database, engine, count, rows)
        sample = sample_ids(inserted)
        timeout = 30 + count / 1000
        observed = wait_all_fired(engine, due, procs, timeout, sample)
        done = observed.done
        add = ctx.results.add
        if done is None:
            fired = count_rows(engine, runs)
            note = f"did not finish in {timeout:.0f} s ({fired:,} of {count:,} fired)"
            add("burst", kind, f"fires/s, {label}", None, "fires/s", Goal(">=", 10_000), note)
            add("burst", kind, f"all fired, {label}", None, "s", note=note)
            return None
        elapsed = done - due.timestamp()
        goal = Goal("<=", 20.0) if count == BURST_GOAL_JOBS else None
        note = "run 1 under py-spy" if profile else ""
        add(
            "burst", kind, f"fires/s, {label}", count / elapsed, "fires/s", Goal(">=", 10_000), note
        )
        add("burst", kind, f"all fired, {label}", elapsed, "s", goal)
        lags = lags_ms(engine)
        for name, p in (("p50", 50), ("p99", 99), ("max", 100)):
            add("burst", kind, f"lag {name}, {label}", percentile(lags, p), "ms")
        committed = sorted((observed.seen[key] - due.timestamp()) * 1000 for key in sample)
        for name, p in (("p50", 50), ("p99", 99)):
            value = percentile(committed, p)
            add("burst", kind, f"commit lag {name} (sampled), {label}", value, "ms")
        _check_counts(ctx, engine, count, f"burst {kind} {label}")
        return count / elapsed


def _raw_burst(
    ctx: Context, databases: Databases, kind: str, count: int, copies: int
) -> float | None:
    """The same burst fired by `copies` raw-SQL loops (scripts/bench/rawloop.py) instead of
    dispatchers; returns their fires/s (None: they did not finish)."""
    label = f"N={count:,}, {copies} cop{'ies' if copies > 1 else 'y'}"
    elapsed, note = _raw_fired(ctx, databases, kind, count, copies, "burst")
    rate = None if elapsed is None else count / elapsed
    ctx.results.add("burst", kind, f"raw-SQL loop fires/s, {label}", rate, "fires/s", note=note)
    return rate


def _raw_fired(
    ctx: Context, databases: Databases, kind: str, count: int, copies: int, name: str
) -> tuple[float | None, str]:
    """`count` one-shots due at T fired by `copies` raw-SQL loops: the seconds from T until
    the last is committed (None, and why, when they did not finish)."""
    with databases.fresh(kind) as database, processes(ctx) as procs:
        engine = database.engine()
        now = datetime.now(UTC)

        def rows(due: datetime) -> list[dict[str, Any]]:
            return [job_row(f"{name} {i}", due, now) for i in range(count)]

        due, _ = insert_due(ctx, database, engine, count, rows)
        # The loops start once T is known (the insert leaves over a second before it; they
        # start in a fraction of that, and idle until T).
        timeout = 30 + count / 1000
        for i in range(copies):
            until = due.timestamp() + timeout
            args = [sys.executable, str(RAW_LOOP), database.url, str(due.timestamp()), str(until)]
            procs.append(Proc(args, dict(os.environ), ctx.log(f"raw-{name}-{kind}-{i}")))
        observed = wait_all_fired(engine, due, procs, timeout)
        if observed.done is None:
            fired = count_rows(engine, runs)
            return None, f"did not finish in {timeout:.0f} s ({fired:,} of {count:,} fired)"
        for proc in procs:  # each ends once its claim finds nothing due
            proc.popen.wait(10)
        _check_counts(ctx, engine, count, f"raw loop {kind} {name} N={count:,}")
        return observed.done - due.timestamp(), ""


def sample_ids(rows: list[dict[str, Any]]) -> list[uuid.UUID]:
    """The jobs whose commit the harness watches (a fixed seed: the same picks every run)."""
    picks = random.Random(SAMPLE).sample(range(len(rows)), min(SAMPLE, len(rows)))
    return [rows[i]["id"] for i in picks]


def _check_counts(ctx: Context, engine: Any, count: int, what: str) -> None:
    """Exactly one run and one queue message per job."""
    fired, queued = count_rows(engine, runs), count_rows(engine, messages)
    if fired != count or queued != count:
        ctx.results.anomaly(f"{what}: {count:,} jobs, {fired:,} runs, {queued:,} messages")


def steady(ctx: Context, databases: Databases, kind: str) -> None:
    """Lag under load: jobs due one after another at a steady rate, and a thousand due at
    one instant. The lag that counts is when a run is committed (sampled jobs, polled),
    beside the fired_at stamp taken when its batch was claimed."""
    for rate in STEADY_RATES:
        count = ctx.sizes.lag_jobs * rate // STEADY_RATES[0]  # the same span of time
        for run in range(ctx.runs):
            print(f"  lag {kind}: {count:,} jobs at {rate:,} fires/s, run {run + 1}")
            retrying(partial(_steady, ctx, databases, kind, count, rate))
    for run in range(ctx.runs):
        print(f"  lag {kind}: {INSTANT_JOBS:,} jobs due at one instant, run {run + 1}")
        retrying(partial(_instant, ctx, databases, kind, INSTANT_JOBS))


def _steady(ctx: Context, databases: Databases, kind: str, count: int, rate: int) -> None:
    at = f"at {rate:,} fires/s"
    with one_dispatcher(ctx, databases, kind, "lag") as (database, engine, procs):
        now = datetime.now(UTC)

        def rows(first: datetime) -> list[dict[str, Any]]:
            step = timedelta(seconds=1 / rate)
            return [job_row(f"steady {i}", first + i * step, now) for i in range(count)]

        first, inserted = insert_due(ctx, database, engine, count, rows)
        sample = sample_ids(inserted)
        timeout = count / rate + 30
        observed = wait_all_fired(engine, first, procs, timeout, sample)
        add = ctx.results.add
        if observed.done is None:
            note = f"did not finish in {timeout:.0f} s"
            add("lag", kind, f"lag p50 {at}", None, "ms", Goal("<=", 20), note)
            return
        lags = lags_ms(engine)
        add("lag", kind, f"lag p50 {at}", percentile(lags, 50), "ms", Goal("<=", 20))
        add("lag", kind, f"lag p99 {at}", percentile(lags, 99), "ms", Goal("<=", 100))
        add("lag", kind, f"lag max {at}", lags[-1], "ms")
        due_at = {row["id"]: row["next_run_at"].timestamp() for row in inserted}
        committed = sorted((observed.seen[key] - due_at[key]) * 1000 for key in sample)
        for name, p in (("p50", 50), ("p99", 99)):
            goal = Goal("<=", 100) if p == 99 else None
            value = percentile(committed, p)
            add("lag", kind, f"commit lag {name} (sampled) {at}", value, "ms", goal)
        _check_counts(ctx, engine, count, f"lag {kind}")


def _instant(ctx: Context, databases: Databases, kind: str, count: int) -> None:
    """`count` one-shots due at T: how long after T the last of them is committed."""
    label = f"{count:,} due at one instant"
    with one_dispatcher(ctx, databases, kind, "instant") as (database, engine, procs):
        now = datetime.now(UTC)

        def rows(due: datetime) -> list[dict[str, Any]]:
            return [job_row(f"instant {i}", due, now) for i in range(count)]

        due, _ = insert_due(ctx, database, engine, count, rows)
        observed = wait_all_fired(engine, due, procs, 30)
        elapsed = None if observed.done is None else (observed.done - due.timestamp()) * 1000
        note = "did not finish in 30 s" if elapsed is None else ""
        add = ctx.results.add
        add("lag", kind, f"{label}: all committed, after T", elapsed, "ms", Goal("<=", 100), note)
        if elapsed is not None:
            add("lag", kind, f"{label}: lag p99 (fired_at)", percentile(lags_ms(engine), 99), "ms")
            _check_counts(ctx, engine, count, f"lag {kind} {label}")
    raw, note = _raw_fired(ctx, databases, kind, count, 1, "instant")
    ctx.results.add("lag", kind, f"{label}: all committed, after T, raw-SQL loop",
                    None if raw is None else raw * 1000, "ms", note=note)  # fmt: skip


@contextmanager
def one_dispatcher(
    ctx: Context, databases: Databases, kind: str, name: str
) -> Iterator[tuple[Database, Engine, list[Proc]]]:
    """A fresh database of `kind` with one scheduler process on it (stopped after)."""
    with databases.fresh(kind) as database, processes(ctx) as procs:
        procs.append(start_dispatcher(ctx, database, f"{name}-{kind}"))
        yield database, database.engine(), procs


def windowed(ctx: Context, databases: Databases, kind: str) -> None:
    for run in range(ctx.runs):
        count = ctx.sizes.window_jobs
        print(f"  window {kind}: N={count:,} due at T with a {WINDOW} s window, run {run + 1}")
        retrying(partial(_windowed, ctx, databases, kind, count))


def _windowed(ctx: Context, databases: Databases, kind: str, count: int) -> None:
    label = f"N={count:,} due at T, {WINDOW} s window, 1 dispatcher"
    with one_dispatcher(ctx, databases, kind, "window") as (database, engine, procs):
        now = datetime.now(UTC)

        def rows(due: datetime) -> list[dict[str, Any]]:
            made = [job_row(f"window {i}", due, now) for i in range(count)]
            for row in made:
                row["window"] = WINDOW
                row["next_run_at"] = due + jobstate.window_offset(row["id"], WINDOW)
            return made

        due, _ = insert_due(ctx, database, engine, count, rows)
        observed = wait_all_fired(engine, due, procs, WINDOW + 30 + count / 1000)
        add = ctx.results.add
        if observed.done is None:
            note = f"did not finish ({count_rows(engine, runs):,} of {count:,} fired)"
            add("window", kind, f"fires/s spread, {label}", None, "%", _spread_goal(), note)
            return
        per_second, lags = _window_fires(engine, due)
        mean = sum(per_second) / len(per_second)
        spread = max(abs(n - mean) for n in per_second) / mean * 100
        add("window", kind, f"fires/s, mean of each second, {label}", mean, "fires/s")
        add("window", kind, f"fires/s, fewest in one second, {label}", min(per_second), "fires/s")
        add("window", kind, f"fires/s, most in one second, {label}", max(per_second), "fires/s")
        add("window", kind, f"fires/s spread, {label}", spread, "%", _spread_goal())
        for name, p in (("p50", 50), ("p99", 99), ("max", 100)):
            add("window", kind, f"lag from the planned time {name}, {label}",
                percentile(lags, p), "ms")  # fmt: skip
        _check_counts(ctx, engine, count, f"window {kind} {label}")


def _spread_goal() -> Goal:
    return Goal("<=", WINDOW_SPREAD_GOAL)


def _window_fires(engine: Any, due: datetime) -> tuple[list[int], list[float]]:
    """Fires in each whole second of the window, and every run's lag from its planned time
    (ms, sorted)."""
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.fired_at, runs.c.due_at)).all()
    per_second = [0] * WINDOW
    for fired, _ in rows:
        second = int((fired - due).total_seconds())
        if 0 <= second < WINDOW:
            per_second[second] += 1
    lags = sorted((fired - planned).total_seconds() * 1000 for fired, planned in rows)
    return per_second, lags
