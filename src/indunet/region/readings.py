"""Daily electricity readings: file discovery, the checks every row goes through, and meter tags.

Rows are checked in SQL by `indunet.region.store` (whole columns at once); this module holds the
pure parts: which files an import path means, the import report, and turning a meter tag's
history (interval kWh, an energy counter or power in kW) into daily kWh per local day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from indunet.errors import DataError

__all__ = [
    "DailyKwh",
    "MeterKind",
    "ReadingsReport",
    "daily_from_historian",
    "daily_kwh",
    "reading_files",
]

DAY_MS = 86_400_000


def reading_files(path: Path) -> list[Path]:
    """Return the files an import path means: one CSV/Parquet file, or a directory of them.

    A directory is searched recursively (Hive partitions ``date=YYYY-MM-DD/`` included) and its
    files are imported in name order, so a later file's rows replace an earlier one's.
    """
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.name.lower().endswith((".parquet", ".csv", ".csv.gz"))
        )
        if not files:
            raise DataError(f"{path}: no .csv, .csv.gz or .parquet files in this directory")
        return files
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.name.lower().endswith((".parquet", ".csv", ".csv.gz")):
        raise DataError(f"{path}: use a .csv, .csv.gz or .parquet file (or a directory of them)")
    return [path]


@dataclass(slots=True)
class ReadingsReport:
    """What an import did: rows read, stored, replaced (late corrections) and kept aside."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    stored: int = 0
    replaced: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)
    rollup_days: int = 0
    baselines_recomputed: bool = False

    def add_reasons(self, counts: dict[str, int], examples: list[str], limit: int = 20) -> None:
        """Count kept-aside rows by kind of reason and keep a few full messages."""
        for kind, n in counts.items():
            self.reasons[kind] = self.reasons.get(kind, 0) + n
            self.quarantined += n
        self.examples.extend(examples[: max(0, limit - len(self.examples))])

    def as_dict(self) -> dict[str, Any]:
        """Return the report for JSON output."""
        return {
            "files": self.files,
            "rows": self.rows,
            "stored": self.stored,
            "replaced": self.replaced,
            "quarantined": self.quarantined,
            "reasons": self.reasons,
            "examples": self.examples,
            "first_day": str(min(self.days)) if self.days else None,
            "last_day": str(max(self.days)) if self.days else None,
            "days": len(self.days),
            "rollup_days_recomputed": self.rollup_days,
            "baselines_recomputed": self.baselines_recomputed,
        }


class MeterKind(StrEnum):
    """What a meter tag's values are."""

    #: energy (kWh) used in the interval that ends at the timestamp (e.g. 15-min meter exports)
    INTERVAL = "interval"
    #: a cumulative energy register (kWh); a drop means the counter restarted from zero
    COUNTER = "counter"
    #: power (kW), integrated over time (left rectangles; gaps longer than max_gap are not filled)
    POWER = "power"


@dataclass(slots=True)
class DailyKwh:
    """Daily kWh of one meter; days below the coverage limit are listed apart, not as readings."""

    days: pl.DataFrame  # date, kwh, coverage
    incomplete: pl.DataFrame  # date, kwh, coverage


def _local_day(ts_ms: np.ndarray, tz: str) -> pl.Series:
    return (
        pl.Series("t", ts_ms, pl.Int64)
        .cast(pl.Datetime("ms"))
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(tz)
        .dt.date()
    )


def daily_kwh(
    ts_ms: np.ndarray,
    values: np.ndarray,
    kind: MeterKind,
    *,
    tz: str = "Asia/Shanghai",
    max_gap_ms: int = 3_600_000,
    min_coverage: float = 0.9,
) -> DailyKwh:
    """Turn a meter tag's points into kWh per local day, with the share of the day covered.

    Times are epoch ms sorted ascending. Interval values belong to the day of ``ts - 1 ms`` (the
    interval ends at ``ts``); counter deltas and power are attributed to the interval's day.
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if len(ts) != len(v):
        raise DataError("meter times and values differ in length")
    ok = np.isfinite(v)
    ts, v = ts[ok], v[ok]
    if len(ts) and np.any(np.diff(ts) <= 0):
        order = np.argsort(ts, kind="stable")
        ts, v = ts[order], v[order]
        keep = np.ones(len(ts), dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]  # the later point of a duplicate time wins
        ts, v = ts[keep], v[keep]
    empty = pl.DataFrame(schema={"date": pl.Date, "kwh": pl.Float64, "coverage": pl.Float64})
    if len(ts) < 2 and kind != MeterKind.INTERVAL:
        return DailyKwh(empty, empty)
    if kind == MeterKind.INTERVAL:
        if len(ts) == 0:
            return DailyKwh(empty, empty)
        step = int(np.median(np.diff(ts))) if len(ts) > 1 else max_gap_ms
        when = ts - 1
        energy = v
        covered = np.full(len(ts), min(step, max_gap_ms), dtype=np.float64)
    else:
        dt = np.diff(ts)
        inside = dt <= max_gap_ms
        if kind == MeterKind.COUNTER:
            delta = np.diff(v)
            energy = np.where(delta < 0, v[1:], delta)  # a drop: the counter restarted at zero
        else:
            energy = v[:-1] * dt / 3_600_000.0
        when = ts[1:] - 1 if kind == MeterKind.COUNTER else ts[:-1]
        energy = np.where(inside, energy, 0.0)
        covered = np.where(inside, dt, 0).astype(np.float64)
    frame = pl.DataFrame({"date": _local_day(when, tz), "kwh": energy, "covered": covered})
    out = (
        frame.group_by("date")
        .agg(pl.col("kwh").sum(), (pl.col("covered").sum() / DAY_MS).alias("coverage"))
        .with_columns(pl.col("coverage").clip(0.0, 1.0))
        .sort("date")
    )
    complete = out.filter(pl.col("coverage") >= min_coverage)
    return DailyKwh(complete, out.filter(pl.col("coverage") < min_coverage))


def daily_from_historian(
    historian: Any,
    enterprise: str,
    tags: list[str],
    start_ms: int,
    end_ms: int,
    kind: MeterKind,
    *,
    tz: str = "Asia/Shanghai",
    min_coverage: float = 0.9,
) -> DailyKwh:
    """Read meter tags from the historian and sum their daily kWh (an enterprise's meters).

    A day is complete only when every tag covers ``min_coverage`` of it; other days are listed
    in ``incomplete`` (never stored as a low reading: a missing meter is not a stopped plant).
    """
    if not tags:
        raise DataError("give at least one meter tag")
    parts: list[pl.DataFrame] = []
    for tag in tags:
        raw = historian.series(enterprise, tag, start_ms, end_ms, limit=100_000_000)
        ts = raw.column("ts").to_numpy()
        values = raw.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
        daily = daily_kwh(ts, values, kind, tz=tz, min_coverage=0.0)
        parts.append(daily.days.with_columns(pl.lit(tag).alias("tag")))
    frame = pl.concat(parts)
    out = (
        frame.group_by("date")
        .agg(
            pl.col("kwh").sum(),
            pl.col("coverage").min(),
            pl.col("tag").n_unique().alias("tags"),
        )
        .with_columns(
            pl.when(pl.col("tags") < len(tags))
            .then(0.0)
            .otherwise(pl.col("coverage"))
            .alias("coverage")
        )
        .drop("tags")
        .sort("date")
    )
    return DailyKwh(
        out.filter(pl.col("coverage") >= min_coverage),
        out.filter(pl.col("coverage") < min_coverage),
    )
