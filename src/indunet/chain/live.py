"""The live link: sites' capacity follows plant states and the regional monitor; chain alerts.

Pure part: `site_statuses` says which network sites are down and by how much — a site mapped to a
plant site (``plant_site``) keeps the share of its machines that are not ``off``/``offline``; a
site whose registry enterprise (``enterprise``) has ``stopped`` on the regional monitor's latest
day keeps nothing (``unknown`` changes nothing: no data is not a stop). `chain_alerts` runs, per
site short of its normal output, the site's outage for its time to recover (at least as long as
it has been down) through the tiers with the other sites' live capacities, and words the alerts:
"supplier X down 3 days; item c runs out at P1 in 6 days". `alarm_samples` turns them into
``derived/chain/…`` samples for the alarm engine.

`ChainLive` is the background service (like `AlarmService`): every ``interval_s`` (60 s) it
reads the states, recomputes the alerts (and the TTS/TTR table with live capacities when they
changed) for every stored network of the enterprise, keeps the result for the pages and feeds
the samples to the running alarm service, so chain alerts appear in ``/api/v1/alarms``, the SSE
stream and the webhooks like any other alarm (rules `CHAIN_RULES`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from indunet.chain.disruption import propagate
from indunet.chain.graph import EPS, SupplyGraph, build_supply_graph, normal_flows
from indunet.chain.network import Network
from indunet.chain.resilience import resilience_table
from indunet.chain.store import ChainStore
from indunet.plant.alarms import HighLimitRule, LowLimitRule, Priority
from indunet.plant.rounds import Rounds

__all__ = [
    "CHAIN_RULES",
    "ChainAlert",
    "ChainLive",
    "SiteStatus",
    "alarm_samples",
    "capacity_overrides",
    "chain_alarm_extras",
    "chain_alerts",
    "cover_alerts",
    "plant_states_from_watcher",
    "region_states_from_store",
    "site_statuses",
    "start_chain_live",
    "uplink_cover_from_store",
    "uplink_states_from_store",
]

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
DOWN_STATES = frozenset({"off", "offline"})
#: a product running out within this many days raises the high-priority alarm
RUNOUT_ALERT_DAYS = 28.0
#: the sample of a product that does not run out (finite: the engine ignores non-finite values)
NOT_HIT_DAYS = 100_000.0
#: at most this many down sites are propagated one by one per network and round
MAX_SITES = 25
DERIVED_PREFIX = "derived/chain"
CHAIN_RULES = [
    HighLimitRule(
        id="chain-site-down",
        pattern=f"{DERIVED_PREFIX}/+/site/+",
        limit=0.0,
        priority=Priority.MEDIUM,
        message="chain: a supplier site is down or short of capacity (value: days down)",
    ),
    HighLimitRule(
        id="chain-low-cover",
        pattern=f"{DERIVED_PREFIX}/+/cover/+",
        limit=0.0,
        priority=Priority.MEDIUM,
        message="chain: a supplier's stock of its item is below its cover target "
        "(value: days short)",
    ),
    LowLimitRule(
        id="chain-runs-out",
        pattern=f"{DERIVED_PREFIX}/+/runout/+",
        limit=RUNOUT_ALERT_DAYS,
        priority=Priority.HIGH,
        message=f"chain: a product runs out within {RUNOUT_ALERT_DAYS:g} days (value: days left)",
    ),
]

#: uplinked inventory (federation): enterprise -> item -> its declared stock and cover
UplinkCover = Mapping[str, Mapping[str, Mapping[str, Any]]]
#: plant site -> machine -> (state, since ms)
PlantStates = Mapping[str, Mapping[str, tuple[str, int | None]]]
#: uplinked sites (federation): enterprise -> site -> its newest ``states`` counts, or None when
#: the site is silent (``unknown``: no data is not a stop)
UplinkStates = Mapping[str, Mapping[str, Mapping[str, int] | None]]


@dataclass(frozen=True)
class SiteStatus:
    """A network site whose live capacity is below normal."""

    id: str
    factor: float  # share of the normal weekly capacity available now (0 … 1)
    reason: str
    since_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return plain data."""
        return asdict(self)


