"""GET /api/v1/federation/sites: the uplinked plants' sites as the regional instance last heard.

Chain operators only (aggregates across enterprises; `auth.policy` row ``_CHAIN``). Each site
shows its newest machine-state counts, its newest OEE (ratios derived from the summed ISO 22400
elements) and daily kWh, and ``status``: ``reporting``, or ``unknown`` when its newest states
are older than ``federation.stale_s`` — a plant that stops reporting is never shown as stopped.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from indunet.api.deps import HistorianDep, SettingsDep, app_store
from indunet.federation.regional import FederationStore

__all__ = ["router"]

router = APIRouter(prefix="/federation", tags=["federation"])


class UplinkSite(BaseModel):
    """One uplinked site: status, newest states, OEE and daily kWh."""

    enterprise: str
    site: str
    status: str
    last_seen_ms: int | None
    states: dict[str, Any] | None
    oee: dict[str, Any] | None
    kwh_daily: dict[str, Any] | None


class UplinkSites(BaseModel):
    """Every uplinked site, by enterprise and site."""

    now_ms: int
    stale_s: float
    sites: list[UplinkSite]


@router.get("/sites", response_model=UplinkSites)
def federation_sites(
    request: Request, historian: HistorianDep, settings: SettingsDep
) -> dict[str, Any]:
    """Return every uplinked site with its newest figures; silent sites are ``unknown``."""
    store = app_store(request, historian, "federation_store", FederationStore)
    now = int(time.time() * 1000)
    stale_s = settings.federation.stale_s
    return {"now_ms": now, "stale_s": stale_s, "sites": store.sites(now, int(stale_s * 1000))}
