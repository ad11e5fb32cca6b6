"""The job form's calendar fields: an RFC 5545 rule, days off, the DST policy.

Days off are typed one a line: a date (2026-12-24) or a range, two dates (2026-12-24
2027-01-01). What is wrong is said by the API's checks, named by form field.
"""

from __future__ import annotations

from typing import Any

ON_EXCLUDED = {"skip": "Skip it", "next-business-day": "Move it to the next business day"}
DST_GAP = {"shift": "Fire just after the gap", "skip": "Skip it"}
DST_REPEAT = {"first": "Fire at the first", "last": "Fire at the second", "both": "Fire at both"}
FIELDS = ("rrule", "exclude_days", "exclude_holidays", "on_excluded", "dst_gap", "dst_repeat")
API_FIELDS = {"rrule": "rrule", "exclude": "exclude_days", "onExcluded": "on_excluded",
              "dst": "dst_gap"}  # fmt: skip
_PARTS = {"holidays": "exclude_holidays", "dates": "exclude_days", "ranges": "exclude_days",
          "gap": "dst_gap", "repeat": "dst_repeat"}  # fmt: skip


def form_field(parts: list[str]) -> str | None:
    """The form field of an API field's error (exclude.holidays -> exclude_holidays)."""
    if parts[0] not in API_FIELDS:
        return None
    named = [_PARTS[p] for p in parts[1:] if p in _PARTS]
    return named[0] if named else API_FIELDS[parts[0]]


def api_fields(values: Any, kind: str, errors: dict[str, str]) -> dict[str, Any]:
    """The API's rrule, exclude, onExcluded and dst from the form's values."""
    data: dict[str, Any] = {}
    if kind == "rrule":
        data["rrule"] = " ".join(values.rrule.split()) or None
        if data["rrule"] is None:
            errors["rrule"] = "a rule is required, such as FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17"
    exclude: dict[str, Any] = {}
    for line in (values.exclude_days or "").splitlines():
        days = line.replace(",", " ").split()
        if len(days) == 1:
            exclude.setdefault("dates", []).append(days[0])
        elif len(days) == 2:
            exclude.setdefault("ranges", []).append(days)
        elif days:
            errors["exclude_days"] = f"{line.strip()!r}: one date, or two for a range"
    if (values.exclude_holidays or "").strip():
        exclude["holidays"] = values.exclude_holidays.strip().upper()
    if exclude:
        data["exclude"] = exclude
        data["onExcluded"] = values.on_excluded or "skip"
    gap, repeat = values.dst_gap or "shift", values.dst_repeat or "first"
    if (gap, repeat) != ("shift", "first"):
        data["dst"] = {"gap": gap, "repeat": repeat}
    return data


def form_values(job: Any) -> dict[str, str]:
    """A stored job's calendar fields as the form shows them."""
    exclude = job.exclude or {}
    lines = [*exclude.get("dates", []), *(f"{a} {b}" for a, b in exclude.get("ranges", []))]
    return {
        "rrule": job.rrule or "",
        "exclude_days": "".join(f"{line}\n" for line in lines),
        "exclude_holidays": exclude.get("holidays", ""),
        "on_excluded": job.on_excluded or "skip",
        "dst_gap": job.dst_gap or "shift",
        "dst_repeat": job.dst_repeat or "first",
    }
