"""The job form's broker and AWS targets: each with its fields, the connection chosen from
the configured names (never their URLs), saved as the API saves it, shown again to edit."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.test_ui_form import saved_job
from tests.test_ui_views import form_data, text

CONNECTIONS = {
    "rabbit": "amqp://app:s3cret@127.0.0.1:5672//",
    "cache": "redis://:s3cret@127.0.0.1:6379/0",
}
ARN = "arn:aws:sns:eu-west-1:123456789012:reports"
CASES: list[tuple[dict[str, str], dict[str, Any], str]] = [
    (
        {"target_type": "redis", "connection": "cache", "redis_kind": "stream",
         "redis_key": "fired", "redis_max_len": "1000"},
        {"type": "redis", "connection": "cache", "stream": "fired", "maxLen": 1000},
        "hello",
    ),
    (
        {"target_type": "redis", "connection": "cache", "redis_kind": "list", "redis_key": "l"},
        {"type": "redis", "connection": "cache", "list": "l"},
        "hello",
    ),
    (
        {"target_type": "amqp", "connection": "rabbit", "amqp_exchange": "jobs",
         "amqp_routing_key": "nightly", "max_in_flight": "3"},
        {"type": "amqp", "connection": "rabbit", "exchange": "jobs", "routingKey": "nightly",
         "maxInFlight": 3},
        "hello",
    ),
    (
        {"target_type": "celery", "connection": "rabbit", "celery_task": "proj.tasks.add",
         "celery_queue": "reports"},
        {"type": "celery", "connection": "rabbit", "task": "proj.tasks.add", "queue": "reports"},
        '{"args": [2, 2]}',
    ),
    (
        {"target_type": "sns", "sns_topic": ARN, "aws_region": "eu-west-1"},
        {"type": "sns", "topicArn": ARN, "region": "eu-west-1"},
        "hello",
    ),
    (
        {"target_type": "eventbridge", "eb_bus": "default", "eb_source": "scheduler",
         "eb_detail_type": "Fired"},
        {"type": "eventbridge", "eventBus": "default", "source": "scheduler",
         "detailType": "Fired"},
        '{"n": 1}',
    ),
]  # fmt: skip


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(CONNECTIONS=CONNECTIONS, WTF_CSRF_ENABLED=True)


def test_the_form_offers_each_target_and_the_connection_names_only(client: FlaskClient) -> None:
    html = text(client.get("/ui/jobs/new"))
    for kind in ("redis", "amqp", "nats", "celery", "sns", "eventbridge"):
        assert f'id="target-{kind}"' in html
    options = re.findall(
        r'<option value="([^"]*)"[^>]*>([^<]*)</option>',
        html.split('id="connection"')[1].split("</select>")[0],
    )
    assert [value for value, _ in options] == ["", "cache", "rabbit"]
    assert "s3cret" not in html and "127.0.0.1:5672" not in html


@pytest.mark.parametrize("fields, target, payload", CASES, ids=lambda c: str(c)[:30])
def test_each_target_is_saved_from_the_form_and_shown_again(
    client: FlaskClient, fields: dict[str, str], target: dict[str, Any], payload: str
) -> None:
    data = form_data(client, payload=payload, **fields)
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    assert job["target"] == target
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert f'id="target-{target["type"]}" checked' in edit
    for name, value in fields.items():
        if name in ("target_type", "connection", "redis_kind"):
            continue
        assert f'name="{name}" value="{value}"' in edit, name
    if "connection" in fields:
        assert f'<option value="{fields["connection"]}" selected>' in edit


def test_an_unknown_connection_is_shown_at_the_connection_field(client: FlaskClient) -> None:
    data = form_data(client, target_type="nats", connection="", nats_subject="a.b")
    response = client.post("/ui/jobs/new", data=data)
    assert response.status_code == 422
    html = text(response)
    error = html.split('id="error-connection"')[1].split("</")[0]
    assert "no connection named" in error or "should match pattern" in error
