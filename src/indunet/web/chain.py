"""Supply-chain pages: the networks, one network's graph, stuck points, TTS/TTR, CO2, scenarios.

Pages call the chain package as ``/api/v1/chain`` does (never SQL). ``/chain/{name}`` draws the
graph with ECharts (``static/chain.js``; a graph with more than ``MAX_GRAPH_NODES`` sites shown is
summarised as one node per region × tier), lists the stuck points with their reasons, the
TTS/TTR table (sites with TTS < TTR flagged) and CO2 per unit, runs scenarios through
``POST /api/v1/chain/networks/{name}/scenarios`` with the session's CSRF token (operators) and
compares the saved ones. Active chain alerts come from the live link (`indunet.chain.live`)
when it runs. The TTS/TTR table is kept in the
chain store per network version (solved on first view).
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.chain import get_chain_store
from indunet.auth.model import Need, Principal, decide
from indunet.chain.carbon import carbon_report
from indunet.chain.disruption import compare_scenarios
from indunet.chain.graph import SupplyGraph, build_supply_graph, stuck_points
from indunet.chain.network import Network
from indunet.chain.resilience import ChainSolveError, resilience_table
from indunet.chain.store import ChainNotFound, ChainStore
from indunet.errors import DataError

__all__ = ["MAX_GRAPH_NODES", "graph_view", "resilience_rows", "router"]

router = APIRouter(include_in_schema=False, tags=["web"])

#: more sites than this after filtering: one node per region × tier
MAX_GRAPH_NODES = 300
#: rows of the TTS/TTR table shown (at-risk sites first, then by REI)
RESILIENCE_ROWS = 60
#: saved scenarios compared side by side (newest first)
COMPARE_MAX = 6
NameQ = Annotated[str, Query(max_length=200)]
EnterpriseQ = Annotated[str | None, Query(max_length=200, description="Enterprise (tenant)")]


# ---------------------------------------------------------------------------- pure views
def graph_view(
    network: Network,
    g: SupplyGraph,
    *,
    region: str = "",
    industry: str = "",
    item: str = "",
    max_nodes: int = MAX_GRAPH_NODES,
    flagged: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Return ECharts graph data for the sites matching the filters (and the products).

    ``item`` keeps the sites making it and their direct suppliers and customers. More than
    ``max_nodes`` sites: one node per region × tier, edges counted between them.
    """
    sites = network.nodes
    keep = [
        (not region or n.region == region)
        and (not industry or n.industry == industry)
        and (not item or n.produces == item)
        for n in sites
    ]
    s = g.n_sites
    src, dst = g.src.tolist(), g.dst.tolist()
    if item:
        core = {i for i, k in enumerate(keep) if k}
        for a, b in zip(src, dst, strict=True):
            if b in core and a < s:
                keep[a] = True
            if a in core and b < s:
                keep[b] = True
    shown = [i for i in range(s) if keep[i]]
    summarised = len(shown) > max_nodes
    categories = sorted({sites[i].region or "—" for i in shown})
    cat_index = {c: k for k, c in enumerate(categories)}
    products = "products"
    nodes: list[dict[str, Any]] = []
    links: dict[tuple[str, str], int] = {}
    level = g.level.tolist()
    top = max((level[i] for i in shown), default=0) + 1

    def key(i: int) -> str:
        if i >= s:
            return g.ids[i]
        if summarised:
            return f"{sites[i].region or '—'} · tier {level[i]}"
        return g.ids[i]

    if summarised:
        groups: dict[str, dict[str, Any]] = {}
        for i in shown:
            k = key(i)
            grp = groups.setdefault(
                k,
                {
                    "id": k,
                    "name": k,
                    "category": cat_index[sites[i].region or "—"],
                    "value": 0,
                    "tier": level[i],
                    "flagged": 0,
                },
            )
            grp["value"] += 1
            grp["flagged"] += g.ids[i] in flagged
        nodes = list(groups.values())
    else:
        for i in shown:
            n = sites[i]
            nodes.append(
                {
                    "id": n.id,
                    "name": n.id,
                    "category": cat_index[n.region or "—"],
                    "value": 1,
                    "tier": level[i],
                    "item": n.produces,
                    "region": n.region,
                    "industry": n.industry,
                    "flagged": int(n.id in flagged),
                }
            )
    visible = set(shown)
    market_used: set[int] = set()
    for a, b in zip(src, dst, strict=True):
        if a not in visible or (b < s and b not in visible):
            continue
        if b >= s:
            market_used.add(b)
        pair = (key(a), key(b))
        if pair[0] != pair[1]:
            links[pair] = links.get(pair, 0) + 1
    if market_used:
        categories.append(products)
        for m in sorted(market_used):
            nodes.append(
                {
                    "id": g.ids[m],
                    "name": g.ids[m],  # ids are names in ECharts links
                    "category": len(categories) - 1,
                    "value": 1,
                    "tier": top,
                    "flagged": 0,
                }
            )
    return {
        "summarised": summarised,
        "sites": len(shown),
        "categories": categories,
        "nodes": nodes,
        "links": [{"source": a, "target": b, "value": v} for (a, b), v in links.items()],
    }


def resilience_rows(table: dict[str, Any], limit: int = RESILIENCE_ROWS) -> dict[str, Any]:
    """Return the TTS/TTR rows to show: at-risk sites first, then by REI; with counts."""
    nodes = sorted(
        table["nodes"], key=lambda n: (not n["at_risk"], -n["rei"], n["tts_weeks"], n["id"])
    )
    return {
        "rows": nodes[:limit],
        "total": len(nodes),
        "at_risk": sum(1 for n in nodes if n["at_risk"]),
        "warnings": table.get("warnings", []),
    }


