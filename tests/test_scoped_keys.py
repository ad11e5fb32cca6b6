"""Keys scoped by label (object-level access): a key sees and changes only the jobs that
carry its labels; every other job, its runs and its audit entries do not exist for it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from app.clock import ManualClock
from tests.test_access import bearer
from tests.test_retention import fire_all

JOB = {"payload": "p", "at": "2030-01-01T00:00:01Z"}


def scoped_key(app: Flask, name: str, *labels: str, scope: str = "write") -> str:
    args = ["keys", "create", "--name", name, "--scope", scope]
    for label in labels:
        args += ["--labels", label]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    return str(result.stdout.strip().splitlines()[0])


@pytest.fixture
def world(make_app: Callable[..., Flask]) -> dict[str, Any]:
    app = make_app()
    admin = bearer(scoped_key(app, "admin"))
    billing = bearer(scoped_key(app, "billing", "team=billing"))
    client = app.test_client()

    def make(labels: dict[str, str], headers: dict[str, str] = admin) -> str:
        answer = client.post("/schedules", json=JOB | {"labels": labels}, headers=headers)
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["jobId"])

    ours, theirs = make({"team": "billing"}), make({"team": "data"})
    return {"app": app, "client": client, "admin": admin, "billing": billing,
            "ours": ours, "theirs": theirs, "make": make}  # fmt: skip


def test_the_slice_is_all_a_scoped_key_sees(world: dict[str, Any]) -> None:
    client, billing, ours, theirs = (world[k] for k in ("client", "billing", "ours", "theirs"))
    listed = client.get("/schedules", headers=billing).get_json()
    assert [job["jobId"] for job in listed] == [ours]
    assert client.get(f"/schedules/{ours}", headers=billing).status_code == 200
    for method, path in [
        ("get", f"/schedules/{theirs}"),
        ("put", f"/schedules/{theirs}"),
        ("delete", f"/schedules/{theirs}"),
        ("post", f"/schedules/{theirs}/pause"),
        ("post", f"/schedules/{theirs}/resume"),
        ("post", f"/schedules/{theirs}/run"),
        ("get", f"/schedules/{theirs}/runs"),
    ]:
        body = JOB if method == "put" else None
        answer = getattr(client, method)(path, json=body, headers=billing)
        assert answer.status_code == 404, (method, path)  # never 403: it does not exist
    bulk = client.post("/schedules:pause", json={"jobIds": [ours, theirs]}, headers=billing)
    assert bulk.get_json()["changedIds"] == [ours] and bulk.get_json()["notFound"] == [theirs]
    by_label = client.post("/schedules:resume", json={"labels": {"team": "data"}}, headers=billing)
    assert by_label.get_json()["changed"] == 0
    everyone = client.get("/schedules", headers=world["admin"]).get_json()
    assert {job["status"] for job in everyone if job["jobId"] == theirs} == {"active"}


def test_new_jobs_get_the_keys_labels_and_may_not_leave(world: dict[str, Any]) -> None:
    client, billing = world["client"], world["billing"]
    made = client.post("/schedules", json=JOB | {"labels": {"env": "prod"}}, headers=billing)
    assert made.get_json()["labels"] == {"env": "prod", "team": "billing"}
    other = client.post("/schedules", json=JOB | {"labels": {"team": "data"}}, headers=billing)
    assert other.status_code == 422
    assert other.get_json()["errors"][0]["field"] == "labels.team"
    job = made.get_json()
    moved = client.put(f"/schedules/{job['jobId']}", json=job | {"labels": {}}, headers=billing)
    assert moved.get_json()["labels"] == {"team": "billing"}  # kept in the slice


def test_runs_and_the_audit_log_are_sliced_too(world: dict[str, Any], clock: ManualClock) -> None:
    app, client, billing = world["app"], world["client"], world["billing"]
    clock.advance(2)
    fire_all(app)
    everyone = client.get("/runs", headers=world["admin"]).get_json()
    assert len(everyone) == 2
    mine = client.get("/runs", headers=billing).get_json()
    assert [run["jobId"] for run in mine] == [world["ours"]]
    theirs = next(run for run in everyone if run["jobId"] == world["theirs"])
    assert client.post(f"/runs/{theirs['runId']}/retry", headers=billing).status_code == 404
    audited = {entry["jobId"] for entry in client.get("/audit", headers=billing).get_json()}
    assert audited == {world["ours"]}


def test_queues_and_metrics_are_not_in_a_slice(world: dict[str, Any]) -> None:
    client, billing = world["client"], world["billing"]
    for method, path in [
        ("post", "/queues/default/receive"),
        ("post", "/queues/default/ack"),
        ("get", "/queues/default"),
        ("get", "/metrics"),
    ]:
        answer = getattr(client, method)(path, json={}, headers=billing)
        assert answer.status_code == 404, path
    assert client.get("/queues/default", headers=world["admin"]).status_code == 200


def test_the_ui_signed_in_with_a_scoped_key_shows_the_slice(world: dict[str, Any]) -> None:
    app = world["app"]
    key = scoped_key(app, "viewer", "team=billing")
    ui = app.test_client()
    page = ui.get("/ui/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    signed_in = ui.post("/ui/login", data={"secret": key, "csrf_token": token.group(1)})
    assert signed_in.status_code == 303
    jobs_page = ui.get("/ui/jobs").get_data(as_text=True)
    assert world["ours"] in jobs_page and world["theirs"] not in jobs_page
    assert "1 active · 0 paused" in jobs_page
    assert ui.get(f"/ui/jobs/{world['theirs']}").status_code == 404
    assert ui.get("/ui/queues").status_code == 404
    assert 'href="/ui/queues"' not in ui.get("/ui/").get_data(as_text=True)


def test_a_bad_label_on_a_key_is_refused(world: dict[str, Any]) -> None:
    result = (
        world["app"]
        .test_cli_runner()
        .invoke(args=["keys", "create", "--name", "x", "--labels", "team"])
    )
    assert result.exit_code != 0 and "key=value" in result.output
    listed = world["app"].test_cli_runner().invoke(args=["keys", "list"]).output
    assert "team=billing" in listed


def test_the_document_describes_keys_and_their_slices(world: dict[str, Any]) -> None:
    document = world["client"].get("/openapi.json").get_json()  # open: no key needed
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert {"apiKey": []} in document["security"]
    for words in ("keys create", "--scope read", "--labels", "404", "get its labels"):
        assert words in scheme["description"], words
    # What it says of a slice is what a scoped key gets: the other team's job is absent.
    theirs = world["client"].get(f"/schedules/{world['theirs']}", headers=world["billing"])
    assert theirs.status_code == 404
