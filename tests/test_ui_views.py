"""The browser UI through Flask's test client: pages, fragments, the form, actions, escaping.

CSRF protection stays on (as in production): forms send the token the page gave out; the
tests that check refusals simply leave it out. The clock is the ManualClock (2030-01-01 UTC).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import runs
from app.clock import ManualClock
from app.database import db
from app.models import QueueMessage, Run
from app.ui import charts

NOW = datetime(2030, 1, 1, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
HTMX = {"HX-Request": "true"}


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """A job through the JSON API (the UI must show what the API made)."""
    body = {"payload": "p", "at": "2030-01-01T00:30:00Z"} | fields
    response = client.post("/schedules", json=body)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def token(client: FlaskClient) -> str:
    page = client.get("/ui/jobs/new").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the form carries a CSRF token"
    return found.group(1)


def fragment(client: FlaskClient, url: str, target: str, **headers: str) -> TestResponse:
    return client.get(url, headers=HTMX | {"HX-Target": target} | headers)


def between(html: str, start: str, end: str) -> str:
    """The part of `html` from `start` up to and including the first `end` after it."""
    first = html.index(start)
    return html[first : html.index(end, first) + len(end)]


def plain(html: str) -> str:
    """The text of some HTML, tags removed."""
    return re.sub(r"<[^>]+>", "", html)


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def element(html: str, element_id: str) -> str:
    """The opening tag and text of the element with this id (up to its first closing tag)."""
    found = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>.*?</\1>', html, re.S)
    assert found, f"no element id={element_id!r}"
    return found.group(0)


def add_run(app: Flask, job_id: str, status: str, minutes_ago: float, **fields: Any) -> str:
    nominal = NOW - timedelta(minutes=minutes_ago)
    run = Run(
        id=uuid.uuid4(),
        job_id=uuid.UUID(job_id),
        scheduled_for=nominal,
        fired_at=nominal + timedelta(milliseconds=25),
        status=status,
        attempts=fields.pop("attempts", 1),
        **fields,
    )
    with app.app_context():
        db.session.add(run)
        db.session.commit()
        return str(run.id)


def add_message(app: Flask, queue: str, payload: str) -> None:
    """A message in the built-in queue, as the dispatcher leaves it."""
    key = uuid.uuid4()
    message = QueueMessage(
        id=key,
        queue=queue,
        payload=payload,
        job_id=uuid.uuid4(),
        run_id=key,
        scheduled_for=NOW,
        created_at=NOW,
        visible_at=NOW,
        receive_count=0,
    )
    with app.app_context():
        db.session.add(message)
        db.session.commit()


def form_data(client: FlaskClient, **fields: str) -> dict[str, str]:
    data = {
        "csrf_token": token(client),
        "name": "",
        "payload": "hello",
        "when": "daily",
        "at": "2030-01-02T09:30",
        "timezone": "Europe/Berlin",
        "target_type": "queue",
        "queue_name": "default",
        "misfire": "coalesce",
    }
    return data | fields


# Pages and fragments


def test_root_redirects_to_the_ui(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/ui/")


@pytest.mark.parametrize(
    "url",
    [
        "/ui/",
        "/ui/jobs",
        "/ui/jobs/new",
        "/ui/runs",
        "/ui/queues",
        "/ui/queues?peek=default",
        "/ui/jobs/{id}",
        "/ui/jobs/{id}/edit",
    ],
)
def test_every_page_renders_as_a_whole_page(client: FlaskClient, url: str) -> None:
    job = create(client)
    response = client.get(url.format(id=job["jobId"]))
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "HX-Request" in response.headers["Vary"]
    html = text(response)
    assert html.startswith("<!doctype html>")
    assert '<script src="/static/htmx.min.js"' in html
    assert 'hx-boost="true"' in html and '"X-CSRFToken"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing loads from elsewhere"


def test_static_files_are_local_and_htmx_is_vendored(client: FlaskClient) -> None:
    def static(name: str) -> str:
        with client.get(f"/static/{name}") as response:
            assert response.status_code == 200, name
            return text(response)

    htmx = static("htmx.min.js")
    assert htmx.startswith("/* htmx 2.0.") and "0BSD" in htmx[:200]
    static("app.js")
    static("favicon.svg")
    css = static("app.css")
    assert "prefers-color-scheme: dark" in css and "@media (max-width" in css
    assert "@import" not in css and "url(http" not in css


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("/ui/", "overview-live"),
        ("/ui/jobs", "job-table"),
        ("/ui/runs", "run-table"),
        ("/ui/queues", "queue-table"),
        ("/ui/queues?peek=default", "peek"),
        ("/ui/jobs/{id}", "job-live"),
        ("/ui/jobs/{id}", "job-runs"),
        ("/ui/jobs/new?when=cron&cron=0+9+*+*+*", "preview"),
        ("/ui/jobs/{id}/edit?when=daily&at=2030-01-02T09:30", "preview"),
    ],
)
def test_a_block_alone_when_htmx_targets_it(client: FlaskClient, url: str, target: str) -> None:
    job = create(client)
    response = fragment(client, url.format(id=job["jobId"]), target)
    assert response.status_code == 200
    html = text(response).strip()
    assert "<html" not in html and "<body" not in html
    assert re.match(rf'<\w+ id="{target}"', html), html[:200]
    assert "HX-Request" in response.headers["Vary"]


def test_the_full_page_for_boosted_requests_history_restores_and_unknown_targets(
    client: FlaskClient,
) -> None:
    for headers in (
        HTMX,  # HX-Request alone names no block
        HTMX | {"HX-Target": "job-table", "HX-Boosted": "true"},
        HTMX | {"HX-Target": "job-table", "HX-History-Restore-Request": "true"},
        HTMX | {"HX-Target": "content"},  # a block of the page, but not one it offers
        {"HX-Target": "job-table"},  # not htmx at all
    ):
        html = text(client.get("/ui/jobs", headers=headers))
        assert html.startswith("<!doctype html>"), headers


def test_a_block_named_by_the_triggering_element(client: FlaskClient) -> None:
    html = text(client.get("/ui/jobs", headers=HTMX | {"HX-Trigger": "job-table"}))
    assert html.strip().startswith('<div id="job-table"')


def test_the_overview_polls_itself_only_while_the_tab_is_visible(client: FlaskClient) -> None:
    live = element(text(client.get("/ui/")), "overview-live")
    assert 'hx-get="/ui/"' in live
    assert "every 5s [document.visibilityState === &#39;visible&#39;]" in live
    assert 'hx-swap="outerHTML"' in live


class Controls(HTMLParser):
    """Form controls, and the labels that name them."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.open_labels = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if attributes.get("for"):
                self.labelled.add(str(attributes["for"]))
        elif tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(attributes | {"wrapped": "yes" if self.open_labels else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1


@pytest.mark.parametrize(
    "url", ["/ui/jobs", "/ui/jobs/new", "/ui/jobs/{id}/edit", "/ui/runs", "/ui/jobs/{id}"]
)
def test_every_control_has_a_label(client: FlaskClient, url: str) -> None:
    job = create(client)
    parser = Controls()
    parser.feed(text(client.get(url.format(id=job["jobId"]))))
    unlabelled = [
        control
        for control in parser.controls
        if not control["wrapped"] and control.get("id") not in parser.labelled
    ]
    assert unlabelled == []


# Escaping


def test_payloads_and_names_stay_text_everywhere(app: Flask, client: FlaskClient) -> None:
    job = create(client, payload=XSS, name=f"<b>{XSS}</b>", at="2030-01-01T00:10:00Z")
    add_run(app, job["jobId"], "dead", 5, last_error=XSS)
    client.post("/schedules", json={"payload": XSS, "at": "2029-12-31T00:00:00Z"})
    add_message(app, "default", XSS)
    pages = [
        "/ui/",
        "/ui/jobs",
        "/ui/jobs?q=script",
        f"/ui/jobs/{job['jobId']}",
        f"/ui/jobs/{job['jobId']}/edit",
        "/ui/runs",
        "/ui/queues?peek=default",
    ]
    for url in pages:
        html = text(client.get(url))
        assert "<script>alert(1)" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        assert "<b>&lt;script" not in html
    preview = text(client.get(f"/ui/jobs/new?when=cron&cron={XSS}&timezone=UTC"))
    assert "<script>alert(1)" not in preview


# CSRF


def test_posts_and_deletes_are_refused_without_a_csrf_token(client: FlaskClient) -> None:
    job = create(client)
    job_id = job["jobId"]
    refused = [
        client.post("/ui/jobs/new", data=form_data(client) | {"csrf_token": ""}),
        client.post(f"/ui/jobs/{job_id}/pause"),
        client.post(f"/ui/jobs/{job_id}/run", headers=HTMX),
        client.delete(f"/ui/jobs/{job_id}", headers=HTMX | {"HX-Target": f"job-row-{job_id}"}),
        client.post("/ui/runs/retry-dead", headers={"X-CSRFToken": "forged"}),
    ]
    assert [response.status_code for response in refused] == [400] * len(refused)
    assert refused[0].mimetype == "text/html"  # a plain form: a page saying why
    assert "CSRF" in text(refused[0])
    assert refused[2].mimetype == "text/plain"  # htmx: a message for the toast
    assert "CSRF" in text(refused[2])
    assert client.get(f"/schedules/{job_id}").get_json()["status"] == "active"
    # The header htmx sends (hx-headers on <body>) is accepted, and so is the form field.
    ok = client.post(
        f"/ui/jobs/{job_id}/pause",
        headers={"X-CSRFToken": token(client), "HX-Request": "true"},
    )
    assert ok.status_code == 303
    assert client.get(f"/schedules/{job_id}").get_json()["status"] == "paused"


def test_the_json_api_needs_no_csrf_token(client: FlaskClient) -> None:
    assert client.post("/schedules", json={"payload": "p", "minute": 1}).status_code == 201


# The form


def test_a_daily_job_created_through_the_form(client: FlaskClient) -> None:
    response = client.post("/ui/jobs/new", data=form_data(client, name="standup"))
    assert response.status_code == 303
    job_id = response.headers["Location"].rsplit("/", 1)[-1]
    job = client.get(f"/schedules/{job_id}").get_json()
    assert job["recurring"] == "daily"
    assert job["timezone"] == "Europe/Berlin"
    assert job["at"] == "2030-01-02T08:30:00Z"  # 09:30 in Berlin (UTC+1 in winter)
    assert job["name"] == "standup"
    assert job["target"] == {"type": "queue", "name": "default"}
    page = text(client.get(response.headers["Location"]))
    assert "Job created: standup" in page
    assert "Every day at 09:30, Europe/Berlin" in page


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"when": "now"}, {"recurring": "none", "at": "2030-01-01T00:00:00Z"}),
        (
            {"when": "at", "at": "2030-06-01T12:00", "timezone": "America/New_York"},
            {"recurring": "none", "at": "2030-06-01T16:00:00Z"},
        ),
        (
            {"when": "weekly", "at": "2030-01-07T08:00", "timezone": "UTC"},
            {"recurring": "weekly", "at": "2030-01-07T08:00:00Z"},
        ),
        (
            {"when": "interval", "interval": "90", "at": ""},
            {"recurring": "interval", "interval": 90},
        ),
        (
            {"when": "cron", "cron": "0 9 * * MON-FRI", "at": "2030-01-02T09:30"},
            {"recurring": "cron", "cron": "0 9 * * MON-FRI", "at": None},
        ),
        (
            {"target_type": "webhook", "webhook_url": "http://127.0.0.1:9/hook"},
            {"target": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "method": "POST"}},
        ),
        (
            {"target_type": "sqs", "sqs_url": "https://sqs.eu-west-1.amazonaws.com/1/q"},
            {"target": {"type": "sqs", "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q"}},
        ),
        ({"attempts": "3", "backoff": "1.5"}, {"retry": {"attempts": 3, "backoff": 1.5}}),
        ({"paused": "on", "max_runs": "2"}, {"status": "paused", "maxRuns": 2}),
        ({"misfire": "all", "max_catch_up": "12"}, {"misfire": "all", "maxCatchUp": 12}),
    ],
)
def test_each_kind_of_rule_and_target_through_the_form(
    client: FlaskClient, fields: dict[str, str], expected: dict[str, Any]
) -> None:
    response = client.post("/ui/jobs/new", data=form_data(client, **fields))
    assert response.status_code == 303, text(response)
    job_id = response.headers["Location"].rsplit("/", 1)[-1]
    job = client.get(f"/schedules/{job_id}").get_json()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert value.items() <= job[key].items(), (key, job[key])
        else:
            assert job[key] == value, (key, job[key])


