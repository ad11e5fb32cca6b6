"""The browser UI end to end: headless Chromium (Debian's) against the real service, gunicorn
and the scheduler process, on the test's own database. Time is real here: nothing is faked,
so waits are Playwright's `expect` with a timeout, never sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from tests.support.browser import ZONE, launch_chromium
from tests.support.processes import (
    free_port,
    process_env,
    running,
    start_scheduler,
    start_web,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch_chromium(playwright)
    yield browser
    browser.close()


@dataclass
class Service:
    base: str
    page: Page
    elsewhere: list[str]  # requests the page tried to send off this machine

    def api(self, path: str) -> requests.Response:
        return requests.get(self.base + path, timeout=5)


@pytest.fixture
def service(database_url: str, tmp_path: Path, browser: Browser) -> Iterator[Service]:
    env = process_env(database_url, SECRET_KEY="browser-tests")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scheduler = start_scheduler(env, tmp_path / "scheduler.log")
    with running(scheduler), running(start_web(env, tmp_path / "web.log", port)) as web:
        for proc in (scheduler, web):
            assert proc.popen.poll() is None, proc.output()[-3000:]
        context = browser.new_context(timezone_id=ZONE, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        elsewhere: list[str] = []

        def only_here(route: Route) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        context.route("**/*", only_here)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm asks before deleting
        page.goto(f"{base}/ui/")
        # static/app.js puts the browser's zone in the `tz` cookie and reloads once.
        page.wait_for_function(f"document.documentElement.dataset.tz === '{ZONE}'")
        yield Service(base, page, elsewhere)
        assert elsewhere == [], "the UI loads nothing from elsewhere"
        context.close()
        assert scheduler.popen.poll() is None, scheduler.output()[-3000:]
    for proc in (scheduler, web):
        proc.handle.close()  # also when the process had ended by itself


def test_daily_and_cron_jobs_through_the_form_with_a_live_preview(service: Service) -> None:
    page = service.page
    expect(page.locator("#viewer-zone")).to_have_text(ZONE)
    page.get_by_role("link", name="New job").first.click()
    expect(page).to_have_url(f"{service.base}/ui/jobs/new")
    expect(page.locator("#timezone")).to_have_value(ZONE)  # the viewer's zone by default

    page.fill("#name", "standup")
    page.fill("#payload", '{"room": "blue"}')
    page.check("#when-daily")
    page.fill("#at", "2030-01-02T09:30")
    expect(page.locator("#preview-description")).to_have_text("Every day at 09:30, Europe/Berlin")
    expect(page.locator("#preview-times li")).to_have_count(5)
    expect(page.locator("#preview-times li").first).to_contain_text("Wed 2 Jan 2030, 09:30:00 CET")
    page.click("#submit")
    expect(page.locator(".flash")).to_have_text("Job created: standup")
    expect(page.locator("#job-rule")).to_have_text("Every day at 09:30, Europe/Berlin")
    expect(page.locator("#next-times li")).to_have_count(10)

    page.goto(f"{service.base}/ui/jobs/new")
    page.fill("#name", "reports")
    page.fill("#payload", "weekly numbers")
    page.check("#when-cron")
    page.fill("#cron", "0 9 * * FUNDAY")
    expect(page.locator("#preview-error")).to_contain_text("FUNDAY")
    expect(page.locator("#error-cron")).to_contain_text("FUNDAY")
    expect(page.locator("#submit")).to_have_attribute("aria-describedby", "preview-error")
    page.fill("#cron", "0 9 * * MON-FRI")
    page.fill("#timezone", "America/New_York")
    expect(page.locator("#preview-description")).to_have_text(
        "At 09:00, Monday through Friday, America/New_York"
    )
    expect(page.locator("#preview-error")).to_have_count(0)
    expect(page.locator("#error-cron")).to_be_empty()
    expect(page.locator("#submit")).not_to_have_attribute("aria-describedby", "preview-error")
    expect(page.locator("#preview-times li").first).to_contain_text("EST")
    expect(page.locator("#preview-times li").first).to_contain_text("CET for you")
    page.check("#target-webhook")
    page.fill("#webhook_url", "not a url")
    page.click("#submit")
    expect(page.locator("#error-webhook_url")).to_contain_text("http")  # next to its field
    page.fill("#webhook_url", "http://127.0.0.1:9/reports")
    page.click("#submit")
    expect(page.locator("#error-webhook_url")).to_contain_text("loopback")  # the store's check
    expect(page.locator("#webhook_url")).to_be_focused()  # the first field at fault
    page.fill("#webhook_url", "https://hooks.example.com/reports")
    page.click("#submit")
    expect(page.locator(".flash")).to_have_text("Job created: reports")

    jobs = service.api("/schedules").json()
    assert {(job["name"], job["recurring"], job["timezone"]) for job in jobs} == {
        ("standup", "daily", ZONE),
        ("reports", "cron", "America/New_York"),
    }


def test_a_job_due_in_seconds_fires_and_its_run_appears(service: Service) -> None:
    page = service.page
    page.goto(f"{service.base}/ui/jobs/new")
    due = datetime.now(ZoneInfo(ZONE)).replace(microsecond=0) + timedelta(seconds=4)
    page.fill("#name", "soon")
    page.fill("#payload", "<script>alert(1)</script>")
    page.check("#when-at")
    page.fill("#at", due.strftime("%Y-%m-%dT%H:%M:%S"))
    expect(page.locator("#preview-times li")).to_have_count(1)
    page.click("#submit")
    expect(page.locator(".flash")).to_have_text("Job created: soon")
    expect(page.locator("#job-payload")).to_have_text("<script>alert(1)</script>")  # as text
    expect(page.locator("#no-runs")).to_be_visible()
    # The job page refreshes itself: the run shows up once the dispatcher has fired it.
    rows = page.locator("#run-rows tr")
    expect(rows).to_have_count(1, timeout=20_000)
    expect(rows.first.locator(".status-delivered")).to_be_visible(timeout=10_000)
    expect(page.locator("#job-status")).to_have_text("completed", timeout=10_000)
    expect(rows.first).to_contain_text(due.strftime("%H:%M:%S CET"))

    page.goto(f"{service.base}/ui/queues")
    expect(page.locator("#queue-default td").nth(1)).to_have_text("1")
    page.click("#peek-default")
    expect(page.locator("#peek")).to_contain_text("<script>alert(1)</script>")


def test_pause_resume_and_delete_from_the_jobs_list(service: Service) -> None:
    for name in ("keep", "drop"):
        answer = requests.post(
            f"{service.base}/schedules",
            json={
                "name": name,
                "payload": name,
                "recurring": "interval",
                "interval": 3600,
                "at": "2030-01-01T00:00:00Z",
            },
            timeout=5,
        )
        assert answer.status_code == 201
    ids = {job["name"]: job["jobId"] for job in service.api("/schedules").json()}
    page = service.page
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page).to_have_url(f"{service.base}/ui/jobs")
    keep = page.locator(f"#job-row-{ids['keep']}")
    drop = page.locator(f"#job-row-{ids['drop']}")

    keep.get_by_role("button", name="Pause keep").click()
    expect(keep.locator(".badge")).to_have_text("paused")
    expect(page.locator("#toast")).to_contain_text("Job paused")
    assert service.api(f"/schedules/{ids['keep']}").json()["status"] == "paused"
    keep.get_by_role("button", name="Resume keep").focus()
    page.keyboard.press("Enter")  # keyboard works as well as the mouse
    expect(keep.locator(".badge")).to_have_text("active")

    drop.get_by_role("button", name="Delete drop").click()  # the confirm dialog is accepted
    expect(drop).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("Job deleted: drop")
    assert service.api(f"/schedules/{ids['drop']}").status_code == 404

    page.fill("#q", "kee")
    expect(page).to_have_url(
        f"{service.base}/ui/jobs?q=kee&status=&recurring=&target=&label=&sort=-created"
    )
    expect(page.locator("#job-table .job-link")).to_have_text(["keep"])

    page.goto(f"{service.base}/ui/jobs/{ids['keep']}")
    page.click("#toggle-job")
    expect(page.locator(".flash")).to_have_text("Job paused: it does not fire until resumed")
    page.click("#delete-job")
    expect(page).to_have_url(f"{service.base}/ui/jobs")
    expect(page.locator(".flash")).to_contain_text("Job deleted: keep")
    assert service.api("/schedules").json() == []


def test_tick_jobs_and_act_on_them_together(service: Service) -> None:
    """A person sorts the list by name, ticks two jobs, pauses them with one press, then
    ticks the whole page and deletes it."""
    for name in ("cherry", "apple", "banana"):
        body = {"name": name, "payload": name, "recurring": "interval", "interval": 3600,
                "at": "2030-01-01T00:00:00Z"}  # fmt: skip
        assert requests.post(f"{service.base}/schedules", json=body, timeout=5).status_code == 201
    page = service.page
    page.goto(f"{service.base}/ui/jobs")
    links = page.locator("#job-table .job-link")
    expect(links).to_have_text(["banana", "apple", "cherry"])  # newest first
    page.locator("#sort").focus()
    page.keyboard.press("End")  # the last order: by name
    expect(links).to_have_text(["apple", "banana", "cherry"])
    expect(page).to_have_url(re.compile(r"sort=name"))

    expect(page.locator("#bulk-form button[value=pause]")).to_be_disabled()
    press_and_release(page, "label:has-text('Select apple')")
    press_and_release(page, "label:has-text('Select cherry')")
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    expect(page.locator("#select-all")).to_have_js_property("indeterminate", True)
    press_and_release(page, "#bulk-form button[value=pause]")
    expect(page.locator("#toast")).to_have_text("Paused 2 jobs")
    expect(page.locator("#job-table .badge")).to_have_text(["paused", "active", "paused"])
    expect(page.locator("#job-counts")).to_have_text("1 active · 2 paused · 0 completed")
    expect(links).to_have_text(["apple", "banana", "cherry"])  # still in the order chosen
    statuses = {job["name"]: job["status"] for job in service.api("/schedules").json()}
    assert statuses == {"apple": "paused", "banana": "active", "cherry": "paused"}

    press_and_release(page, "label:has-text('Select every job on this page')")
    expect(page.locator("#bulk-count")).to_have_text("3 selected")
    press_and_release(page, "#bulk-form button[value=delete]")  # the confirm is accepted
    expect(page.locator("#toast")).to_have_text("Deleted 3 jobs")
    expect(page.locator("#job-table .empty")).to_contain_text("No jobs")
    assert service.api("/schedules").json() == []


def test_filter_by_two_labels_and_act_on_every_job_carrying_them(service: Service) -> None:
    """A person types two labels into the filter, one a line; the list narrows as they
    type, the focus stays where they type, and one press pauses, then deletes, every job
    with both labels."""
    prod, test = {"team": "billing", "env": "prod"}, {"team": "billing", "env": "test"}
    made = {
        "pay a": prod,
        "pay b": prod,
        "pay test": test,
        "other": {"team": "data", "env": "prod"},
    }
    for name, labels in made.items():
        body = {"name": name, "payload": name, "recurring": "interval", "interval": 3600,
                "at": "2030-01-01T00:00:00Z", "labels": labels}  # fmt: skip
        assert requests.post(f"{service.base}/schedules", json=body, timeout=5).status_code == 201
    page = service.page
    page.goto(f"{service.base}/ui/jobs")
    links = page.locator("#job-table .job-link")
    expect(links).to_have_count(4)
    press_and_release(page, "#label")
    page.keyboard.type("team: billing", delay=40)
    expect(links).to_have_text(["pay test", "pay b", "pay a"])
    page.keyboard.press("Enter")  # a second line
    page.keyboard.type("env: prod", delay=40)
    expect(links).to_have_text(["pay b", "pay a"])
    expect(page.locator("#label")).to_be_focused()  # the list changed, the typing did not stop
    expect(page).to_have_url(re.compile(r"label=team%3A(%20|\+)billing%0Aenv%3A(%20|\+)prod"))
    bar = page.locator("#label-bulk-form")
    expect(bar).to_contain_text("Every job labelled env: prod and team: billing")

    press_and_release(page, "#label-bulk-form button[value=pause]")
    expect(page.locator("#toast")).to_have_text("Paused 2 jobs")
    expect(page.locator("#job-table .badge")).to_have_text(["paused", "paused"])
    press_and_release(page, "#label-bulk-form button[value=delete]")  # the confirm is accepted
    expect(page.locator("#toast")).to_have_text("Deleted 2 jobs")
    expect(page.locator("#job-table .empty")).to_contain_text("No jobs match these filters")
    left = sorted(job["name"] for job in service.api("/schedules").json())
    assert left == ["other", "pay test"]


def type_wall_time(page: Page, selector: str, wall: datetime) -> None:
    """Type into a datetime-local as a person does in Chromium (en-US): press on its first
    field (the month), type month and day, the year, Tab past it (a year may have six
    digits), then hours, minutes, seconds and A or P."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 10, box["y"] + box["height"] / 2, steps=5)
    page.mouse.down()
    page.mouse.up()
    page.keyboard.type(wall.strftime("%m%d%Y"), delay=40)
    page.keyboard.press("Tab")
    page.keyboard.type(wall.strftime("%I%M%S") + wall.strftime("%p")[0], delay=40)


