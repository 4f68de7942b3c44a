"""Supply–demand docking: /dock/solve, /dock/rank, stored requests/offers/lanes and runs."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor

from indunet.api.deps import HistorianDep, SettingsDep, app_store, read_json
from indunet.api.middleware import json_body
from indunet.docking.problem import load_problem
from indunet.docking.ranking import LiveStatus, OfferIndex
from indunet.docking.solver import SolverError, solve
from indunet.docking.store import DockingStore
from indunet.docking.transfer import WEIGHTS as TRANSFER_WEIGHTS
from indunet.docking.transfer import load_transfer, match_transfer
from indunet.errors import DataError

router = APIRouter(prefix="/dock", tags=["docking"])
Objective = Literal["cost", "fair"]
Kind = Literal["requests", "offers", "lanes"]


class _KindConvertor(StringConvertor):
    """A ``{kind:dockkind}`` path segment: only requests, offers or lanes, so that
    ``/dock/runs`` and ``/dock/dispatch`` with another method answer 405, not 422."""

    regex = "requests|offers|lanes"


register_url_convertor("dockkind", _KindConvertor())
EnterpriseQ = Annotated[str | None, Query(description="Enterprise (tenant)")]


def get_docking(request: Request, historian: HistorianDep) -> DockingStore:
    """Return the app's docking store (created beside the historian on first use)."""
    return app_store(request, historian, "docking", DockingStore)


DockingDep = Annotated[DockingStore, Depends(get_docking)]


def _solve(problem, objective: str) -> dict[str, Any]:
    try:
        return solve(problem, objective).as_dict()
    except SolverError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.post("/solve", openapi_extra=json_body("A problem document: requests, offers, lanes"))
async def solve_problem(
    request: Request, settings: SettingsDep, objective: Objective = "cost"
) -> dict[str, Any]:
    """Solve a problem document (requests, offers, lanes) and explain the result."""
    problem = load_problem(await read_json(request, settings.ingest_max_bytes))
    return await run_in_threadpool(_solve, problem, objective)


@router.post("/transfer/match", openapi_extra=json_body("Enterprises and regions' capacity offers"))
async def transfer_match(
    request: Request,
    settings: SettingsDep,
    top: Annotated[int, Query(gt=0, le=100)] = 5,
) -> dict[str, Any]:
    """Match enterprises that want to move or add capacity with regions' offers (scored)."""
    enterprises, regions = load_transfer(await read_json(request, settings.ingest_max_bytes))
    return {"weights": TRANSFER_WEIGHTS, "rows": match_transfer(enterprises, regions, top=top)}


@router.post("/runs")
def run_stored(
    store: DockingDep,
    settings: SettingsDep,
    objective: Objective = "fair",
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Solve the stored requests and offers and keep the result as a run."""
    enterprise = enterprise or settings.enterprise
    problem = store.problem(enterprise)
    try:
        solution = solve(problem, objective)
    except SolverError as exc:
        raise HTTPException(422, str(exc)) from exc
    run_id = store.save_run(enterprise, solution, now_ms=int(time.time() * 1000))
    return {"run_id": run_id, **solution.as_dict()}


@router.get("/runs/{run_id}")
def get_run(
    run_id: str, store: DockingDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """Return a kept run."""
    run = store.run(enterprise or settings.enterprise, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r}")
    return run


class DispatchAction(BaseModel):
    """Who acts on a dispatch order, from which side, and the details of the action."""

    side: Literal["supplier", "requester"]
    by: str
    reason: str | None = None
    warehouse: str | None = None
    lat: float | None = None
    lon: float | None = None


@router.post("/runs/{run_id}/dispatch")
def propose_dispatch(
    run_id: str,
    store: DockingDep,
    settings: SettingsDep,
    by: Annotated[str, Query(min_length=1)],
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Turn a kept run's allocations into dispatch orders both sides must confirm."""
    try:
        orders = store.propose(
            enterprise or settings.enterprise, run_id, by=by, now_ms=int(time.time() * 1000)
        )
    except DataError as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"rows": orders}


