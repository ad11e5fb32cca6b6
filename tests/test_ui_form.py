"""The job form has every field of the API, and a webhook's signing secret is shown once and
rotated from the job's page (Flask's test client, CSRF on, the manual clock at 2030-01-01)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, get_args

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import jobs
from app.schemas import JobIn, RetryIn, SqsTarget, WebhookTarget
from app.ui import forms
from tests.test_access import bearer, make_key
from tests.test_ui_views import HTMX, add_run, create, element, form_data, text, token

FIFO_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"


def saved_job(client: FlaskClient, response: Any) -> dict[str, Any]:
    assert response.status_code == 303, text(response)
    job_id = response.headers["Location"].rsplit("/", 1)[-1]
    return dict(client.get(f"/schedules/{job_id}").get_json())


def stored_secrets(app: Flask, job_id: str) -> list[str]:
    with app.app_context():
        return jobs.secrets_of(jobs.get_job(job_id).target)


def session_of(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """What the session cookie holds, decoded."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return dict(serializer.loads(cookie.value))


def input_names(html: str) -> set[str]:
    return set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', html))


# Every field of the API


def api_fields(model: Any, prefix: str = "") -> list[str]:
    return [prefix + name for name in model.model_fields if name != "type"]


def test_every_field_of_the_api_has_a_form_field(client: FlaskClient) -> None:
    target_models = get_args(get_args(JobIn.model_fields["target"].annotation)[0])[0]
    targets: list[Any] = list(get_args(target_models))
    assert {SqsTarget, WebhookTarget} <= set(targets)
    api = api_fields(JobIn) + api_fields(RetryIn, "retry.")
    for model in targets:
        api += api_fields(model, "target.")
    api = [name for name in api if name not in ("target", "retry", "minute")]  # minute: at
    shown = input_names(text(client.get("/ui/jobs/new")))
    missing = [name for name in api if forms.form_field(name) not in shown]
    assert missing == []
    assert forms.form_field("target.sqs.messageGroupId") == "sqs_group"
    assert forms.form_field("target.webhook.headers.X-Name") == "webhook_headers"
    assert forms.form_field("retry.maxAge") == "max_age"


def test_a_webhook_job_with_every_webhook_field(client: FlaskClient) -> None:
    own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    data = form_data(
        client,
        target_type="webhook",
        webhook_url="http://127.0.0.1:9/hook",
        webhook_method="PUT",
        webhook_headers="Authorization: Bearer abc\n\nX-Team:  ops \n",
        webhook_timeout="2.5",
        webhook_secret=own,
        max_in_flight="4",
    )
    response = client.post("/ui/jobs/new", data=data)
    job = saved_job(client, response)
    assert job["target"] == {
        "type": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "method": "PUT",
        "headers": {"Authorization": "Bearer abc", "X-Team": "ops"},
        "timeout": 2.5,
        "maxInFlight": 4,
    }
    page = text(client.get(response.headers["Location"]))
    assert 'id="new-secret"' not in page  # a secret the person typed is not shown back
    assert own not in page and "whsec_MfKQ…" in element(page, "job-secret")


def test_an_sqs_fifo_job_with_region_and_group(client: FlaskClient) -> None:
    data = form_data(
        client,
        target_type="sqs",
        sqs_url=FIFO_URL,
        sqs_region="eu-west-1",
        sqs_group="tenant-7",
        max_in_flight="2",
    )
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    assert job["target"] == {
        "type": "sqs",
        "queueUrl": FIFO_URL,
        "region": "eu-west-1",
        "messageGroupId": "tenant-7",
        "maxInFlight": 2,
    }


def test_retries_with_their_longest_wait_and_max_age(client: FlaskClient) -> None:
    data = form_data(client, attempts="7", backoff="1", max_backoff="60", max_age="3600")
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    assert job["retry"] == {"attempts": 7, "backoff": 1.0, "maxBackoff": 60.0, "maxAge": 3600.0}


