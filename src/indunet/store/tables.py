"""Portable SQL on the historian's own connection, for stores that live beside the points.

Business data, state timelines and alarms are small relational tables; they share the historian's
database (one DuckDB file, or the PostgreSQL schema) so one backup holds everything. SQL is written
once with ``$1`` placeholders and types both engines know (BIGINT, DOUBLE PRECISION, TEXT,
BOOLEAN); ``INSERT ... ON CONFLICT ... DO UPDATE`` works on both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from indunet.store.base import Historian

__all__ = ["SqlPort"]


class SqlPort:
    """Run portable SQL against a historian's connection, under its lock."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
        self.backend = historian.backend

    def script(self, ddl: str) -> None:
        """Run idempotent DDL statements separated by ``;`` (CREATE TABLE IF NOT EXISTS …)."""
        statements = [s.strip() for s in ddl.split(";") if s.strip()]
        with self.transaction():
            for statement in statements:
                self.execute(statement)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Return the rows of a SELECT as an Arrow table."""
        return self.historian._query(sql, list(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Return the rows of a SELECT as dicts."""
        return self.query(sql, params).to_pylist()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        h: Any = self.historian
        with h._lock:
            if self.backend == "duckdb":
                h.con.execute(sql, list(params))
            else:
                h._run(sql, list(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one transaction."""
        if not rows:
            return
        with self.transaction():
            for row in rows:
                self.execute(sql, row)

    def upsert(self, table: str, rows: pa.Table, key: Sequence[str]) -> int:
        """Insert ``rows`` into ``table``, replacing rows with the same ``key``; return the count.

        Rows repeating a key within ``rows`` keep the last one. Column names come from code, never
        from input.
        """
        if rows.num_rows == 0:
            return 0
        rows = _last_per_key(rows, key)
        cols = rows.column_names
        keys = ", ".join(key)
        update = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
        conflict = f"ON CONFLICT ({keys}) DO " + (f"UPDATE SET {update}" if update else "NOTHING")
        h: Any = self.historian
        with self.transaction():
            if self.backend == "duckdb":
                h.con.register("incoming_rows", rows)
                try:
                    h.con.execute(
                        f"INSERT INTO {table} ({', '.join(cols)}) "
                        f"SELECT {', '.join(cols)} FROM incoming_rows {conflict}"
                    )
                finally:
                    h.con.unregister("incoming_rows")
            else:
                marks = ", ".join(["%s"] * len(cols))
                with h._alive().cursor() as cur:
                    cur.executemany(
                        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks}) {conflict}",
                        [tuple(r.values()) for r in rows.to_pylist()],
                    )
        return rows.num_rows

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the historian's lock and commit the statements inside as one transaction."""
        h: Any = self.historian
        with h._lock:
            if self.backend == "duckdb":
                if getattr(h, "_in_tx", False):
                    yield
                    return
                h.con.execute("BEGIN TRANSACTION")
                h._in_tx = True
                try:
                    yield
                except BaseException:
                    h.con.execute("ROLLBACK")
                    raise
                else:
                    h.con.execute("COMMIT")
                finally:
                    h._in_tx = False
            else:
                with h._alive().transaction():
                    yield


def _last_per_key(rows: pa.Table, key: Sequence[str]) -> pa.Table:
    """Keep the last row for each key."""
    seen: dict[tuple, int] = {}
    for i, k in enumerate(zip(*(rows.column(c).to_pylist() for c in key), strict=True)):
        seen[k] = i
    if len(seen) == rows.num_rows:
        return rows
    return rows.take(sorted(seen.values()))
