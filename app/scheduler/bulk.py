"""Bulk writes for the dispatcher's hot path.

A fire writes a run, advances a job and often enqueues a message: thousands of rows a
second. SQLAlchemy's per-row parameter processing costs more than the database work at
that rate, so these statements go straight to the driver: on SQLite one executemany of
plain tuples; on PostgreSQL one statement per batch over unnest()ed arrays (one round
trip, one plan). Ids may be given as UUIDs or as their text (a delivery's run id), so
no caller parses one back. Everything else uses SQLAlchemy as usual.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, Table, Uuid

from app.database import UTCDateTime, is_postgresql


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
        return self._execute(conn, table, sql, rows, columns)

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
        return self._execute(conn, table, sql, rows, columns)

    def _execute(
        self,
        conn: Connection,
        table: Table,
        sql: str,
        rows: Sequence[Mapping[str, Any]],
        columns: list[str],
    ) -> int:
        return int(conn.exec_driver_sql(sql, self._params(table, rows, columns)).rowcount)

    def _source(self, table: Table, columns: list[str]) -> str:
        raise NotImplementedError

    def _update_sql(self, table: Table, columns: list[str], matched: int) -> str:
        """An UPDATE whose parameters are `columns`: the key first, the last `matched`
        compared rather than set."""
        raise NotImplementedError

    def _params(self, table: Table, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Any:
        raise NotImplementedError


def bulk_for(engine: Engine) -> Bulk:
    return PostgresBulk(engine) if is_postgresql(engine) else SqliteBulk()


def _sqlite_instant(value: datetime) -> str:
    """An instant as SQLAlchemy stores it on SQLite: naive UTC text."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_key(value: Any) -> Any:
    """An id as SQLAlchemy stores it on SQLite: 32 hex digits (from a UUID or its text)."""
    if type(value) is uuid.UUID:
        return value.hex
    return value.replace("-", "") if isinstance(value, str) else value


def _sqlite_params(
    table: Table, rows: Sequence[Mapping[str, Any]], columns: list[str]
) -> list[tuple[Any, ...]]:
    """The rows as plain tuples, column by column (each column's values encoded the same
    way, by its type: one pass per column instead of a type test per value)."""
    return list(zip(*(_sqlite_column(table, c, rows) for c in columns), strict=True))


def _sqlite_column(table: Table, column: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    values = list(map(itemgetter(column), rows))
    kind = table.c[column].type
    if isinstance(kind, Uuid):
        return [_sqlite_key(v) for v in values]
    if isinstance(kind, UTCDateTime):
        # A batch repeats the same instants (its "now", a shared due time): encode each once.
        encoded = {v: _sqlite_instant(v) for v in set(values) if v is not None}
        return [encoded.get(v) if v is not None else None for v in values]
    return values


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

    def _params(self, table: Table, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Any:
        return _sqlite_params(table, rows, columns)


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

    def _params(self, table: Table, rows: Sequence[Mapping[str, Any]], columns: list[str]) -> Any:
        return tuple(list(map(itemgetter(c), rows)) for c in columns)
