"""Spindle wear for the demo: a slow degradation trend, and the runs to failure that teach it.

The machining machines of the demo carry a spindle that wears out: its bearing vibration
(``spindle_vib_mm_s``) and temperature (``spindle_temp_c``) drift up slowly over its life and
steeply near the end (a power law of the share of life used). Each spindle has its own
baseline, so the model must read the drift, not the level. Pure and seeded.

`training_runs` simulates a fleet of spindles run until they failed, one reading a minute
averaged per operating hour, as the run-to-failure CSV files an asset class is fitted on
(``[[plant.rul]]`` ``runs_dir``, docs/condition.md). `demo_spindles` gives the demo's machines
spindles of different ages, so the Fleet page ranks a few healthy ones and one near its end;
`spindle_history` back-fills each spindle's readings from the day it was installed (the RUL
service counts cycles from a machine's first reading), and `PlantSim` goes on with
`spindle_readings` live.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality
from indunet.uns import MachinePath

__all__ = [
    "CYCLE_S",
    "HISTORY_STEP_MS",
    "SENSORS",
    "Spindle",
    "demo_spindles",
    "spindle_history",
    "spindle_noise",
    "spindle_readings",
    "spindle_trend",
    "training_runs",
    "write_training_runs",
]

#: one RUL cycle is one operating hour
CYCLE_S = 3600
#: the spindle's sensors (tags relative to the machine)
SENSORS = ("spindle_vib_mm_s", "spindle_temp_c")
#: a spindle lasts this many hours, uniformly drawn (about 6 to 11 days)
LIFE_H = (140.0, 260.0)
#: the back-filled spindle history has one reading a minute
HISTORY_STEP_MS = 60_000
#: shares of life used by the demo's spindles, in turn: one near its end, the rest spread out
_AGES = (0.95, 0.55, 0.75, 0.35, 0.83, 0.62, 0.45, 0.7, 0.25, 0.5)
#: the sensors report their RMS over a minute: the noise of one such reading
VIB_NOISE = 0.15  # mm/s
TEMP_NOISE = 0.3  # °C


@dataclass(frozen=True, slots=True)
class Spindle:
    """One spindle: when it was installed, how long it lasts, and its own baseline."""

    install_ms: int
    life_h: float
    vib0: float  # mm/s when new
    temp0: float  # °C when new
    gain: float = 3.5  # mm/s the wear adds by the end
    power: float = 3.0  # how late the wear shows (a higher power: later, steeper)

    def used(self, ts_ms: np.ndarray | float) -> np.ndarray:
        """The share of life used at ``ts_ms`` (0 new, 1 failed; it stays 1 after)."""
        age_h = (np.asarray(ts_ms, dtype=float) - self.install_ms) / 3_600_000
        return np.clip(age_h / self.life_h, 0.0, 1.0)


def _draw(rng: np.random.Generator, install_ms: int, life_h: float | None = None) -> Spindle:
    return Spindle(
        install_ms=int(install_ms),
        life_h=float(life_h if life_h is not None else rng.uniform(*LIFE_H)),
        vib0=float(rng.uniform(1.4, 2.4)),
        temp0=float(rng.uniform(34.0, 40.0)),
        gain=float(rng.uniform(2.5, 4.5)),
        power=float(rng.uniform(2.3, 3.7)),
    )


def spindle_trend(spindle: Spindle, ts_ms: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Vibration (mm/s) and temperature (°C) at ``ts_ms`` without reading noise."""
    x = spindle.used(ts_ms)
    wear = spindle.gain * x**spindle.power
    vib = spindle.vib0 * (1 + 0.15 * x) + wear
    temp = spindle.temp0 + 2.0 * x + 3.5 * wear * x
    return vib, temp


