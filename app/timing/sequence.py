"""When a job fires: the sequence of instants a Timing describes.

The sequence is the "base" sequence of its kind (see _base_next), cut to [start_at, end_at], and
at most max_runs long. Every function here takes and returns aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from app.timing.cron import Cron, parse_cron
from app.timing.spec import Timing
from app.timing.zones import (
    first_transition,
    fold_shift,
    get_zone,
    last_transition,
    offset_at,
    to_instant,
    to_wall,
)

_TICK = timedelta(microseconds=1)  # "at or after x" is "after x - _TICK": instants are whole µs
_SECOND = timedelta(seconds=1)
_STEP_DAYS = {"daily": 1, "weekly": 7}
_Step = Callable[[Timing, datetime], datetime | None]


def first_fire(timing: Timing, now: datetime) -> datetime | None:
    """The first occurrence, None if there is none. For none/daily/weekly/interval it is first_at
    (even if past: such a job fires at once) or, when start_at is later, the first occurrence from
    start_at on; for cron, the first match at or after max(now, start_at, first_at)."""
    lower = _utc(now) if timing.recurring == "cron" else timing.first_at
    assert lower is not None, "first_at is required for this kind of timing"
    return _next_in_window(timing, lower - _TICK)


def next_fire(timing: Timing, after: datetime, *, fired: int = 0) -> datetime | None:
    """The first occurrence strictly after `after`; None once the sequence has ended
    (past end_at, `fired` runs already reached max_runs, or a one-shot already passed)."""
    if timing.max_runs is not None and fired >= timing.max_runs:
        return None
    return _next_in_window(timing, _utc(after))


def latest_fire(timing: Timing, since: datetime, now: datetime) -> datetime | None:
    """The latest occurrence in [since, now], or None (to coalesce runs missed while down).
    It ignores max_runs: how many runs happened is the caller's to check."""
    since, now = _utc(since), _utc(now)
    if timing.end_at is not None:
        now = min(now, timing.end_at)
    if timing.start_at is not None:
        since = max(since, timing.start_at)
    if now < since:
        return None
    found = _guard(_base_prev, timing, now)
    return found if found is not None and found >= since else None


def occurrences(timing: Timing, after: datetime, count: int, *, fired: int = 0) -> list[datetime]:
    """Up to `count` occurrences strictly after `after`. max_runs is a budget for the whole
    sequence, of which `fired` runs are spent."""
    if timing.max_runs is not None:
        count = min(count, timing.max_runs - fired)
    found: list[datetime] = []
    cursor = _utc(after)
    while len(found) < count:
        following = _next_in_window(timing, cursor)
        if following is None:
            break
        found.append(following)
        cursor = following
    return found


