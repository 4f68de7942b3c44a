"""OEE and energy reports for a machine, line, area, site or enterprise, from stored timelines.

The scope is a prefix of machine ids (``s1``, ``s1/press``, ``s1/press/l1``, a machine id, or
empty for the whole enterprise). Timelines come from the plant store, plus the open segment
when a watcher runs; part counters and power come from the historian. Groups and totals are
sums of `OeeElements` and `EnergySummary`; ratios are derived from the sums, never averaged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from indunet.errors import DataError
from indunet.model import Quality
from indunet.plant.config import CounterConfig, MachineConfig, PlantConfig
from indunet.plant.counters import CounterDeltas, counter_deltas
from indunet.plant.energy import (
    EnergyPieces,
    EnergySummary,
    bucket_edges,
    energy_from_meter,
    energy_from_power,
    energy_summary,
)
from indunet.plant.follow import pending_changes
from indunet.plant.oee import (
    OeeElements,
    machine_oee,
    propose_reasons,
    rollup,
    unassigned_stops,
)
from indunet.plant.shifts import ShiftWindow, day_windows, planned_busy, shift_windows
from indunet.plant.states import STATE_NAMES, StateTimeline, current_to_kw
from indunet.plant.store import PlantStore
from indunet.plant.watch import usable_values
from indunet.store.base import Historian

__all__ = [
    "MAX_RANGE_MS",
    "energy_report",
    "oee_report",
    "running_loss_report",
    "scope_machines",
    "stops_report",
]

MAX_RANGE_MS = 400 * 86_400_000
MAX_BUCKETS = 10_000
COUNTER_LOOKBACK_MS = 3_600_000
#: how long a machine's reported state (its state tag) holds without a new report
STATE_HOLD_MS = 12 * 3_600_000
#: the not-yet-stored part of a machine's timeline (from a running watcher), or None
OpenPart = Callable[[str], StateTimeline] | None


def check_range(start_ms: int, end_ms: int) -> None:
    """Refuse empty, reversed or too long ranges."""
    if end_ms <= start_ms:
        raise DataError(f"end ({end_ms}) must be after start ({start_ms})")
    if end_ms - start_ms > MAX_RANGE_MS:
        raise DataError(f"range of {(end_ms - start_ms) / 86_400_000:.0f} days is over 400 days")


def scope_machines(plant: PlantConfig, scope: str | None) -> list[MachineConfig]:
    """Return the configured machines under a scope prefix (whole segments)."""
    prefix = (scope or "").strip().strip("/")
    if prefix in ("", "*"):
        found = list(plant.machines)
    else:
        found = [m for m in plant.machines if m.id == prefix or m.id.startswith(prefix + "/")]
    if not found:
        raise DataError(f"no configured machine under scope {scope!r}")
    return found


def _timelines(
    store: PlantStore,
    enterprise: str,
    scope: str,
    machines: list[MachineConfig],
    start_ms: int,
    end_ms: int,
    open_part: OpenPart,
) -> dict[str, StateTimeline]:
    prefix = "" if scope.strip("/") in ("", "*") else scope.strip("/")
    stored = store.timelines(enterprise, prefix, start_ms, end_ms)
    out = {}
    for m in machines:
        tl = stored.get(m.id, StateTimeline.empty())
        if open_part is not None:
            tail = open_part(m.id)
            if len(tail):
                tail = tail.clip(start_ms, end_ms)
                if len(tl) and len(tail):
                    tail = tail.clip(max(int(tl.end_ms[-1]), start_ms), end_ms)
                tl = StateTimeline.concat([tl, tail])
        out[m.id] = tl
    return out


class _Reads:
    """Counter, meter and power points of the machines of a report, read a group at a time.

    One historian query per group of machines instead of two or three per machine: on a site of
    hundreds of machines the round trips, not the points, were the cost. Only the current
    group's points are held.
    """

    GROUP = 50

    def __init__(
        self,
        historian: Historian,
        enterprise: str,
        machines: list[MachineConfig],
        start_ms: int,
        end_ms: int,
        *,
        energy: bool = True,
    ) -> None:
        self.historian = historian
        self.enterprise = enterprise
        self.lo = start_ms - max(COUNTER_LOOKBACK_MS, 60_000)
        self.hi = end_ms + 60_001
        self.groups: list[list[str]] = []
        self.group_of: dict[str, int] = {}
        for i in range(0, len(machines), self.GROUP):
            tags = [t for m in machines[i : i + self.GROUP] for t in _machine_tags(m, energy)]
            for tag in tags:
                self.group_of[tag] = len(self.groups)
            self.groups.append(tags)
        self.loaded = -1
        self.tables: dict[str, pa.Table] = {}

    def table(self, tag: str, start_ms: int, end_ms: int) -> pa.Table | None:
        """Return a tag's points in ``[start_ms, end_ms)``, or None when the tag does not exist."""
        group = self.group_of.get(tag)
        if group is None:
            raise ValueError(f"{tag} is not a tag of this report's machines")
        if group != self.loaded:
            self.tables = self.historian.series_many(
                self.enterprise, self.groups[group], self.lo, self.hi
            )
            self.loaded = group
        full = self.tables.get(tag)
        if full is None:
            return None
        ts = full.column("ts").to_numpy()
        a, b = np.searchsorted(ts, [max(start_ms, self.lo), min(end_ms, self.hi)])
        return full.slice(int(a), int(b - a))