def test_empty_optional_fields_take_the_defaults(client: FlaskClient) -> None:
    data = form_data(
        client,
        target_type="webhook",
        webhook_url="http://127.0.0.1:9/hook",
        webhook_headers="",
        webhook_timeout="",
        webhook_secret="",
        max_in_flight="",
        max_backoff="",
        max_age="",
    )
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    assert job["target"] == {
        "type": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "method": "POST",
        "headers": {},
        "timeout": 10.0,
    }
    assert job["retry"] == {"attempts": 5, "backoff": 2.0, "maxBackoff": 300.0}


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"webhook_headers": "X-Ok: 1\nno colon here"}, "webhook_headers", "line 2"),
        ({"webhook_headers": "X Bad: 1"}, "webhook_headers", "line 1"),
        ({"webhook_headers": "X-Euro: 5 €"}, "webhook_headers", "Latin-1"),
        ({"webhook_timeout": "0"}, "webhook_timeout", "greater than 0"),
        ({"webhook_timeout": "soon"}, "webhook_timeout", "number"),
        ({"webhook_secret": "not-a-secret"}, "webhook_secret", "whsec_"),
        ({"max_in_flight": "0"}, "max_in_flight", "1"),
        ({"max_age": "10"}, "max_age", "60"),
        ({"max_backoff": "x"}, "max_backoff", "number"),
    ],
)
def test_a_webhook_field_error_shows_next_to_its_field(
    client: FlaskClient, fields: dict[str, str], field: str, words: str
) -> None:
    data = form_data(client, target_type="webhook", webhook_url="http://127.0.0.1:9/h") | fields
    response = client.post("/ui/jobs/new", data=data)
    assert response.status_code == 422
    html = text(response)
    assert words in element(html, f"error-{field}")
    assert 'id="error-summary"' in html


def test_a_group_for_a_standard_queue_shows_next_to_the_group(client: FlaskClient) -> None:
    data = form_data(
        client,
        target_type="sqs",
        sqs_url="https://sqs.eu-west-1.amazonaws.com/1/plain",
        sqs_group="g",
    )
    response = client.post("/ui/jobs/new", data=data)
    assert response.status_code == 422
    assert "FIFO" in element(text(response), "error-sqs_group")


# Editing


def test_the_edit_form_shows_every_value_but_the_secret(client: FlaskClient) -> None:
    job = create(
        client,
        target={
            "type": "webhook",
            "url": "http://127.0.0.1:9/a",
            "method": "PATCH",
            "headers": {"X-Team": "ops", "X-Env": "prod"},
            "timeout": 3,
            "maxInFlight": 8,
        },
        retry={"attempts": 3, "backoff": 4, "maxBackoff": 90, "maxAge": 600},
    )
    secret = job["target"]["secret"]
    html = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert ">X-Env: prod\nX-Team: ops\n</textarea>" in html  # stored by name
    assert 'id="webhook_timeout" name="webhook_timeout" value="3"' in html
    assert 'id="max_in_flight" name="max_in_flight" value="8"' in html
    assert 'id="max_backoff" name="max_backoff" value="90"' in html
    assert 'id="max_age" name="max_age" value="600"' in html
    assert "<option selected>PATCH</option>" in html
    assert secret not in html and secret[:10] + "…" in html  # only that one is set


def test_an_sqs_edit_form_shows_region_and_group(client: FlaskClient) -> None:
    target = {"type": "sqs", "queueUrl": FIFO_URL, "region": "eu-west-1", "messageGroupId": "g-1"}
    job = create(client, target=target)
    html = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert 'id="sqs_region" name="sqs_region" value="eu-west-1"' in html
    assert 'id="sqs_group" name="sqs_group" value="g-1"' in html


def test_saving_the_edit_form_as_shown_changes_nothing(app: Flask, client: FlaskClient) -> None:
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
            "maxInFlight": 8,
        },
        retry={"attempts": 3, "maxAge": 600},
        misfire="all",
        maxCatchUp=7,
    )
    secrets = stored_secrets(app, job["jobId"])
    html = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    data = {"csrf_token": token(client)} | form_values(html)
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=data)
    assert response.status_code == 303, text(response)
    saved = client.get(f"/schedules/{job['jobId']}").get_json()
    changing = ("updatedAt", "description", "nextRunAt")
    assert {k: v for k, v in saved.items() if k not in changing} == {
        k: v for k, v in job.items() if k not in changing
    } | {"target": {k: v for k, v in job["target"].items() if k != "secret"}}
    assert stored_secrets(app, job["jobId"]) == secrets


def form_values(html: str) -> dict[str, str]:
    """What a browser sends for the form as it stands (checked radios, selected options)."""
    values: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or name.group(1) == "csrf_token":
            continue
        if kind and kind.group(1) in ("radio", "checkbox") and " checked" not in tag:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        values[name.group(1)] = value.group(1) if value else "on"
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        values[name] = body.replace("&#34;", '"').replace("&amp;", "&")
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option(?: value="([^"]*)")? selected>([^<]*)', options)
        if chosen:
            values[name] = chosen.group(1) or chosen.group(2)
    return values


