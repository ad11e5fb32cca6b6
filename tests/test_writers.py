"""SQLite's writers take turns on a lock file (app/writers.py) instead of sleeping in
SQLite's busy handler. Two engines on one file stand for two processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, text

from app.database import IMMEDIATE, configure_engine, engine_options, write_connection

HOLD = 0.3  # seconds the first writer keeps its transaction open


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    made = []
    for _ in range(2):
        engine = create_engine(url, **engine_options(url))
        configure_engine(engine)
        made.append(engine)
    with write_connection(made[0]) as conn:
        conn.execute(text("CREATE TABLE t (n integer)"))
    yield made[0], made[1]
    for engine in made:
        engine.dispose()


def begins_of(engine: Engine) -> list[float]:
    """When each BEGIN IMMEDIATE of `engine` reached SQLite."""
    began: list[float] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement == "BEGIN IMMEDIATE":
            began.append(time.monotonic())

    event.listen(engine, "before_cursor_execute", seen)
    return began


def test_a_writer_waits_for_its_turn_before_it_begins(engines: tuple[Engine, Engine]) -> None:
    """The second writer's BEGIN IMMEDIATE reaches SQLite only once the first has
    committed: it waited on the lock file, where the kernel wakes it at once, not in
    SQLite's busy handler, which sleeps up to 100 ms a try while the lock stands free."""
    first, second = engines
    began = begins_of(second)
    holding, committed = threading.Event(), []

    def write_slowly() -> None:
        with write_connection(first) as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            time.sleep(HOLD)
        committed.append(time.monotonic())

    writer = threading.Thread(target=write_slowly)
    writer.start()
    assert holding.wait(10)
    with write_connection(second) as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
    writer.join()
    assert len(began) == 1 and began[0] >= committed[0]
    with first.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_rolled_back_or_closed_writer_leaves_its_turn(engines: tuple[Engine, Engine]) -> None:
    first, second = engines
    with pytest.raises(ValueError), write_connection(first) as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        raise ValueError("the transaction fails")
    with write_connection(second) as conn:  # would wait forever if the turn were kept
        conn.execute(text("INSERT INTO t VALUES (2)"))
    conn = first.connect().execution_options(**{IMMEDIATE: True})
    conn.begin()
    conn.execute(text("INSERT INTO t VALUES (3)"))
    conn.invalidate()  # a connection lost mid-transaction: its file closes, and its turn
    with write_connection(second) as other:
        other.execute(text("INSERT INTO t VALUES (4)"))
        assert other.execute(text("SELECT count(*) FROM t")).scalar() == 2