def press_and_release(page: Page, selector: str) -> None:
    """A person's click: the control scrolled into view, the pointer moves there, the
    button goes down, is held, comes up."""
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not on screen"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.down()
    page.wait_for_timeout(120)
    page.mouse.up()


def begin_interval_job(service: Service, payload: str, interval: int) -> Page:
    """The new-job form with a payload and an interval typed in, as a person does it."""
    page = service.page
    page.goto(f"{service.base}/ui/jobs/new")
    press_and_release(page, "#payload")
    page.keyboard.type(payload, delay=40)
    press_and_release(page, "#when-interval")
    press_and_release(page, "#interval")
    page.keyboard.type(str(interval), delay=40)
    return page


def test_the_catch_up_bound_typed_into_the_form(service: Service) -> None:
    """Typed as a person types it, the focus left in the field, then one press of Submit."""
    page = begin_interval_job(service, "catch up", 60)
    page.focus("#misfire")
    page.keyboard.press("End")  # the last choice: every missed time fires
    expect(page.locator("#misfire")).to_have_value("all")
    press_and_release(page, "#max_catch_up")
    page.keyboard.type("12", delay=40)
    expect(page.locator("#max_catch_up")).to_be_focused()  # left there, as a person would
    press_and_release(page, "#submit")
    expect(page.locator(".flash")).to_contain_text("Job created")
    (job,) = service.api("/schedules").json()
    assert (job["payload"], job["misfire"], job["maxCatchUp"]) == ("catch up", "all", 12)


