"""The table on the terminal and the service section of docs/BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.common import Figure, Results, pg_version
from tests.support.processes import ROOT

BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- service:begin -->", "<!-- service:end -->"
TIMING_BEGIN = "<!-- timing:begin -->"
MAX_ANOMALIES = 30

INTRO = """# Benchmarks

Measured on one machine, with the command shown in each section; rerun it to compare.
The service section (`make bench`, scripts/bench.py) drives the real processes: the
scheduler process (`flask --app wsgi scheduler run --no-migrate`), gunicorn, a fresh SQLite
file or PostgreSQL database per run, APScheduler 3.11 as the peer, and moto as the SQS
endpoint. The timing section (scripts/bench_timing.py) times the pure timing rules alone.
"""

DEFINITIONS = """\
How each figure is defined (medians over the runs; min and max beside them; a figure with
a run that did not finish counts as not met):

- **Burst**: N one-shot jobs for the built-in queue, all due at one instant T, inserted with
  SQLAlchemy Core in one transaction while the dispatcher(s) idle (then `ANALYZE` on
  PostgreSQL), committed at least 1.3 s before T. A *fire* is a run committed with its job's
  next time saved and its queue message, in one transaction. *All fired* = the instant the
  bench first sees no job left with a next run (it looks every 10 ms) - T. *fires/s* =
  N ÷ all fired, the wake-up at T included; its goal is the design's sustained 10,000/s.
  *Lag* = `runs.fired_at - runs.scheduled_for`, read back with SQL; `fired_at` is stamped
  when the dispatcher claims the batch, before the batch commits. *Commit lag (sampled)*:
  for 200 random jobs of the run, when the bench first saw each one fired (committed; it
  looks every 10 ms) - its due time: an upper bound, about one look coarse.
- **Lag at 1,000 fires/s**: N jobs due 1 ms apart from T (T at least 1.3 s after the insert
  committed, the dispatcher idle); the same lag definition.
- **API**: gunicorn as the Procfile runs it (2 workers x 8 threads, gthread). Single creates:
  `POST /schedules` with the design's body (`minute` a day ahead) from 8 client threads, one
  `requests.Session` each, after 50 untimed; creates/s = count ÷ wall time; latency as the
  client sees it. Batch creates: `POST /schedules:batch` of 1,000 jobs, 2 client threads;
  jobs/s = jobs ÷ wall time.
- **Scale**: jobs loaded straight into the table (PostgreSQL: `generate_series`; SQLite:
  executemany in chunks with the dispatcher's own encoding), due a day or more ahead.
  List page: `GET /schedules?limit=100`, one client, walks of several pages following the
  `Link` cursor, each walk from a random point of the list. Dispatcher RSS (psutil), sampled
  every 0.5 s while it fires a trickle of 100 interval jobs a second: *start* = the first
  sample after 2 s, *end* = the last. Flat means: end with the large table ≤ 1.10 x end with
  the baseline table, and growth during the run ≤ 5 MB.
- **Peer**: APScheduler 3.11 the way its documentation shows: a BackgroundScheduler with a
  SQLAlchemyJobStore (its own table in its own database of the same kind; SQLite with the
  service's WAL settings), one `date` job per occurrence added while the scheduler is paused
  (`misfire_grace_time=None` so none is dropped), the default thread pool; the job appends
  its fire time to a list. Timed from T like the burst; its "fire" is the function call (the
  job is then deleted from the store), weaker than ours (no durable run). Ratio = our burst
  fires/s (median, 1 dispatcher, same N) ÷ APScheduler's. Bursts above 10,000 run once
  (storing them takes APScheduler minutes); one that does not finish in time says so.
- **SQS**: moto in server mode on 127.0.0.1 (its own process). Bare loop: boto3
  `send_message_batch`, 10 messages a call, as many calls in flight as the SQS target uses
  (8), the target's message shape; rate = N ÷ wall time. Dispatcher: N jobs with an `sqs`
  target due at T; rate = N ÷ (last `delivered_at` - T). Both spread the N messages over
  fresh queues of at most 200 each: moto counts a queue's messages on every send, so one deep
  queue would measure moto. Ratio = dispatcher ÷ bare; goal ≥ 0.90.
"""

UNIT_FORMAT = {
    "fires/s": "{:,.0f}",
    "creates/s": "{:,.0f}",
    "jobs/s": "{:,.0f}",
    "msgs/s": "{:,.0f}",
    "ms": "{:.1f}",
    "s": "{:.2f}",
    "MB": "{:.1f}",
    "x": "{:.2f}",
    "jobs": "{:,.0f}",
    "%": "{:.0f}",
}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return UNIT_FORMAT.get(unit, "{:.2f}").format(value)


def goal_text(figure: Figure) -> str:
    if figure.goal is None:
        return ""
    return f"{'≥' if figure.goal.op == '>=' else '≤'} {fmt(figure.goal.value, figure.unit)}"


def table(results: Results) -> str:
    rows = [
        "| part | db | figure | median | min | max | unit | runs | goal | |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for f in results.figures.values():
        low = min(f.values) if f.values else None
        high = max(f.values) if f.values else None
        name = f.name + "".join(f" ({note})" for note in dict.fromkeys(f.notes))
        rows.append(
            f"| {f.part} | {f.db} | {name} | {fmt(f.median, f.unit)} | {fmt(low, f.unit)} "
            f"| {fmt(high, f.unit)} | {f.unit} | {len(f.values)} | {goal_text(f)} "
            f"| {f.status()} |"
        )
    return "\n".join(rows)


def machine(kinds: list[str]) -> str:
    cpu = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    parts = [
        f"{os.cpu_count()} cores ({cpu})",
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        f"{platform.system()} {platform.release()}",
        f"{platform.python_implementation()} {platform.python_version()}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if "postgresql" in kinds:
        parts.append(f"PostgreSQL {pg_version()}")
    return ", ".join(parts)


def section(results: Results, command: str, kinds: list[str], runs: int, quick: bool) -> str:
    mode = "**quick mode: small sizes, smoke check only — not the recorded figures.** " * quick
    unique = list(dict.fromkeys(results.anomalies))
    anomalies = unique[:MAX_ANOMALIES] or ["none"]
    if len(unique) > MAX_ANOMALIES:
        anomalies.append(f"... and {len(unique) - MAX_ANOMALIES} more (see the run's output)")
    return "\n".join(
        [
            BEGIN,
            "## The service: fires, lag, API, scale, peer, SQS",
            "",
            f"{mode}Reproduce: `{command}` (on a quiet machine).",
            f"Machine: {machine(kinds)}. Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
            f"Runs per figure: {runs}. Service settings: the defaults (dispatch batch 1,000, "
            "pass interval 1 s), database on the same disk.",
            "",
            table(results),
            "",
            DEFINITIONS,
            "What the bench saw in the logs and checks:",
            "",
            *[f"- {line.replace('`', chr(39))}" for line in anomalies],
            END,
        ]
    )


def write(text: str) -> None:
    """Put the intro on top and replace the service section (new: above the timing
    section); keep every other section as it is."""
    old = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else ""
    if BEGIN in old and END in old:
        tail = old.split(BEGIN, 1)[1].split(END, 1)[1]
    elif TIMING_BEGIN in old:
        tail = old[old.index(TIMING_BEGIN) :]
    else:  # no section yet: keep what is there, less its title
        tail = old.removeprefix("# Benchmarks")
    parts = [INTRO, text, tail.strip("\n")]
    BENCHMARKS.write_text("\n\n".join(p.strip("\n") for p in parts if p.strip()) + "\n")
