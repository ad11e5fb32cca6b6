"""Screenshots of the browser UI for the README: docs/screenshots/*.png.

Starts the real service (gunicorn and the scheduler process) on a fresh SQLite database in a
temporary folder, creates a few jobs through the JSON API, adds an hour of run history (so the
charts have something to draw), then photographs each page in headless Chromium (Debian's,
at /usr/bin/chromium).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import itertools
import random
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import create_engine, insert, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.ids import new_id  # noqa: E402
from app.models import Job, Run  # noqa: E402
from tests.support.browser import ZONE, launch_chromium  # noqa: E402
from tests.support.processes import (  # noqa: E402
    BIN,
    free_port,
    process_env,
    running,
    start_scheduler,
    start_web,
    wait_until,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        url = f"sqlite:///{tmp / 'scheduler.sqlite'}"
        env = process_env(
            url,
            SECRET_KEY="screenshots",
            WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
            # Nothing leaves this machine: an SQS run would go to a closed loopback port.
            AWS_ENDPOINT_URL_SQS=f"http://127.0.0.1:{free_port()}",
            AWS_ACCESS_KEY_ID="screenshots",
            AWS_SECRET_ACCESS_KEY="screenshots",
        )
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with (
            running(start_scheduler(env, tmp / "scheduler.log")),
            running(start_web(env, tmp / "web.log", port)),
        ):
            receiver = start_receiver()
            job_ids = seed_jobs(base, receiver.server_address[1])
            seed_messages(base)
            wait_until(lambda: dead_runs(base) > 0 and retried_runs(base) > 0, 60)
            add_history(url, job_ids)
            photograph(base, job_ids, args.out)
            receiver.shutdown()
    print(f"screenshots in {args.out}")


def create(base: str, body: dict[str, Any]) -> str:
    answer = requests.post(f"{base}/schedules", json=body, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["jobId"])


def at(minutes: float = 0, seconds: float = 0) -> str:
    """An RFC 3339 instant: this minute (floored) plus `minutes`, or now plus `seconds`."""
    now = datetime.now(UTC)
    instant = now.replace(second=0, microsecond=0) + timedelta(minutes=minutes)
    if seconds:
        instant = now.replace(microsecond=0) + timedelta(seconds=seconds)
    return instant.isoformat().replace("+00:00", "Z")


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver on loopback that fails one request in three (503), so the
    pictures show retries as well as deliveries."""

    calls = itertools.count()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = 503 if next(self.calls) % 3 == 1 else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_receiver() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def seed_jobs(base: str, receiver_port: int) -> dict[str, str]:
    closed = free_port()  # nobody listens here: the webhook's runs fail and die
    return {
        "orders": create(
            base,
            {
                "name": "export-orders",
                "payload": '{"export": "orders", "since": "last-run"}',
                "recurring": "interval",
                "interval": 5,
                "at": at(seconds=1),
                "target": {
                    "type": "webhook",
                    "url": f"http://127.0.0.1:{receiver_port}/hooks/orders",
                    "headers": {"X-Team": "fulfilment"},
                    "timeout": 5.0,
                },
                "retry": {"attempts": 4, "backoff": 1, "maxBackoff": 10},
            },
        ),
        "heartbeat": create(
            base,
            {
                "name": "heartbeat",
                "payload": '{"ping": true}',
                "recurring": "interval",
                "interval": 30,
                "at": at(1),
                "target": {"type": "queue", "name": "health"},
            },
        ),
        "emails": create(
            base,
            {
                "name": "send-digest-emails",
                "payload": '{"batch": "digest", "limit": 500}',
                "recurring": "cron",
                "cron": "*/5 * * * *",
                "timezone": ZONE,
                "target": {"type": "queue", "name": "emails"},
            },
        ),
        "report": create(
            base,
            {
                "name": "weekday-report",
                "payload": '{"report": "sales", "format": "pdf"}',
                "recurring": "cron",
                "cron": "0 9 * * MON-FRI",
                "timezone": ZONE,
                "target": {
                    "type": "sqs",
                    "queueUrl": "https://sqs.eu-central-1.amazonaws.com/123456789012/reports",
                },
            },
        ),
        "reminder": create(
            base,
            {"name": "drink-water", "payload": "drink more water", "at": at(22), "timezone": ZONE},
        ),
        "billing": create(
            base,
            {
                "name": "nightly-billing",
                "payload": '{"job": "invoice-run"}',
                "recurring": "daily",
                "at": at(35),
                "timezone": ZONE,
                "target": {"type": "webhook", "url": "https://billing.example.com/hooks/run"},
            },
        ),
        "cleanup": create(
            base,
            {
                "name": "weekly-cleanup",
                "payload": "vacuum old sessions",
                "recurring": "weekly",
                "at": at(60 * 30),
                "timezone": ZONE,
                "status": "paused",
            },
        ),
        "sync": create(
            base,
            {
                "name": "crm-sync",
                "payload": '{"source": "crm", "full": false}',
                "recurring": "interval",
                "interval": 600,
                "at": at(seconds=2),
                "target": {"type": "webhook", "url": f"http://127.0.0.1:{closed}/sync"},
                "retry": {"attempts": 1, "backoff": 1},
            },
        ),
    }


def seed_messages(base: str) -> None:
    """A few messages waiting in the built-in queue "emails", one of them received."""
    for to in ("ada@example.com", "grace@example.com", "linus@example.com"):
        create(
            base,
            {
                "payload": f'{{"to": "{to}", "template": "welcome"}}',
                "at": at(seconds=1),
                "target": {"type": "queue", "name": "emails"},
            },
        )
    wait_until(lambda: queue_depth(base, "emails") == 3, 30)
    requests.post(
        f"{base}/queues/emails/receive", json={"max": 1, "visibilityTimeout": 600}, timeout=5
    ).raise_for_status()


