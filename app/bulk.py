"""Bulk writes for the dispatcher's hot path.

A fire writes a run, advances a job and often enqueues a message: thousands of rows a
second. SQLAlchemy's per-row parameter processing costs more than the database work at
that rate, so these statements go straight to the driver: on SQLite one executemany of
plain tuples; on PostgreSQL one statement per batch over unnest()ed arrays (one round
trip, one plan). Everything else uses SQLAlchemy as usual.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table

from app.database import is_postgresql


class Bulk(Protocol):
    def insert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        ignore_conflicts: bool = False,
    ) -> int:
        """Insert rows (all with the same keys); return how many were written."""
        ...

    def update(
        self,
        conn: Connection,
        table: Table,
        key: str,
        rows: Sequence[Mapping[str, Any]],
        condition: str = "",
    ) -> int:
        """Set each row's other columns where `key` matches (and the SQL `condition` holds,
        if given); return how many rows changed."""
        ...


def bulk_for(engine: Engine) -> Bulk:
    return PostgresBulk(engine) if is_postgresql(engine) else SqliteBulk()


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy would have stored: UUIDs as 32 hex digits, instants as UTC text."""
    if isinstance(value, datetime):
        return (
            value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
    if isinstance(value, uuid.UUID):
        return value.hex
    return value


def _sqlite_params(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> list[tuple[Any, ...]]:
    # A batch repeats the same instants (its "now", a shared due time): encode each once.
    encoded: dict[Any, Any] = {}

    def encode(value: Any) -> Any:
        if value is None or type(value) in (str, int, float):
            return value
        if value not in encoded:
            encoded[value] = _sqlite_value(value)
        return encoded[value]

    return [tuple(encode(row[c]) for c in columns) for row in rows]


class SqliteBulk:
    def insert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        ignore_conflicts: bool = False,
    ) -> int:
        if not rows:
            return 0
        columns = list(rows[0])
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
            + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
        )
        params = _sqlite_params(rows, columns)
        return int(conn.exec_driver_sql(sql, params).rowcount)

    def update(
        self,
        conn: Connection,
        table: Table,
        key: str,
        rows: Sequence[Mapping[str, Any]],
        condition: str = "",
    ) -> int:
        if not rows:
            return 0
        columns = [c for c in rows[0] if c != key]
        assignments = ", ".join(f"{c} = ?" for c in columns)
        sql = f"UPDATE {table.name} SET {assignments} WHERE {key} = ?"
        if condition:
            sql += f" AND {condition}"
        params = _sqlite_params(rows, [*columns, key])
        return int(conn.exec_driver_sql(sql, params).rowcount)


class PostgresBulk:
    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect

    def _array_type(self, table: Table, column: str) -> str:
        return f"{table.c[column].type.compile(dialect=self.dialect)}[]"

    def _arrays(self, table: Table, columns: list[str]) -> str:
        # %b: binary parameters; text-quoting thousands of array items costs more.
        return ", ".join(f"%b::{self._array_type(table, c)}" for c in columns)

    def insert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        ignore_conflicts: bool = False,
    ) -> int:
        if not rows:
            return 0
        columns = list(rows[0])
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT * FROM unnest({self._arrays(table, columns)})"
            + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
        )
        params = tuple([row[c] for row in rows] for c in columns)
        return int(conn.exec_driver_sql(sql, params).rowcount)

    def update(
        self,
        conn: Connection,
        table: Table,
        key: str,
        rows: Sequence[Mapping[str, Any]],
        condition: str = "",
    ) -> int:
        if not rows:
            return 0
        columns = [key, *(c for c in rows[0] if c != key)]
        assignments = ", ".join(f"{c} = v.{c}" for c in columns[1:])
        sql = (
            f"UPDATE {table.name} SET {assignments} "
            f"FROM unnest({self._arrays(table, columns)}) AS v({', '.join(columns)}) "
            f"WHERE {table.name}.{key} = v.{key}"
            + (f" AND {table.name}.{condition}" if condition else "")
        )
        params = tuple([row[c] for row in rows] for c in columns)
        return int(conn.exec_driver_sql(sql, params).rowcount)
