"""A job whose payload is a template, made through the form as a person makes it, in
Chromium against the real service: an unknown placeholder shown while typing, then fixed."""

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


def test_a_template_payload_with_a_misspelt_placeholder_then_fixed(
    service: Service,  # noqa: F811  (the fixture imported above)
) -> None:
    page = service.page
    page.goto(f"{service.base}/ui/jobs/new")
    press_and_release(page, "#name")
    page.keyboard.type("stamped", delay=60)
    press_and_release(page, "#payload")
    page.keyboard.type('{"run": "{{runid}}"}', delay=60)
    expect(page.locator("#error-payload")).to_have_text("")  # not a template yet: any text
    press_and_release(page, "#template")
    expect(page.locator("#template")).to_be_checked()
    expect(page.locator("#error-payload")).to_contain_text("unknown placeholder {{runid}}")

    press_and_release(page, "#payload")
    page.keyboard.press("Control+A")
    page.keyboard.type('{"run": "{{runId}}", "try": "{{attempt}}"}', delay=60)
    expect(page.locator("#error-payload")).to_have_text("")
    press_and_release(page, "#submit")

    expect(page.locator(".flash")).to_have_text("Job created: stamped")
    expect(page.locator("#job-template")).to_have_text("filled at each delivery")
    (job,) = service.api("/schedules").json()
    assert job["template"] is True
    assert job["payload"] == '{"run": "{{runId}}", "try": "{{attempt}}"}'
