"""Live plant simulator: machines that move between off, idle, setup, running and breakdown.

Pure and seeded: `PlantSim.step(now_ms)` returns one JSON-contract payload per machine; the
publishers in `indunet.sim.publish` send them over MQTT. The same seed and the same sequence
of ``now_ms`` give the same payloads, byte for byte.

Each state's duration is drawn from its own distribution (`STATES`): waits while idle are
memoryless (exponential), changeovers are a few similar steps (gamma), production runs, repairs
and shift gaps are skewed (lognormal). Power follows the machine's work cycle while running.

A machine with a spindle (`indunet.sim.wear`) also reports its spindle's vibration and
temperature, which drift up as it wears. With ``anomalies_per_h``, now and then a machine
misbehaves for a few seconds (an episode): a current surge (power far above its rated load) or,
on a spindle, a bearing knock (vibration and heat far above normal), for the anomaly monitors
to find. The first episode comes a minute or two after the start, so a demo shows one soon.
Episodes draw from their own random stream: without them the payloads are the same as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from indunet.sim.wear import Spindle, spindle_noise, spindle_trend
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
#: an episode: a current surge (power × factor) or a bearing knock (vibration + mm/s, heat + °C)
SURGE_FACTOR = (1.6, 2.0)
KNOCK_MM_S = (4.0, 7.0)
EPISODE_S = (15.0, 40.0)
SPINDLE_JITTER = 0.005  # second-to-second jitter of the spindle's minute readings


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
    spindle: Spindle | None = None
    episode: tuple[str, int, float] | None = None  # kind, until (ms), strength
    spindle_noise: tuple[int, float, float] = (-1, 0.0, 0.0)  # minute, its vibration and heat


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

    def __init__(
        self, machines: list[SimMachineState], seed: int = 7, *, anomalies_per_h: float = 0.0
    ) -> None:
        self.machines = machines
        self.rng = np.random.default_rng(seed + 1)
        self.anomalies_per_h = anomalies_per_h
        self._events = np.random.default_rng(seed + 2)  # episodes and spindle readings
        self._next_episode_ms: int | None = None

    def _episodes(self, now_ms: int) -> None:
        """Start the episodes due by ``now_ms`` (at most one a step), end the finished ones."""
        for m in self.machines:
            if m.episode is not None and now_ms >= m.episode[1]:
                m.episode = None
        if self.anomalies_per_h <= 0:
            return
        if self._next_episode_ms is None:  # the first: a minute or two after the start
            self._next_episode_ms = now_ms + int(self._events.uniform(60_000, 120_000))
        if now_ms < self._next_episode_ms:
            return
        mean_ms = 3_600_000 / self.anomalies_per_h
        self._next_episode_ms = now_ms + max(int(self._events.exponential(mean_ms)), 1000)
        # a surge needs a running machine; a knock, a spindle
        pool = [
            m
            for m in self.machines
            if m.episode is None and (m.state == "running" or m.spindle is not None)
        ]
        if not pool:
            return
        m = pool[int(self._events.integers(len(pool)))]
        until = now_ms + int(self._events.uniform(*EPISODE_S) * 1000)
        knock = m.spindle is not None and (m.state != "running" or self._events.random() < 0.5)
        if knock:
            m.episode = ("knock", until, float(self._events.uniform(*KNOCK_MM_S)))
        else:
            m.episode = ("surge", until, float(self._events.uniform(*SURGE_FACTOR)))

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

    def _spindle(self, m: SimMachineState, now_ms: int) -> tuple[float, float]:
        """The spindle's readings: its sensors' RMS over a minute (one noise draw a minute, as
        in the back-filled history) with a little jitter from second to second."""
        assert m.spindle is not None
        minute = now_ms // 60_000
        if m.spindle_noise[0] != minute:
            vib_noise, heat_noise = spindle_noise(self._events)
            m.spindle_noise = (minute, float(vib_noise), float(heat_noise))
        vib, heat = spindle_trend(m.spindle, now_ms)
        jitter = self._events.normal(0, SPINDLE_JITTER, 2)
        return (
            float(vib) + m.spindle_noise[1] + float(jitter[0]),
            float(heat) + m.spindle_noise[2] + float(jitter[1]),
        )

    def step(self, now_ms: int) -> list[tuple[MachinePath, dict]]:
        """Return each machine's payload at ``now_ms`` (contract of DESIGN.md §3)."""
        out = []
        self._episodes(now_ms)
        for m in self.machines:
            self._transition(m, now_ms)
            dt_s = 0.0 if m.last_ms is None else max(now_ms - m.last_ms, 0) / 1000
            m.last_ms = now_ms
            power = self._power_kw(m, now_ms)
            kind, _, strength = m.episode or ("", 0, 0.0)
            if kind == "surge" and m.state == "running":
                power *= strength
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
            payload = {
                "timestamp_ms": now_ms,
                "power_kw": round(power, 3),
                "energy_kwh": round(m.energy_kwh, 4),
                "parts_total": parts,
                "good_total": parts - m.scrap,
                "scrap_total": m.scrap,
                "temp_c": round(temp, 2),
                "state": m.state,
            }
            if m.spindle is not None:
                vib, heat = self._spindle(m, now_ms)
                if kind == "knock":
                    vib, heat = vib + strength, heat + 2 * strength
                payload["spindle_vib_mm_s"] = round(float(vib), 3)
                payload["spindle_temp_c"] = round(float(heat), 2)
            out.append((m.path, payload))
        return out
