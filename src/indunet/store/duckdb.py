"""Embedded historian: one DuckDB file under the data dir.

Only one process may open the file for writing (DuckDB's rule): `indunet serve` owns it; other
commands get a clear "locked" error naming the process, and should go through the HTTP API.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from indunet.errors import ConfigError, StorageLocked, StorageUnavailable
from indunet.model import DataType, DeadLetter
from indunet.store.base import DAY_MS, HOUR_MS, Historian, TagSpec, _now_ms, change_ranges

if TYPE_CHECKING:
    from indunet.config import RetentionRule, Settings

__all__ = ["DuckDBHistorian"]

_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS tag_ids START 1;
CREATE TABLE IF NOT EXISTS tags (
    id INTEGER PRIMARY KEY DEFAULT nextval('tag_ids'),
    enterprise VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    data_type VARCHAR NOT NULL,
    unit VARCHAR,
    description VARCHAR,
    expected_interval_ms BIGINT,
    source VARCHAR,
    created_ms BIGINT NOT NULL,
    UNIQUE (enterprise, path)
);
CREATE TABLE IF NOT EXISTS points (
    tag_id INTEGER NOT NULL,
    ts BIGINT NOT NULL,
    value DOUBLE,
    text VARCHAR,
    quality UTINYINT NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
    tag_id INTEGER PRIMARY KEY,
    ts BIGINT NOT NULL,
    value DOUBLE,
    text VARCHAR,
    quality UTINYINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollups_hourly (
    tag_id INTEGER NOT NULL,
    hour_ms BIGINT NOT NULL,
    vmin DOUBLE, vmax DOUBLE, vsum DOUBLE, vcount BIGINT NOT NULL,
    first_ts BIGINT, first_value DOUBLE, last_ts BIGINT, last_value DOUBLE,
    PRIMARY KEY (tag_id, hour_ms)
);
CREATE SEQUENCE IF NOT EXISTS raw_change_ids START 1;
CREATE TABLE IF NOT EXISTS raw_changes (
    id BIGINT PRIMARY KEY DEFAULT nextval('raw_change_ids'),
    tag_id INTEGER NOT NULL,
    lo BIGINT NOT NULL,
    hi BIGINT NOT NULL,
    written_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS followed_tags (tag_id INTEGER PRIMARY KEY);
CREATE SEQUENCE IF NOT EXISTS deadletter_ids START 1;
CREATE TABLE IF NOT EXISTS compacted_hours (
    hour_ms BIGINT PRIMARY KEY,
    points BIGINT NOT NULL,
    compacted_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS compacted_days (
    day_ms BIGINT PRIMARY KEY,
    points BIGINT NOT NULL,
    compacted_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS deadletters (
    id BIGINT PRIMARY KEY DEFAULT nextval('deadletter_ids'),
    received_ms BIGINT NOT NULL,
    enterprise VARCHAR,
    source VARCHAR NOT NULL,
    ref VARCHAR,
    reason VARCHAR NOT NULL,
    payload VARCHAR
);
ALTER TABLE rollups_hourly ADD COLUMN IF NOT EXISTS from_raw BOOLEAN DEFAULT false;
"""

#: the roll-up columns, in order (``from_raw``: the row is exactly its hour's stored raw points,
#: written by compaction; retention replaces such a row instead of adding to it)
_ROLLUP_COLS = (
    "tag_id, hour_ms, vmin, vmax, vsum, vcount, first_ts, first_value, last_ts, last_value, "
    "from_raw"
)
_ROLLUP_OF = (
    "min(value), max(value), sum(value), count(value), min(ts), arg_min(value, ts), max(ts), "
    "arg_max(value, ts)"
)

_BUCKETS = """
SELECT $1 + ((ts - $1) // $2) * $2 AS start_ms,
       min(value) AS min, max(value) AS max, avg(value) AS avg,
       arg_min(value, ts) AS first, arg_max(value, ts) AS last, count(*) AS count
FROM points WHERE tag_id = $3 AND ts >= $4 AND ts < $5
GROUP BY 1 ORDER BY 1
"""


