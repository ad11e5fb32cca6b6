"""A webhook job through the form as a person makes it, in Chromium against the real service:
headers, a timeout, a signing secret made for it, shown once, then rotated."""

from __future__ import annotations

import re

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


def test_a_webhook_job_with_headers_and_a_secret_shown_once_then_rotated(
    service: Service,  # noqa: F811  (the fixture imported above)
) -> None:
    page = service.page
    page.goto(f"{service.base}/ui/jobs/new")
    press_and_release(page, "#name")
    page.keyboard.type("orders hook", delay=60)
    press_and_release(page, "#payload")
    page.keyboard.type('{"order": 7}', delay=60)
    press_and_release(page, "#target-webhook")
    expect(page.locator("#webhook_headers")).to_be_visible()
    expect(page.locator("#sqs_group")).to_be_hidden()  # an SQS field: not for a webhook
    press_and_release(page, "#webhook_url")
    page.keyboard.type("https://hooks.example.com/orders", delay=60)
    press_and_release(page, "#webhook_headers")
    page.keyboard.type("Authorization: Bearer t0ken", delay=60)
    page.keyboard.press("Enter")
    page.keyboard.type("X-Team: ops", delay=60)
    press_and_release(page, "#webhook_timeout")
    page.keyboard.type("3", delay=60)
    expect(page.locator("#webhook_timeout")).to_be_focused()  # left there, as a person would
    press_and_release(page, "#submit")  # one press

    expect(page.locator(".flash")).to_have_text("Job created: orders hook")
    shown = page.locator("#new-secret-value")
    expect(shown).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/=]{32}$"))
    secret = shown.inner_text()
    expect(page.locator("#job-secret")).to_contain_text(secret[:10] + "…")
    (job,) = service.api("/schedules").json()
    assert job["target"] == {
        "type": "webhook",
        "url": "https://hooks.example.com/orders",
        "method": "POST",
        "headers": {"Authorization": "Bearer t0ken", "X-Team": "ops"},
        "timeout": 3.0,
    }  # and never the secret

    page.reload()
    expect(page.locator("#job-secret")).to_contain_text(secret[:10] + "…")
    expect(page.locator("#new-secret")).to_have_count(0)
    assert secret not in page.content()

    press_and_release(page, "#rotate-secret")
    expect(page.locator(".flash")).to_contain_text("New signing secret made")
    expect(page.locator("#job-secret")).to_contain_text("2 secrets")
    rotated = page.locator("#new-secret-value").inner_text()
    assert rotated.startswith("whsec_") and rotated != secret
    expect(page.locator("#job-secret")).to_contain_text(secret[:10] + "…")  # still signing

    press_and_release(page, "#drop-old-secrets")
    expect(page.locator(".flash")).to_contain_text("Old signing secrets dropped")
    expect(page.locator("#job-secret")).not_to_contain_text("2 secrets")
    expect(page.locator("#job-secret")).to_contain_text(rotated[:10] + "…")
    expect(page.locator("#job-secret")).not_to_contain_text(secret[:10] + "…")
    assert rotated not in page.content()
