"""Ids of stored rows (jobs, runs and their queue messages, API keys): time-ordered UUIDs.

A UUID version 7 (RFC 9562, section 5.7) starts with the Unix time in milliseconds, so
rows made together have neighbouring keys. A burst writes its runs (and their messages)
into the last pages of the primary key's index instead of a random page per row: on
SQLite a thousand-run batch touched about as many index pages as it wrote rows, each
page a frame of the write-ahead log. The other 74 bits are random: ids stay unguessable
and unique across processes without coordination. (Python 3.14's uuid.uuid7 does the
same; this runs on 3.11.)
"""

from __future__ import annotations

import os
import time
import uuid

_RAND_A = 0xFFF  # 12 random bits after the version
_RAND_B = (1 << 62) - 1  # 62 random bits after the variant
_VERSION = 7 << 76
_VARIANT = 0b10 << 62


def new_id() -> uuid.UUID:
    """A new row id: a UUID version 7 for the present millisecond."""
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (
        (milliseconds & 0xFFFF_FFFF_FFFF) << 80
        | _VERSION
        | ((random >> 62) & _RAND_A) << 64
        | _VARIANT
        | random & _RAND_B
    )
    return uuid.UUID(int=value)
