"""Live plant simulator: machines that move between off, idle, setup, running and breakdown.

Pure and seeded: `PlantSim.step(now_ms)` returns one JSON-contract payload per machine; the
publishers in `indunet.sim.publish` send them over MQTT. The same seed and the same sequence
of ``now_ms`` give the same payloads, byte for byte.

Each state's duration is drawn from its own distribution (`STATES`): waits while idle are
memoryless (exponential), changeovers are a few similar steps (gamma), production runs, repairs
and shift gaps are skewed (lognormal). Power follows the machine's work cycle while running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from indunet.uns import MachinePath

__all__ = ["STATES", "PlantSim", "SimMachineState", "StateSpec", "build_plants"]


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One machine state: how long it lasts, what it draws, and where it goes next."""

    distribution: str  # exponential | gamma | lognormal
    mean_s: float
    cv: float  # coefficient of variation of the duration (ignored for exponential)
    load_share: float  # power as a share of the machine's rated load
    next_states: tuple[tuple[str, float], ...]

    def draw_s(self, rng: np.random.Generator) -> float:
        """Draw one duration in seconds (at least one second)."""
        if self.distribution == "exponential":
            d = rng.exponential(self.mean_s)
        elif self.distribution == "gamma":
            shape = 1 / self.cv**2
            d = rng.gamma(shape, self.mean_s / shape)
        elif self.distribution == "lognormal":
            sigma = math.sqrt(math.log1p(self.cv**2))
            d = rng.lognormal(math.log(self.mean_s) - sigma**2 / 2, sigma)
        else:  # pragma: no cover - the table below is fixed
            raise ValueError(self.distribution)
        return max(float(d), 1.0)


STATES: dict[str, StateSpec] = {
    "off": StateSpec("lognormal", 1800.0, 0.5, 0.0, (("idle", 1.0),)),
    "idle": StateSpec(
        "exponential", 600.0, 1.0, 0.08, (("running", 0.6), ("setup", 0.3), ("off", 0.1))
    ),
    "setup": StateSpec("gamma", 300.0, 0.3, 0.25, (("running", 1.0),)),
    "running": StateSpec("lognormal", 2400.0, 0.6, 1.0, (("idle", 0.85), ("breakdown", 0.15))),
    "breakdown": StateSpec("lognormal", 900.0, 1.0, 0.02, (("idle", 1.0),)),
}
_AREAS = ("press-shop", "machining", "assembly")
_CATCH_UP_MS = 86_400_000  # after a long pause, replay at most a day of state changes


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
    scrap: int = 0
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
        first = m.until_ms == 0
        while now_ms >= m.until_ms:
            start = max(m.until_ms, now_ms - _CATCH_UP_MS)
            if not first:
                names, probs = zip(*STATES[m.state].next_states, strict=True)
                m.state = names[int(self.rng.choice(len(names), p=probs))]
            first = False
            m.until_ms = start + int(STATES[m.state].draw_s(self.rng) * 1000)
            m.log.append((start, m.state))
            del m.log[:-50]

    def _power_kw(self, m: SimMachineState, now_ms: int) -> float:
        share = STATES[m.state].load_share
        if not share:
            return 0.0
        if m.state == "running":  # the work cycle: a peak once per part
            phase = (now_ms / 1000 / m.cycle_s) % 1.0
            share *= 0.7 + 0.3 * math.sin(math.pi * phase) ** 2
        return max(m.rated_kw * share * float(self.rng.normal(1.0, 0.04)), 0.0)

    def step(self, now_ms: int) -> list[tuple[MachinePath, dict]]:
        """Return each machine's payload at ``now_ms`` (contract of DESIGN.md §3)."""
        out = []
        for m in self.machines:
            self._transition(m, now_ms)
            dt_s = 0.0 if m.last_ms is None else max(now_ms - m.last_ms, 0) / 1000
            m.last_ms = now_ms
            power = self._power_kw(m, now_ms)
            m.energy_kwh += power * dt_s / 3600
            if m.state == "running":
                before = int(m.parts)
                m.parts += dt_s / m.cycle_s
                made = int(m.parts) - before
                if made:
                    m.scrap += int(self.rng.binomial(made, m.scrap_rate))
            target = 25 + 35 * STATES[m.state].load_share
            m.temp_c += (target - m.temp_c) * min(dt_s / 600, 1.0)
            temp = m.temp_c + float(self.rng.normal(0, 0.1))
            parts = int(m.parts)
            out.append(
                (
                    m.path,
                    {
                        "timestamp_ms": now_ms,
                        "power_kw": round(power, 3),
                        "energy_kwh": round(m.energy_kwh, 4),
                        "parts_total": parts,
                        "good_total": parts - m.scrap,
                        "scrap_total": m.scrap,
                        "temp_c": round(temp, 2),
                        "state": m.state,
                    },
                )
            )
        return out
