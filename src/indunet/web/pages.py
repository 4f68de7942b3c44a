"""Server-rendered pages: the plant tree, live machine cards and a machine's page.

Pages read the historian through the same calls as the JSON API (never SQL); charts fetch
``/api/v1/series`` with ``width`` so each one gets about its pixel width in points. A machine's
page also draws its state timeline (``/api/v1/states``) and today's OEE losses
(``/api/v1/oee``), lists its recent stops with a form to give them a reason (operators only) and
embeds its alarms (``/parts/alarms``). The drill-down pages (site, area, line) are in
`indunet.web.drill`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from indunet import __version__
from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.plant import get_plant_store
from indunet.auth.model import Need, decide
from indunet.config import Settings
from indunet.errors import DataError
from indunet.plant import report
from indunet.store import Historian
from indunet.uns import MachinePath, TagPath
from indunet.web import drill
from indunet.web.fleet import machine_rul
from indunet.web.plant_tree import (
    MachineCard,
    PlantView,
    display_name,
    format_age,
    machine_card,
    plant_view,
    scope_url,
)

__all__ = ["RANGES", "STATIC_DIR", "TEMPLATES_DIR", "build_templates", "router", "static_files"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
#: time ranges a machine page offers, in ms
RANGES = {"15m": 15 * 60_000, "1h": 3_600_000, "6h": 6 * 3_600_000, "24h": 24 * 3_600_000}
RangeName = Literal["15m", "1h", "6h", "24h"]
#: how often the live parts of a page are fetched again, s
POLL_S = 2
#: how far back a machine page lists stops to give a reason, and at most how many
STOPS_BACK_MS = 24 * 3_600_000
STOPS_SHOWN = 20

router = APIRouter(include_in_schema=False, tags=["web"])
router.include_router(drill.router)


def build_templates() -> Jinja2Templates:
    """Return the page templates (autoescaped)."""
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    templates.env.trim_blocks = templates.env.lstrip_blocks = True
    templates.env.globals.update(
        version=__version__, poll_s=POLL_S, ranges=list(RANGES), scope_url=scope_url
    )
    templates.env.filters.update(
        duration=duration_text, late=late_text, pieces=pieces_text, display_name=display_name
    )
    return templates


#: units counted in whole pieces (shown without decimals)
PIECE_UNITS = frozenset({"", "pc", "pcs", "piece", "pieces", "ea", "each", "unit", "units"})


def duration_text(ms: float | None) -> str:
    """Return a duration in plain words: "45 s", "12 min", "3 h 20 min", "2 d 4 h"."""
    if ms is None:
        return "—"
    s = int(max(ms, 0) // 1000)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86_400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def late_text(days: float | None) -> str:
    """Return how late something is in plain words: "3 h late", "2 d 4 h late"."""
    if days is None:
        return "late"
    return f"{duration_text(days * 86_400_000)} late"


def pieces_text(value: float | None, unit: str | None = None) -> str:
    """Return a quantity: whole pieces without decimals, other units as they are ("12.5 kg")."""
    if value is None:
        return "—"
    if (unit or "").strip().lower() in PIECE_UNITS:
        return f"{round(value):,}"
    return f"{value:,.6g}"


def static_files() -> StaticFiles:
    """Return the static files app (stylesheet, scripts, vendored ECharts and htmx)."""
    return StaticFiles(directory=STATIC_DIR)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _plant(historian: Historian, settings: Settings) -> PlantView:
    enterprise = settings.enterprise
    tags = historian.tags(enterprise, limit=1_000_000)
    latest = historian.latest(enterprise).to_pylist()
    return plant_view(enterprise, tags, latest, _now_ms())


def _machine(historian: Historian, settings: Settings, path: MachinePath) -> MachineCard | None:
    prefix = str(path)
    tags = historian.tags(settings.enterprise, prefix, limit=100_000)
    if not tags:
        return None
    latest = {r["tag"]: r for r in historian.latest(settings.enterprise, prefix).to_pylist()}
    pairs = [(TagPath.parse(t.path).tag, t) for t in tags]
    return machine_card(path, pairs, latest, _now_ms())


def _not_found(request: Request, settings: Settings, what: str) -> HTMLResponse:
    context = {"what": what, "enterprise": settings.enterprise}
    return _render(request, "not_found.html", context, status_code=404)


def _machine_path(site: str, area: str, line: str, machine: str) -> MachinePath | str:
    """Return the machine path, or the reason it is not a valid one."""
    try:
        return MachinePath(site, area, line, machine)
    except DataError as exc:
        return str(exc)


@router.get("/plant", response_class=HTMLResponse)
def plant_page(request: Request, historian: HistorianDep, settings: SettingsDep) -> HTMLResponse:
    """Show the plant tree: every machine's card with its latest values, refreshed live."""
    return _render(
        request, "plant.html", {"plant": _plant(historian, settings), "nav_here": "/plant"}
    )


