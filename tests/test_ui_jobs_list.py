"""The jobs list through the test client: its orders and the actions on ticked jobs."""

from __future__ import annotations

import re
import uuid

from flask.testing import FlaskClient

from app.clock import ManualClock
from tests.test_ui_views import HTMX, create, text, token


def names_shown(html: str) -> list[str]:
    return re.findall(r'class="job-link">([^<]+)</a>', html)


def test_the_list_in_each_order(client: FlaskClient, clock: ManualClock) -> None:
    daily = {"recurring": "daily", "at": "2029-12-31T12:00:00Z"}  # next: today at 12:00
    for name, fields in [
        ("b", {"at": "2030-03-01T00:00:00Z"}),
        ("d", {"at": "2030-01-01T06:00:00Z", "status": "paused"}),
        ("c", {"at": "2030-02-01T00:00:00Z"}),
        ("a", daily),
    ]:
        create(client, name=name, **fields)
        clock.advance(1)
    assert names_shown(text(client.get("/ui/jobs"))) == ["a", "c", "d", "b"]  # newest first
    assert names_shown(text(client.get("/ui/jobs?sort=created"))) == ["b", "d", "c", "a"]
    assert names_shown(text(client.get("/ui/jobs?sort=name"))) == ["a", "b", "c", "d"]
    # Soonest first; the paused job has no next run, so it comes last.
    assert names_shown(text(client.get("/ui/jobs?sort=nextRun"))) == ["a", "c", "b", "d"]
    page = text(client.get("/ui/jobs?sort=name"))
    assert '<option value="name" selected>' in page
    assert names_shown(text(client.get("/ui/jobs?sort=nonsense"))) == ["a", "c", "d", "b"]


def ticked(client: FlaskClient, action: str, ids: list[str], **headers: str) -> object:
    form = {"csrf_token": token(client), "action": action, "ids": ids, "next": "/ui/jobs?q=job"}
    return client.post("/ui/jobs/bulk", data=form, headers=headers)


def test_bulk_actions_on_ticked_jobs(client: FlaskClient) -> None:
    ids = [
        create(client, name=f"job {i}", recurring="interval", interval=60)["jobId"]
        for i in range(3)
    ]
    answer = ticked(client, "pause", ids[:2], **HTMX, **{"HX-Target": "job-table"})
    assert answer.status_code == 200
    assert "Paused 2 jobs" in answer.headers["HX-Trigger"]
    html = answer.get_data(as_text=True)
    assert "<html" not in html and '<div id="job-table"' in html  # the table alone
    assert 'id="job-counts" hx-swap-oob="true">1 active · 2 paused' in html
    assert 'name="next" value="/ui/jobs?q=job"' in html  # the rows go back to the same list
    statuses = [client.get(f"/schedules/{i}").get_json()["status"] for i in ids]
    assert statuses == ["paused", "paused", "active"]

    plain_post = ticked(client, "run", [ids[2], str(uuid.uuid4())])
    assert plain_post.status_code == 303 and plain_post.headers["Location"] == "/ui/jobs?q=job"
    assert "Started a run of 1 job; 1 no longer existed" in text(client.get("/ui/jobs?q=job"))
    assert client.get(f"/schedules/{ids[2]}").get_json()["runCount"] == 1

    again = ticked(client, "pause", ids, **HTMX, **{"HX-Target": "job-table"})
    assert "Paused 1 job; 2 already paused or completed" in again.headers["HX-Trigger"]
    ticked(client, "delete", ids[:2])
    assert [j["jobId"] for j in client.get("/schedules").get_json()] == [ids[2]]


def test_bulk_refusals_name_what_is_wrong(client: FlaskClient) -> None:
    job = create(client)["jobId"]
    none_ticked = ticked(client, "pause", [], **HTMX, **{"HX-Target": "job-table"})
    assert none_ticked.status_code == 422
    assert none_ticked.get_data(as_text=True) == "ids: select at least one job"
    bad_action = ticked(client, "explode", [job], **HTMX, **{"HX-Target": "job-table"})
    assert bad_action.status_code == 422 and "action" in bad_action.get_data(as_text=True)
    no_token = client.post("/ui/jobs/bulk", data={"action": "delete", "ids": [job]})
    assert no_token.status_code in (400, 403)
    assert client.get(f"/schedules/{job}").status_code == 200


