"""Moving a service's jobs from the SQLite default to PostgreSQL with `scheduler export`
and `scheduler import jobs`, as the README's "Running in production" shows."""

from __future__ import annotations

import json
import subprocess
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from scheduler_client import Client
from tests.conftest import pg_admin, pg_url
from tests.support.processes import BIN, ROOT, process_env, wait_until
from tests.support.service import start_service
from tests.test_cli import scheduler

pytestmark = pytest.mark.slow


def flask_db_upgrade(database_url: str) -> None:
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=process_env(database_url),
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_jobs_move_from_sqlite_to_postgresql(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'scheduler.sqlite'}"
    flask_db_upgrade(sqlite_url)
    export = tmp_path / "jobs.jsonl"
    with ExitStack() as stack:
        (tmp_path / "old").mkdir()
        old = start_service(stack, sqlite_url, tmp_path / "old")
        client = stack.enter_context(Client(old.url))
        client.create_job(
            {
                "payload": "report",
                "recurring": "cron",
                "cron": "0 9 * * MON-FRI",
                "timezone": "Europe/Berlin",
                "name": "report",
                "labels": {"team": "billing"},
                "retry": {"attempts": 3},
            }
        )
        paused = client.create_job(
            {
                "payload": "every minute",
                "recurring": "interval",
                "interval": 60,
                "at": "2030-01-01T00:00:00Z",
                "target": {"type": "queue", "name": "ticks"},
            }
        )
        client.pause_job(paused.job_id, note="until the migration is over")
        client.create_job(
            {
                "payload": "hook",
                "at": "2099-01-01T00:00:00Z",
                "target": {"type": "webhook", "url": "https://example.com/hook"},
            }
        )
        done = client.create_job({"payload": "fired already", "at": "2020-01-01T00:00:00Z"})
        wait_until(lambda: client.get_job(done.job_id).status == "completed", 30)
        before = sorted(
            (j.spec() for j in client.list_jobs() if j.status != "completed"),
            key=lambda spec: spec["payload"],
        )

        exported = scheduler(old, "export", "--output", str(export))
        assert exported.returncode == 0, exported.stderr
        assert "exported 3 job(s)" in exported.stderr  # the completed one-shot stays behind

    database = f"sched_move_{uuid.uuid4().hex[:10]}"
    pg_admin(f"CREATE DATABASE {database}")
    try:
        postgres_url = pg_url(database)
        flask_db_upgrade(postgres_url)
        with ExitStack() as stack:
            (tmp_path / "new").mkdir()
            new = start_service(stack, postgres_url, tmp_path / "new")
            imported = scheduler(new, "import", "jobs", str(export), "--json")
            assert imported.returncode == 0, imported.stderr
            assert "created 3 job(s)" in imported.stderr
            assert "1 webhook job(s) got new signing secrets" in imported.stderr
            secrets = [
                json.loads(line)["target"].get("secret") for line in imported.stdout.splitlines()
            ]
            assert sum(1 for s in secrets if s) == 1  # shown once, in the import's answer

            again = scheduler(new, "import", "jobs", str(export))  # a second run: nothing new
            assert again.returncode == 0, again.stderr
            client = stack.enter_context(Client(new.url))
            after = sorted((j.spec() for j in client.list_jobs()), key=lambda s: s["payload"])
            for spec in after:  # the one field the export cannot carry: the new secret
                if spec.get("target", {}).get("type") == "webhook":
                    spec["target"].pop("secret", None)
            assert after == before
            ticks = next(j for j in client.list_jobs() if j.payload == "every minute")
            assert (
                ticks.status == "paused" and ticks.raw["pauseNote"] == "until the migration is over"
            )
    finally:
        pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
