"""What needs attention now: machines stopped or offline (since when, why) and rankings.

* `machines_now`: every configured machine's state now — the same way the overview counts them
  (a running watcher's state, else `state_now` from the newest power reading) — with since when
  (the stored timeline's newest segment in that state, or the last reading of an offline
  machine) and the reason of the current stop: an operator's, else the one the machine reports
  through its state tag (`MachineConfig.state_reasons`), else unexplained.
* `ranking`: machines or lines of an `oee_report` (the one OEE code path) with downtime, the
  largest stop reason and, from an `energy_report`, kWh per good part; worst OEE first.
* `period_span`: today (since local midnight), this shift, yesterday, in a site's calendar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from indunet.plant.config import PlantConfig, ShiftCalendar
from indunet.plant.losses import reason_label
from indunet.plant.oee import OeeElements
from indunet.plant.shifts import shift_windows
from indunet.plant.states import STATE_NAMES, StateTimeline
from indunet.plant.today import day_start_ms, state_now

__all__ = [
    "PERIODS",
    "STOPPED",
    "MachineNow",
    "RankRow",
    "machines_now",
    "period_span",
    "ranking",
]

#: the states that need attention (a machine not producing)
STOPPED = ("idle", "off", "offline", "unknown")
PERIODS = ("today", "shift", "yesterday")
Period = Literal["today", "shift", "yesterday"]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class MachineNow:
    """A machine's state now, since when, and why it stands (None while running)."""

    machine: str
    state: str
    since_ms: int | None
    reason: str | None  # reason code; None: unexplained (or running)
    reason_label: str
    proposed: bool  # the reason came from the machine's own state tag, not an operator

    def lost_ms(self, now_ms: int) -> int:
        """Return how long the machine has been in this state (0 when unknown)."""
        return 0 if self.since_ms is None else max(now_ms - self.since_ms, 0)


def machines_now(
    plant: PlantConfig,
    prefix: str,
    now_ms: int,
    *,
    latest: Mapping[str, Mapping[str, Any]],
    recent: Mapping[str, StateTimeline],
    current: Callable[[str], tuple[str, int] | None] | None = None,
) -> list[MachineNow]:
    """Return the machines under ``prefix`` with their state now, longest stopped first.

    ``latest`` maps tag paths to their newest row (`Historian.latest`), ``recent`` machine ids
    to their stored timeline of the last day, ``current`` is a running watcher's `current`.
    """
    out = []
    for m in plant.machines:
        if prefix and not (m.id == prefix or m.id.startswith(prefix + "/")):
            continue
        live = current(m.id) if current is not None else None
        power = latest.get(f"{m.id}/{m.power_tag}") if m.power_tag else None
        tl = recent.get(m.id, StateTimeline.empty())
        last = len(tl) - 1
        since: int | None
        if live is not None:
            state, since = live
        else:
            state = state_now(m, power, now_ms)
            since = None
            if state == "offline" and power is not None and power.get("ts") is not None:
                since = int(power["ts"])
            elif last >= 0 and STATE_NAMES[tl.state[last]] == state:
                since = int(tl.start_ms[last])
        reason, proposed = None, False
        if state != "running":
            if last >= 0 and STATE_NAMES[tl.state[last]] != "running":
                reason = tl.reasons()[last]
            if reason is None and m.state_tag is not None and state != "offline":
                row = latest.get(f"{m.id}/{m.state_tag}")
                said = None if row is None else (row.get("text") or row.get("value"))
                if isinstance(said, float) and math.isfinite(said) and said == int(said):
                    said = str(int(said))
                reason = m.state_reasons.get(str(said).strip()) if said is not None else None
                proposed = reason is not None
        label = "" if state == "running" else reason_label(reason, plant.reasons)
        out.append(MachineNow(m.id, state, since, reason, label, proposed))
    out.sort(key=lambda x: (x.state == "running", -x.lost_ms(now_ms), x.machine))
    return out


@dataclass(frozen=True, slots=True)
class RankRow:
    """A machine or line in a period: OEE, downtime, largest stop reason, kWh per good part."""

    key: str
    elements: OeeElements
    top_reason: str | None
    top_reason_label: str
    kwh: float | None = None
    kwh_per_good_part: float | None = None

    @property
    def oee(self) -> float | None:
        """Return the OEE (from the summed elements)."""
        return self.elements.oee

    @property
    def stop_ms(self) -> int:
        """Return the stop time in planned busy time."""
        return self.elements.stop_total_ms


def ranking(
    oee_doc: Mapping[str, Any],
    energy_doc: Mapping[str, Any] | None,
    plant: PlantConfig,
    *,
    level: Literal["machine", "line"] = "machine",
    sort: Literal["oee", "downtime", "kwh"] = "oee",
) -> list[RankRow]:
    """Return the machines (or lines) of a report, worst first by OEE, downtime or kWh/part.

    Rows without the figure sorted by come last; ties go to the larger downtime.
    """
    groups = oee_doc["machines"] if level == "machine" else oee_doc["lines"]
    energy = (energy_doc or {}).get("machines" if level == "machine" else "lines", {})
    rows = []
    for key, doc in groups.items():
        e = OeeElements.from_dict(doc)
        reasons = [(ms, code) for code, ms in e.reason_ms.items() if ms > 0]
        top = max(reasons)[1] if reasons else None
        en = energy.get(key) or {}
        rows.append(
            RankRow(
                key,
                e,
                top,
                reason_label(top, plant.reasons) if top is not None else "",
                en.get("kwh"),
                en.get("kwh_per_good_part"),
            )
        )

    def order(r: RankRow) -> tuple:
        if sort == "downtime":
            return (-r.stop_ms, r.key)
        if sort == "kwh":
            k = r.kwh_per_good_part
            return (k is None, -(k or 0.0), -r.stop_ms, r.key)
        return (r.oee is None, r.oee or 0.0, -r.stop_ms, r.key)

    rows.sort(key=order)
    return rows


def _shift_now(cal: ShiftCalendar, now_ms: int) -> tuple[int, int, str] | None:
    for w in shift_windows(cal, now_ms - DAY_MS, now_ms + 1):
        if w.start_ms <= now_ms < w.end_ms:
            return w.start_ms, now_ms, w.label
    return None


def period_span(cal: ShiftCalendar, period: Period, now_ms: int) -> tuple[int, int, str]:
    """Return ``(start_ms, end_ms, label)`` of today so far, this shift so far, or yesterday.

    Without a shift running now, "this shift" is today so far.
    """
    midnight = day_start_ms(cal.timezone, now_ms)
    if period == "yesterday":
        before = day_start_ms(cal.timezone, midnight - 1)
        return before, midnight, "yesterday"
    if period == "shift":
        found = _shift_now(cal, now_ms)
        if found is not None:
            start, end, label = found
            return start, max(end, start + 1), f"shift {label}"
    return midnight, max(now_ms, midnight + 1), "today"
