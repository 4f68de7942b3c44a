"""The overview ("CEO view") at ``/``: every site of the enterprise on one screen.

Per site: machines running / idle / off / offline, OEE today against its target, energy today,
open alarms by priority, production orders' progress, inventory below cover, late incoming
materials, shipments on the road / arrived and equipment at customers. ``/parts/overview`` is
the same cards as an htmx fragment, polled every few seconds and fetched again on the live
stream's ``indunet:alarm`` / ``indunet:values`` events.

Figures come from the same Python calls as the JSON API (plant store, `indunet.plant.today`,
business store, alarm service); the machine figures in few queries, so the page stays fast with
hundreds of machines. One computed overview per enterprise serves all requests for
``CACHE_TTL_MS`` (many phones, wall screens and their fragment polls compute it once); after
that it is still served while one background refresh computes the next (`OverviewCache`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from indunet.api.deps import HistorianDep, SettingsDep, app_store
from indunet.api.routes.plant import get_plant_store
from indunet.business.records import BusinessKind
from indunet.business.store import BusinessStore
from indunet.plant.alarm_service import DATA_QUALITY, DERIVED_OEE, AlarmStore
from indunet.plant.config import PlantConfig
from indunet.plant.oee import OeeElements
from indunet.plant.store import PlantStore
from indunet.plant.today import (
    STATES,
    HourlyCache,
    SiteOee,
    SiteOeeCache,
    SiteToday,
    day_start_ms,
    site_oee,
    site_today,
)
from indunet.store import Historian
from indunet.web.plant_tree import DEFAULT_STALE_MS

__all__ = [
    "CACHE_TTL_MS",
    "DEFAULT_OEE_TARGET",
    "MAX_AGE_MS",
    "REFRESH_S",
    "Overview",
    "OverviewCache",
    "SiteCard",
    "alarm_site",
    "build_overview",
    "router",
]

#: OEE target of a site whose config names none (world class is ~0.85; 0.65 is a common goal)
DEFAULT_OEE_TARGET = 0.65
#: how long one computed overview serves further requests of the same enterprise, ms
CACHE_TTL_MS = 2_000
#: an overview older than this is computed again while the request waits (first visit after a
#: quiet spell), ms
MAX_AGE_MS = 60_000
#: how often the page fetches its cards again, s (live events fetch them sooner)
REFRESH_S = 10
PRIORITIES = ("urgent", "high", "medium", "low")
#: alarm states that still ask for attention (shelved and out-of-service ones are set aside)
OPEN_ALARM_STATES = frozenset({"unack", "acked", "rtn_unack", "latched_unack", "latched_acked"})
#: business figures are computed again at least this often (lateness moves with time), ms
BUSINESS_REFRESH_MS = 60_000
#: how many names a card lists before "and N more"
NAMES_SHOWN = 3

router = APIRouter(include_in_schema=False, tags=["web"])
log = logging.getLogger(__name__)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.0f} %"


def _pct1(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:,.1f}"


@dataclass(slots=True)
class SiteCard:
    """One site's card (the enterprise-wide card has ``url`` None and no machines)."""

    name: str
    url: str | None
    machines: int = 0
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    oee: float | None = None
    availability: float | None = None
    performance: float | None = None
    quality: float | None = None
    oee_target: float = DEFAULT_OEE_TARGET
    oee_note: str = ""
    #: the OEE elements (from `oee_report`, the one code path) and up to when they count
    oee_elements: OeeElements | None = None
    oee_until_ms: int | None = None
    kwh: float | None = None
    alarms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRIORITIES, 0))
    orders: int = 0
    orders_late: int = 0
    planned_qty: float = 0.0
    done_qty: float = 0.0
    below_cover: list[str] = field(default_factory=list)
    late_incoming: list[str] = field(default_factory=list)
    on_road: int = 0
    arrived: int = 0
    shipments_late: int = 0
    equipment: dict[str, int] = field(default_factory=dict)
    business_rows: int = 0

    @property
    def progress(self) -> float | None:
        """Return done ÷ planned quantity over the site's production orders (sums)."""
        return min(self.done_qty / self.planned_qty, 1.0) if self.planned_qty else None

    @property
    def alarm_count(self) -> int:
        """Return the number of open alarms."""
        return sum(self.alarms.values())

    @property
    def plausible(self) -> bool:
        """Tell whether the OEE figures can be true (all in [0, 1], no implausible machine)."""
        return self.oee_elements is None or self.oee_elements.plausible

    @property
    def implausible_text(self) -> str:
        """Return the likely causes of implausible figures (a tooltip), or ""."""
        return "" if self.plausible else self.oee_elements.implausible_text  # type: ignore[union-attr]

    @property
    def oee_status(self) -> str:
        """Return implausible, good (at or above target), warn (within 10 points), bad, none."""
        if not self.plausible:
            return "implausible"  # never shown as good
        if self.oee is None:
            return "none"
        if self.oee >= self.oee_target:
            return "good"
        return "warn" if self.oee >= self.oee_target - 0.10 else "bad"

    @property
    def oee_text(self) -> str:
        """Return the OEE as a percentage (one decimal, as the drill-down pages), or a dash."""
        return _pct1(self.oee)

    @property
    def apq_text(self) -> str:
        """Return availability, performance and quality in percent: ``A 90 · P 85 · Q 99 %``."""

        def p(x: float | None) -> str:
            return "—" if x is None else f"{x * 100:.1f}"

        return f"A {p(self.availability)} · P {p(self.performance)} · Q {p(self.quality)} %"

    @property
    def oee_until_text(self) -> str:
        """Return up to when the OEE figures count (UTC clock time), or ""."""
        if self.oee_until_ms is None:
            return ""
        return datetime.fromtimestamp(self.oee_until_ms / 1000, UTC).strftime("%H:%M:%S UTC")

    @property
    def target_text(self) -> str:
        """Return the OEE target as a percentage."""
        return _pct(self.oee_target)

    @property
    def kwh_text(self) -> str:
        """Return today's energy, or a dash."""
        return "—" if self.kwh is None else f"{_num(self.kwh)} kWh"

    @property
    def progress_text(self) -> str:
        """Return the production orders' progress as a percentage, or a dash."""
        return _pct(self.progress)

    @property
    def state_shares(self) -> list[tuple[str, int, float]]:
        """Return (state, count, percent of machines) of the states with machines."""
        total = self.machines or 1
        return [(s, n, 100 * n / total) for s, n in self.states.items() if n]

    @property
    def equipment_total(self) -> int:
        """Return how many pieces of equipment at customers belong to the site."""
        return sum(self.equipment.values())