# ---------------------------------------------------------------------------- helpers
def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _may(request: Request, need: Need, enterprise: str) -> bool:
    """Return whether the caller may use routes needing ``need`` (no auth required: yes)."""
    if not request.app.state.settings.auth.required:
        return True
    principal: Principal | None = getattr(request.state, "principal", None)
    return decide(need, principal, enterprise=enterprise).allowed


def _csrf_token(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return (principal.csrf_token or "") if principal is not None else ""


def _resilience(store: ChainStore, enterprise: str, name: str, g: SupplyGraph) -> dict[str, Any]:
    """Return the network's TTS/TTR table: the kept one, else solved now and kept."""
    table = store.resilience(enterprise, name)
    if table is not None:
        return table
    try:
        table = resilience_table(g)
    except ChainSolveError as exc:
        return {"nodes": [], "warnings": [str(exc)]}
    store.save_resilience(enterprise, name, table, now_ms=int(time.time() * 1000))
    return table


def _live(request: Request, enterprise: str, name: str) -> dict[str, Any] | None:
    live = getattr(request.app.state, "chain_live", None)
    if live is None:
        return None
    return live.view(enterprise, name)


def _network_context(
    request: Request,
    store: ChainStore,
    enterprise: str,
    name: str,
    region: str,
    industry: str,
    item: str,
) -> dict[str, Any] | None:
    try:
        network = store.network(enterprise, name)
    except ChainNotFound:
        return None
    g = build_supply_graph(network)
    points = stuck_points(g, limit=30)
    live = _live(request, enterprise, name)
    table = (live or {}).get("resilience") or _resilience(store, enterprise, name, g)
    rows = resilience_rows(table)
    flagged = frozenset(r["id"] for r in table["nodes"] if r["at_risk"])
    flagged |= {p["subject"] for p in points if p["kind"] in ("critical_site", "dominator")}
    try:
        carbon: dict[str, Any] | None = carbon_report(g)
    except DataError as exc:
        carbon = {"error": str(exc), "items": [], "products": []}
    saved = store.scenarios(enterprise, name)
    saved.sort(key=lambda r: -r["updated_ms"])
    compared = None
    if len(saved) > 1:
        results = [store.scenario(enterprise, name, r["name"]) for r in saved[:COMPARE_MAX]]
        compared = compare_scenarios(results)
    latest = store.scenario(enterprise, name, saved[0]["name"]) if saved else None
    return {
        "network": network,
        "graph": graph_view(
            network, g, region=region, industry=industry, item=item, flagged=flagged
        ),
        "regions": sorted({n.region for n in network.nodes if n.region}),
        "industries": sorted({n.industry for n in network.nodes if n.industry}),
        "items": sorted({n.produces for n in network.nodes}),
        "filters": {"region": region, "industry": industry, "item": item},
        "stuck": points,
        "resilience": rows,
        "live_resilience": bool(live and live.get("resilience")),
        "carbon": carbon,
        "saved": saved,
        "compared": compared,
        "result": latest,
        "live": live,
    }


# ---------------------------------------------------------------------------- routes
@router.get("/chain", response_class=HTMLResponse)
def chain_list(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
) -> HTMLResponse:
    """List the enterprise's supply networks."""
    tenant = enterprise or settings.enterprise
    store = get_chain_store(request, historian)
    networks = store.networks(tenant)
    for n in networks:
        n["scenarios"] = len(store.scenarios(tenant, n["name"]))
    context = {
        "nav_here": "/chain",
        "enterprise": tenant,
        "query": f"?enterprise={quote(tenant, safe='')}" if enterprise else "",
        "networks": networks,
        "can_upload": _may(request, Need.admin, tenant),
    }
    return _render(request, "chain.html", context)


@router.get("/chain/{name}", response_class=HTMLResponse)
async def chain_page(
    request: Request,
    name: str,
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: EnterpriseQ = None,
    region: NameQ = "",
    industry: NameQ = "",
    item: NameQ = "",
) -> HTMLResponse:
    """Show one network: graph, stuck points, TTS/TTR, CO2, scenario runner and alerts."""
    tenant = enterprise or settings.enterprise
    store = get_chain_store(request, historian)
    context = await run_in_threadpool(
        _network_context, request, store, tenant, name, region, industry, item
    )
    if context is None:
        return _render(
            request,
            "not_found.html",
            {"what": f"no supply network named {name!r}", "enterprise": tenant},
            status_code=404,
        )
    context.update(
        {
            "nav_here": "/chain",
            "enterprise": tenant,
            "name": name,
            "query": f"enterprise={quote(tenant, safe='')}" if enterprise else "",
            "can_run": _may(request, Need.operator, tenant),
            "csrf_token": _csrf_token(request),
        }
    )
    return _render(request, "chain_network.html", context)


@router.get("/parts/chain/{name}/scenario", response_class=HTMLResponse)
def chain_scenario_part(
    request: Request,
    name: str,
    historian: HistorianDep,
    settings: SettingsDep,
    scenario: NameQ,
    enterprise: EnterpriseQ = None,
) -> HTMLResponse:
    """Return one saved scenario's results (the fragment the runner shows after a run)."""
    tenant = enterprise or settings.enterprise
    store = get_chain_store(request, historian)
    try:
        result = store.scenario(tenant, name, scenario)
    except ChainNotFound as exc:
        return _render(
            request,
            "not_found.html",
            {"what": str(exc), "enterprise": tenant},
            status_code=404,
        )
    return _render(request, "_chain_scenario.html", {"result": result})