def _machine_tags(m: MachineConfig, energy: bool = True) -> list[str]:
    tags = [f"{m.id}/{c.tag}" for c in (m.total_counter, m.scrap_counter) if c is not None]
    if not energy:  # OEE needs the counters (and the machine's reported state) only
        if m.state_tag is not None and m.state_reasons:
            tags.append(f"{m.id}/{m.state_tag}")
        return tags
    if m.meter_tag is not None:
        tags.append(f"{m.id}/{m.meter_tag}")
    elif m.power_tag is not None:
        tags.append(f"{m.id}/{m.power_tag}")
    return tags


def _counter(
    reads: _Reads,
    machine: MachineConfig,
    counter: CounterConfig | None,
    start_ms: int,
    end_ms: int,
    warnings: list[str],
) -> CounterDeltas | None:
    """Return a counter's deltas in ``[start_ms, end_ms]``, continuing the reading before it."""
    if counter is None:
        return None
    tag = f"{machine.id}/{counter.tag}"
    before = reads.table(tag, start_ms - COUNTER_LOOKBACK_MS, start_ms + 1)
    table = reads.table(tag, start_ms + 1, end_ms + 1)
    if before is None or table is None:
        return None  # the counter tag has no data yet
    prev = None
    if before.num_rows:  # the high-water mark of the hour before: a dip across start counts once
        bts, bv = usable_values(before)
        prev = counter_deltas(bts, bv, counter, machine=machine.id).last_value
    ts, v = usable_values(table)
    deltas = counter_deltas(ts, v, counter, machine=machine.id, previous=prev)
    warnings.extend(counter_warnings(deltas))
    return deltas


def counter_warnings(deltas: CounterDeltas, first: int = 3) -> list[str]:
    """Return a counter's warning sentences, the first few of each kind and a count of the rest."""
    out: list[str] = []
    for kind, group in itertools.groupby(
        sorted((a for a in deltas.anomalies if a.is_warning), key=lambda a: a.kind),
        key=lambda a: a.kind,
    ):
        items = list(group)
        out += [a.message for a in items[:first]]
        if len(items) > first:
            out.append(
                f"{items[0].message.split(' row ')[0]}: {len(items) - first} more {kind} rows"
            )
    return out


def _proposed(
    reads: _Reads, m: MachineConfig, tl: StateTimeline, start_ms: int, end_ms: int
) -> tuple[StateTimeline, StateTimeline | None]:
    """Return the timeline with the stop reasons the machine reported, and those segments."""
    if m.state_tag is None or not m.state_reasons:
        return tl, None
    t = reads.table(f"{m.id}/{m.state_tag}", start_ms - COUNTER_LOOKBACK_MS, end_ms)
    if t is None or not t.num_rows:
        return tl, None
    ts = t.column("ts").to_numpy().astype(np.int64)
    text = t.column("text").to_pylist()
    value = t.column("value").to_pylist()
    bad = t.column("quality").to_numpy(zero_copy_only=False) >= Quality.BAD
    reported = [
        None if b else (x if x is not None else v) for x, v, b in zip(text, value, bad, strict=True)
    ]
    # a machine may report its state only when it changes: a report holds until the next one
    return propose_reasons(tl, ts, reported, m.state_reasons, hold_ms=STATE_HOLD_MS)