def test_field_errors_show_next_to_their_field(client: FlaskClient) -> None:
    response = client.post(
        "/ui/jobs/new",
        data=form_data(
            client,
            payload='{"unclosed": 1',
            when="cron",
            cron="61 * * * *",
            target_type="webhook",
            webhook_url="ftp://example.com",
            attempts="0",
            max_catch_up="0",
        ),
    )
    assert response.status_code == 422
    html = text(response)
    assert "1" in element(html, "error-max_catch_up")
    assert 'id="error-summary"' in html
    assert "61" in element(html, "error-cron")
    assert "does not parse" in element(html, "error-payload")
    assert "http" in element(html, "error-webhook_url")
    assert "1" in element(html, "error-attempts")
    assert element(html, "error-timezone").endswith("></p>")  # no error: empty, still there
    # What the user typed is kept.
    assert 'value="61 * * * *"' in html and "{&#34;unclosed&#34;: 1" in html


def test_the_ui_and_the_api_refuse_a_bad_rule_in_the_same_words(client: FlaskClient) -> None:
    api = client.post(
        "/schedules", json={"payload": "p", "recurring": "cron", "cron": "0 25 * * *"}
    ).get_json()
    api_message = next(e["message"] for e in api["errors"] if e["field"] == "cron")
    ui = text(client.post("/ui/jobs/new", data=form_data(client, when="cron", cron="0 25 * * *")))
    assert api_message in element(ui, "error-cron").replace("&#39;", "'")


