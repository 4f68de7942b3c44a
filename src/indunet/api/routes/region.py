"""Resumption monitor API: rates by group, trends, rankings, drill-down, watch lists, CSV.

The app opens ``region.duckdb`` on the first request (one `RegionStore` per app, kept on
``app.state``) and closes it when the app stops.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response

from indunet.region.rate import Filters, Rule, parse_by
from indunet.region.rate import headline as headline_text
from indunet.region.store import RegionStore, open_region_store

__all__ = ["chain_operator", "get_region_store", "ranked", "region_store_of", "router"]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    store = getattr(app.state, "region_store", None)
    if store is not None:
        store.close()
        app.state.region_store = None


def get_region_store(request: Request) -> RegionStore:
    """Return the app's region store, opening it on first use."""
    return region_store_of(request.app)


def region_store_of(app: FastAPI) -> RegionStore:
    """Return an app's region store, opening it on first use (routes and the uplink consumer)."""
    state = app.state
    store = getattr(state, "region_store", None)
    if store is None:
        lock = state.__dict__.setdefault("_region_lock", threading.Lock())
        with lock:
            store = getattr(state, "region_store", None)
            if store is None:
                settings = state.settings
                store = open_region_store(settings.region, settings.data_dir)
                state.region_store = store
    return store


def chain_operator(request: Request) -> None:
    """Check the caller may see cross-enterprise aggregates.

    The chain-operator role check goes here once the web issue brings sessions and roles
    (DESIGN §3: a chain operator sees only aggregates across enterprises; the drill-down list
    of named enterprises will need the operator's region/chain scope as well).
    """
    return None


router = APIRouter(
    prefix="/region",
    tags=["region"],
    dependencies=[Depends(chain_operator)],
    lifespan=_lifespan,
)
StoreDep = Annotated[RegionStore, Depends(get_region_store)]
By = Annotated[
    str | None,
    Query(description="Group by: province, city, industry, section, size, above_designated_size."),
]
Theta = Annotated[float | None, Query(gt=0, le=5, description="θ for this query.")]
Province = Annotated[str | None, Query(description="Provinces (comma list: Hubei, 湖北, 42).")]
City = Annotated[str | None, Query(description="One city.")]
Industry = Annotated[str | None, Query(description="GB/T 4754 sections/divisions (C, C36).")]
Size = Annotated[str | None, Query(description="Sizes (large, medium, small, micro).")]
Above = Annotated[bool | None, Query(description="Only above/below designated size.")]


def _query(
    store: RegionStore,
    theta: float | None,
    province: str | None,
    city: str | None,
    industry: str | None,
    size: str | None,
    above: bool | None,
) -> tuple[Rule, Filters]:
    rule = Rule.from_settings(store.settings, theta=theta)
    filters = Filters.parse(province, city, industry, size, above)
    return rule, filters


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _rate(
    store: RegionStore,
    day: date,
    by: str | None,
    theta: float | None,
    province: str | None,
    city: str | None,
    industry: str | None,
    size: str | None,
    above: bool | None,
) -> tuple[Any, dict[str, Any]]:
    groups = parse_by(by)
    rule, filters = _query(store, theta, province, city, industry, size, above)
    frame, source = store.rate(day, groups, filters, rule)
    meta = {
        "date": day,
        "by": groups,
        "rule": rule.as_dict(),
        "filters": filters.as_dict(),
        "source": source,
    }
    return frame, meta


@router.get("/rate")
def rate(
    store: StoreDep,
    day: Annotated[date, Query(alias="date", description="Day, YYYY-MM-DD.")],
    by: By = "province",
    theta: Theta = None,
    province: Province = None,
    city: City = None,
    industry: Industry = None,
    size: Size = None,
    above: Above = None,
) -> dict[str, Any]:
    """Return a day's resumption per group, the national total and the headline sentence."""
    groups = parse_by(by)
    rule, filters = _query(store, theta, province, city, industry, size, above)
    # one query for the national row and the provinces (the headline needs both)
    national, per_province, source = store.overview(day, filters, rule)
    rows = (
        per_province
        if groups == ["province"]
        else store.rate(day, groups, filters, rule)[0].to_dicts()
    )
    meta = {
        "date": day,
        "by": groups,
        "rule": rule.as_dict(),
        "filters": filters.as_dict(),
        "source": source,
    }
    text = f"{day}: " + headline_text(national or {}, per_province)
    return {**meta, "headline": text, "total": national, "rows": rows}


def ranked(
    rows: list[dict[str, Any]], order: str = "lowest", limit: int = 10, min_reporting: int = 1
) -> list[dict[str, Any]]:
    """Return the groups with a rate, lowest (or highest) first, leaving out small ones."""
    kept = [r for r in rows if r["rate"] is not None and r["reporting"] >= min_reporting]
    kept.sort(key=lambda r: r["rate"], reverse=order == "highest")
    return kept[:limit]