@dataclass(slots=True)
class Overview:
    """The whole overview of an enterprise at a time."""

    enterprise: str
    now_ms: int
    sites: list[SiteCard]
    has_machines: bool
    has_business: bool
    #: whether open alarms are known (the alarm service belongs to the server's enterprise)
    alarms_known: bool
    compute_ms: float = 0.0
    #: open supply-chain alerts (``derived/chain/…``), kept apart from the plant's alarms
    chain_alerts: int = 0

    @property
    def time(self) -> str:
        """Return the time of the figures, UTC."""
        return datetime.fromtimestamp(self.now_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    @property
    def machine_count(self) -> int:
        """Return how many machines the sites hold."""
        return sum(s.machines for s in self.sites)

    @property
    def running_count(self) -> int:
        """Return how many machines run now."""
        return sum(s.states["running"] for s in self.sites)

    @property
    def alarm_count(self) -> int:
        """Return the open alarms of all sites."""
        return sum(s.alarm_count for s in self.sites)


def alarm_site(source: str) -> str:
    """Return the site an alarm's source tag is on ("" for enterprise-wide derived sources)."""
    if source.startswith(DERIVED_OEE):
        source = source[len(DERIVED_OEE) :]
    elif source.startswith(DATA_QUALITY):
        source = source[len(DATA_QUALITY) :]
    elif source.startswith("derived/"):
        return ""  # e.g. derived/chain/…: not a tag of a plant site
    return source.split("/", 1)[0]


def _names(rows: Iterable[str]) -> list[str]:
    return sorted(set(rows))


_BUSINESS_FIELDS = ("below_cover", "late_incoming", "orders", "orders_late", "planned_qty",
                    "done_qty", "on_road", "arrived", "shipments_late", "equipment",
                    "business_rows")  # fmt: skip


def _business_cards(
    cards: dict[str, SiteCard],
    store: BusinessStore,
    enterprise: str,
    now_ms: int,
    memo: dict[str, Any] | None = None,
) -> bool:
    """Add the business figures to the cards; return whether there are any business records.

    With ``memo``, the figures are computed again only when a record was saved (the store's
    `signature`), the set of sites changed, or a minute passed (lateness moves with time).
    """
    known = frozenset(n for n in cards if n)
    key = (store.signature(enterprise), now_ms // BUSINESS_REFRESH_MS, known)
    hit = memo.get(enterprise) if memo is not None else None
    if hit is not None and hit[0] == key:
        found, parts = hit[1]
    else:
        parts = {n: SiteCard(n, None) for n in known}
        found = _business_parts(parts, store, enterprise, now_ms)
        if memo is not None:
            memo[enterprise] = (key, (found, parts))
    for name, b in parts.items():
        if not b.business_rows:
            continue
        c = cards.setdefault(name, SiteCard(name, _site_url(name) if name else None))
        for f in _BUSINESS_FIELDS:
            value = getattr(b, f)
            setattr(c, f, value.copy() if isinstance(value, list | dict) else value)
    return found


def _business_parts(
    cards: dict[str, SiteCard], store: BusinessStore, enterprise: str, now_ms: int
) -> bool:
    """Count the business records per site into ``cards`` (no site: the "" card)."""

    def card(site: str | None) -> SiteCard:
        name = site or ""
        if name not in cards:
            cards[name] = SiteCard(name, _site_url(name) if name else None)
        c = cards[name]
        c.business_rows += 1
        return c

    found = False
    for row in store.view(enterprise, BusinessKind.inventory, now_ms=now_ms):
        found = True
        c = card(row.get("site"))
        if row["below_cover"]:
            c.below_cover.append(row["item"])
    for row in store.view(enterprise, BusinessKind.purchase_orders, now_ms=now_ms):
        found = True
        c = card(row.get("site"))
        if row["late"]:
            c.late_incoming.append(f"{row['item']} ({row['order_id']})")
    for row in store.view(enterprise, BusinessKind.production_orders, now_ms=now_ms):
        found = True
        c = card(row["line"].split("/", 1)[0] if row.get("line") else None)
        if row.get("status") == "cancelled":
            continue
        c.orders += 1
        c.orders_late += bool(row["late"])
        c.planned_qty += row["quantity"]
        c.done_qty += min(row.get("done_quantity") or 0.0, row["quantity"])
    for row in store.view(enterprise, BusinessKind.shipments, now_ms=now_ms):
        found = True
        ours = row.get("origin") if row.get("direction") == "outbound" else row.get("destination")
        c = card(ours if ours in cards else None)  # free-text places go enterprise-wide
        if row["state"] == "on_road":
            c.on_road += 1
        elif row["state"] == "arrived":
            c.arrived += 1
        c.shipments_late += bool(row["late"])
    for row in store.view(enterprise, BusinessKind.customer_equipment, now_ms=now_ms):
        found = True
        c = card(row.get("site"))
        c.equipment[row["state"]] = c.equipment.get(row["state"], 0) + 1
    for c in cards.values():
        c.below_cover = _names(c.below_cover)
        c.late_incoming = _names(c.late_incoming)
    return found


def _oee_note(e: OeeElements | None, note: str) -> str:
    """Say why a site has no OEE today."""
    if e is None:
        return note or "no OEE"
    if not e.pbt_ms:
        return "no planned shift time yet today"
    if not e.apt_ms and e.stop_ms.get("offline", 0) >= e.pbt_ms:
        return "no state history yet"
    if e.produced_without_ideal:
        return "no ideal cycle time"
    return "no part counters" if not e.produced else "no OEE"


def _site_url(name: str) -> str:
    return "/site/" + quote(name, safe="")


def build_overview(
    historian: Historian,
    plant_store: PlantStore,
    business: BusinessStore,
    plant: PlantConfig,
    enterprise: str,
    now_ms: int,
    *,
    alarms: list[Mapping[str, Any]] | None = None,
    current: Any = None,
    hourly: HourlyCache | None = None,
    business_memo: dict[str, Any] | None = None,
    oee_cache: SiteOeeCache | None = None,
    open_part: Any = None,
) -> Overview:
    """Compute the overview: machine figures, alarms (None: unknown) and business figures.

    ``hourly`` and ``business_memo`` keep what does not change between calls (`OverviewCache`).
    Each site's OEE since its local midnight is `oee_report`'s (`site_oee`), the figures every
    other view shows; ``oee_cache`` serves it for a short time and refreshes it in the
    background (without one it is computed now). ``open_part`` is a running watcher's
    ``open_segment``.
    """
    started = time.perf_counter()
    latest = historian.latest(enterprise)
    today: dict[str, SiteToday] = site_today(
        plant_store, historian, plant, enterprise, now_ms,
        latest=latest, current=current, hourly=hourly,
    )  # fmt: skip
    cards: dict[str, SiteCard] = {}
    for name, t in today.items():
        target = getattr(plant.site(name), "oee_target", None)

        def compute(name: str = name) -> SiteOee:
            return site_oee(
                plant_store, historian, plant, enterprise, name, now_ms, open_part=open_part
            )

        if oee_cache is None:
            found = compute()
        else:
            day = day_start_ms(plant.site(name).calendar.timezone, now_ms)
            found = oee_cache.get(enterprise, name, day, compute)
        e = found.elements
        c = SiteCard(
            name,
            _site_url(name),
            machines=t.machines,
            states=dict(t.states),
            oee=e.oee if e is not None else None,
            availability=e.availability if e is not None else None,
            performance=e.performance if e is not None else None,
            quality=e.quality if e is not None else None,
            oee_target=DEFAULT_OEE_TARGET if target is None else float(target),
            kwh=t.kwh if t.has_power else None,
            oee_elements=e,
            oee_until_ms=found.end_ms,
        )
        if c.oee is None or (e is not None and e.pbt_ms and not e.apt_ms):
            c.oee_note = _oee_note(e, found.note)
        cards[name] = c
    # machines that publish but are not configured: counted by the freshness of their data
    configured = {m.id for m in plant.machines}
    newest: dict[str, int] = {}
    for tag, ts in zip(
        latest.column("tag").to_pylist(), latest.column("ts").to_pylist(), strict=True
    ):
        machine = tag.rsplit("/", 1)[0]
        if machine.count("/") == 3 and machine not in configured:
            newest[machine] = max(newest.get(machine, ts), ts)
    for machine, ts in newest.items():
        site = machine.split("/", 1)[0]
        c = cards.setdefault(site, SiteCard(site, _site_url(site)))
        c.machines += 1
        c.states["offline" if now_ms - ts > DEFAULT_STALE_MS else "unknown"] += 1
        if not c.oee_note:
            c.oee_note = "machines not configured in [plant]"
    chain_alerts = 0
    for a in alarms or []:
        if a.get("state") in OPEN_ALARM_STATES:
            if str(a.get("source", "")).startswith("derived/chain/"):
                chain_alerts += 1  # the chain's, not a plant site's: /alarms?kind=chain
                continue
            site = alarm_site(str(a.get("source", "")))
            c = cards.setdefault(site, SiteCard(site, _site_url(site) if site else None))
            prio = str(a.get("priority", "medium"))
            c.alarms[prio if prio in c.alarms else "medium"] += 1
    has_business = _business_cards(cards, business, enterprise, now_ms, business_memo)
    ordered = sorted((c for n, c in cards.items() if n), key=lambda c: c.name)
    if "" in cards:
        ordered.append(cards[""])
    return Overview(
        enterprise=enterprise,
        now_ms=now_ms,
        sites=ordered,
        has_machines=any(c.machines for c in ordered),
        has_business=has_business,
        alarms_known=alarms is not None,
        compute_ms=(time.perf_counter() - started) * 1000,
        chain_alerts=chain_alerts,
    )


class OverviewCache:
    """The computed overview per enterprise: fresh for ``ttl_ms``, then refreshed behind requests.

    A request finding no overview (or one older than ``max_age_ms``) computes it and waits. One
    within ``ttl_ms`` is served as is. One older than that is still served, and one background
    refresh is started, so the figures are at most ``ttl_ms`` plus one computation old and a
    request never waits for a refresh. Closed hours' aggregates are kept (`HourlyCache`).
    """

    def __init__(self, ttl_ms: int = CACHE_TTL_MS, max_age_ms: int = MAX_AGE_MS) -> None:
        self.ttl_ms = ttl_ms
        self.max_age_ms = max_age_ms
        self.hourly = HourlyCache()
        self.oee = SiteOeeCache()  # each site's OEE today, refreshed in the background
        self.business: dict[str, Any] = {}  # business figures until records change
        self._lock = threading.Lock()  # guards the entries and the refresh threads
        self._compute_lock = threading.Lock()  # one computation at a time (one historian)
        self._entries: dict[str, tuple[float, Overview]] = {}
        self._refreshing: dict[str, threading.Thread] = {}
        self.hits = self.misses = self.refreshes = 0

    def _compute(self, enterprise: str, compute: Callable[[HourlyCache], Overview]) -> Overview:
        with self._compute_lock:
            overview = compute(self.hourly)
        with self._lock:
            self._entries[enterprise] = (time.monotonic() * 1000, overview)
        return overview

    def _refresh(self, enterprise: str, compute: Callable[[HourlyCache], Overview]) -> None:
        try:
            self._compute(enterprise, compute)
        except Exception:  # the next request tries again; the old figures stay
            log.exception("overview refresh of %s failed", enterprise)
        finally:
            with self._lock:
                self._refreshing.pop(enterprise, None)

    def get(
        self, enterprise: str, compute: Callable[[HourlyCache], Overview]
    ) -> tuple[Overview, bool]:
        """Return the enterprise's overview and whether it came from the cache."""
        with self._lock:
            entry = self._entries.get(enterprise)
            age = time.monotonic() * 1000 - entry[0] if entry is not None else None
            if entry is not None and age is not None and age < self.max_age_ms:
                self.hits += 1
                if age >= self.ttl_ms and enterprise not in self._refreshing:
                    self.refreshes += 1
                    thread = threading.Thread(
                        target=self._refresh, args=(enterprise, compute), daemon=True,
                        name=f"overview-{enterprise}",
                    )  # fmt: skip
                    self._refreshing[enterprise] = thread
                    thread.start()
                return entry[1], True
            self.misses += 1
        return self._compute(enterprise, compute), False

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for running background refreshes (tests, benchmarks, shutdown)."""
        with self._lock:
            threads = list(self._refreshing.values())
        for thread in threads:
            thread.join(timeout)
        self.oee.drain(timeout)

    def clear(self) -> None:
        """Forget the computed overviews (not the hourly aggregates nor the sites' OEE)."""
        self.drain()
        with self._lock:
            self._entries.clear()


def _cache(request: Request) -> OverviewCache:
    cache = getattr(request.app.state, "overview_cache", None)
    if cache is None:
        cache = OverviewCache()
        # late, re-sent or imported points make cached hours stale: the cache hears of them
        request.app.state.historian.change_listeners.append(cache.hourly.changed)
        request.app.state.overview_cache = cache
    return cache


def _alarms(request: Request, historian: Historian, enterprise: str) -> list[dict] | None:
    """Return the open alarms of the server's enterprise (running service or stored snapshot)."""
    if enterprise != request.app.state.settings.enterprise:
        return None  # the alarm service watches this server's own enterprise only
    service = getattr(request.app.state, "alarms", None)
    if service is not None:
        return [a.to_dict() for a in service.alarms()]
    store = app_store(request, historian, "overview_alarm_store", AlarmStore)
    snapshot = store.snapshot(enterprise)
    engine = (snapshot or {}).get("engine") or {}
    return list(engine.get("alarms") or [])


def _overview(request: Request, historian: Historian, enterprise: str) -> tuple[Overview, bool]:
    def compute(hourly: HourlyCache) -> Overview:
        plant_store = get_plant_store(request, historian)
        business = app_store(request, historian, "business", BusinessStore)
        watcher = getattr(request.app.state, "plant_watcher", None)
        ours = watcher is not None and watcher.enterprise == enterprise
        current = watcher.current if ours else None
        return build_overview(
            historian,
            plant_store,
            business,
            plant_store.effective(enterprise),
            enterprise,
            int(time.time() * 1000),
            alarms=_alarms(request, historian, enterprise),
            current=current,
            hourly=hourly,
            business_memo=cache.business,
            oee_cache=cache.oee,
            open_part=watcher.open_segment if ours else None,
        )

    cache = _cache(request)
    return cache.get(enterprise, compute)


def _render(request: Request, name: str, overview: Overview, cached: bool) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    context = {"ov": overview, "nav_here": "/", "refresh_s": REFRESH_S}
    response = templates.TemplateResponse(request, name, context)
    how = "cached" if cached else "computed"
    took = 0.0 if cached else overview.compute_ms
    response.headers["Server-Timing"] = f"overview;dur={took:.1f};desc={how}"

    return response


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, historian: HistorianDep, settings: SettingsDep) -> HTMLResponse:
    """Show the overview: every site's machines, OEE, energy, alarms and business, live."""
    overview, cached = _overview(request, historian, settings.enterprise)
    return _render(request, "overview.html", overview, cached)


@router.get("/parts/overview", response_class=HTMLResponse)
def overview_part(request: Request, historian: HistorianDep, settings: SettingsDep) -> HTMLResponse:
    """Return the overview's cards as a fragment (polled, and fetched on live events)."""
    overview, cached = _overview(request, historian, settings.enterprise)
    return _render(request, "_overview.html", overview, cached)