@router.get("/dispatch")
def list_dispatch(
    store: DockingDep,
    settings: SettingsDep,
    run_id: str | None = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """List dispatch orders (optionally of one run) with their status."""
    return {"rows": store.dispatch_orders(enterprise or settings.enterprise, run_id=run_id)}


class DispatchOrder(BaseModel):
    """One dispatch order: who ships what to whom, by when, and where it stands."""

    model_config = ConfigDict(extra="allow")

    order_id: str
    run_id: str | None = None
    offer: str
    request: str
    item: str | None = None
    quantity: float
    supplier: str | None = None
    requester: str | None = None
    status: str
    ship_day: float | None = None
    arrive_day: float | None = None
    lat: float | None = None
    lon: float | None = None
    updated_ms: int | None = None


@router.post("/dispatch", response_model=DispatchOrder)
def dock_one(
    store: DockingDep,
    settings: SettingsDep,
    request_id: Annotated[str, Query(alias="request", min_length=1)],
    offer_id: Annotated[str, Query(alias="offer", min_length=1)],
    by: Annotated[str, Query(min_length=1)],
    quantity: Annotated[float | None, Query(gt=0)] = None,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Dock one request with one (ranked) offer: a proposed dispatch order, run ``manual``."""
    try:
        return store.dock(
            enterprise or settings.enterprise,
            request_id,
            offer_id,
            by=by,
            quantity=quantity,
            now_ms=int(time.time() * 1000),
        )
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except DataError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post("/dispatch/{order_id}/{action}")
def act_on_dispatch(
    order_id: str,
    action: Literal["confirm", "ship", "deliver", "cancel"],
    body: DispatchAction,
    store: DockingDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Confirm, ship, deliver or cancel an order; every change is audited."""
    try:
        return store.act(
            enterprise or settings.enterprise,
            order_id,
            action,
            now_ms=int(time.time() * 1000),
            **body.model_dump(),
        )
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except DataError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/dispatch/{order_id}/audit")
def dispatch_audit(
    order_id: str, store: DockingDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """Return the audit trail of an order."""
    return {"rows": store.audit(enterprise or settings.enterprise, order_id)}


@router.get("/rank")
def rank_offers(
    request: Request,
    store: DockingDep,
    settings: SettingsDep,
    request_id: Annotated[str, Query(alias="request")],
    top: Annotated[int, Query(gt=0, le=1000)] = 10,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Rank stored offers for one stored request (item match, distance, lead time, status)."""
    tenant = enterprise or settings.enterprise
    problem = store.problem(tenant)
    wanted = next((r for r in problem.requests if r.id == request_id), None)
    if wanted is None:
        raise HTTPException(404, f"no request {request_id!r}")
    index = OfferIndex.build(problem.offers)
    live = index.live_scores(own_plant_status(request, tenant))
    return {"request": request_id, "rows": index.rank(wanted, top=top, status=live)}


def own_plant_status(request: Request, enterprise: str) -> dict[str, LiveStatus]:
    """Return this server's plant status (machines running now) keyed by its enterprise."""
    watcher = getattr(request.app.state, "plant_watcher", None)
    if watcher is None or watcher.enterprise != enterprise:
        return {}
    states = [watcher.current(m.id) for m in watcher.plant.machines]
    known = [s[0] for s in states if s is not None and s[0] != "offline"]
    return {
        enterprise: LiveStatus(
            machines_running=sum(s == "running" for s in known), machines_known=len(known)
        )
    }


@router.post("/{kind:dockkind}", openapi_extra=json_body("Requests, offers or lanes", array=True))
async def save_entries(
    kind: Kind,
    request: Request,
    store: DockingDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Store requests, offers or lanes (a JSON array); refused entries are reported by index."""
    docs = await read_json(request, settings.ingest_max_bytes)
    if not isinstance(docs, list):
        raise HTTPException(400, "body must be a JSON array")
    return await run_in_threadpool(
        store.save,
        enterprise or settings.enterprise,
        kind[:-1],
        docs,
        now_ms=int(time.time() * 1000),
    )


@router.get("/{kind:dockkind}")
def list_entries(
    kind: Kind, store: DockingDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """List the stored requests, offers or lanes."""
    return {"rows": store.entries(enterprise or settings.enterprise, kind[:-1])}


@router.delete("/{kind:dockkind}/{entry_id}")
def delete_entry(
    kind: Kind,
    entry_id: str,
    store: DockingDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Remove a stored request, offer or lane (lane ids are ``FROM->TO``)."""
    if not store.delete(enterprise or settings.enterprise, kind[:-1], entry_id):
        raise HTTPException(404, f"no {kind[:-1]} {entry_id!r}")
    return {"deleted": entry_id}