_READ = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)


def _lock_holder(message: str) -> str:
    match = re.search(r"PID (\d+)", message)
    return f" (process {match.group(1)})" if match else ""


class DuckDBHistorian(Historian):
    """Historian in one DuckDB file; the connection is owned by this object, never global."""

    backend = "duckdb"

    def __init__(self, settings: Settings, *, read_only: bool = False) -> None:
        super().__init__(settings)
        self.path: Path = settings.duckdb_path
        self.read_only = read_only
        self._lock = threading.RLock()
        self._followed: np.ndarray | None = None  # tag ids whose writes are journaled
        self._readers = threading.local()  # one read cursor per thread (see `_query`)
        self._reader_list: list[duckdb.DuckDBPyConnection] = []
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.exists():
                raise ConfigError(f"no historian at {self.path}; import or ingest data first")
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except OSError as exc:
            raise ConfigError(
                f"data dir {self.path.parent} cannot be used: {exc.strerror or exc}"
            ) from exc
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise StorageLocked(
                    f"historian {self.path} is locked by another indunet process"
                    f"{_lock_holder(text)}; stop it or use its HTTP API",
                    detail=text,
                ) from exc
            if "read-only" in text.lower() or "permission" in text.lower():
                raise ConfigError(
                    f"data dir {self.path.parent} is read-only; choose a writable --data-dir",
                    detail=text,
                ) from exc
            raise StorageUnavailable(f"cannot open historian {self.path}: {text}") from exc
        if not read_only:
            try:
                self.con.execute(_SCHEMA)
            except duckdb.Error as exc:
                raise ConfigError(
                    f"cannot create the historian tables in {self.path}: {exc}"
                ) from exc

    def _followed_changes(self, rows: pa.Table) -> pa.Table | None:
        """Return the journal rows of a batch's followed tags, or None when it has none.

        The file is one process's alone (it holds the lock), so the followed set is kept here
        and most batches cost the journal nothing.
        """
        if self._followed is None:
            got = self.con.execute("SELECT tag_id FROM followed_tags").fetchall()
            self._followed = np.array(sorted(r[0] for r in got), np.int32)
        if not len(self._followed):
            return None
        changed = change_ranges(rows, _now_ms())
        keep = np.isin(changed.column("tag_id").to_numpy(), self._followed)
        return changed.filter(pa.array(keep)) if keep.any() else None

    def follow_tags(self, enterprise: str, paths: list[str]) -> None:
        """Journal every later write of these tags (see `Historian.follow_tags`)."""
        super().follow_tags(enterprise, paths)
        with self._lock:
            self._followed = None  # read again on the next write

    def close(self) -> None:
        """Close the read cursors and the DuckDB connection."""
        with self._lock:
            for reader in self._reader_list:
                reader.close()
            self._reader_list.clear()
            self.con.close()

    # -------------------------------------------------------------- primitives
    def _reader(self) -> duckdb.DuckDBPyConnection:
        """Return this thread's read cursor (DuckDB: one cursor per thread, reads run in parallel).

        A cursor reads the last committed state; it never waits for the writer's lock.
        """
        reader = getattr(self._readers, "cursor", None)
        if reader is None:
            with self._lock:
                reader = self._readers.cursor = self.con.cursor()
                self._reader_list.append(reader)
        return reader

    def _query(self, sql: str, params: list[Any]) -> pa.Table:
        """Run a query: a SELECT on this thread's read cursor, anything else under the lock.

        A thread inside a transaction of its own (it holds the lock) reads on the writer's
        connection, so it sees what it wrote.
        """
        if _READ.match(sql) and not self._lock._is_owned():  # type: ignore[attr-defined]
            return self._reader().execute(sql, params).to_arrow_table()
        with self._lock:
            cur = self.con.cursor()
            try:
                return cur.execute(sql, params).to_arrow_table()
            finally:
                cur.close()

    def _load_tags(self, enterprise: str, paths: list[str]) -> dict[str, tuple[int, DataType]]:
        if not paths:
            return {}
        # join against a registered Arrow table: binding a long list as a parameter is slow
        wanted = pa.table({"path": pa.array(paths, pa.string())})
        with self._lock:
            cur = self.con.cursor()
            try:
                cur.register("wanted_paths", wanted)
                table = cur.execute(
                    "SELECT t.path, t.id, t.data_type FROM tags t "
                    "JOIN (SELECT DISTINCT path FROM wanted_paths) w ON t.path = w.path "
                    "WHERE t.enterprise = $1",
                    [enterprise],
                ).to_arrow_table()
            finally:
                cur.close()
        return {
            p: (i, DataType(d))
            for p, i, d in zip(
                table.column("path").to_pylist(),
                table.column("id").to_pylist(),
                table.column("data_type").to_pylist(),
                strict=True,
            )
        }

    def _create_tags(self, enterprise: str, specs: list[TagSpec], now_ms: int) -> None:
        if not specs:
            return
        new = pa.table(
            {
                "enterprise": [enterprise] * len(specs),
                "path": [s.path for s in specs],
                "data_type": [str(s.data_type) for s in specs],
                "unit": [s.unit for s in specs],
                "description": [s.description for s in specs],
                "expected_interval_ms": pa.array(
                    [s.expected_interval_ms for s in specs], pa.int64()
                ),
                "source": [s.source for s in specs],
                "created_ms": [now_ms] * len(specs),
            }
        )
        with self._lock:
            self.con.register("new_tags", new)
            try:
                self.con.execute(
                    "INSERT INTO tags (enterprise, path, data_type, unit, description, "
                    "expected_interval_ms, source, created_ms) SELECT * FROM new_tags "
                    "ON CONFLICT (enterprise, path) DO NOTHING"
                )
            finally:
                self.con.unregister("new_tags")

    def _append(self, rows: pa.Table, letters: list[DeadLetter], enterprise: str) -> None:
        lo, hi = _min_max(rows)
        with self._lock:
            con = self.con
            con.register("staged", rows)
            try:
                con.execute("BEGIN TRANSACTION")
                overlap = con.execute(
                    "SELECT count(*) FROM points WHERE ts BETWEEN $1 AND $2 AND tag_id IN "
                    "(SELECT DISTINCT tag_id FROM staged)",
                    [lo, hi],
                ).fetchone()[0]
                if overlap:
                    con.execute(
                        "DELETE FROM points WHERE ts BETWEEN $1 AND $2 AND (tag_id, ts) IN "
                        "(SELECT (tag_id, ts) FROM staged)",
                        [lo, hi],
                    )
                con.execute("INSERT INTO points SELECT * FROM staged")
                changed = self._followed_changes(rows)
                if changed is not None:
                    con.register("changed", changed)
                    con.execute(
                        "INSERT INTO raw_changes (tag_id, lo, hi, written_ms) SELECT * FROM changed"
                    )
                    con.unregister("changed")
                con.register("newest", _newest(rows))
                con.execute(
                    "INSERT INTO latest SELECT * FROM newest "
                    "ON CONFLICT (tag_id) DO UPDATE SET ts = excluded.ts, value = excluded.value, "
                    "text = excluded.text, quality = excluded.quality "
                    "WHERE excluded.ts >= latest.ts"
                )
                con.unregister("newest")
                self._insert_letters(letters, enterprise)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("staged")

    def _insert_letters(self, letters: list[DeadLetter], enterprise: str | None) -> None:
        if not letters:
            return
        now = int(time.time() * 1000)
        table = pa.table(
            {
                "received_ms": [now] * len(letters),
                "enterprise": [enterprise] * len(letters),
                "source": [d.source for d in letters],
                "ref": [d.ref for d in letters],
                "reason": [d.reason for d in letters],
                "payload": [d.payload for d in letters],
            }
        )
        self.con.register("new_letters", table)
        try:
            self.con.execute(
                "INSERT INTO deadletters (received_ms, enterprise, source, ref, reason, payload) "
                "SELECT * FROM new_letters"
            )
        finally:
            self.con.unregister("new_letters")

    def add_dead_letters(self, letters: list[DeadLetter], enterprise: str | None = None) -> None:
        """Store dead letters."""
        with self._lock:
            self._insert_letters(letters, enterprise)

    def bucket_sql(self) -> str:
        """Return the DuckDB bucket query."""
        return _BUCKETS

    def apply_retention(self, rules: list[RetentionRule], now_ms: int | None = None) -> dict:
        """Roll up raw points past their rule's age into hourly roll-ups, then delete them."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        raw, rolled = self.retention_cutoffs(rules, now_ms)
        if not raw:
            return {"rolled_up": 0, "deleted_points": 0, "deleted_rollups": 0}
        cut = pa.table({"tag_id": [r[0] for r in raw], "cutoff": [r[1] for r in raw]})
        with self._lock:
            con = self.con
            con.register("cut", cut)
            try:
                con.execute("BEGIN TRANSACTION")
                rolled_up = con.execute(
                    f"INSERT INTO rollups_hourly AS r ({_ROLLUP_COLS}) SELECT p.tag_id, "
                    f"p.ts // $1 * $1, {_ROLLUP_OF}, false FROM points p JOIN cut c "
                    "ON p.tag_id = c.tag_id AND p.ts < c.cutoff WHERE p.text IS NULL GROUP BY 1, 2 "
                    f"ON CONFLICT (tag_id, hour_ms) DO UPDATE SET {_MERGE_ROLLUP}",
                    [HOUR_MS],
                ).fetchone()[0]
                deleted = con.execute(
                    "DELETE FROM points USING cut WHERE points.tag_id = cut.tag_id "
                    "AND points.ts < cut.cutoff"
                ).fetchone()[0]
                deleted_rollups = 0
                if rolled:
                    con.register(
                        "rcut",
                        pa.table(
                            {"tag_id": [r[0] for r in rolled], "cutoff": [r[1] for r in rolled]}
                        ),
                    )
                    deleted_rollups = con.execute(
                        "DELETE FROM rollups_hourly USING rcut WHERE rollups_hourly.tag_id = "
                        "rcut.tag_id AND rollups_hourly.hour_ms < rcut.cutoff"
                    ).fetchone()[0]
                    con.unregister("rcut")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("cut")
        return {
            "rolled_up": int(rolled_up),
            "deleted_points": int(deleted),
            "deleted_rollups": int(deleted_rollups),
        }

    def compact(self, start_ms: int | None = None, end_ms: int | None = None) -> int:
        """Rewrite points in ``[start, end)`` sorted by (tag, time): one tag's reads skip the rest.

        Live ingest appends small batches in arrival order; compacting closed periods (run it
        hourly or nightly) restores the clustering that makes a single tag's query fast.
        """
        lo = -1 if start_ms is None else start_ms
        hi = 2**62 if end_ms is None else end_ms
        with self._lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "CREATE TEMP TABLE compacting AS SELECT * FROM points "
                    "WHERE ts >= $1 AND ts < $2 ORDER BY tag_id, ts",
                    [lo, hi],
                )
                n = con.execute(
                    "DELETE FROM points WHERE ts >= $1 AND ts < $2", [lo, hi]
                ).fetchone()[0]
                con.execute("INSERT INTO points SELECT * FROM compacting")
                con.execute("DROP TABLE compacting")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("CHECKPOINT")
        return int(n)

    # -------------------------------------------------------------- background compaction
    def hours_to_compact(self, since_ms: int) -> list[int]:
        """Return the hours from ``since_ms`` whose points changed since their last compaction.

        An hour counts as changed when its number of points differs from what compaction
        recorded (a restart loses the in-memory record of writes; this finds most of them).
        """
        return self._to_compact("compacted_hours", "hour_ms", HOUR_MS, since_ms)

    def days_to_compact(self, since_ms: int) -> list[int]:
        """Return the days (UTC) from ``since_ms`` changed since their last day compaction."""
        return self._to_compact("compacted_days", "day_ms", DAY_MS, since_ms)

    def _to_compact(self, table: str, key: str, span_ms: int, since_ms: int) -> list[int]:
        found = self._query(
            f"SELECT h.{key} FROM (SELECT ts // $1 * $1 AS {key}, count(*) AS n FROM points "
            f"WHERE ts >= $2 GROUP BY 1) h LEFT JOIN {table} c ON c.{key} = h.{key} "
            f"WHERE c.points IS NULL OR c.points <> h.n ORDER BY 1",
            [span_ms, since_ms // span_ms * span_ms],
        )
        return [int(h) for h in found.column(key).to_pylist()]

    def compact_hour(
        self, hour_ms: int, *, chunk_rows: int = 200_000, pause_s: float = 0.005
    ) -> int:
        """Compact one hour in chunks of tags and bring its hourly roll-ups up to date.

        Each chunk (about ``chunk_rows`` points: a run of tag ids) is one transaction under the
        writer's lock: its points rewritten sorted by (tag, time), its tags' roll-ups of the hour
        recomputed from them. Between chunks the lock is free for ``pause_s``, so ingest waits
        at most one chunk. Readers see each chunk before or after, never half: every query
        answers the same values throughout. Return how many points were rewritten.
        """
        if hour_ms % HOUR_MS:
            raise ValueError(f"hour_ms {hour_ms} is not on an hour")
        return self._compact_span(hour_ms, HOUR_MS, "compacted_hours", chunk_rows, pause_s)

    def compact_day(self, day_ms: int, *, chunk_rows: int = 200_000, pause_s: float = 0.005) -> int:
        """Merge a closed day's compacted hours into one run per tag, sorted by (tag, time).

        An hour's compaction leaves each tag's day in 24 pieces, one per hour; a query over the
        day then reads 24 row groups where one or two hold the tag after this. Chunks, locking
        and answers as in `compact_hour`; the roll-ups are the hours' (values do not change).
        """
        if day_ms % DAY_MS:
            raise ValueError(f"day_ms {day_ms} is not on a day (UTC)")
        return self._compact_span(day_ms, DAY_MS, "compacted_days", chunk_rows, pause_s)

    def _compact_span(
        self, start: int, span_ms: int, record: str, chunk_rows: int, pause_s: float
    ) -> int:
        end = start + span_ms
        counts = self._query(
            "SELECT tag_id, count(*) AS n FROM points WHERE ts >= $1 AND ts < $2 "
            "GROUP BY 1 ORDER BY 1",
            [start, end],
        )
        bounds = _tag_chunks(
            counts.column("tag_id").to_numpy(), counts.column("n").to_numpy(), chunk_rows
        )
        rollup_hour = start if span_ms == HOUR_MS else None
        done = 0
        for i, (after, upto) in enumerate(bounds):
            if i:
                time.sleep(pause_s)  # the writer's turn
            with self._lock:
                done += self._compact_chunk(start, end, after, upto, rollup_hour)
        key = "hour_ms" if span_ms == HOUR_MS else "day_ms"
        with self._lock:
            self.con.execute(
                f"INSERT INTO {record} SELECT $1, count(*), $3 FROM points "
                f"WHERE ts >= $1 AND ts < $2 ON CONFLICT ({key}) DO UPDATE SET "
                "points = excluded.points, compacted_ms = excluded.compacted_ms",
                [start, end, _now_ms()],
            )
        time.sleep(pause_s)
        # drop the emptied storage now (scans of the span skip it from here on); when busy,
        # DuckDB's own checkpoint does it later
        with self._lock, contextlib.suppress(duckdb.Error):
            self.con.execute("CHECKPOINT")
        return done

    def _compact_chunk(
        self, start: int, end: int, after: int, upto: int, rollup_hour: int | None
    ) -> int:
        """Rewrite the points of tags ``after < tag_id <= upto`` in ``[start, end)`` sorted,
        and (an hour) recompute their roll-ups of that hour; one transaction."""
        con = self.con
        where = "ts >= $1 AND ts < $2 AND tag_id > $3 AND tag_id <= $4"
        params = [start, end, after, upto]
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f"CREATE TEMP TABLE compacting AS SELECT * FROM points WHERE {where} "
                "ORDER BY tag_id, ts",
                params,
            )
            n = con.execute(f"DELETE FROM points WHERE {where}", params).fetchone()[0]
            con.execute("INSERT INTO points SELECT * FROM compacting")
            if rollup_hour is not None:
                con.execute(
                    f"INSERT INTO rollups_hourly AS r ({_ROLLUP_COLS}) SELECT tag_id, $1, "
                    f"{_ROLLUP_OF}, true FROM compacting WHERE text IS NULL GROUP BY tag_id "
                    f"ON CONFLICT (tag_id, hour_ms) DO UPDATE SET {_REPLACE_ROLLUP} "
                    "WHERE r.from_raw",
                    [rollup_hour],
                )
            con.execute("DROP TABLE compacting")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return int(n)


def _tag_chunks(tag_ids: np.ndarray, counts: np.ndarray, chunk_rows: int) -> list[tuple[int, int]]:
    """Split sorted tag ids into runs of about ``chunk_rows`` points: (after, upto] bounds.

    The first run starts below every id and the last is open above, so tags created meanwhile
    are covered too.
    """
    bounds: list[tuple[int, int]] = []
    after, acc = -1, 0
    for tag_id, n in zip(tag_ids.tolist(), counts.tolist(), strict=True):
        acc += n
        if acc >= chunk_rows:
            bounds.append((after, tag_id))
            after, acc = tag_id, 0
    bounds.append((after, 2**31 - 1))
    return bounds


def _merge(column: str, merged: str) -> str:
    """SET clause of one roll-up column: replaced over a compaction's row, else merged."""
    return f"{column} = CASE WHEN r.from_raw THEN excluded.{column} ELSE {merged} END"


