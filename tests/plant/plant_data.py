"""Helpers for the plant wiring tests: a small plant config and point writers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality
from indunet.plant.config import PlantConfig
from indunet.store.base import Historian

T0 = 1_780_000_000_000  # 2026-05-28T20:26:40Z, a Thursday
M1 = "s1/press/l1/m1"
M2 = "s1/press/l1/m2"


def plant(*machines: str, shifts: bool = False) -> PlantConfig:
    """Two (or more) machines on one line, thresholds 1 kW / 5 kW, optional shifts."""
    site: dict = {"grid_kg_co2_per_kwh": 0.5, "calendar": {"timezone": "UTC"}}
    if shifts:
        site["calendar"]["shifts"] = [
            {
                "name": "early",
                "start": "06:00",
                "end": "14:00",
                "breaks": [{"start": "10:00", "end": "10:30"}],
            },
            {"name": "late", "start": "14:00", "end": "22:00"},
        ]
    return PlantConfig.model_validate(
        {
            "machines": [
                {
                    "id": m,
                    "power_tag": "power_kw",
                    "thresholds": {"off_below": 1.0, "running_above": 5.0, "hysteresis": 0.2},
                    "expected_interval_s": 1.0,
                    "offline_after_intervals": 5,
                    "total_counter": {"tag": "parts_total"},
                    "scrap_counter": {"tag": "scrap_total"},
                    "ideal_cycle_s": {"p": 10.0},
                    "default_product": "p",
                }
                for m in (machines or (M1, M2))
            ],
            "sites": {"s1": site},
            "reasons": {"reasons": [{"code": "mechanical"}, {"code": "waiting"}]},
        }
    )


def write(
    historian: Historian,
    tag: str,
    ts: np.ndarray,
    values: np.ndarray,
    quality: int | np.ndarray = Quality.GOOD,
    enterprise: str = "demo",
) -> None:
    """Write numeric points of one tag."""
    ts = np.asarray(ts, np.int64)
    n = len(ts)
    q = np.broadcast_to(np.asarray(quality, np.uint8), (n,))
    table = pa.table(
        {
            "tag": pa.array([tag] * n, pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(np.asarray(values, np.float64), pa.float64()),
            "text": pa.nulls(n, pa.string()),
            "quality": pa.array(q, pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    historian.write(PointBatch(enterprise, table, {tag: DataType.NUMBER}), source="test")


def power_profile(start_ms: int, levels: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """1 s samples: (seconds, kW) blocks one after the other."""
    v = np.concatenate([np.full(sec, kw) for sec, kw in levels])
    ts = start_ms + np.arange(len(v), dtype=np.int64) * 1000
    return ts, v