def test_a_bad_time_zone_and_a_missing_date(client: FlaskClient) -> None:
    html = text(client.post("/ui/jobs/new", data=form_data(client, timezone="Mars/Olympus")))
    assert "Mars/Olympus" in element(html, "error-timezone")
    html = text(client.post("/ui/jobs/new", data=form_data(client, when="at", at="")))
    assert "required" in element(html, "error-at")
    html = text(client.post("/ui/jobs/new", data=form_data(client, when="interval", interval="x")))
    assert "whole number" in element(html, "error-interval")


@pytest.mark.parametrize(
    ("query", "words", "times"),
    [
        ({"when": "now"}, "Once, at 2030-01-01 00:00:00 UTC", 1),
        (
            {"when": "at", "at": "2030-01-02T09:30", "timezone": "Europe/Berlin"},
            "Once, at 2030-01-02 08:30:00 UTC (09:30 Europe/Berlin)",
            1,
        ),
        (
            {"when": "daily", "at": "2030-01-02T09:30", "timezone": "Europe/Berlin"},
            "Every day at 09:30, Europe/Berlin",
            5,
        ),
        ({"when": "weekly", "at": "2030-01-02T09:30", "timezone": "UTC"}, "Every Wednesday", 5),
        ({"when": "interval", "interval": "90"}, "Every 90 seconds", 5),
        ({"when": "interval", "interval": "3600"}, "Every hour", 5),
        ({"when": "cron", "cron": "0 9 * * MON-FRI", "timezone": "Asia/Tokyo"}, "Asia/Tokyo", 5),
    ],
)
def test_the_preview_fragment_for_each_kind(
    client: FlaskClient, query: dict[str, str], words: str, times: int
) -> None:
    response = client.get(
        "/ui/jobs/new", query_string=query, headers=HTMX | {"HX-Target": "preview"}
    )
    assert response.status_code == 200
    html = text(response)
    assert words in element(html, "preview-description")
    assert len(re.findall(r"<li>", element(html, "preview-times"))) == times
    assert 'id="preview-error"' not in html and 'data-valid="true"' in html
    assert 'id="submit"' not in html  # the button stays where the pointer may be on it
    assert 'id="error-cron" class="field-error" aria-live="polite" hx-swap-oob="true"></p>' in html


