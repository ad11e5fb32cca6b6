"""RFC 5545 recurrence rules (RRULE): checked here part by part, expanded by dateutil's rrule.

A rule is evaluated on naive wall times; its DTSTART is the job's anchor on the wall clock of
the job's zone. The module only says which wall times match (next_match, prev_match, as
app.timing.cron does); app.timing.sequence maps them to instants with the DST rule.

dateutil iterates from DTSTART, so a rule running for years would walk every earlier
occurrence on each call. Instead each search starts from the period (year, month, week, ...)
that holds its wall time, counted in whole INTERVALs from DTSTART, with the defaults the RFC
takes from DTSTART (BYHOUR, BYMONTHDAY, ...) written out: that keeps the same occurrences.
COUNT is turned into the wall time of the last occurrence, found once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil import rrule as du

from app.timing.errors import TimingError

MAX_COUNT = 100_000  # COUNT is walked once to find the last occurrence: bounded
MAX_LENGTH = 500
_FREQS = {
    "YEARLY": du.YEARLY,
    "MONTHLY": du.MONTHLY,
    "WEEKLY": du.WEEKLY,
    "DAILY": du.DAILY,
    "HOURLY": du.HOURLY,
    "MINUTELY": du.MINUTELY,
    "SECONDLY": du.SECONDLY,
}
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# part -> (lowest, highest, may be negative): the RFC's ranges (BYSECOND allows 60, a leap
# second, which a wall clock never shows, so 0-59 here).
_NUMBERS = {
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
_PARTS = ("FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", *_NUMBERS)
_DAY = re.compile(r"([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)", re.ASCII)
_UNTIL = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", re.ASCII)
_SEARCH_YEARS = 400  # the Gregorian calendar repeats every 400 years: none by then, none ever
_MAX_PERIODS_BACK = 1 << 20


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """A checked rule: its text (as given, upper case), its parts, and the library's rule.
    One object per text (_parse is cached), so identity is equality: cheap cache keys."""

    text: str
    parts: tuple[tuple[str, str], ...]
    freq: int
    interval: int
    until: datetime | None  # UTC instant, inclusive
    count: int | None
    wkst: int
    options: tuple[tuple[str, Any], ...]  # the rrule() keywords besides freq/dtstart/interval

    def part(self, name: str) -> str | None:
        return dict(self.parts).get(name)


def parse_rule(text: object) -> Rule:
    """Check a rule's text; raise TimingError("rrule", ...) naming the part at fault."""
    if not isinstance(text, str) or not text.strip():
        raise TimingError("rrule", "rrule must be a rule such as FREQ=WEEKLY;BYDAY=MO,TH")
    if len(text) > MAX_LENGTH:
        raise TimingError("rrule", f"rrule is longer than {MAX_LENGTH} characters")
    return _parse(text.strip().upper())


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Rule:
    body = text.removeprefix("RRULE:")
    parts: dict[str, str] = {}
    for item in body.split(";"):
        name, equals, value = item.partition("=")
        if not equals or not value:
            raise _error(f"{item!r} is not NAME=VALUE")
        if name not in _PARTS:
            raise _error(f"unknown part {name!r} (DTSTART is the job's at)")
        if name in parts:
            raise _error(f"{name} is given twice")
        parts[name] = value
    if "FREQ" not in parts:
        raise _error("FREQ is required")
    if parts["FREQ"] not in _FREQS:
        raise _error(f"FREQ must be one of {', '.join(_FREQS)}, not {parts['FREQ']!r}")
    _check_combinations(parts)
    options: dict[str, Any] = {
        name.lower(): _numbers(name, value) for name, value in parts.items() if name in _NUMBERS
    }
    if "BYDAY" in parts:
        options["byweekday"] = _days(parts["BYDAY"], parts["FREQ"], "BYWEEKNO" in parts)
    wkst = DAYS.index(_day_name(parts.get("WKST", "MO"), "WKST"))
    rule = Rule(
        text=text,
        parts=tuple(parts.items()),
        freq=_FREQS[parts["FREQ"]],
        interval=_positive(parts, "INTERVAL", 1, None),
        until=_until(parts.get("UNTIL")),
        count=_positive(parts, "COUNT", None, MAX_COUNT),
        wkst=wkst,
        options=tuple(sorted(options.items())),
    )
    _check_days_exist(rule)
    return rule