#: retention's upsert of a roll-up: late data for a rolled-up hour adds to it; a row compaction
#: wrote (``from_raw``: the same raw points retention is rolling up now) is replaced
_MERGE_ROLLUP = ", ".join(
    [
        _merge("vmin", "least(r.vmin, excluded.vmin)"),
        _merge("vmax", "greatest(r.vmax, excluded.vmax)"),
        _merge("vsum", "r.vsum + excluded.vsum"),
        _merge("vcount", "r.vcount + excluded.vcount"),
        _merge(
            "first_value",
            "CASE WHEN excluded.first_ts < r.first_ts THEN excluded.first_value "
            "ELSE r.first_value END",
        ),
        _merge("first_ts", "least(r.first_ts, excluded.first_ts)"),
        _merge(
            "last_value",
            "CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last_value ELSE r.last_value END",
        ),
        _merge("last_ts", "greatest(r.last_ts, excluded.last_ts)"),
        "from_raw = false",
    ]
)


#: compaction's upsert of a roll-up it owns: the hour's stored points, whole
_REPLACE_ROLLUP = ", ".join(
    f"{c} = excluded.{c}"
    for c in ("vmin", "vmax", "vsum", "vcount", "first_ts", "first_value", "last_ts", "last_value")
)


def _newest(rows: pa.Table) -> pa.Table:
    """Return each tag's newest row (``rows`` are sorted by tag, then time)."""
    tag_ids = rows.column("tag_id").to_numpy()
    last = np.flatnonzero(np.append(np.diff(tag_ids) != 0, True))
    return rows.take(pa.array(last))


def _min_max(rows: pa.Table) -> tuple[int, int]:
    import pyarrow.compute as pc

    mm = pc.min_max(rows.column("ts"))
    return mm["min"].as_py(), mm["max"].as_py()
