"""Page cursors: opaque to clients, checked strictly when they come back.

A cursor is only ever one this service gave out; anything else (edited, truncated, from
another list) is refused naming `cursor` (a 400), never a server error further down.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import UTC, datetime

from app.errors import BadLookup

MAX_ID = 2**63 - 1  # the largest id any of our databases stores
_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() takes '²'


def encode_cursor(instant: datetime, key: uuid.UUID) -> str:
    """A keyset cursor for a list ordered by (instant, id)."""
    raw = json.dumps([instant.isoformat(), str(key)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (instant, id) of a cursor from encode_cursor; the instant in UTC."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        written, key = json.loads(raw)
        instant = datetime.fromisoformat(written)
        if instant.tzinfo is None:
            raise ValueError("no offset")
        return instant.astimezone(UTC), uuid.UUID(key)
    except (ValueError, TypeError, OverflowError, binascii.Error, RecursionError) as exc:
        raise bad_cursor() from exc


def encode_sort_cursor(sort: str, value: datetime | str | None, key: uuid.UUID) -> str:
    """A keyset cursor for a list in another order: the sort it belongs to, the last row's
    sort value (None past the rows that have one) and id."""
    written = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([sort, written, str(key)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_sort_cursor(
    cursor: str, sort: str, *, timed: bool
) -> tuple[datetime | str | None, uuid.UUID]:
    """The (value, id) of a cursor from encode_sort_cursor for this sort (`timed`: its values
    are instants, given back in UTC)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        written_sort, written, key = json.loads(raw)
        if written_sort != sort or not isinstance(written, str | None):
            raise ValueError("another list's cursor")
        value: datetime | str | None = written
        if timed and written is not None:
            instant = datetime.fromisoformat(written)
            if instant.tzinfo is None:
                raise ValueError("no offset")
            value = instant.astimezone(UTC)
        return value, uuid.UUID(key)
    except (ValueError, TypeError, OverflowError, binascii.Error, RecursionError) as exc:
        raise bad_cursor() from exc


def decode_id_cursor(cursor: str) -> int:
    """The id of a cursor that is an id (the audit log's)."""
    if not _ID.fullmatch(cursor) or int(cursor) > MAX_ID:
        raise bad_cursor()
    return int(cursor)


def bad_cursor() -> BadLookup:
    return BadLookup.field("cursor", "not a cursor this service gave out")
