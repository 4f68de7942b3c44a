"""Drill-down pages: a site, an area and a line with their machines' state, OEE, energy, alarms.

Each level shows, for today (from local midnight of the site's calendar time zone): how many
machines are running / idle / off / offline, OEE with availability, performance and quality,
energy in kWh and the open alarms, for the scope and for each part one level down (linked).
Everything comes from the same Python calls as the JSON API (``indunet.plant.report``, the
plant store, the alarm service); ratios are derived from summed time elements, never averaged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.routes.plant import get_plant_store
from indunet.condition.monitors import anomaly_asset
from indunet.config import Settings
from indunet.errors import DataError
from indunet.plant import report
from indunet.plant.config import PlantConfig
from indunet.plant.oee import OeeElements
from indunet.plant.states import STATE_NAMES, StateTimeline
from indunet.plant.store import PlantStore
from indunet.store import Historian
from indunet.uns import LEVELS, MachinePath, TagPath, check_segment
from indunet.web.plant_tree import format_age, machine_card, machine_url, scope_url

__all__ = [
    "DRILL_POLL_S",
    "OPEN_ALARM_STATES",
    "STATES",
    "MachineRow",
    "ScopeView",
    "alarm_counts",
    "day_start_ms",
    "elements_from_dict",
    "router",
    "scope_view",
]

router = APIRouter(include_in_schema=False, tags=["web"])

#: the machine states in the order the pages show them
STATES = ("running", "idle", "off", "offline")
#: alarm states that count as open (annunciated): not normal, not shelved, not out of service
OPEN_ALARM_STATES = frozenset({"unack", "acked", "rtn_unack", "latched_unack", "latched_acked"})
#: how often a drill-down page fetches its summary again, s (OEE and energy are recomputed);
#: a page that took long to compute polls less often (at least 4 × its compute time)
DRILL_POLL_S = 15
#: a computed view is reused for this long by every viewer of the same scope, s
DRILL_CACHE_S = 10.0
_CACHE_MAX = 256
_DERIVED = "derived/oee/"
_DATA_QUALITY = "derived/data_quality/"
DAY_MS = 86_400_000
Level = Literal["site", "area", "line"]
_LEVEL_NAMES: tuple[Level, ...] = ("site", "area", "line")


@dataclass(frozen=True, slots=True)
class MachineRow:
    """One machine as a drill-down page lists it."""

    path: MachinePath
    url: str
    #: running, idle, off, offline, or unknown (not in the plant configuration / no state yet)
    state: str
    since_ms: int | None
    since: str | None
    configured: bool
    oee: OeeElements | None
    kwh: float | None
    alarms: int
    #: the data of its tags: live, stale or none
    data: str


@dataclass(slots=True)
class ScopeView:
    """A site, area or line: its machines' summary and its parts one level down."""

    level: str
    parts: tuple[str, ...]
    machines: list[MachineRow]
    alarms: int
    children: list[ScopeView] = field(default_factory=list)
    #: the site's time zone ("today" starts at its midnight) and when the view was made
    timezone: str = "UTC"
    now_ms: int = 0

    @property
    def time(self) -> str:
        """Return ``now_ms`` as UTC clock time."""
        return datetime.fromtimestamp(self.now_ms / 1000, UTC).strftime("%H:%M:%S UTC")

    @property
    def name(self) -> str:
        """Return the scope's own name (its last segment)."""
        return self.parts[-1]

    @property
    def path(self) -> str:
        """Return the scope as a namespace prefix (site/area/line)."""
        return "/".join(self.parts)

    @property
    def url(self) -> str:
        """Return the scope's page address."""
        return scope_url(*self.parts)

    @property
    def states(self) -> dict[str, int]:
        """Return how many machines are in each state (``unknown`` only when there are any)."""
        out = dict.fromkeys(STATES, 0)
        for m in self.machines:
            out[m.state] = out.get(m.state, 0) + 1
        return out

    @property
    def oee(self) -> OeeElements | None:
        """Return the summed OEE elements of the configured machines, or None without any."""
        parts = [m.oee for m in self.machines if m.oee is not None]
        return OeeElements.total(parts) if parts else None

    @property
    def kwh(self) -> float | None:
        """Return the machines' energy today, or None when no machine has an energy source."""
        found = [m.kwh for m in self.machines if m.kwh is not None]
        return sum(found) if found else None


def day_start_ms(zone: ZoneInfo, now_ms: int) -> int:
    """Return local midnight (in ``zone``) of the day holding ``now_ms``, as epoch ms."""
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    return int(midnight.timestamp() * 1000)


def elements_from_dict(doc: Mapping[str, Any]) -> OeeElements:
    """Return `OeeElements` from the report's JSON form (``OeeElements.as_dict``)."""
    return OeeElements.from_dict(doc)