@dataclass(frozen=True)
class ChainAlert:
    """One alert: a site down, or a product running out because of it."""

    kind: str  # "site_down", "runs_out" or "low_cover"
    site: str
    text: str
    days_down: float
    item: str = ""
    product: str = ""
    days_left: float | None = None
    priority: str = "medium"
    target_days: float | None = None  # low_cover: the supplier's cover target

    def as_dict(self) -> dict[str, Any]:
        """Return plain data."""
        return asdict(self)


# ---------------------------------------------------------------------------- pure part
def site_statuses(
    network: Network,
    plant: PlantStates,
    enterprises: Mapping[str, str],
    *,
    region_day: str = "",
    uplinks: UplinkStates | None = None,
) -> list[SiteStatus]:
    """Return the sites with live capacity below normal (lowest share first).

    ``plant``: the network owner's plant sites, each machine's state and since when;
    ``enterprises``: registry enterprise id -> ``resumed``/``stopped``/``unknown``;
    ``uplinks``: a supplier enterprise's plant sites as they uplink (federation) — the node keeps
    the share of the machines of its ``uplink_site`` (or of all the enterprise's reporting
    sites) that are not ``off``/``offline``; a silent site changes nothing.
    """
    out = []
    for node in network.nodes:
        factor, reasons, since = 1.0, [], []
        machines = plant.get(node.plant_site) if node.plant_site else None
        if machines:
            down = {m: s for m, s in machines.items() if s[0] in DOWN_STATES}
            if down:
                factor = 1.0 - len(down) / len(machines)
                reasons.append(
                    f"{len(down)} of {len(machines)} machines off or offline at plant site "
                    f"{node.plant_site}"
                )
                known = [s[1] for s in down.values() if s[1] is not None]
                if len(down) == len(machines) and known:
                    since.append(max(known))  # the whole site stopped when the last one did
                elif known:
                    since.append(min(known))
        sites = (uplinks or {}).get(node.enterprise) if node.enterprise else None
        if sites:
            names = [node.uplink_site] if node.uplink_site else sorted(sites)
            counts = [sites[n] for n in names if sites.get(n)]
            machines = sum(c["machines"] for c in counts)
            down = sum(c["off"] + c["offline"] for c in counts)
            if machines and down:
                factor = min(factor, 1.0 - down / machines)
                where = node.uplink_site or "its sites"
                reasons.append(
                    f"{down} of {machines} machines off or offline at {node.enterprise} "
                    f"{where} (uplink)"
                )
        if node.enterprise and enterprises.get(node.enterprise) == "stopped":
            factor = 0.0
            day = f" on {region_day}" if region_day else ""
            reasons.append(f"enterprise {node.enterprise} has not resumed{day} (regional monitor)")
        if factor < 1.0:
            out.append(
                SiteStatus(node.id, round(factor, 6), "; ".join(reasons), min(since, default=None))
            )
    out.sort(key=lambda s: (s.factor, s.id))
    return out


def capacity_overrides(network: Network, statuses: Iterable[SiteStatus]) -> dict[str, float]:
    """Return each reduced site's live weekly capacity."""
    cap = {n.id: n.capacity_per_week for n in network.nodes}
    return {s.id: cap[s.id] * s.factor for s in statuses}


def _days(ms: float) -> float:
    return max(ms, 0.0) / DAY_MS


def _say_days(days: float) -> str:
    """Return ``3 days``, ``1 day``, ``5 hours`` or ``12 min`` (whole units, rounded down)."""
    for unit, size in (("day", 1.0), ("hour", 1 / 24), ("min", 1 / 1440)):
        if days >= size or unit == "min":
            n = max(0, math.floor(days / size + 1e-9))
            return f"{n} {unit}" + ("s" if n != 1 and unit != "min" else "")
    return ""  # pragma: no cover


