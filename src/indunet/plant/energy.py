"""Energy: kWh from power (trapezoid) or meter totals, roll-ups, idle energy, kWh/part, CO2.

Energy is kept as pieces ``[start_ms, end_ms)`` with kWh each. Splitting a piece across a
bucket, shift or state boundary assumes constant power inside it, so totals are conserved
exactly. Power samples further apart than ``max_gap_ms`` are not bridged (that energy is
unknown and reported as ``unmetered_ms``); meter totals are bridged, because a meter keeps
counting through a data gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from indunet.errors import DataError
from indunet.plant.counters import CounterAnomaly, high_water_rise
from indunet.plant.shifts import ShiftWindow, to_ms, union
from indunet.plant.states import STATE_NAMES, StateTimeline

__all__ = [
    "EnergyPieces",
    "EnergySummary",
    "bucket_edges",
    "co2_kg",
    "energy_by_bucket",
    "energy_by_shift",
    "energy_by_state",
    "energy_from_intervals",
    "energy_from_meter",
    "energy_from_power",
    "energy_summary",
    "kwh_per_part",
]

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class EnergyPieces:
    """Energy in kWh over disjoint, sorted time pieces ``[start_ms, end_ms)``."""

    start_ms: np.ndarray
    end_ms: np.ndarray
    kwh: np.ndarray
    unmetered_ms: int = 0  # time inside the data's span with no energy figure (power gaps)
    anomalies: list[CounterAnomaly] = field(default_factory=list)

    @property
    def total_kwh(self) -> float:
        """Return the sum of all pieces."""
        return float(self.kwh.sum())

    def cumulative(self, t_ms: np.ndarray) -> np.ndarray:
        """Return the energy (kWh) before each time, constant power inside a piece."""
        t = np.asarray(t_ms, dtype=np.int64)
        if not len(self.kwh):
            return np.zeros(len(t))
        before = np.concatenate([[0.0], np.cumsum(self.kwh)])
        k = np.searchsorted(self.start_ms, t, side="right") - 1
        kk = np.maximum(k, 0)
        span = (self.end_ms - self.start_ms)[kk]
        frac = np.clip((t - self.start_ms[kk]) / span, 0.0, 1.0)
        return np.where(k >= 0, before[kk] + frac * self.kwh[kk], 0.0)

    def between(self, start_ms: np.ndarray, end_ms: np.ndarray) -> np.ndarray:
        """Return the energy inside each ``[start, end)``."""
        return self.cumulative(np.asarray(end_ms)) - self.cumulative(np.asarray(start_ms))

    def in_intervals(self, intervals: np.ndarray) -> float:
        """Return the energy inside a set of intervals."""
        iv = union(intervals)
        return float(self.between(iv[:, 0], iv[:, 1]).sum()) if len(iv) else 0.0


def _pieces(s: np.ndarray, e: np.ndarray, kwh: np.ndarray, **kw: object) -> EnergyPieces:
    keep = e > s
    return EnergyPieces(
        s[keep].astype(np.int64), e[keep].astype(np.int64), kwh[keep].astype(float), **kw
    )  # type: ignore[arg-type]


def _check_ts(ts: np.ndarray, machine: str, field_name: str) -> None:
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if len(bad):
        i = int(bad[0]) + 1
        raise DataError(
            f"{machine} {field_name}: row {i} field ts: {ts[i]} is not after the row before "
            f"({ts[i - 1]}); sort and de-duplicate the samples first"
        )


def energy_from_power(
    ts_ms: np.ndarray,
    kw: np.ndarray,
    *,
    max_gap_ms: int,
    machine: str = "machine",
    field_name: str = "power",
) -> EnergyPieces:
    """Integrate power (kW) with the trapezoid rule; gaps over ``max_gap_ms`` are not bridged."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    p = np.asarray(kw, dtype=np.float64)
    if ts.shape != p.shape or ts.ndim != 1:
        raise DataError(f"{machine} {field_name}: ts and value must be 1-D arrays of one length")
    _check_ts(ts, machine, field_name)
    if len(ts) < 2:
        return _pieces(ts[:0], ts[:0], p[:0])
    dt = np.diff(ts)
    ok = (dt <= max_gap_ms) & np.isfinite(p[1:]) & np.isfinite(p[:-1])
    kwh = (p[1:] + p[:-1]) / 2 * dt / HOUR_MS
    unmetered = int(dt[~ok].sum())
    return _pieces(ts[:-1][ok], ts[1:][ok], kwh[ok], unmetered_ms=unmetered)


