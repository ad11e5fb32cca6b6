"""The preview's notes: for each coming occurrence, what moved, doubled, skipped or spread it.

Worked out after the fact, from two sequences: the job's own, and the same timing without its
excluded days and with DST gaps shifted (the "plain" one). An occurrence of the plain sequence
that the job's lacks was skipped (an excluded day, or a gap the policy skips); one of the job's
that the plain one lacks was moved there from an excluded day.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

from app.timing.cron import parse_cron
from app.timing.recurrence import expansion, parse_rule
from app.timing.sequence import occurrences
from app.timing.spec import Timing
from app.timing.zones import first_transition, get_zone, repeated, to_wall

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Note:
    kind: str  # dst-shift, dst-skip, dst-repeat, excluded, moved, window
    words: str

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "reason": self.words}


@dataclass(frozen=True, slots=True)
class Occurrence:
    at: datetime  # nominal instant, UTC
    skipped: bool
    notes: tuple[Note, ...]


def explained(
    timing: Timing,
    after: datetime,
    count: int,
    *,
    window: int | None = None,
    offset: timedelta | None = None,
) -> list[Occurrence]:
    """Up to `count` occurrences after `after`, those that fire and those skipped, with notes.
    `window` (seconds) and `offset` (the job's point in it, when the job is known) note the
    flexible window."""
    own = occurrences(timing, after, count)
    plain_timing = replace(timing, exclude=None, dst_gap="shift")
    plain = occurrences(plain_timing, after, count) if plain_timing != timing else own
    fired = set(own)
    found: list[Occurrence] = []
    for instant in sorted(fired | set(plain))[:count]:
        notes = list(_dst_notes(timing, instant))
        skipped = instant not in fired
        if skipped:
            notes.append(_why_skipped(timing, instant, notes))
        elif instant not in plain and timing.exclude is not None:
            notes.append(Note("moved", "moved here from an excluded day (next business day)"))
        if not skipped and window:
            notes.append(_window_note(window, offset))
        found.append(Occurrence(instant, skipped, tuple(n for n in notes if n.kind)))
    return found


def _why_skipped(timing: Timing, instant: datetime, notes: list[Note]) -> Note:
    zone = get_zone(timing.timezone)
    day = to_wall(instant, zone).date()
    reason = None if timing.exclude is None else timing.exclude.reason(day)
    if reason is not None:
        moved = " (moved to the next business day)" if timing.on_excluded != "skip" else ""
        return Note("excluded", f"skipped: {day.isoformat()} is {_article(reason)}{moved}")
    if any(n.kind == "dst-shift" for n in notes):
        notes[:] = [n for n in notes if n.kind != "dst-shift"]
        return Note("dst-skip", f"skipped: {_gap_words(instant, zone)} (dst.gap is skip)")
    return Note("", "")


def _dst_notes(timing: Timing, instant: datetime) -> list[Note]:
    if not timing.wall_clock:
        return []
    zone = get_zone(timing.timezone)
    notes = []
    if first_transition(zone, instant - _SECOND, instant) == instant and not _matches(
        timing, to_wall(instant, zone)
    ):
        notes.append(Note("dst-shift", f"{_gap_words(instant, zone)}: fires just after the gap"))
    passes = repeated(instant, zone)
    if passes:
        which = "first" if passes == 1 else "second"
        wall = to_wall(instant, zone)
        notes.append(
            Note(
                "dst-repeat",
                f"{wall:%H:%M} happens twice on {wall:%Y-%m-%d} (the clocks go back): "
                f"this is the {which} time",
            )
        )
    return notes


def _gap_words(instant: datetime, zone: tzinfo) -> str:
    before = to_wall(instant - _SECOND, zone) + _SECOND
    after = to_wall(instant, zone)
    return (
        f"the clocks go forward from {before:%H:%M} to {after:%H:%M} on {after:%Y-%m-%d}, "
        "so the wall time does not happen"
    )


def _matches(timing: Timing, wall: datetime) -> bool:
    """Whether the rule itself names this wall time (else DST moved an occurrence to it)."""
    kind = timing.recurring
    if kind == "cron":
        return parse_cron(timing.cron or "").next_match(wall) == wall
    assert timing.first_at is not None
    anchor = to_wall(timing.first_at, get_zone(timing.timezone))
    if kind == "rrule":
        return expansion(parse_rule(timing.rrule or ""), anchor).next_match(wall) == wall
    return anchor.time() == wall.time()


def _window_note(window: int, offset: timedelta | None) -> Note:
    if offset is None:
        return Note(
            "window", f"fires within {window} s after this time, at a point taken from the job"
        )
    return Note(
        "window", f"fires {offset.total_seconds():.3f} s after this time (window {window} s)"
    )


def _article(reason: str) -> str:
    return reason if reason.startswith(("an ", "excluded")) else f"{reason} (a holiday)"
