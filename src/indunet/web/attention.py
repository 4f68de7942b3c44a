"""Exception-first views: what is stopped now and why, and which machines and lines are worst.

``/attention`` lists the machines of a scope (the whole enterprise, a site, an area or a line)
by state now, longest stopped first, each with since when and its reason ("Unexplained" links
to the machine page's reason picker), and ranks machines and lines by OEE, downtime or kWh per
good part for today, this shift or yesterday. ``/parts/attention`` is the short form the
overview and the site pages lead with: the longest stops and the five worst machines today,
each count linking to the full list.

Rankings come from `oee_report` and `energy_report` (the one code path of every view) and are
cached per scope and period like the overview's site OEE (`SiteOeeCache`: served while one
background thread refreshes them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.plant import get_plant_store
from indunet.errors import DataError
from indunet.plant import report
from indunet.plant.attention import (
    PERIODS,
    STOPPED,
    MachineNow,
    RankRow,
    machines_now,
    period_span,
    ranking,
)
from indunet.plant.today import SiteOeeCache
from indunet.uns import MachinePath
from indunet.web.overview import DEFAULT_OEE_TARGET
from indunet.web.pages import duration_text
from indunet.web.plant_tree import machine_url, scope_url

__all__ = ["RANKING_TTL_MS", "Ranked", "duration_text", "router"]

router = APIRouter(include_in_schema=False, tags=["web"])
#: a scope's ranking is served this long before a background refresh, ms
RANKING_TTL_MS = 30_000
SHORT = 5  # rows the short form shows
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Ranked:
    """A scope's machines and lines ranked over a period (cached per scope and period)."""

    start_ms: int
    end_ms: int
    label: str
    machines: list[RankRow] = field(default_factory=list)
    lines: list[RankRow] = field(default_factory=list)
    note: str = ""


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def _machine_link(machine_id: str) -> str:
    return machine_url(MachinePath.parse(machine_id))


def _line_link(line: str) -> str:
    return scope_url(*line.split("/"))


def _compute(request: Request, historian: Any, enterprise: str, scope: str, period: str) -> Ranked:
    store = get_plant_store(request, historian)
    plant = store.effective(enterprise)
    site = scope.split("/", 1)[0] if scope else (plant.machines[0].site if plant.machines else "")
    start, end, label = period_span(plant.site(site).calendar, period, int(time.time() * 1000))  # type: ignore[arg-type]
    watcher = getattr(request.app.state, "plant_watcher", None)
    open_part = (
        watcher.open_segment if watcher is not None and watcher.enterprise == enterprise else None
    )
    try:
        doc = report.oee_report(
            store, historian, plant, enterprise, scope, start, end, open_part=open_part
        )
    except DataError as exc:
        return Ranked(start, end, label, note=str(exc))
    try:
        energy = report.energy_report(
            store,
            historian,
            plant,
            enterprise,
            scope,
            start,
            end,
            bucket="day",
            open_part=open_part,
        )
    except DataError:  # a machine without power or meter: no kWh per part in the ranking
        energy = None
    return Ranked(
        start,
        end,
        label,
        ranking(doc, energy, plant, level="machine"),
        ranking(doc, energy, plant, level="line"),
    )


def ranked(request: Request, historian: Any, enterprise: str, scope: str, period: str) -> Ranked:
    """Return the scope's ranking over the period, from the cache when fresh enough."""
    cache = request.app.state.__dict__.setdefault("ranking_cache", SiteOeeCache(RANKING_TTL_MS))
    store = get_plant_store(request, historian)
    plant = store.effective(enterprise)
    site = scope.split("/", 1)[0] if scope else (plant.machines[0].site if plant.machines else "")
    start = period_span(plant.site(site).calendar, period, int(time.time() * 1000))[0]  # type: ignore[arg-type]
    return cache.get(
        enterprise,
        f"{scope}\x00{period}",
        start,
        lambda: _compute(request, historian, enterprise, scope, period),  # type: ignore[arg-type,return-value]
    )


