"""Keep the RUL of every configured machine up to date, store it, and raise alarms from it.

`RulService` (owned by the serve process, no globals) fits one model per asset class of
``settings.plant.rul`` from its run-to-failure CSV files (once; again when the files change),
and every round turns each machine's sensor history into cycles, estimates its RUL and stores
the estimate in ``condition_rul`` (one row per machine, the latest). Estimates go to the alarm
service as the derived tag ``derived/rul/<asset class>/<machine id>``, watched by a built-in
low-limit rule per class (`indunet.plant.alarm_service.rul_rules`), so a RUL below the horizon
is an alarm with the usual lifecycle (acknowledge, shelve, webhooks). A machine with too short a
history is stored as ``insufficient_history`` and raises nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from indunet.condition.config import RulClassConfig, RunRange
from indunet.condition.rul import (
    CycleHistory,
    InsufficientHistory,
    RulInputError,
    RulModel,
    cycles_from_samples,
    fit_rul_model,
    predict_rul,
    read_run_csv,
)
from indunet.errors import DataError
from indunet.plant.alarms import derived_samples
from indunet.plant.rounds import Rounds
from indunet.store.base import MAX_BUCKETS
from indunet.store.tables import SqlPort

if TYPE_CHECKING:
    from indunet.config import Settings
    from indunet.plant.config import PlantConfig
    from indunet.store.base import Historian

__all__ = ["RulService", "RulStore"]

log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS condition_rul (
  enterprise TEXT NOT NULL,
  machine TEXT NOT NULL,
  asset_class TEXT NOT NULL,
  ts_ms BIGINT NOT NULL,
  status TEXT NOT NULL,
  cycle DOUBLE PRECISION,
  cycles_seen BIGINT,
  rul DOUBLE PRECISION,
  low DOUBLE PRECISION,
  high DOUBLE PRECISION,
  band_low DOUBLE PRECISION,
  band_high DOUBLE PRECISION,
  cap BIGINT NOT NULL,
  horizon DOUBLE PRECISION NOT NULL,
  message TEXT,
  PRIMARY KEY (enterprise, machine)
)
"""
_SCHEMA = pa.schema(
    [
        ("enterprise", pa.string()),
        ("machine", pa.string()),
        ("asset_class", pa.string()),
        ("ts_ms", pa.int64()),
        ("status", pa.string()),
        ("cycle", pa.float64()),
        ("cycles_seen", pa.int64()),
        ("rul", pa.float64()),
        ("low", pa.float64()),
        ("high", pa.float64()),
        ("band_low", pa.float64()),
        ("band_high", pa.float64()),
        ("cap", pa.int64()),
        ("horizon", pa.float64()),
        ("message", pa.string()),
    ]
)
_COLS = ", ".join(_SCHEMA.names[1:])


class RulStore:
    """The latest RUL estimate of each machine, by enterprise."""

    def __init__(self, historian: Historian) -> None:
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    def put(self, rows: list[dict[str, Any]]) -> None:
        """Store (replace) the estimates of the machines in ``rows``."""
        if rows:
            table = pa.Table.from_pylist(rows, schema=_SCHEMA)
            self.sql.upsert("condition_rul", table, ["enterprise", "machine"])

    def keep_only(self, enterprise: str, machines: set[str]) -> int:
        """Delete the estimates of machines no longer configured; return how many."""
        gone = [r["machine"] for r in self.estimates(enterprise) if r["machine"] not in machines]
        for machine in gone:
            self.sql.execute(
                "DELETE FROM condition_rul WHERE enterprise = $1 AND machine = $2",
                [enterprise, machine],
            )
        return len(gone)

    def estimates(self, enterprise: str, machine: str | None = None) -> list[dict[str, Any]]:
        """Return the stored estimates of an enterprise (or of one of its machines), by RUL."""
        rows = self.sql.rows(
            f"SELECT {_COLS} FROM condition_rul WHERE enterprise = $1 "
            "AND (CAST($2 AS TEXT) = '' OR machine = $2) ORDER BY machine",
            [enterprise, machine or ""],
        )
        return sorted(rows, key=_rank)