def _alarm_scope(source: str) -> str:
    for prefix in (_DERIVED, _DATA_QUALITY):
        if source.startswith(prefix):
            return source[len(prefix) :]
    return anomaly_asset(source) or source


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def alarm_counts(sources: Iterable[str], scopes: Iterable[str]) -> dict[str, int]:
    """Count open alarms per scope: sources (tags, machine states, derived OEE) under each."""
    names = [_alarm_scope(s) for s in sources]
    return {scope: sum(_under(n, scope) for n in names) for scope in scopes}


def scope_view(
    parts: tuple[str, ...],
    machines: list[MachineRow],
    alarms: Iterable[str],
    *,
    timezone: str = "UTC",
    now_ms: int = 0,
) -> ScopeView:
    """Nest machines under a site, area or line, one level of children deep (pure)."""
    sources = list(alarms)
    depth = len(parts)
    prefix = "/".join(parts)
    mine = sorted(
        (m for m in machines if _under(str(m.path), prefix)),
        key=lambda m: (m.path.site, m.path.area, m.path.line, m.path.machine),
    )
    names = (
        [(m.path.site, m.path.area, m.path.line)[: depth + 1] for m in mine] if depth < 3 else []
    )
    child_parts = list(dict.fromkeys(names))
    paths = [prefix, *("/".join(c) for c in child_parts)]
    counts = alarm_counts(sources, paths)
    view = ScopeView(
        _LEVEL_NAMES[depth - 1], parts, mine, counts[prefix], timezone=timezone, now_ms=now_ms
    )
    for c in child_parts:
        key = "/".join(c)
        below = [m for m in mine if _under(str(m.path), key)]
        view.children.append(ScopeView(_LEVEL_NAMES[len(c) - 1], c, below, counts[key]))
    return view


# ---------------------------------------------------------------------------------- I/O


def _now_ms() -> int:
    return int(time.time() * 1000)


def _open_part(request: Request, enterprise: str) -> report.OpenPart:
    watcher = getattr(request.app.state, "plant_watcher", None)
    if watcher is None or watcher.enterprise != enterprise:
        return None
    return watcher.open_segment


def current_state(
    request: Request,
    store: PlantStore,
    enterprise: str,
    machine: Any,
    now_ms: int,
    recent: StateTimeline | None = None,
) -> tuple[str, int | None]:
    """Return a configured machine's state and since when, as ``/api/v1/machines`` does.

    Without a live watcher the newest stored segment counts (from ``recent``, the machine's
    stored timeline of the last day, when it has one); when it ended longer ago than the
    machine's offline time, the machine is offline since that end.
    """
    watcher = getattr(request.app.state, "plant_watcher", None)
    if watcher is not None and watcher.enterprise == enterprise:
        current = watcher.current(machine.id)
        if current is not None:
            return current[0], current[1]
    if recent is not None and len(recent):
        last = int(recent.start_ms[-1]), int(recent.end_ms[-1]), STATE_NAMES[recent.state[-1]]
    else:
        last = store.last_segment(enterprise, machine.id)
    if last is None:
        return "unknown", None
    start, end, state = last
    if end < now_ms - machine.offline_after_ms:
        return "offline", end
    return state, start


def _today_oee(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    scope: str,
    span: tuple[int, int],
    open_part: report.OpenPart,
) -> dict[str, OeeElements]:
    try:
        doc = report.oee_report(
            store, historian, plant, enterprise, scope, *span, open_part=open_part
        )
    except DataError:
        return {}
    return {k: elements_from_dict(v) for k, v in doc["machines"].items()}


def _today_kwh(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    scope: str,
    machines: list[str],
    span: tuple[int, int],
    open_part: report.OpenPart,
) -> dict[str, float]:
    def one(scope: str) -> dict[str, float]:
        doc = report.energy_report(
            store, historian, plant, enterprise, scope, *span, bucket="day", open_part=open_part
        )
        return {k: float(v["kwh"]) for k, v in doc["machines"].items()}

    try:
        return one(scope)
    except DataError:  # a machine without power or meter tag: ask machine by machine
        out: dict[str, float] = {}
        for m in machines:
            try:
                out.update(one(m))
            except DataError:
                continue
        return out


def _open_alarm_sources(request: Request, settings: Settings) -> list[str]:
    from indunet.plant.alarm_service import AlarmService
    from indunet.plant.alarms import AlarmRuleError

    service = getattr(request.app.state, "alarms", None)
    if service is None:  # as GET /api/v1/alarms: the stored engine snapshot
        try:
            service = AlarmService(request.app.state.historian, settings)
        except (DataError, AlarmRuleError):
            return []
    return [a.source for a in service.alarms() if str(a.state) in OPEN_ALARM_STATES]


