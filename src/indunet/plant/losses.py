"""Loss analysis from an OEE report: downtime Pareto, availability loss by reason, TEEP.

Pure functions over the answer of `indunet.plant.report.oee_report` (the one OEE code path), so
the Pareto's rows add up to the report's stop time exactly: by reason they are the report's
``reason_ms`` (operator reasons, reasons the machine reported through its state tag, and
``unassigned``), by machine or line its per-machine or per-line stop time. Nothing here
computes OEE again.

* availability loss of a reason = its stop time / planned busy time (so the losses and the
  availability add up to 1);
* TEEP = OEE × PBT / calendar time (`OeeElements.teep`);
* short stops (``micro_stop_s``, default 2 min) are counted apart from `stops_report` rows: the
  six big losses count them as performance (minor stops), even though a state timeline counts
  their time as stop time;
* speed loss = actual production time − ideal time (running slower than the ideal cycle);
* `running_losses` splits running time into windows of ``window_cycles`` ideal cycles (at
  least a minute) and calls a window *slow running* when its parts took longer than
  ``slow_factor`` × the ideal cycle each (default 1.7, i.e. slower than 170 %) and *running
  without parts* when it counted none (minor stops the power signal does not show).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from indunet.errors import DataError
from indunet.plant.config import StopReasonTree
from indunet.plant.oee import UNASSIGNED, OeeElements

__all__ = [
    "MICRO_STOP_S",
    "SLOW_FACTOR",
    "UNEXPLAINED",
    "RunningLosses",
    "downtime_pareto",
    "reason_label",
    "running_losses",
    "short_stops",
]

MICRO_STOP_S = 120.0
SLOW_FACTOR = 1.7
WINDOW_CYCLES = 10
MIN_WINDOW_MS = 60_000
UNEXPLAINED = "Unexplained"
By = Literal["reason", "machine", "line"]


def reason_label(code: str | None, tree: StopReasonTree | None) -> str:
    """Return a reason's label from the tree ("Unexplained" for none, the code if unlabelled)."""
    if code is None or code == UNASSIGNED:
        return UNEXPLAINED
    if tree is not None:
        for r in tree.reasons:
            if r.code == code:
                return r.label or r.code
    return code


def _planned(code: str, tree: StopReasonTree | None) -> bool:
    if tree is None or code == UNASSIGNED or code not in tree:
        return False
    return any(r.code in tree.path(code) and r.planned for r in tree.reasons)


def downtime_pareto(
    report: Mapping[str, Any], *, by: By = "reason", tree: StopReasonTree | None = None
) -> dict[str, Any]:
    """Return the stop time of a report as Pareto rows (largest first) with shares and TEEP.

    Each row: ``key`` (reason code, machine id or line), ``label``, ``stop_ms``,
    ``proposed_ms`` (reported by the machine, not an operator), ``share`` of all stop time,
    ``cumulative`` share, ``availability_loss`` (stop time / PBT) and, by reason, whether the
    reason is ``planned`` (e.g. changeover) and, by machine or line, its ``top_reason``.
    """
    if by not in ("reason", "machine", "line"):
        raise DataError(f"by must be reason, machine or line, got {by!r}")
    total = OeeElements.from_dict(report["total"])
    rows: list[dict[str, Any]] = []
    if by == "reason":
        for code, ms in total.reason_ms.items():
            rows.append(
                {
                    "key": code,
                    "label": reason_label(code, tree),
                    "stop_ms": int(ms),
                    "proposed_ms": int(total.proposed_ms.get(code, 0)),
                    "planned": _planned(code, tree),
                }
            )
    else:
        groups = report["machines"] if by == "machine" else report["lines"]
        for key, doc in groups.items():
            e = OeeElements.from_dict(doc)
            top = max(e.reason_ms.items(), key=lambda kv: (kv[1], kv[0]), default=None)
            rows.append(
                {
                    "key": key,
                    "label": key,
                    "stop_ms": e.stop_total_ms,
                    "proposed_ms": int(sum(e.proposed_ms.values())),
                    "top_reason": None if top is None or top[1] <= 0 else top[0],
                    "top_reason_label": None if top is None else reason_label(top[0], tree),
                    "oee": e.oee,
                    "availability": e.availability,
                }
            )
    rows = [r for r in rows if r["stop_ms"] > 0]
    rows.sort(key=lambda r: (-r["stop_ms"], r["key"]))
    stop = sum(r["stop_ms"] for r in rows)
    running = 0
    for r in rows:
        running += r["stop_ms"]
        r["share"] = r["stop_ms"] / stop if stop else None
        r["cumulative"] = running / stop if stop else None
        r["availability_loss"] = r["stop_ms"] / total.pbt_ms if total.pbt_ms else None
    return {
        "scope": report.get("scope", ""),
        "start_ms": report.get("start_ms"),
        "end_ms": report.get("end_ms"),
        "by": by,
        "pbt_ms": total.pbt_ms,
        "apt_ms": total.apt_ms,
        "stop_ms": total.stop_total_ms,
        "calendar_ms": total.calendar_ms,
        "availability": total.availability,
        "performance": total.performance,
        "quality": total.quality,
        "oee": total.oee,
        "teep": total.teep,
        "speed_loss_ms": max(total.apt_ms - total.ideal_ms, 0.0)
        if total.produced_without_ideal == 0
        else None,
        "rows": rows,
    }