def test_clearing_a_field_on_edit_takes_the_default(client: FlaskClient) -> None:
    job = create(
        client,
        target={"type": "webhook", "url": "http://127.0.0.1:9/a", "headers": {"X-A": "1"}},
        retry={"maxAge": 600},
    )
    data = form_data(
        client,
        target_type="webhook",
        webhook_url="http://127.0.0.1:9/a",
        webhook_headers="",
        max_age="",
    )
    saved = saved_job(client, client.post(f"/ui/jobs/{job['jobId']}/edit", data=data))
    assert saved["target"]["headers"] == {}
    assert "maxAge" not in saved["retry"]


def test_a_form_without_the_new_fields_keeps_them(app: Flask, client: FlaskClient) -> None:
    """A form from before these fields (or a script) leaves them as they are."""
    job = create(
        client,
        target={"type": "sqs", "queueUrl": FIFO_URL, "region": "eu-west-1", "messageGroupId": "g"},
        retry={"maxBackoff": 30, "maxAge": 600},
    )
    data = form_data(client, target_type="sqs", sqs_url=FIFO_URL)
    saved = saved_job(client, client.post(f"/ui/jobs/{job['jobId']}/edit", data=data))
    assert saved["target"] == {
        "type": "sqs",
        "queueUrl": FIFO_URL,
        "region": "eu-west-1",
        "messageGroupId": "g",
    }
    assert saved["retry"]["maxAge"] == 600.0 and saved["retry"]["maxBackoff"] == 30.0


# The signing secret: shown once, rotated


def test_a_new_webhook_jobs_secret_is_shown_once(app: Flask, client: FlaskClient) -> None:
    data = form_data(client, target_type="webhook", webhook_url="http://127.0.0.1:9/h")
    response = client.post("/ui/jobs/new", data=data)
    job = saved_job(client, response)
    (secret,) = stored_secrets(app, job["jobId"])
    assert secret not in str(session_of(app, client))  # the cookie holds no secret
    url = response.headers["Location"]
    # A poll of part of the page first: it does not use up the one showing.
    poll = client.get(url, headers=HTMX | {"HX-Target": "job-live"})
    assert secret not in text(poll)
    first = client.get(url)
    html = text(first)
    assert secret in element(html, "new-secret-value")
    assert first.headers["Cache-Control"] == "no-store"
    again = text(client.get(url))
    assert secret not in again and 'id="new-secret"' not in again
    assert secret[:10] + "…" in element(again, "job-secret")
    assert secret not in text(client.get(f"/ui/jobs/{job['jobId']}/edit"))


def test_a_job_made_a_webhook_on_edit_shows_its_new_secret(app: Flask, client: FlaskClient) -> None:
    job = create(client)
    data = form_data(client, target_type="webhook", webhook_url="http://127.0.0.1:9/h")
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=data)
    assert response.status_code == 303
    (secret,) = stored_secrets(app, job["jobId"])
    assert secret in text(client.get(response.headers["Location"]))
    # Saving it again as a webhook keeps its secret and shows nothing.
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=data)
    assert stored_secrets(app, job["jobId"]) == [secret]
    assert 'id="new-secret"' not in text(client.get(response.headers["Location"]))


def test_rotating_from_the_job_page(app: Flask, client: FlaskClient) -> None:
    job = create(client, target={"type": "webhook", "url": "http://127.0.0.1:9/h"})
    old = job["target"]["secret"]
    page = text(client.get(f"/ui/jobs/{job['jobId']}"))
    assert 'id="rotate-secret"' in page and 'id="drop-old-secrets"' not in page
    response = client.post(
        f"/ui/jobs/{job['jobId']}/rotate-secret", data={"csrf_token": token(client)}
    )
    assert response.status_code == 303
    new, kept = stored_secrets(app, job["jobId"])
    assert kept == old and new != old
    html = text(client.get(response.headers["Location"]))
    assert new in element(html, "new-secret-value") and old not in html
    assert "New signing secret made" in html
    assert "2 secrets" in element(html, "job-secret")
    assert 'id="drop-old-secrets"' in html
    response = client.post(
        f"/ui/jobs/{job['jobId']}/drop-old-secrets", data={"csrf_token": token(client)}
    )
    assert response.status_code == 303
    assert stored_secrets(app, job["jobId"]) == [new]
    html = text(client.get(response.headers["Location"]))
    assert "Old signing secrets dropped" in html and new not in html
    assert 'id="drop-old-secrets"' not in html


