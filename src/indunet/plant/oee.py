"""OEE per ISO 22400-2 from a state timeline, part counts and a shift calendar.

Time elements (ms) and counts are what is stored and summed; the ratios are derived:

* PBT, planned busy time: shifts minus breaks minus planned downtime.
* APT, actual production time: time ``running`` inside PBT.
* Stop time: the rest of PBT, by state (idle, off, offline) and by reason; time inside PBT
  without any timeline segment counts as offline. So ``APT + Σ stop = PBT`` exactly.
* Produced, good and scrap quantities counted inside PBT; parts counted outside it are kept as
  ``produced_unplanned``; running outside PBT as ``unplanned_running_ms``.
* Ideal time = Σ ideal cycle time × produced quantity.

Availability = APT / PBT, Performance = ideal time / APT, Quality = good / produced,
OEE = A × P × Q; TEEP = OEE × PBT / calendar time (the window's length per machine).
A ratio is None when its denominator is zero (or ideal cycle times are missing); OEE is 0
when availability is 0, else None when any factor is None. Summing elements over machines,
lines or shifts gives the aggregate; ratios are never averaged.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from indunet.errors import DataError
from indunet.plant.config import StopReasonTree
from indunet.plant.counters import CounterDeltas
from indunet.plant.shifts import ShiftWindow, intersect, union
from indunet.plant.states import MachineState, StateTimeline
from indunet.uns import MachinePath

__all__ = [
    "UNASSIGNED",
    "Implausible",
    "OeeElements",
    "ShiftOee",
    "StopAssignment",
    "apply_reasons",
    "machine_oee",
    "oee_by_shift",
    "overlap_ms",
    "plausibility",
    "propose_reasons",
    "rollup",
    "unassigned_stops",
]

UNASSIGNED = "unassigned"
_STOP_STATES = ("idle", "off", "offline")


def _add_maps(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


#: a ratio this far above 1 (or below 0) is implausible; below it is rounding
PLAUSIBLE_SLACK = 1e-6
_RATIOS = ("availability", "performance", "quality", "oee")


@dataclass(frozen=True, slots=True)
class Implausible:
    """A machine's OEE figure that cannot be true (outside [0, 1]), with its likely cause."""

    machine: str
    figure: str  # availability, performance, quality or oee
    value: float | None  # the machine's figure (None when it has no denominator)
    cause: str

    def as_dict(self) -> dict[str, object]:
        """Return the finding as plain values (for JSON)."""
        return {"machine": self.machine, "figure": self.figure, "value": self.value,
                "cause": self.cause}  # fmt: skip


