"""Payload templates: placeholders filled at each delivery (issue 12, item 3).

The rule itself (app.payloads), the API and the form refusing unknown placeholders, and
deliveries through the dispatcher to the built-in queue and to a real local webhook
receiver, with the manual clock at 2030-01-01.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import payloads
from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher
from app.targets.webhook import WebhookTarget, _content_type
from tests.support.http_target import HttpTarget, Response
from tests.test_ui_form import saved_job
from tests.test_ui_views import HTMX, element, form_data, text, token

VALUES = {
    "scheduledFor": "2030-01-01T00:00:01Z",
    "firedAt": "2030-01-01T00:00:02.250Z",
    "runId": "0b6b4e5e-1c39-4a53-9a55-0d1c9a8e7f10",
    "jobId": "5d1f0c0e-8a47-4f6c-a0e5-3f0d5b8e2a11",
    "name": 'say "hi" \\ to Zürich ☃\n\ttab',
    "attempt": "2",
}
EVERY = {name: f"{{{{{name}}}}}" for name in payloads.PLACEHOLDERS}  # {"runId": "{{runId}}"...}
HOSTILE_NAMES = ['"', "\\", '\\"', "\\u0000", "\x01\x1f", "\u2028\u2029", "😀", "}}{{", "a'b</x>"]


# The rule


def test_a_json_payload_gets_the_values_as_escaped_string_content() -> None:
    payload = json.dumps(EVERY | {"line": "job {{name}}, try {{attempt}}"})
    filled = payloads.render(payload, VALUES, json_payload=True)
    assert json.loads(filled) == VALUES | {"line": f"job {VALUES['name']}, try 2"}
    assert "Zürich ☃" in filled  # other characters go in as they are, not as \u escapes
    assert '\\"hi\\" \\\\ to' in filled and "\\n\\ttab" in filled


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_any_name_keeps_a_json_payload_valid(name: str) -> None:
    for payload in ('{"n": "{{name}}"}', '["{{name}}{{name}}", {"k{{name}}": 1}]', '"{{name}}"'):
        filled = payloads.render(payload, VALUES | {"name": name}, json_payload=True)
        assert json.loads(filled) == _expected(payload, name)


def _expected(payload: str, name: str) -> Any:
    """What a filled payload means: the parsed template with each {{name}} replaced."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{{name}}", name)
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            return {walk(key): walk(item) for key, item in value.items()}
        return value

    return walk(json.loads(payload))


def test_every_other_byte_of_a_json_payload_stays() -> None:
    payload = '{ "n" : 1.10 ,\n  "big": 12345678901234567890, "id":"{{runId}}" }'
    filled = payloads.fill(payload, VALUES)
    assert filled == payload.replace("{{runId}}", VALUES["runId"])


def test_a_text_payload_gets_the_values_as_they_are() -> None:
    payload = "run {{runId}} of {{name}}, attempt {{attempt}} ({{scheduledFor}}, {{firedAt}})"
    assert payloads.fill(payload, VALUES) == (
        f"run {VALUES['runId']} of {VALUES['name']}, attempt 2 "
        "(2030-01-01T00:00:01Z, 2030-01-01T00:00:02.250Z)"
    )


def test_json_is_decided_as_the_webhook_decides_its_content_type() -> None:
    for payload in ('{"a": 1}', "[1]", '"text"', "42", "{x", "hello", "[" * 5000 + "]" * 5000):
        assert payloads.is_json(payload) == (_content_type(payload) == "application/json")
    assert payloads.fill('"{{name}}"', VALUES) == json.dumps(VALUES["name"], ensure_ascii=False)
    assert payloads.fill("{{name}}", VALUES) == VALUES["name"]  # not JSON: as it is


def test_known_placeholders_pass_and_unknown_ones_are_named() -> None:
    payloads.check_template(" ".join(EVERY.values()))
    payloads.check_template('{"a": {"b": [1]}} }} {')  # no placeholder at all
    for unknown in ("{{runid}}", "{{ runId }}", "{{}}", "{{aws.scheduler.execution-id}}"):
        with pytest.raises(ValueError, match=f"unknown placeholder {unknown.replace('.', '[.]')}"):
            payloads.check_template(f'{{"id": "{{{{runId}}}}", "x": "{unknown}"}}')