def test_the_preview_names_a_first_time_already_past(client: FlaskClient) -> None:
    html = text(
        fragment(client, "/ui/jobs/new?when=at&at=2029-12-31T10:00&timezone=UTC", "preview")
    )
    assert 'id="preview-due-now"' in html


def test_the_preview_shows_times_in_the_rule_zone_and_the_viewer_zone(client: FlaskClient) -> None:
    client.set_cookie("tz", "Asia/Tokyo")
    html = text(
        fragment(
            client,
            "/ui/jobs/new?when=daily&at=2030-01-02T09:30&timezone=Europe/Berlin",
            "preview",
        )
    )
    times = element(html, "preview-times")
    assert "Wed 2 Jan, 09:30:00 CET in 32 h" in " ".join(plain(times).split())
    assert "Wed 2 Jan, 17:30:00 JST for you" in plain(times)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"when": "cron", "cron": "61 * * * *"}, "cron"),
        ({"when": "cron", "cron": ""}, "cron"),
        ({"when": "interval", "interval": "0"}, "interval"),
        ({"when": "daily", "at": "", "timezone": "UTC"}, "at"),
        ({"when": "daily", "at": "2030-01-02T09:30", "timezone": "Nowhere/Else"}, "timezone"),
        ({"when": "daily", "at": "2030-01-02T09:30", "max_runs": "0"}, "max_runs"),
    ],
)
def test_an_invalid_rule_points_submit_at_the_error_without_replacing_it(
    client: FlaskClient, query: dict[str, str], field: str
) -> None:
    html = text(
        client.get("/ui/jobs/new", query_string=query, headers=HTMX | {"HX-Target": "preview"})
    )
    error = element(html, "preview-error")
    assert 'role="alert"' in error and len(error) > 60
    assert 'data-valid="false"' in html
    assert 'id="submit"' not in html  # never swapped: a press on it must end on it
    field_error = element(html, f"error-{field}")
    assert 'hx-swap-oob="true"' in field_error and not field_error.endswith("></p>")
    # The whole page, asked with the same values: the button points at the error, and stays
    # pressable (a disabled button would swallow a press made before the preview caught up).
    page = text(client.get("/ui/jobs/new", query_string=query))
    button = re.search(r'<button[^>]*id="submit"[^>]*>', page)
    assert button and 'aria-describedby="preview-error"' in button.group(0)
    assert "disabled" not in button.group(0)


def test_the_form_wires_the_live_preview(client: FlaskClient) -> None:
    html = text(client.get("/ui/jobs/new"))
    timing = re.search(r'<fieldset id="timing-fields"[^>]*>', html)
    assert timing
    for attribute in (
        'hx-get="/ui/jobs/new"',
        'hx-target="#preview"',
        'hx-sync="this:replace"',
        'hx-trigger="input delay:300ms, change"',
    ):
        assert attribute in timing.group(0)
    for name in ("name", "payload", "at", "interval", "cron", "timezone", "queue_name"):
        assert f'<label for="{name}"' in html, name
    assert html.count('<option value="Europe/Berlin">') == 1  # the zone list


def test_a_new_form_starts_in_the_viewer_zone(client: FlaskClient) -> None:
    client.set_cookie("tz", "Europe/Kiev")  # an old name: shown by its canonical one
    html = text(client.get("/ui/jobs/new"))
    assert 'id="timezone" name="timezone" value="Europe/Kyiv"' in html
    assert 'value="2030-01-01T03:00"' in html  # the next full hour in Kyiv (UTC+2)