def _busy_cache(plant: PlantConfig) -> Callable[[MachineConfig, int, int], np.ndarray]:
    cache: dict[tuple[str, str | None], np.ndarray] = {}

    def busy(m: MachineConfig, start_ms: int, end_ms: int) -> np.ndarray:
        cal = plant.site(m.site).calendar
        per_machine = any(d.machines for d in cal.planned_downtime)
        key = (m.site, m.id if per_machine else None)
        if key not in cache:
            cache[key] = planned_busy(cal, start_ms, end_ms, machine=m.id)
        return cache[key]

    return busy


def _windows(
    plant: PlantConfig, m: MachineConfig, start_ms: int, end_ms: int, by: str
) -> list[ShiftWindow]:
    cal = plant.site(m.site).calendar
    if by == "shift":
        return shift_windows(cal, start_ms, end_ms, machine=m.id)
    return day_windows(cal, start_ms, end_ms, machine=m.id)


def _elements_dict(e: OeeElements) -> dict[str, Any]:
    return e.as_dict()


def oee_report(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    scope: str,
    start_ms: int,
    end_ms: int,
    *,
    by: Literal["none", "shift", "day"] = "none",
    open_part: OpenPart = None,
) -> dict[str, Any]:
    """Return OEE elements and ratios per machine, per group (shift or day) and in total."""
    check_range(start_ms, end_ms)
    if by not in ("none", "shift", "day"):
        raise DataError(f"by must be none, shift or day, got {by!r}")
    machines = scope_machines(plant, scope)
    timelines = _timelines(store, enterprise, scope, machines, start_ms, end_ms, open_part)
    busy = _busy_cache(plant)
    reads = _Reads(historian, enterprise, machines, start_ms, end_ms, energy=False)
    per_machine: dict[str, OeeElements] = {}
    groups: dict[tuple[int, str], OeeElements] = {}
    group_span: dict[tuple[int, str], tuple[int, int]] = {}
    for m in machines:
        warnings: list[str] = []
        total = _counter(reads, m, m.total_counter, start_ms, end_ms, warnings)
        scrap = _counter(reads, m, m.scrap_counter, start_ms, end_ms, warnings)
        tl, proposed = _proposed(reads, m, timelines[m.id], start_ms, end_ms)
        kw = {
            "total": total,
            "scrap": scrap,
            "ideal_cycle_s": m.ideal_cycle(),
            "machine": m.id,
            "proposed": proposed,
        }
        e = machine_oee(tl, busy(m, start_ms, end_ms), (start_ms, end_ms), **kw)
        if warnings:
            e = OeeElements(**{**e.__dict__, "warnings": (*e.warnings, *warnings)})
        per_machine[m.id] = e
        if by != "none":
            for w in _windows(plant, m, start_ms, end_ms, by):
                g = machine_oee(tl, w.busy, (w.start_ms, w.end_ms), **kw)
                key = (w.start_ms, w.label)
                groups[key] = groups[key] + g if key in groups else g
                group_span[key] = (w.start_ms, w.end_ms)
    total_e = OeeElements.total(per_machine.values())
    behind = pending_changes(store, historian, enterprise, machines, start_ms, end_ms)
    if behind:
        total_e = OeeElements(
            **{
                **total_e.__dict__,
                "warnings": (
                    *total_e.warnings,
                    f"state timelines of {', '.join(behind[:5])}"
                    + (f" and {len(behind) - 5} more" if len(behind) > 5 else "")
                    + " are being brought up to date with data written just now; ask again in "
                    "a few seconds (or run `indunet plant repair`)",
                ),
            }
        )
    out: dict[str, Any] = {
        "scope": scope,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "by": by,
        "total": _elements_dict(total_e),
        "machines": {k: _elements_dict(v) for k, v in per_machine.items()},
        "lines": {k: _elements_dict(v) for k, v in rollup(per_machine, "line").items()},
        "sites": {k: _elements_dict(v) for k, v in rollup(per_machine, "site").items()},
        "groups": [
            {"label": key[1], "start_ms": span[0], "end_ms": span[1], **_elements_dict(groups[key])}
            for key, span in sorted(group_span.items())
        ],
    }
    return out


