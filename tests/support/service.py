"""The whole service, as a user runs it, for the client and command-line tests: gunicorn
and the scheduler process on a database of their own, shared by one test module."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import (
    BIN,
    ROOT,
    Proc,
    free_port,
    process_env,
    running,
    start_scheduler,
    start_web,
)


@dataclass
class Service:
    url: str
    database_url: str
    env: dict[str, str]
    web: Proc
    scheduler: Proc

    def logs(self) -> str:
        return self.web.output() + self.scheduler.output()


def create_key(env: dict[str, str], name: str, *options: str) -> str:
    """An API key made with the operators' own command."""
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "keys", "create", "--name", name, *options],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def start_service(
    stack: ExitStack, database_url: str, folder: Path, port: int | None = None, **settings: str
) -> Service:
    """The two processes, stopped when `stack` closes."""
    env = process_env(database_url, WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8", **settings)
    port = port or free_port()
    scheduler = stack.enter_context(running(start_scheduler(env, folder / "scheduler.log")))
    web = stack.enter_context(running(start_web(env, folder / "web.log", port)))
    return Service(f"http://127.0.0.1:{port}", database_url, env, web, scheduler)


@pytest.fixture(scope="module")
def service(
    db_kind: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One running service for the whole module (tests keep to jobs of their own)."""
    from tests.conftest import copy_of_template

    folder = tmp_path_factory.mktemp("service")
    with copy_of_template(db_kind, template_db, folder) as url, ExitStack() as stack:
        yield start_service(stack, url, folder)
