"""The table on the terminal and the service section of docs/BENCHMARKS.md (merged with
the rows already recorded when only some parts ran)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.common import Figure, Results, pg_version
from tests.support.processes import ROOT

BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- service:begin -->", "<!-- service:end -->"
NOTES_BEGIN, NOTES_END = "<!-- notes:begin -->", "<!-- notes:end -->"  # written by people
SOURCES = "<!-- bench-sources: "  # which command wrote which rows, as JSON
TIMING_BEGIN = "<!-- timing:begin -->"
KINDS = ("sqlite", "postgresql")
TITLE = "fires, lag, API, scale, peer, SQS, webhook delivery"
DEFINED = "How each figure is defined"
MAX_ANOMALIES = 30

INTRO = """# Benchmarks

Measured on one machine, with the command shown in each section; rerun it to compare.
The service section (`make bench`, scripts/bench.py) drives the real processes: the
scheduler process (`flask --app wsgi scheduler run --no-migrate`), gunicorn, a fresh SQLite
file or PostgreSQL database per run, APScheduler 3.11 as the peer, moto as the SQS
endpoint, and a small HTTP receiver for webhooks. The timing section
(scripts/bench_timing.py) times the pure timing rules alone.
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
  A dispatcher is one scheduler process as shipped: on PostgreSQL it runs `FIRE_WORKERS`
  (2) firing loops side by side; a raw-SQL loop copy is one loop, one transaction at a time.
- **Raw-SQL loop** (the reference for fires): the same burst in a fresh database, fired by
  `scripts/bench/rawloop.py` instead of the dispatcher (one or two copies, as dispatchers):
  the database driver alone, one transaction per batch of up to 1,000 claimed jobs inserting
  their runs and queue messages and advancing the jobs, into the service's own schema; no
  SQLAlchemy, planning, counters or audit. Its fires/s use the same *all fired*; *ours ÷
  raw-SQL loop* divides the medians' runs pairwise (goal ≥ 0.80).
