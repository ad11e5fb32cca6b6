"""Cron timing against the oracle, cronsim (Debian cron's semantics), and against APScheduler.

Every expression x zone x start: our first 50 instants equal cronsim's. Where cronsim (or
APScheduler) disagrees with the rule, a test below pins the difference down and shows which
answer is right, with an independent brute-force scan over real instants.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cronsim import CronSim
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.timing import Timing, make_timing, next_fire, occurrences
from app.timing.cron import ALIASES, parse_cron

COUNT = 50

EXPRESSIONS = [
    "0 2 * * *",
    "30 2 * * *",
    "15 2 * * *",
    "0 * * * *",
    "*/15 * * * *",
    "0 9 * * MON-FRI",
    "0 0 1,15 * MON",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 3 * * 1-5",
    "45 1 * * SUN",
    "30 2 * * SUN",
    "*/7 1-3 * * *",
    "0 0 29 2 *",
    "0 0 * * *",
    "30 0 * * *",
    "0 23 * * *",
    "@daily",
    "@hourly",
    "@weekly",
    "@monthly",
    "@yearly",
    # six fields, seconds first, with a wildcard minute or hour: cronsim and we both follow
    # each real instant (see test_six_fields_at_a_fixed_time_follow_the_wall_clock for the rest)
    "*/20 * * * * *",
    "30 */15 * * * *",
    "0 0 * * * *",
]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# The instants where the offset changes, from tzdb (2018/19: São Paulo still had DST then).
TRANSITIONS = {
    "Europe/Berlin": ["2018-03-25T01:00Z", "2018-10-28T01:00Z"],
    "America/New_York": ["2018-03-11T07:00Z", "2018-11-04T06:00Z"],
    "Australia/Lord_Howe": ["2018-03-31T15:00Z", "2018-10-06T15:30Z"],  # 30-minute shifts
    "America/Sao_Paulo": ["2018-11-04T03:00Z", "2019-02-17T02:00Z"],  # at midnight
    "Asia/Kolkata": ["2018-03-25T01:00Z"],  # no DST: any instant will do
    "UTC": ["2018-10-28T01:00Z"],
}
# Start just before each transition, at distances that suit fine and coarse expressions alike.
LEADS = [timedelta(minutes=5), timedelta(hours=6), timedelta(days=3)]

CASES = [
    pytest.param(expr, zone, _utc(when) - lead, id=f"{expr}|{zone}|{when}-{lead}")
    for expr, (zone, whens), lead in itertools.product(EXPRESSIONS, TRANSITIONS.items(), LEADS)
    for when in whens
]


def cron_timing(expr: str, zone: str) -> Timing:
    return make_timing(recurring="cron", cron=expr, timezone=zone)


def ours(expr: str, zone: str, start: datetime, count: int = COUNT) -> list[datetime]:
    return occurrences(cron_timing(expr, zone), start, count)


def oracle(expr: str, zone: str, start: datetime, count: int = COUNT) -> list[datetime]:
    """cronsim's first instants after `start` (it has no @ shortcuts: expand them)."""
    sim = CronSim(ALIASES.get(expr, expr), start.astimezone(ZoneInfo(zone)))
    return [moment.astimezone(UTC) for moment in itertools.islice(sim, count)]