def energy_from_meter(
    ts_ms: np.ndarray,
    total_kwh: np.ndarray,
    *,
    rollover_kwh: float | None = None,
    machine: str = "machine",
    field_name: str = "meter",
) -> EnergyPieces:
    """Return energy between meter readings; rollovers are added back, other drops flagged."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(total_kwh, dtype=np.float64)
    if ts.shape != v.shape or ts.ndim != 1:
        raise DataError(f"{machine} {field_name}: ts and value must be 1-D arrays of one length")
    _check_ts(ts, machine, field_name)
    anomalies: list[CounterAnomaly] = []
    good = np.flatnonzero(np.isfinite(v) & (v >= 0))
    for i in np.flatnonzero(~(np.isfinite(v) & (v >= 0))):
        anomalies.append(
            CounterAnomaly(
                int(i),
                int(ts[i]),
                field_name,
                "missing",
                f"{machine} {field_name} row {i}: meter reading {v[i]:g} is missing or "
                "negative; skipped (the energy is counted at the next good reading)",
            )
        )
    if len(good) < 2:
        return _pieces(ts[:0], ts[:0], v[:0], anomalies=anomalies)
    gv, gt = v[good], ts[good]
    # the meter's high-water mark, as for part counters: a reset is a drop to near zero (a new
    # meter), a rollover adds the modulus, any other drop counts nothing until it is passed
    rule = SimpleNamespace(resets=True, reset_below=0.1, wrap_at=rollover_kwh)
    per_reading, _, events = high_water_rise(gv, None, rule)  # type: ignore[arg-type]
    d = per_reading[1:]
    for j, kind, mark in events:
        row = int(good[j])
        if kind == "wrap":
            text = f"meter rolled over from {mark:g} to {gv[j]:g} kWh"
        elif kind == "reset":
            text = f"meter restarted from {mark:g} at {gv[j]:g} kWh (replaced?); counted {gv[j]:g}"
        else:
            text = (
                f"meter went back from {mark:g} to {gv[j]:g} kWh; nothing counted until it passes "
                f"{mark:g} again (set meter_rollover_kwh if it rolls over)"
            )
        anomalies.append(
            CounterAnomaly(
                row, int(ts[row]), field_name, kind, f"{machine} {field_name} row {row}: {text}"
            )
        )
    anomalies.sort(key=lambda a: a.row)
    return _pieces(gt[:-1], gt[1:], d, anomalies=anomalies)


def energy_from_intervals(
    end_ms: np.ndarray, kwh: np.ndarray, interval_ms: int, *, machine: str = "machine"
) -> EnergyPieces:
    """Return pieces from interval energies stamped at the interval end (e.g. 15-min kWh)."""
    e = np.asarray(end_ms, dtype=np.int64)
    k = np.asarray(kwh, dtype=np.float64)
    _check_ts(e, machine, "interval energy")
    bad = np.flatnonzero(~np.isfinite(k) | (k < 0))
    if len(bad):
        raise DataError(
            f"{machine}: row {bad[0]} field kwh: {k[bad[0]]:g} is not a valid energy (>= 0)"
        )
    if len(e) > 1 and np.any(np.diff(e) < interval_ms):
        i = int(np.flatnonzero(np.diff(e) < interval_ms)[0]) + 1
        raise DataError(
            f"{machine}: row {i} field ts: intervals overlap (closer than the interval)"
        )
    return _pieces(e - interval_ms, e, k)


def bucket_edges(
    start_ms: int, end_ms: int, every: Literal["hour", "day"], timezone: str
) -> np.ndarray:
    """Return bucket edges from ``start_ms`` to ``end_ms`` at local hours or midnights."""
    if end_ms <= start_ms:
        raise DataError(f"end_ms {end_ms} is not after start_ms {start_ms}")
    zone = ZoneInfo(timezone)
    first = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(zone).date() - timedelta(1)
    last = datetime.fromtimestamp(end_ms / 1000, UTC).astimezone(zone).date() + timedelta(1)
    hours = range(24) if every == "hour" else range(1)
    edges = []
    day = first
    while day <= last:
        for h in hours:
            for fold in (0, 1):  # the repeated hour of the autumn change exists twice
                edges.append(to_ms(datetime.combine(day, time(h), tzinfo=zone).replace(fold=fold)))
        day += timedelta(1)
    e = np.unique(np.array(edges, dtype=np.int64))
    e = e[(e > start_ms) & (e < end_ms)]
    return np.concatenate([[start_ms], e, [end_ms]]).astype(np.int64)


def energy_by_bucket(
    pieces: EnergyPieces,
    start_ms: int,
    end_ms: int,
    every: Literal["hour", "day"],
    timezone: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (bucket start ms, kWh) per local hour or day in ``[start_ms, end_ms)``."""
    edges = bucket_edges(start_ms, end_ms, every, timezone)
    return edges[:-1], pieces.between(edges[:-1], edges[1:])


