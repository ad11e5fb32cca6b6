"""make_timing refuses bad input with TimingError naming the field; zones are canonicalised;
describe() says each kind of timing in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.timing import RECURRING, TimingError, canonical_timezone, describe, make_timing

AT = "2030-01-01T12:00:00Z"


def fails(**fields: Any) -> TimingError:
    with pytest.raises(TimingError) as caught:
        make_timing(**fields)
    return caught.value


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recurring": "monthly", "at": AT}, "recurring"),
        ({"recurring": None, "at": AT}, "recurring"),
        ({"recurring": "none"}, "minute"),
        ({"recurring": "daily"}, "minute"),
        ({"recurring": "interval", "interval": 60}, "minute"),
        ({"recurring": "none", "minute": 1, "at": AT}, "at"),
        ({"recurring": "cron", "cron": "* * * * *", "minute": 1, "at": AT}, "at"),
        ({"recurring": "none", "minute": -1}, "minute"),
        ({"recurring": "none", "minute": 4_223_371_680}, "minute"),
        ({"recurring": "none", "minute": "27789898"}, "minute"),
        ({"recurring": "none", "minute": 1.5}, "minute"),
        ({"recurring": "none", "minute": True}, "minute"),
        ({"recurring": "none", "at": "0001-01-01T00:00:00", "timezone": "Asia/Tokyo"}, "at"),
        ({"recurring": "none", "at": "1969-12-31T23:59:59", "timezone": "UTC"}, "at"),
        ({"recurring": "none", "at": "2030-02-30T12:00:00", "timezone": "UTC"}, "at"),
        ({"recurring": "none", "at": datetime(2030, 1, 1, 12)}, "at"),
        ({"recurring": "none", "at": "2030-01-01"}, "at"),
        ({"recurring": "none", "at": "2030-02-30T12:00:00Z"}, "at"),
        ({"recurring": "none", "at": "2030-01-01T24:00:00Z"}, "at"),
        ({"recurring": "none", "at": "2030-01-01T12:00:00+25:00"}, "at"),
        ({"recurring": "none", "at": "1969-12-31T23:59:59Z"}, "at"),
        ({"recurring": "none", "at": "next tuesday"}, "at"),
        ({"recurring": "none", "at": 1893456000}, "at"),
        ({"recurring": "none", "at": AT, "timezone": "Mars/Base"}, "timezone"),
        ({"recurring": "none", "at": AT, "timezone": ""}, "timezone"),
        ({"recurring": "none", "at": AT, "timezone": "../../etc/passwd"}, "timezone"),
        ({"recurring": "none", "at": AT, "timezone": "localtime"}, "timezone"),
        ({"recurring": "cron", "at": AT}, "cron"),
        ({"recurring": "daily", "at": AT, "cron": "0 9 * * *"}, "cron"),
        ({"recurring": "interval", "at": AT}, "interval"),
        ({"recurring": "interval", "at": AT, "interval": 0}, "interval"),
        ({"recurring": "interval", "at": AT, "interval": 315_576_001}, "interval"),
        ({"recurring": "interval", "at": AT, "interval": 1.5}, "interval"),
        ({"recurring": "none", "at": AT, "interval": 60}, "interval"),
        ({"recurring": "none", "at": AT, "start_at": "2030-01-01"}, "startAt"),
        ({"recurring": "none", "at": AT, "end_at": datetime(2030, 1, 1)}, "endAt"),
        ({"recurring": "none", "at": AT, "start_at": AT, "end_at": AT}, "endAt"),
        (
            {"recurring": "none", "at": AT, "start_at": AT, "end_at": "2029-01-01T00:00:00Z"},
            "endAt",
        ),
        ({"recurring": "none", "at": AT, "max_runs": 0}, "maxRuns"),
        ({"recurring": "none", "at": AT, "max_runs": "3"}, "maxRuns"),
        # wrong JSON types are bad input too, never a crash
        ({"recurring": ["none"], "at": AT}, "recurring"),
        ({"recurring": "none", "at": AT, "timezone": ["UTC"]}, "timezone"),
        ({"recurring": "cron", "cron": ["* * * * *"]}, "cron"),
        ({"recurring": "cron", "cron": 5}, "cron"),
        ({"recurring": "none", "at": {"iso": AT}}, "at"),
        ({"recurring": "none", "at": AT, "start_at": 5}, "startAt"),
    ],
)
def test_bad_input_names_its_field(fields: dict[str, Any], field: str) -> None:
    error = fails(**fields)
    assert error.field == field
    assert error.message and str(error) == f"{field}: {error.message}"
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("", "empty"),
        ("* * * *", "5 fields"),
        ("* * * * * * *", "this one has 7"),
        ("61 * * * *", "'61' is not a valid minute (0-59)"),
        ("0 24 * * *", "'24' is not a valid hour"),
        ("0 0 0 * *", "'0' is not a valid day of the month"),
        ("0 0 * 13 *", "'13' is not a valid month (1-12 or JAN-DEC)"),
        ("0 0 * * 8", "'8' is not a valid day of the week (0-7 or SUN-SAT)"),
        ("0 0 * FOO *", "'FOO' is not a valid month"),
        ("0 0 * * MONDAY", "'MONDAY' is not a valid day of the week"),
        ("0 0 L * *", "'L' is not a valid day of the month"),
        ("*/0 * * * *", "the step '0' in the minute field"),
        ("*/x * * * *", "the step 'x' in the minute field"),
        ("1,,2 * * * *", "the minute field has an empty list item"),
        ("0 5-1 * * *", "the range '5-1' in the hour field goes backwards"),
        ("@reboot", "unknown cron shortcut '@reboot'"),
        ("0 0 30 2 *", "this cron expression never fires: day 30 of February does not exist"),
        ("0 0 31 4,6 *", "never fires: day 31 of April or June does not exist"),
        ("0 0 30,31 2 *", "never fires: days 30 and 31 of February do not exist"),
        ("0 0 30 2 * *", "'30' is not a valid hour"),  # six fields: seconds come first
    ],
)
def test_bad_cron_says_what_is_wrong(cron: str, words: str) -> None:
    error = fails(recurring="cron", cron=cron)
    assert error.field == "cron"
    assert words in error.message


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 29 2 *",  # leap years only
        "0 0 30 2 MON",  # both day fields restricted: any Monday in February
        "0 0 * * MON-SUN",  # Sunday closes a weekday range
        "0 0 * * 1-7",
        "5/15 * * * *",
        "0 0 1 jan,Jul *",
        "  0   9 * *  mon-fri ",
        "@ANNUALLY",
        "*/10 * * * * *",
    ],
)
def test_good_cron_is_accepted(cron: str) -> None:
    timing = make_timing(recurring="cron", cron=cron)
    assert timing.cron == " ".join(cron.split()) or timing.cron == cron.strip().lower()


def test_unknown_zone_message() -> None:
    error = fails(recurring="none", at=AT, timezone="Mars/Base")
    assert error.message == "unknown time zone 'Mars/Base'"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Europe/Kiev", "Europe/Kyiv"),
        ("US/Eastern", "America/New_York"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Asia/Saigon", "Asia/Ho_Chi_Minh"),
        ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("europe/berlin", "Europe/Berlin"),
        ("Europe/Oslo", "Europe/Oslo"),  # a country's own zone stays, though tzdb links it
        ("Etc/UTC", "UTC"),
        ("Zulu", "UTC"),
        ("utc", "UTC"),
        ("UTC", "UTC"),
    ],
)
def test_old_zone_names_are_canonicalised(given: str, canonical: str) -> None:
    assert canonical_timezone(given) == canonical
    assert make_timing(recurring="none", at=AT, timezone=given).timezone == canonical


def test_timezone_none_means_utc() -> None:
    assert make_timing(recurring="none", at=AT, timezone=None).timezone == "UTC"


def test_at_accepts_rfc3339_and_drops_a_fraction_of_a_second() -> None:
    expected = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    given: list[datetime | str] = [
        "2030-01-01T12:00:00Z",
        "2030-01-01t12:00:00z",
        "2030-01-01 13:00:00+01:00",
        "2030-01-01T07:00:00-05:00",
        "2030-01-01T12:00:00.999Z",  # JavaScript's toISOString() always sends milliseconds
        datetime(2030, 1, 1, 13, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=1))),
    ]
    for at in given:
        timing = make_timing(recurring="none", at=at)
        assert timing.first_at == expected
        assert timing.first_at.tzinfo is UTC


def test_fields_are_stored_in_utc() -> None:
    timing = make_timing(
        recurring="weekly",
        minute=27789898,
        timezone="Europe/Berlin",
        start_at="2030-01-01T01:00:00+01:00",
        end_at=datetime(2031, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
        max_runs=3,
    )
    assert timing.start_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert timing.end_at == datetime(2031, 1, 1, 5, tzinfo=UTC)
    assert timing.max_runs == 3


def test_recurring_kinds() -> None:
    assert RECURRING == ("none", "daily", "weekly", "interval", "cron", "rrule")
    assert make_timing(recurring="cron", cron="@daily").first_at is None


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        (
            {"recurring": "none", "at": AT, "timezone": "Europe/Berlin"},
            "Once, at 2030-01-01 12:00:00 UTC (13:00 Europe/Berlin)",
        ),
        ({"recurring": "none", "at": AT}, "Once, at 2030-01-01 12:00:00 UTC"),
        (
            {"recurring": "none", "at": "2030-01-01T23:30:00Z", "timezone": "Asia/Kolkata"},
            "Once, at 2030-01-01 23:30:00 UTC (2030-01-02 05:00 Asia/Kolkata)",
        ),
        (
            {"recurring": "daily", "at": "2030-01-01T01:30:00Z", "timezone": "Europe/Berlin"},
            "Every day at 02:30, Europe/Berlin",
        ),
        (
            {"recurring": "daily", "at": "2030-01-01T01:30:15Z", "timezone": "Europe/Berlin"},
            "Every day at 02:30:15, Europe/Berlin",
        ),
        ({"recurring": "weekly", "at": "2029-12-31T08:00:00Z"}, "Every Monday at 08:00, UTC"),
        ({"recurring": "interval", "at": AT, "interval": 90}, "Every 90 seconds"),
        ({"recurring": "interval", "at": AT, "interval": 300}, "Every 5 minutes"),
        ({"recurring": "interval", "at": AT, "interval": 3600}, "Every hour"),
        ({"recurring": "interval", "at": AT, "interval": 172800}, "Every 2 days"),
        ({"recurring": "interval", "at": AT, "interval": 1}, "Every second"),
        (
            {"recurring": "cron", "cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin"},
            "At 09:00, Monday through Friday, Europe/Berlin",
        ),
        ({"recurring": "cron", "cron": "*/5 * * * *"}, "Every 5 minutes, UTC"),
        ({"recurring": "cron", "cron": "@daily"}, "At 00:00, UTC"),
        ({"recurring": "cron", "cron": "0 0 * * 7"}, "At 00:00, only on Sunday, UTC"),
        (
            {"recurring": "cron", "cron": "0 0 1,15 * MON"},
            "At 00:00, on day 1 and 15 of the month, or on Monday, UTC",
        ),
        (
            {"recurring": "cron", "cron": "0 0 */2 * MON"},  # `*/2` starts with *: both must match
            "At 00:00, every 2 days, only on Monday, UTC",
        ),
        ({"recurring": "cron", "cron": "*/10 * * * * *"}, "Every 10 seconds, UTC"),
        (
            {
                "recurring": "daily",
                "at": "2030-01-01T01:30:00Z",
                "timezone": "Europe/Berlin",
                "start_at": "2030-02-01T00:00:00Z",
                "end_at": "2030-12-31T00:00:00Z",
                "max_runs": 3,
            },
            "Every day at 02:30, Europe/Berlin, from 2030-02-01 00:00:00 UTC, "
            "until 2030-12-31 00:00:00 UTC, 3 times at most",
        ),
        (
            {"recurring": "interval", "at": AT, "interval": 60, "max_runs": 1},
            "Every minute, once at most",
        ),
    ],
)
def test_describe(fields: dict[str, Any], sentence: str) -> None:
    assert describe(make_timing(**fields)) == sentence
