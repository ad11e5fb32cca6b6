"""Days a recurring job does not fire on: listed dates, date ranges and public holidays.

Every day here is a date on the wall clock of the job's zone. Holiday calendars come from the
`holidays` package, by country and optional subdivision ("DE-BY": Bavaria), built once per
calendar and year.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import holidays as holiday_data

from app.timing.errors import TimingError

MAX_DATES = 1000
MAX_RANGES = 100
# A stretch of excluded (or, for next-business-day, weekend) days longer than this is not
# walked: the search gives up there rather than scan years of days.
MAX_STRETCH_DAYS = 3660
ON_EXCLUDED = ("skip", "next-business-day")
_CODE = re.compile(r"([A-Z]{2})(?:-([A-Z0-9]{1,10}))?", re.ASCII)
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Exclusions:
    """The days excluded, and what the API wrote (kept, to answer with)."""

    dates: frozenset[date]
    ranges: tuple[tuple[date, date], ...]  # each inclusive at both ends
    holidays: str | None  # "DE-BY", "US": country, optional subdivision

    def reason(self, day: date) -> str | None:
        """Why `day` is excluded ("Christmas Day", "excluded date", ...), None if it is not."""
        if day in self.dates:
            return "an excluded date"
        for first, last in self.ranges:
            if first <= day <= last:
                return f"excluded range {first.isoformat()} to {last.isoformat()}"
        if self.holidays is not None:
            return _holidays(self.holidays, day.year).get(day)
        return None

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.dates:
            found["dates"] = sorted(d.isoformat() for d in self.dates)
        if self.ranges:
            found["ranges"] = [[a.isoformat(), b.isoformat()] for a, b in self.ranges]
        if self.holidays is not None:
            found["holidays"] = self.holidays
        return found

    def stretch_end(self, day: date, *, weekends: bool = False) -> date | None:
        """The last day of the run of excluded days (with `weekends`, also Saturdays and
        Sundays) that starts at `day`; None if it runs past MAX_STRETCH_DAYS."""
        last = day
        for _ in range(MAX_STRETCH_DAYS):
            following = last + _DAY
            if self.reason(following) is None and not (weekends and following.weekday() >= 5):
                return last
            last = following
        return None

    def stretch_start(self, day: date, *, weekends: bool = False) -> date | None:
        """The first day of the run of excluded days that ends at `day` (see stretch_end)."""
        first = day
        for _ in range(MAX_STRETCH_DAYS):
            before = first - _DAY
            if self.reason(before) is None and not (weekends and before.weekday() >= 5):
                return first
            first = before
        return None

    def business_day_after(self, day: date) -> date | None:
        """The first day after `day` that is a weekday and not excluded."""
        end = self.stretch_end(day, weekends=True)
        return None if end is None else end + _DAY


def make_exclusions(value: object) -> Exclusions | None:
    """Check the API's `exclude` object; raise TimingError naming `exclude.<part>`."""
    if value is None:
        return None
    if isinstance(value, Exclusions):
        return value
    if not isinstance(value, dict):
        raise TimingError("exclude", "exclude must be an object with dates, ranges or holidays")
    unknown = set(value) - {"dates", "ranges", "holidays"}
    if unknown:
        raise TimingError("exclude", f"exclude has no part {sorted(unknown)[0]!r}")
    dates = _dates(value.get("dates") or [])
    ranges = _ranges(value.get("ranges") or [])
    code = value.get("holidays")
    if code is not None:
        code = _holiday_code(code)
    if not dates and not ranges and code is None:
        raise TimingError("exclude", "exclude needs dates, ranges or holidays")
    return Exclusions(frozenset(dates), tuple(ranges), code)


def _dates(items: object) -> list[date]:
    if not isinstance(items, list) or len(items) > MAX_DATES:
        raise TimingError("exclude.dates", f"exclude.dates is a list of at most {MAX_DATES} dates")
    return [_date(item, "exclude.dates", f"date {i + 1}: ") for i, item in enumerate(items)]


def _ranges(items: object) -> list[tuple[date, date]]:
    if not isinstance(items, list) or len(items) > MAX_RANGES:
        raise TimingError(
            "exclude.ranges", f"exclude.ranges is a list of at most {MAX_RANGES} [from, to] pairs"
        )
    found = []
    for i, item in enumerate(items):
        field, which = "exclude.ranges", f"range {i + 1}: "
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise TimingError(field, f"{which}a range is [from, to], two dates")
        first, last = _date(item[0], field, which), _date(item[1], field, which)
        if last < first:
            raise TimingError(field, f"{which}it ends ({last}) before it starts ({first})")
        found.append((first, last))
    return found


def _date(text: object, field: str, which: str) -> date:
    if isinstance(text, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text, re.ASCII):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise TimingError(field, f"{which}{text!r} is not a date such as 2026-12-24")


def _holiday_code(code: object) -> str:
    field = "exclude.holidays"
    match = _CODE.fullmatch(code) if isinstance(code, str) else None
    if match is None:
        raise TimingError(field, "holidays is a country code, maybe with a region: US, DE-BY")
    country, region = match.groups()
    supported = holiday_data.list_supported_countries()
    if country not in supported:
        raise TimingError(field, f"no holiday calendar for the country {country!r}")
    if region is not None and region not in supported[country]:
        listed = ", ".join(supported[country][:12]) or "none"
        raise TimingError(field, f"{country} has no region {region!r} (some: {listed})")
    return str(code)


@functools.lru_cache(maxsize=512)
def _holidays(code: str, year: int) -> dict[date, str]:
    country, _, region = code.partition("-")
    try:
        found = holiday_data.country_holidays(country, subdiv=region or None, years=year)
    except (NotImplementedError, KeyError, ValueError):  # a year outside the calendar's rules
        return {}
    return {day: "; ".join(sorted(set(name.split("; ")))) for day, name in found.items()}


def exclusions_of(stored: object) -> Exclusions | None:
    """A stored job's exclusions (checked when saved)."""
    return make_exclusions(stored) if stored else None
