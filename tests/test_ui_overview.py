"""The overview's health figures and the conditional polls of the live pages (Flask's test
client; the clock is the ManualClock, 2030-01-01 UTC)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import runs
from app.clock import ManualClock
from app.database import db
from app.models import Run
from app.scheduler.dispatcher import Dispatcher
from app.ui import charts
from tests.support.engine_events import listening
from tests.test_ui_views import HTMX, add_message, create, element, text

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def add_lagging_run(
    app: Flask, job_id: str, fired_at: datetime, lag_ms: float, status: str = "delivered"
) -> None:
    """A run fired at `fired_at`, `lag_ms` after it became due (due_at), nominal earlier."""
    due = fired_at - timedelta(milliseconds=lag_ms)
    with app.app_context():
        db.session.add(
            Run(
                id=uuid.uuid4(),
                job_id=uuid.UUID(job_id),
                scheduled_for=due - timedelta(days=3000),  # a job created late: not lag
                due_at=due,
                fired_at=fired_at,
                status=status,
                attempts=1,
            )
        )
        db.session.commit()


# Lag percentiles per minute, in the database


def test_lag_percentiles_per_minute_by_nearest_rank(app: Flask, client: FlaskClient) -> None:
    job_id = create(client)["jobId"]
    minute = NOW - timedelta(minutes=5)
    # 100 runs in one minute: 1..99 ms and one 10 min outlier; p50 is 50 ms, p99 is 99 ms.
    for index in range(1, 100):
        add_lagging_run(app, job_id, minute + timedelta(milliseconds=300 * index), index)
    add_lagging_run(app, job_id, minute + timedelta(seconds=59), 600_000)
    add_lagging_run(app, job_id, NOW - timedelta(minutes=2, seconds=30), 7)  # alone
    add_lagging_run(app, job_id, NOW - timedelta(minutes=61), 1)  # before the hour
    with app.app_context():
        rows = runs.lag_per_minute(NOW, 60)
    assert len(rows) == 60 and rows[0].minute == NOW - timedelta(minutes=59)
    assert rows[-1].minute == NOW and all(row.runs == 0 for row in rows[-2:])
    busy = rows[-6]
    assert busy.minute == minute and busy.runs == 100
    assert busy.p50_ms == 50
    assert busy.p99_ms == 99
    single = rows[-4]
    assert single.runs == 1 and single.p50_ms == single.p99_ms == 7  # SQLite: to the ms
    assert sum(row.runs for row in rows) == 101
    assert all(row.p50_ms is None for row in rows if not row.runs)


def test_the_chart_draws_p50_and_p99_lines_scaled_to_the_worst_p99() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [
        runs.MinuteLag(start + timedelta(minutes=i), i % 3, 10.0 * i if i % 3 else None,
                       100.0 * i if i % 3 else None)
        for i in range(60)
    ]  # fmt: skip
    chart = charts.run_chart(rows, "UTC")
    assert len(chart.p50_lines) == len(chart.p99_lines) == 20  # broken at empty minutes
    assert chart.worst_p99 == 5900.0 and chart.lag_ticks[-1].label == "10 s"
    assert chart.latest == rows[-1]
    top = min(float(point.split(",")[1]) for point in chart.p99_lines[-1].split())
    assert top > chart.top  # 5.9 s on a 10 s axis


# The overview's figures and their links


def test_the_overview_counts_outcomes_per_hour_and_day_and_links_each(
    app: Flask, client: FlaskClient
) -> None:
    job_id = create(client, name="busy")["jobId"]
    for minutes, status in [(5, "dead"), (50, "dead"), (90, "dead"), (30, "retrying"),
                            (2, "delivered"), (3, "delivered"), (23 * 60, "delivered"),
                            (25 * 60, "dead")]:  # fmt: skip
        add_lagging_run(app, job_id, NOW - timedelta(minutes=minutes), 20, status)
    for index in range(3):
        add_message(app, "emails", f"mail {index}")
    client.set_cookie("tz", "Asia/Tokyo")
    html = text(client.get("/ui/"))
    figures = {
        (status, window): int(re.sub(r"<.*", "", element(html, f"outcome-{status}-{window}"))
                              .rsplit(">", 1)[-1])
        for status in ("dead", "retrying", "delivered") for window in ("hour", "day")
    }  # fmt: skip
    assert figures == {
        ("dead", "hour"): 2, ("dead", "day"): 3, ("retrying", "hour"): 1,
        ("retrying", "day"): 1, ("delivered", "hour"): 2, ("delivered", "day"): 3,
    }  # fmt: skip
    dead_hour = element(html, "outcome-dead-hour")
    # the runs list behind it, in the viewer's wall time (Tokyo: 08:00 on Jan 1 is 23:00 UTC)
    assert 'href="/ui/runs?status=dead&amp;since=2030-01-01T08%3A00%3A00"' in dead_hour
    for (status, window), count in figures.items():
        link = re.search(r'href="([^"]+)"', element(html, f"outcome-{status}-{window}"))
        assert link
        listed = text(client.get(link.group(1).replace("&amp;", "&"), headers=HTMX | {
            "HX-Target": "run-table"}))  # fmt: skip
        assert listed.count('<tr id="run-') == count, (status, window)
    assert ">3</span> queue messages waiting" in element(html, "count-queued")
    assert 'href="/ui/queues"' in element(html, "count-queued")
    chart = element(html, "run-chart")
    assert "lag p50" in chart and "lag p99" in chart and "average" not in chart
    assert "20 ms" in element(html, "lag-p99")


def test_bad_run_filters_are_a_400_naming_the_field(client: FlaskClient) -> None:
    for query, field, words in (
        ("since=yesterday", "since", "date and time"),
        ("until=2030-13-01T00:00", "until", "date and time"),
        ("status=lost", "status", "must be one of"),
    ):
        response = client.get(f"/ui/runs?{query}")
        assert response.status_code == 400, query
        assert words in element(text(response), f"error-{field}")
    assert client.get("/ui/runs?status=dead&since=2030-01-01T00:00").status_code == 200


# Conditional polls


def poll(client: FlaskClient, url: str, target: str, etag: str | None = None) -> TestResponse:
    headers = HTMX | {"HX-Target": target}
    if etag:
        headers["If-None-Match"] = etag
    return client.get(url, headers=headers)


def etag_of(response: TestResponse) -> str:
    assert response.status_code == 200, response.status_code
    etag = response.headers["ETag"]
    assert etag.startswith('W/"')
    return etag


def test_a_poll_answers_304_until_a_run_is_recorded(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    dispatcher = make_dispatcher()
    create(client, name="soon", at="2030-01-01T00:10:00Z")
    first = poll(client, "/ui/", "overview-live")
    etag = etag_of(first)
    again = poll(client, "/ui/", "overview-live", etag)
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == etag
    clock.set(NOW + timedelta(minutes=10, seconds=1))  # also a new minute
    etag = etag_of(poll(client, "/ui/", "overview-live", etag))
    assert poll(client, "/ui/", "overview-live", etag).status_code == 304
    assert dispatcher.fire_due() == 1  # a run is recorded (and delivered to the queue)
    fired = poll(client, "/ui/", "overview-live", etag)
    assert fired.status_code == 200 and fired.headers["ETag"] != etag
    assert "1 runs in the last hour" in text(fired)
    clock.advance(5)  # the queue message is seconds old, but the overview shows no such text
    assert poll(client, "/ui/", "overview-live", fired.headers["ETag"]).status_code == 304


def test_a_job_change_and_the_next_minute_change_the_etag(
    client: FlaskClient, clock: ManualClock
) -> None:
    job = create(client, name="later", at="2030-01-01T05:00:00Z")
    etag = etag_of(poll(client, "/ui/", "overview-live"))
    clock.advance(20)  # same minute, nothing due within a minute: still the same
    assert poll(client, "/ui/", "overview-live", etag).status_code == 304
    assert client.post(f"/schedules/{job['jobId']}/pause").status_code == 200
    etag = etag_of(poll(client, "/ui/", "overview-live", etag))
    assert poll(client, "/ui/", "overview-live", etag).status_code == 304
    clock.advance(60)  # the windows and the chart move on
    assert poll(client, "/ui/", "overview-live", etag).status_code == 200


def test_relative_texts_in_seconds_refresh_every_poll(
    client: FlaskClient, clock: ManualClock
) -> None:
    create(client, name="imminent", at="2030-01-01T00:00:40Z")  # "in 40 s" on the timeline
    etag = etag_of(poll(client, "/ui/", "overview-live"))
    assert poll(client, "/ui/", "overview-live", etag).status_code == 304
    clock.advance(5)
    moved = poll(client, "/ui/", "overview-live", etag)
    assert moved.status_code == 200 and "in 35 s" in text(moved)


def test_a_queue_message_seconds_old_refreshes_the_queues_page_every_poll(
    app: Flask, client: FlaskClient, clock: ManualClock
) -> None:
    add_message(app, "emails", "mail")  # enqueued at NOW: "now", then "5 s ago"
    etag = etag_of(poll(client, "/ui/queues", "queue-table"))
    clock.advance(5)
    moved = poll(client, "/ui/queues", "queue-table", etag)
    assert moved.status_code == 200 and "5 s ago" in text(moved)
    clock.advance(60)
    etag = etag_of(poll(client, "/ui/queues", "queue-table"))
    clock.advance(5)  # a minute old: it counts minutes now
    assert poll(client, "/ui/queues", "queue-table", etag).status_code == 304


def test_the_etag_is_per_block_url_and_viewer(client: FlaskClient) -> None:
    etag = etag_of(poll(client, "/ui/runs?status=dead", "run-table"))
    assert poll(client, "/ui/runs?status=dead", "run-table", etag).status_code == 304
    assert poll(client, "/ui/runs?status=delivered", "run-table", etag).status_code == 200
    client.set_cookie("tz", "Asia/Tokyo")
    assert poll(client, "/ui/runs?status=dead", "run-table", etag).status_code == 200
    # the full page is always rendered: it carries flashed messages
    full = client.get("/ui/runs?status=dead", headers={"If-None-Match": etag})
    assert full.status_code == 200 and "ETag" not in full.headers


def test_the_runs_list_polls_with_its_filters(client: FlaskClient) -> None:
    html = text(client.get("/ui/runs?status=dead&since=2030-01-01T00:00"))
    table = re.search(r'<div id="run-table"[^>]*>', html)
    assert table and 'hx-get="/ui/runs?status=dead&amp;since=2030-01-01T00:00"' in table.group(0)
    assert "every 5s" in table.group(0)


def test_queue_polls_see_receives_and_acks(app: Flask, client: FlaskClient) -> None:
    add_message(app, "emails", "mail")
    etag = etag_of(poll(client, "/ui/queues", "queue-table"))
    assert poll(client, "/ui/queues", "queue-table", etag).status_code == 304
    received = client.post("/queues/emails/receive", json={"max": 1, "visibilityTimeout": 30})
    (message,) = received.get_json()["messages"]
    after_receive = poll(client, "/ui/queues", "queue-table", etag)
    assert after_receive.status_code == 200
    assert '<td data-label="In flight" class="num">1</td>' in text(after_receive)
    etag = after_receive.headers["ETag"]
    assert poll(client, "/ui/queues", "queue-table", etag).status_code == 304
    acked = client.post("/queues/emails/ack", json={"receipts": [message["receipt"]]})
    assert acked.status_code == 200, acked.get_json()
    assert poll(client, "/ui/queues", "queue-table", etag).status_code == 200


def test_a_jobs_runs_poll_answers_304_until_it_runs(client: FlaskClient) -> None:
    job = create(client, name="mine", at="2030-01-01T05:00:00Z")
    url = f"/ui/jobs/{job['jobId']}"
    etag = etag_of(poll(client, url, "job-runs"))
    assert poll(client, url, "job-runs", etag).status_code == 304
    assert client.post(f"/schedules/{job['jobId']}/run").status_code == 202
    ran = poll(client, url, "job-runs", etag)
    assert ran.status_code == 200 and 'id="no-runs"' not in text(ran)


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the app sends while the block runs (BEGIN and COMMIT left out)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            sent.append(statement)

    with listening(app, "before_cursor_execute", record):
        yield sent


@pytest.mark.parametrize(
    ("url", "target"),
    [("/ui/", "overview-live"), ("/ui/runs", "run-table"), ("/ui/queues", "queue-table"),
     ("/ui/jobs/{id}", "job-runs")],
)  # fmt: skip
def test_a_304_costs_one_query_of_its_own(
    app: Flask, client: FlaskClient, url: str, target: str
) -> None:
    job = create(client, name="counted", at="2030-01-01T05:00:00Z")
    add_lagging_run(app, job["jobId"], NOW - timedelta(minutes=3), 12, "dead")
    add_message(app, "emails", "mail")
    url = url.format(id=job["jobId"])
    with statements(app) as full:
        etag = etag_of(poll(client, url, target))
    with statements(app) as unchanged:
        assert poll(client, url, target, etag).status_code == 304
    # The poll's own query, and (while no API key exists: this open, loopback-only service)
    # the check that still none does, asked on every request so that the first key made
    # guards the service at once.
    keys_check, own = unchanged
    assert keys_check.startswith("SELECT api_keys.id"), unchanged
    assert "api_keys" not in own, unchanged
    assert len(full) > 2
