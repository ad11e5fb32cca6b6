"""The plans of the statements the service runs: caught on their way to the database, then
explained on the same database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from app.database import db
from tests.support.engine_events import listening

Statement = tuple[str, Any]  # SQL as sent, and its parameters


@contextmanager
def captured(app: Flask, wanted: Callable[[str], bool]) -> Iterator[list[Statement]]:
    """The statements the block sends whose SQL is `wanted`."""
    statements: list[Statement] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if wanted(statement):
            statements.append((statement, parameters))

    with listening(app, "before_cursor_execute", keep):
        yield statements


def plan_steps(app: Flask, statement: str, parameters: Any) -> list[str]:
    """The plan's lines. On PostgreSQL sequential scans are ruled out for the plan (test
    tables are tiny): one remains only where no index can serve the statement."""
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return [row[3] for row in rows]
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # this transaction only
        return [row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