def short_stops(
    stops: Iterable[Mapping[str, Any]], micro_stop_s: float = MICRO_STOP_S
) -> dict[str, Any]:
    """Count the stops (`stops_report` rows) up to ``micro_stop_s`` long, in all and by machine."""
    if not micro_stop_s >= 0:
        raise DataError(f"micro_stop_s must be >= 0, got {micro_stop_s!r}")
    limit = round(micro_stop_s * 1000)
    count = 0
    ms = 0
    by_machine: dict[str, dict[str, int]] = {}
    for row in stops:
        if row["duration_ms"] > limit:
            continue
        count += 1
        ms += int(row["duration_ms"])
        m = by_machine.setdefault(row["machine"], {"count": 0, "stop_ms": 0})
        m["count"] += 1
        m["stop_ms"] += int(row["duration_ms"])
    return {"micro_stop_s": micro_stop_s, "count": count, "stop_ms": ms, "machines": by_machine}


@dataclass(frozen=True, slots=True)
class RunningLosses:
    """Performance losses found in a machine's running time (ms), and the time looked at."""

    running_ms: int = 0  # running time in whole windows (the part of APT judged)
    slow_ms: int = 0  # windows slower than slow_factor × the ideal cycle
    no_parts_ms: int = 0  # windows without a counted part
    windows: int = 0

    def __add__(self, other: RunningLosses) -> RunningLosses:
        return RunningLosses(
            self.running_ms + other.running_ms,
            self.slow_ms + other.slow_ms,
            self.no_parts_ms + other.no_parts_ms,
            self.windows + other.windows,
        )

    def as_dict(self) -> dict[str, int]:
        """Return plain values (for JSON)."""
        return {"running_ms": self.running_ms, "slow_ms": self.slow_ms,
                "no_parts_ms": self.no_parts_ms, "windows": self.windows}  # fmt: skip


def running_losses(
    running: np.ndarray,
    part_ts: np.ndarray,
    part_delta: np.ndarray,
    ideal_cycle_s: float,
    *,
    slow_factor: float = SLOW_FACTOR,
    window_cycles: int = WINDOW_CYCLES,
) -> RunningLosses:
    """Judge running time window by window against the ideal cycle (see the module docstring).

    ``running`` holds ``[start, end)`` intervals (ms) of running time inside planned time;
    parts count at their counter timestamp, inside ``(start, end]`` of a window. Only whole
    windows are judged (the rest of each interval is left out of ``running_ms``).
    """
    if not ideal_cycle_s > 0 or not np.isfinite(ideal_cycle_s):
        raise DataError(f"ideal cycle time must be > 0 s, got {ideal_cycle_s!r}")
    if not slow_factor >= 1 or not np.isfinite(slow_factor):
        raise DataError(f"slow_factor must be >= 1, got {slow_factor!r}")
    if window_cycles < 1:
        raise DataError(f"window_cycles must be >= 1, got {window_cycles!r}")
    window = max(MIN_WINDOW_MS, round(window_cycles * ideal_cycle_s * 1000))
    iv = np.asarray(running, dtype=np.int64).reshape(-1, 2)
    starts = [
        np.arange(a, b - window + 1, window, dtype=np.int64) for a, b in iv if b - a >= window
    ]
    if not starts:
        return RunningLosses()
    lo = np.concatenate(starts)
    ts = np.asarray(part_ts, dtype=np.int64)
    delta = np.asarray(part_delta, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(delta)])
    # parts in (lo, lo + window]
    a = np.searchsorted(ts, lo, side="right")
    b = np.searchsorted(ts, lo + window, side="right")
    parts = cum[b] - cum[a]
    none = parts <= 0
    slow = ~none & (window / np.maximum(parts, 1e-9) > slow_factor * ideal_cycle_s * 1000)
    return RunningLosses(
        running_ms=int(len(lo) * window),
        slow_ms=int(slow.sum() * window),
        no_parts_ms=int(none.sum() * window),
        windows=len(lo),
    )
