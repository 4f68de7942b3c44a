"""Condition monitoring: the remaining useful life (RUL) of machines, per enterprise.

Estimates are made by the running `RulService` (``indunet serve`` with ``[[plant.rul]]``) and
read here from the ``condition_rul`` table, scoped by the request's enterprise: a tenant sees
only its own machines, and a machine of another tenant answers like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.condition.rul_service import RulStore

__all__ = ["router"]

router = APIRouter(tags=["condition"])

EnterpriseQ = Annotated[str | None, Query(description="Enterprise (tenant)")]
MachineQ = Annotated[str | None, Query(description="Only this machine (SITE/AREA/LINE/M)")]


class RulEstimateOut(BaseModel):
    """The latest RUL estimate of one machine."""

    machine: str
    asset_class: str
    ts_ms: int = Field(description="When it was estimated (epoch ms).")
    status: str = Field(description="ok, insufficient_history, no_model or bad_data")
    cycle: float | None = Field(None, description="The machine's last completed cycle.")
    cycles_seen: int | None = None
    rul: float | None = Field(None, description="Cycles left (capped at cap); None: no estimate.")
    low: float | None = Field(None, description="Low edge of the band (cycles).")
    high: float | None = Field(None, description="High edge of the band (cycles).")
    band_low: float | None = Field(None, description="Quantile of the low edge, e.g. 0.05.")
    band_high: float | None = Field(None, description="Quantile of the high edge, e.g. 0.95.")
    cap: int
    horizon: float = Field(description="An alarm is raised below this RUL (cycles).")
    alarm: bool = Field(description="Whether the RUL is below the horizon.")
    message: str | None = Field(None, description="Why there is no estimate, or what was fixed.")


class RulAnswer(BaseModel):
    """RUL estimates of an enterprise's machines, lowest RUL first."""

    enterprise: str
    estimates: list[RulEstimateOut]


def rul_store(request: Request, historian: HistorianDep) -> RulStore:
    """Return the app's RUL table (created once per app)."""
    store = getattr(request.app.state, "rul_store", None)
    if store is None:
        store = RulStore(historian)
        request.app.state.rul_store = store
    return store


@router.get("/condition/rul", response_model=RulAnswer)
def rul(
    request: Request,
    settings: SettingsDep,
    historian: HistorianDep,
    machine: MachineQ = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return the latest RUL estimate per machine (lowest first), or of one machine.

    Each estimate: ``status`` (``ok``, ``insufficient_history``, ``no_model``, ``bad_data``),
    ``rul`` with its band ``low``…``high`` (quantiles ``band_low``/``band_high``) in cycles,
    capped at ``cap`` (``rul == cap`` reads "at least cap cycles left"), the ``horizon`` below
    which it is an alarm, ``cycles_seen`` and ``message`` (why there is no estimate, or what was
    repaired in the data).
    """
    ent = enterprise or settings.enterprise
    name = machine.strip("/") if machine else None
    rows = rul_store(request, historian).estimates(ent, name)
    if name and not rows:
        raise HTTPException(404, f"no RUL estimate for machine {name!r} (not in [[plant.rul]])")
    for r in rows:
        r["alarm"] = r["status"] == "ok" and r["rul"] < r["horizon"]
    return {"enterprise": ent, "estimates": rows}
