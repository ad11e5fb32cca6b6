"""Retention prunes old history in batches and keeps what still matters."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.clock import ManualClock
from app.database import db
from app.models import AuditEntry, QueueMessage, Run
from app.scheduler import retention
from app.scheduler.process import build_dispatcher


def test_prune_old_runs_messages_and_audit(
    client: FlaskClient, app: Flask, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [{"payload": str(i), "at": "2030-01-01T00:00:01Z"} for i in range(25)]
    client.post("/schedules:batch", json={"jobs": jobs}, headers={"Idempotency-Key": "old"})
    recent = client.post("/schedules", json={"payload": "new", "at": "2030-02-01T00:00:00Z"})
    clock.advance(1)
    with app.app_context():
        dispatcher = build_dispatcher(app)
        while dispatcher.fire_due():
            pass
        dispatcher.close()
    clock.set(clock.now().replace(month=2))
    client.post(f"/schedules/{recent.get_json()['jobId']}/run")  # pending: must survive

    monkeypatch.setattr(retention, "BATCH", 10)  # several batches
    with app.app_context():
        pruned = retention.prune(db.engine, clock.now(), run_days=30, queue_days=30, audit_days=30)
        assert pruned == {
            "runs": 25,
            "queue_messages": 25,
            "audit_log": 51,
            "idempotency_keys": 1,  # kept a day
        }  # 26 creates, 25 completions
        left = db.session.execute(select(Run.status)).scalars().all()
        assert left == ["pending"]
        assert db.session.scalar(select(func.count()).select_from(QueueMessage)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1
