"""The service as a user runs it: gunicorn and the scheduler process, real signals."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from sqlalchemy import create_engine, select, text

from app.jobstate import window_offset
from app.models import Job, Run
from app.scheduler.callprocess import ProcessLoop
from app.scheduler.calls import Limits, Work
from app.scheduler.process import configure_logging, remote_targets
from app.targets.base import Delivery, Outcome
from tests.support.burst import (
    assert_all_delivered_to_the_queue,
    assert_each_job_fired_once,
    insert_one_shot_jobs,
)
from tests.support.http_target import HttpTarget, Response
from tests.support.processes import (
    BIN,
    ROOT,
    free_port,
    process_env,
    running,
    start_scheduler,
    start_web,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_job_due_now_reaches_a_consumer(database_url: str, tmp_path: Path) -> None:
    env = process_env(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        running(start_scheduler(env, tmp_path / "scheduler.log")) as scheduler,
        running(start_web(env, tmp_path / "web.log", port)),
    ):
        minute = int(datetime.now(UTC).timestamp() // 60)  # the current minute: already due
        created = requests.post(
            f"{base}/schedules", json={"payload": "cool stuff", "minute": minute}, timeout=5
        )
        assert created.status_code == 201
        answer = requests.post(
            f"{base}/queues/default/receive", json={"max": 10, "wait": 10}, timeout=15
        ).json()
        assert [m["payload"] for m in answer["messages"]] == ["cool stuff"]
        assert answer["messages"][0]["jobId"] == created.json()["jobId"]
        assert scheduler.terminate() == 0, scheduler.output()


def test_kill_9_in_a_burst_loses_and_repeats_nothing(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    due = datetime.now(UTC) + timedelta(seconds=2)
    jobs = 10_000
    insert_one_shot_jobs(engine, jobs, due)
    env = process_env(database_url, DISPATCH_BATCH_SIZE="200")

    def fired() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM runs")).scalar_one())

    first = start_scheduler(env, tmp_path / "first.log")
    wait_until(lambda: fired() > 500, 60, first, step=0.01)
    first.kill()
    partial = fired()
    assert partial < jobs, "the burst finished before the kill: make it larger"

    with running(start_scheduler(env, tmp_path / "second.log")) as second:
        wait_until(lambda: fired() == jobs, 120, second)
        assert second.terminate() == 0

    assert_each_job_fired_once(engine, jobs)
    assert_all_delivered_to_the_queue(engine, jobs)
    engine.dispose()


def test_memory_stays_bounded_while_a_target_is_down(database_url: str, tmp_path: Path) -> None:
    """5,000 runs retrying against a dead webhook: the dispatcher's memory stays flat."""
    engine = create_engine(database_url)
    with socket.socket() as sock:  # a port nobody listens on: connection refused, fast
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    insert_one_shot_jobs(
        engine, 5000, datetime.now(UTC), target={"type": "webhook", "url": dead_url,
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        retry={"attempts": 1000, "backoff": 0.1, "maxBackoff": 0.5},
    )  # fmt: skip
    env = process_env(database_url, WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")

    def attempts() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(sum(attempts), 0) FROM runs")).scalar())

    with running(start_scheduler(env, tmp_path / "scheduler.log")) as scheduler:
        wait_until(lambda: attempts() >= 10_000, 120, scheduler)  # every run retried once
        warm = psutil.Process(scheduler.popen.pid).memory_info().rss
        wait_until(lambda: attempts() >= 40_000, 240, scheduler)  # 6 more rounds of failures
        later = psutil.Process(scheduler.popen.pid).memory_info().rss
    engine.dispose()
    assert later - warm < 30 * 2**20, f"RSS grew from {warm >> 20} MiB to {later >> 20} MiB"


def test_a_slow_webhook_never_delays_built_in_queue_fires(
    database_url: str, tmp_path: Path, http_target: HttpTarget
) -> None:
    """One dispatcher (the SQLite default), 1,000 runs hanging on a 10 s endpoint: jobs on
    the built-in queue still fire on time (before the split, 13-60 s late)."""
    http_target.respond("/slow", Response(200, delay=10.0))
    engine = create_engine(database_url)
    env = process_env(database_url, WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")
    slow = {"type": "webhook", "url": http_target.url + "/slow", "timeout": 30.0,
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}  # fmt: skip
    with running(start_scheduler(env, tmp_path / "scheduler.log")) as scheduler:
        insert_one_shot_jobs(engine, 1000, datetime.now(UTC), target=slow)
        wait_until(lambda: len(http_target.requests_to("/slow")) >= 100, 60, scheduler)
        insert_one_shot_jobs(engine, 50, datetime.now(UTC) + timedelta(seconds=1), spread=5.0)
        wait_until(lambda: queue_runs(engine) == 50, 30, scheduler)
        with engine.connect() as conn:
            queued = select(Run.fired_at, Run.scheduled_for).join(Job, Job.id == Run.job_id)
            rows = conn.execute(queued.where(Job.target_type == "queue"))
            lags = sorted((fired - nominal).total_seconds() for fired, nominal in rows)
        in_flight = len(http_target.requests_to("/slow"))
        http_target.stopping.set()  # the endpoint hangs up: the runs go back to retrying
        assert scheduler.terminate() == 0
    engine.dispose()
    print(f"\nqueue lag p50 {lags[len(lags) // 2]:.3f} s, max {lags[-1]:.3f} s; "
          f"{in_flight} webhook calls in flight")  # fmt: skip
    assert len(lags) == 50 and lags[-1] < 1.0


def delivery_child(scheduler_pid: int) -> psutil.Process:
    """The scheduler process's delivery child (forked, or spawned after a death)."""
    children = psutil.Process(scheduler_pid).children()
    (child,) = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
    return child


def test_a_dead_delivery_process_is_replaced_and_its_runs_delivered_again(
    database_url: str, tmp_path: Path, http_target: HttpTarget
) -> None:
    """kill -9 of the delivery child with 20 calls in flight: a new child starts, the runs
    are delivered again once their leases end, and nothing else is lost."""
    http_target.respond("/hook", *[Response(200, delay=30.0)] * 20, Response(200))
    engine = create_engine(database_url)
    env = process_env(database_url, WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
                      DELIVERY_LEASE="2", DELIVERY_LEASE_MARGIN="1")  # fmt: skip
    hook = {"type": "webhook", "url": http_target.url + "/hook", "timeout": 10.0}
    with running(start_scheduler(env, tmp_path / "scheduler.log")) as scheduler:
        wait_until(lambda: "scheduler started" in scheduler.output(), 60, scheduler)
        first = delivery_child(scheduler.popen.pid)
        insert_one_shot_jobs(engine, 20, datetime.now(UTC), target=hook)
        wait_until(lambda: len(http_target.requests_to("/hook")) == 20, 60, scheduler)
        first.kill()
        wait_until(lambda: delivery_statuses(engine) == {"delivered": 20}, 60, scheduler)
        second = delivery_child(scheduler.popen.pid)
        assert second.pid != first.pid
        assert scheduler.terminate() == 0, scheduler.output()
    engine.dispose()
    ids = [r.headers["webhook-id"] for r in http_target.requests_to("/hook")]
    assert len(ids) == 40 and len(set(ids)) == 20  # each run once more, with its own id
    assert "the delivery process died" in scheduler.output()


def test_the_delivery_process_never_outlives_the_scheduler(
    database_url: str, tmp_path: Path
) -> None:
    with running(start_scheduler(process_env(database_url), tmp_path / "scheduler.log")) as s:
        wait_until(lambda: "scheduler started" in s.output(), 60, s)
        child = delivery_child(s.popen.pid)
        s.kill()  # kill -9: the scheduler process cannot tell its child anything
        child.wait(timeout=10)  # it sees its pipe close and exits


def loopback_targets() -> dict[str, Any]:
    return remote_targets(["127.0.0.0/8"])


def test_the_delivery_process_delivers_drops_what_waits_and_closes(
    http_target: HttpTarget,
) -> None:
    http_target.respond("/hook", Response(200, delay=1.0))
    reported: list[Outcome] = []
    dropped: list[str] = []
    calls = ProcessLoop(loopback_targets, Limits(10, 60.0, 5.0), setup=configure_logging)
    calls.start(reported.extend, dropped.extend, lost=lambda: None)
    target = {"type": "webhook", "url": http_target.url + "/hook"}
    now = datetime.now(UTC)
    deliveries = [Delivery(str(uuid.uuid4()), "job", now, "{}", target, 1) for _ in range(3)]
    works = [Work(d, 10.0, "http://127.0.0.1", 1) for d in deliveries]
    calls.send(works)  # one origin, one call at a time: the first goes, two wait
    wait_until(lambda: len(http_target.requests_to("/hook")) == 1, 30)
    calls.drop({works[1].delivery.run_id, works[2].delivery.run_id})
    wait_until(lambda: len(reported) == 1 and len(dropped) == 2, 30)
    assert reported[0].ok and reported[0].run_id == works[0].delivery.run_id
    assert set(dropped) == {works[1].delivery.run_id, works[2].delivery.run_id}
    process = calls.process
    calls.close()
    assert process.exitcode == 0
    assert len(http_target.requests_to("/hook")) == 1


def delivery_statuses(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM runs GROUP BY status"))
        return {status: int(n) for status, n in rows}


def queue_runs(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM runs r JOIN jobs j ON j.id = r.job_id "
                    "WHERE j.target_type = 'queue' AND r.status = 'delivered'"
                )
            ).scalar_one()
        )


def test_make_run_fails_when_a_process_fails_to_start(database_url: str) -> None:
    """`make run` on 0.0.0.0 with no key: gunicorn refuses, and make says it failed."""
    env = process_env(database_url, HOST="0.0.0.0", PORT=str(free_port()))
    done = subprocess.run(
        ["make", "--no-print-directory", "run"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stdout + done.stderr


def test_web_processes_share_one_rate_limit_through_redis(
    database_url: str, tmp_path: Path
) -> None:
    """RATELIMIT_STORAGE_URI is honoured: two gunicorns (two workers each) count together."""
    env = process_env(
        database_url,
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0",
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",  # this run's counters only
        RATE_LIMIT="4 per minute",
    )
    made = subprocess.run(
        [str(BIN / "flask"), "keys", "create", "--name", "shared"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {made.stdout.split()[0]}"}
    ports = [free_port(), free_port()]
    with (
        running(start_web(env, tmp_path / "web-a.log", ports[0])),
        running(start_web(env, tmp_path / "web-b.log", ports[1])),
    ):
        answers = [
            requests.get(f"http://127.0.0.1:{ports[i % 2]}/schedules", headers=headers, timeout=5)
            for i in range(12)
        ]
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 4 and codes.count(429) == 8, codes


def test_long_polls_leave_threads_for_everything_else(database_url: str, tmp_path: Path) -> None:
    """16 consumers long-polling an empty queue (2 workers x 4 threads, the most waiting
    at once: half the threads) while /healthz and a create still get answered."""
    env = process_env(database_url, QUEUE_MAX_WAIT="4")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    answers: list[float] = []

    def consume() -> None:
        started = time.monotonic()
        requests.post(f"{base}/queues/idle/receive", json={"wait": 20}, timeout=30)
        answers.append(time.monotonic() - started)

    with running(start_web(env, tmp_path / "web.log", port)):
        consumers = [threading.Thread(target=consume) for _ in range(16)]
        for consumer in consumers:
            consumer.start()
        time.sleep(0.5)  # the first ones are waiting now
        assert requests.get(f"{base}/healthz", timeout=3).status_code == 200
        body = {"payload": "p", "at": "2030-01-01T00:00:01Z"}
        assert requests.post(f"{base}/schedules", json=body, timeout=3).status_code == 201
        for consumer in consumers:
            consumer.join(30)
    # Who waited is told by how long each answer took, not by which threads are alive at
    # one moment: on a loaded machine a consumer answered at once may not have run yet.
    assert len(answers) == 16
    waited = sum(seconds >= 3.5 for seconds in answers)
    assert 1 <= waited <= 4  # at most half of each worker's threads wait; the rest: at once


def raw_request(port: int, data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes as they are; the status line, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def test_requests_gunicorn_cannot_parse_get_problem_json(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    with running(start_web(process_env(database_url), tmp_path / "web.log", port)):
        long_but_fine = requests.get(
            f"http://127.0.0.1:{port}/schedules", params={"q": "x" * 200, "cursor": "y" * 6000},
            timeout=5,
        )  # fmt: skip
        too_long = raw_request(port, b"GET /schedules?q=" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n")
        too_many = raw_request(
            port, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
        )
        garbage = raw_request(port, b"NOT AN HTTP REQUEST\r\n\r\n")
    assert long_but_fine.status_code == 400  # the application's own answer: a bad cursor
    for (status, headers, body), code in ((too_long, 414), (too_many, 431), (garbage, 400)):
        assert status.split()[1] == str(code), status
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["status"] == code


def test_a_windowed_burst_fires_spread_over_its_window_once_each(
    database_url: str, tmp_path: Path
) -> None:
    """Jobs due at one instant with a flexible window, fired by two scheduler processes: each
    job once, none before its nominal time or after its window, each at its planned point
    (both processes agree on it), and the burst spread evenly over the window."""
    engine = create_engine(database_url)
    jobs, window = 3_000, 6
    env = process_env(database_url)
    with (
        running(start_scheduler(env, tmp_path / "first.log")) as first,
        running(start_scheduler(env, tmp_path / "second.log")) as second,
    ):
        both = (first, second)  # up (on a slow machine that takes seconds), then due
        wait_until(lambda: all("scheduler started" in s.output() for s in both), 60, first)
        due = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        insert_one_shot_jobs(engine, jobs, due, window=window)
        wait_until(lambda: queue_runs(engine) == jobs, window + 60, first)
        assert first.terminate() == 0 and second.terminate() == 0
    assert_each_job_fired_once(engine, jobs)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Run.scheduled_for, Run.fired_at, Job.id).join(Job, Job.id == Run.job_id)
        ).all()
    per_second = [0] * window
    for scheduled_for, fired_at, job_id in rows:
        planned = due + window_offset(job_id, window)
        assert scheduled_for.replace(tzinfo=UTC) == due  # the run keeps its nominal time
        fired = fired_at.replace(tzinfo=UTC)
        assert planned <= fired < planned + timedelta(seconds=2), (planned, fired)
        assert due <= fired < due + timedelta(seconds=window + 2)
        per_second[min(window - 1, int((fired - due).total_seconds()))] += 1
    mean = jobs / window
    assert all(abs(n - mean) < 0.25 * mean for n in per_second), per_second
    engine.dispose()
