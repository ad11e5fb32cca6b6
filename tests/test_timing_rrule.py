"""rrule timings: against dateutil's own expansion plus the DST rule, over 40+ rules in six
zones, from DTSTART and from later points (the expansion restarts from the period holding
its search, so those must agree); COUNT and UNTIL; and refused rules naming their part."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from app.timing import TimingError, describe, make_timing, next_fire, occurrences
from app.timing.recurrence import library_rule, parse_rule
from app.timing.zones import get_zone, to_instant, to_wall

TICK = timedelta(microseconds=1)
ZONES = [
    ("Europe/Berlin", "2026-01-01T09:30:00"),
    ("America/New_York", "2026-01-01T09:30:00"),
    ("Australia/Lord_Howe", "2026-01-01T09:30:00"),
    ("America/Sao_Paulo", "2018-01-01T09:30:00"),  # its last DST changes, 2018/19
    ("Asia/Kolkata", "2026-01-01T09:30:00"),
    ("Pacific/Chatham", "2026-01-01T09:30:00"),
]
RULES = [
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3",
    "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
    "FREQ=DAILY;BYHOUR=0,1,2,3;BYMINUTE=0,15,30,45",
    "FREQ=DAILY;BYMONTH=3,4,9,10;BYHOUR=2;BYMINUTE=0,30",
    "FREQ=DAILY;COUNT=25",
    "FREQ=DAILY;UNTIL=20261101T000000Z",
    "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=17;BYMINUTE=0",
    "FREQ=WEEKLY",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=MO",
    "FREQ=WEEKLY;BYDAY=SU;BYHOUR=1,2,3;BYMINUTE=30",
    "FREQ=WEEKLY;COUNT=10;BYDAY=SA,SU",
    "FREQ=WEEKLY;INTERVAL=3;BYDAY=FR;BYHOUR=23;BYMINUTE=59;BYSECOND=59",
    "FREQ=MONTHLY",
    "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0",
    "FREQ=MONTHLY;BYDAY=1MO,-2MO",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=MONTHLY;BYMONTHDAY=31",
    "FREQ=MONTHLY;BYMONTHDAY=-1,-3",
    "FREQ=MONTHLY;BYMONTHDAY=1,15;BYHOUR=2;BYMINUTE=30",
    "FREQ=MONTHLY;INTERVAL=2;BYDAY=TU",
    "FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15",
    "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
    "FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
    "FREQ=MONTHLY;BYDAY=TU,WE,TH;BYSETPOS=3;COUNT=3",
    "FREQ=MONTHLY;BYDAY=SU;BYHOUR=0,1,2,3,4;BYSETPOS=1,-1",
    "FREQ=YEARLY",
    "FREQ=YEARLY;BYMONTH=6,7",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYYEARDAY=1,100,200,-1",
    "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
    "FREQ=YEARLY;BYWEEKNO=1,53;BYDAY=TH",
    "FREQ=YEARLY;BYMONTH=3;BYDAY=TH",
    "FREQ=YEARLY;BYDAY=20MO",
    "FREQ=YEARLY;BYMONTH=3,4,9,10,11;BYDAY=1SU,-1SU;BYHOUR=0,1,2,3;BYMINUTE=0,30",
    "FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
    "FREQ=HOURLY;INTERVAL=3",
    "FREQ=HOURLY;BYMINUTE=0,30;BYHOUR=0,1,2,3,4",
    "FREQ=HOURLY;INTERVAL=5;COUNT=60",
    "FREQ=MINUTELY;INTERVAL=20;BYHOUR=1,2,3",
    "FREQ=MINUTELY;INTERVAL=90;COUNT=200",
    "FREQ=SECONDLY;INTERVAL=1800;BYHOUR=2",
    # no BYxxx part: counted by arithmetic (app.timing.recurrence), checked here
    "FREQ=MINUTELY;INTERVAL=7",
    "FREQ=SECONDLY;INTERVAL=4099;COUNT=500",
    "FREQ=HOURLY;INTERVAL=25",
]
HORIZON = 60  # occurrences compared per rule and zone


def expected(rule: str, zone: str, start: str, count: int) -> list[datetime]:
    """The library's wall times from DTSTART, each mapped by the DST rule (to_instant), in
    order, each instant once (a gap's wall times all map to its end), UNTIL applied."""
    parsed, tz = parse_rule(rule), get_zone(zone)
    found: list[datetime] = []
    for wall in library_rule(parsed, datetime.fromisoformat(start)):
        instant = to_instant(wall, tz)
        if parsed.until is not None and instant > parsed.until:
            break
        if not found or instant > found[-1]:
            found.append(instant)
        if len(found) >= count:
            break
    return found


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize(("zone", "start"), ZONES, ids=[z for z, _ in ZONES])
def test_an_rrule_agrees_with_the_library_and_the_dst_rule(rule: str, zone: str, start: str):
    timing = make_timing(recurring="rrule", rrule=rule, at=start, timezone=zone)
    want = expected(rule, zone, start, HORIZON)
    assert want, "every rule here fires"
    assert occurrences(timing, datetime(1970, 1, 1, tzinfo=UTC), HORIZON) == want
    # From points within the sequence, and between two of its instants.
    for k in range(0, len(want) - 1, 7):
        following = want[k + 1 : k + 6]
        assert occurrences(timing, want[k], len(following)) == following
        middle = want[k] + (want[k + 1] - want[k]) / 2
        assert next_fire(timing, middle) == want[k + 1]


def test_there_are_at_least_forty_rules_in_six_zones():
    assert len(RULES) >= 40 and len(ZONES) == 6


def test_count_and_until_end_the_sequence():
    counted = make_timing(recurring="rrule", rrule="FREQ=DAILY;COUNT=3", at="2026-03-28T02:30:00",
                          timezone="Europe/Berlin")  # fmt: skip
    found = occurrences(counted, datetime(2026, 1, 1, tzinfo=UTC), 10)
    # The 29th's 02:30 does not happen: the DST rule fires it at 03:00 (01:00 UTC).
    assert found == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
    assert next_fire(counted, found[-1]) is None
    until = make_timing(recurring="rrule", rrule="FREQ=DAILY;UNTIL=20260330T003000Z",
                        at="2026-03-28T02:30:00", timezone="Europe/Berlin")  # fmt: skip
    assert occurrences(until, datetime(2026, 1, 1, tzinfo=UTC), 10) == found  # inclusive


def test_dtstart_is_at_and_need_not_be_an_occurrence():
    timing = make_timing(recurring="rrule", rrule="FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0",
                         at="2026-01-01T09:00:00", timezone="Europe/Berlin")  # fmt: skip
    assert occurrences(timing, datetime(2025, 1, 1, tzinfo=UTC), 3) == [
        datetime(2026, 1, 30, 16, 0, tzinfo=UTC),
        datetime(2026, 2, 27, 16, 0, tzinfo=UTC),
        datetime(2026, 3, 27, 16, 0, tzinfo=UTC),
    ]


def test_without_at_the_rule_starts_at_the_first_whole_minute_from_when_it_is_made():
    created = datetime(2026, 5, 5, 10, 11, 12, 500, tzinfo=UTC)
    timing = make_timing(recurring="rrule", rrule="FREQ=HOURLY", created=created)
    assert timing.first_at == datetime(2026, 5, 5, 10, 12, tzinfo=UTC)
    assert next_fire(timing, created) == datetime(2026, 5, 5, 10, 12, tzinfo=UTC)
    assert next_fire(timing, timing.first_at) == datetime(2026, 5, 5, 11, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rule", "part"),
    [
        ("", "rrule must be"),
        ("BYDAY=MO", "FREQ is required"),
        ("FREQ=FORTNIGHTLY", "FREQ must be one of"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20300101T000000Z", "COUNT and UNTIL"),
        ("FREQ=MONTHLY;BYWEEKNO=3", "BYWEEKNO is only allowed"),
        ("FREQ=MONTHLY;BYYEARDAY=3", "BYYEARDAY is not allowed"),
        ("FREQ=WEEKLY;BYMONTHDAY=3", "BYMONTHDAY is not allowed"),
        ("FREQ=WEEKLY;BYDAY=1MO", "a numbered day is only allowed"),
        ("FREQ=YEARLY;BYWEEKNO=1;BYDAY=1MO", "a numbered day is only allowed"),
        ("FREQ=MONTHLY;BYDAY=6MO", "at most 5"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS needs another"),
        ("FREQ=DAILY;BYHOUR=24", "BYHOUR value '24'"),
        ("FREQ=DAILY;BYMINUTE=-1", "BYMINUTE value '-1'"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value '0'"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be"),
        ("FREQ=DAILY;COUNT=1000001", "COUNT must be at most"),
        ("FREQ=DAILY;UNTIL=20300101", "UNTIL '20300101' must be a UTC"),
        ("FREQ=DAILY;UNTIL=20300230T000000Z", "not a real date"),
        ("FREQ=DAILY;WKST=XX", "WKST must be one of"),
        ("FREQ=DAILY;DTSTART=20300101T000000", "unknown part 'DTSTART'"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
        ("FREQ=DAILY;BYDAY", "is not NAME=VALUE"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never fires"),
        ("FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31", "never fires"),
        ("FREQ=DAILY;UNTIL=20200101T000000Z", "never fires"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=1MO", "never fires"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_part(rule: str, part: str):
    with pytest.raises(TimingError) as caught:
        make_timing(recurring="rrule", rrule=rule, at="2026-01-01T09:00:00")
    assert caught.value.field == "rrule"
    assert part in caught.value.message


def test_rrule_belongs_to_recurring_rrule():
    with pytest.raises(TimingError) as caught:
        make_timing(recurring="daily", rrule="FREQ=DAILY", at="2026-01-01T09:00:00Z")
    assert caught.value.field == "rrule"
    with pytest.raises(TimingError) as caught:
        make_timing(recurring="rrule", at="2026-01-01T09:00:00Z")
    assert caught.value.field == "rrule"


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0", "Every month on the last Friday at 17:00"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", "Every 2 weeks on Monday and Thursday at 09:00"),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
         "Every month on Monday, Tuesday, Wednesday, Thursday and Friday (the 1st of those each "
         "month) at 09:00"),
        ("FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=-1;COUNT=5",
         "Every year on the last day of the month in January at 09:00, 5 times"),
        ("FREQ=DAILY;UNTIL=20301231T000000Z",
         "Every day at 09:00, until 2030-12-31 00:00:00 UTC"),
    ],
)  # fmt: skip
def test_describe_says_the_rule(rule: str, words: str):
    timing = make_timing(recurring="rrule", rrule=rule, at="2026-01-01T09:00:00",
                         timezone="Europe/Berlin")  # fmt: skip
    assert describe(timing) == f"{words}, from 2026-01-01 09:00:00, Europe/Berlin"


def test_a_long_running_rule_stays_cheap():
    """The search restarts from the period of its instant, not from DTSTART."""
    timing = make_timing(
        recurring="rrule", rrule="FREQ=MINUTELY;INTERVAL=7", at="1971-01-01T00:00:00Z"
    )
    began = datetime.now(UTC)
    after = datetime(2030, 6, 1, 12, 0, 30, tzinfo=UTC)
    found = next_fire(timing, after)
    assert found is not None and found - after <= timedelta(minutes=7)
    minutes = (found - datetime(1971, 1, 1, tzinfo=UTC)) / timedelta(minutes=1)
    assert minutes % 7 == 0
    assert datetime.now(UTC) - began < timedelta(milliseconds=200)
    assert to_wall(found, get_zone("UTC")).second == 0


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(RULES),
    st.sampled_from(ZONES),
    st.integers(1, 40),
    st.integers(0, 400 * 86400),
    st.booleans(),
)
def test_count_and_until_are_respected(rule, zone, count, seconds, by_until):
    name, start = zone
    base = ";".join(p for p in rule.split(";") if not p.startswith(("COUNT", "UNTIL")))
    anchor = datetime.fromisoformat(start).replace(tzinfo=UTC)
    until = anchor + timedelta(seconds=seconds)
    bound = f"UNTIL={until:%Y%m%dT%H%M%SZ}" if by_until else f"COUNT={count}"
    try:
        timing = make_timing(recurring="rrule", rrule=f"{base};{bound}", at=start, timezone=name)
    except TimingError:
        reject()  # UNTIL before the first occurrence: the rule never fires
    found = occurrences(timing, datetime(1970, 1, 1, tzinfo=UTC), 200)
    assert all(a < b for a, b in itertools.pairwise(found))  # no instant twice
    if by_until:
        assert all(t <= until for t in found)
        assert found == expected(f"{base};{bound}", name, start, 200)
    else:
        assert 1 <= len(found) <= count  # a DST gap may map two wall times to one instant
        assert found == expected(f"{base};{bound}", name, start, 200)
