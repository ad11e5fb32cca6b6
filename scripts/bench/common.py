"""What every part shares: results, fresh databases, the service's processes, bursts of jobs
inserted straight into `jobs`, and reading the runs back."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg
import requests
from sqlalchemy import Engine, create_engine, func, insert, select, text

from app.ids import new_id
from app.models import Job, QueueMessage, Run
from tests.support.processes import BIN, ROOT, Proc, free_port, process_env, wait_until

T = TypeVar("T")
jobs = Job.__table__
runs = Run.__table__
messages = QueueMessage.__table__

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
QUEUE_TARGET = {"type": "queue", "name": "default"}
# A job inserted for a burst must be visible this long before it is due: an idle dispatcher
# looks for its next job once a pass (DISPATCH_INTERVAL, 1 s by default), then sleeps until it.
MIN_LEAD = 1.3
POLL = 0.01  # seconds between looks at "is everything fired?"
# Log lines worth a human's eye: the report lists them.
SUSPICIOUS = ("Traceback", "ERROR", "CRITICAL", "WARNING", "locked", "deadlock")


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    op: str  # ">=" or "<="
    value: float

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.op == ">=" else measured <= self.value


@dataclass
class Figure:
    part: str
    db: str
    name: str
    unit: str
    goal: Goal | None
    values: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return sorted(self.values)[(len(self.values) - 1) // 2] if self.values else None

    def status(self) -> str:
        if self.goal is None:
            return ""
        # A run that did not finish fails the goal whatever the others did.
        if self.median is None or any("did not finish" in n for n in self.notes):
            return "not met"
        return "met" if self.goal.met(self.median) else "not met"


class Results:
    """Figures in the order they were first measured; one value per run."""

    def __init__(self) -> None:
        self.figures: dict[tuple[str, str, str], Figure] = {}
        self.anomalies: list[str] = []

    def add(
        self,
        part: str,
        db: str,
        name: str,
        value: float | None,
        unit: str,
        goal: Goal | None = None,
        note: str = "",
    ) -> None:
        key = (part, db, name)
        figure = self.figures.setdefault(key, Figure(part, db, name, unit, goal))
        if value is not None and math.isfinite(value):
            figure.values.append(value)
        if note:
            figure.notes.append(note)

    def anomaly(self, text: str) -> None:
        print(f"  ! {text}")
        self.anomalies.append(text)


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def family_cpu_seconds(pid: int) -> float:
    """CPU seconds a process and its children (alive now) have used."""
    process = psutil.Process(pid)
    return sum(cpu_seconds(p.pid) for p in [process, *process.children(recursive=True)])


def waiting_for_core_seconds(pid: int) -> float:
    """Seconds a process's threads (those alive now) have spent ready to run but waiting
    for a core (Linux schedstat): how much a busy machine held it back."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return total / 1e9


def server_cpu_seconds() -> float:
    """CPU seconds the PostgreSQL server's processes have used (those alive now)."""
    return named_cpu_seconds("postgres")


