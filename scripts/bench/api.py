"""Parts 3 and 4: the JSON API through gunicorn, and the service with a million jobs stored
(list pages, and the dispatcher's memory while it works)."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from sqlalchemy import Engine, func, insert, select, text

from app.ids import new_id
from app.scheduler.bulk import SqliteBulk
from bench.bareapp import rows as bare_rows
from bench.common import (
    QUEUE_TARGET,
    Context,
    Database,
    Databases,
    Goal,
    Proc,
    count_rows,
    family_cpu_seconds,
    insert_due,
    job_row,
    jobs,
    percentile,
    processes,
    retrying,
    runs,
    start_dispatcher,
    start_gunicorn,
    stop,
)
from bench.plans import query_plans
from tests.support.processes import BIN, ROOT, process_env

BARE_APP = "bare app (Flask, one row, SQLAlchemy Core)"  # its rows' name
WRK_CONNECTIONS = 8
WRK_WARM_UP = 3  # seconds of creates before each measured run
BATCH_THREADS = 2
BATCH_JOBS = 1000
LOAD_CHUNK = 100_000
TRICKLE_JOBS = 100  # interval jobs of 1 s: 100 fires a second while the RSS is sampled
RSS_SETTLE = 2.0  # seconds after start-up before the "start" RSS sample
STORED_BURST = 10_000  # one-shot jobs due at once, fired among those stored
PAUSED_SHARE = 100  # one stored job in this many is paused: what a status filter finds


# -- part 3: creates -----------------------------------------------------------------------


def design_body() -> dict[str, Any]:
    """The design's example create, due a day from now (so nothing fires meanwhile)."""
    minute = int(time.time() // 60) + 24 * 60
    return {"payload": "cool stuff", "minute": minute, "recurring": "none"}


def post_many(
    url: str, body: dict[str, Any], count: int, threads: int
) -> tuple[list[float], list[str], float]:
    """POST `body` `count` times from `threads` clients (a Session each).
    Returns the latencies in ms (sorted), the failures, and the wall time in seconds."""
    tickets = itertools.count()  # next() on it is atomic under the GIL: a shared work counter
    latencies: list[float] = []
    failures: list[str] = []
    payload = json.dumps(body)
    headers = {"Content-Type": "application/json"}

    def client() -> None:
        with requests.Session() as session:
            while next(tickets) < count:
                began = time.perf_counter()
                try:
                    answer = session.post(url, data=payload, headers=headers, timeout=60)
                    status = answer.status_code
                except requests.RequestException as exc:
                    failures.append(repr(exc)[:200])
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                if status != 201:
                    failures.append(f"{status}: {answer.text[:200]}")

    workers = [threading.Thread(target=client) for _ in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(latencies), failures, time.perf_counter() - began


def creates(ctx: Context, databases: Databases, kind: str) -> None:
    """Single creates with wrk through gunicorn as `make run` starts it, beside the bare app
    (scripts/bench/bareapp.py) under the same settings, each on a fresh database; then
    batch creates."""
    for run in range(ctx.runs):
        print(f"  api {kind}: single creates for {ctx.sizes.api_seconds:.0f} s each, run {run + 1}")
        with databases.fresh(kind) as database, processes(ctx) as procs:
            bare_rows.create(database.engine())
            web, base = start_gunicorn(ctx, database, "bench.bareapp:make_app()", "bare-app")
            procs.append(web)
            bare = _singles(ctx, kind, base, web, BARE_APP, goals=False)
            stop(ctx, web)
            procs.remove(web)
            web, base = start_gunicorn(ctx, database)
            procs.append(web)
            ours = _singles(ctx, kind, base, web, "ours", goals=True)
            ratio = ours / bare if ours and bare else None
            ctx.results.add("api", kind, "single creates: ours ÷ bare app", ratio, "x",
                            Goal(">=", 0.70))  # fmt: skip
            _batches(ctx, kind, base)


def _singles(
    ctx: Context, kind: str, base: str, web: Proc, who: str, *, goals: bool
) -> float | None:
    """wrk's single creates to `base` (after a warm-up); their rate. `goals`: the rows
    carry the issue's goals (ours, not the reference)."""
    url = f"{base}/schedules"
    script = ctx.workdir / "create.lua"
    script.write_text(WRK_SCRIPT.replace("BODY", json.dumps(design_body())))
    wrk(url, script, WRK_WARM_UP)
    server = family_cpu_seconds(web.popen.pid)
    result = wrk(url, script, ctx.sizes.api_seconds)
    server = family_cpu_seconds(web.popen.pid) - server
    add = ctx.results.add
    rate = result.rate if result.failures == 0 else None
    note = f"{result.failures} answers not 201, or socket errors" if result.failures else ""
    add("api", kind, f"single creates/s, {who}", rate, "creates/s",
        Goal(">=", 1000) if goals else None, note)  # fmt: skip
    add("api", kind, f"single create p50, {who}", result.p50, "ms")
    add("api", kind, f"single create p99, {who}", result.p99, "ms",
        Goal("<=", 50) if goals else None)  # fmt: skip
    per_create = 1000 * server / result.requests if result.requests else None
    add("api", kind, f"web process CPU per single create, {who}", per_create, "ms")
    add("api", kind, f"wrk's own CPU during single creates, {who}", result.cpu, "%")
    return rate


@dataclass
class WrkResult:
    rate: float  # requests/s
    requests: int
    failures: int  # answers other than 2xx or 3xx, and socket errors
    p50: float  # ms
    p99: float  # ms
    cpu: float  # % of a core wrk itself used


# One request per call: POST the body (a Lua long string: the JSON holds no "]]").
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"
"""
# "Non-2xx or 3xx responses: 5", "Socket errors: connect 0, read 0, write 0, timeout 0"
WRK_FAILURES = re.compile(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)")
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, script: Path, seconds: float) -> WrkResult:
    """wrk (Debian's, in C: light beside the server) at WRK_CONNECTIONS connections."""
    args = ["wrk", "--threads", "1", "--connections", str(WRK_CONNECTIONS),
            "--duration", f"{seconds:.0f}s", "--timeout", "10s", "--latency",
            "--script", str(script), url]  # fmt: skip
    began = time.monotonic()
    with tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # its own CPU time, as it exits
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - began
        output.seek(0)
        out = output.read()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out[-500:]}")
    return WrkResult(
        rate=float(_wrk_field(r"Requests/sec:\s+([\d.]+)", out)),
        requests=int(_wrk_field(r"(\d+) requests in", out)),
        failures=sum(int(n) for n in WRK_FAILURES.findall(out)),
        p50=_wrk_ms(_wrk_field(r"\s50%\s+([\d.]+\w+)", out)),
        p99=_wrk_ms(_wrk_field(r"\s99%\s+([\d.]+\w+)", out)),
        cpu=100 * (usage.ru_utime + usage.ru_stime) / wall,
    )


def _wrk_field(pattern: str, out: str) -> str:
    found = re.search(pattern, out)
    if found is None:
        raise RuntimeError(f"wrk's output lacks {pattern!r}: {out[-500:]}")
    return found.group(1)


def _wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * WRK_UNITS[unit]


def _batches(ctx: Context, kind: str, base: str) -> None:
    url, count = f"{base}/schedules:batch", ctx.sizes.api_batches
    body = {"jobs": [design_body() for _ in range(BATCH_JOBS)]}
    post_many(url, body, 1, 1)
    latencies, failures, wall = post_many(url, body, count, BATCH_THREADS)
    note = f"{len(failures)} failed, e.g. {failures[0]}" if failures else ""
    ctx.results.add("api", kind, "batch creates (jobs/s)", count * BATCH_JOBS / wall, "jobs/s",
                    note=note)  # fmt: skip
    ctx.results.add("api", kind, "batch of 1,000 p50", percentile(latencies, 50), "ms")


# -- part 4: scale -------------------------------------------------------------------------


class Loader:
    """Stores jobs fast, straight into the table, each due a day or more ahead.

    created_at is `base` + i ms, so a list page can start at any i without a look-up.
    """

    def __init__(self, database: Database, engine: Engine) -> None:
        self.database, self.engine = database, engine
        now = datetime.now(UTC).replace(microsecond=0)
        self.base = now - timedelta(days=1)
        self.ahead = now + timedelta(days=1)
        self.stored = 0

    def created_at(self, index: int) -> datetime:
        return self.base + timedelta(milliseconds=index)

    def load_to(self, total: int) -> float:
        """Store jobs until `total` are; return the seconds it took."""
        began = time.monotonic()
        while self.stored < total:
            stop_at = min(total, self.stored + LOAD_CHUNK)
            if self.database.kind == "postgresql":
                self._postgresql(self.stored, stop_at)
            else:
                self._sqlite(self.stored, stop_at)
            self.stored = stop_at
            print(f"    {stop_at:,} jobs stored, {time.monotonic() - began:.0f} s", flush=True)
        if self.database.kind == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE jobs"))
        return time.monotonic() - began

    def _postgresql(self, start: int, stop_at: int) -> None:
        sql = text(
            "INSERT INTO jobs (id, payload, recurring, first_at, timezone, target, target_type,"
            " misfire, status, next_run_at, run_count, created_at, updated_at) "
            "SELECT gen_random_uuid(), 'scale ' || g, 'none', t.due, 'UTC', CAST(:target AS json),"
            " 'queue', 'coalesce', 'active', t.due, 0, t.created, t.created "
            "FROM generate_series(:start, :stop - 1) AS g, LATERAL (SELECT"
            " CAST(:ahead AS timestamptz) + g * interval '100 milliseconds' AS due,"
            " CAST(:base AS timestamptz) + g * interval '1 millisecond' AS created) AS t"
        )
        params = {"target": json.dumps(QUEUE_TARGET), "start": start, "stop": stop_at}
        with self.engine.begin() as conn:
            conn.execute(sql, params | {"ahead": self.ahead, "base": self.base})

    def _sqlite(self, start: int, stop_at: int) -> None:
        step, target = timedelta(milliseconds=100), json.dumps(QUEUE_TARGET)
        rows = []
        for i in range(start, stop_at):
            due, created = self.ahead + i * step, self.created_at(i)
            rows.append({
                "id": new_id(), "payload": f"scale {i}", "recurring": "none", "first_at": due,
                "timezone": "UTC", "target": target, "target_type": "queue",
                "misfire": "coalesce", "status": "active", "next_run_at": due, "run_count": 0,
                "created_at": created, "updated_at": created,
            })  # fmt: skip
        with self.engine.begin() as conn:
            SqliteBulk().insert(conn, jobs, rows)


def add_trickle(engine: Engine) -> None:
    """Interval jobs that keep the dispatcher busy: TRICKLE_JOBS fires a second."""
    now = datetime.now(UTC).replace(microsecond=0)
    first = now + timedelta(seconds=2)
    rows = [
        {
            "id": new_id(), "payload": f"trickle {i}", "recurring": "interval",
            "interval": 1, "first_at": first, "timezone": "UTC", "target": QUEUE_TARGET,
            "target_type": "queue", "misfire": "coalesce", "status": "active",
            "next_run_at": first, "run_count": 0, "created_at": now, "updated_at": now,
        }
        for i in range(TRICKLE_JOBS)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(jobs), rows)


def scale(ctx: Context, databases: Databases, kind: str) -> None:
    sizes = ctx.sizes
    with databases.fresh(kind) as database:
        engine = database.engine()
        loader = Loader(database, engine)
        print(f"  scale {kind}: loading {sizes.scale_baseline:,} jobs")
        loader.load_to(sizes.scale_baseline)
        add_trickle(engine)
        small_bursts = [_stored_burst(ctx, database, engine) for _ in range(ctx.runs)]
        baseline = [_rss(ctx, database, engine, run) for run in range(ctx.runs)]
        print(f"  scale {kind}: loading up to {sizes.scale_jobs:,} jobs")
        seconds = loader.load_to(sizes.scale_jobs)
        big = f"{sizes.scale_jobs:,} stored"
        loaded = sizes.scale_jobs - sizes.scale_baseline
        ctx.results.add("scale", kind, f"load {loaded:,} jobs", seconds, "s")
        _disk_per_job(ctx, database, engine, big)
        big_bursts = [_stored_burst(ctx, database, engine) for _ in range(ctx.runs)]
        _burst_figures(ctx, kind, small_bursts, big_bursts)
        _list_pages(ctx, database, loader, big)
        _pause_some(engine, kind, loader.stored // PAUSED_SHARE)
        _label_jobs(engine, kind)
        _filtered_pages(ctx, database, big)
        deep = _cursor(loader.created_at(loader.stored * 9 // 10), uuid.UUID(int=0))
        ctx.plans[kind] = query_plans(database, deep, loader.stored)
        large = [_rss(ctx, database, engine, run) for run in range(ctx.runs)]
        _rss_figures(ctx, kind, sizes, baseline, large)
        _idle(ctx, database, engine, big)


def _idle(ctx: Context, database: Database, engine: Engine, label: str) -> None:
    """With no job due (the trickle paused): the scheduler process's CPU, and how soon the
    web app answers after it is started."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET status = 'paused', next_run_at = NULL WHERE payload LIKE :p"),
            {"p": "trickle %"},
        )
    kind, add = database.kind, ctx.results.add
    for run in range(ctx.runs):
        print(f"  scale {kind}: idle scheduler and web start-up, {label}, run {run + 1}")
        proc = start_dispatcher(ctx, database, f"idle-{kind}")
        try:
            time.sleep(RSS_SETTLE)  # start-up is not idling
            before = family_cpu_seconds(proc.popen.pid)
            time.sleep(ctx.sizes.rss_seconds)
            used = family_cpu_seconds(proc.popen.pid) - before
            idle = 100 * used / ctx.sizes.rss_seconds
        finally:
            stop(ctx, proc)
        add("scale", kind, f"scheduler process CPU while idle (with its delivery process), "
            f"{label}, none due", idle, "% of a core", Goal("<=", 1.0))  # fmt: skip
        add("scale", kind, f"web app: first answer after its start, {label}",
            first_answer(ctx, database), "s", START_GOAL)  # fmt: skip


START_GOAL = Goal("<=", 2.0)


def first_answer(ctx: Context, database: Database) -> float:
    """Seconds from starting gunicorn (as `make run` does) to its first answer of /readyz."""
    began = time.monotonic()
    web, _ = start_gunicorn(ctx, database)
    answered = time.monotonic() - began
    stop(ctx, web)
    return answered


def start(ctx: Context, databases: Databases, kind: str) -> None:
    """The start-up part: how soon the web app answers once started, and what importing it
    costs a gunicorn worker (the bulk of it), on a fresh database."""
    add = ctx.results.add
    with databases.fresh(kind) as database:
        for run in range(ctx.runs):
            print(f"  start {kind}: web app start-up, run {run + 1}")
            add("start", kind, "web app: first answer after its start", first_answer(ctx, database),
                "s", START_GOAL)  # fmt: skip
            add("start", kind, "a gunicorn worker's import of the app", _import_seconds(database),
                "s")  # fmt: skip


def _import_seconds(database: Database) -> float:
    """`import wsgi` timed inside a fresh interpreter, as a gunicorn worker imports the app
    (gunicorn says so in SERVER_SOFTWARE)."""
    env = process_env(database.url, SERVER_SOFTWARE="gunicorn/bench")
    code = "import time; t = time.perf_counter(); import wsgi; print(time.perf_counter() - t)"
    result = subprocess.run(
        [str(BIN / "python"), "-c", code], cwd=ROOT, env=env, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def _list_pages(ctx: Context, database: Database, loader: Loader, label: str) -> None:
    kind, rng = database.kind, random.Random(4)
    with processes(ctx) as procs:
        web, base = start_gunicorn(ctx, database)
        procs.append(web)
        with requests.Session() as session:
            for _ in range(5):  # warm both workers' connections and caches
                session.get(f"{base}/schedules?limit=100", timeout=30)
            for run in range(ctx.runs):
                print(f"  scale {kind}: list pages, run {run + 1}")
                latencies: list[float] = []
                for walk in range(ctx.sizes.list_walks):
                    start = None if walk == 0 else rng.randrange(loader.stored - 2_000)
                    latencies += _walk(session, base, loader, start, ctx.sizes.list_pages)
                latencies.sort()
                add = ctx.results.add
                add("scale", kind, f"list page p50, {label}", percentile(latencies, 50), "ms")
                add("scale", kind, f"list page p99, {label}", percentile(latencies, 99), "ms",
                    Goal("<=", 50))  # fmt: skip
                add("scale", kind, f"list page max, {label}", latencies[-1], "ms")


def _walk(
    session: requests.Session,
    base: str,
    loader: Loader | None,
    start: int | None,
    pages: int,
    query: str = "",
) -> list[float]:
    """Follow the Link cursor for `pages` pages (or to the last) from job `start` (None:
    the first page)."""
    url = f"{base}/schedules?limit=100{query}"
    if start is not None and loader is not None:  # a cursor just before job `start`
        url += "&cursor=" + _cursor(loader.created_at(start), uuid.UUID(int=0))
    latencies = []
    for _ in range(pages):
        began = time.perf_counter()
        answer = session.get(url, timeout=30)
        latencies.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200 or not answer.json():
            raise RuntimeError(f"list page: {answer.status_code} {answer.text[:300]}")
        if "next" not in answer.links:
            break
        url = answer.links["next"]["url"]
    return latencies


# Every stored job gets a team: one of ten (a tenth of the jobs each), and one job in ten
# thousand (ids are random, so these are spread) "rare": a hundred in a million.
LABEL_SQL = (
    "INSERT INTO job_labels (job_id, key, value) SELECT id, 'team', 'team-' || ({draw} % 10)"
    " FROM jobs"
)
RARE_SQL = (
    "UPDATE job_labels SET value = 'rare' WHERE job_id IN"
    " (SELECT job_id FROM job_labels ORDER BY job_id LIMIT :rare)"
)
# The filtered list pages walked: by a label a tenth of the jobs carry, by one a hundred do,
# and by status (the paused jobs, one in PAUSED_SHARE).
FILTERED_PAGES = (
    ("label: a tenth", "&label=team:team-3"),
    ("label: a hundred", "&label=team:rare"),
    (f"status: paused, one in {PAUSED_SHARE}", "&status=paused"),
)
DRAWS = {"sqlite": "abs(random())", "postgresql": "floor(random() * 1e9)::bigint"}


def _label_jobs(engine: Engine, kind: str) -> None:
    began = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text(LABEL_SQL.format(draw=DRAWS[kind])))
        stored = int(conn.execute(text("SELECT count(*) FROM job_labels")).scalar_one())
        conn.execute(text(RARE_SQL), {"rare": max(1, stored // 10_000)})
    if kind == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE job_labels"))
    print(f"  scale {kind}: labelled every job, {time.monotonic() - began:.0f} s")


def _filtered_pages(ctx: Context, database: Database, label: str) -> None:
    """List pages filtered as FILTERED_PAGES says, each walked from the first page."""
    kind = database.kind
    with processes(ctx) as procs:
        web, base = start_gunicorn(ctx, database)
        procs.append(web)
        with requests.Session() as session:
            for name, query in FILTERED_PAGES:
                for _ in range(3):  # warm both workers
                    session.get(f"{base}/schedules?limit=100{query}", timeout=30)
                for run in range(ctx.runs):
                    print(f"  scale {kind}: filtered pages ({name}), run {run + 1}")
                    latencies: list[float] = []
                    for _ in range(ctx.sizes.list_walks):
                        latencies += _walk(session, base, None, None, ctx.sizes.list_pages, query)
                    latencies.sort()
                    what = f"list page filtered ({name}) p99, {label}"
                    ctx.results.add("scale", kind, what, percentile(latencies, 99), "ms",
                                    Goal("<=", 50))  # fmt: skip


def _stored_burst(ctx: Context, database: Database, engine: Engine) -> float | None:
    """Fires/s of STORED_BURST one-shot jobs due at one instant T among the jobs stored (the
    trickle firing beside them): T to the first look that sees them all fired, committed."""
    count = STORED_BURST

    def attempt() -> float | None:
        with processes(ctx) as procs:
            procs.append(start_dispatcher(ctx, database, f"scale-burst-{database.kind}"))
            now = datetime.now(UTC)

            def rows(due: datetime) -> list[dict[str, Any]]:
                return [job_row(f"stored burst {i}", due, now) for i in range(count)]

            due, _ = insert_due(ctx, database, engine, count, rows)
            # Due at T to the microsecond: no stored or trickle job is (an index lookup).
            pending = select(jobs.c.id).where(jobs.c.next_run_at == due).limit(1)
            deadline = due.timestamp() + 30 + count / 1000
            with engine.connect() as conn:
                while time.time() < deadline:
                    seen = time.time()
                    if conn.execute(pending).first() is None:
                        return count / (seen - due.timestamp())
                    conn.rollback()  # no old snapshot held between looks
                    time.sleep(0.01)
        ctx.results.anomaly(f"scale {database.kind}: a stored burst did not finish")
        return None

    print(f"  scale {database.kind}: {count:,} jobs due at once among those stored")
    return retrying(attempt)


def _burst_figures(
    ctx: Context, kind: str, small: list[float | None], big: list[float | None]
) -> None:
    add, sizes = ctx.results.add, ctx.sizes
    few, many = f"{sizes.scale_baseline:,} stored", f"{sizes.scale_jobs:,} stored"
    for before, after in zip(small, big, strict=True):
        label = f"{STORED_BURST:,} due at once"
        add("scale", kind, f"fires/s, {label}, {few}", before, "fires/s")
        add("scale", kind, f"fires/s, {label}, {many}", after, "fires/s")
        ratio = after / before if after and before else None
        add("scale", kind, f"fires/s {many} ÷ {few}, {label}", ratio, "x", Goal(">=", 0.90))


def _disk_per_job(ctx: Context, database: Database, engine: Engine, label: str) -> None:
    """The database's size on disk (SQLite: its files; PostgreSQL: pg_database_size) over
    the jobs stored, with their indexes."""
    with engine.connect() as conn:
        stored = int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())
        if database.kind == "postgresql":
            size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar())
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = Path(str(engine.url.database))
            size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    ctx.results.add("scale", database.kind, f"disk per job, {label}", size / stored, "bytes")


def _pause_some(engine: Engine, kind: str, count: int) -> None:
    """Pause `count` of the stored jobs (random ones: ids are random), as a status filter's
    few."""
    began = time.monotonic()
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'paused', next_run_at = NULL WHERE id IN"
                " (SELECT id FROM jobs WHERE payload LIKE 'scale %' ORDER BY id LIMIT :n)"
            ),
            {"n": count},
        )
    if kind == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE jobs"))
    print(f"  scale {kind}: paused {count:,} jobs, {time.monotonic() - began:.0f} s")


def _cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    # app.jobs and app.api import each other; importing the package first loads them in order.
    import app.api  # noqa: F401
    from app.cursors import encode_cursor

    return encode_cursor(created_at, job_id)


def _rss(ctx: Context, database: Database, engine: Engine, run: int) -> tuple[float, float]:
    """The dispatcher's RSS in MB after RSS_SETTLE s and after rss_seconds more, while the
    trickle fires."""
    fired = count_rows(engine, runs)
    proc = start_dispatcher(ctx, database, f"rss-{database.kind}")
    try:
        process = psutil.Process(proc.popen.pid)
        time.sleep(RSS_SETTLE)
        start = process.memory_info().rss / 2**20
        end_at = time.monotonic() + ctx.sizes.rss_seconds
        while time.monotonic() < end_at:
            time.sleep(0.5)
            end = process.memory_info().rss / 2**20
    finally:
        stop(ctx, proc)
    fired = count_rows(engine, runs) - fired
    expected = TRICKLE_JOBS * ctx.sizes.rss_seconds
    if fired < expected / 2:
        ctx.results.anomaly(f"rss run {run + 1}: only {fired} trickle fires, expected {expected}")
    return start, end


def _rss_figures(
    ctx: Context,
    kind: str,
    sizes: Any,
    baseline: list[tuple[float, float]],
    large: list[tuple[float, float]],
) -> None:
    add, after = ctx.results.add, f"after {sizes.rss_seconds:.0f} s"
    small, big = f"{sizes.scale_baseline:,} stored", f"{sizes.scale_jobs:,} stored"
    for (base_start, base_end), (start, end) in zip(baseline, large, strict=True):
        add("scale", kind, f"dispatcher RSS at start, {small}", base_start, "MB")
        add("scale", kind, f"dispatcher RSS {after}, {small}", base_end, "MB")
        add("scale", kind, f"dispatcher RSS at start, {big}", start, "MB")
        add("scale", kind, f"dispatcher RSS {after}, {big}", end, "MB")
        add("scale", kind, f"RSS growth {after}, {big}", end - start, "MB", Goal("<=", 5))
        add("scale", kind, f"RSS {big} ÷ RSS {small}", end / base_end, "x", Goal("<=", 1.10))
