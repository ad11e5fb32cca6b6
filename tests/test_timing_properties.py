"""Properties of every timing sequence, on random timings near DST transitions (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, reject, settings
from hypothesis import strategies as st

from app.timing import (
    RECURRING,
    Timing,
    TimingError,
    first_fire,
    latest_fire,
    make_timing,
    next_fire,
    occurrences,
)

TICK = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo",
         "Asia/Kolkata", "Pacific/Chatham"]  # fmt: skip
CRONS = [
    "*/15 * * * *",
    "30 2 * * *",
    "0 2 * * *",
    "0 9 * * MON-FRI",
    "0 0 1,15 * MON",
    "*/7 1-3 * * *",
    "0 */2 * * *",
    "45 1 * * SUN",
    "*/20 * * * * *",
    "0 30 2 * * *",
    "0 0 29 2 *",
    "@hourly",
]
# Offset changes (and São Paulo's last ones, in 2018/19): the interesting places.
ANCHORS = [
    datetime.fromisoformat(text)
    for text in [
        "2030-03-31T01:00:00+00:00",
        "2030-10-27T01:00:00+00:00",
        "2030-03-10T07:00:00+00:00",
        "2030-11-03T06:00:00+00:00",
        "2030-04-06T15:00:00+00:00",
        "2030-10-05T15:30:00+00:00",
        "2018-11-04T03:00:00+00:00",
        "2019-02-17T02:00:00+00:00",
    ]
]
EXAMPLES = settings(max_examples=120, deadline=None)
RRULES = [
    "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
    "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
    "FREQ=HOURLY;INTERVAL=3;COUNT=30",
    "FREQ=MINUTELY;INTERVAL=20;BYHOUR=0,1,2,3",
    "FREQ=YEARLY;BYMONTH=3,10,11;BYDAY=-1SU,1SU;BYHOUR=1,2;BYMINUTE=30",
    "FREQ=DAILY;UNTIL=20301101T000000Z",
    "FREQ=WEEKLY;BYDAY=SU;BYHOUR=0,1,2,3;BYMINUTE=0,45;WKST=SU",
    "FREQ=DAILY;INTERVAL=3;BYHOUR=23;BYMINUTE=59;BYSECOND=30",
    "FREQ=MINUTELY;INTERVAL=37",
]
# Days near the anchors, excluded.
EXCLUDED_DAYS = ["2030-03-31", "2030-10-27", "2030-03-10", "2030-11-03", "2030-11-04", "2018-11-04",
                 "2019-02-16", "2030-04-06", "2030-10-06"]  # fmt: skip


def exclusions() -> st.SearchStrategy[dict[str, Any]]:
    days = st.lists(st.sampled_from(EXCLUDED_DAYS), min_size=1, max_size=4, unique=True)
    spans = st.lists(
        st.sampled_from(EXCLUDED_DAYS).map(
            lambda d: [d, (date.fromisoformat(d) + timedelta(days=2)).isoformat()]
        ),
        min_size=1,
        max_size=2,
    )
    return st.fixed_dictionaries(
        {}, optional={"dates": days, "ranges": spans, "holidays": st.sampled_from(["DE-BY", "US"])}
    ).filter(bool)


def instants(micro: bool = False) -> st.SearchStrategy[datetime]:
    """Instants within three days of a DST transition, whole seconds unless `micro`."""
    seconds = st.integers(-3 * 86400, 3 * 86400)
    extra = st.integers(0, 999_999) if micro else st.just(0)
    return st.builds(
        lambda anchor, s, us: anchor + timedelta(seconds=s, microseconds=us),
        st.sampled_from(ANCHORS),
        seconds,
        extra,
    )


@st.composite
def timings(draw: st.DrawFn, bounded: bool = True) -> Timing:
    kind = draw(st.sampled_from(RECURRING))
    fields: dict[str, Any] = {"recurring": kind, "timezone": draw(st.sampled_from(ZONES))}
    if kind != "cron" or draw(st.booleans()):
        fields["at"] = draw(instants())
    if kind == "cron":
        fields["cron"] = draw(st.sampled_from(CRONS))
    if kind == "rrule":
        fields["rrule"] = draw(st.sampled_from(RRULES))
    if kind != "none" and draw(st.booleans()):
        fields["exclude"] = draw(exclusions())
        fields["on_excluded"] = draw(st.sampled_from(["skip", "next-business-day"]))
    wall_clock = kind in ("daily", "weekly", "rrule") or (
        kind == "cron" and fields["cron"] in ("30 2 * * *", "0 2 * * *", "0 9 * * MON-FRI",
                                              "45 1 * * SUN", "0 30 2 * * *", "0 0 29 2 *")
    )  # fmt: skip
    if wall_clock and draw(st.booleans()):
        fields["dst"] = {
            "gap": draw(st.sampled_from(["shift", "skip"])),
            "repeat": draw(st.sampled_from(["first", "last", "both"])),
        }
    if kind == "interval":
        fields["interval"] = draw(
            st.sampled_from([30, 90, 3600, 86400, 604800]) | st.integers(30, 200_000)
        )
    if bounded:
        start, end = draw(st.none() | instants()), draw(st.none() | instants())
        if start is not None and end is not None and end <= start:
            start, end = end - timedelta(seconds=1), start
        fields.update(start_at=start, end_at=end, max_runs=draw(st.none() | st.integers(1, 20)))
    try:
        return make_timing(**fields)
    except TimingError:  # an rrule whose UNTIL is before its DTSTART: refused, rightly
        assert fields["recurring"] == "rrule"
        reject()


def brute_latest(timing: Timing, since: datetime, now: datetime) -> datetime | None:
    """latest_fire by walking the sequence one occurrence at a time."""
    latest, cursor = None, since - TICK
    while (upcoming := next_fire(timing, cursor)) is not None and upcoming <= now:
        latest = cursor = upcoming
    return latest


@EXAMPLES
@given(timings(), instants(micro=True))
def test_next_is_strictly_later_whole_seconds_utc(timing: Timing, after: datetime) -> None:
    upcoming = next_fire(timing, after)
    if upcoming is not None:
        assert upcoming > after
        assert upcoming.tzinfo is UTC and upcoming.microsecond == 0


@EXAMPLES
@given(timings(), instants(micro=True), st.floats(0, 1, exclude_max=True))
def test_next_stays_the_same_until_it_happens(timing: Timing, after: datetime, part: float) -> None:
    upcoming = next_fire(timing, after)
    if upcoming is not None:
        between = after + (upcoming - after) * part
        between = min(max(between, after), upcoming - TICK)
        assert next_fire(timing, between) == upcoming


@EXAMPLES
@given(timings(), instants(micro=True))
def test_a_sequence_rises_and_stays_in_its_window(timing: Timing, after: datetime) -> None:
    found = occurrences(timing, after, 40)
    assert all(a < b for a, b in pairwise(found))  # so no instant twice
    assert all(t > after for t in found)
    if timing.start_at is not None:
        assert all(t >= timing.start_at for t in found)
    if timing.end_at is not None:
        assert all(t <= timing.end_at for t in found)
    if timing.max_runs is not None:
        assert len(found) <= timing.max_runs


@EXAMPLES
@given(timings(), instants(), st.integers(0, 25))
def test_max_runs_counts_runs_already_fired(timing: Timing, after: datetime, fired: int) -> None:
    found = occurrences(timing, after, 40, fired=fired)
    if timing.max_runs is not None:
        assert len(found) <= max(0, timing.max_runs - fired)
        if fired >= timing.max_runs:
            assert next_fire(timing, after, fired=fired) is None
    nexts = next_fire(timing, after, fired=fired)
    assert (found[0] if found else None) == nexts


@EXAMPLES
@given(timings(), instants())
def test_first_and_next_make_the_occurrences(timing: Timing, now: datetime) -> None:
    first = first_fire(timing, now)
    lower = now if timing.recurring in ("cron", "rrule") else timing.first_at
    assert lower is not None
    assert occurrences(timing, lower - TICK, 1) == ([] if first is None else [first])
    if first is None:
        return
    if timing.recurring not in ("cron", "rrule"):
        assert first_fire(timing, now + timedelta(days=400)) == first  # anchored: now is moot
    chain = [first]
    while len(chain) < 8 and (upcoming := next_fire(timing, chain[-1], fired=len(chain))):
        chain.append(upcoming)
    assert occurrences(timing, first - TICK, 8) == chain


@settings(max_examples=80, deadline=None)
@given(timings(bounded=False), instants(micro=True), st.integers(0, 12 * 3600))
def test_latest_fire_agrees_with_brute_force(timing: Timing, since: datetime, span: int) -> None:
    now = since + timedelta(seconds=span)
    assert latest_fire(timing, since, now) == brute_latest(timing, since, now)


@EXAMPLES
@given(timings(), instants(micro=True))
def test_latest_and_next_meet_with_nothing_between(timing: Timing, moment: datetime) -> None:
    latest = latest_fire(timing, EPOCH, moment)
    upcoming = next_fire(timing, moment)
    if latest is not None:
        assert latest <= moment
        assert next_fire(timing, latest) == upcoming
    if upcoming is not None:
        assert latest_fire(timing, EPOCH, upcoming) == upcoming
        assert latest_fire(timing, EPOCH, upcoming - TICK) == latest


def test_latest_fire_is_fast_over_years() -> None:
    every_second = make_timing(recurring="interval", minute=0, interval=1)
    cron = make_timing(recurring="cron", cron="*/10 * * * * *", timezone="Australia/Lord_Howe")
    since, now = datetime(1971, 1, 1, tzinfo=UTC), datetime(2030, 6, 1, 0, 0, 7, tzinfo=UTC)
    start = datetime.now(UTC)
    assert latest_fire(every_second, since, now) == now
    assert latest_fire(cron, since, now) == now - timedelta(seconds=7)
    assert datetime.now(UTC) - start < timedelta(seconds=1)