def energy_by_shift(pieces: EnergyPieces, windows: Sequence[ShiftWindow]) -> list[float]:
    """Return the kWh of each shift window (whole window, breaks included)."""
    if not windows:
        return []
    s = np.array([w.start_ms for w in windows], dtype=np.int64)
    e = np.array([w.end_ms for w in windows], dtype=np.int64)
    return [float(x) for x in pieces.between(s, e)]


def energy_by_state(pieces: EnergyPieces, timeline: StateTimeline) -> dict[str, float]:
    """Return kWh per machine state; energy outside the timeline is ``unknown``."""
    out = dict.fromkeys(STATE_NAMES, 0.0)
    if len(timeline):
        per_seg = pieces.between(timeline.start_ms, timeline.end_ms)
        sums = np.bincount(timeline.state, weights=per_seg, minlength=4)
        out = {name: float(sums[i]) for i, name in enumerate(STATE_NAMES)}
    out["unknown"] = pieces.total_kwh - sum(out.values())
    if abs(out["unknown"]) < 1e-9 * max(pieces.total_kwh, 1.0):
        out["unknown"] = 0.0
    return out


def kwh_per_part(kwh: float, good_parts: float) -> float | None:
    """Return kWh per good part, or None when no good part was made."""
    return kwh / good_parts if good_parts > 0 else None


def co2_kg(kwh: float, grid_kg_co2_per_kwh: float) -> float:
    """Return the CO2 estimate (kg) of an energy use with a grid emission factor."""
    if grid_kg_co2_per_kwh < 0:
        raise DataError(f"grid factor {grid_kg_co2_per_kwh} kg CO2/kWh must not be negative")
    return kwh * grid_kg_co2_per_kwh


@dataclass(frozen=True)
class EnergySummary:
    """Energy of one machine or group over a range; sums like OEE elements."""

    kwh: float = 0.0
    idle_kwh: float = 0.0
    off_kwh: float = 0.0
    running_kwh: float = 0.0
    good_parts: float = 0.0
    co2_kg: float = 0.0

    def __add__(self, other: EnergySummary) -> EnergySummary:
        if not isinstance(other, EnergySummary):
            return NotImplemented
        return EnergySummary(
            self.kwh + other.kwh,
            self.idle_kwh + other.idle_kwh,
            self.off_kwh + other.off_kwh,
            self.running_kwh + other.running_kwh,
            self.good_parts + other.good_parts,
            self.co2_kg + other.co2_kg,
        )

    @property
    def kwh_per_good_part(self) -> float | None:
        """Return kWh per good part, or None without good parts."""
        return kwh_per_part(self.kwh, self.good_parts)

    @property
    def non_productive_kwh(self) -> float:
        """Return energy spent idle or off."""
        return self.idle_kwh + self.off_kwh


def energy_summary(
    pieces: EnergyPieces,
    window: tuple[int, int],
    *,
    timeline: StateTimeline | None = None,
    good_parts: float = 0.0,
    grid_kg_co2_per_kwh: float = 0.0,
) -> EnergySummary:
    """Summarise energy in a window: total, idle/off/running split, parts and CO2."""
    w0, w1 = window
    kwh = float(pieces.between(np.array([w0]), np.array([w1]))[0])
    by_state = dict.fromkeys(STATE_NAMES, 0.0)
    if timeline is not None:
        by_state = energy_by_state(pieces, timeline.clip(w0, w1))
    return EnergySummary(
        kwh=kwh,
        idle_kwh=by_state["idle"],
        off_kwh=by_state["off"],
        running_kwh=by_state["running"],
        good_parts=good_parts,
        co2_kg=co2_kg(kwh, grid_kg_co2_per_kwh),
    )
