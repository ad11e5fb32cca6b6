"""Issue 4's correctness proofs on PostgreSQL, with real processes.

- Several dispatchers side by side share a burst, and every occurrence is still exactly one
  run, delivered.
- kill -9 of dispatchers during a burst loses and repeats nothing; a remote target sees
  duplicates only of what was in flight, each carrying its run's id.
- A PostgreSQL restart during a burst: the processes reconnect by themselves and nothing
  committed is lost (a private cluster the test owns; the shared server is never touched).
- LISTEN/NOTIFY wakes an idle dispatcher; a batch create sends one NOTIFY; a NOTIFY sent
  just before the dispatcher (re)opens its LISTEN connection is not slept through.
- A run leased by a crashed dispatcher is taken over by another when the lease expires (a
  live dispatcher renews the leases of what it holds: tests/test_delivery.py).

Which process did what is told by the database itself: each process connects with its own
application_name, and triggers this test adds to its own database count the runs each
INSERT wrote under that name and note which process last leased each run. Nothing in the
application changes for it.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, event, insert, text

from app.clock import ManualClock
from app.database import db
from app.models import Job
from app.scheduler.dispatcher import Dispatcher
from app.scheduler.process import build_dispatcher, make_waiter
from app.scheduler.wake import CHANNEL, NotifyWaiter
from app.targets.webhook import WebhookTarget
from tests.conftest import migrate
from tests.support.burst import (
    QUEUE_TARGET,
    assert_all_delivered_to_the_queue,
    assert_each_job_fired_once,
    one_shot_rows,
)
from tests.support.http_target import HttpTarget, Recorded, Response
from tests.support.pg_cluster import ClusterUnavailable, PgCluster, private_cluster
from tests.support.processes import (
    Proc,
    free_port,
    process_env,
    running,
    start_scheduler,
    start_web,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("postgresql_only")]

BURST = 20_000  # jobs due within a few seconds
STARTUP = 90.0  # seconds a process may take to start on a loaded 2-core machine
DRAIN = 150.0  # seconds a burst may take to be fired and delivered, at worst


@pytest.fixture
def postgresql_only(db_kind: str) -> None:
    if db_kind != "postgresql":
        pytest.skip(
            "PostgreSQL only: several dispatchers, LISTEN/NOTIFY and server restarts "
            "(run with --db=postgresql)"
        )


# -- the database, seen from the test ------------------------------------------------------


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


def insert_burst(
    engine: Engine, count: int, spread: float, target: dict[str, Any], lead: float = 1.5
) -> None:
    """`count` one-shot jobs (payload "job <i>"), due from `lead` seconds after the insert
    ends, evenly over `spread` seconds."""
    rows = one_shot_rows(count, datetime.now(UTC), target=target)
    with engine.begin() as conn:
        for start in range(0, count, 5000):
            conn.execute(insert(Job.__table__), rows[start : start + 5000])
        # Inserting 20,000 rows takes a while on a loaded machine: the due times are set at
        # the end, from the database's clock, so the burst does not start during the insert
        # (nobody sees the rows before the commit).
        due = "statement_timestamp() + make_interval(secs => :lead + :spread * i / :count)"
        conn.execute(
            text(
                f"UPDATE jobs SET next_run_at = {due}, first_at = {due} "
                "FROM (SELECT id AS key, substr(payload, 5)::int AS i FROM jobs) AS burst "
                "WHERE jobs.id = burst.key"
            ),
            {"lead": lead, "spread": spread, "count": count},
        )


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def fired(engine: Engine) -> int:
    return int(scalar(engine, "SELECT count(*) FROM runs"))


def delivered(engine: Engine) -> int:
    return int(scalar(engine, "SELECT count(*) FROM runs WHERE status = 'delivered'"))


INSTRUMENTS = """
CREATE TABLE test_fired_by (app text NOT NULL, runs integer NOT NULL);
CREATE FUNCTION test_note_fired_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_fired_by
    SELECT current_setting('application_name'), count(*) FROM fired HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE TRIGGER test_note_fired_by AFTER INSERT ON runs REFERENCING NEW TABLE AS fired
    FOR EACH STATEMENT EXECUTE FUNCTION test_note_fired_by();

