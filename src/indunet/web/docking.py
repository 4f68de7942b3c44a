"""The docking page: open requests and offers, the fair (or least-cost) allocation and its reasons.

The page reads the docking store through the same calls as ``/api/v1/dock`` (never SQL). Runs
are started from the page by ``static/docking.js`` through ``POST /api/v1/dock/runs`` with the
session's CSRF token; the result is rendered here (``/parts/docking/run/{run_id}``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from indunet.api.deps import SettingsDep
from indunet.api.routes.docking import DockingDep, own_plant_status
from indunet.auth.model import Need, Principal, decide
from indunet.docking.problem import load_problem
from indunet.docking.ranking import OfferIndex
from indunet.errors import DataError

__all__ = ["PAGE_SIZE", "Paged", "paginate", "router", "run_view"]

PAGE_SIZE = 25
router = APIRouter(include_in_schema=False, tags=["web"])


@dataclass(frozen=True)
class Paged:
    """One page of a list: its rows, the page number (from 1) and how many pages there are."""

    rows: list[dict[str, Any]]
    page: int
    pages: int
    total: int


def paginate(rows: list[dict[str, Any]], page: int, size: int = PAGE_SIZE) -> Paged:
    """Return page ``page`` (clamped to the pages there are) of ``rows``."""
    pages = max(1, math.ceil(len(rows) / size))
    page = min(max(1, page), pages)
    return Paged(rows[(page - 1) * size : page * size], page, pages, len(rows))


def run_view(
    run: dict[str, Any], requests: list[dict[str, Any]], offers: list[dict[str, Any]]
) -> dict[str, Any]:
    """Join a kept run with the stored entries: per request what it gets, from whom, by when."""
    req = {r["id"]: r for r in requests}
    off = {o["id"]: o for o in offers}
    by_request: dict[str, list[dict[str, Any]]] = {}
    for a in run.get("allocations", []):
        offer = off.get(a["offer"], {})
        by_request.setdefault(a["request"], []).append(
            {**a, "supplier": offer.get("enterprise") or "", "kind": offer.get("kind", "stock")}
        )
    fills = []
    for f in run.get("fills", []):
        r = req.get(f["request"], {})
        fills.append(
            {
                **f,
                "enterprise": r.get("enterprise") or "",
                "deadline_day": r.get("deadline_day"),
                "deliveries": by_request.get(f["request"], []),
                "unmet": max(0.0, f["requested"] - f["filled"]),
            }
        )
    conversions = []
    for c in run.get("conversions", []):
        offer = off.get(c["offer"], {})
        conversions.append(
            {
                **c,
                "enterprise": offer.get("enterprise") or "",
                "usual_item": offer.get("usual_item") or "its usual product",
                "item": offer.get("item", ""),
                "rate_per_day": offer.get("rate_per_day"),
                "conversion_cost": offer.get("conversion_cost", 0.0),
            }
        )
    fills.sort(key=lambda f: f.get("priority", 1))  # class 1 first (stable: stored order within)
    unmet = sum(f["unmet"] for f in fills)
    return {
        "run": run,
        "fills": fills,
        "conversions": conversions,
        "unmet_total": unmet,
        "short": [f for f in fills if f["reasons"]],
    }


def _may(request: Request, need: Need, enterprise: str) -> bool:
    """Return whether this page's caller may use routes needing ``need`` (no auth: yes)."""
    if not request.app.state.settings.auth.required:
        return True
    principal: Principal | None = getattr(request.state, "principal", None)
    return decide(need, principal, enterprise=enterprise).allowed


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _run_context(store, enterprise: str, run_id: str) -> dict[str, Any] | None:
    run = store.run(enterprise, run_id)
    if run is None:
        return None
    view = run_view(run, store.entries(enterprise, "request"), store.entries(enterprise, "offer"))
    view["orders"] = store.dispatch_orders(enterprise, run_id=run_id)
    return view


def _ranking(
    request: Request, store, enterprise: str, request_id: str, requests: list[dict]
) -> dict[str, Any]:
    wanted = next((r for r in requests if r["id"] == request_id), None)
    if wanted is None:
        return {"request": request_id, "error": f"no request {request_id!r}", "rows": []}
    try:
        problem = load_problem({"requests": requests, "offers": store.entries(enterprise, "offer")})
    except DataError as exc:
        return {"request": request_id, "error": str(exc), "rows": []}
    target = next(r for r in problem.requests if r.id == request_id)
    index = OfferIndex.build(problem.offers)
    live = index.live_scores(own_plant_status(request, enterprise))
    rows = index.rank(target, top=10, status=live)
    return {"request": request_id, "entry": wanted, "error": None, "rows": rows}


@router.get("/docking", response_class=HTMLResponse)
def docking_page(
    request: Request,
    store: DockingDep,
    settings: SettingsDep,
    run: Annotated[str | None, Query(max_length=64, description="Run to show.")] = None,
    rank: Annotated[str | None, Query(max_length=128, description="Request to rank.")] = None,
    rpage: Annotated[int, Query(ge=1, le=100_000)] = 1,
    opage: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Show open requests and offers, the latest (or chosen) run and its dispatch orders."""
    enterprise = settings.enterprise
    requests = store.entries(enterprise, "request")
    offers = store.entries(enterprise, "offer")
    runs = store.runs(enterprise, limit=10)
    run_id = run or (runs[0]["run_id"] if runs else None)
    result = _run_context(store, enterprise, run_id) if run_id else None
    principal: Principal | None = getattr(request.state, "principal", None)
    context = {
        "nav_here": "/docking",
        "enterprise": enterprise,
        "requests": paginate(requests, rpage),
        "offers": paginate(offers, opage),
        "rpage": rpage,
        "opage": opage,
        "runs": runs,
        "run_id": run_id,
        "missing_run": run if run and result is None else None,
        "result": result,
        "ranking": _ranking(request, store, enterprise, rank, requests) if rank else None,
        "can_run": _may(request, Need.operator, enterprise),
        "manual": store.dispatch_orders(enterprise, run_id="manual"),
        "user": principal.name if principal else "operator",
        "csrf_token": principal.csrf_token if principal else "",
    }
    return _render(request, "docking.html", context)


@router.get("/parts/docking/run/{run_id}", response_class=HTMLResponse)
def docking_run_part(
    request: Request, run_id: str, store: DockingDep, settings: SettingsDep
) -> HTMLResponse:
    """Return the result of one run (allocations, reasons, conversions, dispatch) as a fragment."""
    enterprise = settings.enterprise
    result = _run_context(store, enterprise, run_id)
    context = {
        "result": result,
        "run_id": run_id,
        "missing_run": run_id if result is None else None,
        "can_run": _may(request, Need.operator, enterprise),
    }
    return _render(request, "_docking_run.html", context, 200 if result else 404)
