"""The regional instance's view of its uplinking plants, and registering them.

``GET /api/v1/federation/sites``: the uplinked plants' sites as the regional instance last heard.
``GET /api/v1/federation/enterprises``: each uplinking enterprise, registered (with the
monitor's verdict on its newest complete day) or not. ``POST /api/v1/region/registry``:
register enterprises (an uplinking plant's, with a declared normal daily kWh).

Chain operators only (aggregates across enterprises; `auth.policy` row ``_CHAIN``). Each site
shows its newest machine-state counts, its newest OEE (ratios derived from the summed ISO 22400
elements) and daily kWh, and ``status``: ``reporting``, or ``unknown`` when its newest states
are older than ``federation.stale_s`` — a plant that stops reporting is never shown as stopped.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from indunet.api.deps import HistorianDep, SettingsDep, app_store
from indunet.api.routes.region import region_store_of
from indunet.federation.regional import FederationStore, uplinked_enterprises
from indunet.store.base import Historian

__all__ = ["register_enterprises", "registry_router", "router", "uplinks_of"]

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


def uplinks_of(request: Request, historian: Historian, rule: Any = None) -> dict[str, Any]:
    """Return the uplinking enterprises, registered and not (`uplinked_enterprises`)."""
    settings = request.app.state.settings
    fed = app_store(request, historian, "federation_store", FederationStore)
    region = (
        None
        if getattr(request.app.state, "region_loading", False)
        else (region_store_of(request.app))
    )
    return uplinked_enterprises(
        fed, region, min_coverage=settings.federation.min_coverage,
        now_ms=int(time.time() * 1000), stale_ms=int(settings.federation.stale_s * 1000),
        rule=rule,
    )  # fmt: skip


class UplinkEnterprise(BaseModel, extra="allow"):
    """An uplinking enterprise; a registered one also carries the monitor's verdict (its
    registry columns, ``baseline``, ``state`` and, when unknown, ``unknown_because``)."""

    enterprise_id: str
    sites: list[str]
    reporting: bool
    last_seen_ms: int | None
    day: str | None
    kwh: float | None
    source: str
    state: str | None = None


class UplinkEnterprises(BaseModel):
    """The uplinking enterprises, split by whether the monitor's registry knows them."""

    registered: list[UplinkEnterprise]
    unregistered: list[UplinkEnterprise]


class RegistryOutcome(BaseModel):
    """What registering did: rows new, changed, unchanged, refused; the enterprises named."""

    file: str
    rows: int
    new: int
    changed: int
    unchanged: int
    refused: int
    errors: list[str]
    warnings: list[str]
    enterprises: list[str]


@router.get("/enterprises", response_model=UplinkEnterprises)
def federation_enterprises(request: Request, historian: HistorianDep) -> dict[str, Any]:
    """Return each uplinking enterprise: registered (with its state) or waiting to be."""
    return uplinks_of(request, historian)


def register_enterprises(
    request: Request, historian: Historian, rows: list[dict[str, Any]], source: str
) -> dict[str, Any]:
    """Register enterprises in the monitor's registry; their stored uplinks become readings.

    All or nothing (`RegionStore.register`). The uplinked daily kWh of a newly registered
    enterprise went to the quarantine while it was unknown: they are sent to the monitor again.
    """
    region = region_store_of(request.app)
    today = datetime.now(UTC).date()
    report = region.register(rows, source=source, effective=today)
    ids = sorted({str(r["enterprise_id"]).strip() for r in rows})
    consumer = getattr(request.app.state, "uplink_consumer", None)
    if consumer is not None:
        consumer.resync(ids)
    else:
        app_store(request, historian, "federation_store", FederationStore).resync(ids)
    return {**report.as_dict(), "enterprises": ids}


registry_router = APIRouter(prefix="/region", tags=["region"])


class RegistryRows(BaseModel):
    """Enterprises to register: registry columns, and ``baseline_kwh`` (normal daily kWh)."""

    enterprises: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


@registry_router.post("/registry", response_model=RegistryOutcome)
def register(request: Request, historian: HistorianDep, body: RegistryRows) -> dict[str, Any]:
    """Register enterprises (all or nothing; 422 names each refused row and field)."""
    return register_enterprises(request, historian, body.enterprises, "api")