def running_loss_report(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    scope: str,
    start_ms: int,
    end_ms: int,
    *,
    slow_factor: float = 1.7,
    open_part: OpenPart = None,
) -> dict[str, Any]:
    """Return slow running and running without parts per machine (`losses.running_losses`).

    Running time inside planned busy time is judged against each machine's ideal cycle; a
    machine without an ideal cycle time or a part counter is left out (and named).
    """
    from indunet.plant.losses import RunningLosses, running_losses
    from indunet.plant.shifts import intersect

    check_range(start_ms, end_ms)
    machines = scope_machines(plant, scope)
    timelines = _timelines(store, enterprise, scope, machines, start_ms, end_ms, open_part)
    busy = _busy_cache(plant)
    reads = _Reads(historian, enterprise, machines, start_ms, end_ms, energy=False)
    out: dict[str, RunningLosses] = {}
    skipped: list[str] = []
    for m in machines:
        ideal = m.ideal_cycle()
        warnings: list[str] = []
        total = _counter(reads, m, m.total_counter, start_ms, end_ms, warnings)
        if ideal is None or total is None:
            skipped.append(m.id)
            continue
        tl = timelines[m.id]
        run = tl.state == 2
        iv = (
            np.stack([tl.start_ms[run], tl.end_ms[run]], axis=1)
            if run.any()
            else np.zeros((0, 2), np.int64)
        )
        pbt = intersect(busy(m, start_ms, end_ms), np.array([[start_ms, end_ms]], np.int64))
        running = intersect(iv, pbt) if len(iv) else iv
        out[m.id] = running_losses(
            running, total.ts_ms, total.delta, ideal, slow_factor=slow_factor
        )
    return {
        "scope": scope,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "slow_factor": slow_factor,
        "total": sum(out.values(), RunningLosses()).as_dict(),
        "machines": {k: v.as_dict() for k, v in out.items()},
        "skipped": skipped,
    }


def _pieces(reads: _Reads, m: MachineConfig, start_ms: int, end_ms: int) -> EnergyPieces:
    """Return a machine's energy pieces from its meter (preferred) or its power tag."""
    if m.meter_tag is not None:
        tag = f"{m.id}/{m.meter_tag}"
        t = reads.table(tag, start_ms - COUNTER_LOOKBACK_MS, end_ms + 1)
        if t is None:
            return energy_from_power(np.zeros(0, np.int64), np.zeros(0), max_gap_ms=1)
        ts, v = usable_values(t)
        ok = np.isfinite(v)
        return energy_from_meter(
            ts[ok], v[ok], rollover_kwh=m.meter_rollover_kwh, machine=m.id, field_name=tag
        )
    if m.power_tag is None:
        raise DataError(f"machine {m.id} has neither power_tag nor meter_tag; no energy")
    t = reads.table(f"{m.id}/{m.power_tag}", start_ms - 60_000, end_ms + 60_000)
    if t is None:
        ts, v = np.zeros(0, np.int64), np.zeros(0)
    else:
        ts, v = usable_values(t)
    if m.power_unit == "W":
        v = v / 1000.0
    elif m.power_unit == "A":
        if m.volts is None:
            raise DataError(f"machine {m.id}: power_unit is A but volts is not set")
        v = current_to_kw(v, m.volts, m.power_factor)
    return energy_from_power(ts, v, max_gap_ms=m.offline_after_ms, machine=m.id)


def _summary_dict(s: EnergySummary) -> dict[str, Any]:
    return {
        "kwh": s.kwh,
        "running_kwh": s.running_kwh,
        "idle_kwh": s.idle_kwh,
        "off_kwh": s.off_kwh,
        "non_productive_kwh": s.non_productive_kwh,
        "good_parts": s.good_parts,
        "kwh_per_good_part": s.kwh_per_good_part,
        "co2_kg": s.co2_kg,
    }


