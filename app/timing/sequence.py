"""When a job fires: the sequence of instants a Timing describes.

The sequence is the "base" sequence of its kind (see _base_next), cut to [start_at, end_at], and
at most max_runs long. Every function here takes and returns aware UTC datetimes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from app.timing import excluding
from app.timing.cron import Cron, parse_cron
from app.timing.recurrence import Expansion, expansion, parse_rule
from app.timing.spec import Timing
from app.timing.zones import (
    first_transition,
    fold_shift,
    get_zone,
    last_transition,
    offset_at,
    repeated,
    to_instant,
    to_instant_by,
    to_wall,
)

_TICK = timedelta(microseconds=1)  # "at or after x" is "after x - _TICK": instants are whole µs
_SECOND = timedelta(seconds=1)
_STEP_DAYS = {"daily": 1, "weekly": 7}
_FROM_NOW = ("cron", "rrule")  # their first_at is a lower bound, not an occurrence
_Step = Callable[[Timing, datetime], datetime | None]
_Match = Callable[[datetime], datetime | None]


def first_fire(timing: Timing, now: datetime) -> datetime | None:
    """The first occurrence, None if there is none. For none/daily/weekly/interval it is first_at
    (even if past: such a job fires at once) or, when start_at is later, the first occurrence from
    start_at on; for cron and rrule, the first match at or after max(now, start_at, first_at)."""
    lower = _utc(now) if timing.recurring in _FROM_NOW else timing.first_at
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
    found = _guard(_allowed_prev, timing, now)
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
    found = _guard(_allowed_next, timing, after)
    if found is None or (timing.end_at is not None and found > timing.end_at):
        return None
    return found


def _guard(step: _Step, timing: Timing, instant: datetime) -> datetime | None:
    """Run a search; past year 9999 there is nothing (datetime overflows)."""
    try:
        return step(timing, instant)
    except OverflowError:
        return None


def _allowed_next(timing: Timing, after: datetime) -> datetime | None:
    """_base_next without the excluded days (app.timing.excluding)."""
    if timing.exclude is None:
        return _base_next(timing, after)
    return excluding.next_allowed(
        lambda t: _base_next(timing, t), timing.exclude, _moved_mapping(timing), timing, after
    )


def _allowed_prev(timing: Timing, until: datetime) -> datetime | None:
    if timing.exclude is None:
        return _base_prev(timing, until)
    return excluding.prev_allowed(
        lambda t: _base_prev(timing, t),
        lambda t: _allowed_next(timing, t),
        timing.exclude,
        timing,
        until,
    )


def _moved_mapping(timing: Timing) -> Callable[[datetime], datetime | None]:
    zone = get_zone(timing.timezone)
    return functools.partial(
        to_instant_by, zone=zone, gap=timing.dst_gap, pick=_one_pick(timing.dst_repeat)
    )


def _one_pick(repeat: str) -> str:
    return "first" if repeat == "both" else repeat


def _base_next(timing: Timing, after: datetime) -> datetime | None:
    """The first instant of the unbounded sequence strictly after `after`:
    none: first_at; interval: first_at + k·interval; daily/weekly: first_at, then the same wall
    time every day/week; cron: every match at or after first_at, if that is set; rrule: every
    wall time the rule matches from first_at's. A wall time the clocks repeat fires at its first
    pass, its last or both (dst.repeat): "both" merges the first two sequences."""
    if timing.dst_repeat != "both":
        return _picked_next(timing, after, timing.dst_repeat)
    found = [t for p in ("first", "last") if (t := _picked_next(timing, after, p)) is not None]
    return min(found, default=None)


def _base_prev(timing: Timing, until: datetime) -> datetime | None:
    """The last instant of the unbounded sequence at or before `until` (see _base_next)."""
    if timing.dst_repeat != "both":
        return _picked_prev(timing, until, timing.dst_repeat)
    found = [t for p in ("first", "last") if (t := _picked_prev(timing, until, p)) is not None]
    return max(found, default=None)


def _picked_next(timing: Timing, after: datetime, pick: str) -> datetime | None:
    first = timing.first_at
    kind = timing.recurring
    if kind == "cron":
        if first is not None and after < first:
            after = first - _TICK
        return _cron_next(parse_cron(timing.cron or ""), _mapper(timing, pick), after)
    assert first is not None, "first_at is required for this kind of timing"
    if kind == "rrule":  # first_at is DTSTART, which need not match the rule
        return _rrule_next(timing, _mapper(timing, pick), max(after, first - _TICK))
    if after < first:
        return first
    if kind == "interval":
        step = timedelta(seconds=timing.interval or 0)
        return first + step * ((after - first) // step + 1)
    if kind in _STEP_DAYS:
        return _calendar_next(first, _STEP_DAYS[kind], _mapper(timing, pick), after)
    return None  # a one-shot that has passed


def _picked_prev(timing: Timing, until: datetime, pick: str) -> datetime | None:
    first = timing.first_at
    kind = timing.recurring
    if kind == "cron":
        found = _cron_prev(parse_cron(timing.cron or ""), _mapper(timing, pick), until)
        return None if found is None or (first is not None and found < first) else found
    assert first is not None, "first_at is required for this kind of timing"
    if until < first:
        return None
    if kind == "interval":
        step = timedelta(seconds=timing.interval or 0)
        return first + step * ((until - first) // step)
    if kind in _STEP_DAYS:
        return _calendar_prev(first, _STEP_DAYS[kind], _mapper(timing, pick), until)
    if kind == "rrule":
        return _rrule_prev(timing, _mapper(timing, pick), until)
    return first


@dataclass(frozen=True, slots=True)
class _Mapper:
    """Wall time -> instant on a job's zone under its DST policy (one pass of a repeat)."""

    zone: tzinfo
    gap: str
    pick: str

    @property
    def plain(self) -> bool:
        """DESIGN.md's rule (zones.to_instant): the one the searches were first written for."""
        return self.gap == "shift" and self.pick == "first"

    def __call__(self, wall: datetime) -> datetime | None:
        if self.plain:
            return to_instant(wall, self.zone)
        return to_instant_by(wall, self.zone, gap=self.gap, pick=self.pick)

    def start_wall(self, after: datetime) -> datetime:
        """A wall time from which a search for the first instant after `after` may begin:
        every earlier wall time maps to `after` or before. For the last pass of a repeat
        that reaches back over the repeat when `after` is in its first pass."""
        wall = to_wall(_floor(after), self.zone)
        if self.pick != "last" or repeated(after, self.zone) != 1:
            return wall + _SECOND
        local = after.astimezone(self.zone)
        setback = (local.utcoffset() or _ZERO) - (local.replace(fold=1).utcoffset() or _ZERO)
        return wall - setback


