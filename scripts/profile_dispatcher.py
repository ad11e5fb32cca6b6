"""Fire N one-shot jobs with one in-process Dispatcher and print fires/s: the hot path
alone, without process start-up, for profiling.

    .venv/bin/py-spy record -o docs/profile-dispatcher-sqlite.svg -- \
        .venv/bin/python scripts/profile_dispatcher.py sqlite:////tmp/p.sqlite 50000
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.database import db
from app.scheduler.process import build_dispatcher
from tests.support.burst import insert_one_shot_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url", help="an empty database (SQLite file or PostgreSQL)")
    parser.add_argument("jobs", type=int, nargs="?", default=50_000)
    args = parser.parse_args()
    app = create_app({"DATABASE_URL": args.database_url, "SECRET_KEY": "profile"})
    with app.app_context():
        upgrade()
        insert_one_shot_jobs(db.engine, args.jobs, datetime.now(UTC))
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        dispatcher = build_dispatcher(app)
        started = time.perf_counter()
        while dispatcher.fire_due():
            pass
        elapsed = time.perf_counter() - started
    print(f"{args.jobs} fires in {elapsed:.2f} s: {args.jobs / elapsed:,.0f} fires/s")


if __name__ == "__main__":
    main()
