"""Wall screens (``/wall/<scope>``), the Andon phone page (``/andon``) and the report archive.

A wall page is a kiosk view of a site, area or line: no navigation, big type sized from the
screen's height (1080p and 4K alike), views rotating (line status with each machine's power,
Andon calls, OEE vs target, loss Pareto), and active Andon calls always on top.

The page comes rendered from the server, so it works without JavaScript too (it then reloads
itself every few seconds and rotates its views by reloading). With JavaScript it follows the
wall's event stream ``/api/v1/wall-events/<scope>`` (values, machine states and Andon calls
under the scope, as server-sent events): a power reading or state shows as it is written, a
call as it is raised, and the whole wall (``/api/v1/wall/<scope>``: OEE, Pareto) is refreshed
on a state or call event and every 15 s. When the stream drops, the wall polls every 1–5 s
until it is back. A lost link shows a full-width "link lost" bar and retries until the server is
back. Screens sign in with a display key (`indunet.auth.display`): the first visit carries
``?display_key=…``; the answer sets a long-lived HttpOnly cookie and redirects to the clean URL.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi import Query as Q
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.events import sse_response
from indunet.api.routes.plant import StoreDep, _open_part, _watcher, current_state
from indunet.api.routes.shift import AndonCall, andon_store
from indunet.auth.display import DISPLAY_COOKIE
from indunet.errors import DataError
from indunet.plant.report import oee_report, scope_machines
from indunet.plant.shift_log import ReportArchive
from indunet.plant.shift_report import find_window, top_losses

__all__ = ["router", "wall_data"]

router = APIRouter(include_in_schema=False, tags=["web"])
api_router = APIRouter(tags=["wall"])
VIEWS = ("status", "andon", "oee", "pareto")
DISPLAY_COOKIE_S = 400 * 86_400
#: OEE and Pareto of a wall are computed at most this often per scope (state and calls: always)
OEE_CACHE_S = 5.0
_cache_lock = threading.Lock()


def _now() -> int:
    return int(time.time() * 1000)


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, name, context, status_code=status_code
    )


@router.get("/wall/{path:path}", response_class=HTMLResponse)
def wall_page(
    path: str,
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    views: Annotated[str, Q(max_length=100)] = ",".join(VIEWS),
    rotate: Annotated[int, Q(ge=0, le=600, description="Seconds per view; 0 = no rotation")] = 15,
    every: Annotated[float, Q(ge=1, le=5, description="Seconds between updates")] = 2,
    at: Annotated[int, Q(ge=0, le=100, description="The view shown first (index)")] = 0,
    enterprise: Annotated[str | None, Q()] = None,
) -> Response:
    """Show a wall screen of a site, area or line."""
    key = request.query_params.get("display_key")
    if key:  # first visit of a screen: keep the key in a cookie, drop it from the address
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "display_key"]
        target = f"/wall/{path}" + (f"?{urlencode(rest)}" if rest else "")
        out = RedirectResponse(target, status_code=303)
        out.set_cookie(
            DISPLAY_COOKIE, key, max_age=DISPLAY_COOKIE_S, httponly=True, samesite="lax",
            secure=request.url.scheme == "https", path="/",
        )  # fmt: skip
        return out
    ent = enterprise or settings.enterprise
    scope = path.strip("/")
    try:
        scope_machines(store.effective(ent), scope)
    except DataError as exc:
        raise HTTPException(404, str(exc)) from exc
    chosen = [v for v in views.split(",") if v in VIEWS] or list(VIEWS)
    query = f"?{urlencode({'enterprise': ent})}" if enterprise else ""
    here = at % len(chosen)
    # without JavaScript the page reloads itself: the next view after `rotate` s, else the same
    following = [(k, v) for k, v in request.query_params.multi_items() if k != "at"]
    following.append(("at", str((here + 1) % len(chosen) if rotate else here)))
    data = wall_data(request, store, historian, ent, scope, settings)
    return _render(
        request,
        "wall.html",
        {
            "scope": scope,
            "views": chosen,
            "here": chosen[here],
            "rotate_s": rotate,
            "every_s": every,
            "reload_s": max(int(rotate or every), 1),
            "reload_url": f"/wall/{path}?{urlencode(following)}",
            "data_url": f"/api/v1/wall/{scope}{query}",
            # the server's plant only: the event stream carries no other tenant's events
            "events_url": f"/api/v1/wall-events/{scope}" if ent == settings.enterprise else "",
            "d": data,
            "pct": _pct,
            "ago": _ago,
        },
    )


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _ago(ms: int | None, now_ms: int) -> str:
    s = max(0, round((now_ms - (ms or now_ms)) / 1000))
    return f"{s} s" if s < 60 else f"{s // 60} min"


@api_router.get("/wall-events/{path:path}", include_in_schema=False)
async def wall_events(
    path: str, request: Request, store: StoreDep, settings: SettingsDep
) -> Response:
    """The wall's live events: values, machine states and Andon calls under its scope (SSE)."""
    scope = path.strip("/")
    try:
        scope_machines(store.effective(settings.enterprise), scope)
    except DataError as exc:
        raise HTTPException(404, str(exc)) from exc
    return sse_response(request, frozenset({"values", "state", "andon"}), scope)