def now_list(request: Request, historian: Any, enterprise: str, scope: str) -> list[MachineNow]:
    """Return the scope's machines by state now, longest stopped first."""
    store = get_plant_store(request, historian)
    plant = store.effective(enterprise)
    now = int(time.time() * 1000)
    latest = {r["tag"]: r for r in historian.latest(enterprise, scope).to_pylist()}
    recent = store.timelines(enterprise, scope, now - DAY_MS, now + 1)
    watcher = getattr(request.app.state, "plant_watcher", None)
    current = watcher.current if watcher is not None and watcher.enterprise == enterprise else None
    return machines_now(plant, scope, now, latest=latest, recent=recent, current=current)


def _context(request: Request, historian: Any, enterprise: str, scope: str, period: str,
             state: str, sort: str, short: bool) -> dict[str, Any]:  # fmt: skip
    now = int(time.time() * 1000)
    machines = now_list(request, historian, enterprise, scope)
    wanted = STOPPED if state == "stopped" else (state,) if state != "all" else None
    shown = [m for m in machines if wanted is None or m.state in wanted]
    stopped = [m for m in machines if m.state in STOPPED]
    rank = ranked(request, historian, enterprise, scope, period)
    # the same machines the period before (today → yesterday, this shift → today, yesterday → —)
    before = {"today": "yesterday", "shift": "today"}.get(period)
    prev: dict[str, float | None] = {}
    if before is not None and not short:
        earlier = ranked(request, historian, enterprise, scope, before)
        prev = {r.key: r.oee for r in (*earlier.machines, *earlier.lines)}
    plant = get_plant_store(request, historian).effective(enterprise)
    targets = {
        name: (site.oee_target if site.oee_target is not None else DEFAULT_OEE_TARGET)
        for name, site in plant.sites.items()
    }

    def target(key: str) -> float:
        return targets.get(key.split("/", 1)[0], DEFAULT_OEE_TARGET)

    def change(r: RankRow) -> str:
        was = prev.get(r.key)
        if r.oee is None or was is None:
            return ""
        return f"{(r.oee - was) * 100:+.1f} pts"

    rows_m = _sorted(rank.machines, sort)
    rows_l = _sorted(rank.lines, sort)

    def link(**kw: str) -> str:
        q = {"scope": scope, "period": period, "state": state, "sort": sort, **kw}
        return "/attention?" + urlencode({k: v for k, v in q.items() if v})

    from indunet.api.routes.shift import andon_store
    from indunet.plant.andon import andon_stats

    store = andon_store(request, historian)
    active = store.calls(enterprise, scope=scope, state="active")
    andon = andon_stats(
        store.calls(enterprise, scope=scope, start_ms=rank.start_ms, end_ms=rank.end_ms)
    )
    lines = {m.line for m in plant.machines}
    return {
        "andon": andon,
        "andon_active": active,
        # the Andon page is a line's (or the choice of lines)
        "andon_link": "/andon" + ("?" + urlencode({"scope": scope}) if scope in lines else ""),
        "scope": scope,
        "period": period,
        "state": state,
        "sort": sort,
        "now_ms": now,
        "machines": shown[:SHORT] if short else shown,
        "shown_total": len(shown),
        "stopped_total": len(stopped),
        "counts": {s: sum(1 for m in machines if m.state == s) for s in ("running", *STOPPED)},
        "rank": rank,
        "before": before,
        "change": change,
        "target": target,
        "rank_machines": rows_m[:SHORT] if short else rows_m,
        "rank_lines": rows_l[:SHORT] if short else rows_l,
        "short": short,
        "periods": PERIODS,
        "link": link,
        "machine_link": _machine_link,
        "line_link": _line_link,
        "duration": duration_text,
        "pct": _pct,
        "nav_here": "/attention",
        "enterprise": enterprise,
    }