def count_between(
    timing: Timing, after: datetime, until: datetime, *, cap: int
) -> tuple[int, bool]:
    """(how many occurrences fall in (after, until], whether that is exact). An interval is
    counted by arithmetic; other kinds step through, at most `cap` steps (then: not exact)."""
    after, until = _utc(after), _utc(until)
    if timing.end_at is not None:
        until = min(until, timing.end_at)
    if until <= after:
        return 0, True
    if timing.recurring == "interval" and timing.first_at is not None:
        start = max(after, (timing.start_at or after) - _TICK, timing.first_at - _TICK)
        step = timedelta(seconds=timing.interval or 1)
        first = timing.first_at
        return max(0, (until - first) // step - (start - first) // step), True
    found, cursor = 0, after
    while found < cap:
        following = _next_in_window(timing, cursor)
        if following is None or following > until:
            break
        found, cursor = found + 1, following
    return found, found < cap


def _next_in_window(timing: Timing, after: datetime) -> datetime | None:
    if timing.start_at is not None and after < timing.start_at:
        after = timing.start_at - _TICK
    found = _guard(_base_next, timing, after)
    if found is None or (timing.end_at is not None and found > timing.end_at):
        return None
    return found


def _guard(step: _Step, timing: Timing, instant: datetime) -> datetime | None:
    """Run a search; past year 9999 there is nothing (datetime overflows)."""
    try:
        return step(timing, instant)
    except OverflowError:
        return None


def _base_next(timing: Timing, after: datetime) -> datetime | None:
    """The first instant of the unbounded sequence strictly after `after`:
    none: first_at; interval: first_at + k·interval; daily/weekly: first_at, then the same wall
    time every day/week; cron: every match at or after first_at, if that is set."""
    first = timing.first_at
    kind = timing.recurring
    if kind == "cron":
        if first is not None and after < first:
            after = first - _TICK
        return _cron_next(parse_cron(timing.cron or ""), get_zone(timing.timezone), after)
    assert first is not None, "first_at is required for this kind of timing"
    if after < first:
        return first
    if kind == "interval":
        step = timedelta(seconds=timing.interval or 0)
        return first + step * ((after - first) // step + 1)
    if kind in _STEP_DAYS:
        return _calendar_next(first, _STEP_DAYS[kind], get_zone(timing.timezone), after)
    return None  # a one-shot that has passed


def _base_prev(timing: Timing, until: datetime) -> datetime | None:
    """The last instant of the unbounded sequence at or before `until` (see _base_next)."""
    first = timing.first_at
    kind = timing.recurring
    if kind == "cron":
        found = _cron_prev(parse_cron(timing.cron or ""), get_zone(timing.timezone), until)
        return None if found is None or (first is not None and found < first) else found
    assert first is not None, "first_at is required for this kind of timing"
    if until < first:
        return None
    if kind == "interval":
        step = timedelta(seconds=timing.interval or 0)
        return first + step * ((until - first) // step)
    if kind in _STEP_DAYS:
        return _calendar_prev(first, _STEP_DAYS[kind], get_zone(timing.timezone), until)
    return first


# daily and weekly: day `d0 + k·step` at first_at's wall time, for k >= 1, after first_at itself.


def _calendar_next(first: datetime, step: int, zone: tzinfo, after: datetime) -> datetime | None:
    anchor, now = to_wall(first, zone), to_wall(after, zone)
    day0, wall = anchor.date(), anchor.time()
    k = max(1, -(-(now.date() - day0).days // step))
    if day0 + timedelta(days=k * step) == now.date() and wall <= now.time():
        k += 1  # a wall time not after after's own has fired already (to_instant is monotonic)
    while (found := _on_day(day0, k * step, wall, zone)) is not None:
        if found > after:  # at most a few rounds: only DST moves a later wall time before after
            return found
        k += 1
    return None


def _calendar_prev(first: datetime, step: int, zone: tzinfo, until: datetime) -> datetime:
    anchor = to_wall(first, zone)
    day0, wall = anchor.date(), anchor.time()
    # Start one step beyond until's day: a fall-back can show an instant an earlier wall time.
    k = (to_wall(until, zone).date() - day0).days // step + 1
    for days in range(k * step, 0, -step):
        found = _on_day(day0, days, wall, zone)
        if found is not None and found <= until:
            return found
    return first


def _on_day(day0: date, days: int, wall: time, zone: tzinfo) -> datetime | None:
    """The instant of `wall` on day0 + days; None past year 9999."""
    try:
        return to_instant(datetime.combine(day0 + timedelta(days=days), wall), zone)
    except OverflowError:
        return None


# cron: Debian's two behaviours (see Cron.wall_clock).


def _cron_next(cron: Cron, zone: tzinfo, after: datetime) -> datetime | None:
    start = _floor(after) + _SECOND
    if zone is UTC:
        found = cron.next_match(start.replace(tzinfo=None))
        return None if found is None else found.replace(tzinfo=UTC)
    if cron.wall_clock:
        # From after's own wall time: the second after it may already be past a gap.
        return _wall_next(cron, zone, after, to_wall(_floor(after), zone) + _SECOND)
    return _instant_next(cron, zone, start)


def _cron_prev(cron: Cron, zone: tzinfo, until: datetime) -> datetime | None:
    end = _floor(until)
    if zone is UTC:
        found = cron.prev_match(end.replace(tzinfo=None))
        return None if found is None else found.replace(tzinfo=UTC)
    if cron.wall_clock:
        return _wall_prev(cron, zone, end)
    return _instant_prev(cron, zone, end)


def _wall_next(cron: Cron, zone: tzinfo, after: datetime, wall: datetime) -> datetime | None:
    """Each matching wall time fires once, at to_instant(); the first of those after `after`.

    to_instant never decreases as the wall time grows, so only when `after` is in the second
    pass of a fall-back do a few wall times need skipping (their instant was the first pass)."""
    while (found := cron.next_match(wall)) is not None:
        instant = to_instant(found, zone)
        if instant > after:
            return instant
        wall = found + _SECOND
    return None


def _wall_prev(cron: Cron, zone: tzinfo, until: datetime) -> datetime | None:
    # In the second pass of a fall-back, wall times a little later (by up to the setback, often
    # an hour) already fired in the first pass.
    wall = to_wall(until, zone) + fold_shift(until, zone)
    while (found := cron.prev_match(wall)) is not None:
        instant = to_instant(found, zone)
        if instant <= until:
            return instant
        wall = found - _SECOND
    return None


def _instant_next(cron: Cron, zone: tzinfo, start: datetime) -> datetime | None:
    """The first instant >= start whose local time matches. Between two offset changes wall
    time is instant + offset, so search the wall clock of one such stretch at a time."""
    while True:
        offset = offset_at(start, zone)
        found = cron.next_match((start + offset).replace(tzinfo=None))
        if found is None:
            return None
        instant = (found - offset).replace(tzinfo=UTC)
        change = first_transition(zone, start, instant)
        if change is None:
            return instant
        start = change


def _instant_prev(cron: Cron, zone: tzinfo, end: datetime) -> datetime | None:
    """The last instant <= end whose local time matches (mirror of _instant_next)."""
    while True:
        offset = offset_at(end, zone)
        found = cron.prev_match((end + offset).replace(tzinfo=None))
        if found is None:
            return None
        instant = (found - offset).replace(tzinfo=UTC)
        change = last_transition(zone, instant, end)
        if change is None:
            return instant
        end = change - _SECOND


def _floor(instant: datetime) -> datetime:
    return instant.replace(microsecond=0) if instant.microsecond else instant


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is UTC:
        return instant
    if instant.utcoffset() is None:
        raise ValueError("timing functions need aware datetimes")
    return instant.astimezone(UTC)