def test_labels_from_the_form_shown_as_links_that_filter_the_list(client: FlaskClient) -> None:
    from tests.test_ui_views import form_data

    made = client.post(
        "/ui/jobs/new",
        data=form_data(client, name="invoices", labels="team: billing\nwindow: 09:00-17:00\n"),
    )
    assert made.status_code == 303, text(made)
    create(client, name="reports", labels={"team": "data"})
    job_id = made.headers["Location"].rsplit("/", 1)[-1]
    assert client.get(f"/schedules/{job_id}").get_json()["labels"] == {
        "team": "billing",
        "window": "09:00-17:00",
    }
    page = text(client.get("/ui/jobs"))
    assert 'href="/ui/jobs?label=team%3Abilling"' in page
    assert names_shown(text(client.get("/ui/jobs?label=team%3Abilling"))) == ["invoices"]
    assert names_shown(text(client.get("/ui/jobs?label=team: data"))) == ["reports"]
    assert sorted(names_shown(text(client.get("/ui/jobs?label=team:")))) == ["invoices", "reports"]
    bad = client.get("/ui/jobs?label=te am", headers=HTMX | {"HX-Target": "job-table"})
    assert bad.status_code == 400 and "label" in bad.get_data(as_text=True)
    edit = text(client.get(f"/ui/jobs/{job_id}/edit"))
    assert "team: billing\nwindow: 09:00-17:00" in edit
    wrong = client.post(f"/ui/jobs/{job_id}/edit", data=form_data(client, labels="ok: 1\nno colon"))
    assert wrong.status_code == 422 and "line 2: write it as name: value" in text(wrong)


def test_several_label_filters_and_actions_on_every_job_carrying_them(
    client: FlaskClient,
) -> None:
    """Labels typed one a line (or given as several `label` arguments) combine with AND; the
    bar under the filter acts on every job with those labels, on any page."""
    every = {"recurring": "interval", "interval": 60}
    for i in range(30):  # more than a page
        create(client, name=f"bill {i:02}", labels={"team": "billing", "env": "prod"}, **every)
    create(client, name="bill test", labels={"team": "billing", "env": "test"}, **every)
    create(client, name="data prod", labels={"team": "data", "env": "prod"}, **every)

    typed = text(client.get("/ui/jobs", query_string={"label": "team: billing\n env: prod \n"}))
    shown = names_shown(typed)
    assert len(shown) == 25 and all(name.startswith("bill ") for name in shown)
    assert "bill test" not in shown and "data prod" not in shown
    assert ">team: billing\nenv: prod</textarea>" in typed  # kept as typed, tidied
    assert "Every job labelled <strong>env: prod and team: billing</strong>:" in typed
    args = names_shown(text(client.get("/ui/jobs?label=team:billing&label=env:test")))
    assert args == ["bill test"]
    any_env = text(client.get("/ui/jobs?label=team:billing&label=env"))
    assert len(names_shown(any_env)) == 25 and 'id="label-bulk-form"' not in any_env
    narrowed = text(client.get("/ui/jobs?label=team:billing&status=active"))
    assert "whatever the other filters" in narrowed

    form = {"csrf_token": token(client), "action": "pause", "labels": "team: billing\nenv: prod",
            "next": "/ui/jobs?label=team%3Abilling"}  # fmt: skip
    answer = client.post("/ui/jobs/bulk", data=form, headers=HTMX | {"HX-Target": "job-table"})
    assert answer.status_code == 200 and "Paused 30 jobs" in answer.headers["HX-Trigger"]
    statuses = {job["name"]: job["status"] for job in client.get("/schedules?limit=100").get_json()}
    assert sum(s == "paused" for s in statuses.values()) == 30
    assert statuses["bill test"] == statuses["data prod"] == "active"
    audit = client.get("/audit?limit=200").get_json()
    assert sum(entry["action"] == "pause" for entry in audit) == 30  # one entry per job

    for labels in ("team", "team: a\nteam: b", ""):
        refused = client.post(
            "/ui/jobs/bulk",
            data=form | {"labels": labels},
            headers=HTMX | {"HX-Target": "job-table"},
        )
        assert refused.status_code == 422, labels
        assert refused.get_data(as_text=True).startswith("labels:"), labels
    too_many = "\n".join(f"k{i}: v" for i in range(21))
    bad = client.get("/ui/jobs", query_string={"label": too_many}, headers=HTMX)
    assert bad.status_code == 400 and "20 labels at most" in bad.get_data(as_text=True)
