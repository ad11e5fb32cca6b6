"""A job's timing fields, checked: `Timing` and `make_timing`."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as FixedOffset
from typing import Protocol, TypeGuard

from app.timing.cron import parse_cron
from app.timing.errors import TimingError
from app.timing.exclusions import ON_EXCLUDED, Exclusions, exclusions_of, make_exclusions
from app.timing.recurrence import expansion, parse_rule
from app.timing.zones import canonical_timezone, get_zone, to_instant, to_wall

RECURRING = ("none", "daily", "weekly", "interval", "cron", "rrule")
DST_GAP = ("shift", "skip")
DST_REPEAT = ("first", "last", "both")
MAX_INTERVAL = 315_576_000  # ten years of 365.25 days, in seconds
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_MINUTE = int(_LATEST.timestamp()) // 60
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


@dataclass(frozen=True, slots=True)
class Timing:
    """When a job fires. Build it with make_timing(); every datetime is aware and in UTC."""

    recurring: str  # one of RECURRING
    first_at: datetime | None  # the anchor; for cron only an optional lower bound
    timezone: str = "UTC"  # canonical IANA name
    cron: str | None = None
    interval: int | None = None  # seconds
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    rrule: str | None = None  # RFC 5545 RRULE; DTSTART is first_at on the zone's wall clock
    exclude: Exclusions | None = None
    on_excluded: str = "skip"  # or "next-business-day"
    dst_gap: str = "shift"  # a wall time the clocks skip: "shift" past the gap, or "skip" it
    dst_repeat: str = "first"  # a wall time that happens twice: "first", "last" or "both"

    @property
    def wall_clock(self) -> bool:
        """Whether it follows the zone's wall clock (so a DST policy applies to it)."""
        if self.recurring in ("daily", "weekly", "rrule"):
            return True
        return self.recurring == "cron" and parse_cron(self.cron or "").wall_clock


class TimingSource(Protocol):
    """Anything that holds a job's timing fields under Timing's names (a Job, a row)."""

    recurring: str
    first_at: datetime | None
    timezone: str
    cron: str | None
    interval: int | None
    start_at: datetime | None
    end_at: datetime | None
    max_runs: int | None
    rrule: str | None
    exclude: dict[str, object] | None
    on_excluded: str | None
    dst_gap: str | None
    dst_repeat: str | None


def timing_of(source: TimingSource) -> Timing:
    """The Timing of a stored job, which was validated when it was saved."""
    return Timing(
        recurring=source.recurring,
        first_at=source.first_at,
        timezone=source.timezone,
        cron=source.cron,
        interval=source.interval,
        start_at=source.start_at,
        end_at=source.end_at,
        max_runs=source.max_runs,
        rrule=source.rrule,
        exclude=exclusions_of(source.exclude),
        on_excluded=source.on_excluded or "skip",
        dst_gap=source.dst_gap or "shift",
        dst_repeat=source.dst_repeat or "first",
    )


def make_timing(
    *,
    recurring: str,
    minute: int | None = None,
    at: datetime | str | None = None,
    timezone: str | None = "UTC",
    cron: str | None = None,
    interval: int | None = None,
    start_at: datetime | str | None = None,
    end_at: datetime | str | None = None,
    max_runs: int | None = None,
    rrule: str | None = None,
    exclude: object = None,
    on_excluded: str | None = None,
    dst: dict[str, str] | None = None,
    created: datetime | None = None,
) -> Timing:
    """Check the API's timing fields and build a Timing; raise TimingError naming the bad field.

    `at` is an aware datetime or an RFC 3339 string; without an offset it is a wall time in
    `timezone` (a wall time in a daylight-saving gap or overlap read by the DST rule:
    zones.to_instant). startAt/endAt always carry an offset. A fraction of a second in `at` is
    dropped (runs fire on whole seconds; JavaScript's toISOString always sends milliseconds).
    """
    if recurring not in RECURRING:
        raise TimingError(
            "recurring", f"recurring must be one of {', '.join(RECURRING)}, not {recurring!r}"
        )
    zone = "UTC" if timezone is None else canonical_timezone(timezone)
    first_at = _first_at(recurring, minute, _at_instant(at, zone, recurring), created)
    cron_text = _cron(recurring, cron)
    seconds = _interval(recurring, interval)
    start = None if start_at is None else parse_instant(start_at, "startAt")
    end = None if end_at is None else parse_instant(end_at, "endAt")
    if start is not None and end is not None and end <= start:
        raise TimingError("endAt", "endAt must be after startAt")
    if max_runs is not None and (not _is_int(max_runs) or max_runs < 1):
        raise TimingError("maxRuns", "maxRuns must be a whole number of at least 1")
    timing = Timing(recurring, first_at, zone, cron_text, seconds, start, end, max_runs)
    return _calendar_fields(timing, rrule, exclude, on_excluded, dst)


def _calendar_fields(
    timing: Timing, rrule: str | None, exclude: object, on_excluded: str | None, dst: object
) -> Timing:
    """The rrule, exclusions and DST policy added to a checked Timing."""
    kind = timing.recurring
    if kind != "rrule" and rrule is not None:
        raise TimingError("rrule", "rrule is only used when recurring is 'rrule'")
    if kind == "rrule":
        if rrule is None:
            raise TimingError("rrule", "rrule is required when recurring is 'rrule'")
        assert timing.first_at is not None
        rule = parse_rule(rrule)
        expansion(rule, to_wall(timing.first_at, get_zone(timing.timezone)))
        rrule = rule.text
    exclusions = make_exclusions(exclude)
    if exclusions is not None and kind == "none":
        raise TimingError("exclude", "exclude is only used by recurring jobs")
    if on_excluded is not None and on_excluded not in ON_EXCLUDED:
        raise TimingError("onExcluded", f"onExcluded must be one of {', '.join(ON_EXCLUDED)}")
    gap, repeat = _dst(dst)
    if (gap, repeat) != ("shift", "first") and not timing.wall_clock:
        raise TimingError(
            "dst",
            "dst applies to jobs on the wall clock (daily, weekly, rrule, cron with a fixed "
            "minute and hour); this one fires at real instants",
        )
    return replace(
        timing,
        rrule=rrule,
        exclude=exclusions,
        on_excluded=on_excluded or "skip",
        dst_gap=gap,
        dst_repeat=repeat,
    )


