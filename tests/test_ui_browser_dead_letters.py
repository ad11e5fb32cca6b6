"""A job's dead letter target chosen in the form as a person does it, in Chromium against
the real service: the fields the choice needs appear (the job's own target's stay as they
were), the job page shows where dead runs go."""

from __future__ import annotations

import json
from collections.abc import Iterator

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
    expect(page.locator("#dead_letter_webhook_url")).to_be_hidden()
    expect(page.locator("#dead_letter_queue_name")).to_be_hidden()
    press_and_release(page, "#dead-letter-queue")
    expect(page.locator("#dead_letter_queue_name")).to_be_visible()
    expect(page.locator("#dead_letter_webhook_url")).to_be_hidden()
    press_and_release(page, "#dead-letter-webhook")
    expect(page.locator("#dead_letter_queue_name")).to_be_hidden()
    press_and_release(page, "#dead_letter_webhook_url")
    page.keyboard.type("https://hooks.example.com/dead", delay=60)
    expect(page.locator("#dead_letter_webhook_url")).to_be_focused()
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


@pytest.fixture
def broker_service(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Service]:
    connections = {"rabbit": "amqp://guest:guest@127.0.0.1:5672//",
                   "cache": "redis://127.0.0.1:6379/0"}  # fmt: skip
    monkeypatch.setenv("CONNECTIONS", json.dumps(connections))
    yield request.getfixturevalue("service")  # its processes take the environment


def test_a_broker_dead_letter_target_beside_a_webhook_target(broker_service: Service) -> None:
    page = broker_service.page
    page.goto(f"{broker_service.base}/ui/jobs/new")
    press_and_release(page, "#payload")
    page.keyboard.type("nightly", delay=40)
    press_and_release(page, "#target-webhook")
    main_webhook = page.locator("#webhook_url")
    expect(main_webhook).to_be_visible()
    press_and_release(page, "#webhook_url")
    page.keyboard.type("https://hooks.example.com/nightly", delay=30)
    expect(page.locator("#dead-letter-none")).to_be_checked()
    dead_fields = ["#dead_letter_connection", "#dead_letter_amqp_exchange",
                   "#dead_letter_amqp_routing_key", "#dead_letter_max_in_flight"]  # fmt: skip
    for selector in [*dead_fields, "#dead_letter_webhook_url", "#dead_letter_redis_key"]:
        expect(page.locator(selector)).to_be_hidden()

    press_and_release(page, "#dead-letter-amqp")
    for selector in dead_fields:
        expect(page.locator(selector)).to_be_visible()
    expect(page.locator("#dead_letter_redis_key")).to_be_hidden()
    expect(page.locator("#dead_letter_webhook_url")).to_be_hidden()
    # The job's own target is as it was: a webhook, its URL typed, no broker field shown.
    expect(page.locator("#target-webhook")).to_be_checked()
    expect(main_webhook).to_be_visible()
    expect(main_webhook).to_have_value("https://hooks.example.com/nightly")
    expect(page.locator("#amqp_routing_key")).to_be_hidden()
    expect(page.locator("#connection")).to_be_hidden()

    expect(page.locator("#dead_letter_connection option")).to_have_text(
        ["Choose a connection…", "cache (redis)", "rabbit (amqp)"]
    )
    page.focus("#dead_letter_connection")
    page.keyboard.press("End")  # the last one: rabbit
    expect(page.locator("#dead_letter_connection")).to_have_value("rabbit")
    press_and_release(page, "#dead_letter_amqp_exchange")
    page.keyboard.type("dead", delay=40)
    press_and_release(page, "#dead_letter_amqp_routing_key")
    page.keyboard.type("runs.dead", delay=40)
    expect(page.locator("#dead_letter_amqp_routing_key")).to_be_focused()
    press_and_release(page, "#submit")

    expect(page.locator(".flash")).to_contain_text("Job created")
    expect(page.locator("#job-dead-letter")).to_have_text("to amqp dead runs.dead via rabbit")
    (job,) = broker_service.api("/schedules").json()
    assert job["deadLetter"] == {
        "type": "amqp", "connection": "rabbit", "exchange": "dead", "routingKey": "runs.dead",
    }  # fmt: skip
    assert job["target"]["type"] == "webhook"
    assert job["target"]["url"] == "https://hooks.example.com/nightly"

    # Edited again: the form shows the dead letter as saved, its section on its own.
    page.goto(f"{broker_service.base}/ui/jobs/{job['jobId']}/edit")
    expect(page.locator("#dead-letter-amqp")).to_be_checked()
    expect(page.locator("#dead_letter_amqp_routing_key")).to_have_value("runs.dead")
    expect(page.locator("#dead_letter_connection")).to_have_value("rabbit")
    expect(page.locator("#webhook_url")).to_be_visible()
    press_and_release(page, "#dead-letter-redis")
    expect(page.locator("#dead_letter_redis_key")).to_be_visible()
    expect(page.locator("#dead_letter_amqp_routing_key")).to_be_hidden()
    expect(page.locator("#dead_letter_connection")).to_be_visible()
    expect(page.locator("#redis_key")).to_be_hidden()
    expect(page.locator("#webhook_url")).to_be_visible()