@router.get("/parts/plant", response_class=HTMLResponse)
def plant_part(request: Request, historian: HistorianDep, settings: SettingsDep) -> HTMLResponse:
    """Return the plant tree fragment the home page polls."""
    return _render(request, "_plant_tree.html", {"plant": _plant(historian, settings)})


@router.get("/machine/{site}/{area}/{line}/{machine}", response_class=HTMLResponse)
def machine_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    site: str,
    area: str,
    line: str,
    machine: str,
    range_: Annotated[
        RangeName, Query(alias="range", description="Time range of the charts.")
    ] = "1h",
) -> HTMLResponse:
    """Show one machine: live readings and a zoomable chart per numeric tag."""
    path = _machine_path(site, area, line, machine)
    if isinstance(path, str):
        return _not_found(request, settings, path)
    card = _machine(historian, settings, path)
    store = get_plant_store(request, historian)
    plant = store.effective(settings.enterprise)
    machine_id = str(path)
    configured = next((m for m in plant.machines if m.id == machine_id), None)
    if card is None and configured is None:
        return _not_found(request, settings, f"machine {path} is not known")
    if card is None:  # configured, no data yet
        card = machine_card(path, [], {}, _now_ms())
    now = _now_ms()
    stops: list[dict] = []
    if configured is not None:
        found = report.stops_report(
            store, plant, settings.enterprise, machine_id, now - STOPS_BACK_MS, now
        )
        for row in sorted(found, key=lambda r: -r["start_ms"])[:STOPS_SHOWN]:
            stops.append(
                {
                    **row,
                    "duration": format_age(row["duration_ms"]),
                    "ago": format_age(now - row["start_ms"]),
                }
            )
    service = getattr(request.app.state, "alarms", None)
    anomalies = (
        [] if service is None else service.machine_anomalies(machine_id, now - RANGES["24h"])
    )
    context = {
        "card": card,
        "anomalies": anomalies,
        "enterprise": settings.enterprise,
        "range": range_,
        "range_ms": RANGES[range_],
        "now_ms": now,
        "configured": configured is not None,
        "today_ms": drill.day_start_ms(plant.site(path.site).calendar.zone, now),
        "stops": stops,
        "reasons": plant.reasons.reasons,
        "can_assign": _may(request, settings, Need.operator, machine_id),
        "csrf_token": _csrf_token(request),
        "rul": machine_rul(request, historian, settings.enterprise, machine_id),
    }
    return _render(request, "machine.html", context)


def _may(request: Request, settings: Settings, need: Need, machine: str) -> bool:
    """Return whether the caller may do what ``need`` allows on this machine (forms shown)."""
    if not settings.auth.required:
        return True
    principal = getattr(request.state, "principal", None)
    decision = decide(
        need, principal, enterprise=settings.enterprise, asset_names={"machine": machine}
    )
    return decision.allowed


def _csrf_token(request: Request) -> str:
    """Return the session's CSRF token for the page's scripts ("" without a session)."""
    principal = getattr(request.state, "principal", None)
    return (principal.csrf_token or "") if principal is not None else ""


@router.get("/parts/machine/{site}/{area}/{line}/{machine}", response_class=HTMLResponse)
def machine_part(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    site: str,
    area: str,
    line: str,
    machine: str,
) -> HTMLResponse:
    """Return a machine's readings fragment the machine page polls."""
    path = _machine_path(site, area, line, machine)
    if isinstance(path, str):
        return _not_found(request, settings, path)
    card = _machine(historian, settings, path)
    if card is None:
        return _not_found(request, settings, f"machine {path} is not known")
    return _render(request, "_machine_readings.html", {"card": card})