def _states(
    request: Request, store: Any, historian: Any, ent: str, scope: str, machines: list[Any]
) -> list[dict[str, Any]]:
    watcher = _watcher(request)
    latest: dict[str, float | None] = {}
    if any(m.power_tag for m in machines):
        try:
            table = historian.latest(ent, scope)
            latest = dict(
                zip(table.column("tag").to_pylist(), table.column("value").to_pylist(), strict=True)
            )
        except DataError:
            latest = {}
    out = []
    for m in machines:
        state, since = current_state(watcher, store, ent, m.id)
        tag = f"{m.id}/{m.power_tag}" if m.power_tag else None
        out.append(
            {
                "id": m.id,
                "line": m.line,
                "state": state or "unknown",
                "since_ms": since,
                "power_tag": tag,
                "power": latest.get(tag) if tag else None,
                "unit": m.power_unit,
            }
        )
    return out


def _shift_oee(request: Request, store: Any, historian: Any, ent: str, scope: str, settings: Any):
    """Return (cached briefly) the running shift's OEE and loss Pareto of a scope."""
    cache = request.app.state.__dict__.setdefault("_wall_oee", {})
    key = (ent, scope)
    now = time.monotonic()
    with _cache_lock:
        hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    plant = store.effective(ent)
    now_ms = _now()
    try:
        window = find_window(plant, scope, "current", now_ms=now_ms)
    except DataError:
        window = None
    if window is None:
        found: dict[str, Any] = {"shift": None, "oee": None, "target": None, "losses": []}
    else:
        site = plant.site(window.site)
        r = oee_report(
            store, historian, plant, ent, scope, window.start_ms, max(now_ms, window.start_ms + 1),
            open_part=_open_part(request, ent, settings),
        )  # fmt: skip
        t = r["total"]
        found = {
            "shift": window.label,
            "oee": {k: t[k] for k in ("oee", "availability", "performance", "quality", "good")},
            "target": site.oee_target,
            "losses": top_losses(t["reason_ms"], first=6),
        }
    with _cache_lock:
        cache[key] = (now + OEE_CACHE_S, found)
    return found


def wall_data(
    request: Request, store: Any, historian: Any, ent: str, scope: str, settings: Any
) -> dict[str, Any]:
    """Return what a wall screen shows: machine states, active Andon calls, OEE, Pareto."""
    machines = scope_machines(store.effective(ent), scope)
    calls = andon_store(request, historian).calls(ent, scope=scope, state="active", limit=50)
    return {
        "scope": scope,
        "now_ms": _now(),
        "machines": _states(request, store, historian, ent, scope, machines),
        "andon": calls,
        **_shift_oee(request, store, historian, ent, scope, settings),
    }


class WallData(BaseModel):
    """What a wall screen shows."""

    scope: str
    now_ms: int
    machines: list[dict[str, Any]] = Field(
        description="id, line, state, since_ms, power_tag, power (its latest value), unit"
    )
    andon: list[AndonCall]
    shift: str | None = Field(description="The running shift's label")
    oee: dict[str, float | None] | None
    target: float | None
    losses: list[dict[str, Any]]


@api_router.get("/wall/{path:path}", response_model=WallData)
async def wall_json(
    path: str,
    request: Request,
    store: StoreDep,
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: Annotated[str | None, Q()] = None,
) -> dict[str, Any]:
    """Return a wall screen's data (display keys and viewers)."""
    ent = enterprise or settings.enterprise
    try:
        return await run_in_threadpool(
            wall_data, request, store, historian, ent, path.strip("/"), settings
        )
    except DataError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/andon", response_class=HTMLResponse)
def andon_page(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    scope: Annotated[str, Q(max_length=200)] = "",
    enterprise: Annotated[str | None, Q()] = None,
) -> HTMLResponse:
    """The Andon page for a phone: raise a call for a line or machine, take and resolve calls."""
    ent = enterprise or settings.enterprise
    plant = store.effective(ent)
    lines = sorted({m.line for m in plant.machines})
    line = scope.strip("/")
    if line and line not in lines:
        raise HTTPException(404, f"line {line!r} is not configured")
    machines = [m.id for m in plant.machines if m.line == line] if line else []
    principal = getattr(request.state, "principal", None)
    return _render(
        request,
        "andon.html",
        {
            "enterprise": ent,
            "lines": lines,
            "line": line,
            "machines": machines,
            "csrf": principal.csrf_token if principal is not None else "",
            "reasons": ("material", "maintenance", "quality", "help"),
        },
    )


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    scope: Annotated[str | None, Q(max_length=200)] = None,
    enterprise: Annotated[str | None, Q()] = None,
) -> HTMLResponse:
    """The report archive: every shift report made, newest first, with its downloads."""
    ent = enterprise or settings.enterprise
    rows = ReportArchive(historian).list(ent, scope=scope, limit=300)
    return _render(request, "reports.html", {"enterprise": ent, "rows": rows, "scope": scope})


@router.get("/reports/{report_id}", response_class=HTMLResponse)
def report_page(
    report_id: str,
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: Annotated[str | None, Q()] = None,
) -> HTMLResponse:
    """One archived report, print-ready (the browser makes the PDF)."""
    ent = enterprise or settings.enterprise
    found = ReportArchive(historian).get(ent, report_id[:64])
    if found is None:
        raise HTTPException(404, f"no archived report {report_id[:64]!r}")
    from indunet.plant.shift_report import render_html

    rid = report_id[:64]
    links = [(f.upper(), f"/api/v1/reports/{rid}?format={f}") for f in ("xlsx", "csv")]
    return HTMLResponse(render_html(found["doc"], links=[("Archive", "/reports"), *links]))