def energy_report(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    scope: str,
    start_ms: int,
    end_ms: int,
    *,
    bucket: Literal["hour", "day", "shift"] = "hour",
    open_part: OpenPart = None,
) -> dict[str, Any]:
    """Return kWh (with idle/off energy, kWh per good part and CO2) per bucket and machine."""
    check_range(start_ms, end_ms)
    if bucket not in ("hour", "day", "shift"):
        raise DataError(f"bucket must be hour, day or shift, got {bucket!r}")
    machines = scope_machines(plant, scope)
    timelines = _timelines(store, enterprise, scope, machines, start_ms, end_ms, open_part)
    per_machine: dict[str, EnergySummary] = {}
    buckets: dict[tuple[int, str], EnergySummary] = {}
    spans: dict[tuple[int, str], tuple[int, int]] = {}
    warnings: list[str] = []
    reads = _Reads(historian, enterprise, machines, start_ms, end_ms)
    for m in machines:
        site = plant.site(m.site)
        grid = site.grid_kg_co2_per_kwh
        pieces = _pieces(reads, m, start_ms, end_ms)
        warnings.extend(a.message for a in pieces.anomalies if a.is_warning)
        total = _counter(reads, m, m.total_counter, start_ms, end_ms, warnings)
        scrap = _counter(reads, m, m.scrap_counter, start_ms, end_ms, warnings)

        def good(lo: int, hi: int, total=total, scrap=scrap) -> float:
            iv = np.array([[lo, hi]], np.int64)
            made = total.total_in(iv) if total is not None else 0.0
            bad = scrap.total_in(iv) if scrap is not None else 0.0
            return max(made - bad, 0.0)

        tl = timelines[m.id]
        per_machine[m.id] = energy_summary(
            pieces,
            (start_ms, end_ms),
            timeline=tl,
            good_parts=good(start_ms, end_ms),
            grid_kg_co2_per_kwh=grid,
        )
        if bucket == "shift":
            wins = [
                (w.start_ms, w.end_ms, w.label)
                for w in _windows(plant, m, start_ms, end_ms, "shift")
            ]
        else:
            edges = bucket_edges(start_ms, end_ms, bucket, site.calendar.timezone)
            if len(edges) - 1 > MAX_BUCKETS:
                raise DataError(f"{len(edges) - 1} {bucket} buckets is over {MAX_BUCKETS}")
            wins = [(int(a), int(b), "") for a, b in itertools.pairwise(edges)]
        for lo, hi, label in wins:
            s = energy_summary(
                pieces, (lo, hi), timeline=tl, good_parts=good(lo, hi), grid_kg_co2_per_kwh=grid
            )
            key = (lo, label)
            buckets[key] = buckets[key] + s if key in buckets else s
            spans[key] = (lo, hi)
    by_line: dict[str, EnergySummary] = {}
    by_site: dict[str, EnergySummary] = {}
    for m in machines:
        s = per_machine[m.id]
        by_line[m.line] = by_line[m.line] + s if m.line in by_line else s
        by_site[m.site] = by_site[m.site] + s if m.site in by_site else s
    total_s = sum(per_machine.values(), EnergySummary())
    return {
        "scope": scope,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "bucket": bucket,
        "total": _summary_dict(total_s),
        "machines": {k: _summary_dict(v) for k, v in per_machine.items()},
        "lines": {k: _summary_dict(v) for k, v in by_line.items()},
        "sites": {k: _summary_dict(v) for k, v in by_site.items()},
        "buckets": [
            {"label": key[1], "start_ms": span[0], "end_ms": span[1], **_summary_dict(buckets[key])}
            for key, span in sorted(spans.items())
        ],
        "warnings": warnings,
    }


def stops_report(
    store: PlantStore,
    plant: PlantConfig,
    enterprise: str,
    scope: str,
    start_ms: int,
    end_ms: int,
    *,
    unassigned: bool = False,
    min_ms: int = 0,
) -> list[dict[str, Any]]:
    """Return the stored stop segments (not running) of the machines in scope."""
    check_range(start_ms, end_ms)
    machines = scope_machines(plant, scope)
    timelines = _timelines(store, enterprise, scope, machines, start_ms, end_ms, None)
    out = []
    for m in machines:
        tl = timelines[m.id]
        if unassigned:
            tl = unassigned_stops(tl, min_ms)
        else:
            keep = (tl.state != 2) & (tl.duration_ms >= min_ms)
            tl = StateTimeline(
                tl.start_ms[keep], tl.end_ms[keep], tl.state[keep], tl.reasons()[keep]
            )
        for s, e, st, r in zip(tl.start_ms, tl.end_ms, tl.state, tl.reasons(), strict=True):
            out.append(
                {
                    "machine": m.id,
                    "start_ms": int(s),
                    "end_ms": int(e),
                    "state": STATE_NAMES[st],
                    "reason": r,
                    "duration_ms": int(e - s),
                }
            )
    return out
