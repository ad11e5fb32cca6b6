"""The bare web app single creates are measured against: Flask, one row, SQLAlchemy Core.

`POST /schedules` inserts the request's JSON body as one row of its own table (no
validation, no timing rules, no audit, no labels) and answers 201 with a job id, under the
same gunicorn settings as the service (scripts/bench/common.py starts both). The database
connection is set up as the service sets it up (on SQLite: WAL, the busy timeout, BEGIN
IMMEDIATE for a write) and its ids are made as the service makes them, so the difference
is what a create costs in our code.

    DATABASE_URL=... gunicorn --pythonpath scripts 'bench.bareapp:make_app()'
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Flask, request
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, create_engine, insert

from app.database import IMMEDIATE, configure_engine, engine_options
from app.ids import new_id

rows = Table(
    "bare_creates",
    MetaData(),
    Column("id", String(36), primary_key=True),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def make_app() -> Flask:
    """The app (gunicorn: `bench.bareapp:make_app()`); its table is made by the bench."""
    url = os.environ["DATABASE_URL"]
    engine = create_engine(url, **engine_options(url))
    configure_engine(engine)
    app = Flask(__name__)

    @app.post("/schedules")
    def create() -> tuple[dict[str, str], int]:
        job_id = str(new_id())  # the service's own ids
        body, now = request.get_data(as_text=True), datetime.now(UTC)
        row = {"id": job_id, "body": body, "created_at": now}
        with engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
            conn.execute(insert(rows), row)
        return {"jobId": job_id}, 201

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app
