"""A Celery task chosen in the job form as a person does it, in Chromium against the real
service (web and scheduler processes) with CONNECTIONS naming the real RabbitMQ: the
target's fields appear, the connection is picked by name, and after "Run now" a real Celery
worker runs the task with the run id as its task id."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from playwright.sync_api import expect

from tests.support.brokers import celery_worker, unique, url, wait_for
from tests.test_ui_browser import (  # noqa: F401  (fixtures)
    Service,
    browser,
    playwright,
    press_and_release,
    service,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def celery_service(
    monkeypatch: pytest.MonkeyPatch, brokers: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Service]:
    monkeypatch.setenv("CONNECTIONS", json.dumps({"rabbit": url("amqp", 5672)}))
    yield request.getfixturevalue("service")  # its processes take the environment


def test_a_celery_task_from_the_form_runs_in_a_real_worker(
    celery_service: Service, brokers: dict[str, str]
) -> None:
    queue, results = unique("celery"), unique("results")
    page = celery_service.page
    results_list = redis.Redis.from_url(brokers["cache"], decode_responses=True)
    with celery_worker(brokers["rabbit"], queue):
        page.goto(f"{celery_service.base}/ui/jobs/new")
        press_and_release(page, "#payload")
        page.keyboard.type(json.dumps({"args": [results, "from the form"]}), delay=10)
        expect(page.locator("#celery_task")).to_be_hidden()
        press_and_release(page, "#target-celery")
        expect(page.locator("#celery_task")).to_be_visible()
        expect(page.locator("#connection option")).to_have_text(
            ["Choose a connection…", "rabbit (amqp)"]
        )
        page.select_option("#connection", "rabbit")
        press_and_release(page, "#celery_task")
        page.keyboard.type("tests.record", delay=30)
        press_and_release(page, "#celery_queue")
        page.keyboard.type(queue, delay=20)
        press_and_release(page, "#submit")
        expect(page.locator(".flash")).to_contain_text("Job created")
        press_and_release(page, "#run-job")
        expect(page.locator(".flash")).to_contain_text("Run started")

        try:
            wait_for(lambda: results_list.llen(results) >= 1, what="the worker to run the task")
        except AssertionError:
            jobs = celery_service.api("/schedules").json()
            runs = [celery_service.api(f"/schedules/{j['jobId']}/runs").json() for j in jobs]
            raise AssertionError(f"not run; jobs {jobs}, runs {runs}") from None
    (entry,) = [json.loads(e) for e in results_list.lrange(results, 0, -1)]
    results_list.delete(results)
    (job,) = celery_service.api("/schedules").json()
    assert job["target"] == {
        "type": "celery", "connection": "rabbit", "task": "tests.record", "queue": queue,
    }  # fmt: skip
    (run,) = celery_service.api(f"/schedules/{job['jobId']}/runs").json()
    assert entry == {"id": run["runId"], "args": ["from the form"], "kwargs": {}}
    assert run["status"] == "delivered"
