"""Cron expressions: parsing with clear errors, and matching on wall-clock time (naive datetimes).

Five fields (minute hour day-of-month month day-of-week) or six with seconds first; `*`, lists,
ranges, steps, month and weekday names, the @ shortcuts. Day-of-week 0 and 7 are both Sunday.
As in Vixie/Debian cron (crontab(5)): when both day fields are restricted, that is neither
starts with `*`, a day matches if EITHER matches; otherwise both must.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from app.timing.errors import TimingError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_FIRST_YEAR = 1
_LAST_YEAR = 9999


@dataclass(frozen=True, slots=True)
class _Spec:
    label: str  # how messages name the field
    noun: str  # how messages name one value
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i

    def range_text(self) -> str:
        names = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{names}"


_SECOND = _Spec("second", "second", 0, 59)
_MINUTE = _Spec("minute", "minute", 0, 59)
_HOUR = _Spec("hour", "hour", 0, 23)
_DAY = _Spec("day-of-month", "day of the month", 1, 31)
_MONTH = _Spec("month", "month", 1, 12, tuple(m[:3].upper() for m in MONTHS))
_WEEKDAY = _Spec(
    "day-of-week", "day of the week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
)


@dataclass(frozen=True, slots=True)
class Steps:
    """The allowed values of a time field, with tables to find the next/previous one in O(1)."""

    allowed: frozenset[int]
    up: tuple[int, ...]  # up[x]: the smallest allowed value >= x, else -1 (one slot past the top)
    down: tuple[int, ...]  # down[x]: the largest allowed value <= x, else -1

    @classmethod
    def of(cls, allowed: frozenset[int], high: int) -> Steps:
        up, down = [-1] * (high + 2), [-1] * (high + 1)
        found = -1
        for x in range(high, -1, -1):
            found = x if x in allowed else found
            up[x] = found
        found = -1
        for x in range(high + 1):
            found = x if x in allowed else found
            down[x] = found
        return cls(allowed, tuple(up), tuple(down))


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed expression: the allowed values of each field, and how to find the next match."""

    text: str  # as given, whitespace collapsed
    fields: tuple[str, ...]  # the 5 or 6 fields, shortcuts expanded
    seconds: Steps
    minutes: Steps
    hours: Steps
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_or: bool  # both day fields restricted: either may match
    every_day: bool
    # Debian's "fixed-time job": minute and hour don't start with `*`. Such a job follows the wall
    # clock through DST (a skipped time fires after the gap, a repeated one once); any other
    # job fires at each real instant whose local time matches.
    wall_clock: bool

    def next_match(self, start: datetime) -> datetime | None:
        """The first wall time at or after `start` (whole seconds) that matches."""
        y, mo, d = start.year, start.month, start.day
        h, mi, s = start.hour, start.minute, start.second
        while y <= _LAST_YEAR:
            if mo > 12:
                y, mo = y + 1, 1
                continue
            day = self._first_day(y, mo, d) if mo in self.months else 0
            if day == 0:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if day != d:
                d, h, mi, s = day, 0, 0, 0
            hour = self.hours.up[h]
            if hour < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if hour != h:
                h, mi, s = hour, 0, 0
            minute = self.minutes.up[mi]
            if minute < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if minute != mi:
                mi, s = minute, 0
            second = self.seconds.up[s]
            if second < 0:
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, second)
        return None

    def prev_match(self, end: datetime) -> datetime | None:
        """The last wall time at or before `end` (whole seconds) that matches."""
        y, mo, d = end.year, end.month, end.day
        h, mi, s = end.hour, end.minute, end.second
        while y >= _FIRST_YEAR:
            if mo < 1:
                y, mo = y - 1, 12
                continue
            day = self._last_day(y, mo, d) if mo in self.months else 0
            if day == 0:
                mo, d, h, mi, s = mo - 1, 31, 23, 59, 59
                continue
            if day != d:
                d, h, mi, s = day, 23, 59, 59
            hour = self.hours.down[h] if h >= 0 else -1
            if hour < 0:
                d, h, mi, s = d - 1, 23, 59, 59
                continue
            if hour != h:
                h, mi, s = hour, 59, 59
            minute = self.minutes.down[mi] if mi >= 0 else -1
            if minute < 0:
                h, mi, s = h - 1, 59, 59
                continue
            if minute != mi:
                mi, s = minute, 59
            second = self.seconds.down[s] if s >= 0 else -1
            if second < 0:
                mi, s = mi - 1, 59
                continue
            return datetime(y, mo, d, h, mi, second)
        return None

    def _day_ok(self, day: int, weekday: int) -> bool:
        if self.days_or:
            return day in self.days or weekday in self.weekdays
        return day in self.days and weekday in self.weekdays

    def _first_day(self, year: int, month: int, day: int) -> int:
        """The first matching day >= `day` in the month, else 0."""
        last = _days_in(year, month)
        if day > last:
            return 0
        if self.every_day:
            return day
        weekday = _weekday(year, month, day)
        for candidate in range(day, last + 1):
            if self._day_ok(candidate, weekday):
                return candidate
            weekday = (weekday + 1) % 7
        return 0

    def _last_day(self, year: int, month: int, day: int) -> int:
        """The last matching day <= `day` in the month, else 0."""
        day = min(day, _days_in(year, month))
        if day < 1 or self.every_day:
            return day if day >= 1 else 0
        weekday = _weekday(year, month, day)
        for candidate in range(day, 0, -1):
            if self._day_ok(candidate, weekday):
                return candidate
            weekday = (weekday - 1) % 7
        return 0