_ZERO = timedelta(0)


def _mapper(timing: Timing, pick: str) -> _Mapper:
    return _Mapper(get_zone(timing.timezone), timing.dst_gap, pick)


# rrule: the rule's wall times (app.timing.recurrence), mapped as cron's fixed-time jobs are.


def _expansion(timing: Timing) -> Expansion:
    assert timing.first_at is not None, "an rrule's DTSTART is first_at"
    return _expansion_of(timing.rrule or "", timing.first_at, timing.timezone)


@functools.lru_cache(maxsize=4096)
def _expansion_of(text: str, first_at: datetime, zone: str) -> Expansion:
    return expansion(parse_rule(text), to_wall(first_at, get_zone(zone)))


def _rrule_next(timing: Timing, mapper: _Mapper, after: datetime) -> datetime | None:
    expanded = _expansion(timing)
    found = _wall_next(expanded.next_match, mapper, after, mapper.start_wall(after))
    until = expanded.rule.until
    return None if found is None or (until is not None and found > until) else found


def _rrule_prev(timing: Timing, mapper: _Mapper, until: datetime) -> datetime | None:
    expanded = _expansion(timing)
    if expanded.rule.until is not None:
        until = min(until, expanded.rule.until)
    return _wall_prev(expanded.prev_match, mapper, until)


