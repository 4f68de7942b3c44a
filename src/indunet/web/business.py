"""The Business page: inventory, production orders, incoming materials, shipments, equipment.

Rows come from `BusinessStore.view`, the call behind ``/api/v1/inventory``, ``/orders`` and
``/shipments``, with what is derived from them (days of cover, progress, lateness, state). Each
table pages on its own with ``<table>_offset`` and ``<table>_limit`` query parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.business import get_business
from indunet.auth.model import Need, decide
from indunet.auth.web import PrincipalDep
from indunet.business.records import BusinessKind
from indunet.errors import DataError
from indunet.web.data import MAX_LIMIT, MAX_OFFSET, paginate

__all__ = ["TABLES", "BusinessTable", "router"]

router = APIRouter(include_in_schema=False, tags=["web"])


@dataclass(frozen=True)
class BusinessTable:
    """One table of the page: which records, its query name and title, how to sort."""

    key: str
    kind: str
    title: str
    upload: str  # what the empty state tells to upload


#: the page's tables in order; a kind this build does not know is left out
TABLES = (
    BusinessTable("inv", "inventory", "Inventory", "stock per item and warehouse"),
    BusinessTable("prod", "production_orders", "Production orders", "production orders"),
    BusinessTable("inc", "purchase_orders", "Incoming materials", "purchase orders"),
    BusinessTable("ship", "shipments", "Shipments", "shipments and vehicle trips"),
    BusinessTable("sales", "sales_orders", "Sales orders", "customer orders"),
    BusinessTable("gear", "customer_equipment", "Equipment at customers", "installed equipment"),
)
DEFAULT_LIMIT = 20


def _now_ms() -> int:
    return int(time.time() * 1000)


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DataError(f"parameter {name!r} must be a whole number, got {raw[:20]!r}") from None
    if not lo <= value <= hi:
        raise DataError(f"parameter {name!r} must be from {lo} to {hi}, got {value}")
    return value


def _day(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _sort(key: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put what needs attention first: items below cover, late orders and shipments."""
    if key == "inv":
        return sorted(rows, key=lambda r: (not r.get("below_cover"), r["item"], r["warehouse"]))
    if key == "ship":
        order = {"on_road": 0, "planned": 1, "arrived": 2, "cancelled": 3}
        return sorted(rows, key=lambda r: (not r.get("late"), order.get(r.get("state"), 9)))
    if key == "gear":
        return rows
    return sorted(rows, key=lambda r: (not r.get("late"), r.get("status") in ("done", "cancelled")))


@router.get("/business", response_class=HTMLResponse)
def business_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    only: Annotated[
        str, Query(pattern="^(|attention)$", description="'attention': below cover / late only")
    ] = "",
) -> HTMLResponse:
    """Show inventory, orders, incoming materials, shipments and customer equipment."""
    enterprise = settings.enterprise
    if settings.auth.required and not decide(Need.viewer, principal, enterprise=enterprise).allowed:
        # a site-limited grant got past the route table by naming a site (?site=): business
        # records belong to the whole enterprise, as on /api/v1/inventory and /orders
        raise HTTPException(403, "business records need a grant for the whole enterprise")
    store = get_business(request, historian)
    now = _now_ms()
    known = {k.value for k in BusinessKind}
    tables = [t for t in TABLES if t.kind in known]
    pages: dict[str, tuple[int, int]] = {}
    for t in tables:
        pages[t.key] = (
            _int_param(request, f"{t.key}_offset", 0, 0, MAX_OFFSET),
            _int_param(request, f"{t.key}_limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        )
    shown = []
    counts: dict[str, int] = {}
    for t in tables:
        rows = _sort(t.key, store.view(enterprise, t.kind, now_ms=now))
        counts[t.key] = len(rows)
        if only:
            rows = [r for r in rows if r.get("below_cover") or r.get("late") or r.get("stale")]
        offset, limit = pages[t.key]
        keep = [("only", only)] + [
            (f"{o.key}_{n}", str(v))
            for o in tables
            if o.key != t.key
            for n, v in zip(("offset", "limit"), pages[o.key], strict=True)
            if (n == "offset" and v) or (n == "limit" and v != DEFAULT_LIMIT)
        ]
        page, pager = paginate(
            rows,
            offset,
            limit,
            params=tuple(keep),
            offset_name=f"{t.key}_offset",
            limit_name=f"{t.key}_limit",
        )
        shown.append({"table": t, "rows": page, "pager": pager, "total": len(rows)})
    context = {
        "nav_here": "/business",
        "enterprise": enterprise,
        "tables": shown,
        "only": only,
        "empty": not any(counts.values()),
        "day": _day,
        "now_ms": now,
    }
    return _render(request, "business.html", context)
