"""Hostile input gets a 4xx problem naming what was wrong, never a server error: JSON
nested past what a parser takes, and page cursors that this service never gave out."""

from __future__ import annotations

import base64
import json
import re
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError
from werkzeug.test import TestResponse

from app import jsontext
from app.api.openapi import OPERATIONS
from app.schemas import WEBHOOK_URL_PATTERN, WebhookTarget
from app.targets.webhook import _content_type, parse_retry_after
from tests.test_ui_views import form_data

DEEP = "[" * 10_000 + "]" * 10_000
BODY_OPERATIONS = [op for op in OPERATIONS if op.body is not None]


def errors(response: TestResponse) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.get_json()["errors"]}


def concrete(rule: str) -> str:
    return re.sub(r"<(?:uuid:)?(\w+)>", lambda m: str(uuid.uuid4()) if "Id" in m[1] else "q", rule)


@pytest.mark.parametrize("op", BODY_OPERATIONS, ids=lambda op: f"{op.method} {op.rule}")
def test_a_body_nested_10000_deep_is_a_400_naming_the_body(client: FlaskClient, op: object) -> None:
    method, rule = op.method, op.rule  # type: ignore[attr-defined]
    body = '{"payload": ' + DEEP + "}"
    response = client.open(
        concrete(rule), method=method, data=body, content_type="application/json"
    )
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert errors(response) == {"body": "is not valid JSON: nested more than 64 levels deep"}


def test_nesting_up_to_the_limit_passes_and_one_more_does_not() -> None:
    assert jsontext.loads("[" * 64 + "]" * 64) is not None
    with pytest.raises(jsontext.TooDeep):
        jsontext.loads("[" * 65 + "]" * 65)
    assert jsontext.depth({"a": [1, {"b": []}], "c": 2}) == 4 and jsontext.depth("x") == 0


def test_the_forms_deep_json_payload_is_a_field_error(client: FlaskClient) -> None:
    response = client.post("/ui/jobs/new", data=form_data(client, payload=DEEP))
    assert response.status_code == 422
    assert "looks like JSON but is nested too deeply" in response.get_data(as_text=True)
    assert client.get("/schedules").get_json() == []  # nothing written


def test_a_deep_json_payload_is_sent_as_text_not_an_internal_error() -> None:
    assert _content_type(DEEP) == "text/plain; charset=utf-8"
    assert _content_type('{"a": [1]}') == "application/json"


def test_a_retry_after_of_non_ascii_digits_is_ignored() -> None:
    assert parse_retry_after("²", 0.0) is None  # "²".isdigit() is True; float("²") fails
    assert parse_retry_after("120", 0.0) == 120.0


def cursor_of(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


SOME_ID = "0b5f6c1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f"
BAD_CURSORS = [
    cursor_of("2030-01-01T00:00:00", SOME_ID),  # no offset
    cursor_of("0001-01-01T00:00:00+14:00", SOME_ID),  # before year 1 in UTC
    cursor_of("2030-01-01T00:00:00Z", "not-a-uuid"),
    cursor_of({"a": 1}, 2),
    "²",
    "9" * 30,
    "!!!",
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_cursor_not_given_out_is_a_400_naming_cursor(
    app: Flask, client: FlaskClient, cursor: str
) -> None:
    job = client.post(
        "/schedules",
        json={"payload": "p", "at": "2030-01-01T00:00:01Z", "target": {"type": "queue"}},
    ).get_json()
    for url in ("/schedules", "/runs", f"/schedules/{job['jobId']}/runs"):
        response = client.get(url, query_string={"cursor": cursor})
        assert response.status_code == 400, (url, response.get_data(as_text=True)[:300])
        assert errors(response) == {"cursor": "not a cursor this service gave out"}
    response = client.get("/ui/jobs", query_string={"cursor": cursor})
    assert response.status_code == 400 and "not a cursor" in response.get_data(as_text=True)


@pytest.mark.parametrize("cursor", ["²", "9" * 30, "-1", "1e3", " 5"])
def test_an_audit_cursor_not_given_out_is_a_400(client: FlaskClient, cursor: str) -> None:
    response = client.get("/audit", query_string={"cursor": cursor})
    assert response.status_code == 400
    assert errors(response) == {"cursor": "not a cursor this service gave out"}
    page = client.get("/ui/audit", query_string={"before": cursor})
    assert page.status_code == 400 and "not a cursor" in page.get_data(as_text=True)


def test_a_cursor_given_out_still_pages(client: FlaskClient) -> None:
    target = {"type": "queue"}
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:01Z", "target": target} for i in range(3)]
    client.post("/schedules:batch", json={"jobs": jobs})
    first = client.get("/schedules?limit=2")
    link = first.headers["Link"]
    cursor = re.search(r"cursor=([^&>]+)", link)
    assert cursor is not None
    rest = client.get(f"/schedules?limit=2&cursor={cursor[1]}").get_json()
    assert len(first.get_json()) == 2 and len(rest) == 1


BAD_WEBHOOKS = [
    ({"secret": "whsec_!!!"}, "target.webhook.secret"),
    ({"secret": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"]}, "target.webhook.secret"),
    ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, "target.webhook.headers"),
    ({"headers": {"X Bad": "a"}}, "target.webhook.headers"),
    ({"headers": {"X-Name": "Müller €"}}, "target.webhook.headers"),  # € is not Latin-1
    ({"url": "http://"}, "target.webhook.url"),
    ({"url": "http://:80/x"}, "target.webhook.url"),
    ({"url": "http://hooks.example:99999/x"}, "target.webhook.url"),
    ({"url": "http://hooks.example:0/x"}, "target.webhook.url"),
]


@pytest.mark.parametrize(("change", "field"), BAD_WEBHOOKS)
def test_a_webhook_target_that_could_not_be_sent_is_refused_when_saved(
    client: FlaskClient, change: dict[str, object], field: str
) -> None:
    target = {"type": "webhook", "url": "https://hooks.example/x"} | change
    body = {"payload": "p", "at": "2030-01-01T00:00:01Z", "target": target}
    response = client.post("/schedules", json=body)
    assert response.status_code == 422, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == [field]
    assert client.post("/schedules:batch", json={"jobs": [body]}).status_code == 422
    assert client.get("/schedules").get_json() == []  # nothing written


def test_a_good_webhook_target_with_latin1_headers_is_kept(client: FlaskClient) -> None:
    target = {
        "type": "webhook",
        "url": "https://hooks.example:8443/x",
        "headers": {"X-Name": "Müller"},
        "secret": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    }
    body = {"payload": "p", "at": "2030-01-01T00:00:01Z", "target": target}
    response = client.post("/schedules", json=body)
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "https://[2001:db8::1]/hook",
        "http://my_service:00080/ünïcode?q=1#f",
        "https://hooks.example.com",
        "http://a b/",
        "http://user:secret@hooks.example.com/",
        "HTTP://hooks.example.com/",
        "http://hooks.example.com:0/",
        "http://hooks.example.com:65536/",
        "http:///path",
        "http://hooks.example.com/a\tb",
    ],
)
def test_the_document_and_the_code_agree_on_webhook_urls(url: str) -> None:
    """The URL pattern /openapi.json states is the one the code applies: no spelling the
    document refuses is accepted, none it allows is refused (IP literals, a port with
    leading zeros and non-ASCII paths were accepted beyond the document before)."""
    documented = re.fullmatch(WEBHOOK_URL_PATTERN, url) is not None
    try:
        WebhookTarget(type="webhook", url=url)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == documented
