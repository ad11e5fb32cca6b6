"""The `scheduler` command against the real service (gunicorn and the scheduler process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from scheduler_client import Client
from tests.support.processes import BIN, ROOT, free_port, wait_until
from tests.support.service import Service

pytestmark = pytest.mark.slow
LATER = "2099-01-01T00:00:00Z"


def scheduler(
    service: Service | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as a shell runs it (this work tree's code, as `make venv` installs it)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
    if service is not None:
        environment["SCHEDULER_URL"] = service.url
    environment |= env or {}
    return subprocess.run(
        [sys.executable, "-m", "scheduler_client", *args],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def ok_json(service: Service, *args: str) -> Any:
    done = scheduler(service, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def label() -> str:
    return f"test={uuid.uuid4().hex[:12]}"


def test_the_entry_point_is_installed_in_the_virtualenv() -> None:
    done = subprocess.run([str(BIN / "scheduler"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "jobs" in done.stdout and "import" in done.stdout


def test_jobs_from_create_to_delete(service: Service) -> None:
    tag = label()
    job = ok_json(service, "jobs", "create", "--payload", "report", "--cron", "0 9 * * MON-FRI",
                  "--timezone", "Europe/Berlin", "--name", "daily report",
                  "--label", tag)  # fmt: skip
    assert (job["recurring"], job["cron"], job["name"]) == (
        "cron",
        "0 9 * * MON-FRI",
        "daily report",
    )
    job_id = job["jobId"]

    shown = scheduler(service, "jobs", "list", "--label", tag.replace("=", ":"))
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "RULE", "NEXT", "RUN", "TARGET"]
    assert row.startswith(job_id) and "daily report" in row and "queue:default" in row
    assert header.index("STATUS") == row.index("active")  # columns aligned

    assert ok_json(service, "jobs", "get", job_id)["jobId"] == job_id
    updated = ok_json(service, "jobs", "update", job_id, "--payload", "weekly report")
    assert (updated["payload"], updated["cron"], updated["name"]) == (
        "weekly report",
        "0 9 * * MON-FRI",
        "daily report",
    )  # fmt: skip  (update changes only the fields given)
    paused = ok_json(service, "jobs", "pause", job_id, "--note", "holiday")
    assert (paused["status"], paused["pauseNote"]) == ("paused", "holiday")
    assert ok_json(service, "jobs", "resume", job_id)["status"] == "active"
    run = ok_json(service, "jobs", "run", job_id)
    assert run["jobId"] == job_id
    assert ok_json(service, "jobs", "delete", job_id)["jobId"] == job_id
    gone = scheduler(service, "jobs", "get", job_id)
    assert gone.returncode == 1 and "404 Not found" in gone.stderr


def test_bulk_actions_by_label(service: Service) -> None:
    tag = label()
    for i in range(3):
        ok_json(service, "jobs", "create", "--payload", str(i), "--at", LATER, "--label", tag)
    paused = ok_json(service, "jobs", "pause", "--label", tag)
    assert paused["changed"] == 3
    said = scheduler(service, "jobs", "delete", "--label", tag)
    assert said.returncode == 0 and said.stdout.startswith("delete: 3 changed")
    assert ok_json(service, "jobs", "list", "--label", tag.replace("=", ":")) == []


def test_a_refused_request_exits_1_with_the_problems_words(service: Service) -> None:
    done = scheduler(service, "jobs", "create", "--payload", "x", "--cron", "61 * * * *")
    assert done.returncode == 1
    assert done.stderr.startswith("scheduler: 422 Invalid request") and "cron" in done.stderr
    usage = scheduler(service, "jobs", "create", "--at", LATER)  # no payload
    assert usage.returncode == 2 and "--payload" in usage.stderr


def test_url_and_key_from_flags_and_the_environment(service: Service) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    failed = scheduler(None, "queue", "stats", env={"SCHEDULER_URL": down})
    assert failed.returncode == 1 and "unreachable" in failed.stderr
    flagged = scheduler(None, "queue", "stats", "--url", service.url, "--json",
                        env={"SCHEDULER_URL": down})  # fmt: skip
    assert flagged.returncode == 0, flagged.stderr
    assert json.loads(flagged.stdout)["name"] == "default"


def test_runs_list_and_retry(service: Service) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: the run dies
    job = ok_json(service, "jobs", "create", "--payload", "x", "--at", "2020-01-01T00:00:00Z",
                  "--target", dead_url, "--retry-attempts", "1")  # fmt: skip

    def dead() -> list[Any]:
        return list(ok_json(service, "runs", "list", "--job", job["jobId"], "--status", "dead"))

    wait_until(lambda: len(dead()) == 1, 30)
    [run] = dead()
    table = scheduler(service, "runs", "list", "--job", job["jobId"])
    assert run["runId"] in table.stdout and "dead" in table.stdout
    [retried] = ok_json(service, "runs", "retry", run["runId"])
    assert retried["runId"] == run["runId"] and retried["status"] != "dead"


def test_preview_in_words_and_times(service: Service) -> None:
    done = scheduler(service, "preview", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin",
                     "--after", "2030-03-30T12:00:00Z", "--count", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2].split() == ["UTC", "LOCAL", "(Europe/Berlin)", "NOTE"]
    # 02:30 does not exist on 31 March: the first instant after the gap, 03:00.
    assert lines[3].split() == ["2030-03-31T01:00:00Z", "2030-03-31T03:00:00+02:00", "dst-shift"]
    assert lines[4].split()[2] == "-"


def test_preview_of_a_whole_job_explains_each_note(service: Service) -> None:
    spec = {
        "recurring": "daily",
        "at": "2030-12-24T09:00:00Z",
        "exclude": {"dates": ["2030-12-25"]},
    }
    done = scheduler(service, "preview", "--spec", json.dumps(spec), "--explain",
                     "--after", "2030-12-24T10:00:00Z", "--count", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    skipped = done.stdout.splitlines()[3]
    assert skipped.startswith("2030-12-25T09:00:00Z") and "skipped: " in skipped
    [_, later] = ok_json(service, "preview", "--spec", json.dumps(spec), "--after",
                         "2030-12-24T10:00:00Z", "--count", "2")["times"]  # fmt: skip
    assert later == {"utc": "2030-12-26T09:00:00Z", "local": "2030-12-26T09:00:00+00:00",
                     "skipped": False, "notes": [], "explain": []}  # fmt: skip
    job = ok_json(service, "jobs", "create", "--payload", "p", "--spec", json.dumps(spec))
    stored = ok_json(service, "preview", "--job", job["jobId"], "--count", "1")
    assert [t["utc"] for t in stored["times"]] == ["2030-12-24T09:00:00Z"]


def test_queue_receive_ack_stats(service: Service) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    ok_json(service, "jobs", "create", "--payload", "hello", "--at", "2020-01-01T00:00:00Z",
            "--target", f"queue:{queue}")  # fmt: skip
    [message] = ok_json(service, "queue", "receive", queue, "--wait", "10")
    assert message["payload"] == "hello"
    assert ok_json(service, "queue", "stats", queue)["inFlight"] == 1
    acked = scheduler(service, "queue", "ack", queue, message["receipt"])
    assert acked.returncode == 0, acked.stderr  # what the command said, should it fail
    assert acked.stdout.strip() == "acknowledged 1 of 1"
    stats = scheduler(service, "queue", "stats", queue).stdout.splitlines()
    assert stats[0].split() == ["QUEUE", "DEPTH", "IN", "FLIGHT", "OLDEST"]
    assert stats[1].split() == [queue, "0", "0", "-"]


CRONTAB = """\
SHELL=/bin/sh
MAILTO=ops@example.com
# nightly backup
0 3 * * * /usr/local/bin/backup --all

