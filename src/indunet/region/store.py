"""The monitor's own DuckDB file (``region.duckdb`` in the data dir) and everything done on it.

One `RegionStore` object owns one connection; nothing is opened at import time. Tables:

- ``enterprises``: registry versions with validity ``[valid_from, valid_to)`` (NULL = open),
  ``eid`` an internal integer key shared by the versions of one enterprise;
- ``enterprise_keys``: ``enterprise_id`` → ``eid``;
- ``readings``: one row per (eid, day) with daily kWh; a late correction replaces the row;
- ``reading_days``: rows per day (what days exist, without scanning readings);
- ``quarantine``: rows kept aside with the reason (bad values, duplicates, unregistered, ...);
- ``baselines``, ``thetas``, ``rollups``, ``meta``: the stored rule's baselines and daily
  roll-ups at the grain province × city × division × size × above-designated-size.
"""

from __future__ import annotations

import csv
import gzip
import threading
import time
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from indunet.errors import DataError, StorageLocked
from indunet.region.rate import (
    COUNT_COLUMNS,
    ROLLUP_KEYS,
    Filters,
    Rule,
    dim_counts_sql,
    enterprise_states_sql,
    group_columns,
    headline,
    previous_days,
    summarise,
)
from indunet.region.readings import ReadingsReport, reading_files
from indunet.region.registry import (
    OPTIONAL_COLUMNS,
    REGISTRY_COLUMNS,
    REQUIRED_COLUMNS,
    RegistryCheck,
    RowError,
    check_registry,
    read_registry_file,
)
from indunet.region.settings import RegionSettings

__all__ = ["RegionStore", "RegistryReport", "open_region_store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS enterprise_keys (enterprise_id VARCHAR NOT NULL, eid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS enterprises (
  eid INTEGER NOT NULL, enterprise_id VARCHAR NOT NULL, name VARCHAR NOT NULL,
  province_code VARCHAR NOT NULL, province VARCHAR NOT NULL, city VARCHAR NOT NULL,
  county VARCHAR, industry VARCHAR NOT NULL, division VARCHAR NOT NULL, section VARCHAR NOT NULL,
  size VARCHAR NOT NULL, above_designated_size BOOLEAN NOT NULL, lat DOUBLE, lon DOUBLE,
  key_enterprise BOOLEAN NOT NULL, chain VARCHAR, supplies VARCHAR[],
  valid_from DATE, valid_to DATE, source VARCHAR, loaded_ms BIGINT
);
CREATE TABLE IF NOT EXISTS readings (eid INTEGER NOT NULL, day DATE NOT NULL, kwh DOUBLE NOT NULL);
CREATE TABLE IF NOT EXISTS reading_days (day DATE NOT NULL, rows BIGINT NOT NULL);
CREATE SEQUENCE IF NOT EXISTS quarantine_id;
CREATE TABLE IF NOT EXISTS quarantine (
  id BIGINT DEFAULT nextval('quarantine_id'), received_ms BIGINT, kind VARCHAR, source VARCHAR,
  ref VARCHAR, enterprise_id VARCHAR, day VARCHAR, kwh VARCHAR, reason VARCHAR
);
CREATE TABLE IF NOT EXISTS baselines (eid INTEGER NOT NULL, kwh DOUBLE NOT NULL, days INTEGER);
CREATE TABLE IF NOT EXISTS declared_baselines (
  eid INTEGER NOT NULL PRIMARY KEY, kwh DOUBLE NOT NULL, source VARCHAR, loaded_ms BIGINT
);
CREATE TABLE IF NOT EXISTS thetas (division VARCHAR NOT NULL, theta DOUBLE NOT NULL);
CREATE TABLE IF NOT EXISTS rollups (
  day DATE NOT NULL, province_code VARCHAR, city VARCHAR, division VARCHAR, size VARCHAR,
  above_designated_size BOOLEAN, enterprises BIGINT, with_reading BIGINT, reporting BIGINT,
  resumed BIGINT, kwh DOUBLE, baseline_kwh DOUBLE
);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR NOT NULL, value VARCHAR);
CREATE TABLE IF NOT EXISTS groups (
  gid INTEGER NOT NULL, province_code VARCHAR, city VARCHAR, division VARCHAR, section VARCHAR,
  size VARCHAR, above_designated_size BOOLEAN, theta DOUBLE
);
CREATE TABLE IF NOT EXISTS ent_dim (
  eid INTEGER NOT NULL, gid INTEGER NOT NULL, valid_from DATE, valid_to DATE, base DOUBLE,
  thr DOUBLE
);
"""
#: the versioned attributes of an enterprise: every registry column but its key and validity
_ATTRS = tuple(c for c in REGISTRY_COLUMNS if c not in ("enterprise_id", "valid_from"))
_REFRESH_CHUNK_DAYS = 10
#: live counts of at most this many days go through NumPy (memory ~ days × enterprises × 40 B)
_ARRAY_DAYS = 32
_CSV = "header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"'"


class RegistryReport:
    """What a registry import did: new enterprises, new versions, unchanged and refused rows."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows = 0
        self.new = 0
        self.changed = 0
        self.unchanged = 0
        self.errors: list[RowError] = []
        self.warnings: list[str] = []

    @property
    def refused(self) -> int:
        """Return how many rows were refused."""
        return len({e.row for e in self.errors})

    def as_dict(self, limit: int = 50) -> dict[str, Any]:
        """Return the report for JSON output (at most ``limit`` error lines)."""
        return {
            "file": self.source,
            "rows": self.rows,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "refused": self.refused,
            "errors": [str(e) for e in self.errors[:limit]],
            "warnings": self.warnings[:limit],
        }


def open_region_store(
    settings: RegionSettings, data_dir: Path, *, read_only: bool = False
) -> RegionStore:
    """Open (and create) ``region.duckdb`` in the data dir."""
    return RegionStore(settings, data_dir / "region.duckdb", read_only=read_only)


