"""Instants as the API writes and reads them: RFC 3339, UTC, with a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def format_instant(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    instant = instant.astimezone(UTC)
    if instant.microsecond:
        return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return instant.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 instant with its offset; ValueError if it is not one."""
    if "T" not in text.upper() or len(text) < 20:
        raise ValueError("must be an RFC 3339 instant such as 2030-01-01T09:00:00Z")
    value = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("must carry an offset, such as Z or +02:00")
    return value.astimezone(UTC)
