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
from typing import Any

from sqlalchemy import Connection, Engine, Table

from app.database import is_postgresql


class Bulk:
    """Insert or update many rows (all with the same keys) in one round trip."""

    def insert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        *,
        ignore_conflicts: bool = False,
    ) -> int:
        """Insert rows; return how many were written (conflicting ones skipped if asked)."""
        if not rows:
            return 0
        columns = list(rows[0])
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) {self._source(table, columns)}"
        if ignore_conflicts:
            sql += " ON CONFLICT DO NOTHING"
        return self._execute(conn, sql, rows, columns)

    def update(
        self,
        conn: Connection,
        table: Table,
        key: str,
        rows: Sequence[Mapping[str, Any]],
        condition: str = "",
        match: Sequence[str] = (),
    ) -> int:
        """Set each row's other columns where `key` and the `match` columns equal the row's
        (and the SQL `condition` on the table holds, if given); return how many changed."""
        if not rows:
            return 0
        columns = [key, *(c for c in rows[0] if c != key and c not in match), *match]
        sql = self._update_sql(table, columns, len(match))
        if condition:
            sql += f" AND {table.name}.{condition}"
        return self._execute(conn, sql, rows, columns)

    def _execute(
        self, conn: Connection, sql: str, rows: Sequence[Mapping[str, Any]], columns: list[str]
    ) -> int:
        return int(conn.exec_driver_sql(sql, self._params(rows, columns)).rowcount)

    def _source(self, table: Table, columns: list[str]) -> str:
        raise NotImplementedError

    def _update_sql(self, table: Table, columns: list[str], matched: int) -> str:
        """An UPDATE whose parameters are `columns`: the key first, the last `matched`
        compared rather than set."""
        raise NotImplementedError

    def _params(self, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Any:
        raise NotImplementedError


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
        kind = type(value)
        if kind is uuid.UUID:
            return value.hex  # unique per row: nothing to reuse
        if kind is not datetime:
            return value
        if value not in encoded:
            encoded[value] = _sqlite_value(value)
        return encoded[value]

    return [tuple(encode(row[c]) for c in columns) for row in rows]


class SqliteBulk(Bulk):
    """One executemany of plain tuples."""

    def _source(self, table: Table, columns: list[str]) -> str:
        return f"VALUES ({', '.join('?' for _ in columns)})"

    def _update_sql(self, table: Table, columns: list[str], matched: int) -> str:
        # Numbered placeholders: the key is the first parameter, as on PostgreSQL.
        numbered = [(c, n) for n, c in enumerate(columns, start=1)]
        where, sets = (
            [numbered[0], *numbered[len(numbered) - matched :]],
            numbered[1 : len(numbered) - matched],
        )
        assignments = ", ".join(f"{c} = ?{n}" for c, n in sets)
        condition = " AND ".join(f"{table.name}.{c} = ?{n}" for c, n in where)
        return f"UPDATE {table.name} SET {assignments} WHERE {condition}"

    def _params(self, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Any:
        return _sqlite_params(rows, columns)


class PostgresBulk(Bulk):
    """One statement over unnest()ed arrays: one round trip, one plan."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect

    def _arrays(self, table: Table, columns: list[str]) -> str:
        # %b: binary parameters; text-quoting thousands of array items costs more.
        types = [f"{table.c[c].type.compile(dialect=self.dialect)}[]" for c in columns]
        return ", ".join(f"%b::{array_type}" for array_type in types)

    def _source(self, table: Table, columns: list[str]) -> str:
        return f"SELECT * FROM unnest({self._arrays(table, columns)})"

    def _update_sql(self, table: Table, columns: list[str], matched: int) -> str:
        where = [columns[0], *columns[len(columns) - matched :]]
        assignments = ", ".join(f"{c} = v.{c}" for c in columns[1 : len(columns) - matched])
        condition = " AND ".join(f"{table.name}.{c} = v.{c}" for c in where)
        return (
            f"UPDATE {table.name} SET {assignments} "
            f"FROM unnest({self._arrays(table, columns)}) AS v({', '.join(columns)}) "
            f"WHERE {condition}"
        )

    def _params(self, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Any:
        return tuple([row[c] for row in rows] for c in columns)