def test_rotating_a_job_that_is_not_a_webhook_is_a_page_not_a_crash(client: FlaskClient) -> None:
    job = create(client)
    assert 'id="rotate-secret"' not in text(client.get(f"/ui/jobs/{job['jobId']}"))
    response = client.post(
        f"/ui/jobs/{job['jobId']}/rotate-secret", data={"csrf_token": token(client)}
    )
    assert response.status_code == 409 and "webhook" in text(response)


def test_rotating_needs_a_csrf_token(client: FlaskClient) -> None:
    job = create(client, target={"type": "webhook", "url": "http://127.0.0.1:9/h"})
    assert client.post(f"/ui/jobs/{job['jobId']}/rotate-secret").status_code == 400


def test_a_read_only_user_sees_no_rotate_control(make_app: Callable[..., Flask]) -> None:
    app = make_app(WTF_CSRF_ENABLED=False)
    hook = {"payload": "p", "at": "2030-01-01T00:00:01Z"}
    hook["target"] = {"type": "webhook", "url": "http://127.0.0.1:9/h"}  # type: ignore[assignment]
    client = app.test_client()
    job = client.post("/schedules", json=hook, headers=bearer(make_key(app, "w"))).get_json()
    assert client.post("/ui/login", data={"secret": make_key(app, "viewer", "read")}).status_code
    html = text(client.get(f"/ui/jobs/{job['jobId']}"))
    assert job["target"]["secret"][:10] + "…" in html and "rotate-secret" not in html
    assert client.post(f"/ui/jobs/{job['jobId']}/rotate-secret").status_code == 403


def test_once_completed_delete_from_the_form_and_kept_on_edit(client: FlaskClient) -> None:
    data = form_data(client, name="one-off", on_complete="delete")
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    assert job["onComplete"] == "delete"
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert '<option value="delete" selected>' in edit
    # A page without the field (an older one, a script): the job keeps its choice.
    sent = form_data(client, name="renamed")
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=sent)
    assert saved_job(client, response)["onComplete"] == "delete"
    kept = form_data(client, on_complete="keep")
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=kept)
    assert saved_job(client, response)["onComplete"] == "keep"


# Dead letters


def test_a_dead_letter_target_from_the_form_kept_when_not_sent(client: FlaskClient) -> None:
    data = form_data(client, dead_letter_type="queue", dead_letter_queue_name="dlq")
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    assert job["deadLetter"] == {"type": "queue", "name": "dlq"}
    page = text(client.get(f"/ui/jobs/{job['jobId']}"))
    assert "to queue dlq" in element(page, "job-dead-letter")
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert 'id="dead-letter-queue" checked' in edit and 'value="dlq"' in edit
    # A page without the fields (an older one, a script): the job keeps its dead letters.
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=form_data(client, name="x"))
    assert saved_job(client, response)["deadLetter"] == {"type": "queue", "name": "dlq"}
    url = "http://127.0.0.1:9/dead"
    sent = form_data(client, dead_letter_type="webhook", dead_letter_webhook_url=url)
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=sent)
    assert saved_job(client, response)["deadLetter"]["url"] == url
    none = form_data(client, dead_letter_type="none", dead_letter_webhook_url=url)
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=none)
    assert saved_job(client, response)["deadLetter"] is None


def test_a_bad_dead_letter_url_is_shown_on_its_field(client: FlaskClient) -> None:
    for kind, url, words in [
        ("webhook", "http://10.1.2.3/dead", "refused"),
        ("webhook", "ftp://example.com/x", "http(s) URL"),
        ("sqs", "not a url", ""),
    ]:
        name = f"dead_letter_{kind}_url"
        data = form_data(client, dead_letter_type=kind, **{name: url})
        response = client.post("/ui/jobs/new", data=data)
        assert response.status_code == 422, (kind, url)
        assert words in element(text(response), f"error-{name}"), (kind, url)


def test_run_rows_show_where_a_dead_letter_went(client: FlaskClient, app: Flask) -> None:
    job = create(client, deadLetter={"type": "queue", "name": "dlq"})
    dead = add_run(app, job["jobId"], "dead", 5, last_error="HTTP 503")
    letter = add_run(
        app, job["jobId"], "delivered", 5, dead_letter=True, payload="{}",
        target={"type": "queue", "name": "dlq"},
    )  # fmt: skip
    for url in (f"/ui/jobs/{job['jobId']}", f"/ui/runs?job={job['jobId']}"):
        page = text(client.get(url))
        link = element(page, f"dead-letter-{dead}")
        assert f"#run-{letter}" in link and "Dead letter sent" in link
        assert "queue dlq" in element(page, f"dead-letter-of-{letter}")
    assert client.get(f"/runs/{dead}").get_json()["deadLetterRunId"] == letter