def chain_alerts(
    g: SupplyGraph,
    statuses: Iterable[SiteStatus],
    now_ms: int,
    *,
    max_sites: int = MAX_SITES,
) -> list[ChainAlert]:
    """Return the alerts: each site short of its normal output and the products it runs out.

    A site is short when its live capacity is below its normal throughput (spare capacity
    absorbs smaller losses); a short site counts as stopped in the propagation (conservative).
    Its outage is assumed to last its time to recover, counted from when it went down (or
    now); the other reduced sites keep their live capacity meanwhile.
    """
    statuses = list(statuses)
    if not statuses:
        return []
    flow, thr = normal_flows(g)  # the planned flows; live capacity only limits spare
    live = g.with_capacity({s.id: float(g.capacity[g.index(s.id)]) * s.factor for s in statuses})
    alerts: list[ChainAlert] = []
    for status in statuses[:max_sites]:
        i = g.index(status.id)
        days_down = _days(now_ms - status.since_ms) if status.since_ms is not None else 0.0
        item = g.items[int(g.item_of[i])]
        share = "" if status.factor <= 0 else f" (at {status.factor:.0%} capacity)"
        took = f" {_say_days(days_down)}" if status.since_ms is not None else ""
        head = f"supplier {status.id} down{took}{share}"
        short = float(live.capacity[i]) < float(thr[i]) - EPS
        alerts.append(
            ChainAlert(
                kind="site_down",
                site=status.id,
                item=item,
                days_down=round(days_down, 3),
                text=f"{head}: {status.reason}"
                + ("" if short else "; spare capacity covers its customers"),
                priority="medium" if short else "low",
            )
        )
        if not short:
            continue
        weeks = max(float(g.ttr[i]), days_down / 7.0, 1e-6)
        mask = np.zeros(g.n, dtype=bool)
        mask[i] = True
        p = propagate(live, mask, weeks, flow=flow, thr=thr)
        for m in range(g.n_sites, g.n):
            if p.avail[m] >= 1.0 - EPS:
                continue
            left = float(p.stop[m]) * 7.0 - days_down
            product = g.product(m)
            when = "has run out" if left <= 0 else f"runs out at {product} in {_say_days(left)}"
            text = (
                f"{head}; item {item} {when}"
                if left > 0
                else f"{head}; {product} {when} for want of item {item}"
            )
            alerts.append(
                ChainAlert(
                    kind="runs_out",
                    site=status.id,
                    item=item,
                    product=product,
                    days_down=round(days_down, 3),
                    days_left=round(max(left, 0.0), 3),
                    text=text,
                    priority="high" if left <= RUNOUT_ALERT_DAYS else "medium",
                )
            )
    alerts.sort(
        key=lambda a: (a.kind != "runs_out", a.days_left if a.days_left is not None else 0, a.site)
    )
    return alerts


def cover_alerts(network: Network, g: SupplyGraph, cover: UplinkCover) -> list[ChainAlert]:
    """Return an alert per supplier node whose uplinked stock of its item is below its target.

    A node with ``enterprise`` supplies its graph item; when that enterprise uplinks the item
    (``inventory`` kind) with ``below_cover``, the alert says how many days it holds against
    its target. An item it does not uplink, or without a planned use, raises nothing.
    """
    out = []
    for node in network.nodes:
        if not node.enterprise or node.enterprise not in cover:
            continue
        item = g.items[int(g.item_of[g.index(node.id)])]
        it = cover[node.enterprise].get(item)
        if it is None or not it.get("below_cover") or it.get("days_of_cover") is None:
            continue
        days, target = float(it["days_of_cover"]), float(it["cover_target_days"])
        out.append(
            ChainAlert(
                kind="low_cover",
                site=node.id,
                item=item,
                days_down=0.0,
                days_left=round(days, 3),
                target_days=target,
                text=f"supplier {node.id} ({node.enterprise}) holds {days:.1f} days of {item}, "
                f"below its {target:g}-day cover target (uplink)",
                priority="medium",
            )
        )
    return out


_UNSAFE = re.compile(r"[/#+\s\x00-\x1f\x7f]")


