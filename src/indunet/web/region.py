"""The regional resumption monitor's pages (chain operators): map, headline, trend, drill-down.

Pages call the same `RegionStore` methods as ``/api/v1/region/…`` (never SQL here). The map's
shapes are a vendored file (``static/china-provinces.json``, from the echarts 4.9.0 package);
its features are named by short Chinese province names, mapped to the registry's English names
with `MAP_NAMES` (ECharts ``nameMap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from indunet.api.deps import HistorianDep
from indunet.api.routes.federation import register_enterprises, uplinks_of
from indunet.api.routes.region import get_region_store, ranked
from indunet.errors import DataError
from indunet.region.rate import Filters, Rule, headline
from indunet.region.registry import province_code, provinces
from indunet.region.store import RegionStore

__all__ = ["MAP_NAMES", "PAGE_SIZE", "THETAS", "router"]

#: θ values the pages offer (the settings' own θ is always offered too)
THETAS = (0.2, 0.3, 0.4, 0.5)
#: rows per page of the not-yet-resumed list
PAGE_SIZE = 50
#: longest trend a page draws, days
TREND_DAYS = 400
_ZH_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")


def _short_zh(name_zh: str) -> str:
    for suffix in _ZH_SUFFIXES:
        if name_zh.endswith(suffix):
            return name_zh[: -len(suffix)]
    return name_zh


#: the map file's feature names (short Chinese names, e.g. 广西) -> registry province names
MAP_NAMES: dict[str, str] = {_short_zh(p.name_zh): p.name for p in provinces().values()}

router = APIRouter(include_in_schema=False, tags=["web"])


@dataclass(frozen=True, slots=True)
class _Choice:
    """What the page shows: the day, θ and whether the data is there at all."""

    day: date | None
    theta: float
    rule: Rule
    first: date | None
    last: date | None
    status: dict[str, Any]


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates = request.app.state.templates
    context = {"nav_here": "/region", **context}
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _choice(store: RegionStore, day: date | None, theta: float | None) -> _Choice:
    status = store.stats()
    first = date.fromisoformat(status["first_day"]) if status["first_day"] else None
    last = date.fromisoformat(status["last_day"]) if status["last_day"] else None
    full = store.last_full_day() or last
    if day is None:  # the last day most enterprises reported (not the live uplinks' alone)
        day = full
    if full is not None and day is not None:  # the trend ends there too, or at the chosen day
        last = max(full, day)
    rule = Rule.from_settings(store.settings, theta=theta)
    return _Choice(day, rule.theta, rule, first, last, status)


def _empty(request: Request, choice: _Choice) -> HTMLResponse | None:
    """Return the empty-state page when no nation is loaded (or it is still loading)."""
    loading = bool(getattr(request.app.state, "region_loading", False))
    if choice.day is not None and choice.status["enterprises"] and not loading:
        return None
    return _render(
        request,
        "region_empty.html",
        {"loading": loading, "status": choice.status},
    )


def _thetas(store: RegionStore, chosen: float) -> list[float]:
    return sorted({*THETAS, store.settings.theta, chosen})


def _trend(
    store: RegionStore, choice: _Choice, filters: Filters | None = None
) -> list[dict[str, Any]]:
    assert choice.first is not None and choice.last is not None
    start = max(choice.first, choice.last - timedelta(days=TREND_DAYS - 1))
    frame, _ = store.trend(start, choice.last, [], filters, choice.rule)
    return [
        {
            "day": str(r["day"]),
            "rate": _round(r["rate"], 2),
            "index": _round(100 * r["production_index"], 2)
            if r["production_index"] is not None
            else None,
        }
        for r in frame.to_dicts()
    ]


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _bad_request(request: Request, message: str) -> HTMLResponse:
    return _render(request, "region_empty.html", {"error": message, "status": None}, 422)


Day = Annotated[date | None, Query(alias="date", description="Day, YYYY-MM-DD.")]
Theta = Annotated[float | None, Query(gt=0, le=5, description="θ for this page.")]


@router.get("/region", response_class=HTMLResponse)
def region_page(
    request: Request, historian: HistorianDep, day: Day = None, theta: Theta = None
) -> HTMLResponse:
    """Show the nation on one day: headline, map, province table, trend and rankings.

    With plant uplinks (``[federation] url``) also the enterprises whose figures come live from
    their plants, each on its newest complete day, and the uplinks not registered yet.
    """
    store = get_region_store(request)
    choice = _choice(store, day, theta)
    empty = _empty(request, choice)
    if empty is not None:
        return empty
    assert choice.day is not None
    national, rows, source = store.overview(choice.day, None, choice.rule)
    text = f"{choice.day}: " + headline(national or {}, rows)
    industries, _ = store.rate(choice.day, ["industry"], None, choice.rule)
    min_reporting = max(1, (national or {}).get("reporting", 0) // 2000)
    map_rows = [
        {
            "name": r["province"],
            "value": _round(r["rate"], 1),
            "index": _round(r["production_index"], 3),
            "change": _round(r["change_pp"], 1),
            "reporting": r["reporting"],
        }
        for r in rows
    ]
    data = {
        "date": str(choice.day),
        "theta": choice.theta,
        "map": {"file": "/static/china-provinces.json", "names": MAP_NAMES, "rows": map_rows},
        "trend": _trend(store, choice),
    }
    context = {
        "choice": choice,
        "thetas": _thetas(store, choice.theta),
        "headline": text,
        "national": national,
        "rows": rows,
        "source": source,
        "lowest": ranked(rows, "lowest", 5, min_reporting),
        "lagging": ranked(industries.to_dicts(), "lowest", 5, min_reporting),
        "data": data,
        "uplinks": _uplinks(request, historian, choice),
        "csrf_token": _csrf_token(request),
    }
    return _render(request, "region.html", context)


def _federated(request: Request) -> bool:
    state = request.app.state
    return getattr(state, "uplink_consumer", None) is not None or bool(
        state.settings.federation.url
    )


def _uplinks(request: Request, historian: Any, choice: _Choice) -> dict[str, Any] | None:
    """Return the live uplinking enterprises (by the page's rule) when this is a region."""
    if not _federated(request):
        return None
    return uplinks_of(request, historian, rule=choice.rule)


def _csrf_token(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return (principal.csrf_token or "") if principal is not None else ""


FormText = Annotated[str, Form(min_length=1, max_length=200)]


@router.post("/region/uplinks/register")
def register_uplink(
    request: Request,
    historian: HistorianDep,
    enterprise_id: FormText,
    name: FormText,
    province: FormText,
    city: FormText,
    industry: FormText,
    size: FormText,
    baseline_kwh: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Register an uplinking enterprise from the region page's form, then show the page."""
    row = {"enterprise_id": enterprise_id, "name": name, "province": province, "city": city,
           "industry": industry, "size": size, "baseline_kwh": baseline_kwh or None}  # fmt: skip
    try:
        register_enterprises(request, historian, [row], "region page")
    except DataError as exc:
        return _bad_request(request, f"{enterprise_id} was not registered: {exc}")
    return RedirectResponse("/region#uplinks", status_code=303)


@router.get("/region/watchlist", response_class=HTMLResponse)
def watchlist_page(request: Request, day: Day = None, theta: Theta = None) -> HTMLResponse:
    """Show the key enterprises and the state of their suppliers on one day."""
    store = get_region_store(request)
    choice = _choice(store, day, theta)
    empty = _empty(request, choice)
    if empty is not None:
        return empty
    assert choice.day is not None
    rows = store.watchlist(choice.day, choice.rule)
    context = {"choice": choice, "thetas": _thetas(store, choice.theta), "rows": rows}
    return _render(request, "region_watchlist.html", context)


@router.get("/region/{name}", response_class=HTMLResponse)
def province_page(
    request: Request,
    name: Annotated[str, Path(description="Province: English or Chinese name, or code.")],
    day: Day = None,
    theta: Theta = None,
    state: Annotated[str, Query(pattern="^(not_resumed|stopped|unknown)$")] = "not_resumed",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Drill down into one province: cities, industries, sizes, trend and who to call."""
    try:
        code = province_code(name)
    except DataError as exc:
        return _bad_request(request, str(exc))
    store = get_region_store(request)
    choice = _choice(store, day, theta)
    empty = _empty(request, choice)
    if empty is not None:
        return empty
    assert choice.day is not None
    province = provinces()[code].name
    filters = Filters(provinces=[code])
    national, _, source = store.overview(choice.day, filters, choice.rule)
    tables = {
        by: store.rate(choice.day, [by], filters, choice.rule)[0].to_dicts()
        for by in ("city", "industry", "size")
    }
    listed, total = store.enterprises(
        choice.day,
        state=state,
        filters=filters,
        rule=choice.rule,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    pages = max(1, -(-total // PAGE_SIZE))
    data = {"date": str(choice.day), "theta": choice.theta, "trend": _trend(store, choice, filters)}
    context = {
        "choice": choice,
        "thetas": _thetas(store, choice.theta),
        "province": province,
        "national": national,
        "source": source,
        "tables": tables,
        "enterprises": listed.to_dicts(),
        "total": total,
        "state": state,
        "page": page,
        "pages": pages,
        "page_size": PAGE_SIZE,
        "data": data,
    }
    return _render(request, "region_province.html", context)
