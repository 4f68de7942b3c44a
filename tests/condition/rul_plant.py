"""A small fleet for RUL tests: engines of the C-MAPSS subset as machines with hourly cycles.

Run-to-failure CSV files are written from 8 training engines; machines get the sensor readings
of held-out test engines as historian tags, one reading per hour (one cycle = one hour).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from indunet.model import POINT_SCHEMA, DataType, PointBatch
from tests.condition import cmapss

HOUR = 3_600_000
T0 = 1_780_000_000_000 // HOUR * HOUR
SENSORS = ("s2", "s3", "s4", "s7", "s11", "s12", "s15", "s17", "s20", "s21")
CLASS = "engines"
WORN = "s1/hangar/l1/e20"  # test engine 20: true RUL 16 after its last cycle
HEALTHY = "s1/hangar/l1/e1"  # test engine 1: true RUL 112
YOUNG = "s1/hangar/l1/e3"  # only its first 5 cycles: insufficient history
SILENT = "s1/hangar/l2/e9"  # no data at all
MACHINES = (WORN, HEALTHY, YOUNG, SILENT)
HORIZON = 30.0


def write_runs(folder: Path, count: int = 8) -> Path:
    """Write run-to-failure CSV files (cycle + SENSORS) of the first training engines."""
    folder.mkdir(parents=True, exist_ok=True)
    for run in cmapss.train()[:count]:
        cols = [run.sensors.index(s) for s in SENSORS]
        lines = ["cycle," + ",".join(SENSORS)]
        for c, row in zip(run.cycles, run.values[:, cols], strict=True):
            lines.append(f"{int(c)}," + ",".join(f"{v:g}" for v in row))
        (folder / f"{run.asset}.csv").write_text("\n".join(lines) + "\n")
    return folder


def plant(folder: Path, **rul: Any) -> dict[str, Any]:
    """The plant config: the four machines and one asset class."""
    return {
        "machines": [{"id": m} for m in MACHINES],
        "rul": [
            {
                "asset_class": CLASS,
                "machines": list(MACHINES),
                "sensors": list(SENSORS),
                "cycle_s": 3600,
                "runs_dir": str(folder),
                "horizon": HORIZON,
                "every_s": 60,
                "trees": 40,  # fast; the default 400 is what bench/condition_rul.py scores
            }
            | rul
        ],
    }


def sensor_batch(enterprise: str) -> tuple[PointBatch, int]:
    """Readings of WORN, HEALTHY and YOUNG, one per hour from T0; and a 'now' after the last."""
    test, _ = cmapss.held_out()
    engines = {WORN: test[19], HEALTHY: test[0], YOUNG: test[2]}
    tags, ts, values = [], [], []
    longest = 0
    for machine, engine in engines.items():
        n = 5 if machine == YOUNG else engine.cycles.size
        longest = max(longest, n)
        for s in SENSORS:
            j = engine.sensors.index(s)
            tags += [f"{machine}/{s}"] * n
            ts += [T0 + i * HOUR + 60_000 for i in range(n)]
            values += engine.values[:n, j].tolist()
    table = pa.table(
        {
            "tag": tags,
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "text": pa.array([None] * len(tags), pa.string()),
            "quality": pa.array(np.zeros(len(tags), np.uint8), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    types = dict.fromkeys(tags, DataType.NUMBER)
    return PointBatch(enterprise, table, types), T0 + longest * HOUR + 1000


def history_runs(enterprise: str, count: int = 8) -> tuple[PointBatch, list[dict[str, str]]]:
    """The first training engines as retired machines' tags (hourly, before T0), and the
    ``runs`` entries naming them: from the first reading to the failure (the last)."""
    from datetime import UTC, datetime

    tags, ts, values, runs = [], [], [], []
    for i, run in enumerate(cmapss.train()[:count]):
        machine = f"s1/hangar/retired/r{i + 1}"
        start = T0 - (i + 1) * 400 * HOUR
        n = run.cycles.size
        for s in SENSORS:
            tags += [f"{machine}/{s}"] * n
            ts += [start + k * HOUR + 60_000 for k in range(n)]
            values += run.values[:, run.sensors.index(s)].tolist()
        iso = [datetime.fromtimestamp(t / 1000, UTC).isoformat() for t in (start, ts[-1])]
        runs.append({"machine": machine, "start": iso[0], "end": iso[1]})
    table = pa.table(
        {
            "tag": tags,
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "text": pa.array([None] * len(tags), pa.string()),
            "quality": pa.array(np.zeros(len(tags), np.uint8), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    return PointBatch(enterprise, table, dict.fromkeys(tags, DataType.NUMBER)), runs
