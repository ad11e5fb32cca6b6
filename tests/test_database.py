"""The database layer's own reading of stored values: instants, ids as text, records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import insert, select, text

from app.database import db, id_text, records
from app.models import AuditEntry

audit_log = AuditEntry.__table__


def _stored(app: Flask, at: datetime) -> datetime:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(insert(audit_log).values(at=at, actor="test", action="check"))
        return conn.execute(select(audit_log.c.at).order_by(audit_log.c.id.desc())).scalar_one()


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 3, 17, 0, 57, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 17, 0, 57, tzinfo=UTC),  # no fraction of a second
        datetime(2026, 12, 3, 18, 0, 57, 5, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_an_instant_is_read_back_as_the_same_aware_utc_instant(app: Flask, at: datetime) -> None:
    read = _stored(app, at)
    assert read == at
    assert read.utcoffset() == timedelta(0)


def test_sqlite_text_in_other_iso_forms_is_read_as_its_instant(app: Flask, db_kind: str) -> None:
    """SQLite holds text: a value written by hand (a T, a Z, an offset) still reads right."""
    if db_kind != "sqlite":
        pytest.skip("SQLite only: PostgreSQL stores timestamptz, not text")
    expected = datetime(2026, 12, 3, 17, 0, 57, tzinfo=UTC)
    with app.app_context(), db.engine.begin() as conn:
        for stored in ("2026-12-03T17:00:57Z", "2026-12-03 18:00:57+01:00"):
            conn.execute(
                text("INSERT INTO audit_log (at, actor, action) VALUES (:at, 'test', 'check')"),
                {"at": stored},
            )
        read = conn.execute(select(audit_log.c.at).where(audit_log.c.actor == "test")).scalars()
        assert list(read) == [expected, expected]


def test_ids_read_as_text_are_written_as_str_of_the_uuid_and_records_name_the_columns(
    app: Flask,
) -> None:
    job_id = uuid.uuid4()
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            insert(audit_log).values(at=datetime.now(UTC), actor="t", action="a", job_id=job_id)
        )
        [row] = records(conn, select(id_text(audit_log.c.job_id), audit_log.c.actor))
    assert row.job_id == str(job_id)
    assert row.actor == "t"
    assert row == (str(job_id), "t")
