"""Plant side of the federation: compute aggregates each round, buffer them, publish at QoS 1.

`compute_round` builds the records of one round from the same functions the plant's own pages
use (`energy_report` per site and local hour, `oee_report` per site and day, `site_today` for the
states now). `PlantUplink` runs it every ``uplink.interval_s`` seconds, writes the records that
changed since its last round into an `EdgeBuffer` (the edge agent's durable store-and-forward
file) and lets the edge agent's `Forwarder` publish them: a row leaves the buffer only after
the broker's PUBACK, so a WAN or broker outage loses nothing and the backlog is replayed oldest
first when the broker is back.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from indunet.business.store import BusinessStore
from indunet.docking.store import DockingStore
from indunet.edge.buffer import EdgeBuffer
from indunet.edge.config import BrokerConfig, PublisherConfig
from indunet.edge.publish import Forwarder, JsonEncoder
from indunet.errors import DataError
from indunet.federation import contract
from indunet.federation.contract import Uplink
from indunet.plant.config import PlantConfig
from indunet.plant.energy import bucket_edges
from indunet.plant.oee import OeeElements
from indunet.plant.report import energy_report, oee_report
from indunet.plant.store import PlantStore
from indunet.plant.today import HOUR_MS, HourlyCache, read_hourly, site_today
from indunet.store.base import Historian

__all__ = ["PlantUplink", "SiteDay", "compute_round", "declared_cover", "local_days"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SiteDay:
    """A site's local day: its date text and ``[start_ms, end_ms)``."""

    day: str
    start_ms: int
    end_ms: int


def local_days(timezone: str, now_ms: int, days_back: int) -> tuple[list[SiteDay], SiteDay]:
    """Return the ``days_back`` ended local days before today (oldest first) and today so far."""
    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone).date()

    def start(d: Any) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000)

    ended = []
    for back in range(days_back, 0, -1):
        d = today - timedelta(days=back)
        ended.append(SiteDay(d.isoformat(), start(d), start(d + timedelta(days=1))))
    return ended, SiteDay(today.isoformat(), start(today), max(now_ms, start(today) + 1))


def _sites(plant: PlantConfig) -> list[str]:
    return sorted({m.site for m in plant.machines})


def _coverage(
    hourly: pa.Table, tags: list[str], start_ms: int, end_ms: int
) -> tuple[float, set[str]]:
    """Return the share of ``tags`` with a reading in ``[start_ms, end_ms)`` (by UTC hour)."""
    if not tags:
        return 0.0, set()
    lo = start_ms - start_ms % HOUR_MS
    mask = pc.and_(
        pc.greater_equal(hourly.column("hour_ms"), lo), pc.less(hourly.column("hour_ms"), end_ms)
    )
    seen = set(hourly.filter(mask).column("tag").to_pylist()) & set(tags)
    return len(seen) / len(tags), seen


def _fingerprints(hourly: pa.Table, tags: list[str]) -> dict[int, tuple]:
    """Return per UTC hour what the points of ``tags`` there add up to (count, sum, last time)."""
    if not tags or not hourly.num_rows:
        return {}
    mask = pc.is_in(hourly.column("tag"), value_set=pa.array(sorted(set(tags))))
    t = hourly.filter(mask)
    g = t.group_by("hour_ms", use_threads=False).aggregate(
        [("vcount", "sum"), ("vsum", "sum"), ("last_ts", "max"), ("first_ts", "min")]
    )
    return {
        int(h): (int(n), round(float(v), 9), int(last), int(first))
        for h, n, v, last, first in zip(
            g.column("hour_ms").to_pylist(), g.column("vcount_sum").to_pylist(),
            g.column("vsum_sum").to_pylist(), g.column("last_ts_max").to_pylist(),
            g.column("first_ts_min").to_pylist(), strict=True,
        )
    }  # fmt: skip


