"""The plans of the queries that must stay on their indexes however many jobs are stored:
the firing loop's due-claim, and the jobs list (first page, a deep cursor, a status filter,
a label filter). Each is the SQL the service itself sends (captured as app.scheduler.firing's
due_claim and app.jobs's list_jobs run it), under EXPLAIN on the bench's database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from app import create_app
from app.database import db
from app.scheduler.firing import due_claim
from bench.common import Database
from tests.support.plans import captured


def query_plans(database: Database, deep_cursor: str, stored: int) -> str:
    """Markdown: each query's plan on this database, with `stored` jobs in it."""
    app = create_app({"DATABASE_URL": database.url, "SECRET_KEY": "bench", "TESTING": True})
    import app.jobs as store  # after create_app: app.api and app.jobs import each other

    lists = {
        "jobs list, first page": (None, store.JobFilter()),
        "jobs list, a deep cursor": (deep_cursor, store.JobFilter()),
        "jobs list, status filter (paused)": (None, store.JobFilter(status="paused")),
        "jobs list, label filter (team: rare)": (None, store.JobFilter(labels=(("team", "rare"),))),
    }
    sections = [f"### {database.kind}, {stored:,} jobs stored\n"]
    with app.app_context():
        engine = db.engine
        with captured(app, _select) as statements, engine.connect() as conn:
            conn.execute(due_claim(datetime.now(UTC), 1000))  # as the firing loop sends it
            conn.rollback()
        sections += [_explained(engine, "firing: the due-claim", *s) for s in statements]
        for name, (cursor, filters) in lists.items():
            with captured(app, _select) as statements:
                store.list_jobs(100, cursor, filters, "created")
            sections += [_explained(engine, name, *s) for s in statements]
    return "\n".join(sections)


def _select(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT")


def _explained(engine: Engine, name: str, sql: str, params: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + sql, params).all()
        conn.rollback()
    if engine.dialect.name == "sqlite":
        plan = "\n".join(str(row[-1]) for row in rows)
    else:
        plan = "\n".join(str(row[0]) for row in rows)
    query = " ".join(sql.split())
    return f"**{name}**\n\n```sql\n{query}\n```\n\n```\n{plan}\n```\n"
