"""Business data: /inventory, /orders, /shipments, /business/overview and bulk loading."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from indunet.api.deps import HistorianDep, SettingsDep, app_store, read_json
from indunet.api.middleware import json_body
from indunet.api.paging import Offset, page
from indunet.business.records import BusinessKind
from indunet.business.store import BusinessStore

router = APIRouter(tags=["business"])

ORDER_KINDS = {
    "purchase": BusinessKind.purchase_orders,
    "sales": BusinessKind.sales_orders,
    "production": BusinessKind.production_orders,
}


def get_business(request: Request, historian: HistorianDep) -> BusinessStore:
    """Return the app's business store (created beside the historian on first use)."""
    return app_store(request, historian, "business", BusinessStore)


BusinessDep = Annotated[BusinessStore, Depends(get_business)]
EnterpriseQ = Annotated[str | None, Query(description="Enterprise (tenant)")]
Limit = Annotated[int, Query(ge=1, le=100_000, description="Rows per page")]


def _now() -> int:
    return int(time.time() * 1000)


@router.post(
    "/business/{kind}",
    openapi_extra=json_body('Records of this kind: [...] or {"records": [...]}', array=True),
)
async def load_records(
    kind: BusinessKind,
    request: Request,
    store: BusinessDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    timezone: Annotated[str | None, Query(description="Zone of times without an offset")] = None,
) -> dict[str, Any]:
    """Store a JSON array of records of ``kind``; refused rows are reported and dead-lettered."""
    doc = await read_json(request, settings.ingest_max_bytes)
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        doc = doc["records"]
    if not isinstance(doc, list):
        raise HTTPException(400, "body must be a JSON array of records or {'records': [...]}")
    report = await run_in_threadpool(
        store.load,
        enterprise or settings.enterprise,
        kind,
        doc,
        source=f"http:{kind.value}",
        now_ms=_now(),
        tz=timezone,
    )
    return report.as_dict()


@router.get("/inventory")
def inventory(
    request: Request,
    response: Response,
    store: BusinessDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    below_cover: Annotated[bool, Query(description="Only items below their cover")] = False,
    limit: Limit = 10_000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Return the newest stock per item and warehouse with its days of cover."""
    rows = store.view(enterprise or settings.enterprise, BusinessKind.inventory, now_ms=_now())
    if below_cover:
        rows = [r for r in rows if r["below_cover"]]
    return {"rows": page(request, response, rows, limit=limit, offset=offset)}


@router.get("/orders")
def orders(
    request: Request,
    response: Response,
    store: BusinessDep,
    settings: SettingsDep,
    kind: Annotated[str, Query(pattern="^(purchase|sales|production)$")] = "purchase",
    enterprise: EnterpriseQ = None,
    late: Annotated[bool, Query(description="Only late orders")] = False,
    limit: Limit = 10_000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Return purchase (incoming materials), sales or production orders, progress and lateness."""
    rows = store.view(enterprise or settings.enterprise, ORDER_KINDS[kind], now_ms=_now())
    if late:
        rows = [r for r in rows if r["late"]]
    return {"kind": kind, "rows": page(request, response, rows, limit=limit, offset=offset)}


@router.get("/shipments")
def shipments(
    request: Request,
    response: Response,
    store: BusinessDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    state: Annotated[str | None, Query(pattern="^(planned|on_road|arrived|cancelled)$")] = None,
    limit: Limit = 10_000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Return shipments and vehicles with their state (planned, on the road, arrived)."""
    rows = store.view(enterprise or settings.enterprise, BusinessKind.shipments, now_ms=_now())
    if state:
        rows = [r for r in rows if r["state"] == state]
    return {"rows": page(request, response, rows, limit=limit, offset=offset)}


@router.get("/business/overview")
def overview(store: BusinessDep, settings: SettingsDep, enterprise: EnterpriseQ = None) -> dict:
    """Return the counts of the manager's overview: cover, late orders, fleet."""
    return store.overview(enterprise or settings.enterprise, now_ms=_now())
