"""Real processes for the tests that need them: gunicorn and the scheduler process."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DATABASE_URL": database_url, "FLASK_APP": "wsgi", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class Proc:
    """A child process whose output goes to a file (read it when a test fails)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        self.popen.kill()
        self.popen.wait(10)
        self.handle.close()

    def terminate(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(timeout)
        if not self.handle.closed:
            self.handle.close()
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_scheduler(env: dict[str, str], log: Path) -> Proc:
    return Proc([str(BIN / "flask"), "--app", "wsgi", "scheduler", "run"], env, log)


def start_web(env: dict[str, str], log: Path, port: int) -> Proc:
    args = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--threads", "4", "--worker-class", "gthread", "wsgi:app"]  # fmt: skip
    proc = Proc(args, env, log)
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/readyz"), 30, proc)
    return proc


def _answers(url: str) -> bool:
    """One GET on a connection of its own, closed whatever happens (a pooled one that timed
    out while gunicorn was starting would be left open, and warned about later)."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=1)
    try:
        conn.request("GET", where.path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_until(
    condition: object, timeout: float, proc: Proc | None = None, step: float = 0.1
) -> None:
    """Poll a condition of the outside world (another process) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"process exited early:\n{proc.output()[-3000:]}")
        time.sleep(step)
    detail = proc.output()[-3000:] if proc else ""
    raise AssertionError(f"condition not met within {timeout} s\n{detail}")


@contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.terminate()  # one that exited already is reaped and its log closed all the same