def _days_in(year: int, month: int) -> int:
    if month == 2 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return 28
    return _MAX_DAYS[month]


def _weekday(year: int, month: int, day: int) -> int:
    """Cron's weekday number: 0 = Sunday."""
    return (date(year, month, day).weekday() + 1) % 7


def parse_cron(text: str) -> Cron:
    """Parse and check a cron expression; raise TimingError("cron", …) saying what is wrong."""
    if not isinstance(text, str):
        raise TimingError("cron", "cron must be a string such as '0 9 * * MON-FRI'")
    return _parse(" ".join(text.split()))


@functools.lru_cache(maxsize=4096)
def _parse(expr: str) -> Cron:
    if not expr:
        raise TimingError("cron", "the cron expression is empty")
    if expr.startswith("@"):
        expr = expr.lower()
        if expr not in ALIASES:
            shortcuts = ", ".join(ALIASES)
            raise TimingError("cron", f"unknown cron shortcut {expr!r} (use one of {shortcuts})")
    fields = tuple(ALIASES.get(expr, expr).split())
    if len(fields) not in (5, 6):
        raise TimingError(
            "cron",
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"or 6 with seconds first; this one has {len(fields)}",
        )
    second, minute, hour, day, month, weekday = fields if len(fields) == 6 else ("0", *fields)
    days = _parse_field(day, _DAY)
    months = _parse_field(month, _MONTH)
    weekdays = frozenset(v % 7 for v in _parse_field(weekday, _WEEKDAY))
    days_or = not day.startswith("*") and not weekday.startswith("*")
    if not days_or:
        _check_days_exist(days, months)
    return Cron(
        text=expr,
        fields=fields,
        seconds=Steps.of(_parse_field(second, _SECOND), 59),
        minutes=Steps.of(_parse_field(minute, _MINUTE), 59),
        hours=Steps.of(_parse_field(hour, _HOUR), 23),
        days=days,
        months=months,
        weekdays=weekdays,
        days_or=days_or,
        every_day=not days_or and len(days) == 31 and len(weekdays) == 7,
        wall_clock=not minute.startswith("*") and not hour.startswith("*"),
    )


def _parse_field(text: str, spec: _Spec) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise TimingError("cron", f"the {spec.label} field has an empty list item")
        values.update(_parse_item(item, spec))
    return frozenset(values)


def _parse_item(item: str, spec: _Spec) -> range:
    """One list item: `*`, `N` or `A-B`, then maybe `/STEP` (`N/STEP` runs to the top)."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) < 1:
            raise TimingError(
                "cron",
                f"the step {step_text!r} in the {spec.label} field is not a whole number >= 1",
            )
        step = int(step_text)
    if base == "*":
        return range(spec.low, spec.high + 1, step)
    if "-" in base:
        first_text, _, last_text = base.partition("-")
        first, last = _value(first_text, spec), _value(last_text, spec)
        if spec is _WEEKDAY and last == 0 < first:  # MON-SUN: Sunday closes the week
            last = 7
        if last < first:
            raise TimingError(
                "cron", f"the range {base!r} in the {spec.label} field goes backwards"
            )
        return range(first, last + 1, step)
    first = _value(base, spec)
    return range(first, (spec.high if slash else first) + 1, step)


def _value(token: str, spec: _Spec) -> int:
    if token.upper() in spec.names:
        return spec.low + spec.names.index(token.upper())
    if token.isascii() and token.isdigit() and spec.low <= int(token) <= spec.high:
        return int(token)
    raise TimingError("cron", f"{token!r} is not a valid {spec.noun} ({spec.range_text()})")


def _check_days_exist(days: frozenset[int], months: frozenset[int]) -> None:
    """Refuse a day-of-month that no allowed month has (both day fields must match here)."""
    if any(day <= _MAX_DAYS[month] for day in days for month in months):
        return
    listed = sorted(days)
    day_text = f"day {listed[0]}" if len(listed) == 1 else f"days {_join(listed, 'and')}"
    month_text = _join([MONTHS[m - 1] for m in sorted(months)], "or")
    verb = "does" if len(listed) == 1 else "do"
    raise TimingError(
        "cron", f"this cron expression never fires: {day_text} of {month_text} {verb} not exist"
    )


def _join(items: list[int] | list[str], word: str) -> str:
    texts = [str(item) for item in items]
    return texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} {word} {texts[-1]}"
