"""In Chromium against the real service: the form's flexible window, retry age and
what happens once completed, typed as a person types them; and the UI signed in with a
key scoped by labels, which shows its slice and nothing else."""

from __future__ import annotations

import subprocess

import pytest
import requests
from playwright.sync_api import expect

from tests.support.processes import BIN, ROOT, process_env
from tests.test_ui_browser import (  # noqa: F401  (fixtures)
    Service,
    begin_interval_job,
    browser,
    playwright,
    press_and_release,
    service,
)

pytestmark = pytest.mark.browser


def test_window_retry_age_and_once_completed_typed_into_the_form(
    service: Service,  # noqa: F811  (the fixture imported above)
) -> None:
    page = begin_interval_job(service, "spread out", 3600)
    press_and_release(page, "#max_age")
    page.keyboard.type("900", delay=40)
    press_and_release(page, "#window")
    page.keyboard.type("120", delay=40)
    page.focus("#on_complete")
    page.keyboard.press("End")  # the last choice: delete it
    expect(page.locator("#on_complete")).to_have_value("delete")
    expect(page.locator("#on_complete")).to_be_focused()  # left there, as a person would
    press_and_release(page, "#submit")
    expect(page.locator(".flash")).to_contain_text("Job created")
    (job,) = service.api("/schedules").json()
    assert (job["window"], job["retry"]["maxAge"], job["onComplete"]) == (120, 900, "delete")
    expect(page.locator("#job-window")).to_contain_text("120 s: fires")
    expect(page.locator("#job-on-complete")).to_have_text("deleted, when its runs are finished")
    expect(page.locator("dd", has_text="attempts")).to_contain_text("none once 900 s old")


def make_key(database_url: str, *args: str) -> str:
    """`flask --app wsgi keys create …` as an operator runs it; the key it prints."""
    env = process_env(database_url, SECRET_KEY="browser-tests")
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "keys", "create", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[0]


def test_signed_in_with_a_key_scoped_by_labels_the_ui_shows_its_slice(
    service: Service,  # noqa: F811
    database_url: str,
) -> None:
    admin = {"Authorization": f"Bearer {make_key(database_url, '--name', 'admin')}"}
    billing = make_key(database_url, "--name", "billing", "--labels", "team=billing")
    ids = {}
    for name, team in (("invoices", "billing"), ("reports", "data")):
        body = {"name": name, "payload": name, "recurring": "interval", "interval": 3600,
                "at": "2030-01-01T00:00:00Z", "labels": {"team": team}}  # fmt: skip
        answer = requests.post(f"{service.base}/schedules", json=body, headers=admin, timeout=5)
        assert answer.status_code == 201, answer.text
        ids[name] = answer.json()["jobId"]

    page = service.page
    page.goto(f"{service.base}/ui/jobs")
    expect(page.locator("#secret")).to_be_visible()  # a key exists now: sign in first
    press_and_release(page, "#secret")
    page.keyboard.type(billing, delay=10)
    page.keyboard.press("Enter")
    expect(page.locator("#job-table .job-link")).to_have_text(["invoices"])
    expect(page.locator("#job-counts")).to_have_text("1 active · 0 paused · 0 completed")
    expect(page.locator("nav a[href='/ui/queues']")).to_have_count(0)
    page.goto(f"{service.base}/ui/jobs/{ids['reports']}")
    expect(page.locator("h1")).to_contain_text("Not found")  # never "forbidden": no leak

    page.goto(f"{service.base}/ui/jobs/new")  # a job made here gets the key's labels
    press_and_release(page, "#payload")
    page.keyboard.type("made by billing", delay=40)
    press_and_release(page, "#submit")
    expect(page.locator(".flash")).to_contain_text("Job created")
    made = [
        job for job in requests.get(f"{service.base}/schedules", headers=admin, timeout=5).json()
        if job["payload"] == "made by billing"
    ]  # fmt: skip
    assert [job["labels"] for job in made] == [{"team": "billing"}]