def _segment(name: str) -> str:
    """Return ``name`` as one namespace level (``/ # +``, blanks and controls become ``_``)."""
    seg = _UNSAFE.sub("_", name.strip())[:128]
    return seg if seg not in ("", ".", "..") else "_"


def alarm_samples(
    network_name: str,
    g: SupplyGraph,
    watched: Iterable[str],
    alerts: Iterable[ChainAlert],
) -> dict[str, float]:
    """Return the alarm samples of one network.

    ``derived/chain/<network>/site/<id>``: days down (0 when up or when spare capacity covers
    it) for every watched site; ``derived/chain/<network>/runout/<product>``: the fewest days
    left for every product (`NOT_HIT_DAYS` when it does not run out);
    ``derived/chain/<network>/cover/<id>``: days short of its cover target (0 when covered or
    not uplinked) for every watched site.
    """
    net = _segment(network_name)
    out: dict[str, float] = {}
    for site in watched:
        out[f"{DERIVED_PREFIX}/{net}/site/{_segment(site)}"] = 0.0
        out[f"{DERIVED_PREFIX}/{net}/cover/{_segment(site)}"] = 0.0
    for m in range(g.n_sites, g.n):
        out[f"{DERIVED_PREFIX}/{net}/runout/{_segment(g.product(m))}"] = NOT_HIT_DAYS
    for a in alerts:
        if a.kind == "site_down" and a.priority != "low":  # spare capacity covers a low one
            key = f"{DERIVED_PREFIX}/{net}/site/{_segment(a.site)}"
            out[key] = max(out.get(key, 0.0), a.days_down, 1e-3)  # down: > 0 even at once
        elif a.kind == "low_cover" and a.days_left is not None:
            short = max((a.target_days or 0.0) - a.days_left, 1e-3)
            out[f"{DERIVED_PREFIX}/{net}/cover/{_segment(a.site)}"] = short
        elif a.days_left is not None:
            key = f"{DERIVED_PREFIX}/{net}/runout/{_segment(a.product)}"
            out[key] = min(out.get(key, NOT_HIT_DAYS), a.days_left)
    return out


def chain_alarm_extras(historian: Any, enterprise: str) -> dict[str, Any]:
    """Return ``extra_rules`` and ``known_tags`` for an `AlarmService` built with chain rules.

    Built in from the start, the chain alarms survive a restart like any other (the engine
    snapshot is restored against rules it knows); otherwise the live link adds them late.
    """
    store = ChainStore(historian)
    tags: set[str] = set()
    for row in store.networks(enterprise):
        network = store.network(enterprise, row["name"])
        g = build_supply_graph(network)
        watched = [n.id for n in network.nodes if n.plant_site or n.enterprise]
        tags |= set(alarm_samples(row["name"], g, watched, []))
    return {"extra_rules": list(CHAIN_RULES), "known_tags": sorted(tags)}


# ---------------------------------------------------------------------------- live sources
def plant_states_from_watcher(watcher: Any) -> Callable[[], PlantStates]:
    """Return a reader of the machines' current states from a running `PlantWatcher`.

    Machines the watcher has no state for yet are left out (unknown is not down).
    """

    def read() -> PlantStates:
        out: dict[str, dict[str, tuple[str, int | None]]] = {}
        for machine in watcher.plant.machines:
            now = watcher.current(machine.id)
            if now is None:  # no state yet (the watcher reports "offline" itself)
                continue
            out.setdefault(machine.id.split("/", 1)[0], {})[machine.id] = (now[0], now[1])
        return out

    return read


def uplink_states_from_store(
    get_store: Callable[[], Any], stale_ms: int, clock: Callable[[], float] = time.time
) -> Callable[[], UplinkStates]:
    """Return a reader of uplinked sites' machine-state counts from a `FederationStore`.

    ``get_store`` returns the store or None (not a regional instance). A site silent for more
    than ``stale_ms`` is None: unknown, not down.
    """

    def read() -> UplinkStates:
        store = get_store()
        if store is None:
            return {}
        out: dict[str, dict[str, Mapping[str, int] | None]] = {}
        for s in store.sites(int(clock() * 1000), stale_ms):
            fresh = s["status"] == "reporting" and s["states"] is not None
            out.setdefault(s["enterprise"], {})[s["site"]] = s["states"] if fresh else None
        return out

    return read