@pytest.mark.parametrize("field", ["#cron", "#interval", "#timezone"])
def test_one_press_of_create_job_with_the_focus_still_in_a_timing_field(
    service: Service, field: str
) -> None:
    """The blur refreshes the preview; the button the pointer is on must stay the same
    button, so the one press a person makes is the one that creates the job."""
    page = service.page
    page.goto(f"{service.base}/ui/jobs/new")
    press_and_release(page, "#payload")
    page.keyboard.type("one press", delay=30)
    kind = {"#cron": "#when-cron", "#interval": "#when-interval", "#timezone": "#when-daily"}
    press_and_release(page, kind[field])
    if field == "#timezone":
        page.fill("#at", "2030-01-02T09:30")
    if field == "#interval":
        press_and_release(page, "#interval")
        page.keyboard.type("90", delay=30)
    elif field == "#cron":
        press_and_release(page, "#cron")
        page.keyboard.type("0 9 * * MON", delay=30)
    else:
        press_and_release(page, "#timezone")
        page.keyboard.press("Control+A")
        page.keyboard.type("Asia/Tokyo", delay=30)
    expect(page.locator(field)).to_be_focused()  # the preview has not refreshed on blur yet
    press_and_release(page, "#submit")
    expect(page.locator(".flash")).to_contain_text("Job created")
    (job,) = service.api("/schedules").json()
    assert job["payload"] == "one press"