def _error(message: str) -> TimingError:
    return TimingError("rrule", f"rrule: {message}")


def _check_combinations(parts: dict[str, str]) -> None:
    """What RFC 5545 (3.3.10) forbids."""
    freq = parts["FREQ"]
    if "COUNT" in parts and "UNTIL" in parts:
        raise _error("COUNT and UNTIL must not both be given")
    if "BYWEEKNO" in parts and freq != "YEARLY":
        raise _error("BYWEEKNO is only allowed with FREQ=YEARLY")
    if "BYYEARDAY" in parts and freq in ("DAILY", "WEEKLY", "MONTHLY"):
        raise _error(f"BYYEARDAY is not allowed with FREQ={freq}")
    if "BYMONTHDAY" in parts and freq == "WEEKLY":
        raise _error("BYMONTHDAY is not allowed with FREQ=WEEKLY")
    if "BYSETPOS" in parts and not any(p.startswith("BY") and p != "BYSETPOS" for p in parts):
        raise _error("BYSETPOS needs another BYxxx part to pick from")


def _numbers(name: str, value: str) -> tuple[int, ...]:
    low, high, signed = _NUMBERS[name]
    found = []
    for item in value.split(","):
        digits = item[1:] if signed and item[:1] in "+-" else item
        if not (digits.isascii() and digits.isdigit()) or not low <= int(digits) <= high:
            span = f"{low}-{high}" + (f" or -{high} to -{low}" if signed else "")
            raise _error(f"{name} value {item!r} is not a whole number {span}")
        found.append(-int(digits) if item.startswith("-") else int(digits))
    return tuple(found)


def _days(value: str, freq: str, weekno: bool) -> tuple[du.weekday, ...]:
    found = []
    for item in value.split(","):
        match = _DAY.fullmatch(item)
        if match is None:
            raise _error(f"BYDAY value {item!r} is not a day such as MO, 1MO or -1FR")
        sign, number, day = match.groups()
        if number is None:
            if sign:
                raise _error(f"BYDAY value {item!r} has a sign but no number")
            found.append(du.weekday(DAYS.index(day)))
            continue
        if not 1 <= int(number) <= 53:
            raise _error(f"BYDAY value {item!r}: the number must be 1-53")
        if freq not in ("MONTHLY", "YEARLY") or weekno:
            raise _error(
                f"BYDAY value {item!r}: a numbered day is only allowed with FREQ=MONTHLY or "
                "FREQ=YEARLY (without BYWEEKNO)"
            )
        if freq == "MONTHLY" and int(number) > 5:
            raise _error(f"BYDAY value {item!r}: a month has at most 5 of each weekday")
        found.append(du.weekday(DAYS.index(day), -int(number) if sign == "-" else int(number)))
    return tuple(found)


def _day_name(value: str, part: str) -> str:
    if value not in DAYS:
        raise _error(f"{part} must be one of {', '.join(DAYS)}, not {value!r}")
    return value


def _positive(parts: dict[str, str], name: str, default: int | None, cap: int | None) -> Any:
    value = parts.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise _error(f"{name} must be a whole number of at least 1, not {value!r}")
    if cap is not None and int(value) > cap:
        raise _error(f"{name} must be at most {cap}")
    return int(value)


def _until(value: str | None) -> datetime | None:
    if value is None:
        return None
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise _error(
            f"UNTIL {value!r} must be a UTC date and time such as 20271231T235959Z (the RFC asks "
            "for UTC when the start has a time zone)"
        )
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _error(f"UNTIL {value!r} is not a real date and time") from None