@dataclass(frozen=True)
class OeeElements:
    """ISO 22400 time elements (ms) and quantities of one machine or a group, over a range."""

    pbt_ms: int = 0
    apt_ms: int = 0
    stop_ms: Mapping[str, int] = field(default_factory=dict)  # idle / off / offline
    reason_ms: Mapping[str, int] = field(default_factory=dict)  # reason code or "unassigned"
    #: the part of ``reason_ms`` whose reason the machine reported (its state tag), not an operator
    proposed_ms: Mapping[str, int] = field(default_factory=dict)
    calendar_ms: int = 0  # the window's length, summed over machines (TEEP's denominator)
    unplanned_running_ms: int = 0
    produced: float = 0.0
    good: float = 0.0
    scrap: float = 0.0
    produced_unplanned: float = 0.0
    ideal_ms: float = 0.0
    produced_without_ideal: float = 0.0
    machines: int = 1
    warnings: tuple[str, ...] = ()
    #: the implausible figures of the machines summed here (`plausibility`)
    implausible: tuple[Implausible, ...] = ()

    def __add__(self, other: OeeElements) -> OeeElements:
        if not isinstance(other, OeeElements):
            return NotImplemented
        return OeeElements(
            pbt_ms=self.pbt_ms + other.pbt_ms,
            apt_ms=self.apt_ms + other.apt_ms,
            stop_ms=_add_maps(self.stop_ms, other.stop_ms),  # type: ignore[arg-type]
            reason_ms=_add_maps(self.reason_ms, other.reason_ms),  # type: ignore[arg-type]
            proposed_ms=_add_maps(self.proposed_ms, other.proposed_ms),  # type: ignore[arg-type]
            calendar_ms=self.calendar_ms + other.calendar_ms,
            unplanned_running_ms=self.unplanned_running_ms + other.unplanned_running_ms,
            produced=self.produced + other.produced,
            good=self.good + other.good,
            scrap=self.scrap + other.scrap,
            produced_unplanned=self.produced_unplanned + other.produced_unplanned,
            ideal_ms=self.ideal_ms + other.ideal_ms,
            produced_without_ideal=self.produced_without_ideal + other.produced_without_ideal,
            machines=self.machines + other.machines,
            warnings=self.warnings + other.warnings,
            implausible=self.implausible + other.implausible,
        )

    @classmethod
    def total(cls, parts: Iterable[OeeElements]) -> OeeElements:
        """Sum elements (an empty sum has zero machines)."""
        out = cls(machines=0)
        for p in parts:
            out = out + p
        return out

    @property
    def stop_total_ms(self) -> int:
        """Return the stop time inside PBT (PBT − APT)."""
        return int(sum(self.stop_ms.values()))

    @property
    def availability(self) -> float | None:
        """Return APT / PBT, or None without planned time."""
        return self.apt_ms / self.pbt_ms if self.pbt_ms > 0 else None

    @property
    def performance(self) -> float | None:
        """Return ideal time / APT, or None without APT or with unknown ideal cycle times."""
        if self.apt_ms <= 0 or self.produced_without_ideal > 0:
            return None
        return self.ideal_ms / self.apt_ms

    @property
    def quality(self) -> float | None:
        """Return good / produced quantity, or None when nothing was produced."""
        return self.good / self.produced if self.produced > 0 else None

    @property
    def oee(self) -> float | None:
        """Return A × P × Q (0 when availability is 0)."""
        a, p, q = self.availability, self.performance, self.quality
        if a == 0:
            return 0.0
        if a is None or p is None or q is None:
            return None
        return a * p * q

    @property
    def teep(self) -> float | None:
        """Return OEE × PBT / calendar time (None without OEE or calendar time)."""
        o = self.oee
        if o is None or self.calendar_ms <= 0:
            return None
        return o * self.pbt_ms / self.calendar_ms

    @property
    def plausible(self) -> bool:
        """Tell whether every ratio lies in [0, 1] and no machine summed here is implausible."""
        if self.implausible:
            return False
        for name in _RATIOS:
            x = getattr(self, name)
            if x is not None and not -PLAUSIBLE_SLACK <= x <= 1 + PLAUSIBLE_SLACK:
                return False
        return True

    @property
    def implausible_text(self) -> str:
        """Return the causes of the implausible figures, one per line (for a tooltip)."""
        lines = [f"{f.machine}: {f.cause}" for f in self.implausible[:10]]
        if len(self.implausible) > 10:
            lines.append(f"and {len(self.implausible) - 10} more")
        if not lines and not self.plausible:
            lines.append("a figure lies outside [0, 1]")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, doc: Mapping[str, object]) -> OeeElements:
        """Return elements from their JSON form (`as_dict`; ratios are derived again)."""
        names = cls.__dataclass_fields__
        kw = {k: v for k, v in doc.items() if k in names and k not in ("warnings", "implausible")}
        found = tuple(Implausible(**f) for f in doc.get("implausible", ()))  # type: ignore[union-attr]
        warnings = tuple(doc.get("warnings", ()))  # type: ignore[arg-type]
        return cls(**kw, warnings=warnings, implausible=found)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """Return the elements and ratios as plain values (for JSON)."""
        return {
            "pbt_ms": self.pbt_ms,
            "apt_ms": self.apt_ms,
            "stop_ms": dict(self.stop_ms),
            "reason_ms": dict(self.reason_ms),
            "proposed_ms": dict(self.proposed_ms),
            "calendar_ms": self.calendar_ms,
            "unplanned_running_ms": self.unplanned_running_ms,
            "produced": self.produced,
            "good": self.good,
            "scrap": self.scrap,
            "produced_unplanned": self.produced_unplanned,
            "ideal_ms": self.ideal_ms,
            "produced_without_ideal": self.produced_without_ideal,
            "machines": self.machines,
            "availability": self.availability,
            "performance": self.performance,
            "quality": self.quality,
            "oee": self.oee,
            "teep": self.teep,
            "warnings": list(self.warnings),
            "plausible": self.plausible,
            "implausible": [f.as_dict() for f in self.implausible],
        }


