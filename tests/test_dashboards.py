"""docs/grafana-dashboard.json and docs/prometheus-alerts.yml ask only for series that
/metrics serves (promtool checks the rules' syntax and behaviour in `make test`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher

DOCS = Path(__file__).resolve().parents[1] / "docs"
SERIES = re.compile(r"\bscheduler_[a-z_]+")


@pytest.fixture
def active(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    """A job fired into the built-in queue: every labelled series has a sample."""
    client.post("/schedules", json={"payload": "p", "at": "2030-01-01T00:00:01Z"})
    clock.advance(2)
    make_dispatcher().step()


def served(client: FlaskClient) -> set[str]:
    text = client.get("/metrics").get_data(as_text=True)
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def dashboard_expressions() -> list[str]:
    board = json.loads((DOCS / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_the_dashboard_shows_only_served_series(client: FlaskClient, active: None) -> None:
    asked = {name for expr in dashboard_expressions() for name in SERIES.findall(expr)}
    assert asked and asked <= served(client), asked - served(client)
    # What the issue asks to see: fires, lag, deliveries by outcome and target, retries,
    # dead runs, queue depth.
    for needed in ("scheduler_fires_total", "scheduler_fire_lag_seconds_bucket",
                   "scheduler_deliveries_total", "scheduler_deliveries_by_target_total",
                   "scheduler_retries_total", "scheduler_queue_depth"):  # fmt: skip
        assert needed in asked


def test_the_alerts_watch_only_served_series(client: FlaskClient, active: None) -> None:
    rules = (DOCS / "prometheus-alerts.yml").read_text()
    exprs = "\n".join(line for line in rules.splitlines() if not line.lstrip().startswith("#"))
    asked = set(SERIES.findall(exprs)) - {"scheduler_runs"}  # "scheduler runs list" in a text
    assert asked and asked <= served(client), asked - served(client)
