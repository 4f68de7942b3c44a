"""Supply-chain resilience: /chain/networks, stuck points, scenarios, resilience table, carbon."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from indunet.api.deps import HistorianDep, SettingsDep, app_store, read_json
from indunet.api.middleware import json_body
from indunet.chain.carbon import carbon_report
from indunet.chain.disruption import compare_scenarios, parse_scenario, run_scenario
from indunet.chain.graph import SupplyGraph, build_supply_graph, item_risks, stuck_points
from indunet.chain.network import parse_network
from indunet.chain.resilience import resilience_table
from indunet.chain.store import ChainNotFound, ChainStore

router = APIRouter(tags=["chain"])

NetworkName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,100}$", description="Network name")]
EnterpriseQ = Annotated[str | None, Query(description="Enterprise (tenant)")]


def get_chain_store(request: Request, historian: HistorianDep) -> ChainStore:
    """Return the app's chain store (tables created beside the historian on first use)."""
    return app_store(request, historian, "chain", ChainStore)


ChainDep = Annotated[ChainStore, Depends(get_chain_store)]


def _now() -> int:
    return int(time.time() * 1000)


def _graph(store: ChainStore, enterprise: str, name: str) -> SupplyGraph:
    try:
        return build_supply_graph(store.network(enterprise, name))
    except ChainNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.put("/chain/networks/{name}", openapi_extra=json_body("A network (NETWORK.json)"))
async def upload_network(
    name: NetworkName,
    request: Request,
    store: ChainDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Validate and store a network (NETWORK.json); errors name the offending entry (422)."""
    doc = await read_json(request, settings.ingest_max_bytes)
    network = parse_network(doc)
    await run_in_threadpool(
        store.save_network, enterprise or settings.enterprise, name, network, now_ms=_now()
    )
    return {
        "name": name,
        "sites": len(network.nodes),
        "items": len({n.produces for n in network.nodes} | {b.parent for b in network.bom}),
        "products": len(network.products),
        "warnings": network.warnings,
    }


@router.get("/chain/networks")
def list_networks(store: ChainDep, settings: SettingsDep, enterprise: EnterpriseQ = None) -> dict:
    """List the enterprise's stored networks."""
    return {"networks": store.networks(enterprise or settings.enterprise)}


@router.get("/chain/networks/{name}")
def get_network(
    name: NetworkName, store: ChainDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """Return a stored network document."""
    try:
        network = store.network(enterprise or settings.enterprise, name)
    except ChainNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return network.model_dump(exclude_none=True)


@router.get("/chain/networks/{name}/stuck-points")
def get_stuck_points(
    name: NetworkName,
    store: ChainDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Return the ranked stuck-point list with a reason per entry."""
    g = _graph(store, enterprise or settings.enterprise, name)
    return {"stuck_points": stuck_points(g, limit=limit)}


@router.get("/chain/networks/{name}/items")
def get_items(
    name: NetworkName, store: ChainDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """Return per item: qualified sources, single-source flag, HHI by supplier and by region."""
    g = _graph(store, enterprise or settings.enterprise, name)
    return {"items": [r.as_dict() for r in item_risks(g)]}


@router.get("/chain/networks/{name}/resilience")
def get_resilience(
    name: NetworkName,
    store: ChainDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    down: Annotated[list[str] | None, Query(description="Sites already down")] = None,
) -> dict[str, Any]:
    """Return the TTS/TTR table: TTS, TTR, PI, REI and at-risk per site."""
    g = _graph(store, enterprise or settings.enterprise, name)
    return resilience_table(g, down=down or [])


@router.get("/chain/networks/{name}/carbon")
def get_carbon(
    name: NetworkName, store: ChainDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """Return kg CO2 per unit by item (each maker listed) and by product."""
    g = _graph(store, enterprise or settings.enterprise, name)
    return carbon_report(g)


@router.post(
    "/chain/networks/{name}/scenarios",
    openapi_extra=json_body("A scenario: {region | sites | item, weeks, name}"),
)
async def post_scenario(
    name: NetworkName,
    request: Request,
    store: ChainDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    save: Annotated[bool, Query(description="Keep the result in the scenario library")] = True,
) -> dict[str, Any]:
    """Run a scenario ({region | sites | item, weeks, name}); saved under its name by default."""
    doc = await read_json(request, settings.ingest_max_bytes)
    scenario = parse_scenario(doc)
    tenant = enterprise or settings.enterprise
    g = await run_in_threadpool(_graph, store, tenant, name)
    result = await run_in_threadpool(run_scenario, g, scenario)
    if save:
        await run_in_threadpool(store.save_scenario, tenant, name, result, now_ms=_now())
    return result


@router.get("/chain/networks/{name}/scenarios")
def list_scenarios(
    name: NetworkName, store: ChainDep, settings: SettingsDep, enterprise: EnterpriseQ = None
) -> dict[str, Any]:
    """List the saved scenarios of a network with headline figures."""
    return {"scenarios": store.scenarios(enterprise or settings.enterprise, name)}


@router.get("/chain/networks/{name}/scenarios/compare")
def compare(
    name: NetworkName,
    store: ChainDep,
    settings: SettingsDep,
    names: Annotated[list[str], Query(min_length=1, description="Scenario names")],
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Compare saved scenarios: products × scenarios (time-to-impact, lost demand)."""
    tenant = enterprise or settings.enterprise
    try:
        results = [store.scenario(tenant, name, n) for n in names]
    except ChainNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return compare_scenarios(results)


@router.get("/chain/networks/{name}/scenarios/{scenario}")
def get_scenario(
    name: NetworkName,
    scenario: str,
    store: ChainDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> dict[str, Any]:
    """Return one saved scenario result."""
    try:
        return store.scenario(enterprise or settings.enterprise, name, scenario)
    except ChainNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