def spindle_noise(rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
    """The noise of one reading (a minute's RMS): vibration and temperature, stacked."""
    return np.stack([rng.normal(0, VIB_NOISE, shape), rng.normal(0, TEMP_NOISE, shape)])


def spindle_readings(
    spindle: Spindle, ts_ms: np.ndarray | float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Vibration (mm/s) and temperature (°C) at ``ts_ms``, one reading each (with noise)."""
    vib, temp = spindle_trend(spindle, ts_ms)
    noise = spindle_noise(rng, np.shape(vib))
    return np.round(vib + noise[0], 3), np.round(temp + noise[1], 2)


def training_runs(runs: int = 30, seed: int = 2024) -> list[np.ndarray]:
    """Simulated runs to failure: per run, rows of (cycle, vibration, temperature), one row
    per operating hour (the mean of a reading a minute), the last row being the failure."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        spindle = _draw(rng, 0)
        hours = int(np.ceil(spindle.life_h))
        ts = np.arange(0, hours * 3_600_000, HISTORY_STEP_MS, dtype=np.int64)
        vib, temp = spindle_readings(spindle, ts, rng)
        per_h = 3_600_000 // HISTORY_STEP_MS
        rows = np.column_stack(
            [
                np.arange(1, hours + 1, dtype=float),
                vib.reshape(hours, per_h).mean(axis=1),
                temp.reshape(hours, per_h).mean(axis=1),
            ]
        )
        out.append(rows)
    return out


def write_training_runs(folder: Path, runs: int = 30, seed: int = 2024) -> int:
    """Write the simulated runs to failure as CSV files (``cycle`` and one column per sensor)
    into ``folder``, unless it already holds CSV files; return how many were written."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.csv")):
        return 0
    for i, rows in enumerate(training_runs(runs, seed), start=1):
        with (folder / f"spindle-run-{i:03d}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["cycle", *SENSORS])
            writer.writerows([int(r[0]), f"{r[1]:.4f}", f"{r[2]:.3f}"] for r in rows)
    return runs


def demo_spindles(
    machines: Sequence[MachinePath],
    now_ms: int,
    *,
    seed: int = 7,
    installed: dict[str, int] | None = None,
) -> dict[str, Spindle]:
    """A spindle for each machine (by id), installed so that a share of its life is used now
    (`_AGES` in turn); ``installed`` gives install times already kept (a restart on a kept data
    dir: the spindle's first stored reading), which win over the drawn ones."""
    rng = np.random.default_rng(seed + 3)
    out = {}
    for i, path in enumerate(machines):
        life = float(rng.uniform(*LIFE_H))
        age = _AGES[i % len(_AGES)]
        install = (installed or {}).get(str(path), now_ms - int(age * life * 3_600_000))
        out[str(path)] = _draw(rng, install, life)
    return out


def spindle_history(
    enterprise: str,
    spindles: dict[str, Spindle],
    end_ms: int,
    *,
    after: dict[str, int] | None = None,
    seed: int = 7,
) -> PointBatch:
    """Each spindle's readings, one a minute, from its install (or after the newest kept
    reading, ``after``) until ``end_ms``."""
    rng = np.random.default_rng(seed + 4)
    tags: list[str] = []
    stamps: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for machine, spindle in spindles.items():
        start = spindle.install_ms
        if after and machine in after:
            start = after[machine] + HISTORY_STEP_MS
        ts = np.arange(start, end_ms, HISTORY_STEP_MS, dtype=np.int64)
        vib, temp = spindle_readings(spindle, ts, rng)
        for name, series in zip(SENSORS, (vib, temp), strict=True):
            tags.extend([f"{machine}/{name}"] * len(ts))
            stamps.append(ts)
            values.append(series.astype(float))
    n = len(tags)
    table = pa.table(
        {
            "tag": pa.array(tags, pa.string()),
            "ts": pa.array(np.concatenate(stamps) if stamps else [], pa.int64()),
            "value": pa.array(np.concatenate(values) if values else [], pa.float64()),
            "text": pa.nulls(n, pa.string()),
            "quality": pa.array(np.full(n, int(Quality.GOOD)), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    types = {f"{m}/{s}": DataType.NUMBER for m in spindles for s in SENSORS}
    return PointBatch(enterprise, table, types)