def named_cpu_seconds(name: str) -> float:
    """CPU seconds the processes of this name have used (those alive now)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.info["name"] == name and times is not None:
            total += times.user + times.system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy (not idle or waiting for the disk)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# -- the run's context ---------------------------------------------------------------------


@dataclass
class Sizes:
    bursts: list[int]
    lag_jobs: int
    api_seconds: float  # each wrk run of single creates (ours, then the bare app)
    api_batches: int
    scale_jobs: int
    scale_baseline: int
    rss_seconds: float
    list_walks: int
    list_pages: int
    peer_sizes: list[int]
    peer_timeout: float
    sqs_messages: int
    broker_messages: int  # runs to each broker target (Redis, RabbitMQ, NATS)
    delivery_fast: int  # webhook jobs due at once, to one fast receiver
    delivery_slow: int  # ... spread over four receivers answering after 1 s
    delivery_hang: int  # webhook jobs hanging beside the queue lag series
    delivery_due: int  # webhook jobs due at once, fired by the dispatcher (end to end)
    window_jobs: int  # one-shot jobs due at one instant with a flexible window


QUICK = Sizes(
    bursts=[2_000],
    lag_jobs=1_000,
    api_seconds=5,
    api_batches=2,
    scale_jobs=20_000,
    scale_baseline=2_000,
    rss_seconds=2,
    list_walks=3,
    list_pages=5,
    peer_sizes=[2_000],
    peer_timeout=30,
    sqs_messages=400,
    broker_messages=2_000,
    delivery_fast=2_000,
    delivery_slow=800,
    delivery_hang=1_000,
    delivery_due=1_000,
    window_jobs=10_000,
)
FULL = Sizes(
    bursts=[10_000, 100_000],
    lag_jobs=10_000,
    api_seconds=30,
    api_batches=10,
    scale_jobs=1_000_000,
    scale_baseline=10_000,
    rss_seconds=20,
    list_walks=10,
    list_pages=10,
    peer_sizes=[10_000, 100_000],
    peer_timeout=180,
    sqs_messages=5_000,
    broker_messages=20_000,
    delivery_fast=20_000,
    delivery_slow=4_000,
    delivery_hang=1_000,
    delivery_due=2_000,
    window_jobs=100_000,
)


@dataclass
class Context:
    workdir: Path
    runs: int
    sizes: Sizes
    results: Results
    profile: bool = False
    plans: dict[str, str] = field(default_factory=dict)  # per database: its query plans
    # Seconds per inserted job, per database kind: how far ahead a burst must be due.
    insert_cost: dict[str, float] = field(
        default_factory=lambda: {"sqlite": 150e-6, "postgresql": 200e-6}
    )

    def profile_path(self, kind: str) -> Path:
        return ROOT / "docs" / f"profile-{kind}.svg"

    def log(self, name: str) -> Path:
        folder = self.workdir / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}-{uuid.uuid4().hex[:6]}.log"


# -- databases -----------------------------------------------------------------------------


@dataclass
class Database:
    kind: str  # "sqlite" or "postgresql"
    url: str  # SQLAlchemy URL, as DATABASE_URL for the service
    engines: list[Engine] = field(default_factory=list)

    def engine(self) -> Engine:
        options: dict[str, Any] = {}
        if self.kind == "sqlite":
            options["connect_args"] = {"timeout": 30}
        engine = create_engine(self.url, **options)
        self.engines.append(engine)
        return engine

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.engines.clear()


def pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name


def pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def pg_version() -> str:
    with psycopg.connect(PG_ADMIN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def migrate(url: str) -> None:
    """Apply the migrations the way the service does at start-up."""
    from flask_migrate import upgrade

    from app import create_app
    from app.database import db

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        for engine in db.engines.values():
            engine.dispose()


class Databases:
    """Migrates one template per kind, then hands out fresh copies (dropped afterwards)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.templates: dict[str, str] = {}

    def _template(self, kind: str) -> str:
        if kind not in self.templates:
            if kind == "sqlite":
                path = self.workdir / "template.sqlite"
                migrate(f"sqlite:///{path}")
                self.templates[kind] = str(path)
            else:
                name = f"bench_tpl_{uuid.uuid4().hex[:10]}"
                pg_admin(f"CREATE DATABASE {name}")
                self.templates[kind] = name  # recorded first: close() drops it even if...
                migrate(pg_url(name))  # ...the migration fails
        return self.templates[kind]

    @contextmanager
    def fresh(self, kind: str, migrated: bool = True) -> Iterator[Database]:
        """A new database of `kind`: the service's schema, or empty (for the peer)."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        if kind == "sqlite":
            path = self.workdir / f"{name}.sqlite"
            if migrated:
                shutil.copy(self._template(kind), path)
            database = Database(kind, f"sqlite:///{path}")
            try:
                yield database
            finally:
                database.dispose()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        template = f" TEMPLATE {self._template(kind)}" if migrated else ""
        pg_admin(f"CREATE DATABASE {name}{template}")
        database = Database(kind, pg_url(name))
        try:
            yield database
        finally:
            database.dispose()
            pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        for kind, template in self.templates.items():
            if kind == "postgresql":
                pg_admin(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
        self.templates.clear()


# -- processes -----------------------------------------------------------------------------


def start_dispatcher(
    ctx: Context, database: Database, name: str, env: dict[str, str] | None = None,
    profile_to: Path | None = None,
) -> Proc:  # fmt: skip
    """`flask --app wsgi scheduler run --no-migrate`, up and through its first pass."""
    args = [str(BIN / "flask"), "--app", "wsgi", "scheduler", "run", "--no-migrate"]
    if profile_to is not None:
        args = [str(BIN / "py-spy"), "record", "--nonblocking", "-o", str(profile_to), "--", *args]
    proc = Proc(args, process_env(database.url, **(env or {})), ctx.log(name))
    with stopped_on_error(ctx, proc):
        wait_until(lambda: "scheduler started" in proc.output(), 60, proc)
    time.sleep(0.3)  # the first pass has looked at the (still empty) jobs table
    return proc


def start_gunicorn(
    ctx: Context, database: Database, app: str = "wsgi:app", name: str = "gunicorn"
) -> tuple[Proc, str]:
    """The web process as the Procfile runs it: 2 workers of 8 threads (`app`: another
    WSGI app under the same settings, from scripts/). Returns its URL."""
    port = free_port()
    args = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--threads", "8", "--worker-class", "gthread", "--graceful-timeout", "10",
            *(["--pythonpath", "scripts"] if app != "wsgi:app" else []), app]  # fmt: skip
    proc = Proc(args, process_env(database.url), ctx.log(name))
    base = f"http://127.0.0.1:{port}"
    with stopped_on_error(ctx, proc):
        wait_until(lambda: _answers(f"{base}/readyz"), 60, proc)
    return proc, base


@contextmanager
def stopped_on_error(ctx: Context, proc: Proc) -> Iterator[None]:
    """A process that failed to come up is not left running."""
    try:
        yield
    except BaseException:
        stop(ctx, proc)
        raise


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def stop(ctx: Context, proc: Proc) -> None:
    """SIGTERM and wait (kill -9 if it hangs); report an odd exit and odd log lines."""
    if "py-spy" in str(proc.popen.args):
        # Stop the profiled process, not py-spy: py-spy then writes its flame graph and exits.
        for child in psutil.Process(proc.popen.pid).children():
            child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(60)
    try:
        code: int | None = proc.terminate(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    if code != 0:
        what = f"exit code {code}" if code is not None else "still running 30 s after SIGTERM"
        ctx.results.anomaly(f"{proc.log.name}: {what}")
    for line in proc.output().splitlines():
        if any(word in line for word in SUSPICIOUS):
            ctx.results.anomaly(f"{proc.log.name}: {line.strip()[:300]}")


@contextmanager
def processes(ctx: Context) -> Iterator[list[Proc]]:
    """A list to put started processes in; all are stopped on the way out, even on error."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            stop(ctx, proc)