CRON_TZ=Europe/Berlin
# reports for Berlin
30 9 * * MON-FRI /opt/report.sh
@daily /opt/rotate-logs
# 0 4 * * * /opt/retired-job (commented out: no job, and names nothing)
@hourly /opt/ping
"""


def test_import_crontab_shows_first_then_creates_on_yes(service: Service, tmp_path: Path) -> None:
    tag = label()
    path = tmp_path / "crontab"
    path.write_text(CRONTAB)
    target = f"queue:cron-{uuid.uuid4().hex[:6]}"
    shown = scheduler(service, "import", "crontab", str(path), "--target", target, "--label", tag)
    assert shown.returncode == 0, shown.stderr
    assert "4 job(s) would be created; run again with --yes" in shown.stderr
    rows = shown.stdout.splitlines()
    assert rows[0].split()[:3] == ["LINE", "NAME", "CRON"]
    assert [r.split()[0] for r in rows[1:]] == ["4", "8", "9", "11"]
    assert listed(service, tag) == []

    made = scheduler(service, "import", "crontab", str(path), "--target", target,
                     "--label", tag, "--yes")  # fmt: skip
    assert made.returncode == 0, made.stderr
    jobs = {j.payload: j for j in listed(service, tag)}
    assert set(jobs) == {"/usr/local/bin/backup --all", "/opt/report.sh", "/opt/rotate-logs",
                         "/opt/ping"}  # fmt: skip
    backup, report = jobs["/usr/local/bin/backup --all"], jobs["/opt/report.sh"]
    assert (backup.name, backup.cron, backup.timezone) == ("nightly backup", "0 3 * * *", "UTC")
    assert (report.name, report.timezone) == ("reports for Berlin", "Europe/Berlin")
    rotate, ping = jobs["/opt/rotate-logs"], jobs["/opt/ping"]
    assert (rotate.cron, rotate.name, rotate.timezone) == ("@daily", None, "Europe/Berlin")
    assert ping.cron == "@hourly" and ping.name is None
    assert backup.target == {"type": "queue", "name": target.removeprefix("queue:")}


def test_import_crontab_names_bad_lines_and_creates_none(service: Service, tmp_path: Path) -> None:
    tag = label()
    path = tmp_path / "crontab"
    path.write_text("0 3 * * * /good\n@reboot /start-me\n61 * * * * /bad-minute\nnot a line\n"
                    "CRON_TZ=Mars/Olympus\n0 1 * * * /bad-zone\n")  # fmt: skip
    done = scheduler(service, "import", "crontab", str(path), "--target", "queue:x",
                     "--label", tag, "--yes")  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("line ")]
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 3", "line 4", "line 6"]
    assert "reboot" in errors[0] and "cron" in errors[1] and "timezone" in errors[3]
    assert "nothing was created" in done.stderr
    assert listed(service, tag) == []


def listed(service: Service, tag: str) -> list[Any]:
    """The jobs carrying this label, read with a client that is closed afterwards."""
    with Client(service.url) as client:
        return list(client.list_jobs(labels=[tag.replace("=", ":")]))
