"""A small simulated plant: machines that cycle between off, idle and running (pure, seeded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality
from indunet.uns import MachinePath

__all__ = ["DEMO_MACHINES", "SimMachine", "simulate"]


@dataclass(frozen=True, slots=True)
class SimMachine:
    """A simulated machine: its path and power levels (kW) when idle and running."""

    path: MachinePath
    idle_kw: float
    run_kw: float
    cycle_s: float


DEMO_MACHINES = (
    SimMachine(MachinePath("qingdao", "press-shop", "line-1", "press-01"), 2.0, 35.0, 12.0),
    SimMachine(MachinePath("qingdao", "press-shop", "line-1", "press-02"), 2.5, 38.0, 12.0),
    SimMachine(MachinePath("qingdao", "assembly", "line-2", "robot-01"), 0.8, 6.5, 45.0),
    SimMachine(MachinePath("wuhan", "machining", "cell-a", "cnc-01"), 1.5, 18.0, 90.0),
    SimMachine(MachinePath("wuhan", "machining", "cell-a", "cnc-02"), 1.5, 17.0, 95.0),
)


def simulate(
    machines: tuple[SimMachine, ...],
    start_ms: int,
    end_ms: int,
    step_ms: int,
    *,
    enterprise: str = "demo",
    seed: int = 7,
) -> PointBatch:
    """Return power, state-driven part counters and temperatures for ``[start, end)``."""
    rng = np.random.default_rng(seed)
    ts = np.arange(start_ms, end_ms, step_ms, dtype=np.int64)
    n = len(ts)
    tags: list[np.ndarray] = []
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    types: dict[str, DataType] = {}
    for m in machines:
        # state blocks of 5–60 minutes: 0 off, 1 idle, 2 running
        state = np.empty(n, dtype=np.int8)
        i = 0
        while i < n:
            length = int(rng.integers(300_000, 3_600_000) // step_ms) + 1
            state[i : i + length] = rng.choice([0, 1, 2], p=[0.1, 0.25, 0.65])
            i += length
        noise = rng.normal(0, 0.05, n)
        # running: the work cycle's shape, a peak once per part (as `sim.live` draws it)
        shape = 0.7 + 0.3 * np.sin(np.pi * ((ts / 1000 / m.cycle_s) % 1.0)) ** 2
        power = np.where(state == 2, m.run_kw * shape, np.where(state == 1, m.idle_kw, 0.05))
        power = np.round(power * (1 + noise).clip(0.8, 1.2), 3)
        parts = np.cumsum((state == 2) * (step_ms / 1000.0 / m.cycle_s))
        made = np.diff(np.floor(parts), prepend=0.0).astype(np.int64)
        scrap = np.cumsum(rng.binomial(made, 0.02))
        temp = np.round(25 + np.cumsum(np.where(state == 2, 0.02, -0.02)).clip(0, 40), 2)
        for name, series, dtype in (
            ("power_kw", power, DataType.NUMBER),
            ("parts_total", np.floor(parts), DataType.NUMBER),
            ("scrap_total", scrap, DataType.NUMBER),
            ("temp_c", temp, DataType.NUMBER),
            ("running", (state == 2).astype(float), DataType.BOOLEAN),
        ):
            tag = str(m.path.tag(name))
            types[tag] = dtype
            tags.append(np.full(n, tag, dtype=object))
            times.append(ts)
            values.append(series.astype(float))
    table = pa.table(
        {
            "tag": pa.array(np.concatenate(tags), pa.string()),
            "ts": pa.array(np.concatenate(times), pa.int64()),
            "value": pa.array(np.concatenate(values), pa.float64()),
            "text": pa.nulls(n * len(tags), pa.string()),
            "quality": pa.array(np.full(n * len(tags), int(Quality.GOOD)), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    return PointBatch(enterprise, table, types)
