"""A timing's sequence without its excluded days (app.timing.exclusions).

With onExcluded "skip" an occurrence on an excluded day does not happen. With
"next-business-day" it happens instead at the same wall time on the next day that is a weekday
(Monday to Friday) and not excluded; one that lands on an instant the job fires at anyway
merges with it. Runs of excluded days are jumped over, not walked occurrence by occurrence.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from app.timing.exclusions import Exclusions
from app.timing.zones import get_zone, to_instant, to_wall

if TYPE_CHECKING:
    from app.timing.spec import Timing

_TICK = timedelta(microseconds=1)
_DAY = timedelta(days=1)
# Occurrences moved from one run of excluded days, at most (a job firing every minute over a
# long holiday would otherwise be walked minute by minute): past this the run is jumped.
MAX_MOVED = 2000
_Search = Callable[[datetime], datetime | None]
_Map = Callable[[datetime], datetime | None]


def next_allowed(
    base_next: _Search, exclusions: Exclusions, mapping: _Map, timing: Timing, after: datetime
) -> datetime | None:
    """The first occurrence after `after` that fires (on its own day, or moved)."""
    zone = get_zone(timing.timezone)
    moving = timing.on_excluded == "next-business-day"
    best = _moved_into(base_next, exclusions, mapping, zone, after) if moving else None
    cursor, moved = after, 0
    while (found := base_next(cursor)) is not None:
        if best is not None and found >= best:
            break  # everything later, moved or not, is later still
        day = to_wall(found, zone).date()
        if exclusions.reason(day) is None:
            return found
        if moving and moved < MAX_MOVED:
            moved += 1
            best = _earliest(best, _move(exclusions, mapping, zone, found, after))
            cursor = found
            continue
        end = exclusions.stretch_end(day)
        if end is None:
            break
        cursor = _day_start(end + _DAY, zone) - _TICK
    return best


def prev_allowed(
    base_prev: _Search,
    allowed_next: _Search,
    exclusions: Exclusions,
    timing: Timing,
    until: datetime,
) -> datetime | None:
    """The last occurrence at or before `until` that fires."""
    zone = get_zone(timing.timezone)
    cursor: datetime | None = until
    own = None
    while cursor is not None and (found := base_prev(cursor)) is not None:
        day = to_wall(found, zone).date()
        if exclusions.reason(day) is None:
            own = found
            break
        first = exclusions.stretch_start(day)
        cursor = None if first is None else _day_start(first, zone) - _TICK
    if timing.on_excluded != "next-business-day":
        return own
    # A moved occurrence may fall after the last own one: walk forward from there.
    last, step = own, (own - _TICK) if own is not None else until - timedelta(days=400)
    for _ in range(MAX_MOVED):
        following = allowed_next(step)
        if following is None or following > until:
            break
        last, step = following, following
    return last


def _moved_into(
    base_next: _Search, exclusions: Exclusions, mapping: _Map, zone: tzinfo, after: datetime
) -> datetime | None:
    """The earliest move after `after` from an excluded occurrence at or before it: those of
    the run of non-business days just before `after`'s day (their next business day is not
    before it)."""
    today = to_wall(after, zone).date()
    yesterday = today - _DAY
    first = (
        exclusions.stretch_start(yesterday, weekends=True) if _off(exclusions, yesterday) else today
    )
    if first is None:
        return None  # the run is longer than the search allows
    best = None
    cursor = _day_start(first, zone) - _TICK
    for _ in range(MAX_MOVED):
        found = base_next(cursor)
        if found is None or found > after:
            break
        if exclusions.reason(to_wall(found, zone).date()) is not None:
            best = _earliest(best, _move(exclusions, mapping, zone, found, after))
        cursor = found
    return best


def _off(exclusions: Exclusions, day: date) -> bool:
    return day.weekday() >= 5 or exclusions.reason(day) is not None


def _move(
    exclusions: Exclusions, mapping: _Map, zone: tzinfo, found: datetime, after: datetime
) -> datetime | None:
    """Where an excluded occurrence fires instead, if that is after `after`."""
    wall = to_wall(found, zone)
    target = exclusions.business_day_after(wall.date())
    if target is None:
        return None
    moved = mapping(datetime.combine(target, wall.time()))
    return moved if moved is not None and moved > after else None


def _earliest(best: datetime | None, found: datetime | None) -> datetime | None:
    if found is None:
        return best
    return found if best is None or found < best else best


def _day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant of `day` on the zone's clock."""
    return to_instant(datetime.combine(day, datetime.min.time()), zone)
