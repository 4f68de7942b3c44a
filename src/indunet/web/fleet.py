"""The Fleet page: assets ranked by remaining useful life (RUL) and by anomaly score.

RUL comes from the stored estimates (`indunet.condition.rul_service.RulStore`, the table behind
``GET /api/v1/condition/rul``) of the request's enterprise. The anomaly column is each
machine's current score from the alarm service's anomaly monitors (the highest derived
``derived/anomaly/…`` value of its tags at the last round; "—" for a machine no monitor watches).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.condition import rul_store
from indunet.uns import MachinePath
from indunet.web.plant_tree import machine_url

__all__ = ["FleetRow", "fleet_rows", "router"]

router = APIRouter(include_in_schema=False, tags=["web"])

#: what the page says for each status without an estimate
STATUS_TEXT = {
    "insufficient_history": "too little history",
    "no_model": "no model",
    "bad_data": "bad data",
}


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One asset as the fleet page lists it."""

    machine: str
    url: str
    asset_class: str | None
    status: str  # ok, insufficient_history, no_model, bad_data, or none (no RUL configured)
    rul: float | None
    low: float | None
    high: float | None
    cap: int | None
    horizon: float | None
    message: str | None
    anomaly: float | None

    @property
    def alarm(self) -> bool:
        """Whether the RUL is below the class's alarm horizon."""
        return self.rul is not None and self.horizon is not None and self.rul < self.horizon

    @property
    def rul_text(self) -> str:
        """The RUL as shown: cycles, "≥ cap" at the cap, or why there is none."""
        if self.rul is None:
            return STATUS_TEXT.get(self.status, "—")
        if self.cap is not None and self.rul >= self.cap:
            return f"≥ {self.cap:g}"
        return f"{self.rul:.0f}"

    @property
    def band_text(self) -> str:
        """The band as shown: low – high cycles, or "—"."""
        if self.low is None or self.high is None:
            return "—"
        return f"{self.low:.0f} – {self.high:.0f}"

    @property
    def anomaly_text(self) -> str:
        """The anomaly score as shown, "—" when there is none."""
        return "—" if self.anomaly is None else f"{self.anomaly:.2f}"


def fleet_rows(
    estimates: Sequence[Mapping[str, Any]],
    anomaly_scores: Mapping[str, float] | None = None,
    *,
    by: str = "rul",
) -> list[FleetRow]:
    """Rank assets: by RUL (lowest first, then those without an estimate) or by anomaly score
    (highest first). Machines that have only an anomaly score are listed too."""
    scores = {
        m: float(s) for m, s in (anomaly_scores or {}).items() if s is not None and math.isfinite(s)
    }
    rows = [
        FleetRow(
            machine=e["machine"],
            url=_url(e["machine"]),
            asset_class=e.get("asset_class"),
            status=e.get("status") or "none",
            rul=e.get("rul"),
            low=e.get("low"),
            high=e.get("high"),
            cap=e.get("cap"),
            horizon=e.get("horizon"),
            message=e.get("message"),
            anomaly=scores.get(e["machine"]),
        )
        for e in estimates
    ]
    listed = {r.machine for r in rows}
    for machine in sorted(set(scores) - listed):
        rows.append(
            FleetRow(
                machine,
                _url(machine),
                None,
                "none",
                None,
                None,
                None,
                None,
                None,
                None,
                scores[machine],
            )
        )
    if by == "anomaly":
        return sorted(rows, key=lambda r: (r.anomaly is None, -(r.anomaly or 0.0), r.machine))
    return sorted(rows, key=lambda r: (r.rul is None, r.rul or 0.0, r.machine))


def _url(machine: str) -> str:
    return machine_url(MachinePath.parse(machine))


def anomaly_scores(request: Request) -> dict[str, float] | None:
    """The current anomaly score per machine: ``app.state.anomaly_scores`` (a callable returning
    machine → score; `start_alarm_service` sets it to the alarm service's monitors), else the
    running alarm service's monitors (``app.state.alarms``); None when neither is there."""
    source = getattr(request.app.state, "anomaly_scores", None)
    if not callable(source):
        service = getattr(request.app.state, "alarms", None)
        source = getattr(service, "anomaly_scores", None)
    return source() if callable(source) else None


@router.get("/fleet", response_class=HTMLResponse)
def fleet_page(
    request: Request, historian: HistorianDep, settings: SettingsDep, by: str = "rul"
) -> HTMLResponse:
    """Show every asset with its RUL, band and anomaly score, the most urgent first."""
    order = "anomaly" if by == "anomaly" else "rul"
    estimates = rul_store(request, historian).estimates(settings.enterprise)
    rows = fleet_rows(estimates, anomaly_scores(request), by=order)
    context = {
        "rows": rows,
        "by": order,
        "enterprise": settings.enterprise,
        "nav_here": "/fleet",
        "configured": bool(settings.plant.rul),
    }
    return request.app.state.templates.TemplateResponse(request, "fleet.html", context)


def machine_rul(request: Request, historian: Any, enterprise: str, machine: str) -> FleetRow | None:
    """The machine page's RUL: the stored estimate of one machine, or None when it has none."""
    found = rul_store(request, historian).estimates(enterprise, machine)
    rows = fleet_rows(found, anomaly_scores(request))
    return rows[0] if rows and rows[0].asset_class is not None else None
