"""Labels: on a job, found by, and acted on together (EventBridge groups and tags)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import scope
from tests.support.plans import captured, plan_steps
from tests.test_api_jobs import create


def names(client: FlaskClient, query: str) -> list[str]:
    answer = client.get(f"/schedules?sort=name&{query}")
    assert answer.status_code == 200, answer.get_json()
    return [job["name"] for job in answer.get_json()]


@pytest.fixture
def labelled(client: FlaskClient) -> dict[str, str]:
    made = {
        "invoices": {"team": "billing", "env": "prod"},
        "refunds": {"team": "billing", "env": "staging"},
        "reports": {"team": "data", "env": "prod"},
        "plain": {},
    }
    every = {"recurring": "interval", "interval": 60, "at": "2030-01-01T00:00:00Z"}
    return {
        name: create(client, name=name, labels=labels, **every)["jobId"]
        for name, labels in made.items()
    }


@pytest.fixture(params=["rare", "common"])
def label_share(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Lists by label, as for labels few jobs carry (from their rows, on SQLite) and as for
    common ones (each job's labels probed)."""
    if request.param == "common":
        monkeypatch.setattr(scope, "RARE_LABEL", 1)
    return str(request.param)


def test_labels_are_kept_shown_and_found_by(
    client: FlaskClient, labelled: Any, label_share: str
) -> None:
    job = client.get(f"/schedules/{labelled['invoices']}").get_json()
    assert job["labels"] == {"team": "billing", "env": "prod"}
    assert client.get(f"/schedules/{labelled['plain']}").get_json()["labels"] == {}
    assert names(client, "label=team:billing") == ["invoices", "refunds"]
    assert names(client, "label=team:billing&label=env:prod") == ["invoices"]
    assert names(client, "label=env:prod&status=active") == ["invoices", "reports"]
    assert names(client, "label=team:nobody") == []
    assert names(client, "label=env") == ["invoices", "refunds", "reports"]  # any value
    # A value may hold a colon: the key ends at the first one.
    create(client, name="timed", labels={"window": "09:00-17:00"})
    assert names(client, "label=window:09:00-17:00") == ["timed"]


def test_changing_labels_changes_what_finds_the_job(
    client: FlaskClient, labelled: Any, label_share: str
) -> None:
    job = client.get(f"/schedules/{labelled['refunds']}").get_json()
    moved = client.put(f"/schedules/{job['jobId']}", json=job | {"labels": {"team": "data"}})
    assert moved.status_code == 200 and moved.get_json()["labels"] == {"team": "data"}
    assert names(client, "label=team:billing") == ["invoices"]
    assert names(client, "label=team:data") == ["refunds", "reports"]
    assert names(client, "label=env:staging") == []


def test_a_list_by_a_label_few_jobs_carry_starts_from_its_rows_on_sqlite(
    app: Flask, client: FlaskClient, labelled: Any, db_kind: str
) -> None:
    """SQLite's planner knows no label value's share: left to itself, it walks every job in
    list order probing its labels, which for a rare label is the whole table."""
    if db_kind != "sqlite":
        pytest.skip("PostgreSQL's planner picks the join by its own statistics")

    def wanted(statement: str) -> bool:
        return "job_labels" in statement and "ORDER BY jobs.created_at" in statement

    with captured(app, wanted) as seen:
        assert len(client.get("/schedules?label=team:billing").get_json()) == 2
    [(statement, parameters)] = seen
    plan = plan_steps(app, statement, parameters)
    assert not any(step.startswith("SCAN jobs") for step in plan), plan
    assert any("ix_job_labels_key_value_job_id" in step for step in plan), plan


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"": "x"}, "labels"),
        ({"team:name": "x"}, "labels"),
        ({"team": ""}, "labels"),
        ({"team": "a\nb"}, "labels"),
        ({"team": "x" * 101}, "labels"),
        ({f"k{i}": "v" for i in range(21)}, "labels"),
        ({"team": 5}, "labels.team"),
    ],
)
def test_bad_labels_name_the_field(client: FlaskClient, labels: Any, field: str) -> None:
    answer = client.post("/schedules", json={"payload": "p", "minute": 1, "labels": labels})
    assert answer.status_code == 422
    assert answer.get_json()["errors"][0]["field"].startswith(field)
    assert client.get("/schedules").get_json() == []


def test_a_bad_label_filter_is_a_400(client: FlaskClient) -> None:
    for query in ("label=te%20am", "label=:x", "label=team:"):
        answer = client.get(f"/schedules?{query}")
        assert answer.status_code == 400, query
        assert answer.get_json()["errors"][0]["field"].startswith("label")


def test_bulk_actions_by_labels(client: FlaskClient, labelled: Any) -> None:
    paused = client.post("/schedules:pause", json={"labels": {"team": "billing"}}).get_json()
    assert paused["changed"] == 2 and paused["notFound"] == []
    assert sorted(paused["changedIds"]) == sorted([labelled["invoices"], labelled["refunds"]])
    assert names(client, "status=paused") == ["invoices", "refunds"]
    entries = client.get(f"/audit?jobId={labelled['refunds']}").get_json()
    assert entries[0]["action"] == "pause"  # audited per job
    deleted = client.post("/schedules:delete", json={"labels": {"team": "billing", "env": "prod"}})
    assert deleted.get_json()["changed"] == 1
    assert client.get(f"/schedules/{labelled['invoices']}").status_code == 404


def test_a_selection_is_ids_or_labels(client: FlaskClient, labelled: Any) -> None:
    job = labelled["plain"]
    for body in ({}, {"jobIds": [job], "labels": {"team": "data"}}):
        answer = client.post("/schedules:pause", json=body)
        assert answer.status_code == 422, body
        assert answer.get_json()["errors"][0]["field"] == "jobIds"
    assert client.get(f"/schedules/{job}").get_json()["status"] == "active"


def test_labels_that_match_too_many_jobs_do_nothing(make_app: Any) -> None:
    app: Flask = make_app(MAX_BATCH_JOBS=3)
    client = app.test_client()
    body = {"payload": "p", "minute": 27789898, "labels": {"fleet": "all"}}
    ids = [client.post("/schedules", json=body).get_json()["jobId"] for _ in range(4)]
    answer = client.post("/schedules:pause", json={"labels": {"fleet": "all"}})
    assert answer.status_code == 413
    assert answer.get_json()["errors"][0]["field"] == "labels"
    assert {client.get(f"/schedules/{i}").get_json()["status"] for i in ids} == {"active"}
    assert client.post("/schedules:pause", json={"jobIds": [str(uuid.uuid4())]}).status_code == 200
