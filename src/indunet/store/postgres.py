"""Server historian on PostgreSQL: COPY for bulk writes, points partitioned by time.

``points`` is range-partitioned on ``ts`` (epoch ms) in partitions of ``pg_partition_days``,
created on demand, each with a primary key on (tag_id, ts) — which makes writes idempotent
(``ON CONFLICT DO UPDATE``: the last write wins) and single-tag reads index scans.
TimescaleDB slots in by making ``points`` a hypertable instead (see docs/historian.md).
"""

from __future__ import annotations

import io
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from indunet.errors import ConfigError, StorageUnavailable
from indunet.health import DependencyState
from indunet.model import DataType, DeadLetter
from indunet.store.base import DAY_MS, HOUR_MS, Historian, TagSpec, _now_ms, change_ranges

if TYPE_CHECKING:
    from indunet.config import RetentionRule, Settings

__all__ = ["PostgresHistorian"]

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.tags (
    id SERIAL PRIMARY KEY,
    enterprise TEXT NOT NULL,
    path TEXT NOT NULL,
    data_type TEXT NOT NULL,
    unit TEXT,
    description TEXT,
    expected_interval_ms BIGINT,
    source TEXT,
    created_ms BIGINT NOT NULL,
    UNIQUE (enterprise, path)
);
CREATE TABLE IF NOT EXISTS {s}.points (
    tag_id INTEGER NOT NULL,
    ts BIGINT NOT NULL,
    value DOUBLE PRECISION,
    text TEXT,
    quality SMALLINT NOT NULL,
    PRIMARY KEY (tag_id, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS {s}.latest (
    tag_id INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    value DOUBLE PRECISION,
    text TEXT,
    quality SMALLINT NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.rollups_hourly (
    tag_id INTEGER NOT NULL,
    hour_ms BIGINT NOT NULL,
    vmin DOUBLE PRECISION, vmax DOUBLE PRECISION, vsum DOUBLE PRECISION, vcount BIGINT NOT NULL,
    first_ts BIGINT, first_value DOUBLE PRECISION, last_ts BIGINT, last_value DOUBLE PRECISION,
    PRIMARY KEY (tag_id, hour_ms)
);
CREATE TABLE IF NOT EXISTS {s}.raw_changes (
    id BIGSERIAL PRIMARY KEY,
    tag_id INTEGER NOT NULL,
    lo BIGINT NOT NULL,
    hi BIGINT NOT NULL,
    written_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.followed_tags (tag_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS {s}.deadletters (
    id BIGSERIAL PRIMARY KEY,
    received_ms BIGINT NOT NULL,
    enterprise TEXT,
    source TEXT NOT NULL,
    ref TEXT,
    reason TEXT NOT NULL,
    payload TEXT
);
"""

_BUCKETS = """
WITH b AS (
    SELECT $1 + ((ts - $1) / $2) * $2 AS start_ms,
           min(value) AS min, max(value) AS max, avg(value) AS avg,
           min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS count
    FROM points WHERE tag_id = $3 AND ts >= $4 AND ts < $5
    GROUP BY 1
)
SELECT b.start_ms, b.min, b.max, b.avg, f.value AS first, l.value AS last, b.count
FROM b
JOIN points f ON f.tag_id = $3 AND f.ts = b.first_ts
JOIN points l ON l.tag_id = $3 AND l.ts = b.last_ts
ORDER BY b.start_ms
"""

_PARAM = re.compile(r"\$(\d+)")
_ARROW_TYPES = {
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    701: pa.float64(),
    1700: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    16: pa.bool_(),
}


def _translate(sql: str) -> str:
    """Turn ``$1`` placeholders (shared with DuckDB) into psycopg's ``%(p1)s``."""
    return _PARAM.sub(lambda m: f"%(p{m.group(1)})s", sql.replace("%", "%%"))


def _reason(exc: Exception) -> str:
    """Return the first line of a driver error (psycopg adds hints on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"PostgreSQL at {parts.hostname or 'localhost'}:{parts.port or 5432}"


class PostgresHistorian(Historian):
    """Historian on a PostgreSQL server; one connection owned by this object."""

    backend = "postgresql"

    def __init__(self, settings: Settings, *, wait: bool = False) -> None:
        """Connect; with ``wait``, a server that is not up yet is not an error: each call
        tries again (`/ready` answers 503 meanwhile) and `health` says it is down."""
        super().__init__(settings)
        assert settings.db
        self.url = settings.db.replace("postgres://", "postgresql://", 1)
        self.schema = settings.pg_schema
        self.partition_ms = settings.pg_partition_days * DAY_MS
        self._partitions: set[int] = set()
        self._lock = threading.RLock()
        self.health = DependencyState(_where(self.url))
        self.con: psycopg.Connection | None = None
        try:
            self.con = self._connect()
        except StorageUnavailable:
            if not wait:
                raise

    def _connect(self) -> psycopg.Connection:
        """Connect, create the schema if needed and prepare the session's staging table."""
        try:
            con = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            self.health.failed(_reason(exc))
            raise StorageUnavailable(
                f"{_where(self.url)} is not reachable; check that the server runs and the URL "
                "is right",
                detail=str(exc).strip(),
            ) from exc
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"the PostgreSQL URL is invalid: {exc}") from exc
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.schema])
            con.execute(_SCHEMA.format(s=self.schema))
        con.execute(f"SET search_path TO {self.schema}")
        con.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged (tag_id INTEGER, ts BIGINT, "
            "value DOUBLE PRECISION, text TEXT, quality SMALLINT)"
        )
        self._partitions.clear()
        self.health.ok()
        return con

    def _alive(self) -> psycopg.Connection:
        """Return the connection, reconnecting first if the server dropped it."""
        if self.con is None or self.con.closed or self.con.broken:
            self.con = None
            self.con = self._connect()
        return self.con

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self.con is not None:
                self.con.close()

    def _run(self, sql: str, params: list[Any] | None = None) -> psycopg.Cursor:
        try:
            return self._alive().execute(
                _translate(sql), {f"p{i + 1}": v for i, v in enumerate(params or [])}
            )
        except psycopg.OperationalError as exc:
            self.health.failed(_reason(exc))
            raise StorageUnavailable(
                f"{_where(self.url)} stopped answering; retry when it is back",
                detail=str(exc).strip(),
            ) from exc

    def _query(self, sql: str, params: list[Any]) -> pa.Table:
        with self._lock:
            cur = self._run(sql, params)
            rows = cur.fetchall()
            desc = cur.description or []
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in desc]
        return pa.table(
            {
                d.name: pa.array(list(col), _ARROW_TYPES.get(d.type_code))
                for d, col in zip(desc, columns, strict=True)
            }
        )

    def _load_tags(self, enterprise: str, paths: list[str]) -> dict[str, tuple[int, DataType]]:
        if not paths:
            return {}
        with self._lock:
            rows = self._run(
                "SELECT path, id, data_type FROM tags WHERE enterprise = $1 AND path = ANY($2)",
                [enterprise, paths],
            ).fetchall()
        return {p: (i, DataType(d)) for p, i, d in rows}

    def _create_tags(self, enterprise: str, specs: list[TagSpec], now_ms: int) -> None:
        if not specs:
            return
        with self._lock, self._alive().cursor() as cur:
            cur.executemany(
                "INSERT INTO tags (enterprise, path, data_type, unit, description, "
                "expected_interval_ms, source, created_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (enterprise, path) DO NOTHING",
                [
                    (
                        enterprise,
                        s.path,
                        str(s.data_type),
                        s.unit,
                        s.description,
                        s.expected_interval_ms,
                        s.source,
                        now_ms,
                    )
                    for s in specs
                ],
            )

    def _ensure_partitions(self, lo: int, hi: int) -> None:
        first = lo // self.partition_ms
        for k in range(first, hi // self.partition_ms + 1):
            if k in self._partitions:
                continue
            start, end = k * self.partition_ms, (k + 1) * self.partition_ms
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {self.schema}.points_{k} PARTITION OF "
                f"{self.schema}.points FOR VALUES FROM ({start}) TO ({end})"
            )
            self._partitions.add(k)

    def _append(self, rows: pa.Table, letters: list[DeadLetter], enterprise: str) -> None:
        mm = pc.min_max(rows.column("ts"))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        tag_ids = rows.column("tag_id").to_numpy()
        binary = _binary_copy(rows)
        with self._lock:
            try:
                con = self._alive()
                self._ensure_partitions(lo, hi)
                with con.transaction(), con.cursor() as cur:
                    unique_ids = np.unique(tag_ids).tolist()
                    overlap = cur.execute(
                        "SELECT EXISTS (SELECT 1 FROM points WHERE tag_id = ANY(%s) "
                        "AND ts BETWEEN %s AND %s)",
                        [unique_ids, lo, hi],
                    ).fetchone()[0]
                    if binary is not None and not overlap:
                        # fast path: nothing to overwrite, COPY straight into the partitions
                        with cur.copy("COPY points FROM STDIN (FORMAT binary)") as copy:
                            copy.write(binary)
                    else:
                        self._upsert_points(cur, rows)
                    self._upsert_latest(cur, rows, tag_ids)
                    self._insert_letters(letters, enterprise)
            except psycopg.OperationalError as exc:
                self.health.failed(_reason(exc))
                raise StorageUnavailable(
                    f"{_where(self.url)} stopped answering during a write; nothing of this "
                    "batch was stored, retry it",
                    detail=str(exc).strip(),
                ) from exc

    @staticmethod
    def _upsert_points(cur: psycopg.Cursor, rows: pa.Table) -> None:
        """Stage rows by COPY and merge them; a duplicate (tag, ts) overwrites."""
        buf = io.BytesIO()
        pacsv.write_csv(rows, buf, pacsv.WriteOptions(include_header=False))
        data = buf.getvalue()
        cur.execute("TRUNCATE staged")
        with cur.copy("COPY staged FROM STDIN (FORMAT csv)") as copy:
            for i in range(0, len(data), 1 << 20):
                copy.write(data[i : i + (1 << 20)])
        cur.execute(
            "INSERT INTO points SELECT * FROM staged ON CONFLICT (tag_id, ts) "
            "DO UPDATE SET value = EXCLUDED.value, text = EXCLUDED.text, "
            "quality = EXCLUDED.quality"
        )

    @staticmethod
    def _upsert_latest(cur: psycopg.Cursor, rows: pa.Table, tag_ids: np.ndarray) -> None:
        """Upsert each tag's newest row of the batch (rows are sorted by tag, then time).

        The same statement journals the ranges written to followed tags (`raw_changes`): a
        data-modifying WITH runs whether or not the query reads it, and a statement of its own
        cost a round trip per batch (about a tenth of the write rate on small batches).
        """
        last = np.flatnonzero(np.append(np.diff(tag_ids) != 0, True))
        newest = rows.take(pa.array(last))
        changed = change_ranges(rows, _now_ms())
        cur.execute(
            "WITH journal AS (INSERT INTO raw_changes (tag_id, lo, hi, written_ms) SELECT * FROM "
            "unnest(%s::int[], %s::bigint[], %s::bigint[], %s::bigint[]) AS c(t) "
            "WHERE t IN (SELECT tag_id FROM followed_tags)) "
            "INSERT INTO latest SELECT * FROM unnest(%s::integer[], %s::bigint[], "
            "%s::double precision[], %s::text[], %s::smallint[]) "
            "ON CONFLICT (tag_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value, "
            "text = EXCLUDED.text, quality = EXCLUDED.quality WHERE EXCLUDED.ts >= latest.ts",
            [changed.column(c).to_pylist() for c in changed.column_names]
            + [newest.column(c).to_pylist() for c in ("tag_id", "ts", "value", "text", "quality")],
        )

    def _insert_letters(self, letters: list[DeadLetter], enterprise: str | None) -> None:
        if not letters:
            return
        now = int(time.time() * 1000)
        with (
            self.con.cursor() as cur,
            cur.copy(
                "COPY deadletters (received_ms, enterprise, source, ref, reason, payload) "
                "FROM STDIN"
            ) as copy,
        ):
            for d in letters:
                copy.write_row(
                    (now, enterprise, d.source, d.ref, _clean(d.reason), _clean(d.payload))
                )

    def add_dead_letters(self, letters: list[DeadLetter], enterprise: str | None = None) -> None:
        """Store dead letters."""
        with self._lock, self._alive().transaction():
            self._insert_letters(letters, enterprise)

    def bucket_sql(self) -> str:
        """Return the PostgreSQL bucket query."""
        return _BUCKETS

    def apply_retention(self, rules: list[RetentionRule], now_ms: int | None = None) -> dict:
        """Roll up raw points past their rule's age into hourly roll-ups, then delete them."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        raw, rolled = self.retention_cutoffs(rules, now_ms)
        if not raw:
            return {"rolled_up": 0, "deleted_points": 0, "deleted_rollups": 0}
        ids, cuts = [r[0] for r in raw], [r[1] for r in raw]
        with self._lock, self._alive().transaction():
            cur = self._run(
                "INSERT INTO rollups_hourly SELECT p.tag_id, p.ts / $1 * $1, min(value), "
                "max(value), sum(value), count(value), min(ts), "
                "(array_agg(value ORDER BY ts))[1], max(ts), "
                "(array_agg(value ORDER BY ts DESC))[1] "
                "FROM points p JOIN unnest(CAST($2 AS INTEGER[]), CAST($3 AS BIGINT[])) "
                "AS c(tag_id, cutoff) ON p.tag_id = c.tag_id AND p.ts < c.cutoff "
                "WHERE p.text IS NULL GROUP BY 1, 2 "
                "ON CONFLICT (tag_id, hour_ms) DO UPDATE SET "
                "vmin = least(rollups_hourly.vmin, EXCLUDED.vmin), "
                "vmax = greatest(rollups_hourly.vmax, EXCLUDED.vmax), "
                "vsum = rollups_hourly.vsum + EXCLUDED.vsum, "
                "vcount = rollups_hourly.vcount + EXCLUDED.vcount, "
                "first_value = CASE WHEN EXCLUDED.first_ts < rollups_hourly.first_ts "
                "THEN EXCLUDED.first_value ELSE rollups_hourly.first_value END, "
                "first_ts = least(rollups_hourly.first_ts, EXCLUDED.first_ts), "
                "last_value = CASE WHEN EXCLUDED.last_ts > rollups_hourly.last_ts "
                "THEN EXCLUDED.last_value ELSE rollups_hourly.last_value END, "
                "last_ts = greatest(rollups_hourly.last_ts, EXCLUDED.last_ts)",
                [HOUR_MS, ids, cuts],
            )
            rolled_up = cur.rowcount
            deleted = self._run(
                "DELETE FROM points p USING unnest(CAST($1 AS INTEGER[]), CAST($2 AS BIGINT[])) "
                "AS c(tag_id, cutoff) WHERE p.tag_id = c.tag_id AND p.ts < c.cutoff",
                [ids, cuts],
            ).rowcount
            deleted_rollups = 0
            if rolled:
                deleted_rollups = self._run(
                    "DELETE FROM rollups_hourly r USING unnest(CAST($1 AS INTEGER[]), "
                    "CAST($2 AS BIGINT[])) AS c(tag_id, cutoff) WHERE r.tag_id = c.tag_id "
                    "AND r.hour_ms < c.cutoff",
                    [[r[0] for r in rolled], [r[1] for r in rolled]],
                ).rowcount
        return {
            "rolled_up": int(rolled_up),
            "deleted_points": int(deleted),
            "deleted_rollups": int(deleted_rollups),
        }


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("tag_len", ">i4"),
        ("tag_id", ">i4"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("text_len", ">i4"),
        ("quality_len", ">i4"),
        ("quality", ">i2"),
    ]
)


def _binary_copy(rows: pa.Table) -> bytes | None:
    """Encode an all-numeric batch in PostgreSQL's binary COPY format with NumPy, else None."""
    if rows.column("text").null_count != rows.num_rows or rows.column("value").null_count:
        return None
    out = np.empty(rows.num_rows, dtype=_ROW)
    out["fields"] = 5
    out["tag_len"], out["tag_id"] = 4, rows.column("tag_id").to_numpy()
    out["ts_len"], out["ts"] = 8, rows.column("ts").to_numpy()
    out["value_len"], out["value"] = 8, rows.column("value").to_numpy()
    out["text_len"] = -1  # NULL
    out["quality_len"], out["quality"] = 2, rows.column("quality").to_numpy()
    return _COPY_HEADER + out.tobytes() + b"\xff\xff"


def _clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters."""
    return None if text is None else text.replace("\x00", "\\x00")
