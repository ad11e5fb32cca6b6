"""CONNECTIONS: broker URLs configured once by name; a job's broker target names one. An
unknown name or one of another kind is a 422 naming the field; neither the API nor the
UI ever shows a URL or its password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.config import ConfigError

AT = "2030-01-01T00:00:00Z"
CONNECTIONS = {
    "rabbit": "amqp://app:s3cret-rabbit@127.0.0.1:5672//",
    "cache": "redis://:s3cret-redis@127.0.0.1:6379/0",
    "events": "nats://127.0.0.1:4222",
}
TARGETS = [
    {"type": "redis", "connection": "cache", "stream": "fired", "maxLen": 1000},
    {"type": "redis", "connection": "cache", "list": "fired"},
    {"type": "amqp", "connection": "rabbit", "exchange": "jobs", "routingKey": "nightly"},
    {"type": "nats", "connection": "events", "subject": "jobs.nightly"},
    {"type": "celery", "connection": "rabbit", "task": "proj.tasks.add", "queue": "default"},
    {"type": "celery", "connection": "cache", "task": "proj.tasks.add"},
]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(CONNECTIONS=CONNECTIONS)


def create(app: Flask, target: dict[str, Any], payload: str = '{"args": [1, 2]}') -> Any:
    return app.test_client().post(
        "/schedules", json={"payload": payload, "at": "2030-01-01T00:00:01Z", "target": target}
    )


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t['type']}-{t['connection']}")
def test_a_job_names_its_connection_and_never_shows_the_url(
    app: Flask, target: dict[str, Any]
) -> None:
    response = create(app, target)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["target"] == target
    client = app.test_client()
    shown = [client.get(f"/schedules/{response.get_json()['jobId']}").get_data(as_text=True)]
    shown.append(client.get("/schedules").get_data(as_text=True))
    shown.append(client.get(f"/ui/jobs/{response.get_json()['jobId']}").get_data(as_text=True))
    assert not any("s3cret" in page or "127.0.0.1:5672" in page for page in shown)


@pytest.mark.parametrize(
    "target, words",
    [
        ({"type": "redis", "connection": "nope", "stream": "s"}, "no connection named 'nope'"),
        ({"type": "redis", "connection": "rabbit", "stream": "s"}, "'rabbit' is a amqp connection"),
        ({"type": "nats", "connection": "cache", "subject": "a.b"}, "a nats target takes nats/tls"),
        ({"type": "amqp", "connection": "events", "routingKey": "k"}, "is a nats connection"),
        ({"type": "celery", "connection": "events", "task": "t"}, "is a nats connection"),
    ],
)
def test_an_unknown_or_unfit_connection_is_a_422_naming_the_field(
    app: Flask, target: dict[str, Any], words: str
) -> None:
    response = create(app, target)
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert error["field"] == "target.connection" and words in error["message"]
    dead_letter = app.test_client().post(
        "/schedules",
        json={"payload": "p", "at": "2030-01-01T00:00:01Z", "deadLetter": target},
    )
    assert dead_letter.get_json()["errors"][0]["field"] == "deadLetter.connection"
    assert app.test_client().get("/schedules").get_json() == []  # nothing written


@pytest.mark.parametrize(
    "target, field",
    [
        ({"type": "redis", "connection": "cache"}, "target.redis"),
        ({"type": "redis", "connection": "cache", "stream": "s", "list": "l"}, "target.redis"),
        ({"type": "redis", "connection": "cache", "list": "l", "maxLen": 5}, "target.redis"),
        (
            {"type": "redis", "connection": "cache", "stream": None, "list": "l"},
            "target.redis.stream",
        ),
        ({"type": "nats", "connection": "events", "subject": "a.*"}, "target.nats.subject"),
        ({"type": "amqp", "connection": "rabbit"}, "target.amqp.routingKey"),
        ({"type": "celery", "connection": "rabbit", "task": "1bad"}, "target.celery.task"),
        ({"type": "amqp", "connection": "x y", "routingKey": "k"}, "target.amqp.connection"),
    ],
)
def test_broker_target_fields_are_checked(app: Flask, target: dict[str, Any], field: str) -> None:
    response = create(app, target)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.get_json()["errors"]}, response.get_json()


@pytest.mark.parametrize("payload", ["not json", '"text"', '{"args": 1}', '{"other": []}'])
def test_a_celery_payload_must_be_task_arguments(app: Flask, payload: str) -> None:
    response = create(app, {"type": "celery", "connection": "rabbit", "task": "t"}, payload)
    assert response.status_code == 422
    [error] = response.get_json()["errors"]
    assert error["field"] == "payload" and "args" in error["message"]


@pytest.mark.parametrize(
    "value, line",
    [
        ('{"bad name": "redis://x"}', "CONNECTIONS: 'bad name': a name is"),
        ('{"web": "http://x"}', "CONNECTIONS: web: not a broker URL (amqp://"),
        ('["redis://x"]', "CONNECTIONS: Input should be a valid dictionary"),
    ],
)
def test_connections_that_do_not_fit_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str, line: str
) -> None:
    monkeypatch.setenv("CONNECTIONS", value)
    with pytest.raises(ConfigError) as raised:
        create_app({"SECRET_KEY": "test"})
    assert str(raised.value).startswith(line), str(raised.value)


def test_connections_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTIONS", '{"cache": "redis://127.0.0.1:6379/0"}')
    app = create_app({"SECRET_KEY": "test"})
    assert app.config["CONNECTIONS"] == {"cache": "redis://127.0.0.1:6379/0"}


def test_the_readmes_celery_beat_jobs_are_accepted(make_app: Callable[..., Flask]) -> None:
    """The README's "Moving from Celery beat" jobs, as written there."""
    app = make_app(CONNECTIONS={"rabbit": "amqp://guest:guest@127.0.0.1:5672//"})
    nightly = {
        "name": "nightly-report", "recurring": "cron", "cron": "30 2 * * *", "at": AT,
        "timezone": "Europe/Berlin", "payload": '{"args": ["eu"], "kwargs": {"full": true}}',
        "target": {"type": "celery", "connection": "rabbit", "task": "reports.tasks.nightly",
                   "queue": "reports"},
    }  # fmt: skip
    poll = {
        "name": "poll-every-30s",
        "recurring": "interval",
        "interval": 30,
        "at": AT,
        "payload": "{}",
        "target": {"type": "celery", "connection": "rabbit", "task": "feeds.tasks.poll"},
    }
    for body in (nightly, poll):
        response = app.test_client().post("/schedules", json=body)
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["target"] == body["target"]
