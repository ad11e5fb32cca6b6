"""A job's dead letter target chosen in the form as a person does it, in Chromium against
the real service: the field the choice needs appears, the job page shows where dead runs go."""

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


def test_a_webhook_dead_letter_target_from_the_form(
    service: Service,  # noqa: F811  (the fixture imported above)
) -> None:
    page = service.page
    page.goto(f"{service.base}/ui/jobs/new")
    press_and_release(page, "#payload")
    page.keyboard.type("report", delay=60)
    expect(page.locator("#dead-letter-none")).to_be_checked()
    expect(page.locator("#dead_letter_url")).to_be_hidden()
    expect(page.locator("#dead_letter_queue")).to_be_hidden()
    press_and_release(page, "#dead-letter-queue")
    expect(page.locator("#dead_letter_queue")).to_be_visible()
    expect(page.locator("#dead_letter_url")).to_be_hidden()
    press_and_release(page, "#dead-letter-webhook")
    expect(page.locator("#dead_letter_queue")).to_be_hidden()
    press_and_release(page, "#dead_letter_url")
    page.keyboard.type("https://hooks.example.com/dead", delay=60)
    expect(page.locator("#dead_letter_url")).to_be_focused()
    press_and_release(page, "#submit")

    expect(page.locator(".flash")).to_contain_text("Job created")
    expect(page.locator("#job-dead-letter")).to_have_text(
        "to webhook POST https://hooks.example.com/dead"
    )
    (job,) = service.api("/schedules").json()
    assert job["deadLetter"] == {
        "type": "webhook",
        "url": "https://hooks.example.com/dead",
        "method": "POST",
        "headers": {},
        "timeout": 10.0,
    }
