"""rrule, exclude and dst through the API, the store and the dispatcher; the preview calls."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient

from app.clock import ManualClock
from app.scheduler.dispatcher import Dispatcher
from tests.test_dispatcher import create, runs_of

PAYROLL = "FREQ=MONTHLY;BYMONTHDAY=25;BYHOUR=9;BYMINUTE=0"


@pytest.fixture
def dispatcher(make_dispatcher: Callable[..., Dispatcher]) -> Dispatcher:
    return make_dispatcher()


def test_an_rrule_job_fires_at_its_times_and_skips_an_excluded_day(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 11, 1, tzinfo=UTC))
    job = create(client, recurring="rrule", rrule=PAYROLL, at="2026-01-01T00:00:00",
                 timezone="Europe/Berlin", exclude={"holidays": "DE-BY"})  # fmt: skip
    assert job["rrule"] == PAYROLL and job["exclude"] == {"holidays": "DE-BY"}
    assert job["onExcluded"] == "skip" and job["dst"] == {"gap": "shift", "repeat": "first"}
    assert job["nextRunAt"] == "2026-11-25T08:00:00Z"
    assert "Every month on the 25th day of the month at 09:00" in job["description"]
    clock.set(datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    assert dispatcher.fire_due() == 1
    # December 25th is Christmas Day in Bavaria: skipped; next is January.
    after = client.get(f"/schedules/{job['jobId']}").get_json()
    assert after["nextRunAt"] == "2027-01-25T08:00:00Z"
    clock.set(datetime(2026, 12, 25, 8, 0, tzinfo=UTC))
    assert dispatcher.fire_due() == 0
    assert [r["scheduledFor"] for r in runs_of(client, job["jobId"])] == ["2026-11-25T08:00:00Z"]


def test_next_business_day_moves_the_occurrence(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    job = create(client, recurring="rrule", rrule=PAYROLL, at="2026-01-01T00:00:00",
                 timezone="Europe/Berlin", exclude={"holidays": "DE-BY"},
                 onExcluded="next-business-day")  # fmt: skip
    assert job["onExcluded"] == "next-business-day"
    assert job["nextRunAt"] == "2026-12-28T08:00:00Z"  # 25, 26: holidays; 27: Sunday
    clock.set(datetime(2026, 12, 28, 8, 0, tzinfo=UTC))
    assert dispatcher.fire_due() == 1
    assert runs_of(client, job["jobId"])[0]["scheduledFor"] == "2026-12-28T08:00:00Z"


def test_a_dst_policy_is_kept_and_followed(
    client: FlaskClient, dispatcher: Dispatcher, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 10, 24, tzinfo=UTC))
    job = create(client, recurring="daily", at="2026-10-24T02:30:00", timezone="Europe/Berlin",
                 dst={"repeat": "both"})  # fmt: skip
    assert job["dst"] == {"gap": "shift", "repeat": "both"}
    fired = []
    for instant in ("2026-10-24T00:30:00", "2026-10-25T00:30:00", "2026-10-25T01:30:00"):
        clock.set(datetime.fromisoformat(instant).replace(tzinfo=UTC))
        assert dispatcher.fire_due() == 1
        fired.append(instant + "Z")
    assert [r["scheduledFor"] for r in runs_of(client, job["jobId"])] == fired
    # get-modify-put keeps it
    body = client.get(f"/schedules/{job['jobId']}").get_json()
    fields = ("payload", "recurring", "at", "timezone", "dst", "exclude", "onExcluded", "rrule")
    put = client.put(f"/schedules/{job['jobId']}", json={k: body[k] for k in fields})
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["dst"] == {"gap": "shift", "repeat": "both"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recurring": "rrule", "rrule": "FREQ=WEEKLY;BYMONTHDAY=3"}, "rrule"),
        ({"recurring": "rrule", "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "rrule"),
        ({"recurring": "rrule"}, "rrule"),
        ({"recurring": "daily", "rrule": "FREQ=DAILY"}, "rrule"),
        ({"recurring": "daily", "exclude": {"dates": ["2026-02-30"]}}, "exclude.dates"),
        ({"recurring": "daily", "exclude": {"ranges": [["2026-02-03", "2026-02-01"]]}},
         "exclude.ranges"),
        ({"recurring": "daily", "exclude": {"holidays": "ZZ"}}, "exclude.holidays"),
        ({"recurring": "daily", "exclude": {"holidays": "DE-XX"}}, "exclude.holidays"),
        ({"recurring": "daily", "exclude": {}}, "exclude"),
        ({"exclude": {"dates": ["2026-02-03"]}}, "exclude"),
        ({"recurring": "interval", "interval": 60, "dst": {"gap": "skip"}}, "dst"),
        ({"recurring": "daily", "dst": {"gap": "later"}}, "dst.gap"),
        ({"recurring": "daily", "onExcluded": "later"}, "onExcluded"),
    ],
)  # fmt: skip
def test_bad_calendar_fields_are_a_422_naming_the_field(
    client: FlaskClient, fields: dict[str, object], field: str
) -> None:
    body = {"payload": "x", "at": "2030-01-01T09:00:00Z"} | fields
    response = client.post("/schedules", json=body)
    assert response.status_code == 422, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == [field]
    assert client.get("/schedules").get_json() == []  # nothing written


def test_post_preview_shows_skipped_moved_and_dst_notes(client: FlaskClient) -> None:
    body = {
        "recurring": "daily",
        "at": "2026-12-20T02:30:00",
        "timezone": "Europe/Berlin",
        "exclude": {"dates": ["2026-12-22"]},
        "after": "2026-12-20T12:00:00Z",
        "count": 3,
        "explain": True,
        "window": 600,
    }
    answer = client.post("/schedules/preview", json=body).get_json()
    times = answer["times"]
    assert [t["utc"] for t in times] == ["2026-12-21T01:30:00Z", "2026-12-22T01:30:00Z",
                                         "2026-12-23T01:30:00Z"]  # fmt: skip
    assert times[1]["skipped"] is True and times[1]["notes"] == ["excluded"]
    assert "2026-12-22 is an excluded date" in times[1]["explain"][0]
    assert times[0]["notes"] == ["window"] and "skipped" not in times[0]
    assert "except on 1 listed date" in answer["description"]
    spring = client.post("/schedules/preview", json={
        "recurring": "daily", "at": "2026-03-27T02:30:00", "timezone": "Europe/Berlin",
        "after": "2026-03-28T12:00:00Z", "count": 1, "explain": True,
    }).get_json()["times"][0]  # fmt: skip
    assert spring["utc"] == "2026-03-29T01:00:00Z" and spring["notes"] == ["dst-shift"]
    assert "the clocks go forward from 02:00 to 03:00 on 2026-03-29" in spring["explain"][0]
    skipped = client.post("/schedules/preview", json={
        "recurring": "daily", "at": "2026-03-27T02:30:00", "timezone": "Europe/Berlin",
        "after": "2026-03-28T12:00:00Z", "count": 2, "dst": {"gap": "skip"},
    }).get_json()["times"]  # fmt: skip
    assert skipped[0]["skipped"] is True and skipped[0]["notes"] == ["dst-skip"]
    assert "explain" not in skipped[0]
    assert skipped[1]["utc"] == "2026-03-30T00:30:00Z"
    autumn = client.post("/schedules/preview", json={
        "recurring": "rrule", "rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        "timezone": "Europe/Berlin",
        "at": "2026-10-20T00:00:00", "after": "2026-10-24T12:00:00Z", "count": 2,
        "dst": {"repeat": "both"},
    }).get_json()["times"]  # fmt: skip
    assert [t["notes"] for t in autumn] == [["dst-repeat"], ["dst-repeat"]]


def test_post_preview_takes_a_whole_job_body_and_checks_it_alike(client: FlaskClient) -> None:
    job = {
        "payload": '{"run": "payroll"}', "name": "payroll", "labels": {"team": "billing"},
        "target": {"type": "queue", "name": "payroll"}, "retry": {"attempts": 3},
        "recurring": "rrule", "rrule": "FREQ=MONTHLY;BYMONTHDAY=25;BYHOUR=9;BYMINUTE=0",
        "at": "2026-12-01T00:00:00", "timezone": "Europe/Berlin",
        "exclude": {"holidays": "DE-BY"}, "onExcluded": "next-business-day",
    }  # fmt: skip
    answer = client.post("/schedules/preview", json=job | {"after": "2026-12-01T00:00:00Z"})
    assert answer.status_code == 200, answer.get_json()
    first, moved = answer.get_json()["times"][:2]
    assert first["utc"] == "2026-12-25T08:00:00Z" and first["skipped"] is True  # Christmas
    assert moved["utc"] == "2026-12-28T08:00:00Z"  # the next business day
    bad = client.post("/schedules/preview", json=job | {"retry": {"attempts": 0}})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.get_json()["errors"]] == ["retry.attempts"]
    assert client.get("/schedules").get_json() == []  # a preview writes nothing


def test_get_preview_takes_an_rrule_and_a_stored_job_previews(
    client: FlaskClient, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    answer = client.get("/schedules/preview", query_string={
        "recurring": "rrule", "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
        "at": "2026-12-03T09:00:00", "timezone": "Europe/Berlin", "count": 3,
    }).get_json()  # fmt: skip
    assert [t["local"] for t in answer["times"]] == [
        "2026-12-03T09:00:00+01:00", "2026-12-14T09:00:00+01:00", "2026-12-17T09:00:00+01:00"
    ]  # fmt: skip
    bad = client.get("/schedules/preview", query_string={"recurring": "rrule", "rrule": "FREQ=X"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "rrule"
    job = create(client, recurring="rrule", rrule=PAYROLL, at="2026-01-01T00:00:00",
                 timezone="Europe/Berlin", exclude={"holidays": "DE-BY"})  # fmt: skip
    stored = client.get(f"/schedules/{job['jobId']}/preview?count=2&explain=true").get_json()
    assert stored["times"][0]["utc"] == "2026-12-25T08:00:00Z"
    assert stored["times"][0]["skipped"] is True
    assert "Christmas Day" in stored["times"][0]["explain"][0]
    assert stored["times"][1]["utc"] == "2027-01-25T08:00:00Z"
    missing = client.get("/schedules/00000000-0000-0000-0000-000000000000/preview")
    assert missing.status_code == 404


def test_an_rrule_without_at_starts_at_the_minute_after_it_is_created(
    client: FlaskClient, clock: ManualClock
) -> None:
    """DTSTART is the first whole minute from creation: its seconds would be every time's."""
    clock.set(datetime(2026, 5, 5, 10, 11, 12, 345000, tzinfo=UTC))
    body = {"payload": "x", "recurring": "rrule", "rrule": "FREQ=HOURLY;INTERVAL=2"}
    job = client.post("/schedules", json=body).get_json()
    assert job["at"] == "2026-05-05T10:12:00Z"
    assert job["nextRunAt"] == "2026-05-05T10:12:00Z"  # DTSTART is the rule's first time
    upcoming = client.get(f"/schedules/{job['jobId']}/preview?count=2").get_json()["times"]
    assert [t["utc"] for t in upcoming] == ["2026-05-05T10:12:00Z", "2026-05-05T12:12:00Z"]
    at_nine = body | {"rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"}
    assert client.post("/schedules", json=at_nine).get_json()["nextRunAt"] == "2026-05-06T09:00:00Z"
    clock.set(datetime(2026, 5, 5, 10, 13, tzinfo=UTC))  # on a whole minute: that minute
    assert client.post("/schedules", json=body).get_json()["at"] == "2026-05-05T10:13:00Z"