ALTER TABLE runs ADD COLUMN test_leased_by text;
CREATE FUNCTION test_note_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'delivering' THEN
        NEW.test_leased_by := current_setting('application_name');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_note_lease BEFORE INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION test_note_lease();

CREATE TABLE test_run_history (
    run_id uuid, at timestamptz, app text, status text, attempts int, next timestamptz
);
CREATE FUNCTION test_note_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_run_history VALUES (NEW.id, clock_timestamp(),
        current_setting('application_name'), NEW.status, NEW.attempts, NEW.next_attempt_at);
    RETURN NULL;
END $$;
CREATE TRIGGER test_note_history AFTER UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION test_note_history();
"""


def instrument(engine: Engine) -> None:
    """Test instrumentation in the test's own database (the application never reads it):
    how many runs each process inserted, which process last leased each run, and every
    change of every run (to explain a failure)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(INSTRUMENTS)


def fires_by_process(engine: Engine) -> dict[str, int]:
    """Runs inserted per application_name; the rows of transactions rolled back (a process
    killed mid-transaction) vanish with them, so these add up to the runs that exist."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT app, sum(runs) FROM test_fired_by GROUP BY app ORDER BY app")
        ).all()
    return {app: int(total) for app, total in rows}


def history(engine: Engine, run_ids: list[str], received: list[Recorded]) -> str:
    """What happened to these runs: each change (when, by which process) and each request."""
    lines = []
    with engine.connect() as conn:
        for run_id in run_ids:
            sent = [
                r.headers["webhook-timestamp"]
                for r in received
                if r.headers["webhook-id"] == run_id
            ]
            lines.append(f"run {run_id}, requests sent at {sent}:")
            changes = conn.execute(
                text("SELECT * FROM test_run_history WHERE run_id = :id ORDER BY at"),
                {"id": run_id},
            )
            lines += [
                f"  {row.at:%H:%M:%S.%f} {row.app} {row.status} {row.attempts} until {row.next}"
                for row in changes
            ]
    return "\n".join(lines)


def activity(engine: Engine) -> str:
    """The test database's sessions: what each process is doing or waiting for."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT application_name, state, wait_event_type, wait_event, "
                "now() - xact_start AS age, left(query, 80) AS query FROM pg_stat_activity "
                "WHERE datname = current_database() ORDER BY application_name"
            )
        ).all()
        counts = conn.execute(text("SELECT status, count(*) FROM runs GROUP BY status")).all()
    return "\n".join(
        [f"runs by status: {dict(counts)}  jobs fired: {fired(engine)}"]
        + [str(tuple(r)) for r in rows]
    )


