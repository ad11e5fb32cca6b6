"""Log lines: their context in text and JSON, requests logged, secrets never written."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from app.logs import JsonLineFormatter, TextFormatter
from scheduler_client import Client
from tests.support.http_target import HttpTarget, Response
from tests.support.processes import wait_until
from tests.support.service import create_key, start_service

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEADER_TOKEN = "hdr-token-7f3a9c"


def record(message: str, **extra: Any) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "app.test", "levelname": "WARNING", "msg": message})
    made.__dict__.update(extra)
    return made


def test_text_lines_carry_their_context_as_key_value() -> None:
    line = TextFormatter().format(
        record(
            "webhook delivery failed",
            job_id="j1",
            run_id="r1",
            target="webhook http://h/",
            attempt=2,
            error="HTTP 500 from the target",
        )
    )
    assert line.endswith(
        'webhook delivery failed job_id=j1 run_id=r1 target="webhook http://h/" attempt=2 '
        'error="HTTP 500 from the target"'
    )
    assert " WARNING app.test " in line


def test_json_lines_are_one_object_with_the_fields() -> None:
    line = JsonLineFormatter().format(record("run dead", job_id="j1", run_id="r1", attempt=3))
    assert "\n" not in line
    data = json.loads(line)
    assert {k: data[k] for k in ("level", "logger", "message", "job_id", "run_id", "attempt")} == {
        "level": "WARNING", "logger": "app.test", "message": "run dead", "job_id": "j1",
        "run_id": "r1", "attempt": 3,
    }  # fmt: skip
    assert data["time"].endswith("Z")


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonLineFormatter()])
def test_secrets_are_blanked_wherever_they_are(formatter: logging.Formatter) -> None:
    key = "sk_" + "a1B2" * 10
    line = formatter.format(record(f"failed for {SECRET}", error=f"Bearer {key} refused"))
    assert SECRET not in line and key not in line and "[redacted]" in line


@pytest.mark.slow
def test_a_secret_bearing_job_leaves_no_secret_in_the_logs(
    db_kind: str, template_db: str, tmp_path: Path, http_target: HttpTarget
) -> None:
    """Both processes in JSON: request lines, delivery lines with their context, and not
    the webhook's secret, its header's token or the API key anywhere."""
    from tests.conftest import copy_of_template

    http_target.respond("/hook", Response(500), Response(500))
    with copy_of_template(db_kind, template_db, tmp_path) as url, ExitStack() as stack:
        service = start_service(stack, url, tmp_path, LOG_FORMAT="json", REQUIRE_API_KEYS="true")
        key = create_key(service.env, "log-test")
        with Client(service.url, key) as client:
            job = client.create_job(
                {"payload": "secret-free payload", "at": "2020-01-01T00:00:00Z",
                 "retry": {"attempts": 2, "backoff": 0.1},
                 "target": {"type": "webhook", "url": f"{http_target.url}/hook", "secret": SECRET,
                            "headers": {"X-Token": HEADER_TOKEN}}}
            )  # fmt: skip
            wait_until(lambda: client.get_job(job.job_id).run_count == 1, 30)
            wait_until(
                lambda: [r.status for r in client.list_runs(job_id=job.job_id)] == ["dead"], 30
            )
            [run] = client.list_runs(job_id=job.job_id)
        assert len(http_target.requests_to("/hook")) == 2
        web, scheduler = service.web, service.scheduler
        stack.close()  # both stopped: every line written

    text = web.output() + scheduler.output()
    for secret in (SECRET, key, HEADER_TOKEN):
        assert secret not in text
    ours = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert all(isinstance(line, dict) for line in ours)

    created = [line for line in ours if line["message"] == "request" and line["method"] == "POST"]
    assert {"path": "/schedules", "status": 201, "key": "log-test"}.items() <= created[0].items()
    assert isinstance(created[0]["ms"], float)

    context = {
        "job_id": job.job_id,
        "run_id": run.run_id,
        "target": f"webhook {http_target.url}/hook",
    }
    failed = [line for line in ours if line["message"] == "webhook delivery failed"]
    assert [line["attempt"] for line in failed] == [1, 2]
    assert all(context.items() <= line.items() and line["status"] == 500 for line in failed)
    [dead] = [line for line in ours if line["message"] == "run dead"]
    assert context.items() <= dead.items() and dead["attempt"] == 2 and "500" in dead["error"]
    started = [line for line in ours if line["message"] == "scheduler started"]
    assert started and started[0]["logger"] == "app.scheduler.process"
