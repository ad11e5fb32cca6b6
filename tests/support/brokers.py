"""The message brokers on loopback for the broker targets' tests: RabbitMQ, Redis and NATS
as the machine runs them (`make services` starts any that is not answering), a switchable
TCP proxy in front of each (a broker that goes away and comes back), and real Celery
worker processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.sqs_server import TcpProxy

RABBIT = ("127.0.0.1", 5672)
REDIS = ("127.0.0.1", 6379)
NATS = ("127.0.0.1", 4222)
ROOT = Path(__file__).resolve().parents[2]


def answering(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
        return True
    except OSError:
        return False


def require(address: tuple[str, int], name: str) -> None:
    """A broker that is not running fails the test (never a silent skip): `make services`."""
    assert answering(address), f"{name} is not answering on {address}: run `make services`"


def url(scheme: str, port: int) -> str:
    credentials = "guest:guest@" if scheme == "amqp" else ""
    path = "/0" if scheme == "redis" else ("//" if scheme == "amqp" else "")
    return f"{scheme}://{credentials}127.0.0.1:{port}{path}"


@pytest.fixture
def brokers() -> dict[str, str]:
    """CONNECTIONS for the real brokers, straight to them."""
    require(RABBIT, "RabbitMQ")
    require(REDIS, "Redis")
    require(NATS, "NATS")
    return {
        "rabbit": url("amqp", RABBIT[1]),
        "cache": url("redis", REDIS[1]),
        "events": url("nats", NATS[1]),
    }


@pytest.fixture
def proxies(brokers: dict[str, str]) -> Iterator[dict[str, TcpProxy]]:
    """A switchable proxy in front of each broker, by scheme: proxies["amqp"].disable()."""
    made = {"amqp": TcpProxy(RABBIT), "redis": TcpProxy(REDIS), "nats": TcpProxy(NATS)}
    for proxy in made.values():
        proxy.enable()
    try:
        yield made
    finally:
        for proxy in made.values():
            proxy.disable()


def proxied(proxies: dict[str, TcpProxy]) -> dict[str, str]:
    """CONNECTIONS through the proxies (the same names as `brokers`, and `celery-*`)."""
    return {
        "rabbit": url("amqp", proxies["amqp"].port),
        "cache": url("redis", proxies["redis"].port),
        "events": url("nats", proxies["nats"].port),
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextmanager
def celery_worker(broker: str, queue: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process (tests/support/celery_app.py) consuming `queue` from
    `broker`, ready when this returns; stopped afterwards."""
    env = os.environ | {"CELERY_TEST_BROKER": broker, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "celery", "-A", "tests.support.celery_app", "worker", "-Q", queue,
        "--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-l", "info", "-n", f"{queue}@%h",
    ]  # fmt: skip
    worker = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert worker.stdout is not None
    drain = threading.Thread(target=worker.stdout.read, daemon=True)
    try:
        _wait_ready(worker)
        drain.start()  # keep reading its log, so a full pipe never stalls it
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if drain.is_alive():
            drain.join(timeout=5)
        worker.stdout.close()


def _wait_ready(worker: subprocess.Popen[bytes], timeout: float = 60) -> None:
    assert worker.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = worker.stdout.readline().decode(errors="replace")
        if not line and worker.poll() is not None:
            break
        seen.append(line)
        if " ready." in line:
            return
    raise AssertionError("the celery worker did not start:\n" + "".join(seen[-30:]))


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "it") -> Any:
    """Poll a real process's effect until `check()` is truthy (a worker runs on its own
    time, which no test clock moves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
