"""The jobs list in every order, page after page, and one action on many jobs at once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.clock import ManualClock
from tests.test_api_jobs import create

ORDERS = ("created", "-created", "nextRun", "name")


def all_pages(client: FlaskClient, url: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        seen += response.get_json()
        link = response.headers.get("Link")
        url = link[link.index("/schedules") : link.index(">")] if link else ""
    return seen


@pytest.fixture
def mixed_jobs(client: FlaskClient, clock: ManualClock) -> list[dict[str, Any]]:
    """Seven jobs created a second apart: names out of creation order, two unnamed, next runs
    out of creation order (one the same as another's), one paused (no next run)."""
    specs = [
        ("delta", "2031-01-01T00:00:00Z"),
        (None, "2030-06-01T00:00:00Z"),
        ("alpha", "2032-01-01T00:00:00Z"),
        ("charlie", "2030-06-01T00:00:00Z"),
        (None, "2033-01-01T00:00:00Z"),
        ("bravo", "2030-01-01T00:00:00Z"),
        ("echo", "2034-01-01T00:00:00Z"),
    ]
    made = []
    for name, at in specs:
        made.append(create(client, payload="p", at=at, **({"name": name} if name else {})))
        clock.advance(1)
    paused = client.post(f"/schedules/{made[6]['jobId']}/pause").get_json()
    made[6] = paused
    return made


def expected(jobs: list[dict[str, Any]], sort: str) -> list[str]:
    if sort == "created":
        ordered = sorted(jobs, key=lambda j: j["createdAt"])
    elif sort == "-created":
        ordered = sorted(jobs, key=lambda j: j["createdAt"], reverse=True)
    else:
        field = {"nextRun": "nextRunAt", "name": "name"}[sort]
        keyed = sorted((j for j in jobs if j[field]), key=lambda j: (j[field], j["jobId"]))
        tail = sorted((j for j in jobs if not j[field]), key=lambda j: j["jobId"])
        ordered = keyed + tail
    return [j["jobId"] for j in ordered]


@pytest.mark.parametrize("sort", ORDERS)
@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_every_order_page_by_page(
    client: FlaskClient, mixed_jobs: list[dict[str, Any]], sort: str, limit: int
) -> None:
    seen = all_pages(client, f"/schedules?sort={sort}&limit={limit}")
    assert [j["jobId"] for j in seen] == expected(mixed_jobs, sort)


def test_an_order_with_a_filter(client: FlaskClient, mixed_jobs: list[dict[str, Any]]) -> None:
    seen = all_pages(client, "/schedules?sort=name&status=active&limit=2")
    active = [j for j in mixed_jobs if j["status"] == "active"]
    assert [j["jobId"] for j in seen] == expected(active, "name")


def test_a_cursor_belongs_to_its_order(client: FlaskClient, mixed_jobs: list[Any]) -> None:
    link = client.get("/schedules?sort=name&limit=2").headers["Link"]
    cursor = link[link.index("cursor=") + 7 : link.index(">")]
    answer = client.get(f"/schedules?sort=nextRun&cursor={cursor}")
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == "cursor"
    unknown = client.get("/schedules?sort=payload")
    assert unknown.status_code == 400
    assert unknown.get_json()["errors"][0]["field"] == "sort"


def bulk(client: FlaskClient, action: str, ids: list[str]) -> Any:
    return client.post(f"/schedules:{action}", json={"jobIds": ids})


def test_bulk_pause_resume_run_delete(client: FlaskClient) -> None:
    ids = [
        create(client, recurring="interval", interval=60, at="2030-01-01T00:00:00Z")["jobId"]
        for _ in range(3)
    ]
    missing = str(uuid.uuid4())
    answer = bulk(client, "pause", [*ids[:2], missing])
    assert answer.status_code == 200
    assert answer.get_json() == {
        "changed": 2,
        "changedIds": sorted(ids[:2]),
        "unchangedIds": [],
        "notFound": [missing],
    }
    statuses = [client.get(f"/schedules/{i}").get_json()["status"] for i in ids]
    assert statuses == ["paused", "paused", "active"]

    resumed = bulk(client, "resume", ids).get_json()
    assert resumed["changed"] == 2 and resumed["unchangedIds"] == [ids[2]]
    assert {client.get(f"/schedules/{i}").get_json()["status"] for i in ids} == {"active"}

    assert bulk(client, "run", ids[1:]).get_json()["changed"] == 2
    counts = [client.get(f"/schedules/{i}").get_json()["runCount"] for i in ids]
    assert counts == [0, 1, 1]
    assert len(client.get(f"/schedules/{ids[2]}/runs").get_json()) == 1

    assert bulk(client, "delete", [ids[0], ids[0]]).get_json()["changedIds"] == [ids[0]]
    assert client.get(f"/schedules/{ids[0]}").status_code == 404

    def audited(job_id: str) -> list[str]:
        return sorted(e["action"] for e in client.get(f"/audit?jobId={job_id}").get_json())

    assert audited(ids[1]) == ["create", "pause", "resume", "run"]  # per job, what changed
    assert audited(ids[2]) == ["create", "run"]


def test_bulk_refuses_bad_input_and_does_nothing(client: FlaskClient) -> None:
    job = create(client)["jobId"]
    for url, body, field in [
        ("/schedules:pause", {"jobIds": []}, "jobIds"),
        ("/schedules:pause", {"jobIds": [job, "not-an-id"]}, "jobIds.1"),
        ("/schedules:delete", {"jobIds": [job], "labels": {}}, "labels"),
    ]:
        answer = client.post(url, json=body)
        assert answer.status_code == 422, body
        assert answer.get_json()["errors"][0]["field"] == field
    assert client.post("/schedules:explode", json={"jobIds": [job]}).status_code in (404, 405)
    too_many = bulk(client, "pause", [job] + [str(uuid.uuid4()) for _ in range(1000)])
    assert too_many.status_code == 413
    assert too_many.get_json()["errors"][0]["field"] == "jobIds"
    assert client.get(f"/schedules/{job}").get_json()["status"] == "active"
