"""Indexes a fire would only fill with NULLs are partial, and still serve their queries.

A one-shot's fire sets its job's next_run_at to NULL, and a built-in queue message is
written without a receipt: a full index would take an entry for each (an index write per
fire for nothing). Partial, they take none, so every query of theirs must name a value or
ask IS NOT NULL: the plans of the service's own statements show they do."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app import changes, queue
from app.clock import ManualClock
from app.database import db
from app.scheduler.dispatcher import Dispatcher
from tests.support.plans import captured, plan_steps

PARTIAL = {"ix_jobs_next_run_at": "next_run_at", "ix_queue_messages_receipt": "receipt"}


def index_definitions(app: Flask, db_kind: str) -> dict[str, str]:
    sql = (
        "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
        if db_kind == "sqlite"
        else "SELECT indexname, indexdef FROM pg_indexes"
    )
    with app.app_context(), db.engine.connect() as conn:
        return {name: definition for name, definition in conn.execute(text(sql))}


def test_the_indexes_a_fire_empties_hold_only_values(app: Flask, db_kind: str) -> None:
    definitions = index_definitions(app, db_kind)
    for name, column in PARTIAL.items():
        where = definitions[name].split(" WHERE ", 1)[-1].strip("() ").lower()
        assert where == f"{column} is not null", definitions[name]


def test_every_query_of_those_indexes_uses_them(
    app: Flask, client: FlaskClient, clock: ManualClock, db_kind: str,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:  # fmt: skip
    job = {"payload": "x", "at": "2030-01-01T00:00:05Z"}
    assert client.post("/schedules", json=job).status_code == 201
    dispatcher = make_dispatcher()

    def wanted(statement: str) -> bool:
        return any(column in statement for column in PARTIAL.values())

    with captured(app, wanted) as seen:
        dispatcher.seconds_until_due()  # the firing loop's look: the soonest next run
        clock.advance(5)
        assert dispatcher.fire_due() == 1  # the due claim
        with app.app_context():
            changes.marker()  # the UI's "anything changed?" (the soonest next run again)
            queue.ack("default", ["0" * 48])
            queue.extend("default", ["0" * 48], 30, clock.now())
    uses = {
        "ix_jobs_next_run_at": [s for s in seen if "FROM jobs" in s[0] and "min(" in s[0]],
        "ix_queue_messages_receipt": [s for s in seen if "queue_messages.receipt IN" in s[0]],
    }
    assert len(uses["ix_queue_messages_receipt"]) == 2  # the ack and the extend
    uses["ix_jobs_next_run_at"] += [s for s in seen if "FOR UPDATE" in s[0] or "LIMIT" in s[0]]
    for index, statements in uses.items():
        assert statements, f"no statement of {index} was seen"
        for statement, parameters in statements:
            shown = "\n".join(plan_steps(app, statement, parameters))
            table = "jobs" if index.startswith("ix_jobs") else "queue_messages"
            assert index in shown, (statement, shown)
            assert f"Seq Scan on {table} " not in shown, (statement, shown)
            assert f"SCAN {table}\n" not in f"{shown}\n", (statement, shown)