def overlap_ms(start_ms: np.ndarray, end_ms: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Return, for each ``[start, end)``, how many ms of it lie inside the intervals."""
    iv = union(intervals)
    s = np.asarray(start_ms, dtype=np.int64)
    e = np.asarray(end_ms, dtype=np.int64)
    if not len(iv):
        return np.zeros(len(s), dtype=np.int64)
    lengths = iv[:, 1] - iv[:, 0]
    before = np.concatenate([[0], np.cumsum(lengths)])

    def covered(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(iv[:, 0], t, side="right") - 1
        kk = np.maximum(k, 0)
        part = np.clip(t - iv[kk, 0], 0, lengths[kk])
        return np.where(k >= 0, before[kk] + part, 0)

    return covered(e) - covered(s)


def _within_first_parts(
    machine: str,
    total: CounterDeltas,
    in_p: np.ndarray,
    ideal_cycle_s: float | np.ndarray,
    apt_ms: int,
    ideal_ms: float,
    warnings: list[str],
) -> float:
    """Return the ideal time for performance, capped at APT when the excess is one count's.

    Parts are counted when they are finished, so the first count inside planned time may hold
    parts begun before it (before the window, or before the machine was seen running): their
    whole ideal time lands in a window that holds only the end of their running time. An
    excess no larger than that first count's ideal time is this artefact, not a wrong ideal
    cycle time: performance is then 100 % (with a note). A larger excess stays implausible.
    """
    first = np.flatnonzero(in_p & (total.delta > 0))
    if not len(first):
        return ideal_ms
    i = int(first[0])
    if np.ndim(ideal_cycle_s) == 0:
        cycle = float(ideal_cycle_s)  # type: ignore[arg-type]
    else:
        cycle = float(np.asarray(ideal_cycle_s, dtype=np.float64)[i])
    first_ms = float(total.delta[i]) * cycle * 1000 if np.isfinite(cycle) else 0.0
    if ideal_ms - apt_ms > first_ms:
        return ideal_ms
    warnings.append(
        f"{machine}: performance {ideal_ms / apt_ms:.1%} is within the first count's parts of "
        "100 % (they were begun before the window or before the machine was seen running); "
        "shown as 100 %"
    )
    return float(apt_ms)


def machine_oee(
    timeline: StateTimeline,
    busy: np.ndarray,
    window: tuple[int, int],
    *,
    total: CounterDeltas | None = None,
    scrap: CounterDeltas | None = None,
    ideal_cycle_s: float | np.ndarray | None = None,
    machine: str = "machine",
    proposed: StateTimeline | None = None,
) -> OeeElements:
    """Compute one machine's OEE elements over ``window`` (UTC ms, ``[start, end)``).

    ``busy`` is the planned busy time (e.g. `planned_busy` or a `ShiftWindow.busy`);
    ``ideal_cycle_s`` is one value for the window or one per row of ``total`` (NaN = unknown);
    ``proposed`` holds the stop segments whose reason the machine reported (`propose_reasons`).
    Parts are counted at their counter timestamp, inside ``(start, end]`` intervals.
    """
    w0, w1 = window
    if w1 <= w0:
        raise DataError(f"{machine}: window end {w1} is not after its start {w0}")
    win = np.array([[w0, w1]], dtype=np.int64)
    pbt = intersect(busy, win)
    pbt_ms = int((pbt[:, 1] - pbt[:, 0]).sum())
    in_pbt = overlap_ms(timeline.start_ms, timeline.end_ms, pbt)
    in_win = overlap_ms(timeline.start_ms, timeline.end_ms, win)
    by_state = np.bincount(timeline.state, weights=in_pbt, minlength=4).astype(np.int64)
    covered = int(by_state.sum())
    stop_ms = {name: int(by_state[MachineState[name.upper()]]) for name in _STOP_STATES}
    stop_ms["offline"] += pbt_ms - covered  # planned time without data
    running = timeline.state == MachineState.RUNNING
    apt_ms = int(by_state[MachineState.RUNNING])
    unplanned_running = int(in_win[running].sum() - in_pbt[running].sum())

    reason_ms: dict[str, int] = {}
    stopped = (~running) & (in_pbt > 0)
    if stopped.any():
        codes = np.array(
            [UNASSIGNED if r is None else str(r) for r in timeline.reasons()[stopped]], dtype=object
        )
        names, inverse = np.unique(codes.astype(str), return_inverse=True)
        sums = np.bincount(inverse, weights=in_pbt[stopped])
        reason_ms = {str(n): int(x) for n, x in zip(names, sums, strict=True)}
    if pbt_ms - covered:
        reason_ms[UNASSIGNED] = reason_ms.get(UNASSIGNED, 0) + pbt_ms - covered
    proposed_ms: dict[str, int] = {}
    if proposed is not None and len(proposed):
        p_in = overlap_ms(proposed.start_ms, proposed.end_ms, pbt)
        for code, ms in zip(proposed.reasons(), p_in, strict=True):
            if ms > 0:
                proposed_ms[str(code)] = proposed_ms.get(str(code), 0) + int(ms)

    warnings: list[str] = []
    produced = scrap_q = unplanned = ideal_ms = without_ideal = 0.0
    if total is not None:
        win_iv = np.array([[w0, w1]], dtype=np.int64)
        in_p = total.mask_in(pbt)
        in_w = total.mask_in(win_iv)
        produced = float(total.delta[in_p].sum())
        unplanned = float(total.delta[in_w & ~in_p].sum())
        if ideal_cycle_s is None:
            without_ideal = produced
        elif np.ndim(ideal_cycle_s) == 0:
            ideal_ms = produced * float(ideal_cycle_s) * 1000  # type: ignore[arg-type]
        else:
            cycles = np.asarray(ideal_cycle_s, dtype=np.float64)
            if cycles.shape != total.delta.shape:
                raise DataError(
                    f"{machine}: ideal_cycle_s has {len(cycles)} rows, "
                    f"the counter has {len(total.delta)}"
                )
            known = np.isfinite(cycles) & in_p
            ideal_ms = float((total.delta[known] * cycles[known]).sum() * 1000)
            without_ideal = float(total.delta[in_p & ~np.isfinite(cycles)].sum())
        if ideal_ms > apt_ms > 0:
            ideal_ms = _within_first_parts(machine, total, in_p, ideal_cycle_s, apt_ms, ideal_ms,
                                           warnings)  # fmt: skip
        if without_ideal > 0:
            warnings.append(
                f"{machine}: {without_ideal:g} parts have no ideal cycle time "
                "(set ideal_cycle_s for the product); performance is unknown"
            )
    if scrap is not None:
        scrap_q = scrap.total_in(pbt)
    good = produced - scrap_q
    if good < 0:
        warnings.append(
            f"{machine}: scrap {scrap_q:g} exceeds produced {produced:g}; check scrap_counter"
        )
        good = 0.0
    found = plausibility(
        machine, apt_ms=apt_ms, produced=produced, scrap=scrap_q, ideal_ms=ideal_ms
    )
    warnings.extend(f"{machine}: {f.cause}" for f in found if f.figure != "quality")
    return OeeElements(
        pbt_ms=pbt_ms,
        apt_ms=apt_ms,
        calendar_ms=w1 - w0,
        stop_ms=stop_ms,
        reason_ms=reason_ms,
        proposed_ms=proposed_ms,
        unplanned_running_ms=unplanned_running,
        produced=produced,
        good=good,
        scrap=scrap_q,
        produced_unplanned=unplanned,
        ideal_ms=ideal_ms,
        produced_without_ideal=without_ideal,
        warnings=tuple(warnings),
        implausible=found,
    )


def plausibility(
    machine: str, *, apt_ms: int, produced: float, scrap: float, ideal_ms: float
) -> tuple[Implausible, ...]:
    """Return a machine's figures that cannot be true, each with its likely cause.

    * performance above 100 %: the parts need less running time than the ideal cycle time
      allows — the ideal cycle time is set too slow, or parts are counted twice;
    * parts counted in planned time without any running time (performance has no denominator,
      but the parts would lift its line's and site's performance): the state timeline is
      missing or its thresholds are wrong;
    * scrap above produced (quality below 0 before clipping): the scrap counter counts
      something else.
    """
    out: list[Implausible] = []
    if apt_ms > 0 and ideal_ms > apt_ms * (1 + PLAUSIBLE_SLACK):
        p = ideal_ms / apt_ms
        ideal_s = ideal_ms / produced / 1000 if produced else float("nan")
        actual_s = apt_ms / produced / 1000 if produced else float("nan")
        out.append(
            Implausible(
                machine,
                "performance",
                p,
                f"performance {p:.0%} is above 100 %: {produced:g} parts in "
                f"{apt_ms / 3_600_000:.2f} h of running time is one part every {actual_s:.3g} s, "
                f"faster than the ideal cycle time of {ideal_s:.3g} s; the ideal cycle time is "
                f"set too slow (propose one: indunet plant learn-cycle {machine}) or parts are "
                "counted twice",
            )
        )
    elif apt_ms <= 0 and ideal_ms > 0:
        out.append(
            Implausible(
                machine,
                "performance",
                None,
                f"{produced:g} parts counted in planned time without any running time: the "
                "state timeline is missing or wrong (thresholds; rebuild it with "
                f"indunet plant states {machine} --recompute)",
            )
        )
    if scrap > produced * (1 + PLAUSIBLE_SLACK) and scrap > 0:
        q = (produced - scrap) / produced if produced else None
        out.append(
            Implausible(
                machine,
                "quality",
                q,
                f"scrap {scrap:g} exceeds produced {produced:g}: the scrap counter counts "
                "other parts or units (check scrap_counter)",
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class ShiftOee:
    """A shift occurrence and the machine's OEE elements in it."""

    window: ShiftWindow
    elements: OeeElements


def oee_by_shift(
    timeline: StateTimeline,
    windows: Sequence[ShiftWindow],
    *,
    total: CounterDeltas | None = None,
    scrap: CounterDeltas | None = None,
    ideal_cycle_s: float | np.ndarray | None = None,
    machine: str = "machine",
) -> list[ShiftOee]:
    """Compute one machine's OEE elements for each shift window."""
    return [
        ShiftOee(
            w,
            machine_oee(
                timeline,
                w.busy,
                (w.start_ms, w.end_ms),
                total=total,
                scrap=scrap,
                ideal_cycle_s=ideal_cycle_s,
                machine=machine,
            ),
        )
        for w in windows
    ]


def rollup(
    by_machine: Mapping[str, OeeElements],
    level: Literal["line", "area", "site", "enterprise"],
) -> dict[str, OeeElements]:
    """Sum machines' elements per line (site/area/line), area, site or the whole enterprise."""
    depth = {"site": 1, "area": 2, "line": 3, "enterprise": 0}[level]
    out: dict[str, OeeElements] = {}
    for machine_id, elements in by_machine.items():
        p = MachinePath.parse(machine_id)
        key = "/".join((p.site, p.area, p.line)[:depth]) if depth else "*"
        out[key] = out[key] + elements if key in out else elements
    return out


@dataclass(frozen=True, slots=True)
class StopAssignment:
    """An operator's reason for the stops inside ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    reason: str


def apply_reasons(
    timeline: StateTimeline, assignments: Sequence[StopAssignment], tree: StopReasonTree
) -> StateTimeline:
    """Return the timeline with reasons on the non-running segments the assignments cover.

    Segments are split at assignment edges; running time never gets a reason. Unknown codes
    and overlapping assignments are refused, naming the assignment.
    """
    if not assignments:
        return timeline
    rows = sorted(enumerate(assignments), key=lambda r: r[1].start_ms)
    for i, a in rows:
        if a.end_ms <= a.start_ms:
            raise DataError(f"stop assignment {i}: end_ms is not after start_ms")
        if a.reason not in tree:
            raise DataError(f"stop assignment {i}: reason {a.reason!r} is not in the reason tree")
    for (i, a), (j, b) in itertools.pairwise(rows):
        if b.start_ms < a.end_ms:
            raise DataError(f"stop assignments {i} and {j} overlap; split or merge them")
    a_s = np.array([a.start_ms for _, a in rows], dtype=np.int64)
    a_e = np.array([a.end_ms for _, a in rows], dtype=np.int64)
    a_r = np.array([a.reason for _, a in rows], dtype=object)
    cuts = np.concatenate([timeline.start_ms, timeline.end_ms, a_s, a_e])
    lo = timeline.start_ms.min() if len(timeline) else 0
    hi = timeline.end_ms.max() if len(timeline) else 0
    edges = np.unique(cuts[(cuts >= lo) & (cuts <= hi)])
    if len(edges) < 2:
        return timeline
    s, e = edges[:-1], edges[1:]
    seg = np.searchsorted(timeline.start_ms, s, side="right") - 1
    inside = (seg >= 0) & (s < timeline.end_ms[np.maximum(seg, 0)])
    s, e, seg = s[inside], e[inside], seg[inside]
    state = timeline.state[seg]
    reason = timeline.reasons()[seg].copy()
    k = np.searchsorted(a_s, s, side="right") - 1
    hit = (k >= 0) & (s < a_e[np.maximum(k, 0)]) & (state != MachineState.RUNNING)
    reason[hit] = a_r[k[hit]]
    return StateTimeline(s, e, state, reason).merged()


def unassigned_stops(timeline: StateTimeline, min_ms: int = 0) -> StateTimeline:
    """Return the stop segments (not running) that still have no reason."""
    r = timeline.reasons()
    keep = (
        (timeline.state != MachineState.RUNNING)
        & np.array([x is None for x in r], dtype=bool)
        & (timeline.duration_ms >= min_ms)
    )
    return StateTimeline(
        timeline.start_ms[keep], timeline.end_ms[keep], timeline.state[keep], r[keep]
    )


def _state_key(value: object) -> str | None:
    """Return a reported state as a mapping key: text trimmed, whole numbers as digits."""
    if value is None:
        return None
    if isinstance(value, float):
        if not np.isfinite(value) or value != int(value):
            return None
        return str(int(value))
    return str(value).strip()


def propose_reasons(
    timeline: StateTimeline,
    ts_ms: np.ndarray,
    reported: Sequence[object],
    mapping: Mapping[str, str],
    *,
    hold_ms: int,
) -> tuple[StateTimeline, StateTimeline]:
    """Put the reasons a machine reports (its state tag) on the stops no operator explained.

    ``reported`` holds the state tag's values at ``ts_ms`` (text such as ``setup`` or a PLC's
    fault code); each value holds until the next one, at most ``hold_ms``. A value found in
    ``mapping`` proposes that reason code for the unexplained stop time it covers; operator
    reasons are never replaced, running time never gets a reason, and neither does offline time
    (a machine without data reports nothing). Returns the timeline with
    the proposals and the proposed segments alone (so they can be told apart from operators').
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    if not mapping or not len(ts) or not len(timeline):
        return timeline, StateTimeline.empty()
    codes = [mapping.get(k) if (k := _state_key(v)) is not None else None for v in reported]
    ends = np.minimum(np.append(ts[1:], ts[-1] + hold_ms), ts + hold_ms)
    spans: list[StopAssignment] = []
    for s, e, code in zip(ts.tolist(), ends.tolist(), codes, strict=True):
        if code is None or e <= s:
            continue
        if spans and spans[-1].reason == code and spans[-1].end_ms == s:
            spans[-1] = StopAssignment(spans[-1].start_ms, e, code)
        else:
            spans.append(StopAssignment(s, e, code))
    r = timeline.reasons()
    open_stop = (
        (timeline.state != MachineState.RUNNING)
        & (timeline.state != MachineState.OFFLINE)
        & np.array([x is None for x in r], dtype=bool)
    )
    if not spans or not open_stop.any():
        return timeline, StateTimeline.empty()
    stops = StateTimeline(
        timeline.start_ms[open_stop],
        timeline.end_ms[open_stop],
        timeline.state[open_stop],
        r[open_stop],
    )
    tree = StopReasonTree(reasons=[{"code": c} for c in sorted({a.reason for a in spans})])
    applied = apply_reasons(stops, spans, tree)
    keep = ~open_stop
    start = np.concatenate([timeline.start_ms[keep], applied.start_ms])
    end = np.concatenate([timeline.end_ms[keep], applied.end_ms])
    state = np.concatenate([timeline.state[keep], applied.state])
    reason = np.concatenate([r[keep], applied.reasons()])
    order = np.argsort(start, kind="stable")
    out = StateTimeline(start[order], end[order], state[order], reason[order]).merged()
    got = np.array([x is not None for x in applied.reasons()], dtype=bool)
    proposed = StateTimeline(
        applied.start_ms[got], applied.end_ms[got], applied.state[got], applied.reasons()[got]
    )
    return out, proposed
