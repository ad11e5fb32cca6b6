"""An RFC 5545 rule in words: "Every 2 weeks on Monday and Thursday at 09:00"."""

from __future__ import annotations

from datetime import datetime

from app.timing.cron import MONTHS
from app.timing.recurrence import DAYS, Rule, day_name

_UNITS = {"YEARLY": "year", "MONTHLY": "month", "WEEKLY": "week", "DAILY": "day",
          "HOURLY": "hour", "MINUTELY": "minute", "SECONDLY": "second"}  # fmt: skip


def rule_words(rule: Rule, start: datetime) -> str:
    """The rule from DTSTART `start` (a wall time), in words."""
    parts = dict(rule.parts)
    unit = _UNITS[parts["FREQ"]]
    text = f"Every {unit}" if rule.interval == 1 else f"Every {rule.interval} {unit}s"
    if "BYDAY" in parts:
        text += " on " + _join([_day(item) for item in parts["BYDAY"].split(",")])
    if "BYMONTHDAY" in parts:
        days = [_ordinal(int(d)) for d in parts["BYMONTHDAY"].split(",")]
        text += f" on the {_join(days)} day of the month"
    if "BYYEARDAY" in parts:
        text += f" on the {_join([_ordinal(int(d)) for d in parts['BYYEARDAY'].split(',')])} day"
        text += " of the year"
    if "BYWEEKNO" in parts:
        text += f" in week {_join(parts['BYWEEKNO'].split(','))}"
    if "BYMONTH" in parts:
        text += " in " + _join([MONTHS[int(m) - 1] for m in parts["BYMONTH"].split(",")])
    if "BYSETPOS" in parts:
        picked = _join([_ordinal(int(p)) for p in parts["BYSETPOS"].split(",")])
        text += f" (the {picked} of those each {unit})"
    text += _clock(parts, start)
    if rule.count is not None:
        text += ", once" if rule.count == 1 else f", {rule.count} times"
    if rule.until is not None:
        text += f", until {rule.until:%Y-%m-%d %H:%M:%S} UTC"
    return f"{text}, from {start:%Y-%m-%d %H:%M:%S}"


def _clock(parts: dict[str, str], start: datetime) -> str:
    freq = parts["FREQ"]
    if freq in ("MINUTELY", "SECONDLY"):
        during = parts.get("BYHOUR")
        return f" during hour {_join(during.split(','))}" if during else ""
    hours = _values(parts, "BYHOUR", start.hour) if freq != "HOURLY" else None
    minutes = _values(parts, "BYMINUTE", start.minute)
    seconds = _values(parts, "BYSECOND", start.second)
    if hours is None:
        return f" at minute {_join([str(m) for m in minutes])}"
    if len(hours) * len(minutes) * len(seconds) > 6:
        return f" at hours {_join(map(str, hours))}, minutes {_join(map(str, minutes))}"
    times = [
        f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")
        for h in hours
        for m in minutes
        for s in seconds
    ]
    return f" at {_join(times)}"


def _values(parts: dict[str, str], name: str, default: int) -> list[int]:
    text = parts.get(name)
    return sorted(int(v) for v in text.split(",")) if text else [default]


def _day(item: str) -> str:
    name = day_name(DAYS.index(item[-2:]))
    number = item[:-2]
    if not number or number == "+":
        return name
    return f"the {_ordinal(int(number))} {name}"


def _ordinal(n: int) -> str:
    if n == -1:
        return "last"
    if n < 0:
        return f"{_ordinal(-n)} to last"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(items: object) -> str:
    texts = [str(item) for item in items]  # type: ignore[attr-defined]
    return texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} and {texts[-1]}"