# The API


def create(client: FlaskClient, **fields: Any) -> Any:
    body = {"payload": "hello", "at": "2030-01-01T00:00:01Z"} | fields
    return client.post("/schedules", json=body)


def test_the_api_takes_and_answers_template(client: FlaskClient) -> None:
    plain = create(client)
    assert plain.status_code == 201 and plain.get_json()["template"] is False
    made = create(client, payload='{"run": "{{runId}}"}', template=True)
    assert made.status_code == 201, made.get_json()
    job = made.get_json()
    assert job["template"] is True and job["payload"] == '{"run": "{{runId}}"}'
    assert client.get(f"/schedules/{job['jobId']}").get_json()["template"] is True
    put = client.put(f"/schedules/{job['jobId']}", json=job | {"template": False})
    assert put.status_code == 200 and put.get_json()["template"] is False
    assert create(client, template="yes").get_json()["errors"][0]["field"] == "template"


def test_an_unknown_placeholder_is_refused_naming_payload(client: FlaskClient) -> None:
    refused = create(client, payload='{"id": "{{runID}}"}', template=True)
    assert refused.status_code == 422
    (error,) = refused.get_json()["errors"]
    assert error["field"] == "payload" and "{{runID}}" in error["message"]
    at = "2030-01-01T00:00:01Z"
    batch = {
        "jobs": [
            {"payload": "{{jobId}}", "at": at, "template": True},
            {"payload": "{{x}}", "at": at, "template": True},
        ]
    }
    answer = client.post("/schedules:batch", json=batch)
    assert answer.status_code == 422
    assert [e["field"] for e in answer.get_json()["errors"]] == ["jobs.1.payload"]
    # Without template nothing is a placeholder: the payload is kept as it is.
    kept = create(client, payload="{{runID}} {{whatever}}")
    assert kept.status_code == 201 and kept.get_json()["payload"] == "{{runID}} {{whatever}}"


def test_a_template_that_filled_in_outgrows_the_limit_is_refused(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(MAX_PAYLOAD_BYTES=100).test_client()
    assert create(client, payload="{{runId}}" * 3).status_code == 201  # 27 bytes, as stored
    refused = create(client, payload="{{runId}}" * 3, template=True)  # 108 once filled
    assert refused.status_code == 413
    assert refused.get_json()["errors"][0]["field"] == "payload"


def test_the_document_describes_template(client: FlaskClient) -> None:
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    field = schemas["JobIn"]["properties"]["template"]
    assert field["type"] == "boolean" and field["default"] is False
    assert "{{attempt}}" in field["description"] and "valid JSON" in field["description"]
    assert "template" in schemas["JobOut"]["required"]


# Delivered


FULL = json.dumps(EVERY)


def receive(client: FlaskClient) -> list[dict[str, Any]]:
    response = client.post("/queues/default/receive", json={"max": 10})
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["messages"])


def test_the_built_in_queue_gets_the_filled_payload(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher]
) -> None:
    name = 'billing "eu" \\ ☃'
    job = create(client, payload=FULL, template=True, name=name).get_json()
    literal = create(client, payload='{"x": "{{runId}}"}').get_json()  # no template
    dispatcher = make_dispatcher()
    clock.advance(1.5)
    assert dispatcher.fire_due() == 2
    messages = {m["jobId"]: m for m in receive(client)}
    assert messages[literal["jobId"]]["payload"] == '{"x": "{{runId}}"}'  # byte for byte
    message = messages[job["jobId"]]
    assert json.loads(message["payload"]) == {
        "scheduledFor": "2030-01-01T00:00:01Z",
        "firedAt": "2030-01-01T00:00:01.500Z",
        "runId": message["runId"],
        "jobId": job["jobId"],
        "name": name,
        "attempt": "1",
    }
    # Run now: delivered by the delivery loop's claim, filled the same way.
    assert client.post(f"/schedules/{job['jobId']}/run").status_code in (200, 201, 202)
    clock.advance(2)
    assert dispatcher.deliver_due() == 1
    (again,) = receive(client)
    filled = json.loads(again["payload"])
    assert filled["runId"] == again["runId"] != message["runId"]
    assert (filled["firedAt"], filled["attempt"], filled["name"]) == (
        "2030-01-01T00:00:01.500Z",
        "1",
        name,
    )


