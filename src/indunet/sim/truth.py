"""A simulated plant with ground truth: what each machine really did, to check indunet against.

Pure and seeded. Each machine goes through off / idle / running blocks aligned to its sample
interval, draws power inside the thresholds' bands (off < 1 kW, idle 1–5 kW, running > 5 kW), makes
a part every ``cycle_s`` of running, scraps some, resets its part and scrap counters to zero at
every shift change, and keeps an energy meter. The state log and the parts made are the truth the
invariant test and `bench/soak.py` compare stored data, timelines and OEE with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["THRESHOLDS", "TruthMachine", "TruthRun", "reference_oee", "run_plant"]

#: the thresholds the truth's power levels are drawn for
THRESHOLDS = {"off_below": 1.0, "running_above": 5.0, "hysteresis": 0.2}
_KW = {0: (0.1, 0.6), 1: (2.0, 3.5), 2: (7.0, 9.0)}  # off, idle, running


@dataclass(frozen=True)
class TruthMachine:
    """A machine of the simulated plant."""

    id: str  # site/area/line/machine
    cycle_s: float
    scrap_rate: float = 0.02


@dataclass
class TruthRun:
    """Samples per machine (columns) and what truly happened."""

    ts: np.ndarray
    power_kw: dict[str, np.ndarray] = field(default_factory=dict)
    parts_total: dict[str, np.ndarray] = field(default_factory=dict)
    scrap_total: dict[str, np.ndarray] = field(default_factory=dict)
    energy_kwh: dict[str, np.ndarray] = field(default_factory=dict)
    state: dict[str, np.ndarray] = field(default_factory=dict)  # 0 off, 1 idle, 2 running
    made: dict[str, int] = field(default_factory=dict)  # parts made after the first sample
    scrapped: dict[str, int] = field(default_factory=dict)

    def payloads(self, machine: str, rows: np.ndarray | slice) -> list[dict]:
        """Return the JSON contract's payloads of a machine's sample rows."""
        ts = self.ts[rows]
        cols = {
            "power_kw": self.power_kw[machine][rows],
            "parts_total": self.parts_total[machine][rows],
            "scrap_total": self.scrap_total[machine][rows],
            "energy_kwh": self.energy_kwh[machine][rows],
        }
        return [
            {"timestamp_ms": int(t), **{k: float(v[i]) for k, v in cols.items()}}
            for i, t in enumerate(ts.tolist())
        ]


def run_plant(
    machines: list[TruthMachine],
    start_ms: int,
    samples: int,
    *,
    step_ms: int = 1000,
    shift_ms: int = 8 * 3_600_000,
    block_s: tuple[int, int] = (120, 1200),
    seed: int = 7,
) -> TruthRun:
    """Simulate ``samples`` samples per machine from ``start_ms``; return samples and truth."""
    rng = np.random.default_rng(seed)
    ts = start_ms + np.arange(samples, dtype=np.int64) * step_ms
    run = TruthRun(ts)
    shift = (ts - start_ms) // shift_ms
    new_shift = np.concatenate([[False], np.diff(shift) > 0])
    for m in machines:
        state = np.empty(samples, np.int8)
        i = 0
        while i < samples:
            n = int(rng.integers(block_s[0], block_s[1]) * 1000 // step_ms)
            state[i : i + n] = rng.choice([0, 1, 2], p=[0.15, 0.25, 0.6])
            i += n
        lo = np.array([_KW[s][0] for s in range(3)])[state]
        hi = np.array([_KW[s][1] for s in range(3)])[state]
        power = np.round(rng.uniform(lo, hi), 3)
        # parts: one per cycle of running; counters reset to 0 at each shift change
        progress = np.cumsum((state == 2) * (step_ms / 1000 / m.cycle_s))
        whole = np.floor(progress).astype(np.int64)
        made_now = np.diff(whole, prepend=whole[0])
        scrap_now = rng.binomial(made_now, m.scrap_rate)
        parts = np.zeros(samples, np.int64)
        scrap = np.zeros(samples, np.int64)
        p = s = 0
        for k in range(samples):
            if new_shift[k]:
                p = s = 0
            p += int(made_now[k])
            s += int(scrap_now[k])
            parts[k], scrap[k] = p, s
        energy = np.round(np.cumsum(power * step_ms / 3_600_000), 4)
        run.power_kw[m.id] = power
        run.parts_total[m.id] = parts.astype(float)
        run.scrap_total[m.id] = scrap.astype(float)
        run.energy_kwh[m.id] = energy
        run.state[m.id] = state
        run.made[m.id] = int(made_now[1:].sum())
        run.scrapped[m.id] = int(scrap_now[1:].sum())
    return run


def reference_oee(run: TruthRun, machine: TruthMachine, step_ms: int = 1000) -> dict[str, float]:
    """Return the machine's true A, P, Q over its samples (no shifts: every hour is planned).

    Running time counts each running sample's interval; planned busy time is the span from the
    first sample to one interval after the last.
    """
    state = run.state[machine.id]
    pbt = len(state) * step_ms
    apt = int((state == 2).sum()) * step_ms
    made, bad = run.made[machine.id], run.scrapped[machine.id]
    return {
        "pbt_ms": pbt,
        "apt_ms": apt,
        "produced": made,
        "scrap": bad,
        "availability": apt / pbt,
        "performance": machine.cycle_s * 1000 * made / apt if apt else float("nan"),
        "quality": (made - bad) / made if made else float("nan"),
    }
