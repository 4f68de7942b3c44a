"""OEE for one line over 30 days from stored state timelines (target: ≤ 100 ms).

Stores 30 days of timelines for a 10-machine line (random off/idle/running segments of 1–60 min,
about 1,300 segments per machine) in the DuckDB historian's plant_states table, then times
`oee_report` for the line (three shifts with breaks, Asia/Shanghai), by none and by shift.
No counters are configured, so the figure is the timeline + calendar + element sums path.

Run: .venv/bin/python bench/plant_oee.py
"""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np

from indunet.config import load_settings
from indunet.plant.config import PlantConfig
from indunet.plant.report import oee_report
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from indunet.store import open_historian

DAY = 86_400_000
T0 = 1_780_000_000_000 // DAY * DAY


def main() -> None:
    machines = [f"s1/assembly/l1/m{i:02d}" for i in range(10)]
    shifts = [
        {
            "name": "early",
            "start": "06:00",
            "end": "14:00",
            "breaks": [{"start": "11:30", "end": "12:00"}],
        },
        {"name": "day", "start": "14:00", "end": "22:00"},
        {"name": "night", "start": "22:00", "end": "06:00"},
    ]
    cfg = PlantConfig.model_validate(
        {
            "machines": [
                {
                    "id": m,
                    "power_tag": "power_kw",
                    "thresholds": {"off_below": 1, "running_above": 5},
                }
                for m in machines
            ],
            "sites": {"s1": {"calendar": {"timezone": "Asia/Shanghai", "shifts": shifts}}},
        }
    )
    settings = load_settings(data_dir=tempfile.mkdtemp(prefix="bench-oee-"), plant=cfg)
    h = open_historian(settings)
    store = PlantStore(h, cfg)
    rng = np.random.default_rng(1)
    end = T0 + 30 * DAY
    segs = 0
    for m in machines:
        lengths = rng.integers(60_000, 3_600_000, 2000)
        edges = T0 + np.concatenate([[0], np.cumsum(lengths)])
        edges = edges[edges < end]
        edges = np.append(edges, end)
        states = rng.choice([0, 1, 2, 2, 2], len(edges) - 1).astype(np.int8)
        tl = StateTimeline(edges[:-1], edges[1:], states)
        segs += len(tl)
        store.save_segments("demo", m, tl)
    print(f"stored {segs} segments for {len(machines)} machines over 30 days")
    for by in ("none", "shift"):
        times = []
        for _ in range(7):
            t = time.perf_counter()
            r = oee_report(store, h, cfg, "demo", "s1/assembly/l1", T0, end, by=by)
            times.append(time.perf_counter() - t)
        print(
            f"oee line 30 d by={by}: median {statistics.median(times) * 1000:.1f} ms, "
            f"min {min(times) * 1000:.1f} ms (groups {len(r['groups'])}, "
            f"A {r['total']['availability']:.3f})"
        )
    h.close()


if __name__ == "__main__":
    main()