def _dst(dst: object) -> tuple[str, str]:
    if dst is None:
        return "shift", "first"
    if not isinstance(dst, dict) or set(dst) - {"gap", "repeat"}:
        raise TimingError("dst", 'dst is {"gap": "shift" | "skip", "repeat": "first" | ...}')
    gap, repeat = dst.get("gap") or "shift", dst.get("repeat") or "first"
    if gap not in DST_GAP:
        raise TimingError("dst.gap", f"dst.gap must be one of {', '.join(DST_GAP)}")
    if repeat not in DST_REPEAT:
        raise TimingError("dst.repeat", f"dst.repeat must be one of {', '.join(DST_REPEAT)}")
    return gap, repeat


def parse_instant(value: object, field: str) -> datetime:
    """An aware datetime or an RFC 3339 string with offset, as an aware UTC datetime."""
    if isinstance(value, str):
        value = _parse_rfc3339(value, field)
    if not isinstance(value, datetime):
        raise TimingError(
            field, f"{field} must be an RFC 3339 instant such as 2030-01-01T12:00:00Z"
        )
    if value.utcoffset() is None:
        raise TimingError(field, f"{field} has no UTC offset: add Z or +hh:mm")
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        instant = None
    if instant is None or not _EARLIEST <= instant <= _LATEST:
        raise TimingError(field, f"{field} must fall between 1970-01-01 and 9999-12-31 (UTC)")
    return instant


def _at_instant(at: object, zone: str, recurring: str) -> object:
    """`at` as given, or, for a date and time without an offset, the instant that wall time
    names in the job's zone. A daily or weekly job repeats its anchor's wall time, so that
    one must exist: in a spring-forward gap it is refused rather than moved."""
    if not isinstance(at, str):
        return at
    written = _parse_rfc3339(at, "at", wall_time=True)
    if written.tzinfo is not None:
        return written
    tz = get_zone(zone)
    try:
        instant = to_instant(written, tz)
    except OverflowError:
        raise TimingError("at", "at must fall between 1970-01-01 and 9999-12-31 (UTC)") from None
    if recurring in ("daily", "weekly") and to_wall(instant, tz) != written:
        raise TimingError(
            "at",
            f"{at} does not happen in {zone} (the clocks skip it): anchor a {recurring} job "
            "on a day when it does",
        )
    return instant


def _parse_rfc3339(text: str, field: str, *, wall_time: bool = False) -> datetime:
    """An aware datetime; with `wall_time`, a naive one where the text has no offset."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise TimingError(
            field, f"{text!r} is not an RFC 3339 instant such as 2030-01-01T12:00:00Z"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None and not wall_time:
        raise TimingError(field, f"{field} has no UTC offset: add Z or +hh:mm")
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    try:
        zone = None if offset is None else _offset_zone(offset)
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, zone
        )
    except ValueError:
        raise TimingError(field, f"{text!r} is not a real date and time") from None


def _offset_zone(text: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    delta = timedelta(hours=hours, minutes=minutes)
    return FixedOffset(-delta if text[0] == "-" else delta)


def _first_at(
    recurring: str, minute: object, at: object, created: datetime | None
) -> datetime | None:
    if minute is not None and at is not None:
        raise TimingError("at", "give either minute or at, not both")
    if minute is not None:
        if not _is_int(minute) or not 0 <= minute <= MAX_MINUTE:
            raise TimingError(
                "minute",
                f"minute (minutes since 1970-01-01T00:00Z) must be a whole number 0-{MAX_MINUTE}",
            )
        return _EARLIEST + timedelta(minutes=minute)
    if at is not None:
        return parse_instant(at, "at").replace(microsecond=0)
    if recurring == "rrule" and created is not None:
        # The rule's DTSTART: the first whole minute from when the job is saved. Its seconds
        # would be every occurrence's (BYSECOND defaults to DTSTART's): 09:00 at 09:00:25.
        start = created.astimezone(UTC)
        minute = start.replace(second=0, microsecond=0)
        return minute if minute == start else minute + timedelta(minutes=1)
    if recurring != "cron":
        raise TimingError("minute", "minute (or at) is required: it says when the job first fires")
    return None


def _cron(recurring: str, cron: str | None) -> str | None:
    if recurring != "cron":
        if cron is not None:
            raise TimingError("cron", "cron is only used when recurring is 'cron'")
        return None
    if cron is None:
        raise TimingError("cron", "cron is required when recurring is 'cron'")
    return parse_cron(cron).text


def _interval(recurring: str, interval: object) -> int | None:
    if recurring != "interval":
        if interval is not None:
            raise TimingError("interval", "interval is only used when recurring is 'interval'")
        return None
    if interval is None:
        raise TimingError(
            "interval", "interval (in seconds) is required when recurring is 'interval'"
        )
    if not _is_int(interval) or not 1 <= interval <= MAX_INTERVAL:
        raise TimingError(
            "interval",
            f"interval must be a whole number of seconds from 1 to {MAX_INTERVAL} (ten years)",
        )
    return interval


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
