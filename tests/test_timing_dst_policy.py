"""Per-job DST policies and excluded days, against a brute-force oracle.

The oracle walks every minute of a few days around real transitions and reads each minute's
wall clock (zoneinfo's astimezone, nothing of app.timing): a wall time it sees once fires
there; one it sees twice fires at the first pass, the last or both (dst.repeat); one it
never sees (a gap) fires at the first minute after the gap or not at all (dst.gap). Excluded
days are then taken out, or moved to the next weekday that is not excluded.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.timing import latest_fire, make_timing, next_fire, occurrences
from app.timing.cron import parse_cron
from app.timing.recurrence import library_rule, parse_rule

MINUTE = timedelta(minutes=1)
POLICIES = list(itertools.product(["shift", "skip"], ["first", "last", "both"]))
# (zone, a UTC instant a day or so before a transition)
TRANSITIONS = [
    ("Europe/Berlin", "2026-03-28T00:00:00+00:00"),
    ("Europe/Berlin", "2026-10-24T00:00:00+00:00"),
    ("America/New_York", "2026-03-07T12:00:00+00:00"),
    ("America/New_York", "2026-10-31T12:00:00+00:00"),
    ("Australia/Lord_Howe", "2026-04-04T00:00:00+00:00"),
    ("Australia/Lord_Howe", "2026-10-03T00:00:00+00:00"),
    ("America/Sao_Paulo", "2018-11-03T00:00:00+00:00"),
    ("America/Sao_Paulo", "2019-02-15T12:00:00+00:00"),
    ("Pacific/Chatham", "2026-04-04T00:00:00+00:00"),
    ("Pacific/Chatham", "2026-09-26T00:00:00+00:00"),
]
SPAN = timedelta(days=3)
# Wall times (as rules) that fall in or next to these zones' gaps and repeats.
DAILY = ["00:00", "00:30", "01:30", "02:00", "02:30", "02:45", "03:00", "03:45", "23:30"]
CRONS = ["30 2 * * *", "0 1,2 * * *", "45 2,3 * * *", "0 0 * * *", "0 30 1 * * *"]
RRULES = [
    "FREQ=DAILY;BYHOUR=0,1,2,3;BYMINUTE=0,30,45",
    "FREQ=HOURLY;BYMINUTE=15,45",
    "FREQ=MINUTELY;INTERVAL=20",
]


def scan(zone: str, start: datetime) -> dict[datetime, list[datetime]]:
    """Each wall time (to the minute) in the window -> the minutes that show it, in order."""
    tz, seen = ZoneInfo(zone), defaultdict(list)
    t = start - timedelta(days=1)
    while t <= start + SPAN + timedelta(days=1):
        seen[t.astimezone(tz).replace(tzinfo=None, fold=0)].append(t)
        t += MINUTE
    return seen


def oracle(walls: list[datetime], seen: dict[datetime, list[datetime]], gap: str, repeat: str):
    minutes = sorted(seen)
    found = set()
    for wall in walls:
        shown = seen.get(wall)
        if shown is None:  # the clocks skip it
            if gap == "shift":
                later = next(w for w in minutes if w > wall)
                found.add(seen[later][0])
            continue
        if len(shown) == 1 or repeat == "both":
            found.update(shown)
        else:
            found.add(shown[0] if repeat == "first" else shown[-1])
    return found


def walls_of(kind: str, rule: str, start: datetime, end: datetime, dtstart: datetime):
    """The rule's wall times from start to end (naive), by each kind's own definition."""
    if kind == "rrule":
        return list(library_rule(parse_rule(rule), dtstart).between(start, end, inc=True))
    if kind == "cron":
        cron = parse_cron(rule)
        walls, w = [], start
        while (w := cron.next_match(w)) is not None and w <= end:
            walls.append(w)
            w += timedelta(seconds=1)
        return walls
    hour, minute = map(int, rule.split(":"))
    day = start.date()
    days = [day + timedelta(days=k) for k in range((end - start).days + 2)]
    walls = [datetime(d.year, d.month, d.day, hour, minute) for d in days]
    return [w for w in walls if start <= w <= end]


def check(kind: str, rule: str, zone: str, begin: str, gap: str, repeat: str) -> None:
    start = datetime.fromisoformat(begin)
    tz = ZoneInfo(zone)
    wall_start = (start - timedelta(days=2)).astimezone(tz).replace(tzinfo=None)
    dtstart = wall_start.replace(hour=0, minute=0)
    fields: dict[str, object] = {
        "recurring": kind,
        "timezone": zone,
        "dst": {"gap": gap, "repeat": repeat},
    }
    if kind == "rrule":
        fields.update(rrule=rule, at=dtstart.isoformat())
    elif kind == "cron":
        fields.update(cron=rule)
    else:
        fields.update(at=f"{dtstart:%Y-%m-%d}T{rule}:00")
        if to_wall_exists(fields["at"], tz) is False:  # a daily anchor must exist
            return
    timing = make_timing(**fields)  # type: ignore[arg-type]
    seen = scan(zone, start)
    end = start + SPAN
    margin = timedelta(hours=4)
    low = start.astimezone(tz).replace(tzinfo=None) - margin
    high = end.astimezone(tz).replace(tzinfo=None) + margin
    walls = walls_of(kind, rule, low, high, dtstart)
    want = sorted(t for t in oracle(walls, seen, gap, repeat) if start < t <= end)
    got = [t for t in occurrences(timing, start, 500) if t <= end]
    assert got == want, (kind, rule, zone, gap, repeat)
    # latest_fire goes back through the same sequence
    since = start + timedelta(microseconds=1)
    for t in want[:: max(1, len(want) // 6)]:
        assert latest_fire(timing, since, t) == t
        assert latest_fire(timing, since, t - timedelta(microseconds=1)) == max(
            (x for x in want if x < t), default=None
        )


def to_wall_exists(text: object, tz: ZoneInfo) -> bool:
    wall = datetime.fromisoformat(str(text))
    back = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return back == wall


@pytest.mark.parametrize(("gap", "repeat"), POLICIES)
@pytest.mark.parametrize(("zone", "begin"), TRANSITIONS)
def test_daily_under_every_policy_matches_the_minute_scan(zone, begin, gap, repeat):
    for wall in DAILY:
        check("daily", wall, zone, begin, gap, repeat)


@pytest.mark.parametrize(("gap", "repeat"), POLICIES)
@pytest.mark.parametrize(("zone", "begin"), TRANSITIONS)
def test_fixed_time_cron_under_every_policy_matches_the_minute_scan(zone, begin, gap, repeat):
    for cron in CRONS:
        check("cron", cron, zone, begin, gap, repeat)


@pytest.mark.parametrize(("gap", "repeat"), POLICIES)
@pytest.mark.parametrize(("zone", "begin"), TRANSITIONS)
def test_rrule_under_every_policy_matches_the_minute_scan(zone, begin, gap, repeat):
    for rule in RRULES:
        check("rrule", rule, zone, begin, gap, repeat)


def test_the_default_policy_is_the_design_rule():
    plain = make_timing(recurring="daily", at="2026-03-27T02:30:00", timezone="Europe/Berlin")
    assert (plain.dst_gap, plain.dst_repeat) == ("shift", "first")
    after = datetime(2026, 3, 28, 12, tzinfo=UTC)
    assert next_fire(plain, after) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST


def test_pinned_berlin_fall_back_both_passes():
    timing = make_timing(recurring="daily", at="2026-10-20T02:30:00", timezone="Europe/Berlin",
                         dst={"gap": "skip", "repeat": "both"})  # fmt: skip
    assert occurrences(timing, datetime(2026, 10, 24, 12, tzinfo=UTC), 3) == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]
    skipping = make_timing(recurring="daily", at="2026-03-20T02:30:00", timezone="Europe/Berlin",
                           dst={"gap": "skip"})  # fmt: skip
    assert occurrences(skipping, datetime(2026, 3, 28, 12, tzinfo=UTC), 1) == [
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC)  # the 29th's 02:30 does not happen
    ]


def test_a_policy_on_a_job_that_follows_real_instants_is_refused():
    from app.timing import TimingError

    for fields in ({"recurring": "interval", "interval": 60, "at": "2026-01-01T00:00:00Z"},
                   {"recurring": "cron", "cron": "*/5 * * * *"}):  # fmt: skip
        with pytest.raises(TimingError) as caught:
            make_timing(**fields, dst={"gap": "skip"})  # type: ignore[arg-type]
        assert caught.value.field == "dst"


# Excluded days, against the same scan


HOLIDAY_WEEKS = [  # (zone, UTC start, holidays) around a holiday next to a weekend and a DST change
    ("Europe/Berlin", "2026-12-22T00:00:00+00:00", "DE-BY"),
    ("America/New_York", "2026-11-24T12:00:00+00:00", "US"),
    ("Europe/Berlin", "2026-10-22T00:00:00+00:00", "DE-BY"),
]


def excluded_oracle(want: list[datetime], zone: str, days: set[date], moving: bool,
                    seen: dict[datetime, list[datetime]]) -> list[datetime]:  # fmt: skip
    tz = ZoneInfo(zone)
    found = set()
    for t in want:
        wall = t.astimezone(tz).replace(tzinfo=None)
        if wall.date() not in days:
            found.add(t)
        elif moving:
            target = wall.date() + timedelta(days=1)
            while target in days or target.weekday() >= 5:
                target += timedelta(days=1)
            moved = datetime.combine(target, wall.time())
            if moved in seen:
                found.add(seen[moved][0])
    return sorted(found)


@pytest.mark.parametrize("moving", [False, True])
@pytest.mark.parametrize(("zone", "begin", "code"), HOLIDAY_WEEKS)
def test_excluded_days_match_the_scan(zone: str, begin: str, code: str, moving: bool):
    import holidays

    start = datetime.fromisoformat(begin)
    country, _, region = code.partition("-")
    days = set(holidays.country_holidays(country, subdiv=region or None, years=[2026, 2027]))
    days |= {date(2026, 10, 23), date(2026, 10, 26)}
    listed = {"holidays": code, "dates": ["2026-10-23"], "ranges": [["2026-10-26", "2026-10-26"]]}
    seen = scan(zone, start)
    for wall in ("09:00", "02:30", "23:45"):
        plain = make_timing(recurring="daily", at=f"2026-10-01T{wall}:00", timezone=zone)
        policy = "next-business-day" if moving else "skip"
        timing = make_timing(recurring="daily", at=f"2026-10-01T{wall}:00", timezone=zone,
                             exclude=listed, on_excluded=policy)  # fmt: skip
        end = start + SPAN
        want = [t for t in occurrences(plain, start - timedelta(days=6), 40) if t <= end]
        expected = [t for t in excluded_oracle(want, zone, days, moving, seen) if start < t <= end]
        got = [t for t in occurrences(timing, start, 40) if t <= end]
        assert got == expected, (zone, wall, moving)


def test_christmas_is_skipped_and_payroll_moves_to_the_next_business_day():
    rule = "FREQ=MONTHLY;BYMONTHDAY=25;BYHOUR=9;BYMINUTE=0"
    timing = make_timing(recurring="rrule", rrule=rule, at="2026-01-01T00:00:00",
                         timezone="Europe/Berlin", exclude={"holidays": "DE-BY"},
                         on_excluded="next-business-day")  # fmt: skip
    after = datetime(2026, 11, 30, tzinfo=UTC)
    # 25 and 26 December are holidays, then a weekend: Monday the 28th.
    assert next_fire(timing, after) == datetime(2026, 12, 28, 8, 0, tzinfo=UTC)
    skipping = make_timing(recurring="rrule", rrule=rule, at="2026-01-01T00:00:00",
                           timezone="Europe/Berlin", exclude={"holidays": "DE-BY"})  # fmt: skip
    assert next_fire(skipping, after) == datetime(2027, 1, 25, 8, 0, tzinfo=UTC)


def test_a_long_excluded_range_is_jumped_not_walked():
    timing = make_timing(recurring="rrule", rrule="FREQ=MINUTELY", at="2026-01-01T00:00:00Z",
                         exclude={"ranges": [["2026-01-02", "2026-12-30"]]})  # fmt: skip
    began = datetime.now(UTC)
    found = next_fire(timing, datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    assert found == datetime(2026, 12, 31, 0, 0, tzinfo=UTC)
    assert datetime.now(UTC) - began < timedelta(seconds=1)
