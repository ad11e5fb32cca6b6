"""A calendar rule with public holidays off, through the form as a person makes it, in
Chromium against the real service: the live preview names the holiday it skips."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.test_ui_browser import (  # noqa: F401  (fixtures)
    Service,
    browser,
    playwright,
    press_and_release,
    service,
)

pytestmark = pytest.mark.browser


def test_a_yearly_rule_skipping_christmas_in_the_live_preview(
    service: Service,  # noqa: F811  (the fixture imported above)
) -> None:
    page = service.page
    page.goto(f"{service.base}/ui/jobs/new")
    press_and_release(page, "#payload")
    page.keyboard.type("pay", delay=40)
    press_and_release(page, "#when-rrule")
    expect(page.locator("#rrule")).to_be_visible()
    expect(page.locator("#cron")).to_be_hidden()
    press_and_release(page, "#rrule")
    page.keyboard.type("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=23,25;BYHOUR=9;BYMINUTE=0", delay=30)
    press_and_release(page, "#timezone")
    page.keyboard.press("Control+A")
    page.keyboard.type("Europe/Berlin", delay=30)
    expect(page.locator("#preview-description")).to_contain_text(
        "Every year on the 23rd and 25th day of the month in December at 09:00"
    )
    press_and_release(page, "#calendar summary")
    press_and_release(page, "#exclude_holidays")
    page.keyboard.type("DE-BY", delay=60)
    # Every 25 December is Christmas Day: skipped, said why; the 23rd fires.
    expect(page.locator("#preview-times .skipped").first).to_contain_text("Christmas Day")
    expect(page.locator("#preview-times li:not(.skipped)").first).to_contain_text("23")
    press_and_release(page, "#submit")
    expect(page.locator(".flash")).to_contain_text("Job created")
    expect(page.locator("#job-rrule")).to_contain_text("BYMONTHDAY=23,25")
    expect(page.locator("#job-exclude")).to_contain_text("public holidays in DE-BY")
    (job,) = service.api("/schedules").json()
    assert job["exclude"] == {"holidays": "DE-BY"} and job["recurring"] == "rrule"
