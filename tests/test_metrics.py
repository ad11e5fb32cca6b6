"""/metrics in Prometheus format, fed by the dispatcher through the database."""

from __future__ import annotations

import random
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.clock import ManualClock
from app.metrics import LAG_BUCKETS, lag_counts
from app.scheduler.process import build_dispatcher
from tests.support.http_target import HttpTarget, Response


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_fires_lag_deliveries_and_depth(
    client: FlaskClient, app: Flask, clock: ManualClock
) -> None:
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:01Z"} for i in range(5)]
    client.post("/schedules:batch", json={"jobs": jobs})
    clock.advance(1.5)  # fired 0.5 s late
    with app.app_context():
        dispatcher = build_dispatcher(app)
    while dispatcher.fire_due():
        pass
    dispatcher.close()
    found = samples(client)
    assert found[("scheduler_fires_total", ())] == 5
    assert found[("scheduler_deliveries_total", (("outcome", "delivered"),))] == 5
    by_queue = (("outcome", "delivered"), ("target", "queue"))
    assert found[("scheduler_deliveries_by_target_total", by_queue)] == 5
    assert found[("scheduler_fire_lag_seconds_count", ())] == 5
    assert found[("scheduler_fire_lag_seconds_sum", ())] == 2.5
    assert found[("scheduler_fire_lag_seconds_bucket", (("le", "0.25"),))] == 0
    assert found[("scheduler_fire_lag_seconds_bucket", (("le", "0.5"),))] == 5
    assert found[("scheduler_queue_depth", (("queue", "default"),))] == 5
    assert found[("scheduler_jobs", (("status", "completed"),))] == 5
    assert found[("scheduler_retries_total", ())] == 0
    received = client.post("/queues/default/receive", json={"max": 3}).get_json()["messages"]
    client.post("/queues/default/ack", json={"receipts": [m["receipt"] for m in received[:2]]})
    found = samples(client)
    assert found[("scheduler_queue_messages_total", (("action", "received"),))] == 3
    assert found[("scheduler_queue_messages_total", (("action", "acked"),))] == 2


def test_lag_counts_are_cumulative_buckets_of_the_batch() -> None:
    """Each bucket counts the batch's lags at or below its bound (boundaries included)."""
    rng = random.Random(7)
    for _ in range(200):
        lags = [
            rng.choice([-0.1, 0.0, 0.005, 0.01, 300.0, 301.0, rng.expovariate(3)])
            for _ in range(rng.randrange(1, 40))
        ]
        counts = lag_counts(lags)
        assert counts["lag_count"] == len(lags)
        assert counts["lag_sum"] == pytest.approx(sum(lags))
        for bound in LAG_BUCKETS:
            assert counts.get(f"lag_le_{bound}", 0) == sum(1 for lag in lags if lag <= bound)
    assert lag_counts([]) == {}


def test_deliveries_are_counted_by_target(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Any, http_target: HttpTarget
) -> None:
    from app.targets.webhook import WebhookTarget

    http_target.respond("/down", Response(503))
    hook = {"type": "webhook", "url": http_target.url + "/down"}
    jobs = [{"payload": "q", "at": "2030-01-01T00:00:01Z"},
            {"payload": "w", "at": "2030-01-01T00:00:01Z", "target": hook,
             "retry": {"attempts": 2, "backoff": 1}}]  # fmt: skip
    assert client.post("/schedules:batch", json={"jobs": jobs}).status_code == 201
    dispatcher = make_dispatcher({"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])})
    clock.advance(1)
    dispatcher.step()  # the queue's run delivered as it fires, the webhook's tried once
    clock.advance(10)
    dispatcher.deliver_due()  # and again: dead
    found = samples(client)
    series = "scheduler_deliveries_by_target_total"
    assert found[(series, (("outcome", "delivered"), ("target", "queue")))] == 1
    assert found[(series, (("outcome", "retrying"), ("target", "webhook")))] == 1
    assert found[(series, (("outcome", "dead"), ("target", "webhook")))] == 1