def uplink_cover_from_store(get_store: Callable[[], Any]) -> Callable[[], UplinkCover]:
    """Return a reader of uplinking enterprises' declared items' cover (``inventory`` kind)."""

    def read() -> UplinkCover:
        from indunet.federation.regional import inventory_cover

        store = get_store()
        return {} if store is None else inventory_cover(store)

    return read


def region_states_from_store(
    get_store: Callable[[], Any],
) -> Callable[[list[str]], tuple[dict[str, str], str]]:
    """Return a reader of enterprises' states on the regional monitor's latest day.

    ``get_store`` returns the open `RegionStore` or None (not loaded yet: nothing is known).
    """

    def read(ids: list[str]) -> tuple[dict[str, str], str]:
        store = get_store()
        if store is None or not ids:
            return {}, ""
        days = store.days()
        if not days:
            return {}, ""
        day = days[-1]
        wanted = set(ids)
        stopped, _ = store.enterprises(day, state="stopped", limit=1_000_000)
        found = [e for e in stopped.get_column("enterprise_id").to_list() if e in wanted]
        return dict.fromkeys(found, "stopped"), str(day)

    return read


# ---------------------------------------------------------------------------- the service
class _AlarmFeed:
    """Feed chain samples to a running `AlarmService` as derived values.

    The alarm service has no public hook for values computed elsewhere yet; this adapter adds
    `CHAIN_RULES` to its rules when they are missing (see `chain_alarm_extras`) and the fed tags
    to its known tags, then evaluates samples under its lock and stores, publishes and notifies
    through its own save path (a public ``feed`` method on `AlarmService` would replace the
    private calls here).
    """

    def __init__(self, service: Any) -> None:
        self.service = service
        self._known: set[str] = set()

    def feed(self, samples: Mapping[str, float], now_ms: int) -> list[dict[str, Any]]:
        s = self.service
        if not samples:
            return []
        with s._lock:
            s._extra_tags |= set(samples) - self._known  # later rule reloads check them
            self._known |= set(samples)
            have = {r.id for r in s.engine.rules}
            missing = [r for r in CHAIN_RULES if r.id not in have]
            if missing:
                s._extra_rules.extend(missing)
                s._swap(s._load_all_rules())
            table = pa.table(
                {
                    "tag": pa.array(list(samples), pa.string()),
                    "ts": pa.array([now_ms] * len(samples), pa.int64()),
                    "value": pa.array(list(samples.values()), pa.float64()),
                }
            )
            events = s.engine.update(table)
            return s._save(events) if events else []


