"""API keys, scopes, rate limits, the audit log and request limits."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import event

from app.database import db

JOB = {"payload": "p", "minute": 27789898}


def make_key(app: Flask, name: str, scope: str = "write") -> str:
    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", name, "--scope", scope])
    assert result.exit_code == 0, result.output
    return str(result.stdout.strip().splitlines()[0])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_open_on_loopback_until_a_key_exists(client: FlaskClient, app: Flask) -> None:
    assert client.post("/schedules", json=JOB).status_code == 201
    key = make_key(app, "svc")
    assert key.startswith("sk_")
    refused = client.get("/schedules")  # at once: the first key guards the service
    assert refused.status_code == 401
    assert refused.mimetype == "application/problem+json"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/schedules", headers=bearer(key)).status_code == 200
    assert client.get("/schedules", headers=bearer("sk_wrong")).status_code == 401
    assert client.get("/healthz").status_code == 200  # probes stay open


def test_the_first_key_guards_every_process_by_the_time_it_is_shown(
    make_app: Callable[..., Flask],
) -> None:
    """Each web process reuses a "no key exists" answer for KEYS_ABSENT_TTL (the open
    loopback mode would otherwise ask the database on every request); the first key's
    maker waits that long, so no process still holds a "no" once the key is printed."""
    serving, making = make_app(KEYS_ABSENT_TTL=0.5), make_app(KEYS_ABSENT_TTL=0.5)
    client = serving.test_client()
    asked: list[str] = []
    with serving.app_context():
        engine = db.engine

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM api_keys" in statement:
            asked.append(statement)

    event.listen(engine, "after_cursor_execute", count)
    try:
        assert client.post("/schedules", json=JOB).status_code == 201
        assert client.post("/schedules", json=JOB).status_code == 201
    finally:
        event.remove(engine, "after_cursor_execute", count)
    assert len(asked) == 1  # the second create reused the first one's answer
    began = time.monotonic()
    key = make_key(making, "first")
    assert time.monotonic() - began >= 0.5
    assert client.post("/schedules", json=JOB).status_code == 401
    assert client.post("/schedules", json=JOB, headers=bearer(key)).status_code == 201
    began = time.monotonic()
    make_key(making, "second")  # not the first: nothing to wait out
    assert time.monotonic() - began < 0.5


def test_read_only_keys_only_read(client: FlaskClient, app: Flask) -> None:
    key = make_key(app, "dashboard", "read")
    assert client.get("/schedules", headers=bearer(key)).status_code == 200
    response = client.post("/schedules", json=JOB, headers=bearer(key))
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_a_key_is_made_and_revoked_while_another_process_writes(app: Flask, db_kind: str) -> None:
    """Another process (the scheduler) commits between the key's look-up and its write:
    on SQLite a read transaction cannot then become a write one (SQLITE_BUSY at once, no
    busy wait), so `keys create` failed now and then. Writes start as writers instead."""
    if db_kind != "sqlite":
        pytest.skip("PostgreSQL upgrades a reading transaction to a writing one")
    with app.app_context():
        engine = db.engine
        path = engine.url.database
    other = sqlite3.connect(str(path), timeout=0, isolation_level=None)
    other.execute("CREATE TABLE test_writes (n integer)")
    refused: list[str] = []

    def another_process_writes(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM api_keys" in statement:
            try:
                other.execute("INSERT INTO test_writes VALUES (1)")
            except sqlite3.OperationalError as exc:  # our write already holds the lock
                refused.append(str(exc))

    event.listen(engine, "after_cursor_execute", another_process_writes)
    try:
        key = make_key(app, "busy")
        runner = app.test_cli_runner()
        assert runner.invoke(args=["keys", "revoke", "busy"]).exit_code == 0
    finally:
        event.remove(engine, "after_cursor_execute", another_process_writes)
        other.close()
    # The name's look-up, the is-it-the-first-key look-up, the revoke's look-up.
    assert key.startswith("sk_") and len(refused) == 3, refused


def test_revoked_keys_stop_working(client: FlaskClient, app: Flask) -> None:
    key = make_key(app, "old")
    runner: FlaskCliRunner = app.test_cli_runner()
    assert "old" in runner.invoke(args=["keys", "list"]).output
    assert key not in runner.invoke(args=["keys", "list"]).output
    assert runner.invoke(args=["keys", "revoke", "old"]).exit_code == 0
    assert client.get("/schedules", headers=bearer(key)).status_code == 401
    assert runner.invoke(args=["keys", "revoke", "old"]).exit_code != 0


def test_keys_are_stored_hashed(app: Flask) -> None:
    key = make_key(app, "hashed")
    from sqlalchemy import select

    from app.database import db
    from app.models import ApiKey

    with app.app_context():
        stored = db.session.execute(select(ApiKey)).scalar_one()
        assert key not in (stored.key_hash, stored.prefix, stored.name)
        assert len(stored.key_hash) == 64


def test_rate_limit_per_key(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT="3 per minute")
    client = app.test_client()
    key = make_key(app, "busy")
    answers = [client.get("/schedules", headers=bearer(key)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.mimetype == "application/problem+json"
    assert int(limited.headers["Retry-After"]) > 0
    other = make_key(app, "calm")
    assert client.get("/schedules", headers=bearer(other)).status_code == 200


def test_every_change_is_audited(client: FlaskClient, app: Flask) -> None:
    key = make_key(app, "ops")
    headers = bearer(key)
    job = client.post("/schedules", json=JOB, headers=headers).get_json()
    job_id = job["jobId"]
    client.put(f"/schedules/{job_id}", json=JOB | {"payload": "q"}, headers=headers)
    client.post(f"/schedules/{job_id}/pause", headers=headers)
    client.post(f"/schedules/{job_id}/resume", headers=headers)
    client.post(f"/schedules/{job_id}/run", headers=headers)
    client.delete(f"/schedules/{job_id}", headers=headers)
    entries = client.get(f"/audit?jobId={job_id}", headers=headers).get_json()
    assert [e["action"] for e in entries] == [
        "delete",
        "run",
        "resume",
        "pause",
        "update",
        "create",
    ]
    assert {e["actor"] for e in entries} == {"key:ops"}
    assert all(e["at"] for e in entries)


def test_refused_change_is_not_audited(client: FlaskClient) -> None:
    client.post("/schedules", json={"payload": 1})
    assert client.get("/audit").get_json() == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"payload": "p", "minute": 1, "name": "n" * 201}, 422, "name"),
        (
            {
                "payload": "p",
                "minute": 1,
                "target": {
                    "type": "webhook",
                    "url": "http://x",
                    "headers": {f"h{i}": "v" for i in range(51)},
                },
            },
            422,
            "target.webhook.headers",
        ),
    ],
)
def test_limits_answer_with_their_own_problem(
    client: FlaskClient, body: dict[str, Any], status: int, field: str
) -> None:
    response = client.post("/schedules", json=body)
    assert response.status_code == status
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_request_body_limit(make_app: Callable[..., Flask]) -> None:
    client = make_app(MAX_CONTENT_LENGTH=1024).test_client()
    response = client.post("/schedules", json={"payload": "x" * 2048, "minute": 1})
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_gunicorn_refuses_the_network_without_keys(database_url: str, tmp_path: Any) -> None:
    import subprocess

    from tests.support.processes import BIN, ROOT, process_env

    result = subprocess.run(
        [str(BIN / "gunicorn"), "--bind", "0.0.0.0:0", "wsgi:app"],
        cwd=ROOT,
        env=process_env(database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "without API keys" in result.stdout + result.stderr


def test_gunicorn_accepts_the_network_with_keys(
    app: Flask, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from tests.support.processes import ROOT

    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    make_key(app, "edge")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("REQUIRE_API_KEYS", raising=False)

    monkeypatch.delenv("QUEUE_MAX_LONG_POLLS", raising=False)

    class Server:
        class cfg:
            bind = ["0.0.0.0:8000"]
            threads = 8

    conf.on_starting(Server())
    import os

    assert os.environ.pop("REQUIRE_API_KEYS") == "true"
    assert os.environ.pop("QUEUE_MAX_LONG_POLLS") == "4"  # half the threads
    assert conf.bound_hosts(["unix:/tmp/s", "[::1]:80", "127.0.0.1:8000"]) == ["::1", "127.0.0.1"]


REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


def test_with_no_key_the_application_itself_refuses_other_machines(
    make_app: Callable[..., Flask],
) -> None:
    """Whatever server runs it (gunicorn with another config, flask run --host 0.0.0.0)."""
    client = make_app().test_client()
    refused = client.get("/schedules", environ_base=REMOTE)
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert "flask --app wsgi keys create --name NAME" in refused.get_json()["detail"]
    body = {"payload": "p", "at": "2030-01-01T00:00:01Z"}
    assert client.post("/schedules", json=body, environ_base=REMOTE).status_code == 403
    assert client.get("/schedules").get_json() == []  # nothing written; loopback still open
    page = client.get("/ui/", environ_base=REMOTE)
    assert page.status_code == 403 and "keys create" in page.get_data(as_text=True)
    assert client.get("/healthz", environ_base=REMOTE).status_code == 200  # probes stay open


def test_a_proxy_on_this_machine_does_not_make_its_clients_local(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app().test_client()
    relayed = {"X-Forwarded-For": "203.0.113.7"}
    assert client.get("/schedules", headers=relayed).status_code == 403
    assert client.get("/schedules", headers={"Forwarded": "for=203.0.113.7"}).status_code == 403
    trusting = make_app(TRUST_PROXY=True).test_client()
    assert trusting.get("/schedules", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    assert trusting.get("/schedules", headers=relayed).status_code == 403


def test_once_a_key_exists_other_machines_need_it(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    key = make_key(app, "remote")
    client = app.test_client()
    assert client.get("/schedules", environ_base=REMOTE).status_code == 401
    assert client.get("/schedules", headers=bearer(key), environ_base=REMOTE).status_code == 200


def test_a_second_key_with_the_same_name_is_a_one_line_error(app: Flask) -> None:
    make_key(app, "svc")
    result = app.test_cli_runner().invoke(args=["keys", "create", "--name", "svc"])
    assert result.exit_code == 1
    assert result.output == "Error: a key named 'svc' exists already (keys list shows them)\n"


def test_bad_tokens_share_one_bucket_per_client_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(RATE_LIMIT_ANONYMOUS="3 per minute")
    good = make_key(app, "svc")
    client = app.test_client()
    answers = [client.get("/schedules", headers=bearer(f"sk_made_up_{i}")) for i in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert client.get("/schedules").status_code == 429  # no token at all: the same bucket
    assert client.get("/schedules", headers=bearer(good)).status_code == 200  # its own bucket
    other = {"REMOTE_ADDR": "127.0.0.2"}
    assert client.get("/schedules", headers=bearer("sk_x"), environ_base=other).status_code == 401


def test_the_open_loopback_mode_is_not_limited(make_app: Callable[..., Flask]) -> None:
    client = make_app(RATE_LIMIT_ANONYMOUS="2 per minute").test_client()
    assert {client.get("/schedules").status_code for _ in range(5)} == {200}
