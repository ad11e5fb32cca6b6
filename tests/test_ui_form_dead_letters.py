"""The job form's dead letter target: every target type, with the target's own fields under
the dead_letter_ prefix; saved as the API saves it, errors on the prefixed field, and a job
the API made with any dead letter shown in the form and kept when saved unchanged (Flask's
test client, CSRF on)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any, get_args

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import jobs
from app.schemas import JobIn
from app.ui import forms
from tests.test_ui_form import saved_job
from tests.test_ui_views import create, element, form_data, plain, text

CONNECTIONS = {
    "rabbit": "amqp://app:s3cret@127.0.0.1:5672//",
    "cache": "redis://:s3cret@127.0.0.1:6379/0",
    "bus": "nats://127.0.0.1:4222",
}
ARN = "arn:aws:sns:eu-west-1:123456789012:dead"
SQS_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/dead"

# A dead letter target of each type, as the API takes it.
DEAD_LETTERS: list[dict[str, Any]] = [
    {"type": "queue", "name": "dlq"},
    {"type": "webhook", "url": "http://127.0.0.1:9/dead", "method": "PUT",
     "headers": {"X-Team": "ops"}, "timeout": 2.5, "maxInFlight": 2},
    {"type": "sqs", "queueUrl": SQS_URL, "region": "eu-west-1", "maxInFlight": 3},
    {"type": "sns", "topicArn": ARN, "region": "eu-west-1"},
    {"type": "eventbridge", "eventBus": "default", "source": "scheduler",
     "detailType": "Dead run", "region": "eu-west-1"},
    {"type": "amqp", "connection": "rabbit", "exchange": "dead", "routingKey": "runs",
     "maxInFlight": 4},
    {"type": "redis", "connection": "cache", "stream": "dead", "maxLen": 1000},
    {"type": "redis", "connection": "cache", "list": "dead"},
    {"type": "nats", "connection": "bus", "subject": "dead.runs"},
    {"type": "celery", "connection": "rabbit", "task": "proj.tasks.dead", "queue": "dead"},
]  # fmt: skip


def ids(target: dict[str, Any]) -> str:
    return "-".join(str(target[key]) for key in ("type", "stream", "list") if key in target)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(CONNECTIONS=CONNECTIONS, WTF_CSRF_ENABLED=True)


class Submitted(HTMLParser):
    """What a browser sends for the job form as it stands: each named control's value, a
    radio or checkbox only when checked, a select's selected option (else its first)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.in_form = False
        self.select: str | None = None
        self.select_first: str | None = None
        self.option: dict[str, str | None] | None = None
        self.option_text = ""
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and attributes.get("id") == "job-form":
            self.in_form = True
        if not self.in_form:
            return
        name = attributes.get("name")
        if tag == "input" and name:
            kind = attributes.get("type") or "text"
            if kind in ("radio", "checkbox"):
                if "checked" in attributes:
                    self.values[name] = attributes.get("value") or "on"
            else:
                self.values[name] = attributes.get("value") or ""
        elif tag == "select" and name:
            self.select, self.select_first = name, None
        elif tag == "option" and self.select:
            self.option, self.option_text = attributes, ""
        elif tag == "textarea" and name:
            self.textarea = name
            self.values[name] = ""

    def handle_data(self, data: str) -> None:
        if self.option is not None:
            self.option_text += data
        elif self.textarea:
            self.values[self.textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False
        elif tag == "option" and self.select and self.option is not None:
            value = self.option.get("value")
            value = self.option_text.strip() if value is None else value
            if self.select_first is None:
                self.select_first = value
                self.values.setdefault(self.select, value)
            if "selected" in self.option:
                self.values[self.select] = value
            self.option = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None


def submitted(html: str) -> dict[str, str]:
    parser = Submitted()
    parser.feed(html)
    return parser.values


@pytest.mark.parametrize("dead_letter", DEAD_LETTERS, ids=ids)
def test_an_api_made_dead_letter_is_shown_in_the_form_and_kept_when_saved_unchanged(
    client: FlaskClient, dead_letter: dict[str, Any]
) -> None:
    job = create(client, deadLetter=dead_letter)
    before = client.get(f"/schedules/{job['jobId']}").get_json()["deadLetter"]
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    values = submitted(edit)
    assert values.get("dead_letter_type") == dead_letter["type"]
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=values)
    assert saved_job(client, response)["deadLetter"] == before
    edit_again = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert f'id="dead-letter-{dead_letter["type"]}" checked' in edit_again


