"""Retention prunes old history in batches and keeps what still matters."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

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
    fire_all(app)
    clock.set(clock.now().replace(month=2))
    client.post(f"/schedules/{recent.get_json()['jobId']}/run")  # pending: must survive

    monkeypatch.setattr(retention, "BATCH", 10)  # several batches
    with app.app_context():
        pruned = retention.prune(
            db.engine, clock.now(), run_days=30, queue_days=30, audit_days=30,
            completed_job_days=365,
        )  # fmt: skip
        assert pruned == {
            "jobs_deleted": 0,
            "jobs_expired": 0,
            "runs": 25,
            "queue_messages": 25,
            "audit_log": 51,
            "idempotency_keys": 1,  # kept a day
        }  # 26 creates, 25 completions
        left = db.session.execute(select(Run.status)).scalars().all()
        assert left == ["pending"]
        assert db.session.scalar(select(func.count()).select_from(QueueMessage)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def fire_all(app: Flask) -> None:
    """Fire everything due now, as one dispatcher would."""
    with app.app_context():
        dispatcher = build_dispatcher(app)
        while dispatcher.fire_due():
            pass
        dispatcher.close()


def prune_jobs(app: Flask, clock: ManualClock, days: float = 30) -> dict[str, int]:
    with app.app_context():
        return retention.prune_completed_jobs(db.engine, clock.now(), days, 100_000)


def test_completed_jobs_go_when_asked_or_old_never_with_a_run_in_hand(
    client: FlaskClient, app: Flask, clock: ManualClock
) -> None:
    queue = {"payload": "q", "at": "2030-01-01T00:00:01Z"}
    webhook = queue | {"target": {"type": "webhook", "url": "https://hooks.example.com/x"}}
    made = client.post(
        "/schedules:batch",
        json={"jobs": [queue | {"onComplete": "delete"}, webhook | {"onComplete": "delete"},
                       queue, queue | {"at": "2030-03-01T00:00:00Z", "onComplete": "delete"}]},
    ).get_json()["jobs"]  # fmt: skip
    ids = [job["jobId"] for job in made]
    assert [job["onComplete"] for job in made] == ["delete", "delete", "keep", "delete"]
    clock.advance(2)
    fire_all(app)  # the queue runs are delivered as they fire; the webhook's waits
    assert prune_jobs(app, clock) == {"jobs_deleted": 1, "jobs_expired": 0}
    assert client.get(f"/schedules/{ids[0]}").status_code == 404
    assert client.get(f"/schedules/{ids[1]}").get_json()["status"] == "completed"  # run in hand
    entry = client.get(f"/audit?jobId={ids[0]}").get_json()[0]
    assert (entry["action"], entry["actor"], entry["detail"]) == (
        "delete",
        "dispatcher",
        "onComplete: delete",
    )
    with app.app_context():  # the webhook's run is delivered (or dies): its job may go
        db.session.execute(update(Run).values(status="dead", next_attempt_at=None))
        db.session.commit()
    assert prune_jobs(app, clock) == {"jobs_deleted": 1, "jobs_expired": 0}
    clock.advance(29 * 86400)
    assert prune_jobs(app, clock)["jobs_expired"] == 0  # kept, completed 29 days ago
    clock.advance(2 * 86400)
    assert prune_jobs(app, clock) == {"jobs_deleted": 0, "jobs_expired": 1}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Run)) == 0  # with its runs
    assert client.get(f"/schedules/{ids[3]}").get_json()["status"] == "active"  # not done
