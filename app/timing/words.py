"""describe(): a timing in words, for the preview call and the UI."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options

from app.timing.cron import parse_cron
from app.timing.recurrence import parse_rule
from app.timing.rulewords import rule_words
from app.timing.spec import Timing
from app.timing.zones import get_zone, to_wall

_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def describe(timing: Timing) -> str:
    """E.g. "At 09:00, Monday through Friday, Europe/Berlin, until 2031-01-01 00:00:00 UTC"."""
    parts = [_rule(timing)]
    if timing.start_at is not None:
        parts.append(f"from {_utc_text(timing.start_at)}")
    if timing.end_at is not None:
        parts.append(f"until {_utc_text(timing.end_at)}")
    if timing.max_runs is not None:
        parts.append("once at most" if timing.max_runs == 1 else f"{timing.max_runs} times at most")
    parts += _calendar(timing)
    return ", ".join(parts)


def _calendar(timing: Timing) -> list[str]:
    """The excluded days and the DST policy, in words."""
    parts = []
    if timing.exclude is not None:
        exclude = timing.exclude
        days = []
        if exclude.holidays:
            days.append(f"public holidays in {exclude.holidays}")
        if exclude.dates:
            days.append(_count(len(exclude.dates), "listed date"))
        if exclude.ranges:
            days.append(_count(len(exclude.ranges), "date range"))
        moved = "; those move to the next business day" if timing.on_excluded != "skip" else ""
        parts.append(f"except on {' and '.join(days)}{moved}")
    if (timing.dst_gap, timing.dst_repeat) != ("shift", "first"):
        gap = "skipped" if timing.dst_gap == "skip" else "moved past the gap"
        repeat = {"first": "its first pass", "last": "its last pass", "both": "both passes"}
        parts.append(
            f"a wall time the clocks skip is {gap}, one they repeat fires at "
            f"{repeat[timing.dst_repeat]}"
        )
    return parts


def _count(n: int, noun: str) -> str:
    return f"1 {noun}" if n == 1 else f"{n} {noun}s"


def _rule(timing: Timing) -> str:
    kind, zone, first = timing.recurring, timing.timezone, timing.first_at
    if kind == "cron":
        return f"{_cron_words(timing.cron or '')}, {zone}"
    if kind == "interval":
        return _every(timing.interval or 0)
    assert first is not None, "first_at is required for this kind of timing"
    wall = to_wall(first, get_zone(zone))
    if kind == "rrule":
        return f"{_rrule_words(timing.rrule or '', wall)}, {zone}"
    if kind == "daily":
        return f"Every day at {_clock(wall)}, {zone}"
    if kind == "weekly":
        return f"Every {wall:%A} at {_clock(wall)}, {zone}"
    text = f"Once, at {_utc_text(first)}"
    if zone != "UTC":
        day = "" if wall.date() == first.date() else f"{wall:%Y-%m-%d} "
        text += f" ({day}{_clock(wall)} {zone})"
    return text


@functools.lru_cache(maxsize=1024)
def _rrule_words(text: str, start: datetime) -> str:
    return rule_words(parse_rule(text), start)


def _every(seconds: int) -> str:
    for size, unit in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return f"Every {seconds} seconds"  # unreachable: every count is a whole number of seconds


@functools.lru_cache(maxsize=1024)
def _cron_words(text: str) -> str:
    cron = parse_cron(text)
    options = Options(CasingTypeEnum.Sentence, locale_code="en_US", use_24hour_time_format=True)
    try:
        words = ExpressionDescriptor(" ".join(cron.fields), options).get_description()
    except Exception:  # a describer's hiccup must not break a valid job: fall back to the text
        return f"Cron {cron.text}"
    day, weekday = cron.fields[-3], cron.fields[-1]
    if not cron.days_or and day != "*" and weekday != "*":
        # cron-descriptor reads "*/2 … MON" as either-day; cron needs both when one starts with *
        words = words.replace(", or on ", ", only on ")
    return words


def _clock(wall: datetime) -> str:
    return f"{wall:%H:%M:%S}" if wall.second else f"{wall:%H:%M}"


def _utc_text(instant: datetime) -> str:
    return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