def _cached_hours(
    cache: dict[tuple[str, int], tuple[Any, dict[str, Any]]],
    hours: list[tuple[int, int]],
    prints: dict[int, tuple],
    compute: Callable[[int, int], list[dict[str, Any]]],
    site: str,
) -> list[dict[str, Any]]:
    """Return the hours' energy buckets, computing only those whose points changed.

    An hour's energy depends on its points and its neighbours' (the reading held into it, the
    one after it), so its key is the fingerprints of the UTC hours around it. Runs of hours to
    compute go to ``compute(lo, hi)`` one run at a time.
    """

    def key(lo: int, hi: int) -> tuple:
        first = lo - lo % HOUR_MS
        before, after = prints.get(first - HOUR_MS), prints.get(hi - hi % HOUR_MS)
        inside = tuple(prints.get(h) for h in range(first, hi, HOUR_MS))
        # the reading held into the hour (the last before it), the first after it
        return (before and before[2], inside, after and after[3])

    keys = [key(lo, hi) for lo, hi in hours]
    todo = [
        i for i, (lo, _) in enumerate(hours)
        if (c := cache.get((site, lo))) is None or c[0] != keys[i]
    ]  # fmt: skip
    runs: list[tuple[int, int]] = []
    for i in todo:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    for a, b in runs:
        got = {int(x["start_ms"]): x for x in compute(hours[a][0], hours[b][1])}
        for i in range(a, b + 1):
            bucket = got.get(hours[i][0])
            if bucket is not None:
                cache[(site, hours[i][0])] = (keys[i], bucket)
    return [cache[(site, lo)][1] for lo, _ in hours if (site, lo) in cache]


def declared_cover(rows: list[dict[str, Any]], items: list[str]) -> list[dict[str, Any]]:
    """Return the ``inventory`` record's items: each declared item's stock and days of cover.

    ``rows`` are the business inventory with its cover (`business.status.inventory_status`, the
    newest level per item and warehouse). Per item, summed over its warehouses: quantity and
    planned daily use; cover = quantity ÷ daily use (None without a planned use: unknown, never
    zero or infinite); the target is the strictest (largest) warehouse target. A declared item
    with no stock row is left out (nothing is known of it).
    """
    wanted = set(items)
    by_item: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["item"] in wanted:
            by_item.setdefault(r["item"], []).append(r)
    out = []
    for item in sorted(by_item):
        group = by_item[item]
        quantity = float(sum(r["quantity"] for r in group))
        use = float(sum(r["daily_use"] or 0.0 for r in group))
        cover = round(quantity / use, 3) if use > 0 else None
        target = float(max(r["cover_target_days"] for r in group))
        units = {r.get("unit") for r in group} - {None}
        out.append(
            {
                "item": item,
                "quantity": quantity,
                "daily_use": use if use > 0 else None,
                "days_of_cover": cover,
                "cover_target_days": target,
                "below_cover": cover is not None and cover < target,
                "unit": units.pop() if len(units) == 1 else None,
                "as_of_ms": int(max(r["as_of"] for r in group)),
            }
        )
    return out