def _sorted(rows: list[RankRow], sort: str) -> list[RankRow]:
    if sort == "downtime":
        return sorted(rows, key=lambda r: (-r.stop_ms, r.key))
    if sort == "kwh":
        return sorted(
            rows, key=lambda r: (r.kwh_per_good_part is None, -(r.kwh_per_good_part or 0), r.key)
        )
    return rows  # ranking() already put the worst OEE first


Scope = Annotated[str, Query(max_length=400)]
PeriodQ = Literal["today", "shift", "yesterday"]
StateQ = Literal["stopped", "all", "running", "idle", "off", "offline", "unknown"]
SortQ = Literal["oee", "downtime", "kwh"]


def _clean(scope: str) -> str:
    return scope.strip().strip("/")


@router.get("/attention", response_class=HTMLResponse)
def attention_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Scope = "",
    period: PeriodQ = "today",
    state: StateQ = "stopped",
    sort: SortQ = "oee",
) -> HTMLResponse:
    """Show the machines stopped now (or in a state) and the ranking of machines and lines."""
    ctx = _context(
        request, historian, settings.enterprise, _clean(scope), period, state, sort, False
    )
    return request.app.state.templates.TemplateResponse(request, "attention.html", ctx)


@router.get("/parts/attention", response_class=HTMLResponse)
def attention_part(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Scope = "",
) -> HTMLResponse:
    """Return the short form: the longest stops now and the five worst machines today."""
    ctx = _context(
        request, historian, settings.enterprise, _clean(scope), "today", "stopped", "oee", True
    )
    return request.app.state.templates.TemplateResponse(request, "_attention.html", ctx)


ByQ = Literal["reason", "machine", "line"]


@router.get("/losses", response_class=HTMLResponse)
def losses_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Scope = "",
    period: PeriodQ = "today",
    by: ByQ = "reason",
    micro_stop_s: Annotated[float, Query(ge=0, le=3600)] = 120.0,
    slow_factor: Annotated[float, Query(ge=1, le=100)] = 1.7,
) -> HTMLResponse:
    """Show the downtime Pareto (by reason, machine or line), OEE and TEEP, short stops."""
    from indunet.plant.losses import downtime_pareto, short_stops

    enterprise = settings.enterprise
    scope = _clean(scope)
    store = get_plant_store(request, historian)
    plant = store.effective(enterprise)
    site = scope.split("/", 1)[0] if scope else (plant.machines[0].site if plant.machines else "")
    start, end, label = period_span(plant.site(site).calendar, period, int(time.time() * 1000))
    watcher = getattr(request.app.state, "plant_watcher", None)
    ours = watcher is not None and watcher.enterprise == enterprise
    note, pareto, short, running = "", None, None, None
    try:
        doc = report.oee_report(
            store, historian, plant, enterprise, scope, start, end,
            open_part=watcher.open_segment if ours else None,
        )  # fmt: skip
        pareto = downtime_pareto(doc, by=by, tree=plant.reasons)
        short = short_stops(
            report.stops_report(store, plant, enterprise, scope, start, end), micro_stop_s
        )
        running = report.running_loss_report(
            store, historian, plant, enterprise, scope, start, end, slow_factor=slow_factor,
            open_part=watcher.open_segment if ours else None,
        )  # fmt: skip
    except DataError as exc:
        note = str(exc)

    def link(**kw: Any) -> str:
        q = {"scope": scope, "period": period, "by": by, **kw}
        return "/losses?" + urlencode({k: v for k, v in q.items() if v})

    ctx = {
        "scope": scope, "period": period, "by": by, "label": label, "pareto": pareto,
        "short_stops": short, "running": running, "note": note, "periods": PERIODS, "link": link,
        "duration": duration_text, "pct": _pct, "machine_link": _machine_link,
        "line_link": _line_link, "nav_here": "/losses", "enterprise": enterprise,
        "api": "/api/v1/losses?" + urlencode(dict(scope=scope, start=start, end=end, by=by)),
    }  # fmt: skip
    return request.app.state.templates.TemplateResponse(request, "losses.html", ctx)