- **Windowed burst**: N one-shot queue jobs due at one instant T with `window: 60`, stored as
  the API stores them (each one's next run at T plus its own point of the window), 1
  dispatcher. Fires per second are counted from `runs.fired_at` in each whole second of
  [T, T + 60 s); *spread* = the largest distance of one second's count from their mean, in %
  of the mean (goal: flat within ±20%); *lag from the planned time* = `fired_at - due_at`.
- **Lag at 1,000 fires/s**: N jobs due 1 ms apart from T (T at least 1.3 s after the insert
  committed, the dispatcher idle); the same lag definition.
- **1,000 due at one instant**: one-shot queue jobs all due at T, one dispatcher; *all
  committed, after T* = when the last run was seen committed (polled). The raw-SQL loop
  fires the same 1,000 in a database of its own right after, for reference: what the
  database's own work per fire leaves of the 100 ms.
- **API**: gunicorn as the Procfile runs it (2 workers x 8 threads, gthread). Single creates:
  `POST /schedules` with the design's body (`minute` a day ahead) from 8 client threads, one
  `requests.Session` each, after 50 untimed; creates/s = count ÷ wall time; latency as the
  client sees it. Batch creates: `POST /schedules:batch` of 1,000 jobs, 2 client threads;
  jobs/s = jobs ÷ wall time.
- **Scale**: jobs loaded straight into the table (PostgreSQL: `generate_series`; SQLite:
  executemany in chunks with the dispatcher's own encoding), due a day or more ahead.
  List page: `GET /schedules?limit=100`, one client, walks of several pages following the
  `Link` cursor, each walk from a random point of the list. List page by label: then every
  job gets a `team` label (one of ten values, so a tenth of the jobs each; one job in ten
  thousand `rare`), and walks follow `label=team:team-3` or `label=team:rare` from the
  first page (to the last, for the rare one). Dispatcher RSS (psutil), sampled
  every 0.5 s while it fires a trickle of 100 interval jobs a second: *start* = the first
  sample after 2 s, *end* = the last. Flat means: end with the large table ≤ 1.10 x end with
  the baseline table, and growth during the run ≤ 5 MB. Idle: then the trickle is paused, so
  no job is due; the scheduler process and its delivery process's CPU (user + system) over
  the same span after the same 2 s, in % of one core. Web start-up: from starting gunicorn
  to its first answer of `/readyz` (looked at every step of the harness's wait).
- **Peer**: APScheduler 3.11 the way its documentation shows: a BackgroundScheduler with a
  SQLAlchemyJobStore (its own table in its own database of the same kind; SQLite with the
  service's WAL settings), one `date` job per occurrence added while the scheduler is paused
  (`misfire_grace_time=None` so none is dropped), the default thread pool; the job appends
  its fire time to a list. Timed from T like the burst; its "fire" is the function call (the
  job is then deleted from the store), weaker than ours (no durable run). Ratio = our burst
  fires/s (median, 1 dispatcher, same N) ÷ APScheduler's. Bursts above 10,000 run once
  (storing them takes APScheduler minutes); one that does not finish in time says so.
- **SQS**: moto in server mode on 127.0.0.1 (its own process). Bare loop: boto3
  `send_message_batch`, 10 messages a call, as many calls in flight as the SQS target can
  have (its thread pool, `MAX_THREADS` in app/targets/sqs.py: 32; rows written before
  7eb7c0b were measured with the target's limit of then, 8), the target's message shape;
  rate = N ÷ wall time. Dispatcher: N jobs with an `sqs`
  target due at T; rate = N ÷ (last `delivered_at` - T). Both spread the N messages over
  fresh queues of at most 200 each: moto counts a queue's messages on every send, so one deep
  queue would measure moto. Ratio = dispatcher ÷ bare; goal ≥ 0.90.
- **Brokers**: the real Redis, RabbitMQ and NATS (JetStream) on 127.0.0.1. Bare loop: the
  target's own client library (redis asyncio pipelines of 100 `XADD`; aio-pika publishes
  with publisher confirms, 50 awaited together; nats-py JetStream publishes, 50 together),
  8 batches in flight, the target's message shape; rate = N ÷ wall time. Dispatcher: N jobs
  with a `redis` stream, `amqp` (default exchange to a fresh queue) or `nats` target,
  stored as already fired at T (one run each due at T, as in the delivery rows); rate =
  N ÷ (last `delivered_at` - T), so it counts claiming, leasing and recording as well as
  the calls. Ratio = dispatcher ÷ bare; goal ≥ 0.90. *Jobs due at T (firing included)*:
  the same N jobs due at T instead, fired by the dispatcher too.
- **Start**: on a fresh database, from starting gunicorn (as `make run` does) to its first
  answer of `/readyz`; and `import wsgi` timed inside a fresh interpreter with gunicorn's
  `SERVER_SOFTWARE`, as a worker imports the app.
- **Delivery** (webhooks): the receiver is scripts/bench/receiver.py, a bare asyncio
  HTTP/1.1 server (standard library only, keep-alive) in its own process on 127.0.0.1,
  answering `200` with an empty body at once or after a fixed delay, and counting
  requests in flight and connections open. Each run starts fresh receivers; in each, the
  bare loop runs first, then the dispatcher, against the same receiver. Webhook jobs:
  `POST`, a JSON body of 207-212 bytes, timeout 30 s, one signing secret; the scheduler runs
  with `WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8`. Unless a row says *jobs due at T*, the N jobs
  are stored as already fired at T (advanced by the service's own job-state rules; one
  `pending` run each, due for delivery at T, with its origin, as firing writes it), so the
  rows measure the delivery loop and not the firing. *Bare loop*: aiohttp in the bench's
  own process, set up as the target sets it up (no connector limits, no cookies or proxies, the same
  timeouts), the same method, body and headers (User-Agent, Content-Type and the three
  Standard Webhooks headers, signed per request), as many requests in flight per receiver
  port as the dispatcher may have per origin; rate = N ÷ (last response read - first
  request started). *Dispatcher* rate = N ÷ (last `delivered_at` - the earliest call
  start), a call's start being `delivered_at - response_ms` of its run (`response_ms` is
  timed by the target around the call); *all delivered after T* = last `delivered_at` - T.
  *Fast receiver*: one port, 250 in flight (the default per origin); ratio goal ≥ 0.90.
  *Slow receivers*: four ports answering after 1 s, job i to port i mod 4; *calls in
  flight* = the most requests the receivers held unanswered at once. With the default 250
  per origin, four origins may have 1,000 calls in flight (the default total); the 4 x 100
  rows (`DELIVERY_ORIGIN_IN_FLIGHT=100`) allow at most 400 in flight, so at most 400
  deliveries/s. *Queue lag under a hanging webhook*: N
  built-in queue jobs due 1 ms apart from T + 1 s (as in the lag part), and 1,000 webhook
  runs due at T to one receiver answering after 10 s (one origin: 250 in flight, the rest
  held or waiting in the database); lag = `fired_at - scheduled_for` of the queue jobs'
  runs only, commit lag sampled as in the burst. Beside it, in the same run, the same
  series with no webhook jobs (a fresh database and dispatcher).
"""

UNIT_FORMAT = {
    "fires/s": "{:,.0f}",
    "creates/s": "{:,.0f}",
    "jobs/s": "{:,.0f}",
    "msgs/s": "{:,.0f}",
    "deliveries/s": "{:,.0f}",
    "calls": "{:,.0f}",
    "ms": "{:.1f}",
    "bytes": "{:,.0f}",
    "µs": "{:,.0f}",
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


@dataclass
class Source:
    """One write's rows: the command that measured them (or, for rows written before
    sources were recorded, the text that section gave about itself)."""

    rows: list[str]  # "part/db" groups of the table this source still holds
    command: str = ""
    date: str = ""
    runs: int = 0
    quick: bool = False
    machine: str = ""
    anomalies: list[str] = field(default_factory=list)
    text: str = ""  # an earlier section's own account of its rows

    def describe(self, part_order: list[str]) -> str:
        what = _groups_text(self.rows, part_order)
        if self.text:
            lines = [line for line in self.text.strip().splitlines() if line.strip()]
            return f"- {what}, from an earlier write, which said:\n" + "\n".join(
                f"  {line}" for line in lines
            )
        mode = "; **quick mode: small sizes, smoke check only**" * self.quick
        return (
            f"- {what}: `{self.command}` on {self.date} UTC, {self.runs} run(s) per figure"
            f"{mode}. Machine: {self.machine}."
        )


def _groups_text(groups: list[str], part_order: list[str]) -> str:
    """'**burst, lag** on sqlite and postgresql; **delivery** on sqlite'."""
    by_part: dict[str, list[str]] = {}
    for group in groups:
        part, db = group.split("/", 1)
        by_part.setdefault(part, []).append(db)
    by_dbs: dict[tuple[str, ...], list[str]] = {}
    for part in sorted(by_part, key=lambda p: _rank(p, part_order)):
        dbs = tuple(sorted(by_part[part], key=lambda d: _rank(d, list(KINDS))))
        by_dbs.setdefault(dbs, []).append(part)
    return "; ".join(f"**{', '.join(parts)}** on {' and '.join(dbs)}"
                     for dbs, parts in by_dbs.items())  # fmt: skip


def _rank(name: str, order: list[str]) -> int:
    return order.index(name) if name in order else len(order)


def _body_rows(markdown_table: str) -> list[str]:
    """The table's data rows (not its header), as they are."""
    lines = [line for line in markdown_table.splitlines() if line.startswith("| ")]
    return [line for line in lines if not line.startswith(("| part |", "| --- |"))]


def _group(row: str) -> str:
    cells = row.split("|")
    return f"{cells[1].strip()}/{cells[2].strip()}"


def _dump_sources(sources: list[Source]) -> str:
    # "--" may not appear in an HTML comment: escaped as JSON string escapes, it cannot.
    text = json.dumps([dataclasses.asdict(s) for s in sources], ensure_ascii=False)
    return f"{SOURCES}{text.replace('--', '-' + chr(92) + 'u002d')} -->"


def _load_sources(old: str) -> list[Source] | None:
    for line in old.splitlines():
        if line.startswith(SOURCES):
            return [Source(**item) for item in json.loads(line[len(SOURCES) : -len(" -->")])]
    return None


@dataclass
class OldSection:
    rows: list[str]
    sources: list[Source]
    notes: str


def _old_section(old: str) -> OldSection | None:
    """The recorded section: its table rows, where they came from, and the notes people
    wrote under it (kept by a partial write)."""
    if BEGIN not in old or END not in old:
        return None
    body = old.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = _body_rows(body)
    if NOTES_BEGIN in body and NOTES_END in body:
        notes = body.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0]
    else:  # written before notes had markers: what follows the definitions list
        lines, notes_at = body.splitlines(), None
        start = next((i for i, line in enumerate(lines) if line.startswith(DEFINED)), None)
        if start is not None:
            for i in range(start + 1, len(lines) - 1):
                if (
                    not lines[i].strip()
                    and lines[i + 1].strip()
                    and not lines[i + 1].startswith(("- ", "  "))
                ):
                    notes_at = i + 1
                    break
        notes = "\n".join(lines[notes_at:]) if notes_at is not None else ""
    sources = _load_sources(body)
    if sources is None:  # before sources were recorded: the section's own preamble says
        head = body.split("\n| part |", 1)[0].splitlines()
        text = "\n".join(line for line in head if line.strip() and not line.startswith("## "))
        sources = [Source(rows=list(dict.fromkeys(_group(r) for r in rows)), text=text)]
    return OldSection(rows, sources, notes.strip("\n"))


def section(
    results: Results,
    command: str,
    kinds: list[str],
    runs: int,
    quick: bool,
    parts: list[str],
    part_order: list[str],
    old: OldSection | None = None,
) -> str:
    """The service section. Without `old`, this run's figures alone; with it, this run's
    rows (every part/db it ran) replace theirs and the other rows, their sources and the
    notes written under the table are kept."""
    unique = list(dict.fromkeys(results.anomalies))
    anomalies = unique[:MAX_ANOMALIES]
    if len(unique) > MAX_ANOMALIES:
        anomalies.append(f"... and {len(unique) - MAX_ANOMALIES} more (see the run's output)")
    ran = [f"{part}/{kind}" for kind in kinds for part in parts]
    this = Source(rows=ran, command=command, date=f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
                  runs=runs, quick=quick, machine=machine(kinds), anomalies=anomalies)  # fmt: skip
    new_rows = _body_rows(table(results))
    rows: dict[str, list[str]] = {}
    sources, notes = [this], ""
    if old is not None:
        for row in old.rows:
            if _group(row) not in ran:
                rows.setdefault(_group(row), []).append(row)
        for source in old.sources:
            source.rows = [g for g in source.rows if g not in ran]
        sources = [s for s in old.sources if s.rows] + [this]
        notes = old.notes
    for row in new_rows:
        rows.setdefault(_group(row), []).append(row)
    for group in ran:  # a part that failed before measuring anything still has a source
        rows.setdefault(group, [])

    def order(group: str) -> tuple[int, int]:
        part, db = group.split("/", 1)
        return _rank(db, list(KINDS)), _rank(part, part_order)

    this.rows = [g for g in ran if rows[g]] or ran
    header = (
        "| part | db | figure | median | min | max | unit | runs | goal | |\n"
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |"
    )
    saw = []
    for source in sources:
        if source.text:
            continue  # an earlier write's observations are in its notes
        label = f"`{source.command}`"
        items = source.anomalies or ["none"]
        saw += [f"- {label}:", *[f"  - {line.replace('`', chr(39))}" for line in items]]
    return "\n".join(
        [
            BEGIN,
            f"## The service: {TITLE}",
            "",
            "Reproduce: `.venv/bin/python scripts/bench.py --write` (`make bench`; on a quiet "
            "machine) measures every part and replaces this section. With `--only` (or one "
            "`--db`) it measures some, and `--write` replaces only their rows, keeping the "
            "others and the notes under the table. Service settings: the defaults (dispatch "
            "batch 1,000, pass interval 1 s, delivery in flight 1,000 in all and 100 per "
            "origin), database on the same disk.",
            "",
            "Where the rows come from:",
            "",
            *[source.describe(part_order) for source in sources],
            _dump_sources(sources),
            "",
            header,
            *[row for group in sorted(rows, key=order) for row in rows[group]],
            "",
            DEFINITIONS,
            NOTES_BEGIN,
            notes,
            NOTES_END,
            "",
            "What the bench saw in the logs and checks, by command:",
            "",
            *saw,
            END,
        ]
    )


def write(
    results: Results,
    command: str,
    kinds: list[str],
    runs: int,
    quick: bool,
    parts: list[str],
    part_order: list[str],
) -> None:
    """Put the intro on top and write the service section (new: above the timing section);
    keep every other section as it is. A run of every part on both databases replaces the
    section; a partial run merges into it (see section())."""
    old = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else ""
    complete = set(parts) == set(part_order) and set(kinds) == set(KINDS)
    text = section(results, command, kinds, runs, quick, parts, part_order,
                   None if complete else _old_section(old))  # fmt: skip
    if BEGIN in old and END in old:
        tail = old.split(BEGIN, 1)[1].split(END, 1)[1]
    elif TIMING_BEGIN in old:
        tail = old[old.index(TIMING_BEGIN) :]
    else:  # no section yet: keep what is there, less its title
        tail = old.removeprefix("# Benchmarks")
    pieces = [INTRO, text, tail.strip("\n")]
    BENCHMARKS.write_text("\n\n".join(p.strip("\n") for p in pieces if p.strip()) + "\n")


PLANS = ROOT / "docs" / "QUERY-PLANS.md"
PLANS_HEAD = """# Query plans at scale

The plans of the queries that must stay on their indexes however many jobs are stored:
the firing loop's due-claim and the jobs list (first page, a deep cursor, a status filter,
a label filter), each the SQL the service sends, under `EXPLAIN` (SQLite: `EXPLAIN QUERY
PLAN`) on the bench's database once the scale part has stored its jobs. Written by
`scripts/bench.py` with `--write` (the scale part); figures in BENCHMARKS.md.
"""


def write_plans(plans: dict[str, str], command: str, kinds: list[str]) -> None:
    """Replace each database's section of QUERY-PLANS.md, keeping the others'."""
    old = PLANS.read_text() if PLANS.exists() else ""
    sections = {}
    for kind in ("sqlite", "postgresql"):
        begin, end = f"<!-- plans:{kind} -->", f"<!-- /plans:{kind} -->"
        if kind in plans:
            stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`; {machine(kinds)}"
            sections[kind] = f"{begin}\n{plans[kind]}\n_{stamp}_\n{end}"
        elif begin in old and end in old:
            sections[kind] = begin + old.split(begin, 1)[1].split(end, 1)[0] + end
    PLANS.write_text(PLANS_HEAD + "".join(f"\n{text}\n" for text in sections.values()))