def test_the_overview_fits_a_phone_and_dense_lanes_reach_the_end_of_the_hour(
    service: Service,
) -> None:
    body = {"payload": "tick", "recurring": "interval", "interval": 10, "name": "every-10s",
            "at": (datetime.now(ZoneInfo("UTC")) + timedelta(seconds=30)).isoformat()}  # fmt: skip
    assert requests.post(service.base + "/schedules", json=body, timeout=5).status_code == 201
    page = service.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{service.base}/ui/")
    marks = page.locator(".lane .mark")
    expect(marks).to_have_count(120)  # thinned out, not cut off
    last = max(float(m.get_attribute("style").split(":")[1].strip(" %;")) for m in marks.all())
    assert last > 95, f"the lane stops at {last}% of the hour"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the overview is {width} px wide on a 390 px phone"
    overflow = page.evaluate(
        """() => {
          const svg = document.querySelector('#run-chart svg');
          const limit = svg.viewBox.baseVal.width;
          return [...svg.querySelectorAll('text')].map(t => t.getBBox())
            .filter(b => b.x < 0 || b.x + b.width > limit)
            .map(b => [Math.round(b.x), Math.round(b.width)]);
        }"""
    )
    assert overflow == [], f"axis labels cut off (x, width): {overflow}"


def test_pause_with_a_note_until_a_time_then_it_resumes_by_itself(service: Service) -> None:
    """A person pauses a job for a few seconds with a note, typed as people type; the
    page says why and until when, and shows the job active again when the end comes."""
    body = {"name": "nightly-export", "payload": "p", "recurring": "interval",
            "interval": 3600, "at": "2030-01-01T00:00:00Z"}  # fmt: skip
    job = requests.post(f"{service.base}/schedules", json=body, timeout=5).json()["jobId"]
    page = service.page
    page.goto(f"{service.base}/ui/jobs/{job}")
    press_and_release(page, "#pause-terms summary")
    press_and_release(page, "#pause-note")
    page.keyboard.type("warehouse move", delay=40)
    until = datetime.now(ZoneInfo(ZONE)).replace(microsecond=0) + timedelta(seconds=8)
    type_wall_time(page, "#pause-until", until)
    # Chromium leaves ":00" seconds out of the value, so compare the wall times themselves.
    typed = datetime.fromisoformat(page.input_value("#pause-until"))
    assert typed == until.replace(tzinfo=None)
    press_and_release(page, "#pause-with-terms")
    expect(page.locator(".flash")).to_contain_text("Job paused until")
    expect(page.locator("#job-status .badge")).to_have_text("paused")
    expect(page.locator("#job-pause")).to_contain_text("warehouse move")
    answer = service.api(f"/schedules/{job}").json()
    assert answer["pauseNote"] == "warehouse move"
    assert answer["pausedUntil"] == until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # No reload: the live block follows the job back to active.
    expect(page.locator("#job-status .badge")).to_have_text("active", timeout=20_000)
    expect(page.locator("#job-pause")).to_have_count(0)
