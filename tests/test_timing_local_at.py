"""`at` without an offset: that wall time in the job's zone (EventBridge's at() with a
schedule time zone), read by the DST rule where the wall time falls in a gap or an overlap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient

from app.timing import make_timing


@pytest.mark.parametrize(
    ("at", "zone", "instant"),
    [
        ("2030-07-01T09:00:00", "Europe/Berlin", datetime(2030, 7, 1, 7, tzinfo=UTC)),
        ("2030-01-01T09:00:00", "Europe/Berlin", datetime(2030, 1, 1, 8, tzinfo=UTC)),
        ("2030-01-01T09:00:00.750", "Asia/Kolkata", datetime(2030, 1, 1, 3, 30, tzinfo=UTC)),
        ("2030-01-01T09:00:00", "UTC", datetime(2030, 1, 1, 9, tzinfo=UTC)),
        # In New York's spring-forward gap (02:00-03:00 does not happen): the end of the gap.
        ("2030-03-10T02:30:00", "America/New_York", datetime(2030, 3, 10, 7, tzinfo=UTC)),
        # In its fall-back overlap (01:00-02:00 happens twice): the first pass, still EDT.
        ("2030-11-03T01:30:00", "America/New_York", datetime(2030, 11, 3, 5, 30, tzinfo=UTC)),
        # With an offset it is an instant whatever the zone.
        ("2030-07-01T09:00:00+02:00", "America/New_York", datetime(2030, 7, 1, 7, tzinfo=UTC)),
    ],
)
def test_a_wall_time_in_the_jobs_zone(at: str, zone: str, instant: datetime) -> None:
    assert make_timing(recurring="none", at=at, timezone=zone).first_at == instant


def test_the_api_takes_a_local_time_and_answers_the_instant(client: FlaskClient) -> None:
    body = {"payload": "p", "at": "2030-03-10T02:30:00", "timezone": "America/New_York"}
    job = client.post("/schedules", json=body).get_json()
    assert job["at"] == "2030-03-10T07:00:00Z" and job["nextRunAt"] == "2030-03-10T07:00:00Z"
    # A daily job repeats its anchor's wall time: one the clocks skip is refused, by name.
    skipped = client.post("/schedules", json=body | {"recurring": "daily"})
    assert skipped.status_code == 422
    assert skipped.get_json()["errors"][0]["field"] == "at"
    assert "does not happen in America/New_York" in skipped.get_json()["detail"]
    preview = client.get(
        "/schedules/preview?recurring=daily&at=2030-03-09T02:30:00"
        "&timezone=America/New_York&after=2030-03-09T00:00:00Z&count=3"
    ).get_json()
    assert [t["local"] for t in preview["times"]] == [  # the DST rule on the gap day only
        "2030-03-09T02:30:00-05:00",
        "2030-03-10T03:00:00-04:00",
        "2030-03-11T02:30:00-04:00",
    ]
    bad = client.post("/schedules", json={"payload": "p", "at": "2030-03-10T25:00:00"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "at"