def queue_depth(base: str, name: str) -> int:
    return int(requests.get(f"{base}/queues/{name}", timeout=5).json()["depth"])


def retried_runs(base: str) -> int:
    runs = requests.get(f"{base}/runs?limit=100", timeout=5).json()
    return sum(1 for run in runs if run["attempts"] > 1)


def dead_runs(base: str) -> int:
    return len(requests.get(f"{base}/runs?status=dead", timeout=5).json())


def add_history(url: str, job_ids: dict[str, str]) -> None:
    """An hour of runs as the dispatcher would have written them (the charts need a past)."""
    engine = create_engine(url)
    now = datetime.now(UTC)
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    heartbeat = uuid.UUID(job_ids["heartbeat"])
    emails = uuid.UUID(job_ids["emails"])
    orders = uuid.UUID(job_ids["orders"])
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    for minute in range(59):
        at = start + timedelta(minutes=minute)
        burst = 1 + (minute // 12) % 3
        for second in range(0, 60, 30 // burst if burst < 3 else 8):
            rows.append(history_row(heartbeat, at + timedelta(seconds=second), rng, minute))
        if minute % 5 == 0:
            rows.append(history_row(emails, at, rng, minute))
        if minute % 2 == 0:  # the webhook: now and then retried, twice given up
            status = "dead" if minute in (14, 38) else "delivered"
            attempts = 4 if status == "dead" else (2 if minute % 6 == 0 else 1)
            rows.append(history_row(orders, at, rng, minute, status, attempts))
    waiting = history_row(orders, now - timedelta(seconds=40), rng, 58, "retrying", 2)
    waiting |= {"next_attempt_at": now + timedelta(minutes=15), "last_error": "HTTP 503"}
    rows.append(waiting)  # a run waiting for its next attempt while the pictures are taken
    beats = [row for row in rows if row["job_id"] == heartbeat]
    with engine.begin() as conn:
        conn.execute(insert(Run.__table__), rows)
        conn.execute(
            update(Job).values(
                created_at=start - timedelta(hours=2), updated_at=start - timedelta(hours=1)
            )
        )
        conn.execute(
            update(Job)
            .where(Job.id == heartbeat)
            .values(run_count=len(beats), last_run_at=beats[-1]["scheduled_for"])
        )
    engine.dispose()


def history_row(
    job_id: uuid.UUID,
    nominal: datetime,
    rng: random.Random,
    minute: int,
    status: str = "delivered",
    attempts: int = 1,
) -> dict[str, Any]:
    """A run as the dispatcher writes it: fired a few milliseconds late (more for a few
    minutes, as under load), delivered or dead after its attempts."""
    lag = rng.uniform(2, 18) + (40 if 30 <= minute <= 34 else 0)
    fired = nominal + timedelta(milliseconds=lag)
    return {
        "id": new_id(),
        "job_id": job_id,
        "scheduled_for": nominal,
        "due_at": nominal,
        "fired_at": fired,
        "status": status,
        "attempts": attempts,
        "next_attempt_at": None,
        "delivered_at": fired + timedelta(milliseconds=3) if status == "delivered" else None,
        "last_error": "HTTP 503 Service Unavailable" if status == "dead" else None,
    }


def photograph(base: str, job_ids: dict[str, str], out: Path) -> None:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        desktop = browser.new_context(
            viewport={"width": 1280, "height": 900}, timezone_id=ZONE, color_scheme="light"
        )
        page = desktop.new_page()
        page.goto(f"{base}/ui/")  # sets the tz cookie and reloads once
        page.wait_for_function(f"document.documentElement.dataset.tz === '{ZONE}'")
        shot(page, f"{base}/ui/", out / "overview.png")
        page.goto(f"{base}/ui/jobs")
        for label in ("Select export-orders", "Select crm-sync"):  # two ticked for an action
            page.locator(f"label:has-text('{label}')").click()
        page.screenshot(path=str(out / "jobs.png"), full_page=True)
        page.goto(f"{base}/ui/jobs/new")
        page.fill("#name", "weekday-standup")
        page.fill("#payload", '{"channel": "#team", "text": "Stand-up in 5 minutes"}')
        page.check("#when-cron")
        page.fill("#cron", "55 9 * * MON-FRI")
        page.fill("#timezone", "America/New_York")
        page.wait_for_function(
            "(document.querySelector('#preview-description') || {textContent: ''})"
            ".textContent.includes('America/New_York')"
        )
        page.screenshot(path=str(out / "new-job.png"), full_page=True)
        shot(page, f"{base}/ui/jobs/{job_ids['heartbeat']}", out / "job.png")
        shot(page, f"{base}/ui/runs", out / "runs.png", full_page=False)
        shot(page, f"{base}/ui/queues?peek=emails", out / "queues.png")
        desktop.close()

        dark = browser.new_context(
            viewport={"width": 1280, "height": 900}, timezone_id=ZONE, color_scheme="dark"
        )
        page = dark.new_page()
        page.goto(f"{base}/ui/")
        page.wait_for_function(f"document.documentElement.dataset.tz === '{ZONE}'")
        shot(page, f"{base}/ui/", out / "overview-dark.png")
        dark.close()

        phone = browser.new_context(
            viewport={"width": 390, "height": 844},
            timezone_id=ZONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        page = phone.new_page()
        page.goto(f"{base}/ui/jobs")
        page.wait_for_function(f"document.documentElement.dataset.tz === '{ZONE}'")
        shot(page, f"{base}/ui/jobs", out / "jobs-phone.png", full_page=False)
        phone.close()
        browser.close()


def shot(page: Page, url: str, path: Path, *, full_page: bool = True) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=full_page)


if __name__ == "__main__":
    main()