def test_the_payload_check_fragment(client: FlaskClient) -> None:
    headers = {"X-CSRFToken": token(client)} | HTMX | {"HX-Target": "error-payload"}
    bad = text(client.post("/ui/jobs/check-payload", data={"payload": "[1, 2"}, headers=headers))
    assert bad.startswith('<p id="error-payload"') and "does not parse" in bad
    good = text(client.post("/ui/jobs/check-payload", data={"payload": "[1, 2]"}, headers=headers))
    assert good.startswith('<p id="error-payload"') and good.endswith("></p>")
    plain = text(client.post("/ui/jobs/check-payload", data={"payload": "{x"}, headers=headers))
    assert "does not parse" in plain
    text_payload = client.post("/ui/jobs/check-payload", data={"payload": "hi"}, headers=headers)
    assert text(text_payload).endswith("></p>")


def test_editing_a_job_keeps_what_the_form_does_not_show(client: FlaskClient) -> None:
    job = create(
        client,
        recurring="daily",
        at="2030-01-02T08:30:00Z",
        timezone="Europe/Berlin",
        target={
            "type": "webhook",
            "url": "http://127.0.0.1:9/a",
            "headers": {"X-Team": "ops"},
            "timeout": 3,
        },
    )
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert 'value="2030-01-02T09:30"' in edit  # the wall time in the job's zone
    assert 'id="when-daily" checked' in edit
    data = form_data(
        client,
        payload="new payload",
        target_type="webhook",
        webhook_url="http://127.0.0.1:9/b",
        webhook_method="PUT",
    )
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=data)
    assert response.status_code == 303
    saved = client.get(f"/schedules/{job['jobId']}").get_json()
    assert saved["payload"] == "new payload"
    assert saved["target"] == {
        "type": "webhook",
        "url": "http://127.0.0.1:9/b",
        "method": "PUT",
        "headers": {"X-Team": "ops"},
        "timeout": 3,
    }
    assert "Job saved" in text(client.get(response.headers["Location"]))


def test_an_edit_with_errors_stays_on_the_form(client: FlaskClient) -> None:
    job = create(client)
    response = client.post(
        f"/ui/jobs/{job['jobId']}/edit", data=form_data(client, when="interval", interval="-5")
    )
    assert response.status_code == 422
    assert "interval" in element(text(response), "error-interval")
    assert client.get(f"/schedules/{job['jobId']}").get_json()["recurring"] == "none"


# The list


def test_jobs_list_rows(client: FlaskClient) -> None:
    create(
        client,
        name="reports",
        payload="x" * 300,
        recurring="cron",
        cron="0 9 * * MON-FRI",
        timezone="Europe/Berlin",
        target={"type": "sqs", "queueUrl": "https://sqs.eu-central-1.amazonaws.com/1/reports"},
    )
    client.set_cookie("tz", "Europe/Berlin")
    html = text(client.get("/ui/jobs"))
    assert "x" * 79 + "…" in html and "x" * 81 not in html  # the payload, truncated
    assert "At 09:00, Monday through Friday, Europe/Berlin" in html
    assert "Tue 1 Jan, 09:00:00 CET" in plain(html)  # next run, in the viewer's zone
    assert "in 8 h" in html
    assert "SQS reports" in html
    assert 'class="badge status-active"' in html


def test_jobs_search_and_filters(client: FlaskClient, clock: ManualClock) -> None:
    create(client, name="alpha", payload="apples")
    clock.advance(1)
    paused = create(client, name="beta", payload="bananas", status="paused")
    clock.advance(1)
    create(client, name="gamma", target={"type": "webhook", "url": "http://127.0.0.1:9/"})
    clock.advance(1)
    create(client, name="delta", recurring="interval", interval=60)

    def names(query: str) -> list[str]:
        html = text(fragment(client, f"/ui/jobs?{query}", "job-table"))
        return re.findall(r'class="job-link">([^<]+)<', html)

    assert names("") == ["delta", "gamma", "beta", "alpha"]  # newest first
    assert names("sort=created") == ["alpha", "beta", "gamma", "delta"]
    assert names("q=banana") == ["beta"]
    assert names("q=ALPHA") == ["alpha"]
    assert names("status=paused") == ["beta"]
    assert names("target=webhook") == ["gamma"]
    assert names("recurring=interval") == ["delta"]
    assert names("status=bogus") == ["delta", "gamma", "beta", "alpha"]  # ignored
    assert paused["status"] == "paused"
    assert "No jobs match these filters" in text(client.get("/ui/jobs?q=nothing-like-it"))


def test_jobs_pagination_follows_the_store_cursor(client: FlaskClient, clock: ManualClock) -> None:
    for index in range(30):
        clock.advance(1)
        create(client, name=f"job-{index:02d}")
    first = text(client.get("/ui/jobs?q=job-"))
    assert first.count('class="job-link"') == 25
    link = re.search(r'id="next-page" rel="next" href="([^"]+)"', first)
    assert link
    href = link.group(1).replace("&amp;", "&")
    assert "cursor=" in href and "q=job-" in href and "offset" not in href
    second = text(fragment(client, href, "job-table"))
    names = re.findall(r'class="job-link">([^<]+)<', second)
    assert names == [f"job-{index:02d}" for index in range(4, -1, -1)]  # newest first
    assert 'id="next-page"' not in second and 'id="first-page"' in second