def brute_force(expr: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """Every real instant in (start, end] whose local time matches: one at a time, no cleverness.
    The fields come from cronsim's parser, so this shares no code with ours."""
    sim = CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    step = timedelta(seconds=1 if len(expr.split()) == 6 else 60)
    tz = ZoneInfo(zone)
    found, moment = [], start.replace(second=0, microsecond=0) + step
    while moment <= end:
        local = moment.astimezone(tz)
        if (
            local.second in sim.seconds
            and local.minute in sim.minutes
            and local.hour in sim.hours
            and local.month in sim.months
            and sim.match_day(local.date())
        ):
            found.append(moment)
        moment += step
    return found


@pytest.mark.parametrize(("expr", "zone", "start"), CASES)
def test_first_50_instants_match_cronsim(expr: str, zone: str, start: datetime) -> None:
    assert ours(expr, zone, start) == oracle(expr, zone, start)


@pytest.mark.parametrize(("expr", "zone", "start"), CASES[:: len(LEADS) * 4])
def test_next_fire_chain_is_occurrences(expr: str, zone: str, start: datetime) -> None:
    timing, chain = cron_timing(expr, zone), [start]
    for _ in range(COUNT):
        upcoming = next_fire(timing, chain[-1])
        assert upcoming is not None
        chain.append(upcoming)
    assert chain[1:] == ours(expr, zone, start)


# Where cronsim is wrong: Lord Howe's clocks move by 30 minutes, and cronsim steps a wildcard
# job's hours by whole real hours, so it can land on :30 and skip real matches.
CRONSIM_LORD_HOWE_SLIPS = [
    # expression, start, cronsim's answer, the right one (local times in Australia/Lord_Howe)
    ("* 2 * * *", "2018-03-31T11:00+11:00", "2018-04-01T02:30+10:30", "2018-04-01T02:00+10:30"),
    ("0 */2 * * *", "2018-04-01T01:00+11:00", "2018-04-01T04:00+10:30", "2018-04-01T02:00+10:30"),
    (
        "*/30 0-1 * * *",
        "2018-10-07T01:45+10:30",
        "2018-10-08T00:30+11:00",
        "2018-10-08T00:00+11:00",
    ),
]


@pytest.mark.parametrize(("expr", "start", "cronsims", "right"), CRONSIM_LORD_HOWE_SLIPS)
def test_where_cronsim_skips_real_matches_we_follow_brute_force(
    expr: str, start: str, cronsims: str, right: str
) -> None:
    zone, begin = "Australia/Lord_Howe", _utc(start)
    assert oracle(expr, zone, begin, 1) == [_utc(cronsims)]
    assert ours(expr, zone, begin, 1) == [_utc(right)]
    assert brute_force(expr, zone, begin, _utc(cronsims))[0] == _utc(right)


@pytest.mark.parametrize(
    ("expr", "zone", "start"),
    [
        ("*/15 * * * *", "Australia/Lord_Howe", "2018-03-31T12:00Z"),
        ("*/15 * * * *", "Australia/Lord_Howe", "2018-10-06T12:00Z"),
        ("*/7 1-3 * * *", "Australia/Lord_Howe", "2018-03-31T12:00Z"),
        ("*/7 1-3 * * *", "America/Sao_Paulo", "2018-11-03T20:00Z"),
        ("*/7 1-3 * * *", "Europe/Berlin", "2018-10-27T20:00Z"),
        ("0 * * * *", "America/Sao_Paulo", "2019-02-16T20:00Z"),
        ("*/20 * * * * *", "Europe/Berlin", "2018-03-25T00:55Z"),
    ],
)
def test_wildcard_jobs_fire_at_every_real_matching_instant(
    expr: str, zone: str, start: str
) -> None:
    begin = _utc(start)
    end = begin + timedelta(hours=10 if len(expr.split()) == 5 else 0.2)
    expected = brute_force(expr, zone, begin, end)
    assert ours(expr, zone, begin, len(expected)) == expected


# Six fields at a fixed time: cronsim keeps Debian's DST rule to five-field expressions. We
# apply it whenever minute and hour are fixed, so a seconds field changes nothing about DST.
@pytest.mark.parametrize(
    ("six", "five", "zone", "start"),
    [
        ("0 30 2 * * *", "30 2 * * *", "Europe/Berlin", "2018-03-20T00:00Z"),
        ("0 30 2 * * *", "30 2 * * *", "Europe/Berlin", "2018-10-20T00:00Z"),
        ("0 0 0 * * *", "0 0 * * *", "America/Sao_Paulo", "2018-11-01T00:00Z"),
        ("0 0 0 * * *", "0 0 * * *", "Australia/Lord_Howe", "2018-03-25T00:00Z"),
        ("0 30 2 * * *", "30 2 * * *", "America/New_York", "2018-03-08T00:00Z"),
    ],
)
def test_six_fields_at_a_fixed_time_follow_the_wall_clock(
    six: str, five: str, zone: str, start: str
) -> None:
    begin = _utc(start)
    assert ours(six, zone, begin, 15) == oracle(five, zone, begin, 15)
    assert ours(six, zone, begin, 15) != oracle(six, zone, begin, 15)


def test_after_in_a_repeated_hour_we_never_go_back_but_cronsim_does() -> None:
    # 01:10Z is 02:10 CET, the second pass of Berlin's fall-back hour; 02:45 CEST (00:45Z) has
    # already fired. cronsim, asked statelessly, answers 00:45Z, before the start.
    start = _utc("2018-10-28T01:10Z")
    assert oracle("45 2 * * *", "Europe/Berlin", start, 1) == [_utc("2018-10-28T00:45Z")]
    assert ours("45 2 * * *", "Europe/Berlin", start, 1) == [_utc("2018-10-29T01:45Z")]


# APScheduler 3.11: where it agrees we could use it; where it doesn't, the rule wins.

BERLIN = ZoneInfo("Europe/Berlin")


def aps_times(
    trigger: CronTrigger | IntervalTrigger, start: datetime, count: int
) -> list[datetime]:
    """APScheduler's first instants strictly after `start` (it answers "at or after now")."""
    found: list[datetime] = []
    previous, now = None, start + timedelta(microseconds=1)
    while len(found) < count:
        upcoming = trigger.get_next_fire_time(previous, now)
        assert upcoming is not None
        found.append(upcoming.astimezone(UTC))
        previous = now = upcoming
    return found


def test_apscheduler_fires_a_skipped_time_an_hour_late_we_and_cronsim_at_the_gap() -> None:
    start = _utc("2030-03-30T00:00Z")
    aps = aps_times(CronTrigger(hour=2, minute=30, timezone=BERLIN), start, 3)
    assert aps[1] == _utc("2030-03-31T03:30+02:00")
    mine = ours("30 2 * * *", "Europe/Berlin", start, 3)
    assert mine[1] == _utc("2030-03-31T03:00+02:00")
    assert mine == oracle("30 2 * * *", "Europe/Berlin", start, 3)


def test_apscheduler_fires_a_repeated_time_twice_we_and_cronsim_once() -> None:
    start = _utc("2030-10-26T12:00Z")
    aps = aps_times(CronTrigger(hour=2, minute=30, timezone=BERLIN), start, 2)
    assert aps == [_utc("2030-10-27T00:30Z"), _utc("2030-10-27T01:30Z")]
    expected = [_utc("2030-10-27T00:30Z"), _utc("2030-10-28T01:30Z")]
    assert ours("30 2 * * *", "Europe/Berlin", start, 2) == expected
    assert oracle("30 2 * * *", "Europe/Berlin", start, 2) == expected


def test_apscheduler_from_crontab_reads_weekday_0_as_monday_and_refuses_7() -> None:
    start = _utc("2030-01-01T00:00Z")  # a Tuesday
    aps = aps_times(CronTrigger.from_crontab("0 0 * * 0", timezone="UTC"), start, 1)
    assert aps[0].strftime("%A") == "Monday"
    for expr in ("0 0 * * 0", "0 0 * * 7"):
        assert ours(expr, "UTC", start, 1)[0].strftime("%A") == "Sunday"
        assert ours(expr, "UTC", start, 1) == oracle(expr, "UTC", start, 1)
    with pytest.raises(ValueError):
        CronTrigger.from_crontab("0 0 * * 7", timezone="UTC")


@pytest.mark.parametrize("expr", ["*/15 * * * *", "0 9 * * mon-fri", "0 0 1,15 * *", "7 */3 * 2 *"])
def test_apscheduler_cron_agrees_where_there_is_no_dst_and_no_weekday_number(expr: str) -> None:
    start = _utc("2030-01-01T00:00Z")
    aps = aps_times(CronTrigger.from_crontab(expr, timezone="UTC"), start, COUNT)
    assert ours(expr, "UTC", start) == aps


def test_apscheduler_interval_agrees_with_ours_across_dst() -> None:
    first = _utc("2030-03-30T01:30Z")
    before = first - timedelta(seconds=1)
    aps = aps_times(IntervalTrigger(hours=24, start_date=first, timezone=BERLIN), before, 4)
    timing = make_timing(recurring="interval", at=first, interval=86400, timezone="Europe/Berlin")
    assert occurrences(timing, before, 4) == aps
    assert aps[2] == _utc("2030-04-01T01:30Z")  # 03:30 CEST: exact days, blind to DST


# Stateless: asked from any instant (not only from the previous run), we still agree.
ANY_START_ZONES = [zone for zone in TRANSITIONS if zone != "UTC"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(EXPRESSIONS),
    st.sampled_from(ANY_START_ZONES),
    st.sampled_from([_utc(t) for whens in TRANSITIONS.values() for t in whens]),
    st.integers(-2 * 86400, 2 * 86400),
)
def test_from_any_instant_we_agree_with_cronsim(
    expr: str, zone: str, transition: datetime, seconds: int
) -> None:
    # cronsim's hour stepping slips on Lord Howe's half hours (see above) for wildcard jobs
    assume(zone != "Australia/Lord_Howe" or parse_cron(expr).wall_clock)
    start = transition + timedelta(seconds=seconds)
    theirs = oracle(expr, zone, start, 1)[0]
    mine = ours(expr, zone, start, 1)[0]
    if theirs > start:
        assert mine == theirs
    else:  # cronsim went back: see test_after_in_a_repeated_hour_we_never_go_back_but_cronsim_does
        assert mine > start and start.astimezone(ZoneInfo(zone)).fold == 1