class ChainLive(Rounds):
    """Recompute every stored network of the enterprise from live data, once per interval.

    ``plant_states()`` gives the plant's machine states; ``region_states(ids)`` gives
    ``({enterprise id: state}, day)``; ``alarms`` is the running `AlarmService` (or None).
    """

    thread_name = "indunet-chain-live"
    work = "chain live link"

    def __init__(
        self,
        historian: Any,
        enterprise: str,
        *,
        plant_states: Callable[[], PlantStates] | None = None,
        region_states: Callable[[list[str]], tuple[dict[str, str], str]] | None = None,
        uplink_states: Callable[[], UplinkStates] | None = None,
        uplink_cover: Callable[[], UplinkCover] | None = None,
        alarms: Any = None,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = ChainStore(historian)
        self.enterprise = enterprise
        self.plant_states = plant_states or (lambda: {})
        self.region_states = region_states or (lambda ids: ({}, ""))
        self.uplink_states = uplink_states or (lambda: {})
        self.uplink_cover = uplink_cover or (lambda: {})
        self.feed = _AlarmFeed(alarms) if alarms is not None else None
        self.interval_s = interval_s
        self.clock = clock
        self._views: dict[str, dict[str, Any]] = {}
        self._graphs: dict[str, tuple[int, Network, SupplyGraph]] = {}
        self._lock = threading.Lock()
        self._init_rounds()

    def _graph(self, name: str, version: int) -> tuple[Network, SupplyGraph]:
        cached = self._graphs.get(name)
        if cached is None or cached[0] != version:
            network = self.store.network(self.enterprise, name)
            cached = (version, network, build_supply_graph(network))
            self._graphs[name] = cached
        return cached[1], cached[2]

    def run_once(self, now_ms: int | None = None) -> dict[str, dict[str, Any]]:
        """Recompute every network once; return the views by network name."""
        now = int(self.clock() * 1000) if now_ms is None else int(now_ms)
        plant = self.plant_states()
        uplinks = self.uplink_states()
        cover = self.uplink_cover()
        views: dict[str, dict[str, Any]] = {}
        samples: dict[str, float] = {}
        for row in self.store.networks(self.enterprise):
            name = row["name"]
            network, g = self._graph(name, int(row["updated_ms"]))
            ids = sorted({n.enterprise for n in network.nodes if n.enterprise})
            states, day = self.region_states(ids) if ids else ({}, "")
            if self.store.resilience(self.enterprise, name) is None:
                self._keep_resilience(name, g, now)  # the page's table, solved here once
            statuses = site_statuses(network, plant, states, region_day=day, uplinks=uplinks)
            alerts = chain_alerts(g, statuses, now) + cover_alerts(network, g, cover)
            previous = self._views.get(name, {})
            key = tuple((s.id, s.factor) for s in statuses)
            resilience = previous.get("resilience") if previous.get("key") == key else None
            if statuses and resilience is None:
                try:
                    resilience = resilience_table(g, capacity=capacity_overrides(network, statuses))
                except Exception as exc:  # the alerts stand without the table
                    resilience = None
                    self.last_error = f"resilience of {name}: {exc}"
            views[name] = {
                "at_ms": now,
                "key": key,
                "statuses": [s.as_dict() for s in statuses],
                "alerts": [a.as_dict() for a in alerts if a.priority != "low"],
                "resilience": resilience if statuses else None,
            }
            watched = [n.id for n in network.nodes if n.plant_site or n.enterprise]
            samples.update(alarm_samples(name, g, watched, alerts))
        with self._lock:
            self._views = views
        if self.feed is not None:
            self.feed.feed(samples, now)
        self.rounds += 1
        return views

    def _keep_resilience(self, name: str, g: SupplyGraph, now_ms: int) -> None:
        try:
            table = resilience_table(g)
        except Exception as exc:  # the page says why when it solves it itself
            self.last_error = f"resilience of {name}: {exc}"
            return
        self.store.save_resilience(self.enterprise, name, table, now_ms=now_ms)

    def view(self, enterprise: str, network: str) -> dict[str, Any] | None:
        """Return the latest view of a network (None: another enterprise or not computed)."""
        if enterprise != self.enterprise:
            return None
        with self._lock:
            return self._views.get(network)


def start_chain_live(app: Any, historian: Any, settings: Any, **kw: Any) -> ChainLive:
    """Start the live link for the app: plant watcher states, regional monitor, uplinked plants
    (a regional instance's `UplinkConsumer`, which wakes the link when a site's state changes),
    alarm service."""
    watcher = getattr(app.state, "plant_watcher", None)

    def federation() -> Any:
        consumer = getattr(app.state, "uplink_consumer", None)
        return consumer.store if consumer is not None else None

    live = ChainLive(
        historian,
        settings.enterprise,
        plant_states=plant_states_from_watcher(watcher) if watcher is not None else None,
        region_states=region_states_from_store(lambda: getattr(app.state, "region_store", None)),
        uplink_states=uplink_states_from_store(federation, int(settings.federation.stale_s * 1000)),
        uplink_cover=uplink_cover_from_store(federation),
        alarms=getattr(app.state, "alarms", None),
        **kw,
    )
    app.state.chain_live = live
    consumer = getattr(app.state, "uplink_consumer", None)
    if consumer is not None:
        consumer.on_site_change = lambda _enterprise: live.wake()
    live.start()
    return live