def listening(engine: Engine, names: list[str]) -> bool:
    """Every named dispatcher has its LISTEN connection open: it finished its first step and
    now waits for work."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query = :listen "
                "AND application_name = ANY(:names)"
            ),
            {"listen": f"LISTEN {CHANNEL}", "names": names},
        ).scalar_one()
    return bool(found == len(names))


def in_transaction(engine: Engine, name: str) -> bool:
    """The named process holds a transaction that has locked or written rows."""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = :name AND backend_xid IS NOT NULL"
            ),
            {"name": name},
        ).scalar_one()
    return bool(found)


def with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


# -- several dispatcher processes ----------------------------------------------------------


class Dispatchers:
    """N scheduler processes, each connecting as "d<slot>.<generation>"."""

    def __init__(self, database_url: str, folder: Path, count: int, **env: str) -> None:
        self.database_url = database_url
        self.folder = folder
        self.env = env
        self.generations = [0] * count
        self.procs: list[Proc] = []
        self.names: list[str] = []

    def start(self) -> None:
        for slot in range(len(self.generations)):
            proc, name = self._start(slot)
            self.procs.append(proc)
            self.names.append(name)

    def _start(self, slot: int) -> tuple[Proc, str]:
        self.generations[slot] += 1
        name = f"d{slot}.{self.generations[slot]}"
        env = process_env(with_application_name(self.database_url, name), **self.env)
        return start_scheduler(env, self.folder / f"{name}.log"), name

    def kill(self, slot: int) -> None:
        """kill -9: no chance to finish, commit or roll back anything."""
        self.procs[slot].kill()

    def restart(self, slot: int) -> str:
        """Start a new process in `slot` (under a new name); return the name."""
        self.procs[slot], self.names[slot] = self._start(slot)
        return self.names[slot]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise AssertionError(f"a dispatcher exited:\n{proc.output()[-3000:]}")

    def stop(self, engine: Engine) -> list[int]:
        """SIGTERM every process once it is up (a process that has not installed its signal
        handlers yet just dies); return their exit codes (0: a clean stop)."""
        wait_for(lambda: listening(engine, self.names), STARTUP, self)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.terminate(timeout=30))
            except Exception:
                proc.kill()
                codes.append(-9)
        return codes

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}"
            for log in sorted(self.folder.glob("d*.log"))
        )


@contextmanager
def dispatchers(database_url: str, folder: Path, count: int, **env: str) -> Iterator[Dispatchers]:
    folder.mkdir(exist_ok=True)
    group = Dispatchers(database_url, folder, count, **env)
    try:
        group.start()
        yield group
    finally:
        for proc in group.procs:
            if proc.popen.poll() is None:
                proc.kill()


def wait_for(condition: Callable[[], bool], timeout: float, group: Dispatchers) -> None:
    """wait_until, failing early with the logs if a dispatcher dies."""

    def check() -> bool:
        group.check_alive()
        return condition()

    try:
        wait_until(check, timeout, step=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{group.logs()}") from None


# -- 1. three dispatchers share a burst -----------------------------------------------------


def test_three_dispatchers_fire_a_burst_exactly_once_and_share_it(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    instrument(engine)
    with dispatchers(database_url, tmp_path / "logs", 3) as group:
        wait_for(lambda: listening(engine, group.names), STARTUP, group)
        started = time.monotonic()
        insert_burst(engine, BURST, spread=3.0, target=QUEUE_TARGET)
        wait_for(lambda: fired(engine) >= BURST, DRAIN, group)
        elapsed = time.monotonic() - started
        assert group.stop(engine) == [0, 0, 0], group.logs()

    assert_each_job_fired_once(engine, BURST)
    assert_all_delivered_to_the_queue(engine, BURST)
    shares = fires_by_process(engine)
    print(f"\n{BURST} jobs fired in {elapsed:.1f} s from the insert; runs per dispatcher {shares}")
    assert sum(shares.values()) == BURST
    assert set(shares) == {"d0.1", "d1.1", "d2.1"}, f"not every dispatcher fired: {shares}"


# -- 2. kill -9 during a burst ------------------------------------------------------------


@dataclass
class Kill:
    name: str
    fired_before: int  # runs that existed when it was killed
    aimed: bool  # it was caught where the test aimed (mid-transaction, mid-delivery)
    in_flight: set[str] = field(default_factory=set)  # runs it held leased (delivering)


def kill_round_robin(
    engine: Engine,
    group: Dispatchers,
    done: Callable[[], bool],
    aim: Callable[[str], bool],
    in_flight: Callable[[str], set[str]] | None = None,
    every: float = 2.0,
) -> list[Kill]:
    """Round-robin kill -9 of one dispatcher about every `every` s, restarting it at once,
    until `done`. Each kill waits for its victim to be up (on a slow machine a start takes
    seconds: kills of processes still starting would stall the burst and test nothing),
    then up to 1.5 s more for `aim(victim)` (e.g. inside a transaction), so that kills land
    mid-work rather than while the victim sleeps."""
    kills: list[Kill] = []
    deadline = time.monotonic() + DRAIN
    wait_for(lambda: fired(engine) > 0, STARTUP, group)  # the burst has begun
    for slot in itertools.cycle(range(len(group.procs))):
        due = time.monotonic() + every
        victim, aimed = group.names[slot], False
        while not done() and time.monotonic() < due:
            time.sleep(0.05)
        wait_for(lambda: done() or listening(engine, [victim]), STARTUP, group)  # noqa: B023
        while not done() and time.monotonic() < due + 1.5:
            if aim(victim):
                aimed = True
                break
            time.sleep(0.01)
        if done():
            return kills
        assert time.monotonic() < deadline, (
            f"the burst did not finish\n{activity(engine)}\n{group.logs()}"
        )
        before = fired(engine)
        group.kill(slot)
        # The runs it held leased: the only ones that may now be delivered a second time.
        kills.append(Kill(victim, before, aimed, in_flight(victim) if in_flight else set()))
        group.restart(slot)
    raise AssertionError("unreachable")


def test_kill_9_of_dispatchers_in_a_burst_loses_and_repeats_nothing(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    instrument(engine)
    with dispatchers(database_url, tmp_path / "logs", 3) as group:
        wait_for(lambda: listening(engine, group.names), STARTUP, group)
        started = time.monotonic()
        insert_burst(engine, BURST, spread=8.0, target=QUEUE_TARGET)
        kills = kill_round_robin(
            engine, group, lambda: fired(engine) >= BURST, lambda name: in_transaction(engine, name)
        )
        elapsed = time.monotonic() - started
        assert group.stop(engine) == [0, 0, 0], group.logs()

    summary = [(k.name, k.fired_before, k.aimed) for k in kills]
    print(f"\n{BURST} jobs in {elapsed:.1f} s; kills (victim, runs before, mid-transaction):")
    print(f"{summary}; runs by process {fires_by_process(engine)}")
    assert len(kills) >= 2, f"the burst ended after {len(kills)} kill(s): make it longer"
    assert any(k.aimed for k in kills), "no kill landed inside a transaction"
    assert_each_job_fired_once(engine, BURST)
    assert_all_delivered_to_the_queue(engine, BURST)
    assert sum(fires_by_process(engine).values()) == BURST


WEBHOOK_BURST = 10_000  # through one threaded test receiver
# The burst's jobs fall due over this long, so it lasts at least that long however fast
# delivery is: several kills land in it (one every 4 s), not just the first.
WEBHOOK_SPREAD = 20.0


def test_kill_9_with_a_webhook_target_repeats_only_what_was_in_flight(
    database_url: str, engine: Engine, tmp_path: Path, http_target: HttpTarget
) -> None:
    http_target.respond("/hook", Response(204))
    target = {"type": "webhook", "url": f"{http_target.url}/hook", "timeout": 10}
    env = {
        "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        # Short leases: runs left by a killed dispatcher come back soon. A run's lease is at
        # least its call's timeout plus the margin (30 s by default: 40 s for these runs).
        "DELIVERY_LEASE": "3",
        "DELIVERY_LEASE_MARGIN": "2",
    }

    def all_delivered() -> bool:
        return delivered(engine) >= WEBHOOK_BURST

    def leased_by(name: str) -> set[str]:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id FROM runs WHERE status = 'delivering' AND test_leased_by = :name"),
                {"name": name},
            )
            return {str(run_id) for run_id in rows.scalars()}

    instrument(engine)
    with dispatchers(database_url, tmp_path / "logs", 3, **env) as group:
        wait_for(lambda: listening(engine, group.names), STARTUP, group)
        started = time.monotonic()
        insert_burst(engine, WEBHOOK_BURST, spread=WEBHOOK_SPREAD, target=target)
        # Every 4 s: a restart costs a process start (about 2 s of CPU on a slow 2-core
        # machine), and the runs a kill strands wait out their 12 s leases.
        kills = kill_round_robin(
            engine, group, all_delivered, lambda name: bool(leased_by(name)), leased_by, 4.0
        )
        elapsed = time.monotonic() - started
        assert group.stop(engine) == [0, 0, 0], group.logs()

    assert len(kills) >= 2, f"the burst ended after {len(kills)} kill(s): make it longer"
    assert any(k.in_flight for k in kills), "no kill caught a dispatcher delivering"
    assert_each_job_fired_once(engine, WEBHOOK_BURST)

    with engine.connect() as conn:
        run_of_job = {
            payload: str(run_id)
            for payload, run_id in conn.execute(
                text("SELECT j.payload, r.id FROM runs r JOIN jobs j ON j.id = r.job_id")
            )
        }
    # A kill between the headers and the body leaves a torn request: no receiver takes it.
    received: list[Recorded] = []
    torn: list[Recorded] = []
    for r in http_target.requests_to("/hook"):
        whole = len(r.body) == int(r.headers.get("content-length", -1))
        (received if whole else torn).append(r)
    assert {r.headers["webhook-id"] for r in torn} <= set(run_of_job.values())
    # Every request carries the id of its job's one run: a consumer can drop duplicates.
    wrong = [r for r in received if r.headers["webhook-id"] != run_of_job[r.body.decode()]]
    assert wrong == []
    per_run = Counter(r.headers["webhook-id"] for r in received)
    assert set(per_run) == set(run_of_job.values()), "some run was never delivered"
    # A repeat needs the dispatcher that held the run's lease to die: never more repeats of
    # a run than kills of a dispatcher holding it in flight.
    caught: Counter[str] = Counter()
    for kill in kills:
        caught.update(kill.in_flight)
    repeats = {run: n - 1 for run, n in per_run.items() if n > 1}
    beyond = {run: n for run, n in repeats.items() if n > caught[run]}
    in_flight_total = sum(len(k.in_flight) for k in kills)
    print(
        f"\n{WEBHOOK_BURST} webhook jobs in {elapsed:.1f} s; {len(kills)} kills "
        f"({sum(bool(k.in_flight) for k in kills)} mid-delivery); held by the killed "
        f"{in_flight_total}; requests {len(received)} (+{len(torn)} torn by a kill); "
        f"repeated runs {len(repeats)} "
        f"({sum(repeats.values())} extra requests)"
    )
    assert beyond == {}, (
        f"repeats of runs no killed dispatcher held: {len(beyond)} runs\n"
        f"{history(engine, list(beyond)[:3], received)}\n{group.logs()}"
    )
    assert sum(repeats.values()) <= in_flight_total


# -- 3. PostgreSQL restarted during a burst -------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    try:
        with private_cluster() as owned:
            yield owned
    except ClusterUnavailable as exc:
        pytest.skip(f"no private PostgreSQL cluster: {exc}")


def readyz(base: str) -> int:
    try:
        return requests.get(f"{base}/readyz", timeout=5).status_code
    except requests.RequestException:
        return 0


def test_postgresql_restart_mid_burst_loses_nothing_and_processes_reconnect(
    cluster: PgCluster, tmp_path: Path
) -> None:
    url = cluster.create_database("scheduler")
    migrate(url, tmp_path)
    engine = create_engine(url, pool_pre_ping=True, pool_size=2)
    name = "dispatcher"
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def started_at() -> datetime:
        return scalar(engine, "SELECT pg_postmaster_start_time()")

    try:
        with ExitStack() as stack:
            web = stack.enter_context(
                running(start_web(process_env(url), tmp_path / "web.log", port))
            )
            scheduler = stack.enter_context(
                running(
                    start_scheduler(
                        process_env(with_application_name(url, name)), tmp_path / "sched.log"
                    )
                )
            )
            wait_until(lambda: listening(engine, [name]), STARTUP, scheduler)
            insert_burst(engine, BURST, spread=4.0, target=QUEUE_TARGET)

            wait_until(lambda: fired(engine) >= 2_000, DRAIN, scheduler, step=0.01)
            server_before = started_at()
            partial = fired(engine)
            cluster.restart()
            assert partial < BURST, "the burst finished before the restart: make it larger"
            assert started_at() > server_before  # a new server: every connection was cut

            # The web process answers again by itself, and writes.
            wait_until(lambda: readyz(base) == 200, 60, web)
            created = requests.post(
                f"{base}/schedules",
                json={"payload": "after the restart", "at": _now_to_the_second()},
                timeout=10,
            )
            assert created.status_code == 201, created.text

            # The dispatcher reconnects by itself and finishes the burst and the new job.
            wait_until(lambda: fired(engine) >= BURST + 1, DRAIN, scheduler)
            wait_until(lambda: listening(engine, [name]), 60, scheduler)
            assert scheduler.terminate() == 0, scheduler.output()[-3000:]
            log = scheduler.output()

        print(
            f"\nrestart after {partial} of {BURST} fires; scheduler log mentions the outage: "
            f"{'dispatch pass failed' in log or 'LISTEN connection lost' in log}"
        )
        assert_each_job_fired_once(engine, BURST + 1)
        assert_all_delivered_to_the_queue(engine, BURST + 1)
    finally:
        engine.dispose()


def _now_to_the_second() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- 4. LISTEN/NOTIFY --------------------------------------------------------------------


def test_notify_wakes_an_idle_dispatcher_for_a_job_due_now(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """With a pass every 30 s, only the NOTIFY sent by the API can fire a new job at once."""
    env = {"DISPATCH_INTERVAL": "30"}
    port = free_port()
    name = "dispatcher"
    with running(start_web(process_env(database_url, **env), tmp_path / "web.log", port)):
        launched = datetime.now(UTC)
        scheduler_env = process_env(with_application_name(database_url, name), **env)
        with running(start_scheduler(scheduler_env, tmp_path / "sched.log")) as scheduler:
            # Its first pass found nothing due and waits: on LISTEN, for up to 30 s.
            wait_until(lambda: listening(engine, [name]), STARTUP, scheduler)
            created_at = datetime.now(UTC)
            answer = requests.post(
                f"http://127.0.0.1:{port}/schedules",
                json={"payload": "wake up", "at": _now_to_the_second()},
                timeout=10,
            )
            assert answer.status_code == 201, answer.text
            wait_until(lambda: fired(engine) >= 1, 15, scheduler, step=0.02)
            fired_at: datetime = scalar(engine, "SELECT fired_at FROM runs")
            assert scheduler.terminate() == 0

    # Its second pass starts no sooner than 30 s after the process started: a fire before
    # then happened in the first pass, which had nothing due when it began to wait.
    assert fired_at < launched + timedelta(seconds=30)
    latency = (fired_at - created_at).total_seconds()
    print(f"\nfired {latency:.3f} s after the request was sent")
    assert latency < 5


def test_a_batch_of_1000_jobs_sends_one_notify(
    app: Flask, client: FlaskClient, database_url: str
) -> None:
    with app.app_context():
        app_engine = db.engine
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_notify" in statement:
            sent.append(statement)

    event.listen(app_engine, "before_cursor_execute", note)
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        due_now = [{"payload": f"job {i}", "at": "2030-01-01T00:00:00Z"} for i in range(1000)]
        answer = client.post("/schedules:batch", json={"jobs": due_now})
        assert answer.status_code == 201, answer.get_json()
        assert len(answer.get_json()["jobs"]) == 1000
        assert len(sent) == 1
        # Notifications of one transaction arrive together, at its commit.
        received = list(listener.notifies(timeout=10, stop_after=1))
        received += list(listener.notifies(timeout=0.5))
        assert [n.channel for n in received] == [CHANNEL]

        # Nothing due before the next pass: no NOTIFY at all.
        later = [{"payload": f"later {i}", "at": "2030-01-02T00:00:00Z"} for i in range(1000)]
        assert client.post("/schedules:batch", json={"jobs": later}).status_code == 201
        assert len(sent) == 1
        assert list(listener.notifies(timeout=0.5)) == []
    event.remove(app_engine, "before_cursor_execute", note)


# -- 5. lease takeover ---------------------------------------------------------------------


def test_a_run_left_leased_by_a_crashed_dispatcher_is_delivered_by_another(
    client: FlaskClient, clock: ManualClock, http_target: HttpTarget,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    http_target.respond("/hook", Response(200))
    hook = {"type": "webhook", "url": f"{http_target.url}/hook"}
    body = {"payload": "hello", "at": "2030-01-01T00:00:10Z", "target": hook}
    job = client.post("/schedules", json=body).get_json()
    webhook = lambda: WebhookTarget(allow_networks=["127.0.0.0/8"])  # noqa: E731
    first = make_dispatcher({"webhook": webhook()})
    # Delivered, then died before recording: the outcome is never written.
    first.lanes.record = lambda pairs, written: written()
    clock.advance(10)
    first.step()
    (run,) = client.get(f"/schedules/{job['jobId']}/runs").get_json()
    assert (run["status"], run["attempts"]) == ("delivering", 1)
    lease = run["nextAttemptAt"]
    assert lease == "2030-01-01T00:01:10Z"  # DELIVERY_LEASE: 60 s covers a 10 s timeout

    second = make_dispatcher({"webhook": webhook()})
    clock.advance(59)
    assert second.deliver_due() == 0, "took over a lease that was still running"
    assert second.fire_due() == 0, "fired the occurrence again"
    clock.advance(1)
    assert second.deliver_due() == 1
    assert second.deliver_due() == 0

    requests_seen = http_target.requests_to("/hook")
    assert [r.headers["webhook-id"] for r in requests_seen] == [run["runId"]] * 2
    (after,) = client.get(f"/schedules/{job['jobId']}/runs").get_json()
    assert (after["runId"], after["status"], after["attempts"]) == (run["runId"], "delivered", 2)


def test_a_notify_sent_before_the_dispatcher_listens_is_not_missed(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start-up and after every reconnect, LISTEN begins after the pass last looked for
    work: a job committed (and notified) in between must still fire at once, not when the
    pass ends."""
    with app.app_context():
        dispatcher = build_dispatcher(app)
        waiter = make_waiter(app, dispatcher)
    assert isinstance(waiter, NotifyWaiter)
    firing = dispatcher.firing  # the first worker: its waiter listens
    looked, fire = firing.seconds_until_due, firing.fire_due
    arrived: list[float] = []
    fired_at: list[float] = []

    def a_job_arrives_right_after_the_look() -> float | None:
        wake = looked()
        monkeypatch.setattr(firing, "seconds_until_due", looked)  # just once
        due_now = {"payload": "just in time", "at": "2030-01-01T00:00:00Z"}
        assert client.post("/schedules", json=due_now).status_code == 201
        arrived.append(time.monotonic())
        return wake

    def timed_fire() -> int:
        claimed = fire()
        if claimed:
            fired_at.append(time.monotonic())
        return claimed

    monkeypatch.setattr(firing, "seconds_until_due", a_job_arrives_right_after_the_look)
    monkeypatch.setattr(firing, "fire_due", timed_fire)
    window = 5.0
    try:
        dispatcher.run_pass(window=window, waiter=waiter)
    finally:
        if waiter.conn is not None:
            waiter.conn.close()
    assert len(arrived) == len(fired_at) == 1
    # At once, not when the pass ends (the pass still looks once more before it returns).
    assert fired_at[0] - arrived[0] < window / 2, "the pass slept through a job due now"