def _check_days_exist(rule: Rule) -> None:
    """Refuse a day of the month that no allowed month has (BYMONTH=2;BYMONTHDAY=30)."""
    options = dict(rule.options)
    months, days = options.get("bymonth"), options.get("bymonthday")
    if not months or not days:
        return
    longest = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not any(abs(day) <= longest[month] for day in days for month in months):
        raise _error("it never fires: no month in BYMONTH has a day in BYMONTHDAY")


# Expansion


@dataclass(frozen=True, slots=True, eq=False)
class Expansion:
    """A rule bound to its DTSTART (a naive wall time): the wall times it matches."""

    rule: Rule
    start: datetime
    last: datetime | None  # with COUNT, the last occurrence's wall time
    # An hourly, minutely or secondly rule with no BYxxx part: every `step` from DTSTART
    step: timedelta | None = None

    def next_match(self, wall: datetime) -> datetime | None:
        """The first matching wall time at or after `wall`."""
        if self.last is not None and wall > self.last:
            return None
        if self.step is not None:  # DTSTART + k·step: arithmetic, as the library counts
            k = max(0, -(-(wall - self.start) // self.step))
            found = self.start + self.step * k
            return None if self.last is not None and found > self.last else found
        try:
            found = _library_rule(self.rule, self.start, self._period(wall)).after(wall, inc=True)
        except (OverflowError, ValueError):  # past year 9999
            return None
        if found is None or (self.last is not None and found > self.last):
            return None
        return found

    def prev_match(self, wall: datetime) -> datetime | None:
        """The last matching wall time at or before `wall`."""
        if wall < self.start:
            return None
        if self.last is not None and wall > self.last:
            return self.last
        if self.step is not None:
            return self.start + self.step * ((wall - self.start) // self.step)
        back = 0
        while True:
            period = self._period(wall, back)
            found = _library_rule(self.rule, self.start, period).before(wall, inc=True)
            if found is not None or period == self.start:
                return found
            back = max(1, back * 2)

    def _period(self, wall: datetime, back: int = 0) -> datetime:
        """Where a search for `wall` starts: the start of the period holding it, `back`
        periods (of INTERVAL) earlier; DTSTART itself if that is not after it."""
        if wall <= self.start:
            return self.start
        rule, start = self.rule, self.start
        n = rule.interval
        freq = rule.freq
        if freq == du.YEARLY:
            steps = (wall.year - start.year) // n - back
            found = datetime(start.year + max(0, steps) * n, 1, 1)
        elif freq == du.MONTHLY:
            months = (wall.year - start.year) * 12 + wall.month - start.month
            total = start.month - 1 + max(0, months // n - back) * n
            found = datetime(start.year + total // 12, total % 12 + 1, 1)
        else:
            origin, size = _origin(start, freq, rule.wkst), _size(freq, n)
            steps = max(0, (wall - origin) // size - back)
            found = origin + steps * size
        return found if found > start else start


def _origin(start: datetime, freq: int, wkst: int) -> datetime:
    """The start of DTSTART's own period, for the fixed-length frequencies."""
    if freq == du.WEEKLY:
        day = start.date() - timedelta(days=(start.weekday() - wkst) % 7)
        return datetime.combine(day, datetime.min.time())
    if freq == du.DAILY:
        return datetime.combine(start.date(), datetime.min.time())
    if freq == du.HOURLY:
        return start.replace(minute=0, second=0)
    if freq == du.MINUTELY:
        return start.replace(second=0)
    return start


_UNIT = {
    du.WEEKLY: timedelta(weeks=1),
    du.DAILY: timedelta(days=1),
    du.HOURLY: timedelta(hours=1),
    du.MINUTELY: timedelta(minutes=1),
    du.SECONDLY: timedelta(seconds=1),
}


def _size(freq: int, interval: int) -> timedelta:
    return _UNIT[freq] * interval


def expansion(rule: Rule, start: datetime) -> Expansion:
    """`rule` from DTSTART `start` (naive wall time, whole seconds); raise TimingError if it
    never fires from there."""
    return _expansion(rule, start.replace(microsecond=0))


@functools.lru_cache(maxsize=4096)
def _expansion(rule: Rule, start: datetime) -> Expansion:
    last = None
    if rule.count is not None:
        for last in library_rule(rule, start):  # noqa: B007 - the loop finds the last one
            pass
    else:
        first = _first_within(rule, start)
        # UNTIL is an instant, the wall time is a day at most away from UTC.
        if first is None or (rule.until is not None and first > _naive(rule.until) + _A_DAY):
            raise _error(f"it never fires from {start:%Y-%m-%d %H:%M:%S}")
    if rule.count is not None and last is None:
        raise _error(f"it never fires from {start:%Y-%m-%d %H:%M:%S}")
    plain = rule.freq in (du.HOURLY, du.MINUTELY, du.SECONDLY) and not rule.options
    return Expansion(rule, start, last, _size(rule.freq, rule.interval) if plain else None)


_A_DAY = timedelta(days=1)


def _naive(instant: datetime) -> datetime:
    return instant.replace(tzinfo=None)


def _first_within(rule: Rule, start: datetime) -> datetime | None:
    try:
        limit = start.replace(year=start.year + _SEARCH_YEARS)
    except ValueError:  # Feb 29 or past 9999
        limit = datetime(min(9999, start.year + _SEARCH_YEARS), 12, 31)
    try:
        return library_rule(rule, start).after(start, inc=True) if start < limit else None
    except (OverflowError, ValueError):
        return None


def library_rule(rule: Rule, start: datetime) -> du.rrule:
    """The library's rule as written, from DTSTART `start` (what the tests check against).
    UNTIL is left out: it bounds instants, which app.timing.sequence applies."""
    return du.rrule(
        rule.freq,
        dtstart=start,
        interval=rule.interval,
        wkst=rule.wkst,
        count=rule.count,
        **dict(rule.options),
    )


@functools.lru_cache(maxsize=8192)
def _library_rule(rule: Rule, start: datetime, period: datetime) -> du.rrule:
    """The rule from `period` on, with the defaults that DTSTART gives written out."""
    if period == start:
        return du.rrule(
            rule.freq, dtstart=start, interval=rule.interval, wkst=rule.wkst, **dict(rule.options)
        )
    return du.rrule(
        rule.freq, dtstart=period, interval=rule.interval, wkst=rule.wkst, **_explicit(rule, start)
    )


@functools.lru_cache(maxsize=4096)
def _explicit_items(rule: Rule, start: datetime) -> tuple[tuple[str, Any], ...]:
    """The rule's keywords plus what the RFC (and dateutil) take from DTSTART when absent."""
    options = dict(rule.options)
    freq = rule.freq
    if not any(options.get(k) for k in ("byweekno", "byyearday", "bymonthday", "byweekday")):
        if freq == du.YEARLY:
            options.setdefault("bymonth", (start.month,))
            options["bymonthday"] = (start.day,)
        elif freq == du.MONTHLY:
            options["bymonthday"] = (start.day,)
        elif freq == du.WEEKLY:
            options["byweekday"] = (du.weekday(start.weekday()),)
    for key, coarser, value in (
        ("byhour", du.HOURLY, start.hour),
        ("byminute", du.MINUTELY, start.minute),
        ("bysecond", du.SECONDLY, start.second),
    ):
        if key not in options and freq < coarser:
            options[key] = (value,)
    return tuple(sorted(options.items()))


def _explicit(rule: Rule, start: datetime) -> dict[str, Any]:
    return dict(_explicit_items(rule, start))


def day_name(index: int) -> str:
    return _DAY_NAMES[index]
