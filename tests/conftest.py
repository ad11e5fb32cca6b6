"""Shared fixtures: a real database per test (SQLite file or PostgreSQL database), an app
with a manual clock, and the dispatcher.

The schema is migrated once per session into a template (a SQLite file, or a PostgreSQL
template database) and each test gets a fresh copy: fast and fully isolated.
`--db=postgresql` runs the suite against the PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from hypothesis import settings

from app import create_app
from app.clock import ManualClock
from app.database import db
from app.scheduler.dispatcher import Dispatcher
from app.scheduler.process import build_dispatcher

pytest_plugins = [
    "tests.support.sqs_server",
    "tests.support.http_target",
    "tests.support.aio",
    "tests.support.service",
    "tests.support.brokers",
]

# The same examples on every run: a property test that fails, fails every time (and
# HYPOTHESIS_PROFILE=explore searches afresh when hunting for new cases).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

PG_ADMIN = os.environ.get("TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
START = datetime(2030, 1, 1, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=["sqlite", "postgresql"], default="sqlite")


@pytest.fixture(scope="session")
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


def pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def migrate(url: str, instance: Path) -> None:
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "test", "TESTING": True})
    app.instance_path = str(instance)
    with app.app_context():
        upgrade()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture(scope="session")
def template_db(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database to copy: a SQLite file path, or a PostgreSQL database name."""
    folder = tmp_path_factory.mktemp("template")
    if db_kind == "sqlite":
        path = folder / "template.sqlite"
        migrate(f"sqlite:///{path}", folder)
        yield str(path)
        return
    name = f"sched_tpl_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE DATABASE {name}")
    migrate(pg_url(name).replace("postgresql://", "postgresql+psycopg://"), folder)
    yield name
    pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def copy_of_template(db_kind: str, template_db: str, folder: Path) -> Iterator[str]:
    """A fresh migrated database (a SQLite file in `folder`, or a PostgreSQL database)."""
    if db_kind == "sqlite":
        path = folder / "scheduler.sqlite"
        shutil.copy(template_db, path)
        yield f"sqlite:///{path}"
        return
    name = f"sched_t_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    try:
        yield pg_url(name).replace("postgresql://", "postgresql+psycopg://")
    finally:
        pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(db_kind: str, template_db: str, tmp_path: Path) -> Iterator[str]:
    with copy_of_template(db_kind, template_db, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def app_config(database_url: str, clock: ManualClock) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test",
        "DATABASE_URL": database_url,
        "CLOCK": clock,
        "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        "KEYS_ABSENT_TTL": 0,  # keys made in-process do not wait (test_access shows the wait)
    }


@pytest.fixture
def make_app(app_config: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Build apps on the test's database with extra settings; their pools close after."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        made.append(create_app(app_config | overrides))
        return made[-1]

    yield make
    for app in made:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def make_dispatcher(app: Flask) -> Iterator[Callable[..., Dispatcher]]:
    """Dispatchers on the test's app (targets replaced if given); closed after the test."""
    made: list[Dispatcher] = []

    def make(targets: dict[str, Any] | None = None, **options: Any) -> Dispatcher:
        with app.app_context():
            made.append(build_dispatcher(app, targets, **options))
        return made[-1]

    yield make
    for dispatcher in made:
        dispatcher.stop()
        dispatcher.close(timeout=5)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass (`make test` runs it after the SQLite one) leaves out the tests
    that reach no database: none of their fixtures asks for `db_kind`, so they give the
    same answer on either, and the SQLite pass has run them."""
    if config.getoption("--db") != "postgresql":
        return
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        (kept if "db_kind" in getattr(item, "fixturenames", ()) else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