# (fields sent with the dead_letter_ prefix, the deadLetter the API then holds)
FROM_THE_FORM: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({"type": "queue", "queue_name": "dlq"}, {"type": "queue", "name": "dlq"}),
    ({"type": "queue", "queue_name": ""}, {"type": "queue", "name": "default"}),
    (
        {"type": "webhook", "webhook_url": "http://127.0.0.1:9/dead", "webhook_method": "PATCH",
         "webhook_headers": "X-Team: ops\n", "webhook_timeout": "4", "webhook_secret": "",
         "max_in_flight": "2"},
        {"type": "webhook", "url": "http://127.0.0.1:9/dead", "method": "PATCH",
         "headers": {"X-Team": "ops"}, "timeout": 4.0, "maxInFlight": 2},
    ),
    (
        {"type": "sqs", "sqs_url": SQS_URL + ".fifo", "sqs_region": "eu-west-1",
         "sqs_group": "dead", "max_in_flight": ""},
        {"type": "sqs", "queueUrl": SQS_URL + ".fifo", "region": "eu-west-1",
         "messageGroupId": "dead"},
    ),
    (
        {"type": "sns", "sns_topic": ARN, "aws_region": ""},
        {"type": "sns", "topicArn": ARN},
    ),
    (
        {"type": "eventbridge", "eb_bus": "default", "eb_source": "scheduler",
         "eb_detail_type": "Dead run", "aws_region": "eu-west-1"},
        {"type": "eventbridge", "eventBus": "default", "source": "scheduler",
         "detailType": "Dead run", "region": "eu-west-1"},
    ),
    (
        {"type": "amqp", "connection": "rabbit", "amqp_exchange": "",
         "amqp_routing_key": "dead", "max_in_flight": "5"},
        {"type": "amqp", "connection": "rabbit", "exchange": "", "routingKey": "dead",
         "maxInFlight": 5},
    ),
    (
        {"type": "redis", "connection": "cache", "redis_kind": "stream", "redis_key": "dead",
         "redis_max_len": "50"},
        {"type": "redis", "connection": "cache", "stream": "dead", "maxLen": 50},
    ),
    (
        {"type": "redis", "connection": "cache", "redis_kind": "list", "redis_key": "dead",
         "redis_max_len": "50"},
        {"type": "redis", "connection": "cache", "list": "dead"},
    ),
    (
        {"type": "nats", "connection": "bus", "nats_subject": "dead.runs"},
        {"type": "nats", "connection": "bus", "subject": "dead.runs"},
    ),
    (
        {"type": "celery", "connection": "rabbit", "celery_task": "proj.tasks.dead",
         "celery_queue": ""},
        {"type": "celery", "connection": "rabbit", "task": "proj.tasks.dead"},
    ),
]  # fmt: skip


def dead_letter_fields(fields: dict[str, str]) -> dict[str, str]:
    return {
        ("dead_letter_type" if name == "type" else f"dead_letter_{name}"): value
        for name, value in fields.items()
    }


@pytest.mark.parametrize("fields, expected", FROM_THE_FORM, ids=lambda c: str(c)[:40])
def test_each_dead_letter_type_is_saved_from_its_prefixed_fields(
    client: FlaskClient, fields: dict[str, str], expected: dict[str, Any]
) -> None:
    # The job's own target is a webhook, whose fields share the dead letter's unprefixed
    # names: each section reads its own.
    main = {"target_type": "webhook", "webhook_url": "http://127.0.0.1:9/main",
            "webhook_method": "PUT", "max_in_flight": "9"}  # fmt: skip
    data = form_data(client, **main, **dead_letter_fields(fields))
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    defaults = (
        {"method": "POST", "headers": {}, "timeout": 10.0} if expected["type"] == "webhook" else {}
    )
    assert job["deadLetter"] == defaults | expected
    assert job["target"] == {"type": "webhook", "url": "http://127.0.0.1:9/main",
                             "method": "PUT", "headers": {}, "timeout": 10.0,
                             "maxInFlight": 9}  # fmt: skip