def test_a_webhook_gets_the_filled_json_and_the_attempt_on_a_retry(
    client: FlaskClient, clock: ManualClock, make_dispatcher: Callable[..., Dispatcher],
    http_target: HttpTarget,
) -> None:  # fmt: skip
    http_target.respond("/hook", Response(503), Response(200, body=b"ok"))
    target = {"type": "webhook", "url": http_target.url + "/hook"}
    job = create(client, payload=FULL, template=True, name='a "quoted" name', target=target)
    assert job.status_code == 201, job.get_json()
    dispatcher = make_dispatcher({"webhook": WebhookTarget(allow_networks=["127.0.0.0/8"])})
    clock.advance(1)
    dispatcher.step()
    clock.advance(300)
    dispatcher.deliver_due()
    (run,) = client.get(f"/schedules/{job.get_json()['jobId']}/runs").get_json()
    assert run["status"] == "delivered" and run["attempts"] == 2
    first, second = http_target.requests_to("/hook")
    assert first.headers["content-type"] == "application/json"
    common = {
        "scheduledFor": "2030-01-01T00:00:01Z",
        "firedAt": run["firedAt"],
        "runId": run["runId"],
        "jobId": run["jobId"],
        "name": 'a "quoted" name',
    }
    assert json.loads(first.body) == common | {"attempt": "1"}
    assert json.loads(second.body) == common | {"attempt": "2"}


# The form


def test_the_form_ticks_template_and_keeps_it_when_not_sent(client: FlaskClient) -> None:
    data = form_data(client, payload='{"id": "{{runId}}"}', template_sent="1", template="on")
    job = saved_job(client, client.post("/ui/jobs/new", data=data))
    assert job["template"] is True
    page = text(client.get(f"/ui/jobs/{job['jobId']}"))
    assert "filled at each delivery" in element(page, "job-template")
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    box = re.search(r'<input[^>]*\bid="template"[^>]*>', edit)
    assert 'name="template_sent"' in edit and box and "checked" in box.group(0)
    # A page without the field (an older one, a script): the job keeps its choice.
    kept = form_data(client, payload='{"id": "{{runId}}"}', name="renamed")
    assert saved_job(client, client.post(f"/ui/jobs/{job['jobId']}/edit", data=kept))["template"]
    # On the page and unticked: off.
    off = form_data(client, payload='{"id": "{{runId}}"}', template_sent="1")
    response = client.post(f"/ui/jobs/{job['jobId']}/edit", data=off)
    assert saved_job(client, response)["template"] is False
    page = text(client.get(f"/ui/jobs/{job['jobId']}"))
    assert "none: sent as it is" in element(page, "job-template")


def test_the_form_refuses_an_unknown_placeholder_on_the_payload(client: FlaskClient) -> None:
    data = form_data(client, payload="hi {{nope}}", template_sent="1", template="on")
    page = text(client.post("/ui/jobs/new", data=data))
    assert "unknown placeholder {{nope}}" in element(page, "error-payload")
    headers = {"X-CSRFToken": token(client)} | HTMX | {"HX-Target": "error-payload"}
    checked = client.post(
        "/ui/jobs/check-payload", data={"payload": "hi {{nope}}", "template": "on"}, headers=headers
    )
    assert "unknown placeholder {{nope}}" in text(checked)
    plain = client.post("/ui/jobs/check-payload", data={"payload": "hi {{nope}}"}, headers=headers)
    assert text(plain).endswith("></p>")
