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
* speed loss = actual production time − ideal time (running slower than the ideal cycle).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from indunet.errors import DataError
from indunet.plant.config import StopReasonTree
from indunet.plant.oee import UNASSIGNED, OeeElements

__all__ = [
    "MICRO_STOP_S",
    "UNEXPLAINED",
    "downtime_pareto",
    "reason_label",
    "short_stops",
]

MICRO_STOP_S = 120.0
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