def compute_round(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    now_ms: int,
    *,
    uplink_enterprise: str | None = None,
    days_back: int = 3,
    rev: int = 0,
    current: Callable[[str], tuple[str, int] | None] | None = None,
    open_part: Callable[[str], Any] | None = None,
    hourly_cache: HourlyCache | None = None,
    offers: list[dict[str, Any]] | None = None,
    inventory: list[dict[str, Any]] | None = None,
    not_before_ms: int | None = None,
    kwh_cache: dict[tuple[str, int], tuple[Any, dict[str, Any]]] | None = None,
) -> list[Uplink]:
    """Return one round's records of every site: kWh per ended day and hour, OEE, states now.

    ``enterprise`` is the plant's tenant (what is read); ``uplink_enterprise`` the id the records
    carry (the enterprise's id in the regional registry, default the same). ``offers``: the
    plant's docking offers (spare capacity and stock) to send as one ``offers`` record;
    ``inventory``: the declared items' cover (`declared_cover`) as one ``inventory`` record.
    ``not_before_ms``: the raw retention's horizon — ended days starting before it are left out
    (their raw points are going or gone; the figures sent while they were whole stand).
    ``kwh_cache``: ended hours' energy buckets kept between rounds, by (site, hour start), each
    with the fingerprint of its power points (`_fingerprints`); an hour whose points did not
    change since is not recomputed, so a round reads raw points only for new hours and hours
    with late data (and the aggregate the fingerprints come from).
    """
    ent = uplink_enterprise or enterprise
    sites = _sites(plant)
    out: list[Uplink] = []
    if not sites:
        return out

    def record(kind: str, site: str, period: str, data: dict[str, Any]) -> None:
        out.append(contract.build(ent, kind, site, period, data, computed_ms=now_ms, rev=rev))

    windows = {s: local_days(plant.site(s).calendar.timezone, now_ms, days_back) for s in sites}
    earliest = min(w[0][0].start_ms for w in windows.values())
    points = read_hourly(historian, enterprise, earliest - HOUR_MS, now_ms + 1)
    for site in sites:
        ended, today = windows[site]
        if not_before_ms is not None:
            ended = [d for d in ended if d.start_ms >= not_before_ms]
        first = ended[0].start_ms if ended else today.start_ms
        tz = plant.site(site).calendar.timezone
        tags = [
            f"{m.id}/{m.meter_tag or m.power_tag}"
            for m in plant.machines
            if m.site == site and (m.meter_tag or m.power_tag)
        ]
        edges = bucket_edges(first, now_ms, "hour", tz)
        hour_end = int(edges[-2]) if len(edges) > 2 else first
        if hour_end <= first:
            buckets = []
        elif kwh_cache is None:
            report = energy_report(
                store, historian, plant, enterprise, site, first, hour_end,
                bucket="hour", open_part=open_part,
            )  # fmt: skip
            buckets = report["buckets"]
        else:
            hours = [(int(a), int(b)) for a, b in itertools.pairwise(edges[:-1])]
            buckets = _cached_hours(
                kwh_cache, hours, _fingerprints(points, tags),
                lambda lo, hi, site=site: energy_report(
                    store, historian, plant, enterprise, site, lo, hi,
                    bucket="hour", open_part=open_part,
                )["buckets"],
                site,
            )  # fmt: skip
        starts = np.array([b["start_ms"] for b in buckets], np.int64)
        kwh = np.array([b["kwh"] for b in buckets], np.float64)
        for b in buckets:
            cov, _ = _coverage(points, tags, b["start_ms"], b["end_ms"])
            period = contract.hour_period(b["start_ms"])
            record("kwh_hourly", site, period, {"kwh": max(b["kwh"], 0.0), "coverage": cov})
        for day in ended:
            inside = (starts >= day.start_ms) & (starts < day.end_ms)
            cov, _ = _coverage(points, tags, day.start_ms, day.end_ms)
            record(
                "kwh_daily",
                site,
                day.day,
                {
                    "kwh": max(float(kwh[inside].sum()), 0.0),
                    "coverage": cov,
                    "sites": sites,
                    "timezone": tz,
                },
            )
        days = [(ended[-1], True)] if ended else []
        for day, complete in (*days, (today, False)):
            try:
                doc = oee_report(
                    store, historian, plant, enterprise, site, day.start_ms, day.end_ms,
                    open_part=open_part,
                )  # fmt: skip
            except DataError as exc:
                log.warning("uplink: OEE of %s on %s not computed: %s", site, day.day, exc)
                continue
            e = OeeElements.from_dict(doc["total"])
            record(
                "oee_daily",
                site,
                day.day,
                {
                    "pbt_ms": int(e.pbt_ms),
                    "apt_ms": int(e.apt_ms),
                    "ideal_ms": float(e.ideal_ms),
                    "produced": float(e.produced),
                    "good": float(e.good),
                    "scrap": float(e.scrap),
                    "produced_without_ideal": float(e.produced_without_ideal),
                    "machines": int(e.machines),
                    "complete": complete,
                    "end_ms": day.end_ms,
                },
            )
    if offers is not None:
        docs = [{k: v for k, v in o.items() if k != "enterprise"} for o in offers]
        try:
            record(
                "offers",
                contract.OFFERS_SITE,
                contract.OFFERS_PERIOD,
                {"offers": docs},
            )
        except DataError as exc:
            log.warning("uplink: docking offers not sent: %s", exc)
    if inventory is not None:
        try:
            record("inventory", contract.OFFERS_SITE, contract.OFFERS_PERIOD, {"items": inventory})
        except DataError as exc:
            log.warning("uplink: inventory cover not sent: %s", exc)
    today_sites = site_today(
        store, historian, plant, enterprise, now_ms, current=current, hourly=hourly_cache
    )
    for site in sites:
        s = today_sites.get(site)
        if s is None:
            continue
        counts = {name: int(s.states.get(name, 0)) for name in contract.STATE_NAMES}
        record(
            "states",
            site,
            contract.minute_period(now_ms),
            {"machines": sum(counts.values()), **counts, "at_ms": now_ms},
        )
    return out


