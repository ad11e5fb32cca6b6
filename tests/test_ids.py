"""Row ids: UUID version 7 (RFC 9562), time-ordered so that rows made together are
neighbours in their indexes."""

from __future__ import annotations

import uuid

import pytest

from app import ids
from app.ids import new_id


def test_an_id_is_a_version_7_uuid_of_the_present_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_796_000_000_123_456_789)
    made = new_id()
    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert made.int >> 80 == 1_796_000_000_123  # the Unix time in milliseconds
    assert str(made).startswith("01a2") and uuid.UUID(str(made)) == made


def test_ids_of_a_later_millisecond_sort_after_and_all_are_distinct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1_796_000_000_000_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now[0])
    first = [new_id() for _ in range(50_000)]
    now[0] += 1_000_000  # one millisecond on
    later = [new_id() for _ in range(50_000)]
    assert max(first) < min(later)
    assert len(set(first + later)) == 100_000  # 74 random bits within one millisecond
    assert len({i.int & ((1 << 62) - 1) for i in first}) == 50_000  # the random part varies