# -- bursts --------------------------------------------------------------------------------


class Overrun(Exception):
    """The jobs became visible too late before their due time: the run says nothing."""


def job_row(
    payload: str, due: datetime, now: datetime, target: dict[str, Any] = QUEUE_TARGET
) -> dict[str, Any]:
    """A one-shot job as the API would store it, due at `due`."""
    return {
        "id": new_id(),
        "payload": payload,
        "recurring": "none",
        "first_at": due,
        "timezone": "UTC",
        "target": target,
        "target_type": target["type"],
        "misfire": "coalesce",
        "status": "active",
        "next_run_at": due,
        "run_count": 0,
        "created_at": now,
        "updated_at": now,
    }


def insert_due(
    ctx: Context,
    database: Database,
    engine: Engine,
    count: int,
    make_rows: Callable[[datetime], list[dict[str, Any]]],
    runs_of: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> tuple[datetime, list[dict[str, Any]]]:
    """Insert `count` jobs (in one transaction, Core) due from an instant T chosen far enough
    ahead for the insert to finish; return T and the rows. Raises Overrun when it ran late.
    `runs_of`: runs to insert with them (jobs already fired, their runs due for delivery)."""
    lead = MIN_LEAD + 0.2 + 1.5 * ctx.insert_cost[database.kind] * count
    due = datetime.now(UTC) + timedelta(seconds=lead)
    began = time.monotonic()
    rows = make_rows(due)
    run_rows = runs_of(rows) if runs_of else []
    with engine.begin() as conn:
        conn.execute(insert(jobs), rows)
        if run_rows:
            conn.execute(insert(runs), run_rows)
    if database.kind == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE jobs"))
            if run_rows:
                conn.execute(text("ANALYZE runs"))
    cost = (time.monotonic() - began) / count
    ctx.insert_cost[database.kind] = max(cost, ctx.insert_cost[database.kind] * 0.5)
    left = (due - datetime.now(UTC)).total_seconds()
    if left < MIN_LEAD:
        ctx.insert_cost[database.kind] = cost * 2
        raise Overrun(f"insert of {count:,} jobs left {left:.2f} s before they were due")
    return due, rows


def retrying(run: Callable[[], T], attempts: int = 3) -> T:
    """Run again (from a fresh database) when the jobs could not be stored ahead of time."""
    for attempt in range(attempts):
        try:
            return run()
        except Overrun as exc:
            print(f"  (retrying: {exc})")
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@dataclass
class Observed:
    done: float | None  # when no job was left with a next run (epoch seconds), None: timeout
    seen: dict[uuid.UUID, float]  # when each sampled job was first seen fired (epoch s)


def wait_all_fired(
    engine: Engine,
    due: datetime,
    procs: list[Proc],
    timeout: float,
    sample: Collection[uuid.UUID] = (),
) -> Observed:
    """Poll until no job is left with a next run (one-shot jobs all fired, committed).

    While some of the `sample` jobs are pending, look them up too (by primary key): when each
    was first seen committed gives the commit lag, which runs.fired_at (stamped at the claim,
    before the batch's transaction) cannot show. Resolution: one poll, POLL s plus a query.
    """
    pending_sample = sorted(sample)
    any_pending = select(jobs.c.id).where(jobs.c.next_run_at.is_not(None)).limit(1)
    all_gone = False
    seen: dict[uuid.UUID, float] = {}
    time.sleep(max(0.0, due.timestamp() - time.time() - 0.05))
    deadline = due.timestamp() + timeout
    with engine.connect() as conn:
        while time.time() < deadline:
            now = time.time()
            if pending_sample:  # a few primary-key lookups: cheap next to the dispatcher's work
                still = set(
                    conn.execute(
                        select(jobs.c.id).where(
                            jobs.c.id.in_(pending_sample), jobs.c.next_run_at.is_not(None)
                        )
                    ).scalars()
                )
                seen.update((key, now) for key in pending_sample if key not in still)
                pending_sample = [key for key in pending_sample if key in still]
            if conn.execute(any_pending).first() is None:
                seen.update((key, now) for key in pending_sample)  # committed since the look
                return Observed(now, seen)
            conn.rollback()  # end the read transaction: old snapshots hold back the WAL
            if all_gone:  # and jobs are still pending after the last one ended
                raise RuntimeError("every process that fires exited with jobs left to fire")
            all_gone = _all_ended(procs)
            time.sleep(POLL)
    return Observed(None, seen)


def _all_ended(procs: list[Proc]) -> bool:
    """Whether all of `procs` have ended; one that failed raises. (A raw-SQL loop ends
    with 0 once its claim finds nothing due: the other copy may hold the last batch.)"""
    codes = [proc.popen.poll() for proc in procs]
    for proc, code in zip(procs, codes, strict=True):
        if code not in (None, 0):
            raise RuntimeError(f"a process that fires exited ({code}):\n{proc.output()[-3000:]}")
    return all(code is not None for code in codes)


def count_rows(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def lags_ms(engine: Engine) -> list[float]:
    """fired_at - scheduled_for of every run, in ms, sorted (read back with SQL)."""
    with engine.connect() as conn:
        rows = conn.execute(select(runs.c.scheduled_for, runs.c.fired_at)).all()
    return sorted((fired - scheduled).total_seconds() * 1000 for scheduled, fired in rows)
