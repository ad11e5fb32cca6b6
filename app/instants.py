"""Instants as the API writes them: RFC 3339, UTC, with a Z. (Reading them is the timing
rules' job: app.timing.parse_instant.)"""

from __future__ import annotations

from datetime import UTC, datetime


def format_instant(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    instant = instant.astimezone(UTC)
    if instant.microsecond:
        return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return instant.isoformat(timespec="seconds").replace("+00:00", "Z")