def gather(
    request: Request, historian: Historian, settings: Settings, parts: tuple[str, ...]
) -> ScopeView | None:
    """Return the view of a site, area or line, or None when it has no machine at all."""
    enterprise = settings.enterprise
    prefix = "/".join(parts)
    now = _now_ms()
    tags = historian.tags(enterprise, prefix, limit=1_000_000)
    latest = {r["tag"]: r for r in historian.latest(enterprise, prefix).to_pylist()}
    by_machine: dict[MachinePath, list] = {}
    for info in tags:
        tp = TagPath.parse(info.path)
        by_machine.setdefault(tp.machine_path, []).append((tp.tag, info))
    store = get_plant_store(request, historian)
    plant = store.effective(enterprise)
    configured = {m.id: m for m in plant.machines if _under(m.id, prefix)}
    paths = set(by_machine) | {m.path for m in configured.values()}
    if not paths:
        return None
    zone = plant.site(parts[0]).calendar.zone
    lo = day_start_ms(zone, now)
    span = (lo, max(now, lo + 1))
    open_part = _open_part(request, enterprise)
    oee = (
        _today_oee(store, historian, plant, enterprise, prefix, span, open_part)
        if configured
        else {}
    )
    kwh = (
        _today_kwh(store, historian, plant, enterprise, prefix, list(configured), span, open_part)
        if configured
        else {}
    )
    sources = _open_alarm_sources(request, settings)
    alarms = alarm_counts(sources, [str(p) for p in paths])
    # the newest segments of all machines in one query (last_segment only for the rest)
    recent = store.timelines(enterprise, prefix, now - DAY_MS, now + 1) if configured else {}
    rows = []
    for path in paths:
        key = str(path)
        pairs = sorted(by_machine.get(path, []), key=lambda p: p[0])
        data = machine_card(path, pairs, latest, now).status
        state, since = "unknown", None
        if key in configured:
            state, since = current_state(
                request, store, enterprise, configured[key], now, recent.get(key)
            )
        rows.append(
            MachineRow(
                path=path,
                url=machine_url(path),
                state=state,
                since_ms=since,
                since=format_age(now - since) if since is not None else None,
                configured=key in configured,
                oee=oee.get(key),
                kwh=kwh.get(key),
                alarms=alarms[key],
                data=data,
            )
        )
    timezone = plant.site(parts[0]).calendar.timezone
    return scope_view(parts, rows, sources, timezone=timezone, now_ms=now)


def _render(request: Request, name: str, context: dict, status_code: int = 200) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, name, context, status_code=status_code
    )


def _page(
    request: Request, historian: Historian, settings: Settings, parts: tuple[str, ...]
) -> HTMLResponse:
    level = _LEVEL_NAMES[len(parts) - 1]
    try:
        parts = tuple(check_segment(v, name) for name, v in zip(LEVELS, parts, strict=False))
    except DataError as exc:
        return _not_found(request, settings, str(exc))
    view, compute_s = _cached(request, historian, settings, parts)
    if view is None:
        return _not_found(request, settings, f"{level} {'/'.join(parts)} is not known")
    poll_s = max(DRILL_POLL_S, math.ceil(compute_s * 4))
    context = {"view": view, "enterprise": settings.enterprise, "drill_poll_s": poll_s}
    return _render(request, f"{level}.html", context)


def _monotonic() -> float:
    return time.monotonic()


def _cached(
    request: Request, historian: Historian, settings: Settings, parts: tuple[str, ...]
) -> tuple[ScopeView | None, float]:
    """Return the scope's view (reused for DRILL_CACHE_S per tenant and scope) and its cost, s."""
    cache: dict[tuple[str, tuple[str, ...]], tuple[float, ScopeView | None, float]]
    cache = request.app.state.__dict__.setdefault("drill_cache", {})
    key = (settings.enterprise, parts)
    t0 = _monotonic()
    hit = cache.get(key)
    if hit is not None and t0 - hit[0] < DRILL_CACHE_S:
        return hit[1], hit[2]
    view = gather(request, historian, settings, parts)
    cost = _monotonic() - t0
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = (t0, view, cost)
    return view, cost


def _not_found(request: Request, settings: Settings, what: str) -> HTMLResponse:
    context = {"what": what, "enterprise": settings.enterprise}
    return _render(request, "not_found.html", context, status_code=404)


@router.get("/site/{site}", response_class=HTMLResponse)
def site_page(
    request: Request, historian: HistorianDep, settings: SettingsDep, site: str
) -> HTMLResponse:
    """Show a site: its areas with machines' states, OEE and energy today, open alarms."""
    return _page(request, historian, settings, (site,))


@router.get("/site/{site}/{area}", response_class=HTMLResponse)
def area_page(
    request: Request, historian: HistorianDep, settings: SettingsDep, site: str, area: str
) -> HTMLResponse:
    """Show an area: its lines with machines' states, OEE and energy today, open alarms."""
    return _page(request, historian, settings, (site, area))


@router.get("/site/{site}/{area}/{line}", response_class=HTMLResponse)
def line_page(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    site: str,
    area: str,
    line: str,
) -> HTMLResponse:
    """Show a line: each machine's state, OEE and energy today and open alarms."""
    return _page(request, historian, settings, (site, area, line))
