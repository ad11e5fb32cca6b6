"""The web app starts light: served by gunicorn, it never imports what only the scheduler
process or the migration commands use (alembic, the targets' clients), even once it has
taken jobs for every kind of target. The flask command keeps the migration commands."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.processes import ROOT, process_env

HEAVY = ("alembic", "flask_migrate", "aiohttp", "boto3", "botocore", "kombu", "redis", "nats")
SERVE = """
import json, sys
import wsgi
client = wsgi.app.test_client()
for target in ({"type": "webhook", "url": "https://example.com/hook"},
               {"type": "queue", "name": "default"},
               {"type": "sqs", "queueUrl": "https://sqs.us-east-1.amazonaws.com/1/q"}):
    answer = client.post("/schedules", json={"payload": "{}", "target": target,
                                              "at": "2030-01-01T00:00:00Z"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
print(json.dumps({"loaded": [m for m in HEAVY if m in sys.modules],
                  "db_command": "db" in wsgi.app.cli.commands}))
"""


def loaded_when_serving(database_url: str, **env: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{SERVE}"],
        cwd=ROOT,
        env=process_env(database_url, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_under_gunicorn_the_web_app_loads_no_client_and_no_alembic(database_url: str) -> None:
    # gunicorn's arbiter sets SERVER_SOFTWARE before its workers import the app
    seen = loaded_when_serving(database_url, SERVER_SOFTWARE="gunicorn/23.0.0")
    assert seen == {"loaded": [], "db_command": False}


def test_the_flask_command_keeps_the_migration_commands(database_url: str) -> None:
    seen = loaded_when_serving(database_url)
    assert seen["db_command"] is True
    assert "alembic" in seen["loaded"]  # the cost the served app avoids