def test_a_bad_cursor_is_an_error_page_not_a_crash(client: FlaskClient) -> None:
    response = client.get("/ui/jobs?cursor=nonsense")
    assert response.status_code == 400
    assert response.mimetype == "text/html"


# Row actions


def test_row_actions_answer_with_the_row(client: FlaskClient) -> None:
    job_id = create(client, name="row")["jobId"]
    row = f"job-row-{job_id}"
    headers = HTMX | {"HX-Target": row, "X-CSRFToken": token(client)}

    paused = client.post(f"/ui/jobs/{job_id}/pause", headers=headers)
    assert paused.status_code == 200
    html = text(paused).strip()
    assert html.startswith(f'<tr id="{row}">')
    assert "status-paused" in html and ">Resume<" in html
    assert "Job paused" in paused.headers["HX-Trigger"]

    resumed = text(client.post(f"/ui/jobs/{job_id}/resume", headers=headers))
    assert "status-active" in resumed and ">Pause<" in resumed

    ran = client.post(f"/ui/jobs/{job_id}/run", headers=headers)
    assert ran.status_code == 200 and "Run started" in ran.headers["HX-Trigger"]
    assert len(client.get(f"/schedules/{job_id}/runs").get_json()) == 1

    deleted = client.delete(f"/ui/jobs/{job_id}", headers=headers)
    assert deleted.status_code == 200 and text(deleted) == ""
    assert "Job deleted: row" in deleted.headers["HX-Trigger"]
    assert client.get(f"/schedules/{job_id}").status_code == 404


def test_rows_carry_their_actions(client: FlaskClient) -> None:
    job_id = create(client, name="acts")["jobId"]
    row = element(text(client.get("/ui/jobs")), f"job-row-{job_id}")
    assert f'hx-post="/ui/jobs/{job_id}/pause" hx-target="#job-row-{job_id}"' in row
    assert f'hx-post="/ui/jobs/{job_id}/run"' in row
    assert f'hx-delete="/ui/jobs/{job_id}"' in row
    assert "hx-confirm=" in row and "acts" in row


