"""A wall-mounted overview in Chromium: it follows what happens without a reload, and while
nothing happens its polls are answered 304, without a body (the fixtures and the helpers
are tests/test_ui_browser.py's: the real service, gunicorn and the scheduler process)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests
from playwright.sync_api import Page, Response, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests import test_ui_browser as shared
from tests.test_ui_browser import Service, press_and_release

pytestmark = pytest.mark.browser
playwright, browser, service = shared.playwright, shared.browser, shared.service  # fixtures

POLL_WAIT = 15_000  # ms: a few 5 s polls on a slow machine
# ms: a 304 may take four polls: the page's first poll has no ETag to send back, and the
# ETag moves when the minute turns (the page's times), which can cost the next one.
QUIET_WAIT = 25_000


def is_overview_poll(response: Response) -> bool:
    request = response.request
    return response.url.endswith("/ui/") and request.headers.get("hx-target") == "overview-live"


def wait_for_304(page: Page, answers: list[tuple[int, str | None, int]]) -> None:
    """Until the next overview poll answered 304; else fails showing the polls' answers."""
    try:
        with page.expect_response(
            lambda r: is_overview_poll(r) and r.status == 304, timeout=QUIET_WAIT
        ):
            pass
    except PlaywrightTimeoutError:
        pytest.fail(f"no 304 in {QUIET_WAIT} ms; polls (status, If-None-Match, size): {answers}")


def test_a_wall_mounted_overview_follows_a_run_and_costs_304s_while_idle(
    service: Service,
) -> None:
    page = service.page
    answers: list[tuple[int, str | None, int]] = []  # status, If-None-Match sent, body size

    def record(response: Response) -> None:
        if is_overview_poll(response):
            body = response.body() if response.status == 200 else b""
            sent = response.request.headers.get("if-none-match")
            answers.append((response.status, sent, len(body)))

    page.on("response", record)
    page.goto(f"{service.base}/ui/")
    page.evaluate("window.mountedAt = 'the same page'")  # gone if the page reloads
    delivered = page.locator("#outcome-delivered-hour")
    expect(delivered).to_have_text(re.compile(r"^0\b"))
    expect(page.locator("#count-queued .count")).to_have_text("0")

    # Nothing happens: the polls send back the ETag and are answered 304.
    wait_for_304(page, answers)
    status, sent, _ = answers[-1]
    assert status == 304 and sent and sent.startswith('W/"')

    # A job due now, made through the API: the dispatcher fires it into the built-in queue.
    at = datetime.now(UTC).replace(microsecond=0).isoformat()
    made = requests.post(
        f"{service.base}/schedules", json={"name": "now", "payload": "x", "at": at}, timeout=5
    )
    assert made.status_code == 201, made.text
    expect(delivered).to_have_text(re.compile(r"^1\b"), timeout=POLL_WAIT * 2)
    expect(page.locator("#count-queued .count")).to_have_text("1")
    expect(page.locator("#run-chart desc")).to_contain_text("1 runs in the last hour")
    expect(page.locator("#lag-p99")).to_have_text(re.compile(r"\d+ ms|\d+(\.\d)? s"))
    assert page.evaluate("window.mountedAt") == "the same page"  # no reload
    assert any(status == 200 and size > 0 for status, _, size in answers)

    # Quiet again: the next polls are 304s with the new ETag, and the figures stay.
    seen = len(answers)
    wait_for_304(page, answers)
    wait_for_304(page, answers)
    assert all(size == 0 for status, _, size in answers[seen:] if status == 304)
    expect(delivered).to_have_text(re.compile(r"^1\b"))
    expect(page.locator("#overview-live")).to_have_count(1)  # a 304 did not empty the block

    # Each figure leads to the list behind it.
    press_and_release(page, "#outcome-delivered-hour")
    expect(page).to_have_url(re.compile(r"/ui/runs\?status=delivered&since="))
    expect(page.locator("#run-table tbody tr[id^=run-]")).to_have_count(1)
    expect(page.locator("#run-table")).to_contain_text("now")
