"""The Energy page: kWh per site, line and machine, idle energy, kWh per good part and CO2.

Numbers come from `indunet.plant.report.energy_report`, the call behind ``/api/v1/energy``: a
day in hourly buckets (today by default) or a range of days in daily buckets. CO2 uses each
site's grid factor (``[plant.sites.<site>] grid_kg_co2_per_kwh``); the page says which.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.plant import get_plant_store
from indunet.auth.model import Need, decide
from indunet.auth.web import PrincipalDep
from indunet.errors import DataError
from indunet.plant import report
from indunet.plant.config import PlantConfig
from indunet.uns import parse_prefix

__all__ = ["EnergyRow", "day_range", "energy_rows", "router"]

router = APIRouter(include_in_schema=False, tags=["web"])

#: longest range of days the page shows (daily bars)
MAX_DAYS = 92

DayQ = Annotated[str, Query(max_length=10, description="A day, YYYY-MM-DD (default: today)")]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _parse_day(name: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise DataError(f"{name} {text[:20]!r} is not a day like 2026-11-23") from None


def plant_zone(plant: PlantConfig, scope: str) -> str:
    """Return the time zone days are counted in: the sites' zone when they share one, else UTC."""
    zones = {plant.site(m.site).calendar.timezone for m in report.scope_machines(plant, scope)}
    return zones.pop() if len(zones) == 1 else "UTC"


def day_range(
    day: str, start: str, end: str, zone: str, now_ms: int
) -> tuple[date, date, int, int]:
    """Return the first and last day and their ms bounds; DataError names a bad value."""
    tz = ZoneInfo(zone)
    today = datetime.fromtimestamp(now_ms / 1000, tz).date()
    if start or end:
        first = _parse_day("start", start) if start else today
        last = _parse_day("end", end) if end else today
    else:
        first = last = _parse_day("day", day) if day else today
    if last < first:
        raise DataError(f"end {last} is before start {first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise DataError(f"{(last - first).days + 1} days is more than the page shows ({MAX_DAYS})")
    lo = datetime.combine(first, datetime.min.time(), tz)
    hi = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz)
    return first, last, int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)


@dataclass(frozen=True)
class EnergyRow:
    """One line of the energy table: a site, a line or a machine."""

    level: str
    name: str
    kwh: float
    running_kwh: float
    idle_kwh: float
    off_kwh: float
    idle_share: float | None
    good_parts: float
    kwh_per_good_part: float | None
    co2_kg: float


def _row(level: str, name: str, s: dict[str, Any]) -> EnergyRow:
    kwh = s["kwh"]
    idle = s["idle_kwh"] + s["off_kwh"]
    return EnergyRow(
        level,
        name,
        kwh,
        s["running_kwh"],
        s["idle_kwh"],
        s["off_kwh"],
        idle / kwh if kwh > 0 else None,
        s["good_parts"],
        s["kwh_per_good_part"],
        s["co2_kg"],
    )


def energy_rows(body: dict[str, Any]) -> list[EnergyRow]:
    """Return the table rows of an energy report: each site, then its lines, then machines."""
    rows: list[EnergyRow] = []
    for site in sorted(body["sites"]):
        rows.append(_row("site", site, body["sites"][site]))
        for line in sorted(k for k in body["lines"] if k.split("/", 1)[0] == site):
            rows.append(_row("line", line, body["lines"][line]))
            for m in sorted(k for k in body["machines"] if k.rsplit("/", 1)[0] == line):
                rows.append(_row("machine", m, body["machines"][m]))
    return rows


_ZERO = ("kwh", "running_kwh", "idle_kwh", "off_kwh", "good_parts", "co2_kg")
#: the report of no machines
_EMPTY_REPORT: dict[str, Any] = {
    "sites": {},
    "lines": {},
    "machines": {},
    "buckets": [],
    "warnings": [],
    "total": dict.fromkeys(_ZERO, 0.0) | {"kwh_per_good_part": None},
}


def _query(**values: str) -> str:
    """Return a query string of the non-empty values."""
    return urlencode({k: v for k, v in values.items() if v})


def _bar_label(start_ms: int, zone: str, hourly: bool) -> str:
    t = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(ZoneInfo(zone))
    return t.strftime("%H:00") if hourly else t.strftime("%m-%d")


@router.get("/energy", response_class=HTMLResponse)
def energy_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    day: DayQ = "",
    start: DayQ = "",
    end: DayQ = "",
    scope: Annotated[str, Query(max_length=400, description="Site, area, line or machine")] = "",
) -> HTMLResponse:
    """Show kWh, idle energy, kWh per good part and CO2 of a day or a range of days."""
    enterprise = settings.enterprise
    scope = parse_prefix(scope)
    whole = (
        not settings.auth.required or decide(Need.viewer, principal, enterprise=enterprise).allowed
    )
    if not scope and not whole:  # a site-limited grant (it passed naming ?site=): its scope only
        raise HTTPException(403, "this grant is limited to one site: name it with ?scope=SITE")
    store = get_plant_store(request, historian)
    plant = store.effective(enterprise)
    try:
        machines = report.scope_machines(plant, scope)
    except DataError as exc:  # no machines (under this scope): say so, and how to add them
        machines, missing = [], str(exc)
    else:
        missing = None
    zone = plant_zone(plant, scope) if machines else "UTC"
    first, last, lo, hi = day_range(day, start, end, zone, _now_ms())
    hourly = first == last
    watcher = getattr(request.app.state, "plant_watcher", None)
    open_part = (
        watcher.open_segment if watcher is not None and watcher.enterprise == enterprise else None
    )
    if machines:
        body = report.energy_report(
            store, historian, plant, enterprise, scope, lo, hi,
            bucket="hour" if hourly else "day", open_part=open_part,
        )  # fmt: skip
    else:
        body = _EMPTY_REPORT
    sites = sorted(body["sites"])
    factors = [(s, plant.site(s).grid_kg_co2_per_kwh, s in plant.sites) for s in sites]
    chart = {
        "labels": [_bar_label(b["start_ms"], zone, hourly) for b in body["buckets"]],
        "running": [round(b["running_kwh"], 3) for b in body["buckets"]],
        "idle": [round(b["idle_kwh"], 3) for b in body["buckets"]],
        "off": [round(b["off_kwh"], 3) for b in body["buckets"]],
        "other": [
            round(max(b["kwh"] - b["running_kwh"] - b["idle_kwh"] - b["off_kwh"], 0.0), 3)
            for b in body["buckets"]
        ],
    }
    day_before = first - timedelta(days=1)
    day_after = last + timedelta(days=1)
    today = datetime.fromtimestamp(_now_ms() / 1000, ZoneInfo(zone)).date()
    context = {
        "nav_here": "/energy",
        "enterprise": enterprise,
        "scope": scope,
        "zone": zone,
        "first": first.isoformat(),
        "last": last.isoformat(),
        "hourly": hourly,
        "prev_day": day_before.isoformat(),
        "next_day": day_after.isoformat() if day_after <= today else None,
        "today": today.isoformat(),
        "total": _row("total", "all", body["total"]),
        "rows": energy_rows(body),
        "factors": factors,
        "chart": chart,
        "warnings": body["warnings"][:20],
        "machine_count": len(plant.machines),
        "missing": missing,
        "q": _query,
    }
    return _render(request, "energy.html", context)