def test_actions_from_a_plain_form_redirect_back(client: FlaskClient) -> None:
    job_id = create(client)["jobId"]
    data = {"csrf_token": token(client), "next": "/ui/jobs?status=active"}
    response = client.post(f"/ui/jobs/{job_id}/pause", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/jobs?status=active"
    response = client.post(f"/ui/jobs/{job_id}/resume", data=data | {"next": "https://evil.test/"})
    assert response.headers["Location"] == f"/ui/jobs/{job_id}"  # only UI pages as `next`
    assert "Job resumed" in text(client.get(response.headers["Location"]))


def test_delete_from_the_job_page_goes_to_the_list(client: FlaskClient) -> None:
    job_id = create(client)["jobId"]
    headers = HTMX | {"HX-Target": "delete-job", "X-CSRFToken": token(client)}
    response = client.delete(f"/ui/jobs/{job_id}", headers=headers)
    assert response.status_code == 200
    assert response.headers["HX-Location"] == "/ui/jobs"
    assert "Job deleted" in text(client.get("/ui/jobs"))


def test_actions_on_a_missing_job(client: FlaskClient) -> None:
    missing = str(uuid.uuid4())
    page = client.get(f"/ui/jobs/{missing}")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "does not exist" in text(page)
    headers = HTMX | {"HX-Target": f"job-row-{missing}", "X-CSRFToken": token(client)}
    answer = client.post(f"/ui/jobs/{missing}/pause", headers=headers)
    assert answer.status_code == 404 and answer.mimetype == "text/plain"  # a toast, not a page
    assert client.get("/ui/jobs/not-a-uuid").status_code == 404


# One job, runs, retries


def test_the_job_page(app: Flask, client: FlaskClient) -> None:
    job = create(client, name="every-minute", recurring="interval", interval=60, payload='{"a": 1}')
    add_run(app, job["jobId"], "delivered", 3)
    add_run(app, job["jobId"], "dead", 2, attempts=5, last_error="HTTP 500 from target")
    html = text(client.get(f"/ui/jobs/{job['jobId']}"))
    assert "Every minute" in element(html, "job-rule")
    assert "{&#34;a&#34;: 1}" in element(html, "job-payload")
    next_times = element(html, "next-times")
    assert next_times.count("<li>") == 10
    assert "00:30:00 UTC" in next_times and "00:39:00 UTC" in next_times
    runs = element(html, "run-rows")
    assert runs.count("<tr") == 2
    assert "HTTP 500 from target" in runs and "25 ms" in runs and "status-dead" in runs
    assert 'id="retry-dead"' in html
    live = re.search(r'<div id="job-live"[^>]*>', html)
    assert live and "every 3s" in live.group(0)


def test_a_completed_job_page_stops_polling(client: FlaskClient, clock: ManualClock) -> None:
    job = create(client, at="2029-12-31T00:00:00Z", maxRuns=1)
    client.post(f"/schedules/{job['jobId']}/pause")
    html = text(client.get(f"/ui/jobs/{job['jobId']}"))
    live = re.search(r'<div id="job-live"[^>]*>', html)
    assert live and "hx-trigger" not in live.group(0)
    assert "Next times if resumed now" in html


def test_retry_a_dead_run_from_its_row(app: Flask, client: FlaskClient) -> None:
    job_id = create(client)["jobId"]
    run_id = add_run(app, job_id, "dead", 1, attempts=5, last_error="boom")
    headers = HTMX | {"HX-Target": f"run-{run_id}", "X-CSRFToken": token(client)}
    response = client.post(f"/ui/runs/{run_id}/retry", data={"show_job": "no"}, headers=headers)
    assert response.status_code == 200
    html = text(response).strip()
    assert html.startswith(f'<tr id="run-{run_id}">') and "status-retrying" in html
    assert "Retry" not in html  # only dead runs retry
    again = client.post(f"/ui/runs/{run_id}/retry", headers=headers)
    assert again.status_code == 409 and "only dead runs retry" in text(again)


def test_retry_all_dead_runs(app: Flask, client: FlaskClient) -> None:
    job_id = create(client)["jobId"]
    for minutes in (1, 2, 3):
        add_run(app, job_id, "dead", minutes)
    add_run(app, job_id, "delivered", 4)
    runs_page = text(client.get("/ui/runs?status=dead"))
    assert "Retry all 3 dead runs" in runs_page
    data = {"csrf_token": token(client), "next": "/ui/runs?status=dead"}
    response = client.post("/ui/runs/retry-dead", data=data)
    assert response.status_code == 303 and response.headers["Location"] == "/ui/runs?status=dead"
    assert "3 dead runs retried" in text(client.get(response.headers["Location"]))
    assert client.get("/runs?status=dead").get_json() == []


def test_runs_filtered_by_status_and_time(app: Flask, client: FlaskClient) -> None:
    job_id = create(client, name="filtered")["jobId"]
    add_run(app, job_id, "delivered", 50)
    add_run(app, job_id, "dead", 30)
    add_run(app, job_id, "delivered", 10)

    def count(query: str) -> int:
        html = text(fragment(client, f"/ui/runs?{query}", "run-table"))
        return html.count('<tr id="run-')

    assert count("") == 3
    assert count("status=dead") == 1
    assert count("status=delivered") == 2
    client.set_cookie("tz", "Europe/Berlin")  # 2029-12-31T23:40Z is 00:40 in Berlin
    assert count("since=2030-01-01T00:40") == 1
    assert count("since=2030-01-01T00:00&until=2030-01-01T00:40") == 2
    bad = text(client.get("/ui/runs?since=yesterday"))
    assert "date and time" in element(bad, "error-since")


# Overview and queues


def test_the_overview(app: Flask, client: FlaskClient) -> None:
    create(client, name="soon", at="2030-01-01T00:20:00Z")
    create(client, name="often", recurring="interval", interval=600, at="2030-01-01T00:05:00Z")
    create(client, name="later", at="2030-01-01T03:00:00Z")
    create(client, name="paused", status="paused")
    failing = create(client, name="failing", at="2030-01-01T05:00:00Z")["jobId"]
    add_run(app, failing, "dead", 12, last_error="connection refused")
    add_run(app, failing, "retrying", 8, last_error="timeout")
    add_run(app, failing, "delivered", 3)
    client.set_cookie("tz", "America/New_York")
    html = text(client.get("/ui/"))
    assert ">4</span> active jobs" in html and ">1</span> paused jobs" in html
    timeline = between(html, 'id="timeline"', "</ol>")
    lanes = re.findall(r'<li class="lane">.*?</li>', timeline, re.S)
    assert len(lanes) == 2  # "later" and "failing" are past the hour
    assert "often" in lanes[0] and "6 times" in lanes[0] and "soon" in lanes[1]
    assert "19:05:00 EST" in lanes[0]  # the viewer's zone
    chart = element(html, "run-chart")
    assert chart.count('<rect class="bar"') == 3 and "3 runs in the last hour" in chart
    assert "connection refused" in html and "timeout" in html
    assert html.index("timeout") < html.index("connection refused")  # newest first


def test_the_run_chart_geometry() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [
        runs.MinuteLag(start + timedelta(minutes=i), i % 3, 10.0 * i, 20.0 * i) for i in range(60)
    ]
    chart = charts.run_chart(rows, "UTC")
    assert chart.total == sum(i % 3 for i in range(60))
    assert len([bar for bar in chart.bars if bar.height > 0]) == 40
    assert max(bar.height for bar in chart.bars) == chart.bottom - chart.top
    assert [tick.label for tick in chart.time_ticks] == [f"00:{m:02d}" for m in range(0, 60, 10)]
    assert len(chart.p99_lines) == 20  # the line breaks at minutes without runs
    assert charts.nice_ceiling(7) == 10 and charts.nice_ceiling(120) == 200
    assert charts.run_chart([], "UTC").total == 0


def test_queues_and_peek(app: Flask, client: FlaskClient) -> None:
    for index in range(3):
        add_message(app, "emails", f"mail {index}")
    html = text(client.get("/ui/queues"))
    emails = element(html, "queue-emails")
    assert '<td data-label="Depth" class="num">3</td>' in emails
    assert 'id="queue-default"' in html
    peek = fragment(client, "/ui/queues?peek=emails", "peek")
    assert text(peek).strip().startswith('<section id="peek"')
    assert text(peek).count("mail ") == 3
    assert client.get("/ui/queues?peek=../etc").status_code == 404


def test_times_show_in_the_viewer_zone_with_the_zone_named(client: FlaskClient) -> None:
    job_id = create(client, at="2030-01-01T12:00:00Z")["jobId"]
    for cookie, zone, shown in (
        ("Asia/Tokyo", "Asia/Tokyo", "Tue 1 Jan, 21:00:00 JST in 12 h"),
        ("Asia%2FTokyo", "Asia/Tokyo", "Tue 1 Jan, 21:00:00 JST in 12 h"),  # URL-encoded
        ("Mars/Olympus", "UTC", "Tue 1 Jan, 12:00:00 UTC in 12 h"),  # not a zone: UTC
        ("", "UTC", "Tue 1 Jan, 12:00:00 UTC in 12 h"),
    ):
        client.set_cookie("tz", cookie)
        html = text(client.get(f"/ui/jobs/{job_id}"))
        next_run = between(html, 'id="job-next-run"', "</dd>")
        assert shown in " ".join(plain(next_run).split()), cookie
        assert 'datetime="2030-01-01T12:00:00Z" title="2030-01-01 12:00:00 UTC"' in next_run
        assert f'<strong id="viewer-zone">{zone}</strong>' in html
        assert f'data-tz="{zone}"' in html


@pytest.mark.parametrize("url", ["/ui/nowhere", "/ui/jobs/new/extra", "/nowhere"])
def test_an_unknown_page_is_a_styled_page(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<!doctype html>" in html.lower() and 'href="/ui/jobs"' in html  # the UI's frame
    assert 'id="error-message"' in html


def test_an_unknown_api_path_stays_problem_json(client: FlaskClient) -> None:
    response = client.get("/schedules/not-a-job/nowhere")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("ms", "label"),
    [(0, "0 ms"), (250, "250 ms"), (1500, "1.5 s"), (45_000, "45 s"), (120_000, "2.0 min"),
     (5_400_000, "1.5 h"), (2 * 86_400_000, "2.0 d"), (250_000_000_000, "7.9 y"),
     (5e14, "15,855 y")],
)  # fmt: skip
def test_chart_durations_take_a_unit_that_keeps_the_label_short(ms: float, label: str) -> None:
    assert charts.format_ms(ms) == label and len(label) <= 8


def test_a_lane_of_a_job_every_10_s_is_thinned_to_the_end_of_the_hour() -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2030, 1, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=10 * i) for i in range(360)]
    marks = charts.thinned(times)
    assert len(marks) == charts.TIMELINE_MARKS and marks[0] == times[0] and marks[-1] == times[-1]