class RegionStore:
    """The resumption monitor's DuckDB file: registry, readings, quarantine and roll-ups."""

    def __init__(self, settings: RegionSettings, path: Path, *, read_only: bool = False) -> None:
        self.settings = settings
        self.path = path
        self.rule = Rule.from_settings(settings)
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if read_only and not path.exists():
                self._con = duckdb.connect(str(path))
                self._con.execute(_SCHEMA)
                self._con.close()
            self._con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StorageLocked(
                    f"{path} is in use by another indunet process (e.g. `indunet serve`); stop "
                    "it or wait, then retry",
                    detail=str(exc),
                ) from exc
            raise
        if not read_only:
            self._con.execute(_SCHEMA)
            if self._sql(
                "SELECT ((SELECT count(*) FROM ent_dim) = 0 AND "
                "(SELECT count(*) FROM enterprises) > 0) OR NOT EXISTS (SELECT 1 FROM "
                "information_schema.columns WHERE table_name = 'ent_dim' AND column_name = 'thr')"
            ).fetchone()[0]:
                self._build_dim()  # a file written before ent_dim existed
        self._stored_rule = self._meta("rule")
        self._dim_cache: dict[str, np.ndarray] | None = None
        self._dim_stamp: tuple | None = None

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> RegionStore:
        """Return the open store."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    def _sql(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        return self._con.execute(sql, params) if params else self._con.execute(sql)

    def _pl(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        return pl.from_arrow(self._sql(sql, params).to_arrow_table())  # type: ignore[return-value]

    def _meta(self, key: str) -> str | None:
        row = self._sql("SELECT value FROM meta WHERE key = $k", {"k": key}).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._sql("DELETE FROM meta WHERE key = $k", {"k": key})
        self._sql("INSERT INTO meta VALUES ($k, $v)", {"k": key, "v": value})

    # ------------------------------------------------------------------ registry
    def import_registry(
        self, path: Path, *, effective: date, now_ms: int | None = None
    ) -> RegistryReport:
        """Import a registry file; changed enterprises get a new version from ``effective``.

        A row's own ``valid_from`` overrides ``effective``. Refused rows are reported and kept
        in the quarantine table; accepted ones are stored.
        """
        frame, read_errors = read_registry_file(path)
        check = check_registry(frame)
        check.errors = sorted(read_errors + check.errors, key=lambda e: (e.row, e.field))
        return self.load_registry(check, source=path.name, effective=effective, now_ms=now_ms)

    def load_registry(
        self,
        check: RegistryCheck,
        *,
        source: str,
        effective: date,
        now_ms: int | None = None,
    ) -> RegistryReport:
        """Store checked registry rows as versions (see `import_registry`)."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        report = RegistryReport(source)
        report.errors = list(check.errors)
        rows = check.rows
        report.rows = rows.height + report.refused
        with self._lock:
            self._sql("BEGIN")
            try:
                first_changed = self._store_versions(rows, report, source, effective, now_ms)
                self._quarantine_registry(report.errors, source, now_ms)
                known = {
                    r[0] for r in self._sql("SELECT enterprise_id FROM enterprise_keys").fetchall()
                }
                wanted = set(rows.get_column("supplies").explode().drop_nulls().to_list())
                for ref in sorted(wanted - known)[:50]:
                    report.warnings.append(f"supplies names {ref}, which is not in the registry")
                self._sql("COMMIT")
            except Exception:
                self._sql("ROLLBACK")
                raise
            if report.new or report.changed:
                self._build_dim()
            if first_changed is not None:
                self._refresh_from(first_changed)
        return report

    def register(
        self,
        rows: list[dict[str, Any]],
        *,
        source: str,
        effective: date,
        now_ms: int | None = None,
    ) -> RegistryReport:
        """Register enterprises from documents (registry columns, optional ``baseline_kwh``).

        All or nothing: every row is checked as a registry file's is, and when any row (or any
        ``baseline_kwh``) is refused a `DataError` lists the errors and nothing is stored. A
        ``baseline_kwh`` is the enterprise's declared normal daily kWh (`declare_baselines`).
        """
        if not rows:
            raise DataError("no enterprises to register")
        if len(rows) > 1000:
            raise DataError(f"{len(rows)} enterprises at once: at most 1000")
        columns = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        for i, r in enumerate(rows, start=1):
            extra = sorted(set(r) - set(columns) - {"baseline_kwh"})
            if extra:
                raise DataError(f"row {i}: unknown field(s) {', '.join(extra)}")
        text = {
            c: pl.Series(c, [_text(r.get(c)) for r in rows], pl.String)
            for c in columns
            if c in REQUIRED_COLUMNS or any(r.get(c) is not None for r in rows)
        }
        check = check_registry(pl.DataFrame(text))
        errors = [str(e) for e in check.errors]
        baselines: dict[str, float] = {}
        for i, r in enumerate(rows, start=1):
            raw = r.get("baseline_kwh")
            if raw is None or raw == "":
                continue
            try:
                kwh = float(raw)
            except (TypeError, ValueError):
                kwh = float("nan")
            if isinstance(raw, bool) or not (0 < kwh <= self.settings.max_daily_kwh):
                errors.append(
                    f"row {i}, field baseline_kwh: {raw!r} is not a daily kWh in (0, "
                    f"{self.settings.max_daily_kwh:g}]"
                )
            else:
                baselines[str(r.get("enterprise_id", "")).strip()] = kwh
        if errors:
            raise DataError("; ".join(errors[:20]))
        report = self.load_registry(check, source=source, effective=effective, now_ms=now_ms)
        self.declare_baselines(baselines, source=source, now_ms=now_ms)
        return report

    def _store_versions(
        self,
        rows: pl.DataFrame,
        report: RegistryReport,
        source: str,
        effective: date,
        now_ms: int,
    ) -> date | None:
        """Apply rows round by round (an enterprise's versions in order of valid_from)."""
        if rows.height == 0:
            return None
        ranked = rows.with_columns(
            pl.col("valid_from").rank("ordinal").over("enterprise_id").alias("_round"),
        ).with_columns(
            # NULL valid_from ranks first
            pl.when(pl.col("valid_from").is_null())
            .then(0)
            .otherwise(pl.col("_round"))
            .alias("_round")
        )
        self._con.register("incoming_all", ranked.to_arrow())
        try:
            self._sql(
                "INSERT INTO enterprise_keys SELECT enterprise_id, "
                "(SELECT coalesce(max(eid), 0) FROM enterprise_keys) + row_number() OVER "
                "(ORDER BY min(row)) FROM incoming_all i WHERE enterprise_id NOT IN "
                "(SELECT enterprise_id FROM enterprise_keys) GROUP BY enterprise_id"
            )
            first: date | None = None
            all_days = False
            rounds = sorted(set(ranked.get_column("_round").to_list()))
            differs = " OR ".join(f"c.{a} IS DISTINCT FROM i.{a}" for a in _ATTRS)
            cols = ", ".join(_ATTRS)
            icols = ", ".join(f"i.{a}" for a in _ATTRS)
            for rnd in rounds:
                self._sql(
                    "CREATE OR REPLACE TEMP TABLE incoming AS SELECT i.*, k.eid, "
                    "c.valid_from AS cur_from, c.eid IS NOT NULL AS has_current, "
                    f"c.eid IS NOT NULL AND ({differs}) AS changed, "
                    "coalesce(i.valid_from, $eff) AS start "
                    "FROM incoming_all i JOIN enterprise_keys k USING (enterprise_id) "
                    "LEFT JOIN enterprises c ON c.eid = k.eid AND c.valid_to IS NULL "
                    "WHERE i._round = $r",
                    {"eff": effective, "r": rnd},
                )
                bad = self._sql(
                    "SELECT row, enterprise_id, start, cur_from FROM incoming WHERE changed "
                    "AND cur_from IS NOT NULL AND start < cur_from"
                ).fetchall()
                for row, eid, start, cur in bad:
                    report.errors.append(
                        RowError(
                            row,
                            "valid_from",
                            f"{eid}: a change from {start} is before its current version's "
                            f"start {cur}; give a later valid_from",
                        )
                    )
                self._sql(
                    "DELETE FROM incoming WHERE changed AND cur_from IS NOT NULL "
                    "AND start < cur_from"
                )
                counts = self._sql(
                    "SELECT count(*) FILTER (WHERE NOT has_current), "
                    "count(*) FILTER (WHERE changed), "
                    "count(*) FILTER (WHERE has_current AND NOT changed), "
                    "min(start) FILTER (WHERE changed), "
                    "count(*) FILTER (WHERE NOT has_current AND valid_from IS NULL), "
                    "min(valid_from) FILTER (WHERE NOT has_current) FROM incoming"
                ).fetchone()
                report.new += counts[0]
                report.changed += counts[1]
                report.unchanged += counts[2]
                for candidate in (counts[3], counts[5]):
                    if candidate is not None and (first is None or candidate < first):
                        first = candidate
                all_days = all_days or counts[4] > 0
                # a change starting on the current version's own start corrects it in place
                self._sql(
                    "DELETE FROM enterprises e USING incoming i WHERE e.eid = i.eid "
                    "AND e.valid_to IS NULL AND i.changed AND e.valid_from = i.start"
                )
                self._sql(
                    "UPDATE enterprises e SET valid_to = i.start FROM incoming i "
                    "WHERE e.eid = i.eid AND e.valid_to IS NULL AND i.changed"
                )
                self._sql(
                    f"INSERT INTO enterprises (eid, enterprise_id, {cols}, valid_from, valid_to, "
                    f"source, loaded_ms) SELECT i.eid, i.enterprise_id, {icols}, "
                    "CASE WHEN i.changed THEN i.start ELSE i.valid_from END, NULL, $src, $now "
                    "FROM incoming i WHERE NOT i.has_current OR i.changed",
                    {"src": source, "now": now_ms},
                )
        finally:
            self._con.unregister("incoming_all")
        if all_days:
            return date.min
        return first

    def _quarantine_registry(self, errors: list[RowError], source: str, now_ms: int) -> None:
        if not errors:
            return
        table = pa.table(
            {
                "ref": [f"row {e.row}" for e in errors],
                "reason": [f"field {e.field}: {e.message}" for e in errors],
            }
        )
        self._con.register("registry_errors", table)
        try:
            self._sql(
                "INSERT INTO quarantine (received_ms, kind, source, ref, reason) "
                "SELECT $now, 'registry', $src, ref, reason FROM registry_errors",
                {"now": now_ms, "src": source},
            )
        finally:
            self._con.unregister("registry_errors")

    def registry(self, *, current: bool = True, limit: int = 1000) -> list[dict[str, Any]]:
        """Return registry rows (current versions, or all versions with their validity)."""
        with self._lock:
            where = "WHERE valid_to IS NULL" if current else ""
            return self._pl(
                f"SELECT * EXCLUDE (eid, loaded_ms) FROM enterprises {where} "
                "ORDER BY enterprise_id, valid_from NULLS FIRST LIMIT $n",
                {"n": limit},
            ).to_dicts()

    # ------------------------------------------------------------------ readings
    def import_readings(self, path: Path, *, today: date, refresh: bool = True) -> ReadingsReport:
        """Import daily readings (CSV or Parquet, long format enterprise_id,date,kwh)."""
        report = ReadingsReport()
        for file in reading_files(path):
            report.files.append(str(file))
            self._import_one(self._stage_file(file), file.name, today, report)
        if refresh:
            self._after_readings(report)
        return report

    def load_readings(
        self, table: pa.Table, *, source: str, today: date, refresh: bool = True
    ) -> ReadingsReport:
        """Import readings from an Arrow table (enterprise_id, date, kwh); refs are row numbers."""
        report = ReadingsReport(files=[source])
        table = table.append_column("pos", pa.array(np.arange(1, table.num_rows + 1)))
        with self._lock:
            self._con.register("arrow_in", table)
            try:
                self._sql(
                    "CREATE OR REPLACE TEMP TABLE stage AS SELECT pos, "
                    "CAST(enterprise_id AS VARCHAR) AS enterprise_id, date AS day_raw, "
                    "kwh AS kwh_raw FROM arrow_in"
                )
            finally:
                self._con.unregister("arrow_in")
        self._import_one(0, source, today, report)
        if refresh:
            self._after_readings(report)
        return report

    def _stage_file(self, file: Path) -> int:
        """Load one file into TEMP ``stage`` (pos, enterprise_id, day_raw, kwh_raw) as is.

        ``pos`` is the row (Parquet, 1-based) or line (CSV, header = 1) in the file.

        Return the number of broken CSV lines (already moved to the quarantine).
        """
        name = str(file)
        with self._lock:
            if name.lower().endswith(".parquet"):
                try:
                    cols = [
                        r[0]
                        for r in self._sql(
                            "DESCRIBE SELECT * FROM read_parquet($p, hive_partitioning = true)",
                            {"p": name},
                        ).fetchall()
                    ]
                except duckdb.Error as exc:
                    raise DataError(f"{file}: not a readable Parquet file ({exc})") from exc
                self._check_columns(file, cols)
                day = "date" if "date" in cols else "day"
                self._sql(
                    "CREATE OR REPLACE TEMP TABLE stage AS SELECT file_row_number + 1 AS pos, "
                    f"CAST(enterprise_id AS VARCHAR) AS enterprise_id, {day} AS day_raw, "
                    "kwh AS kwh_raw FROM read_parquet($p, hive_partitioning = true, "
                    "file_row_number = true)",
                    {"p": name},
                )
                return 0
            cols = _csv_header(file)
            self._check_columns(file, cols)
            day = "date" if "date" in cols else "day"
            self._sql(
                "CREATE OR REPLACE TEMP TABLE raw_csv AS SELECT enterprise_id, "
                f"{day} AS day_raw, kwh AS kwh_raw FROM read_csv($p, {_CSV}, columns = $cols, "
                "ignore_errors = true, store_rejects = true, "
                "rejects_scan = 'region_scan', rejects_table = 'region_rejects')",
                {"p": name, "cols": {c: "VARCHAR" for c in cols}},
            )
            rejects = self._sql(
                "SELECT DISTINCT line, first(csv_line), first(error_message) FROM region_rejects "
                "GROUP BY line ORDER BY line"
            ).fetchall()
            accepted = self._sql("SELECT count(*) FROM raw_csv").fetchone()[0]
            lines = self._accepted_lines(accepted, [r[0] for r in rejects])
            self._con.register(
                "csv_lines",
                pa.table({"k": pa.array(np.arange(len(lines)), pa.int64()), "line": lines}),
            )
            try:
                self._sql(
                    "CREATE OR REPLACE TEMP TABLE stage AS SELECT l.line AS pos, "
                    "r.enterprise_id, r.day_raw, r.kwh_raw FROM raw_csv r JOIN csv_lines l "
                    "ON l.k = r.rowid ORDER BY r.rowid"
                )
            finally:
                self._con.unregister("csv_lines")
            if rejects:
                table = pa.table(
                    {
                        "ref": [f"{file.name}:{r[0]}" for r in rejects],
                        "raw": [str(r[1])[:500] for r in rejects],
                        "reason": [f"line {r[0]}: broken CSV line ({r[2]})" for r in rejects],
                    }
                )
                self._con.register("csv_rejects", table)
                try:
                    self._sql(
                        "INSERT INTO quarantine (received_ms, kind, source, ref, enterprise_id, "
                        "reason) SELECT $now, 'readings', $src, ref, raw, reason FROM csv_rejects",
                        {"now": int(time.time() * 1000), "src": file.name},
                    )
                finally:
                    self._con.unregister("csv_rejects")
            self._sql("DROP TABLE IF EXISTS raw_csv")
            return len(rejects)

    @staticmethod
    def _accepted_lines(accepted: int, rejected: list[int]) -> np.ndarray:
        """Return the file lines of accepted rows (header = line 1), skipping rejected lines."""
        total = accepted + len(rejected)
        lines = np.arange(2, total + 2, dtype=np.int64)
        if rejected:
            lines = lines[~np.isin(lines, np.asarray(rejected, dtype=np.int64))]
        return lines[:accepted]

    @staticmethod
    def _check_columns(file: Path, cols: list[str]) -> None:
        missing = [c for c in ("enterprise_id", "kwh") if c not in cols]
        if "date" not in cols and "day" not in cols:
            missing.append("date")
        if missing:
            raise DataError(
                f"{file}: missing column(s) {', '.join(missing)}; readings need enterprise_id, "
                "date, kwh"
            )

    def _import_one(self, broken: int, source: str, today: date, report: ReadingsReport) -> None:
        """Check TEMP ``stage``, keep bad rows aside, replace and insert the good ones."""
        limit = self.settings.max_daily_kwh
        now_ms = int(time.time() * 1000)
        with self._lock:
            self._sql("BEGIN")
            try:
                self._sql(
                    f"""
CREATE OR REPLACE TEMP TABLE checked AS
WITH t AS (
  SELECT s.pos, s.enterprise_id, k.eid, TRY_CAST(s.day_raw AS DATE) AS day,
    TRY_CAST(s.kwh_raw AS DOUBLE) AS kwh
  FROM stage s LEFT JOIN enterprise_keys k ON k.enterprise_id = s.enterprise_id
),
dups AS (  -- on the integer key: duplicates of unregistered ids are reported as unregistered
  SELECT eid, day, max(pos) AS kept FROM t
  WHERE eid IS NOT NULL AND day IS NOT NULL GROUP BY ALL HAVING count(*) > 1
)
SELECT t.pos, t.eid, t.day, t.kwh, d.kept,
  CASE
    WHEN t.enterprise_id IS NULL OR trim(t.enterprise_id) = '' THEN 'missing enterprise_id'
    WHEN t.day IS NULL THEN 'bad date'
    WHEN t.day > $today THEN 'future date'
    WHEN t.kwh IS NULL OR isnan(t.kwh) OR isinf(t.kwh) THEN 'bad kwh'
    WHEN t.kwh < 0 THEN 'negative kwh'
    WHEN t.kwh > {limit!r} THEN 'absurd kwh'
    WHEN t.eid IS NULL THEN 'unregistered enterprise'
    WHEN d.kept IS NOT NULL AND d.kept <> t.pos THEN 'duplicate (enterprise, date)'
  END AS kind
FROM t
LEFT JOIN dups d ON d.eid = t.eid AND d.day = t.day""",
                    {"today": today},
                )
                summary = self._sql(
                    "SELECT count(*), count(*) FILTER (WHERE kind IS NULL), "
                    "min(day) FILTER (WHERE kind IS NULL), "
                    "max(day) FILTER (WHERE kind IS NULL) FROM checked"
                ).fetchone()
                rows, good, lo, hi = summary
                counts: dict[str, int] = {}
                examples: list[tuple[str]] = []
                if rows > good:  # bad rows: keep them aside with the reason
                    self._sql(
                        f"""
INSERT INTO quarantine (received_ms, kind, source, ref, enterprise_id, day, kwh, reason)
SELECT $now, 'readings', $src, $src || ':' || c.pos, s.enterprise_id,
  CAST(s.day_raw AS VARCHAR), CAST(s.kwh_raw AS VARCHAR),
  $src || ':' || c.pos || ': ' || CASE c.kind
    WHEN 'bad date' THEN CASE WHEN s.day_raw IS NULL OR trim(CAST(s.day_raw AS VARCHAR)) = ''
      THEN 'field date: missing'
      ELSE 'field date: ' || CAST(s.day_raw AS VARCHAR) || ' is not a date (YYYY-MM-DD)' END
    WHEN 'future date' THEN 'field date: ' || CAST(c.day AS VARCHAR) || ' is in the future'
    WHEN 'bad kwh' THEN CASE WHEN s.kwh_raw IS NULL OR trim(CAST(s.kwh_raw AS VARCHAR)) = ''
      THEN 'field kwh: missing'
      ELSE 'field kwh: ' || CAST(s.kwh_raw AS VARCHAR) || ' is not a number' END
    WHEN 'negative kwh' THEN 'field kwh: ' || CAST(c.kwh AS VARCHAR) || ' is negative'
    WHEN 'absurd kwh' THEN 'field kwh: ' || CAST(c.kwh AS VARCHAR)
      || ' kWh in one day is absurd (limit {limit:g}, setting region.max_daily_kwh)'
    WHEN 'unregistered enterprise' THEN 'enterprise ' || s.enterprise_id || ' is not in the '
      || 'registry (import it with `indunet region import-registry`, then this row again)'
    WHEN 'duplicate (enterprise, date)' THEN 'duplicate (enterprise, date): ' || $src || ':'
      || c.kept || ' of the same file replaces it'
    ELSE 'field enterprise_id: missing' END
FROM checked c JOIN stage s USING (pos) WHERE c.kind IS NOT NULL""",
                        {"now": now_ms, "src": source},
                    )
                    examples = self._sql(
                        "SELECT reason FROM quarantine WHERE received_ms = $now AND source = $src "
                        "ORDER BY id LIMIT 20",
                        {"now": now_ms, "src": source},
                    ).fetchall()
                    counts = self._reason_counts()
                report.rows += rows + broken
                if broken:
                    counts["broken CSV line"] = counts.get("broken CSV line", 0) + broken
                report.add_reasons(counts, [r[0] for r in examples])
                if good:
                    existing = self._sql(
                        "SELECT count(*) FROM reading_days WHERE day BETWEEN $lo AND $hi",
                        {"lo": lo, "hi": hi},
                    ).fetchone()[0]
                    if existing:
                        replaced = self._sql(
                            "DELETE FROM readings r USING checked c WHERE r.day BETWEEN $lo AND "
                            "$hi AND c.kind IS NULL AND r.eid = c.eid AND r.day = c.day",
                            {"lo": lo, "hi": hi},
                        ).fetchone()[0]
                    else:
                        replaced = 0
                    order = "" if lo == hi else " ORDER BY day"
                    self._sql(
                        f"INSERT INTO readings SELECT eid, day, kwh FROM checked "
                        f"WHERE kind IS NULL{order}"
                    )
                    days = [
                        r[0]
                        for r in self._sql(
                            "SELECT DISTINCT day FROM checked WHERE kind IS NULL"
                        ).fetchall()
                    ]
                    self._sql(
                        "DELETE FROM reading_days WHERE day IN (SELECT unnest($d))", {"d": days}
                    )
                    self._sql(
                        "INSERT INTO reading_days SELECT day, count(*) FROM readings WHERE day "
                        "BETWEEN $lo AND $hi AND day IN (SELECT unnest($d)) GROUP BY day",
                        {"d": days, "lo": lo, "hi": hi},
                    )
                    report.stored += good
                    report.replaced += replaced
                    report.days = sorted({*report.days, *days})
                self._sql("DROP TABLE IF EXISTS stage")
                self._sql("COMMIT")
            except Exception:
                self._sql("ROLLBACK")
                raise

    def _reason_counts(self) -> dict[str, int]:
        rows = self._sql(
            "SELECT kind, count(*) FROM checked WHERE kind IS NOT NULL GROUP BY kind"
        ).fetchall()
        return {k: int(n) for k, n in rows}

    def _after_readings(self, report: ReadingsReport) -> None:
        if not report.days:
            return
        b0, b1 = self.rule.baseline_start, self.rule.baseline_end
        stale = self._stored_rule != self.rule.fingerprint()
        if any(b0 <= d <= b1 for d in report.days) or stale:
            report.baselines_recomputed = True
            report.rollup_days = self.refresh()
        else:
            report.rollup_days = self.refresh(report.days)

    # ------------------------------------------------------------------ roll-ups
    def days(self) -> list[date]:
        """Return the days that have readings."""
        with self._lock:
            return [r[0] for r in self._sql("SELECT day FROM reading_days ORDER BY day").fetchall()]

    def refresh(self, days: Iterable[date] | None = None) -> int:
        """Recompute stored roll-ups for ``days`` (all days, and the baselines, when None).

        Return how many days were recomputed. Changing the rule in the settings makes the next
        refresh recompute everything.
        """
        with self._lock:
            stale = self._stored_rule != self.rule.fingerprint()
            if days is None or stale:
                self._compute_baselines("baselines", self.rule)
                self._write_thetas("thetas", self.rule)
                self._build_dim()
                todo = self.days()
                self._sql("DELETE FROM rollups")
            else:
                todo = sorted(set(days))
                self._sql("DELETE FROM rollups WHERE day IN (SELECT unnest($d))", {"d": todo})
            sql = dim_counts_sql(list(ROLLUP_KEYS), "TRUE", totals=False)
            for i in range(0, len(todo), _REFRESH_CHUNK_DAYS):
                chunk = todo[i : i + _REFRESH_CHUNK_DAYS]
                self._sql(
                    f"INSERT INTO rollups BY NAME {sql}",
                    {"days": chunk, "lo": chunk[0], "hi": chunk[-1]},
                )
            self._set_meta("rule", self.rule.fingerprint())
            self._stored_rule = self.rule.fingerprint()
            return len(todo)

    def _refresh_from(self, first: date) -> None:
        days = self.days()
        if days:
            self.refresh([d for d in days if d >= first])

    def _build_dim(self) -> None:
        """Rebuild ``groups`` (roll-up grain → gid, θ) and ``ent_dim`` (version → gid, baseline).

        Needed after registry changes and baseline/θ changes; the day roll-ups then join a
        day's readings to ``ent_dim`` on the integer ``eid`` only (`dim_counts_sql`).
        """
        self._dim_cache = None
        keys = ", ".join(ROLLUP_KEYS)
        ekeys = ", ".join(f"e.{k}" for k in ROLLUP_KEYS)
        self._sql(
            "CREATE OR REPLACE TABLE groups AS SELECT CAST(row_number() OVER (ORDER BY "
            f"{ekeys}) AS INTEGER) AS gid, {ekeys}, "
            "left(e.division, 1) AS section, coalesce(t.theta, $theta) AS theta FROM "
            f"(SELECT DISTINCT {keys} FROM enterprises) e LEFT JOIN thetas t "
            "ON t.division = e.division",
            {"theta": self.rule.theta},  # every valid division is in thetas: a safety net
        )
        self._sql(
            "CREATE OR REPLACE TABLE ent_dim AS SELECT e.eid, g.gid, e.valid_from, e.valid_to, "
            "CASE WHEN b.kwh > 0 THEN b.kwh END AS base, "
            "CASE WHEN b.kwh > 0 THEN g.theta * b.kwh END AS thr FROM enterprises e "
            f"JOIN groups g USING ({keys}) LEFT JOIN baselines b ON b.eid = e.eid ORDER BY e.eid"
        )

    def _compute_baselines(self, table: str, rule: Rule, temp: bool = False) -> None:
        """Baselines from the normal period's readings; a declared one where there are none.

        A declared baseline (`declare_baselines`: an enterprise registered after the normal
        period, e.g. a plant that uplinks) has ``days`` NULL; a computed one always wins.
        """
        kind = "TEMP TABLE" if temp else "TABLE"
        self._sql(
            f"CREATE OR REPLACE {kind} {table} AS WITH c AS (SELECT eid, avg(kwh) AS kwh, "
            "CAST(count(*) AS INTEGER) AS days FROM readings WHERE day BETWEEN $a AND $b "
            "GROUP BY eid HAVING count(*) >= $m) SELECT * FROM c UNION ALL SELECT eid, kwh, "
            "CAST(NULL AS INTEGER) FROM declared_baselines WHERE eid NOT IN (SELECT eid FROM c)",
            {"a": rule.baseline_start, "b": rule.baseline_end, "m": rule.baseline_min_days},
        )

    def declare_baselines(
        self, baselines: dict[str, float], *, source: str, now_ms: int | None = None
    ) -> int:
        """Declare normal daily kWh for registered enterprises without normal-period readings.

        For an enterprise that joined after the normal period (a plant that uplinks its daily
        kWh): the operator states its normal use. Readings of the normal period, when there are
        any, still win. Raises `DataError` naming the enterprise for an unknown id or a kWh
        outside (0, ``max_daily_kwh``]; nothing is stored then. Return how many were declared.
        """
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        for ent, kwh in baselines.items():
            if (
                not isinstance(kwh, int | float)
                or isinstance(kwh, bool)
                or not (0 < float(kwh) <= self.settings.max_daily_kwh)
            ):
                raise DataError(
                    f"baseline of {ent}: {kwh!r} kWh/day is not in (0, "
                    f"{self.settings.max_daily_kwh:g}]"
                )
        with self._lock:
            ids = dict(self._sql("SELECT enterprise_id, eid FROM enterprise_keys").fetchall())
            unknown = sorted(e for e in baselines if e not in ids)
            if unknown:
                raise DataError(f"baseline of {unknown[0]}: not in the registry")
            if not baselines:
                return 0
            self._sql("BEGIN")
            try:
                for ent, kwh in baselines.items():
                    self._sql("DELETE FROM declared_baselines WHERE eid = $e", {"e": ids[ent]})
                    self._sql(
                        "INSERT INTO declared_baselines VALUES ($e, $k, $s, $t)",
                        {"e": ids[ent], "k": float(kwh), "s": source, "t": now_ms},
                    )
                self._sql("COMMIT")
            except Exception:
                self._sql("ROLLBACK")
                raise
            self._compute_baselines("baselines", self.rule)
            self._build_dim()
            eids = [ids[e] for e in baselines]
            days = [
                r[0]
                for r in self._sql(
                    "SELECT DISTINCT day FROM readings WHERE eid IN (SELECT unnest($e))",
                    {"e": eids},
                ).fetchall()
            ]
            if days and self._stored_rule == self.rule.fingerprint():
                self.refresh(days)
        return len(baselines)

    def registered(self, enterprise_ids: Iterable[str]) -> set[str]:
        """Return which of these enterprise ids are in the registry."""
        wanted = sorted(set(enterprise_ids))
        if not wanted:
            return set()
        with self._lock:
            rows = self._sql(
                "SELECT enterprise_id FROM enterprise_keys WHERE enterprise_id IN "
                "(SELECT unnest($i))",
                {"i": wanted},
            ).fetchall()
        return {r[0] for r in rows}

    def states_of(
        self, wanted: list[tuple[str, date]], rule: Rule | None = None
    ) -> list[dict[str, Any]]:
        """Return each (enterprise, day)'s registry row, kWh, baseline and state by the rule.

        For short lists (the live uplinks on the region page); an enterprise not valid in the
        registry that day is left out.
        """
        rule = rule or self.rule
        out: list[dict[str, Any]] = []
        with self._lock:
            base, thetas, _ = self._tables_for(rule)
            sql = enterprise_states_sql("e.enterprise_id = $id", baselines=base, thetas=thetas)
            for ent, day in wanted:
                rows = self._pl(
                    f"SELECT * EXCLUDE (supplies) FROM ({sql})", {"id": ent, "day": day}
                ).to_dicts()
                out.extend({**r, "day": day} for r in rows)
        return out

    def last_full_day(self) -> date | None:
        """Return the last day with readings from at least half as many as the busiest day.

        The pages' default day: a day with readings from only a few enterprises so far (live
        uplinks' yesterday next to a file-imported nation, a day whose file has not arrived
        yet) is not where an operator starts.
        """
        with self._lock:
            row = self._sql(
                "SELECT max(day) FROM reading_days WHERE rows * 2 >= "
                "(SELECT max(rows) FROM reading_days)"
            ).fetchone()
        return row[0] if row and row[0] else None

    def _write_thetas(self, table: str, rule: Rule, temp: bool = False) -> None:
        kind = "TEMP TABLE" if temp else "TABLE"
        rows = rule.theta_table()
        self._con.register(
            "theta_in",
            pa.table({"division": [r[0] for r in rows], "theta": [r[1] for r in rows]}),
        )
        try:
            self._sql(f"CREATE OR REPLACE {kind} {table} AS SELECT * FROM theta_in")
        finally:
            self._con.unregister("theta_in")

    def _tables_for(self, rule: Rule) -> tuple[str, str, bool]:
        """Return (baselines, thetas, stored?) for a rule, building temp tables when needed."""
        if rule == self.rule and self._stored_rule == rule.fingerprint():
            return "baselines", "thetas", True
        if rule.baseline_key() == self.rule.baseline_key() and self._stored_rule is not None:
            base = "baselines"
        else:
            self._compute_baselines("live_baselines", rule, temp=True)
            base = "live_baselines"
        self._write_thetas("live_thetas", rule, temp=True)
        return base, "live_thetas", False

    def counts(
        self,
        days: list[date],
        by: list[str],
        filters: Filters | None = None,
        rule: Rule | None = None,
        *,
        live: bool = False,
    ) -> tuple[pl.DataFrame, str]:
        """Return per-day group counts and where they came from (``stored`` or ``live``)."""
        filters = filters or Filters()
        rule = rule or self.rule
        cols = group_columns(by)
        with self._lock:
            base, thetas, stored = self._tables_for(rule)
            if stored and not live:
                where, params = filters.where("r")
                sel = [
                    "r.day",
                    *[
                        "left(r.division, 1) AS section" if c == "section" else f"r.{c}"
                        for c in cols
                    ],
                ]
                group = ", ".join(["day", *cols])
                sql = (
                    f"SELECT {', '.join(sel)}, sum(enterprises) AS enterprises, "
                    "sum(with_reading) AS with_reading, sum(reporting) AS reporting, "
                    "sum(resumed) AS resumed, sum(kwh) AS kwh, sum(baseline_kwh) AS baseline_kwh "
                    "FROM rollups r WHERE r.day BETWEEN $lo AND $hi "
                    "AND list_contains($days, r.day) AND "
                    f"{where.replace('r.section', 'left(r.division, 1)')} GROUP BY {group}"
                )
                bounds = {"lo": min(days), "hi": max(days)}
                return self._pl(sql, {**params, "days": days, **bounds}), "stored"
            where, params = filters.where("g")
            groups = "groups"
            if thetas != "thetas":
                self._sql(
                    "CREATE OR REPLACE TEMP TABLE live_groups AS SELECT g.* REPLACE "
                    f"(coalesce(t.theta, $theta) AS theta) FROM groups g LEFT JOIN {thetas} t "
                    "ON t.division = g.division",
                    {"theta": rule.theta},
                )
                groups = "live_groups"
            if base == "baselines" and len(days) <= _ARRAY_DAYS:
                frame = self._counts_arrays(days, cols, where, params, groups)
                if frame is not None:
                    return frame, "live"
            sql = dim_counts_sql(
                cols, where, groups=groups, baselines=None if base == "baselines" else base
            )
            frame = self._pl(sql, {**params, "days": days, "lo": min(days), "hi": max(days)})
            return frame, "live"

    def _dim_arrays(self) -> dict[str, np.ndarray] | None:
        """Return ``ent_dim`` as arrays indexed by ``eid`` (None when it has dated versions)."""
        stamp = self._sql("SELECT count(*), max(gid), sum(base) FROM ent_dim").fetchone()
        if self._dim_cache is not None and self._dim_stamp != stamp:
            self._dim_cache = None  # ent_dim changed under another connection (the demo loader)
        self._dim_stamp = stamp
        if self._dim_cache is None:
            versioned = self._sql(
                "SELECT count(*) FROM ent_dim WHERE valid_from IS NOT NULL OR valid_to IS NOT NULL"
            ).fetchone()[0]
            if versioned:
                self._dim_cache = {}
            else:
                d = self._sql(
                    "SELECT eid, gid, coalesce(base, 'NaN'::DOUBLE) AS base FROM ent_dim"
                ).fetchnumpy()
                eid = np.asarray(d["eid"], dtype=np.int64)
                n = int(eid.max()) + 1 if eid.size else 1
                gid_of = np.zeros(n, dtype=np.int64)
                gid_of[eid] = np.asarray(d["gid"], dtype=np.int64)
                base_of = np.full(n, np.nan)
                base_of[eid] = np.asarray(d["base"], dtype=np.float64)
                size = int(gid_of.max()) + 1 if eid.size else 1
                members = np.bincount(gid_of[eid], minlength=size)
                self._dim_cache = {"gid": gid_of, "base": base_of, "members": members}
        return self._dim_cache or None

    def _counts_arrays(
        self, days: list[date], cols: list[str], where: str, params: dict[str, Any], groups: str
    ) -> pl.DataFrame | None:
        """Count a few days' readings with NumPy: index ``ent_dim`` arrays by ``eid``, bincount.

        Same counts as `dim_counts_sql` (checked by tests) for a registry without dated versions
        and the stored baselines; return None otherwise (the SQL path is used).
        """
        dim = self._dim_arrays()
        if dim is None:
            return None
        gid_of, base_of, members = dim["gid"], dim["base"], dim["members"]
        size = members.size
        g = self._pl(f"SELECT * FROM {groups} g WHERE {where}", params)
        if g.height == 0 or int(g["gid"].max()) >= size:
            return None
        theta = np.full(size, np.nan)
        theta[g["gid"].to_numpy()] = g["theta"].to_numpy()
        days = sorted(days)
        r = self._sql(
            "SELECT eid, day, kwh FROM readings WHERE day BETWEEN $lo AND $hi "
            "AND day IN (SELECT unnest($days))",
            {"lo": days[0], "hi": days[-1], "days": days},
        ).fetchnumpy()
        eid = np.asarray(r["eid"], dtype=np.int64)
        if eid.size and int(eid.max()) >= gid_of.size:
            return None
        kwh = np.asarray(r["kwh"], dtype=np.float64)
        day_index = np.searchsorted(
            np.array(days, dtype="datetime64[D]"), np.asarray(r["day"], dtype="datetime64[D]")
        )
        gid = gid_of[eid]
        kept = ~np.isnan(theta[gid])  # in a group the filters keep
        base = base_of[eid]
        reporting = kept & ~np.isnan(base)
        resumed = reporting & (kwh > theta[gid] * base)
        key = day_index * size + gid
        n = len(days) * size

        def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
            w = None if weights is None else weights[mask]
            return np.bincount(key[mask], weights=w, minlength=n).reshape(len(days), size)

        gids = g["gid"].to_numpy()
        per_day = {
            "with_reading": count(kept),
            "reporting": count(reporting),
            "resumed": count(resumed),
            "kwh": count(reporting, kwh),
            "baseline_kwh": count(reporting, np.nan_to_num(base)),
        }
        frame = pl.DataFrame(
            {
                "day": np.repeat(np.array(days, dtype="datetime64[D]"), gids.size),
                "gid": np.tile(gids, len(days)),
                "enterprises": np.tile(members[gids], len(days)),
                **{k: v[:, gids].reshape(-1) for k, v in per_day.items()},
            }
        ).join(g.select("gid", *cols), on="gid", how="left")
        frame = frame.filter(pl.col("enterprises") > 0)
        return frame.group_by(["day", *cols]).agg(
            [
                pl.col(c).sum().cast(pl.Float64 if c.endswith("kwh") else pl.Int64)
                for c in COUNT_COLUMNS
            ]
        )

    def rate(
        self,
        day: date,
        by: list[str],
        filters: Filters | None = None,
        rule: Rule | None = None,
        *,
        live: bool = False,
    ) -> tuple[pl.DataFrame, str]:
        """Return the resumption table of one day per group, with the change vs the day before."""
        counts, source = self.counts(previous_days([day]), by, filters, rule, live=live)
        return summarise(counts, by, [day]), source

    def trend(
        self,
        start: date,
        end: date,
        by: list[str],
        filters: Filters | None = None,
        rule: Rule | None = None,
        *,
        live: bool = False,
    ) -> tuple[pl.DataFrame, str]:
        """Return the resumption table of every day in ``[start, end]`` per group."""
        if end < start:
            raise DataError(f"end {end} is before start {start}")
        if (end - start).days > 3660:
            raise DataError("a trend covers at most ten years")
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        counts, source = self.counts(previous_days(days), by, filters, rule, live=live)
        return summarise(counts, by, days), source

    def overview(
        self, day: date, filters: Filters | None = None, rule: Rule | None = None
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
        """Return a day's national row, its province rows and where they came from.

        One query: the national row is the sum of the province counts (they are additive).
        """
        counts, source = self.counts(previous_days([day]), ["province"], filters, rule)
        national = summarise(counts, [], [day]).to_dicts()
        return (
            (national[0] if national else None),
            summarise(counts, ["province"], [day]).to_dicts(),
            source,
        )

    def headline(self, day: date, filters: Filters | None = None, rule: Rule | None = None) -> str:
        """Return the day's sentence ("Resumption 52.0 %, +2.2 points; Guangdong 95.3 % …")."""
        national, provinces, _ = self.overview(day, filters, rule)
        return f"{day}: " + headline(national or {}, provinces)

    def enterprises(
        self,
        day: date,
        *,
        state: str = "stopped",
        filters: Filters | None = None,
        rule: Rule | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[pl.DataFrame, int]:
        """List enterprises of a group in a state on a day (biggest baseline first) and the total.

        ``state`` is ``stopped`` (reporting, not resumed — the operator's call list),
        ``unknown``, ``resumed`` or ``not_resumed`` (stopped and unknown).
        """
        states = {
            "stopped": ["stopped"],
            "unknown": ["unknown"],
            "resumed": ["resumed"],
            "not_resumed": ["stopped", "unknown"],
        }
        if state not in states:
            raise DataError(f"state {state!r} is not one of {', '.join(states)}")
        filters = filters or Filters()
        rule = rule or self.rule
        with self._lock:
            base, thetas, _ = self._tables_for(rule)
            where, params = filters.where("e")
            sql = enterprise_states_sql(where, baselines=base, thetas=thetas)
            frame = self._pl(
                f"SELECT * EXCLUDE (supplies, province_code), count(*) OVER () AS total FROM "
                f"({sql}) WHERE state IN (SELECT unnest($states)) ORDER BY baseline_kwh DESC "
                "NULLS LAST, enterprise_id LIMIT $limit OFFSET $offset",
                {
                    **params,
                    "day": day,
                    "states": states[state],
                    "limit": int(limit),
                    "offset": int(offset),
                },
            )
        total = int(frame.get_column("total")[0]) if frame.height else 0
        return frame.drop("total"), total

    def watchlist(
        self, day: date, rule: Rule | None = None, *, key: str | None = None
    ) -> list[dict[str, Any]]:
        """Return each key enterprise's state with the states of its suppliers on a day."""
        rule = rule or self.rule
        with self._lock:
            base, thetas, _ = self._tables_for(rule)
            sql = enterprise_states_sql("TRUE", baselines=base, thetas=thetas)
            keys = self._pl(
                f"WITH st AS ({sql}) SELECT enterprise_id, name, province, city, division, size, "
                "state, ratio FROM st WHERE key_enterprise AND ($key IS NULL OR enterprise_id "
                "= $key) ORDER BY enterprise_id",
                {"day": day, "key": key},
            )
            links = self._pl(
                f"WITH st AS ({sql}), links AS (SELECT enterprise_id AS supplier, "
                "unnest(supplies) AS key_id FROM st WHERE len(supplies) > 0) "
                "SELECT l.key_id, s.enterprise_id, s.name, s.province, s.city, s.state, "
                "s.unknown_because, s.ratio FROM links l JOIN st s ON s.enterprise_id = "
                "l.supplier ORDER BY l.key_id, s.state DESC, s.enterprise_id",
                {"day": day},
            )
        by_key: dict[str, list[dict[str, Any]]] = {}
        for row in links.to_dicts():
            by_key.setdefault(row.pop("key_id"), []).append(row)
        out = []
        for k in keys.to_dicts():
            sups = by_key.get(k["enterprise_id"], [])
            n = {s: sum(x["state"] == s for x in sups) for s in ("resumed", "stopped", "unknown")}
            behind = n["stopped"] + n["unknown"]
            word = {"resumed": "is back", "stopped": "is stopped", "unknown": "has no data"}
            summary = f"{k['name']} {word[k['state']]}"
            if sups:
                joiner = " but" if k["state"] == "resumed" and behind else ";"
                summary += (
                    f"{joiner} {behind} of its {len(sups)} suppliers are not back "
                    f"({n['stopped']} stopped, {n['unknown']} unknown)"
                    if behind
                    else f"; all {len(sups)} of its suppliers are back"
                )
            out.append(
                {
                    **k,
                    "suppliers": len(sups),
                    "suppliers_resumed": n["resumed"],
                    "suppliers_stopped": n["stopped"],
                    "suppliers_unknown": n["unknown"],
                    "summary": summary,
                    "not_back": [s for s in sups if s["state"] != "resumed"],
                }
            )
        return out

    # ------------------------------------------------------------------ quarantine / export
    def quarantine(
        self, *, limit: int = 100, kind: str | None = None, source: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Return kept-aside rows (newest first) and how many there are in all."""
        with self._lock:
            where = "($k IS NULL OR kind = $k) AND ($s IS NULL OR source = $s)"
            total = self._sql(
                f"SELECT count(*) FROM quarantine WHERE {where}", {"k": kind, "s": source}
            ).fetchone()[0]
            rows = self._pl(
                f"SELECT * FROM quarantine WHERE {where} ORDER BY id DESC LIMIT $n",
                {"k": kind, "s": source, "n": int(limit)},
            ).to_dicts()
        return rows, int(total)

    def export_parquet(self, out: Path) -> dict[str, int]:
        """Write readings partitioned by date (``readings/date=…/``) and the registry as Parquet."""
        out.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._sql(
                "COPY (SELECT k.enterprise_id, r.day AS date, r.kwh FROM readings r "
                "JOIN enterprise_keys k USING (eid) ORDER BY r.day, k.enterprise_id) TO "
                f"'{_quote(out / 'readings')}' (FORMAT parquet, PARTITION_BY (date), "
                "OVERWRITE_OR_IGNORE true)"
            )
            self._sql(
                "COPY (SELECT * EXCLUDE (eid, loaded_ms) FROM enterprises ORDER BY "
                f"enterprise_id, valid_from NULLS FIRST) TO '{_quote(out / 'registry.parquet')}' "
                "(FORMAT parquet)"
            )
            n = self._sql("SELECT count(*) FROM readings").fetchone()[0]
            e = self._sql("SELECT count(*) FROM enterprises").fetchone()[0]
        return {"readings": int(n), "registry_versions": int(e)}

    def stats(self) -> dict[str, Any]:
        """Return sizes: enterprises, readings, days, quarantined rows, stored rule."""
        with self._lock:
            row = self._sql(
                "SELECT (SELECT count(*) FROM enterprise_keys), (SELECT coalesce(sum(rows), 0) "
                "FROM reading_days), (SELECT count(*) FROM reading_days), (SELECT min(day) FROM "
                "reading_days), (SELECT max(day) FROM reading_days), (SELECT count(*) FROM "
                "quarantine)"
            ).fetchone()
            return {
                "enterprises": row[0],
                "readings": int(row[1]),
                "days": row[2],
                "first_day": str(row[3]) if row[3] else None,
                "last_day": str(row[4]) if row[4] else None,
                "quarantined": row[5],
                "rule": self.rule.as_dict(),
            }


def _text(value: Any) -> str | None:
    """A registry document's field as the text a file would hold (booleans as true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _csv_header(file: Path) -> list[str]:
    opener = gzip.open if file.name.lower().endswith(".gz") else open
    try:
        with opener(file, "rt", encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{file}: not a readable CSV file ({exc})") from exc
    if not header:
        raise DataError(f"{file}: the file is empty (no header line)")
    return [h.strip() for h in header]


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
