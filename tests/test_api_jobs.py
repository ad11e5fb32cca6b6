"""The jobs API: the original five calls verbatim, the extensions, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.clock import ManualClock
from tests.support.engine_events import listening

ORIGINAL_CREATE = {"payload": "cool stuff", "minute": 27789898, "recurring": "none"}
ORIGINAL_UPDATE = {"payload": "drink more water", "minute": 27789493, "recurring": "none"}


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    when = {} if "at" in fields or "minute" in fields else {"minute": 27789898}
    response = client.post("/schedules", json={"payload": "p"} | when | fields)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def test_original_five_calls_verbatim(client: FlaskClient) -> None:
    assert client.get("/schedules").get_json() == []

    created = client.post("/schedules", json=ORIGINAL_CREATE)
    assert created.status_code == 201
    job = created.get_json()
    assert {k: job[k] for k in ("payload", "minute", "recurring")} == ORIGINAL_CREATE
    job_id = job["jobId"]

    listed = client.get("/schedules").get_json()
    assert [j["jobId"] for j in listed] == [job_id]
    assert client.get(f"/schedules/{job_id}").get_json()["payload"] == "cool stuff"

    updated = client.put(f"/schedules/{job_id}", json=ORIGINAL_UPDATE)
    assert updated.status_code == 200
    assert {k: updated.get_json()[k] for k in ORIGINAL_UPDATE} == ORIGINAL_UPDATE
    assert updated.get_json()["jobId"] == job_id

    assert client.delete(f"/schedules/{job_id}").status_code == 200
    missing = client.get(f"/schedules/{job_id}")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def test_a_create_is_one_transaction_on_one_connection(
    app: Flask, client: FlaskClient, db_kind: str
) -> None:
    """While no API key exists, every request first asks whether one does. On PostgreSQL the
    create then writes on in that transaction: a second one, on a second connection, cost a
    commit, a checkout and its ping more. SQLite cannot upgrade a read transaction, so there
    the write begins anew."""
    create(client)
    seen: list[str] = []
    with (
        listening(app, "checkout", lambda *_: seen.append("checkout")),
        listening(app, "commit", lambda *_: seen.append("commit")),
    ):
        create(client)
    each = 1 if db_kind == "postgresql" else 2
    assert (seen.count("checkout"), seen.count("commit")) == (each, each), seen


def test_create_answers_with_schedule_details(client: FlaskClient) -> None:
    job = create(client, at="2030-01-02T09:30:00Z", recurring="daily", timezone="Europe/Berlin")
    assert job["minute"] == 1893576600 // 60
    assert job["nextRunAt"] == "2030-01-02T09:30:00Z"
    assert job["status"] == "active"
    assert job["target"] == {"type": "queue", "name": "default"}
    assert "10:30" in job["description"] and "Europe/Berlin" in job["description"]


def test_minute_in_the_past_is_due_now(client: FlaskClient) -> None:
    job = create(client, minute=1)
    assert job["nextRunAt"] == "1970-01-01T00:01:00Z"


def test_get_modify_put_keeps_working(client: FlaskClient) -> None:
    job = create(client, recurring="cron", cron="0 9 * * MON-FRI", minute=None)
    job["payload"] = "changed"
    response = client.put(f"/schedules/{job['jobId']}", json=job)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["payload"] == "changed"


BAD_INPUT = [
    ({"payload": 5, "minute": 1}, "payload"),
    ({"payload": "p", "minute": "27789898"}, "minute"),
    ({"payload": "p", "minute": 1.5}, "minute"),
    ({"payload": "p", "minute": 1, "colour": "red"}, "colour"),
    ({"payload": "p", "minute": 1, "recurring": "hourly"}, "recurring"),
    ({"payload": "p", "minute": 1, "recurring": "daily", "timezone": "Mars/Base"}, "timezone"),
    ({"payload": "p", "recurring": "cron", "cron": "0 0 30 2 *"}, "cron"),
    ({"payload": "p", "recurring": "cron", "cron": "61 * * * *"}, "cron"),
    ({"payload": "p", "recurring": "interval", "minute": 1}, "interval"),
    ({"payload": "p", "recurring": "interval", "minute": 1, "interval": 0}, "interval"),
    ({"payload": "p", "at": "tomorrow"}, "at"),
    ({"payload": "p", "minute": 1, "endAt": "yesterday"}, "endAt"),
    ({"payload": "p", "minute": 1, "maxRuns": 0}, "maxRuns"),
    ({"payload": "p", "minute": 1, "target": {"type": "carrier-pigeon"}}, "target"),
    ({"payload": "p", "minute": 1, "target": {"type": "sqs"}}, "target.sqs.queueUrl"),
    ({"payload": "p", "minute": 1, "retry": {"attempts": 0}}, "retry.attempts"),
    ({"minute": 1}, "payload"),
]


@pytest.mark.parametrize(("body", "field"), BAD_INPUT)
def test_bad_input_is_a_problem_naming_the_field(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/schedules", json=body)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]], problem
    assert client.get("/schedules").get_json() == []


def test_non_json_body(client: FlaskClient) -> None:
    response = client.post("/schedules", data="payload=x", content_type="text/plain")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "body"


def test_payload_over_the_limit(client: FlaskClient) -> None:
    response = client.post("/schedules", json={"payload": "x" * (256 * 1024 + 1), "minute": 1})
    assert response.status_code == 413
    assert response.get_json()["errors"][0]["field"] == "payload"
    assert client.get("/schedules").get_json() == []


def test_payload_at_the_limit_is_fine(client: FlaskClient) -> None:
    create(client, payload="x" * (256 * 1024))


@pytest.mark.parametrize("job_id", ["not-a-uuid", "5b6c4a2e-0d5e-4c36-9a53-6a0c0b4f0e11"])
def test_unknown_job(client: FlaskClient, job_id: str) -> None:
    for response in (
        client.get(f"/schedules/{job_id}"),
        client.put(f"/schedules/{job_id}", json=ORIGINAL_UPDATE),
        client.delete(f"/schedules/{job_id}"),
        client.post(f"/schedules/{job_id}/pause"),
    ):
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"


def test_unknown_route_and_method_are_problems(client: FlaskClient) -> None:
    assert client.get("/schedules/x/nothing").mimetype == "application/problem+json"
    response = client.patch("/schedules")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_pages_follow_the_link_header(client: FlaskClient, clock: ManualClock) -> None:
    ids = []
    for i in range(5):
        ids.append(create(client, payload=f"job {i}")["jobId"])
        clock.advance(1)
    seen, url = [], "/schedules?limit=2"
    while url:
        response = client.get(url)
        seen += [j["jobId"] for j in response.get_json()]
        link = response.headers.get("Link")
        url = link[link.index("/schedules") : link.index(">")] if link else ""
    assert seen == ids


def test_bad_cursor_and_limit(client: FlaskClient) -> None:
    assert client.get("/schedules?cursor=garbage").status_code == 400
    response = client.get("/schedules?limit=0")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "limit"


def test_filters(client: FlaskClient) -> None:
    create(client, payload="alpha", name="first")
    beta = create(client, payload="beta", recurring="daily")
    client.post(f"/schedules/{beta['jobId']}/pause")
    assert [j["payload"] for j in client.get("/schedules?status=paused").get_json()] == ["beta"]
    assert [j["payload"] for j in client.get("/schedules?recurring=none").get_json()] == ["alpha"]
    assert [j["payload"] for j in client.get("/schedules?q=firs").get_json()] == ["alpha"]


def test_pause_resume_skips_what_fell_while_paused(client: FlaskClient, clock: ManualClock) -> None:
    job = create(client, recurring="interval", interval=60, at="2030-01-01T00:01:00Z")
    paused = client.post(f"/schedules/{job['jobId']}/pause").get_json()
    assert paused["status"] == "paused" and paused["nextRunAt"] is None
    clock.advance(600)
    resumed = client.post(f"/schedules/{job['jobId']}/resume").get_json()
    assert resumed["status"] == "active"
    assert resumed["nextRunAt"] == "2030-01-01T00:11:00Z"


def test_run_now_makes_a_pending_run(client: FlaskClient) -> None:
    job = create(client)
    response = client.post(f"/schedules/{job['jobId']}/run")
    assert response.status_code == 202
    run = response.get_json()
    assert run["status"] == "pending"
    runs = client.get(f"/schedules/{job['jobId']}/runs").get_json()
    assert [r["runId"] for r in runs] == [run["runId"]]


def test_batch_create_is_all_or_nothing(client: FlaskClient) -> None:
    good = {"payload": "ok", "minute": 27789898}
    response = client.post("/schedules:batch", json={"jobs": [good, {"payload": "x"}, good]})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"].startswith("jobs.1")
    assert client.get("/schedules").get_json() == []
    response = client.post("/schedules:batch", json={"jobs": [good] * 3})
    assert response.status_code == 201
    assert len(response.get_json()["jobs"]) == 3
    too_many = client.post("/schedules:batch", json={"jobs": [good] * 1001})
    assert too_many.status_code == 413


def test_webhook_secret_is_shown_once_and_kept(client: FlaskClient) -> None:
    target = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
    job = create(client, target=target)
    assert job["target"]["secret"].startswith("whsec_")
    shown = client.get(f"/schedules/{job['jobId']}").get_json()
    assert "secret" not in shown["target"]
    shown["payload"] = "again"
    assert client.put(f"/schedules/{job['jobId']}", json=shown).status_code == 200
    from app.database import db
    from app.models import Job

    with client.application.app_context():
        stored = db.session.get(Job, __import__("uuid").UUID(job["jobId"]))
        assert stored is not None
        assert stored.target["secret"] == job["target"]["secret"]


def test_preview_every_kind(client: FlaskClient) -> None:
    cases = {
        "recurring=none&at=2030-01-05T10:00:00Z": 1,
        "recurring=daily&minute=27789898&timezone=Europe/Berlin": 5,
        "recurring=weekly&at=2030-01-05T10:00:00Z": 5,
        "recurring=interval&interval=90&at=2030-01-05T10:00:00Z": 5,
        "recurring=cron&cron=0+9+*+*+MON-FRI&timezone=Europe/Berlin": 5,
    }
    for query, count in cases.items():
        response = client.get(f"/schedules/preview?{query}&after=2030-01-01T00:00:00Z")
        assert response.status_code == 200, (query, response.get_json())
        body = response.get_json()
        assert len(body["times"]) == count and body["description"]


def test_preview_refuses_bad_rules(client: FlaskClient) -> None:
    response = client.get("/schedules/preview?recurring=cron&cron=0+0+31+4+*")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "cron"
    response = client.get("/schedules/preview?recurring=cron&cron=@daily&count=101")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "count"


def test_openapi_describes_every_call(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    paths = document["paths"]
    for path in ("/schedules", "/schedules/{jobId}", "/schedules/preview", "/runs/{runId}/retry",
                 "/queues/{name}/receive", "/schedules:batch"):  # fmt: skip
        assert path in paths
    assert "JobIn" in document["components"]["schemas"]
    body = paths["/schedules"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/JobIn"}


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json()["checks"]["database"] == "ok"


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/hook", "http://169.254.169.254/latest", "http://0x7f.1/", "http://[::1]/"],
)
def test_webhook_to_a_literal_private_address_is_refused_on_save(make_app: Any, url: str) -> None:
    client = make_app(WEBHOOK_ALLOW_NETWORKS="").test_client()
    body = {"payload": "p", "minute": 1, "target": {"type": "webhook", "url": url}}
    response = client.post("/schedules", json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "target.url"


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/schedules", '{"payload": "a\\u0000b", "minute": 1}', "payload"),
        ("/schedules", '{"payload": "\\ud800", "minute": 1}', "payload"),
        ("/schedules", '{"payload": "p", "minute": 1, "name": "\\u0000"}', "name"),
        ("/queues/default/ack", '{"receipts": ["ok", "\\u0000"]}', "receipts"),
    ],
)
def test_text_no_database_can_store_is_refused(
    client: FlaskClient, path: str, raw: str, field: str
) -> None:
    """NUL characters and lone surrogates (found by fuzzing on PostgreSQL) are a 422."""
    response = client.post(path, data=raw, content_type="application/json")
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"][0]["field"] == field