def test_a_job_has_one_label_on_every_page(client: FlaskClient) -> None:
    """Its name, or its short id: never its payload on one page and its id on another."""
    job = create(client, payload="secret-ish payload text")
    client.post(f"/schedules/{job['jobId']}/pause")
    label = f"Job {job['jobId'][:8]}"
    for url in ("/ui/jobs", f"/ui/jobs/{job['jobId']}", "/ui/audit"):
        html = client.get(url).get_data(as_text=True)
        assert label in html, url
    assert "secret-ish payload text" not in client.get("/ui/audit").get_data(as_text=True)


@pytest.mark.parametrize(
    ("ms", "words"),
    [(250, "250 ms"), (1500, "1.5 s"), (45_000, "45 s"), (150_000, "2 min"),
     (3 * 3_600_000 + 600_000, "3 h 10 min"), (6 * 86_400_000, "6 days"),
     (7 * 365.25 * 86_400_000, "7.0 years"), (-250, "-250 ms")],
)  # fmt: skip
def test_lag_reads_as_words_at_any_size(ms: float, words: str) -> None:
    from app.ui.display import lag

    assert lag(ms) == words


def test_the_runs_page_filters_by_job(app: Flask, client: FlaskClient) -> None:
    mine = create(client, name="mine", at="2030-01-01T00:00:00Z")
    other = create(client, name="other", at="2030-01-01T00:00:00Z")
    for job in (mine, other):
        assert client.post(f"/schedules/{job['jobId']}/run").status_code == 202
    html = client.get(f"/ui/runs?job={mine['jobId']}").get_data(as_text=True)
    assert 'id="runs-job"' in html and ">mine</a>" in html
    assert html.count('<td data-label="Job">') == 1  # only the job's own run
    assert f'name="job" value="{mine["jobId"]}"' in html  # kept by the other filters
    job_page = client.get(f"/ui/jobs/{mine['jobId']}").get_data(as_text=True)
    assert f'href="/ui/runs?job={mine["jobId"]}"' in job_page
    unknown = client.get("/ui/runs?job=not-a-job").get_data(as_text=True)
    assert "job: no such job" in unknown
