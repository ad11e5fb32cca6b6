"""Daylight saving, case by case (DESIGN.md, "Daylight saving"): a wall time that does not exist
fires at the first instant after the gap; one that happens twice fires once, the first time;
intervals are exact seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from app.timing import (
    first_fire,
    latest_fire,
    make_timing,
    next_fire,
    occurrences,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def sequence(recurring: str, at: str, zone: str, count: int) -> list[datetime]:
    """The first `count` runs of a job that starts at `at`."""
    timing = make_timing(recurring=recurring, at=at, timezone=zone)
    start = first_fire(timing, utc(at))
    assert start is not None
    return [start, *occurrences(timing, start, count - 1)]


def test_minute_examples_from_the_design() -> None:
    assert make_timing(recurring="none", minute=27789898).first_at == utc("2022-11-02T12:58Z")
    assert make_timing(recurring="none", minute=27789493).first_at == utc("2022-11-02T06:13Z")
    assert make_timing(recurring="none", minute=0).first_at == utc("1970-01-01T00:00Z")


def test_a_one_shot_in_the_past_fires_at_its_time_then_never_again() -> None:
    timing = make_timing(recurring="none", minute=27789898)
    now = utc("2030-01-01T00:00Z")
    assert first_fire(timing, now) == utc("2022-11-02T12:58Z")
    assert next_fire(timing, utc("2022-11-02T12:58Z")) is None
    assert next_fire(timing, utc("2022-11-02T12:57:59Z")) == utc("2022-11-02T12:58Z")


def test_daily_0230_berlin_on_the_spring_forward_day_fires_at_0300_cest() -> None:
    times = sequence("daily", "2030-03-30T02:30:00+01:00", "Europe/Berlin", 3)
    assert times == [
        utc("2030-03-30T01:30Z"),  # 02:30 CET
        utc("2030-03-31T01:00Z"),  # 02:30 does not exist: 03:00 CEST, the end of the gap
        utc("2030-04-01T00:30Z"),  # 02:30 CEST
    ]


def test_daily_0230_berlin_on_the_fall_back_day_fires_once_at_the_first_0230() -> None:
    times = sequence("daily", "2030-10-26T02:30:00+02:00", "Europe/Berlin", 3)
    assert times == [
        utc("2030-10-26T00:30Z"),
        utc("2030-10-27T00:30Z"),  # 02:30 CEST; not again at 02:30 CET (01:30Z)
        utc("2030-10-28T01:30Z"),
    ]
    daily = make_timing(recurring="daily", at="2030-10-26T00:30:00Z", timezone="Europe/Berlin")
    # Asked from inside the repeated hour, the next run is tomorrow's.
    assert next_fire(daily, utc("2030-10-27T01:10Z")) == utc("2030-10-28T01:30Z")
    assert latest_fire(daily, utc("2030-10-27T00:00Z"), utc("2030-10-27T01:45Z")) == utc(
        "2030-10-27T00:30Z"
    )


def test_seconds_in_a_skipped_time_fire_at_the_first_instant_after_the_gap() -> None:
    times = sequence("daily", "2030-03-30T02:30:15+01:00", "Europe/Berlin", 2)
    assert times[1] == utc("2030-03-31T01:00:00Z")


def test_new_york_spring_forward_and_fall_back() -> None:
    spring = sequence("daily", "2030-03-09T02:30:00-05:00", "America/New_York", 3)
    assert spring[1] == utc("2030-03-10T03:00-04:00")
    fall = sequence("daily", "2030-11-02T01:30:00-04:00", "America/New_York", 3)
    assert fall[1:] == [utc("2030-11-03T01:30-04:00"), utc("2030-11-04T01:30-05:00")]


def test_lord_howe_shifts_by_thirty_minutes() -> None:
    # Clocks go 02:00 -> 02:30 on 2030-10-06 and 02:00 -> 01:30 on 2030-04-07.
    spring = sequence("daily", "2030-10-05T02:15:00+10:30", "Australia/Lord_Howe", 3)
    assert spring[1] == utc("2030-10-06T02:30+11:00")
    assert spring[2] == utc("2030-10-07T02:15+11:00")
    fall = sequence("daily", "2030-04-06T01:45:00+11:00", "Australia/Lord_Howe", 3)
    assert fall[1:] == [utc("2030-04-07T01:45+11:00"), utc("2030-04-08T01:45+10:30")]


def test_sao_paulo_midnight_that_did_not_exist() -> None:
    # 2018-11-04 00:00 -03 jumped to 01:00 -02.
    times = sequence("daily", "2018-11-03T00:00:00-03:00", "America/Sao_Paulo", 3)
    assert times[1:] == [utc("2018-11-04T01:00-02:00"), utc("2018-11-05T00:00-02:00")]


def test_weekly_keeps_weekday_and_wall_time_through_dst() -> None:
    times = sequence("weekly", "2030-03-24T02:30:00+01:00", "Europe/Berlin", 3)  # Sundays
    assert times == [
        utc("2030-03-24T01:30Z"),
        utc("2030-03-31T01:00Z"),  # spring-forward Sunday: 03:00 CEST
        utc("2030-04-07T00:30Z"),
    ]
    assert {t.astimezone(ZoneInfo("Europe/Berlin")).strftime("%A") for t in times} == {"Sunday"}


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_interval_across_dst_is_exact_seconds(zone: str) -> None:
    timing = make_timing(
        recurring="interval", at="2030-03-01T00:00:00Z", interval=3600, timezone=zone
    )
    times = occurrences(timing, utc("2030-03-01T00:00Z"), 24 * 250)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(times))
    daily = make_timing(
        recurring="interval", at="2030-03-30T01:30:00Z", interval=86400, timezone=zone
    )
    assert next_fire(daily, utc("2030-03-30T01:30Z")) == utc("2030-03-31T01:30Z")


def test_cron_fixed_time_and_wildcard_jobs_through_berlin_fall_back() -> None:
    fixed = make_timing(recurring="cron", cron="30 2 * * *", timezone="Europe/Berlin")
    assert occurrences(fixed, utc("2030-10-26T12:00Z"), 2) == [
        utc("2030-10-27T00:30Z"),
        utc("2030-10-28T01:30Z"),
    ]
    # A wildcard job follows real time: the repeated hour's :30 is a real instant twice.
    hourly = make_timing(recurring="cron", cron="30 * * * *", timezone="Europe/Berlin")
    assert occurrences(hourly, utc("2030-10-27T00:00Z"), 3) == [
        utc("2030-10-27T00:30Z"),
        utc("2030-10-27T01:30Z"),
        utc("2030-10-27T02:30Z"),
    ]


def test_the_second_before_a_gap_still_sees_the_skipped_time() -> None:
    # 01:59:59 EST is followed by 03:00:00 EDT; 02:30 that day fires at 03:00 EDT (07:00Z).
    for timing in [
        make_timing(recurring="cron", cron="30 2 * * *", timezone="America/New_York"),
        make_timing(recurring="daily", at="2030-03-09T07:30:00Z", timezone="America/New_York"),
    ]:
        assert next_fire(timing, utc("2030-03-10T06:59:59Z")) == utc("2030-03-10T07:00Z")
        assert next_fire(timing, utc("2030-03-10T06:59:59.999Z")) == utc("2030-03-10T07:00Z")
        assert next_fire(timing, utc("2030-03-10T07:00Z")) == utc("2030-03-11T06:30Z")


def test_cron_in_a_spring_forward_gap_fires_once_after_it() -> None:
    several = make_timing(recurring="cron", cron="0,15,30,45 2 * * *", timezone="Europe/Berlin")
    assert occurrences(several, utc("2030-03-30T12:00Z"), 2) == [
        utc("2030-03-31T01:00Z"),
        utc("2030-04-01T00:00Z"),
    ]


def test_latest_fire_across_dst_is_the_latest_real_run() -> None:
    timing = make_timing(
        recurring="daily", at="2030-03-01T02:30:00+01:00", timezone="Europe/Berlin"
    )
    since = utc("2030-03-01T00:00Z")
    assert latest_fire(timing, since, utc("2030-03-31T00:59Z")) == utc("2030-03-30T01:30Z")
    assert latest_fire(timing, since, utc("2030-03-31T01:00Z")) == utc("2030-03-31T01:00Z")
    cron = make_timing(recurring="cron", cron="30 2 * * *", timezone="Europe/Berlin")
    assert latest_fire(cron, since, utc("2030-10-27T01:45Z")) == utc("2030-10-27T00:30Z")
