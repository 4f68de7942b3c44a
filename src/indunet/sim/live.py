"""Live plant simulator: machines that move between off, idle, setup, running and breakdown.

Pure and seeded: `PlantSim.step(now_ms)` returns one JSON-contract payload per machine; the
publisher in `indunet.sim.publish` sends them over MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from indunet.uns import MachinePath

__all__ = ["STATES", "PlantSim", "SimMachineState", "build_plants"]

#: state -> (mean duration s, power share of rated load)
STATES: dict[str, tuple[float, float]] = {
    "off": (1800.0, 0.0),
    "idle": (600.0, 0.08),
    "setup": (300.0, 0.25),
    "running": (2400.0, 1.0),
    "breakdown": (900.0, 0.02),
}
_NEXT = {
    "off": (["idle"], [1.0]),
    "idle": (["running", "setup", "off"], [0.6, 0.3, 0.1]),
    "setup": (["running"], [1.0]),
    "running": (["idle", "breakdown"], [0.85, 0.15]),
    "breakdown": (["idle"], [1.0]),
}
_AREAS = ("press-shop", "machining", "assembly")


@dataclass(slots=True)
class SimMachineState:
    """One simulated machine and its running totals."""

    path: MachinePath
    rated_kw: float
    cycle_s: float
    scrap_rate: float
    state: str = "idle"
    until_ms: int = 0
    parts: float = 0.0
    scrap: float = 0.0
    energy_kwh: float = 0.0
    temp_c: float = 25.0
    last_ms: int | None = None
    log: list[tuple[int, str]] = field(default_factory=list)


def build_plants(sites: int, machines: int, seed: int = 7) -> list[SimMachineState]:
    """Spread ``machines`` over ``sites`` sites, areas and lines of 5 machines."""
    rng = np.random.default_rng(seed)
    out: list[SimMachineState] = []
    for i in range(machines):
        site = f"site-{i % sites + 1:02d}"
        k = i // sites
        area = _AREAS[k % len(_AREAS)]
        line = f"line-{k // 5 + 1:02d}"
        out.append(
            SimMachineState(
                MachinePath(site, area, line, f"m-{i + 1:03d}"),
                rated_kw=float(rng.uniform(5, 60)),
                cycle_s=float(rng.uniform(10, 120)),
                scrap_rate=float(rng.uniform(0.005, 0.05)),
            )
        )
    return out


class PlantSim:
    """Advance the machines in time and produce their payloads."""

    def __init__(self, machines: list[SimMachineState], seed: int = 7) -> None:
        self.machines = machines
        self.rng = np.random.default_rng(seed + 1)

    def _transition(self, m: SimMachineState, now_ms: int) -> None:
        while now_ms >= m.until_ms:
            names, probs = _NEXT[m.state]
            start = max(m.until_ms, now_ms - 86_400_000)
            m.state = str(self.rng.choice(names, p=probs)) if m.until_ms else m.state
            mean_s = STATES[m.state][0]
            m.until_ms = start + int(self.rng.exponential(mean_s) * 1000) + 1000
            m.log.append((start, m.state))
            del m.log[:-50]

    def step(self, now_ms: int) -> list[tuple[MachinePath, dict]]:
        """Return each machine's payload at ``now_ms`` (contract of DESIGN.md §3)."""
        out = []
        for m in self.machines:
            self._transition(m, now_ms)
            dt_s = 0.0 if m.last_ms is None else max(now_ms - m.last_ms, 0) / 1000
            m.last_ms = now_ms
            share = STATES[m.state][1]
            power = m.rated_kw * share * float(self.rng.normal(1.0, 0.04)) if share else 0.0
            power = max(power, 0.0)
            m.energy_kwh += power * dt_s / 3600
            if m.state == "running":
                made = dt_s / m.cycle_s
                m.parts += made
                m.scrap += made * m.scrap_rate
            target = 25 + 35 * share
            m.temp_c += (target - m.temp_c) * min(dt_s / 600, 1.0)
            out.append(
                (
                    m.path,
                    {
                        "timestamp_ms": now_ms,
                        "power_kw": round(power, 3),
                        "energy_kwh": round(m.energy_kwh, 4),
                        "parts_total": int(m.parts),
                        "scrap_total": int(m.scrap),
                        "temp_c": round(m.temp_c, 2),
                        "state": m.state,
                    },
                )
            )
        return out
