"""A tiny Celery app for the tests' real worker processes. Its task writes what it ran
(task id, args, kwargs) to a Redis list named by the test, so the test can see that the
worker ran it, with which id, exactly how often."""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

app = Celery("scheduler_tests")
app.conf.update(
    broker_url=os.environ.get("CELERY_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # AMQP heartbeats tick the worker's event loop: without them a stop signal waited for
    # the loop's next wake-up, 10 s, in every test's teardown.
    broker_heartbeat=4,
)
RESULTS = os.environ.get("CELERY_TEST_RESULTS", "redis://127.0.0.1:6379/0")


@app.task(name="tests.record", bind=True)
def record(self: Any, key: str, *args: Any, **kwargs: Any) -> None:
    entry = {"id": self.request.id, "args": list(args), "kwargs": kwargs}
    redis.Redis.from_url(RESULTS).rpush(key, json.dumps(entry))


@app.task(name="tests.record_letter", bind=True)
def record_letter(self: Any, letter: dict[str, Any]) -> None:
    """A dead letter task: its one argument is the letter; it writes to the list the dead
    run's payload (its args) named first."""
    key = json.loads(letter["payload"])[0]
    redis.Redis.from_url(RESULTS).rpush(key, json.dumps({"id": self.request.id, "letter": letter}))