@router.get("/rate.csv", responses={200: {"content": {"text/csv": {}}}})
def rate_csv(
    store: StoreDep,
    day: Annotated[date, Query(alias="date", description="Day, YYYY-MM-DD.")],
    by: By = "province",
    theta: Theta = None,
    province: Province = None,
    city: City = None,
    industry: Industry = None,
    size: Size = None,
    above: Above = None,
) -> Response:
    """Return a day's resumption per group as CSV."""
    frame, _ = _rate(store, day, by, theta, province, city, industry, size, above)
    return _csv(frame.write_csv(), f"resumption-{day}.csv")


@router.get("/trend", responses={200: {"content": {"text/csv": {}}}})  # format=csv
def trend(
    store: StoreDep,
    start: Annotated[date, Query(description="First day.")],
    end: Annotated[date, Query(description="Last day (inclusive).")],
    by: By = None,
    theta: Theta = None,
    province: Province = None,
    industry: Industry = None,
    size: Size = None,
    above: Above = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    """Return the resumption of every day in a range per group (national when no ``by``)."""
    groups = parse_by(by)
    rule, filters = _query(store, theta, province, None, industry, size, above)
    frame, source = store.trend(start, end, groups, filters, rule)
    if format == "csv":
        return _csv(frame.write_csv(), f"resumption-{start}-{end}.csv")
    return {"start": start, "end": end, "by": groups, "source": source, "rows": frame.to_dicts()}


@router.get("/rankings")
def rankings(
    store: StoreDep,
    day: Annotated[date, Query(alias="date", description="Day, YYYY-MM-DD.")],
    by: Annotated[str, Query(pattern="^(province|city|industry|section|size)$")] = "province",
    order: Annotated[str, Query(pattern="^(lowest|highest)$")] = "lowest",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    min_reporting: Annotated[int, Query(ge=1, description="Leave out smaller groups.")] = 1,
    size: Size = None,
    above: Above = None,
) -> dict[str, Any]:
    """Return the lowest (or highest) groups of a day: lagging provinces or industries."""
    frame, meta = _rate(store, day, by, None, None, None, None, size, above)
    rows = ranked(frame.to_dicts(), order, limit, min_reporting)
    return {**meta, "order": order, "rows": rows}


@router.get("/enterprises", responses={200: {"content": {"text/csv": {}}}})  # format=csv
def enterprises(
    store: StoreDep,
    day: Annotated[date, Query(alias="date", description="Day, YYYY-MM-DD.")],
    state: Annotated[str, Query(pattern="^(stopped|unknown|not_resumed|resumed)$")] = "not_resumed",
    theta: Theta = None,
    province: Province = None,
    city: City = None,
    industry: Industry = None,
    size: Size = None,
    above: Above = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    """Drill down: the enterprises of a group in a state on a day, biggest baseline first."""
    rule, filters = _query(store, theta, province, city, industry, size, above)
    frame, total = store.enterprises(
        day, state=state, filters=filters, rule=rule, limit=limit, offset=offset
    )
    if format == "csv":
        return _csv(frame.write_csv(), f"{state}-{day}.csv")
    return {
        "date": day,
        "state": state,
        "filters": filters.as_dict(),
        "total": total,
        "offset": offset,
        "rows": frame.to_dicts(),
    }


@router.get("/watchlist")
def watchlist(
    store: StoreDep,
    day: Annotated[date, Query(alias="date", description="Day, YYYY-MM-DD.")],
    key: Annotated[str | None, Query(description="One key enterprise id.")] = None,
) -> dict[str, Any]:
    """Return key enterprises with the state of each one's suppliers."""
    return {"date": day, "rows": store.watchlist(day, key=key)}


@router.get("/headline")
def headline(
    store: StoreDep,
    day: Annotated[date, Query(alias="date", description="Day, YYYY-MM-DD.")],
    size: Size = None,
    above: Above = None,
) -> dict[str, Any]:
    """Return the day's sentence ("Resumption 52.0 %, +2.2 points; Guangdong 95.3 % …")."""
    rule, filters = _query(store, None, None, None, None, size, above)
    return {"date": day, "headline": store.headline(day, filters, rule)}


@router.get("/status")
def status(store: StoreDep) -> dict[str, Any]:
    """Return what the monitor holds: enterprises, readings, days, kept-aside rows, rule."""
    return store.stats()


@router.get("/quarantine")
def quarantine(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    kind: Annotated[str | None, Query(pattern="^(registry|readings)$")] = None,
) -> dict[str, Any]:
    """Return rows kept aside at import (newest first) with the reason."""
    rows, total = store.quarantine(limit=limit, kind=kind)
    return {"total": total, "rows": rows}