# daily and weekly: day `d0 + k·step` at first_at's wall time, for k >= 1, after first_at itself.


def _calendar_next(first: datetime, step: int, mapper: _Mapper, after: datetime) -> datetime | None:
    zone = mapper.zone
    anchor, now = to_wall(first, zone), to_wall(after, zone)
    day0, wall = anchor.date(), anchor.time()
    k = max(1, -(-(now.date() - day0).days // step))
    if (
        mapper.pick == "first"
        and day0 + timedelta(days=k * step) == now.date()
        and wall <= now.time()
    ):
        k += 1  # a wall time not after after's own has fired already (to_instant is monotonic)
    while True:  # at most a few rounds: only DST moves a later wall time before after
        found = _on_day(day0, k * step, wall, mapper)
        if found is not None and found > after:
            return found
        k += 1


def _calendar_prev(first: datetime, step: int, mapper: _Mapper, until: datetime) -> datetime:
    anchor = to_wall(first, mapper.zone)
    day0, wall = anchor.date(), anchor.time()
    # Start one step beyond until's day: a fall-back can show an instant an earlier wall time.
    k = (to_wall(until, mapper.zone).date() - day0).days // step + 1
    for days in range(k * step, 0, -step):
        try:
            found = _on_day(day0, days, wall, mapper)
        except OverflowError:
            continue
        if found is not None and found <= until:
            return found
    return first


def _on_day(day0: date, days: int, wall: time, mapper: _Mapper) -> datetime | None:
    """The instant of `wall` on day0 + days (None: skipped by the DST policy); past year 9999,
    OverflowError."""
    return mapper(datetime.combine(day0 + timedelta(days=days), wall))


# cron: Debian's two behaviours (see Cron.wall_clock).


def _cron_next(cron: Cron, mapper: _Mapper, after: datetime) -> datetime | None:
    zone = mapper.zone
    start = _floor(after) + _SECOND
    if zone is UTC:
        found = cron.next_match(start.replace(tzinfo=None))
        return None if found is None else found.replace(tzinfo=UTC)
    if cron.wall_clock:
        # From after's own wall time: the second after it may already be past a gap.
        return _wall_next(cron.next_match, mapper, after, mapper.start_wall(after))
    return _instant_next(cron, zone, start)


def _cron_prev(cron: Cron, mapper: _Mapper, until: datetime) -> datetime | None:
    zone = mapper.zone
    end = _floor(until)
    if zone is UTC:
        found = cron.prev_match(end.replace(tzinfo=None))
        return None if found is None else found.replace(tzinfo=UTC)
    if cron.wall_clock:
        return _wall_prev(cron.prev_match, mapper, end)
    return _instant_prev(cron, zone, end)


# A DST policy may skip every match (a rule on the last Sunday of March at 02:30, with
# gap "skip"): the searches give up after this many skipped wall times in a row.
_MAX_SKIPPED = 10_000


def _wall_next(
    next_match: _Match, mapper: _Mapper, after: datetime, wall: datetime
) -> datetime | None:
    """Each matching wall time fires at mapper(); the first of those after `after`.

    The mapping never decreases as the wall time grows, so only when `after` is in the second
    pass of a fall-back do a few wall times need skipping (their instant was the first pass)."""
    for _ in range(_MAX_SKIPPED):
        found = next_match(wall)
        if found is None:
            return None
        instant = mapper(found)
        if instant is not None and instant > after:
            return instant
        wall = found + _SECOND
    return None


def _wall_prev(prev_match: _Match, mapper: _Mapper, until: datetime) -> datetime | None:
    # In the second pass of a fall-back, wall times a little later (by up to the setback, often
    # an hour) already fired in the first pass.
    zone = mapper.zone
    wall = to_wall(until, zone) + fold_shift(until, zone)
    for _ in range(_MAX_SKIPPED):
        found = prev_match(wall)
        if found is None:
            return None
        instant = mapper(found)
        if instant is not None and instant <= until:
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
