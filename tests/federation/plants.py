"""Simulated plants for the federation tests: power written straight into a historian."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from indunet.plant.config import PlantConfig
from tests.plant.plant_data import write

H = 3_600_000
DAY = 24 * H
#: 2026-06-01 00:00 UTC, a Monday
D0 = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)


def plant_config(sites: dict[str, str], machines_per_site: int = 2) -> PlantConfig:
    """A plant with the given sites (name → time zone), each with a line of machines."""
    return PlantConfig.model_validate(
        {
            "machines": [
                {
                    "id": f"{site}/press/l1/m{i}",
                    "power_tag": "power_kw",
                    "thresholds": {"off_below": 1.0, "running_above": 5.0, "hysteresis": 0.2},
                    "expected_interval_s": 60.0,
                    "offline_after_intervals": 5,
                    "total_counter": {"tag": "parts_total"},
                    "ideal_cycle_s": {"p": 30.0},
                    "default_product": "p",
                }
                for site in sites
                for i in range(1, machines_per_site + 1)
            ],
            "sites": {s: {"calendar": {"timezone": tz}} for s, tz in sites.items()},
        }
    )


def simulate(
    historian, plant: PlantConfig, enterprise: str, start_ms: int, end_ms: int, seed: int
) -> None:
    """Write one power reading a minute (kW, a day-shift pattern with noise) and part counters."""
    rng = np.random.default_rng(seed)
    ts = np.arange(start_ms, end_ms, 60_000, dtype=np.int64)
    hour = (ts // H) % 24
    for m in plant.machines:
        base = np.where((hour >= 6) & (hour < 22), rng.uniform(8, 20), rng.uniform(0.2, 0.8))
        kw = base + rng.normal(0, 0.3, len(ts)).clip(-0.15, 0.15)
        write(historian, f"{m.id}/power_kw", ts, kw, enterprise=enterprise)
        parts = np.cumsum(np.where(kw > 5, 2, 0))
        write(historian, f"{m.id}/parts_total", ts, parts, enterprise=enterprise)