def _same(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Tell whether two records' figures are equal; numbers within a relative 1e-9.

    A sum over another window start differs in the last bits (energy is a difference of
    cumulative sums), which is no change worth sending.
    """
    if a is None or a.keys() != b.keys():
        return False
    for k, x in a.items():
        y = b[k]
        if isinstance(x, float) or isinstance(y, float):
            if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def _lost_points(sent: dict[str, Any] | None, now: dict[str, Any]) -> bool:
    """Tell whether a kWh figure changed only because meters lost readings since it was sent.

    Late data can only add readings; fewer meters with a reading (lower ``coverage``) means raw
    points were dropped — by the raw retention, whose hourly roll-ups the energy report does not
    integrate, or by a delete — and the figure the region holds is the better one.
    """
    if sent is None or "coverage" not in now or "coverage" not in sent:
        return False
    return float(now["coverage"]) < float(sent["coverage"]) - 1e-9


class PlantUplink:
    """The plant's uplink: a round every ``interval_s`` into the buffer, a forwarder out of it."""

    def __init__(
        self,
        historian: Historian,
        settings: Any,
        *,
        watcher: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        cfg = settings.uplink
        if not cfg.url:
            raise DataError("no uplink URL: set --uplink or [uplink] url")
        self.historian = historian
        self.settings = settings
        self.enterprise: str = settings.enterprise
        self.uplink_enterprise: str = cfg.enterprise or settings.enterprise
        self.watcher = watcher
        self.clock = clock
        self.interval_s = cfg.interval_s
        self.days_back = cfg.days_back
        self.full_every_ms = int(cfg.full_every_s * 1000)
        self._last_full: int | None = None
        self.store = (
            watcher.store
            if watcher is not None
            else PlantStore(historian, settings.plant, owner=settings.enterprise)
        )
        path = cfg.buffer_path or settings.data_dir / "uplink.sqlite"
        self.buffer = EdgeBuffer(path, cfg.buffer_mb * 1024 * 1024)
        broker = BrokerConfig(
            url=cfg.url,
            client_id=cfg.client_id or f"indunet-uplink-{self.uplink_enterprise}",
            enterprise=self.uplink_enterprise,
            reconnect_s=cfg.reconnect_s,
        )
        publisher = PublisherConfig(mode="json", max_inflight=cfg.max_inflight)
        encoder = JsonEncoder(self.uplink_enterprise, {})  # rows are (topic, payload) as they are
        self.forwarder = Forwarder(broker, publisher, self.buffer, encoder)
        self.hourly = HourlyCache()
        self.docking = DockingStore(historian)
        self.items = list(cfg.items)
        #: ended hours' energy by (site, hour start) with their points' fingerprint: a round
        #: recomputes only new hours and hours with late data (`compute_round`)
        self.kwh_cache: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}
        self.business = BusinessStore(historian) if self.items else None
        self.rounds = self.errors = 0
        # what went into the buffer, by (kind, key): kept on disk beside the rows (notes), so a
        # restarted plant neither sends its whole window again as new nor skips a change
        self._sent: dict[tuple[str, str], dict[str, Any]] = {}
        for name, value in self.buffer.notes().items():
            kind, _, key = name.partition(" ")
            if kind in contract.KINDS and key:
                self._sent[(kind, key)] = orjson.loads(value)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def plant(self) -> PlantConfig:
        """Return the plant's effective configuration (the watcher's when one runs)."""
        if self.watcher is not None:
            return self.watcher.plant
        return self.store.effective(self.enterprise)

    def inventory(self, now_ms: int) -> list[dict[str, Any]] | None:
        """Return the declared items' stock and cover (None when no item is declared)."""
        if not self.items or self.business is None:
            return None
        rows = self.business.view(self.enterprise, "inventory", now_ms=now_ms)
        return declared_cover(rows, self.items)

    def raw_horizon(self, now_ms: int) -> int | None:
        """Return the oldest time whose raw points the strictest retention rule keeps, or None.

        Conservative: the shortest ``raw_days`` of any rule (whatever its prefix), an hour early.
        """
        rules = getattr(self.settings, "retention", None) or []
        if not rules:
            return None
        shortest = min(r.raw_days for r in rules)
        return (now_ms - shortest * 86_400_000) // HOUR_MS * HOUR_MS + HOUR_MS

    def tick(self, now_ms: int | None = None) -> int:
        """Run one round; buffer the records that changed since the last one; return how many."""
        now = int(self.clock() * 1000) if now_ms is None else now_ms
        rev = self.buffer.next_counter("uplink_rev")
        full = self._last_full is None or now - self._last_full >= self.full_every_ms
        if full:  # every ended day of the window; in between only yesterday (cheaper)
            self._last_full = now
        records = compute_round(
            self.store,
            self.historian,
            self.plant(),
            self.enterprise,
            now,
            uplink_enterprise=self.uplink_enterprise,
            days_back=self.days_back if full else 1,
            rev=rev,
            current=self.watcher.current if self.watcher is not None else None,
            open_part=self.watcher.open_segment if self.watcher is not None else None,
            hourly_cache=self.hourly,
            offers=self.docking.entries(self.enterprise, "offer"),
            inventory=self.inventory(now),
            not_before_ms=self.raw_horizon(now),
            kwh_cache=self.kwh_cache,
        )
        rows = []
        changed: list[tuple[tuple[str, str], dict[str, Any]]] = []
        for r in records:
            key = (r.kind, r.key)
            before = self._sent.get(key)
            if r.kind != "states" and _same(before, r.data):
                continue  # unchanged; states go every round (the plant's heartbeat)
            if _lost_points(before, r.data):
                continue  # raw points aged out (retention) or were deleted: not a correction
            rows.append(("raw", r.topic, now, r.payload()))
            if r.kind != "states":
                changed.append((key, r.data))
        if full:  # the window's records: what fell out of it is forgotten
            window = {(r.kind, r.key) for r in records if r.kind != "states"}
            self._sent = {k: v for k, v in self._sent.items() if k in window}
            oldest = now - (self.days_back + 2) * 86_400_000
            self.kwh_cache = {k: v for k, v in self.kwh_cache.items() if k[1] >= oldest}
        self._sent.update(changed)
        notes = self._sent.items() if full else changed
        dropped = self.buffer.put(
            rows,
            [(f"{kind} {key}", orjson.dumps(data)) for (kind, key), data in notes],
            replace_notes=full,
        )
        if dropped:  # the buffer overflowed: what it dropped may never have reached the region
            log.warning("uplink: buffer full, %d oldest rows dropped; the next round sends the "
                        "whole window again", dropped)  # fmt: skip
            self.buffer.clear_notes()
            self._sent.clear()
            self._last_full = None
        self.rounds += 1
        return len(rows)

    def start(self) -> None:
        """Start the forwarder and the round thread."""
        self.forwarder.start()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the rounds, let the forwarder finish what is in flight, close the buffer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 60)
        self.forwarder.stop(timeout)
        self.buffer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                if self._failing:
                    log.info("uplink: rounds work again")
                    self._failing = False
            except Exception:  # the thread must outlive a bad round (database restart, ...)
                self.errors += 1
                if not self._failing:
                    log.exception("uplink: a round failed; trying again every %.0f s",
                                  self.interval_s)  # fmt: skip
                    self._failing = True
            self._stop.wait(self.interval_s)