# (a dead letter's fields with one at fault, the prefixed field its error shows on)
BAD: list[tuple[dict[str, str], str]] = [
    ({"type": "queue", "queue_name": "no spaces"}, "queue_name"),
    ({"type": "webhook", "webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ({"type": "webhook", "webhook_url": "http://10.1.2.3/dead"}, "webhook_url"),
    ({"type": "webhook", "webhook_url": "http://127.0.0.1:9/d", "webhook_headers": "no colon"},
     "webhook_headers"),
    ({"type": "webhook", "webhook_url": "http://127.0.0.1:9/d", "webhook_timeout": "soon"},
     "webhook_timeout"),
    ({"type": "webhook", "webhook_url": "http://127.0.0.1:9/d", "webhook_secret": "plain"},
     "webhook_secret"),
    ({"type": "sqs", "sqs_url": "not a url"}, "sqs_url"),
    ({"type": "sqs", "sqs_url": SQS_URL, "sqs_group": "g"}, "sqs_group"),
    ({"type": "sqs", "sqs_url": SQS_URL, "max_in_flight": "many"}, "max_in_flight"),
    ({"type": "sns", "sns_topic": "not an arn"}, "sns_topic"),
    ({"type": "sns", "sns_topic": ARN, "aws_region": "Mars"}, "aws_region"),
    ({"type": "eventbridge", "eb_bus": "default", "eb_source": "s", "eb_detail_type": ""},
     "eb_detail_type"),
    ({"type": "amqp", "connection": "nowhere", "amqp_routing_key": "k"}, "connection"),
    ({"type": "amqp", "connection": "cache", "amqp_routing_key": "k"}, "connection"),
    ({"type": "redis", "connection": "cache", "redis_key": "k", "redis_max_len": "x"},
     "redis_max_len"),
    ({"type": "nats", "connection": "bus", "nats_subject": "a.*"}, "nats_subject"),
    ({"type": "celery", "connection": "rabbit", "celery_task": "1bad"}, "celery_task"),
    ({"type": "celery", "connection": "rabbit", "celery_task": "t", "celery_queue": "a b"},
     "celery_queue"),
]  # fmt: skip


@pytest.mark.parametrize("fields, at_fault", BAD, ids=lambda c: str(c)[:40])
def test_a_dead_letter_error_is_shown_on_its_prefixed_field(
    client: FlaskClient, fields: dict[str, str], at_fault: str
) -> None:
    data = form_data(client, **dead_letter_fields(fields))
    response = client.post("/ui/jobs/new", data=data)
    assert response.status_code == 422
    html = text(response)
    assert plain(element(html, f"error-dead_letter_{at_fault}")).strip()
    if fields["type"] == "queue":
        assert plain(element(html, "error-queue_name")).strip() == ""  # the target's own
    shown = re.findall(r'id="error-([^"]+)" class="field-error"[^>]*>([^<]+)</p>', html)
    assert [name for name, _ in shown] == [f"dead_letter_{at_fault}"]
    assert client.get("/schedules").get_json() == []


def test_the_api_names_each_dead_letter_field_by_a_prefixed_field_on_the_page(
    client: FlaskClient,
) -> None:
    models = get_args(get_args(JobIn.model_fields["deadLetter"].annotation)[0])[0]
    shown = set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"',
                           text(client.get("/ui/jobs/new"))))  # fmt: skip
    for model in get_args(models):
        kind = model.model_fields["type"].annotation.__args__[0]
        for name in model.model_fields:
            api = f"deadLetter.{kind}.{name}"
            found = forms.form_field(api)
            assert found in shown and found.startswith("dead_letter_"), (api, found)
            assert forms.form_field(f"target.{kind}.{name}") == found.removeprefix(
                "dead_letter_"
            ) or (name == "type" and found == "dead_letter_type"), api
    assert forms.form_field("deadLetter.url") == "dead_letter_webhook_url"
    assert forms.form_field("deadLetter.connection") == "dead_letter_connection"
    assert forms.form_field("deadLetter") == "dead_letter_type"


def section(html: str, section_id: str) -> str:
    start = html.index(f'id="{section_id}"')
    return html[start : html.index("</fieldset>", start)]


def test_both_sections_have_the_same_fields_and_the_connection_names(
    client: FlaskClient,
) -> None:
    html = text(client.get("/ui/jobs/new"))
    names = r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"'
    target = re.findall(names, section(html, "target-fields"))
    dead = re.findall(names, section(html, "dead-letter-fields"))
    assert len(set(target)) > 20
    assert [f"dead_letter_{name}" for name in target if name != "target_type"] == [
        name for name in dead if name != "dead_letter_type"
    ]
    for part, select in ((target, "connection"), (dead, "dead_letter_connection")):
        assert select in part
        options = re.findall(
            r'<option value="([^"]*)"[^>]*>([^<]*)</option>',
            html.split(f'id="{select}"')[1].split("</select>")[0],
        )
        assert [value for value, _ in options] == ["", "bus", "cache", "rabbit"]
    choices = re.findall(r'name="dead_letter_type" value="([^"]+)"', html)
    assert choices == ["none", *forms.TARGET_TYPES]
    assert "s3cret" not in html


def test_a_dead_letter_webhook_keeps_its_secret_unseen_when_saved_unchanged(
    app: Flask, client: FlaskClient
) -> None:
    own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    data = form_data(client, dead_letter_type="webhook",
                     dead_letter_webhook_url="http://127.0.0.1:9/dead",
                     dead_letter_webhook_secret=own)  # fmt: skip
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert own not in edit
    assert "Empty keeps its own (whsec_MfKQ" in element(edit, "dead_letter_webhook_secret-help")
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=submitted(edit))
    saved_job(client, response)
    with app.app_context():
        assert jobs.get_job(job["jobId"]).dead_letter["secret"] == own


def test_each_id_on_the_form_is_its_own(client: FlaskClient) -> None:
    job = create(client, target={"type": "webhook", "url": "http://127.0.0.1:9/a"},
                 deadLetter={"type": "webhook", "url": "http://127.0.0.1:9/b"})  # fmt: skip
    for url in ("/ui/jobs/new", f"/ui/jobs/{job['jobId']}/edit"):
        found = re.findall(r'\bid="([^"]+)"', text(client.get(url)))
        assert len(found) > 100
        assert sorted(name for name in set(found) if found.count(name) > 1) == [], url