def _rank(row: dict[str, Any]) -> tuple[int, float, str]:
    rul = row.get("rul")
    return (0 if rul is not None else 1, rul if rul is not None else 0.0, row["machine"])


class RulService(Rounds):
    """Estimate, store and alarm on the RUL of the machines of ``settings.plant.rul``."""

    thread_name = "indunet-rul"
    work = "RUL estimation"

    def __init__(
        self,
        historian: Historian,
        settings: Settings,
        *,
        alarms: Any = None,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.historian = historian
        self.settings = settings
        self.enterprise = settings.enterprise
        self.store = RulStore(historian)
        self.alarms = alarms
        classes = settings.plant.rul
        self.interval_s = interval_s or min((c.every_s for c in classes), default=300.0)
        self._clock = clock
        self._models: dict[str, tuple[tuple, RulModel | str]] = {}
        self._init_rounds()

    def model(self, config: RulClassConfig) -> RulModel:
        """Return the class's fitted model (fitted again when its run files change).

        Raises `RulInputError` when the runs cannot make a model (the reason is in the message).
        """
        files = sorted(Path(config.runs_dir).glob("*.csv")) if config.runs_dir else []
        key = (config, tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
        cached = self._models.get(config.asset_class)
        if cached is None or cached[0] != key:
            try:
                if not files and not config.runs:
                    raise RulInputError(
                        f"no run-to-failure CSV file in {config.runs_dir} and no runs in the "
                        "historian configured"
                    )
                runs = [read_run_csv(f, config.sensors) for f in files]
                runs += [self._historian_run(config, r) for r in config.runs]
                fitted: RulModel | str = fit_rul_model(
                    runs,
                    cap=config.cap,
                    window=config.window,
                    min_cycles=config.min_cycles,
                    rounds=config.trees,
                )
            except RulInputError as exc:
                fitted = f"asset class {config.asset_class}: {exc}"
            self._models[config.asset_class] = (key, fitted)
            cached = self._models[config.asset_class]
        if isinstance(cached[1], str):
            raise RulInputError(cached[1])
        return cached[1]

    def _cycles(
        self, config: RulClassConfig, machine: str, start_ms: int, end_ms: int, now_ms: int
    ) -> CycleHistory:
        """A machine's sensor tags between two instants, as cycles completed by ``now_ms``.

        Fixed periods are averaged in the database (one row per period and sensor, not every
        reading); counter cycles read the raw readings.
        """
        tags = {s: f"{machine}/{s}" for s in config.sensors}
        empty = (np.empty(0), np.empty(0))
        if config.cycle_s is not None:
            period = int(config.cycle_s * 1000)
            last = min(end_ms, now_ms // period * period)  # the running period is left out
            samples = {
                s: self._period_means(tag, start_ms, last, period) for s, tag in tags.items()
            }
            return cycles_from_samples(machine, samples, now_ms=now_ms, cycle_s=config.cycle_s)
        counter_tag = f"{machine}/{config.cycle_tag}"
        found = self.historian.series_many(
            self.enterprise, [*tags.values(), counter_tag], start_ms, end_ms
        )
        samples = {s: _columns(found.get(tag)) or empty for s, tag in tags.items()}
        counter = _columns(found.get(counter_tag)) or empty
        return cycles_from_samples(machine, samples, now_ms=now_ms, counter=counter)

    def _period_means(
        self, tag: str, start_ms: int, end_ms: int, period: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mean of a tag per period (aligned to the epoch) in ``[start, end)``: the start of
        each period with readings, and the mean. Empty for a tag never written or holding text."""
        empty = (np.empty(0), np.empty(0))
        try:
            first = self.historian.series(self.enterprise, tag, start_ms, end_ms, limit=1)
        except (DataError, ValueError):
            return empty
        if first.num_rows == 0:
            return empty
        lo = int(first.column("ts")[0].as_py()) // period * period
        starts, means = [], []
        while lo < end_ms:
            hi = min(end_ms, lo + MAX_BUCKETS * period)
            n = -(-(hi - lo) // period)
            try:
                table = self.historian.buckets(self.enterprise, tag, lo, lo + n * period, n)
            except DataError:
                return empty
            starts.append(table.column("start_ms").to_numpy(zero_copy_only=False).astype(float))
            means.append(table.column("avg").to_numpy(zero_copy_only=False).astype(float))
            lo += n * period
        return np.concatenate(starts), np.concatenate(means)

    def _historian_run(self, config: RulClassConfig, run: RunRange) -> CycleHistory:
        """A run to failure from the historian: every cycle up to the one the failure is in."""
        after = run.end_ms + (int(config.cycle_s * 1000) if config.cycle_s else 1)
        history = self._cycles(config, run.machine, run.start_ms, run.end_ms + 1, after)
        return CycleHistory(
            f"{run.machine} until {run.end.isoformat()}",
            history.cycles,
            history.values,
            history.sensors,
        )

    def _estimate(self, config: RulClassConfig, model: RulModel, machine: str, now_ms: int) -> dict:
        history = self._cycles(config, machine, 0, now_ms + 1, now_ms)
        estimate = predict_rul(model, history)
        return {
            "status": "ok",
            "cycle": estimate.cycle,
            "cycles_seen": estimate.cycles_seen,
            "rul": estimate.rul,
            "low": estimate.low,
            "high": estimate.high,
            "message": "; ".join(estimate.notes) or None,
        }

    def run_once(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Estimate every configured machine, store the estimates, feed the alarm service."""
        now = int(self._clock() * 1000) if now_ms is None else int(now_ms)
        rows: list[dict[str, Any]] = []
        for config in self.settings.plant.rul:
            try:
                model: RulModel | None = self.model(config)
                problem = None
            except RulInputError as exc:
                model, problem = None, str(exc)
            for machine in config.machines:
                row: dict[str, Any] = dict.fromkeys(_SCHEMA.names) | {
                    "enterprise": self.enterprise,
                    "machine": machine,
                    "asset_class": config.asset_class,
                    "ts_ms": now,
                    "band_low": model.band[0] if model else None,
                    "band_high": model.band[1] if model else None,
                    "cap": config.cap,
                    "horizon": config.horizon,
                }
                if model is None:
                    row |= {"status": "no_model", "message": problem}
                else:
                    try:
                        row |= self._estimate(config, model, machine, now)
                    except InsufficientHistory as exc:
                        row |= {"status": "insufficient_history", "message": str(exc)}
                    except RulInputError as exc:
                        row |= {"status": "bad_data", "message": str(exc)}
                rows.append(row)
        self.store.put(rows)
        self.store.keep_only(self.enterprise, {r["machine"] for r in rows})
        self.rounds += 1
        if self.alarms is not None:
            points = _alarm_points(rows, self.settings.plant)
            if points.num_rows:
                self.alarms.evaluate(points)
        return rows


def _columns(table: pa.Table | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Timestamps and values of a series as floats (NULL values as NaN), or None when empty."""
    if table is None or table.num_rows == 0:
        return None
    ts = table.column("ts").to_numpy(zero_copy_only=False).astype(float)
    values = table.column("value").to_numpy(zero_copy_only=False).astype(float)
    return ts, values


def _alarm_points(rows: list[dict[str, Any]], plant: PlantConfig) -> pa.Table:
    classes = {c.asset_class: c for c in plant.rul}
    ok = [r for r in rows if r["status"] == "ok"]
    return derived_samples(
        [classes[r["asset_class"]].tag(r["machine"]) for r in ok],
        [r["ts_ms"] for r in ok],
        [float(r["rul"]) for r in ok],
    )
