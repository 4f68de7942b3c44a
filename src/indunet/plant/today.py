"""Today's figures per site for the overview, in few queries: states now, energy, OEE.

* the newest value of every tag (`Historian.latest`, one query) for each machine's state now,
  unless a running `PlantWatcher` knows it;
* hourly aggregates of the power tags since the earliest site midnight (one query over raw
  points; closed hours are kept by `HourlyCache`, so later calls read only the open hour) for
  energy (mean kW × covered time per hour);
* OEE since the site's local midnight from the one code path every view uses,
  `indunet.plant.report.oee_report` (ISO 22400-2, DESIGN.md §4) with the site as scope, so the
  overview, the site/area/line/machine pages, the API and the CLI show the same figures for the
  same range. It reads every machine's counters, which costs too much per request on a big
  plant: `SiteOeeCache` keeps each site's result for a short time and refreshes it in the
  background, so a request never waits for it after the first one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indunet.model import Quality
from indunet.plant.config import MachineConfig, PlantConfig
from indunet.plant.oee import OeeElements
from indunet.plant.store import PlantStore
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = [
    "HOUR_MS",
    "STATES",
    "HourlyCache",
    "SiteOee",
    "SiteOeeCache",
    "SiteToday",
    "day_start_ms",
    "hourly_kwh",
    "read_hourly",
    "site_oee",
    "site_today",
    "state_now",
]

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
#: the states a machine can be in now, as the overview counts them
STATES = ("running", "idle", "off", "offline", "unknown")
#: the watcher's current state of a machine: (state name, since ms), or None
CurrentState = Callable[[str], tuple[str, int] | None]


@dataclass
class SiteToday:
    """A site's machines by state now and its energy since midnight."""

    site: str
    day_start_ms: int
    machines: int = 0
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    kwh: float = 0.0
    has_power: bool = False


def day_start_ms(timezone: str, now_ms: int) -> int:
    """Return local midnight (epoch ms) of the day ``now_ms`` falls on in ``timezone``."""
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def state_now(machine: MachineConfig, row: Mapping[str, Any] | None, now_ms: int) -> str:
    """Classify a machine from its newest power reading: offline when older than its limit.

    Without configured thresholds (they are learned by the watcher) a fresh reading is
    ``unknown``; so is a machine without any reading of its power tag.
    """
    if row is None or row.get("ts") is None:
        return "unknown"
    if now_ms - int(row["ts"]) > machine.offline_after_ms:
        return "offline"
    value = row.get("value")
    quality = row.get("quality") or 0
    th = machine.thresholds
    if th is None or value is None or quality >= Quality.BAD or not math.isfinite(value):
        return "unknown"
    if machine.power_unit == "W":
        value = value / 1000.0
    if value < th.off_below:
        return "off"
    if value > th.running_above:
        return "running"
    return "idle"


#: first and last value of a group, per backend
_FIRST_LAST = {
    "duckdb": "arg_min(p.value, p.ts) AS first_value, arg_max(p.value, p.ts) AS last_value",
    "postgresql": "(array_agg(p.value ORDER BY p.ts))[1] AS first_value, "
    "(array_agg(p.value ORDER BY p.ts DESC))[1] AS last_value",
}


def read_hourly(historian: Historian, enterprise: str, start_ms: int, end_ms: int) -> pa.Table:
    """Return per tag and hour the min, max, sum, count, first and last of numeric points.

    One query over the raw points of ``[start_ms, end_ms)`` (same columns as the historian's
    ``rollups_hourly``, which only holds hours past retention).
    """
    sql = SqlPort(historian)
    table = sql.query(
        "WITH a AS (SELECT p.tag_id, p.ts - p.ts % 3600000 AS hour_ms, min(p.value) AS vmin, "
        "max(p.value) AS vmax, sum(p.value) AS vsum, count(p.value) AS vcount, "
        f"min(p.ts) AS first_ts, max(p.ts) AS last_ts, {_FIRST_LAST[sql.backend]} "
        "FROM points p WHERE p.ts >= $2 AND p.ts < $3 AND p.value IS NOT NULL "
        "AND p.quality < $4 GROUP BY p.tag_id, hour_ms) "
        "SELECT t.path AS tag, a.hour_ms, a.vmin, a.vmax, a.vsum, a.vcount, a.first_ts, "
        "a.first_value, a.last_ts, a.last_value FROM a JOIN tags t ON t.id = a.tag_id "
        "WHERE t.enterprise = $1",
        [enterprise, start_ms, end_ms, int(Quality.BAD)],
    )  # grouped by tag id, named after: cheaper than grouping by path
    return table.sort_by([("tag", "ascending"), ("hour_ms", "ascending")])


_AGGREGATE = [
    ("vmin", "min"),
    ("vmax", "max"),
    ("vsum", "sum"),
    ("vcount", "sum"),
    ("first_ts", "min"),
    ("last_ts", "max"),
    ("first_value", "first"),
    ("last_value", "last"),
]


def _merge(older: pa.Table, newer: pa.Table) -> pa.Table:
    """Merge aggregates of the same tags and hours where ``newer``'s points follow ``older``'s."""
    if not older.num_rows:
        return newer
    if not newer.num_rows:
        return older
    both = pa.concat_tables([older, newer.cast(older.schema)])
    out = both.group_by(["tag", "hour_ms"], use_threads=False).aggregate(_AGGREGATE)
    names = {f"{n}_{f}": n for n, f in _AGGREGATE}
    out = out.rename_columns([names.get(c, c) for c in out.column_names])
    return out.select(older.column_names)


class HourlyCache:
    """Hourly aggregates of an enterprise's points, read incrementally.

    Closed hours (``grace_ms`` past their end, so late points inside the grace are seen) are
    read once and kept. The open hours are read from where the last call stopped and merged in,
    so a call scans only the points written since; when an hour closes it is read again whole.
    """

    def __init__(self, grace_ms: int = 120_000) -> None:
        self.grace_ms = grace_ms
        self._closed: dict[tuple[str, int], pa.Table] = {}
        #: per enterprise: (first open hour, read up to ms, aggregates of [first open hour, …))
        self._open: dict[str, tuple[int, int, pa.Table]] = {}
        self.queries = 0

    def changed(self, enterprise: str, lo_ms: int, hi_ms: int) -> None:
        """Forget what a write into ``[lo_ms, hi_ms]`` made stale (a `Historian` listener).

        Closed hours it touched are read again; when it reaches back before where the open
        hours were read up to, they are read again whole.
        """
        first, last = lo_ms - lo_ms % HOUR_MS, hi_ms - hi_ms % HOUR_MS
        for key in [k for k in self._closed if k[0] == enterprise and first <= k[1] <= last]:
            self._closed.pop(key, None)
        open_part = self._open.get(enterprise)
        if open_part is not None and lo_ms < open_part[1]:
            self._open.pop(enterprise, None)

    def _read(self, historian: Historian, enterprise: str, start_ms: int, end_ms: int) -> pa.Table:
        self.queries += 1
        return read_hourly(historian, enterprise, start_ms, end_ms)

    def read(self, historian: Historian, enterprise: str, start_ms: int, end_ms: int) -> pa.Table:
        """Return the aggregates of the hours from ``start_ms``'s hour up to ``end_ms``."""
        first = start_ms - start_ms % HOUR_MS
        cut = end_ms - self.grace_ms
        closed_until = max(first, cut - cut % HOUR_MS)
        hours = range(first, closed_until, HOUR_MS)
        missing = [h for h in hours if (enterprise, h) not in self._closed]
        if missing:
            table = self._read(historian, enterprise, missing[0], closed_until)
            hour_col = table.column("hour_ms")
            for h in range(missing[0], closed_until, HOUR_MS):
                self._closed[(enterprise, h)] = table.filter(pc.equal(hour_col, h))
        for key in [k for k in self._closed if k[0] == enterprise and k[1] < first]:
            del self._closed[key]
        parts = [self._closed[(enterprise, h)] for h in hours]
        if end_ms > closed_until:
            since, upto, table = self._open.get(enterprise, (None, None, None))
            if since is None or upto is None or table is None or since > closed_until:
                table = self._read(historian, enterprise, closed_until, end_ms)
            else:
                if since < closed_until:  # an hour closed: drop it, it is read whole above
                    table = table.filter(pc.greater_equal(table.column("hour_ms"), closed_until))
                if end_ms > upto:
                    table = _merge(table, self._read(historian, enterprise, upto, end_ms))
            self._open[enterprise] = (closed_until, max(end_ms, upto or end_ms), table)
            parts.append(table)
        if not parts:
            return self._read(historian, enterprise, start_ms, start_ms + 1)
        table = pa.concat_tables([parts[0], *(t.cast(parts[0].schema) for t in parts[1:])])
        return table.sort_by([("tag", "ascending"), ("hour_ms", "ascending")])


def hourly_kwh(
    rows: Mapping[str, np.ndarray], start_ms: np.ndarray | int, end_ms: int
) -> np.ndarray:
    """Return kWh per hourly power aggregate (kW): mean × the part of the hour with data.

    An hour's covered time runs from its first to its last sample plus one sample step,
    clipped to ``[start_ms, end_ms)`` (``start_ms`` may be one value per row).
    """
    hour = rows["hour_ms"]
    n = rows["vcount"].astype(np.float64)
    first, last = rows["first_ts"], rows["last_ts"]
    step = np.where(n > 1, (last - first) / np.maximum(n - 1, 1), 0.0)
    lo = np.maximum(np.maximum(first, hour), start_ms)
    hi = np.minimum(np.minimum(last + step, hour + HOUR_MS), end_ms)
    span_h = np.clip(hi - lo, 0, None) / HOUR_MS
    mean = np.where(n > 0, rows["vsum"] / np.maximum(n, 1), 0.0)
    return np.where(np.isfinite(mean), mean * span_h, 0.0)


_COLS = ("hour_ms", "vsum", "vcount", "first_ts", "last_ts")


def _kwh_per_tag(table: pa.Table, day_start: Mapping[str, int], now_ms: int) -> dict[str, float]:
    """Return per tag the kWh (of power tags in kW) since its day start."""
    if not table.num_rows:
        return {}
    codes = table.column("tag").combine_chunks().dictionary_encode()
    names = codes.dictionary.to_pylist()
    idx = codes.indices.to_numpy(zero_copy_only=False)
    rows = {c: table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in _COLS}
    starts = np.array([day_start.get(n, now_ms) for n in names], np.float64)[idx]
    kwh = np.bincount(idx, hourly_kwh(rows, starts, now_ms), len(names))
    return dict(zip(names, kwh.tolist(), strict=True))


def site_today(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    now_ms: int,
    *,
    latest: pa.Table | None = None,
    current: CurrentState | None = None,
    hourly: HourlyCache | None = None,
) -> dict[str, SiteToday]:
    """Return each configured site's machines by state now and kWh today.

    ``latest`` is `Historian.latest` of the enterprise (read here when None); ``current`` is a
    running watcher's `PlantWatcher.current` (its states win over the latest readings);
    ``hourly`` keeps closed hours' aggregates between calls. OEE is not here: it comes from
    `oee_report` (`SiteOeeCache`), the one code path of every view.
    """
    del store  # states now come from the watcher or the newest readings
    machines = list(plant.machines)
    site_of = [m.id.split("/", 1)[0] for m in machines]  # ids are validated site/area/line/m
    calendars = {name: plant.site(name).calendar for name in set(site_of)}
    sites: dict[str, SiteToday] = {}
    for name in site_of:
        if name not in sites:
            sites[name] = SiteToday(name, day_start_ms(calendars[name].timezone, now_ms))
    if not sites:
        return {}
    hourly = hourly if hourly is not None else HourlyCache()
    if latest is None:
        latest = historian.latest(enterprise)
    power_tags = {m.id: f"{m.id}/{m.power_tag}" for m in machines if m.power_tag}
    newest: dict[str, dict[str, Any]] = {}
    if latest.num_rows:
        mask = pc.is_in(latest.column("tag"), pa.array(sorted(power_tags.values()), pa.string()))
        newest = {r["tag"]: r for r in latest.filter(mask).to_pylist()}
    earliest = min(s.day_start_ms for s in sites.values())
    table = hourly.read(historian, enterprise, earliest - HOUR_MS, now_ms + 1)
    tag_start = {
        tag: sites[name].day_start_ms
        for m, name in zip(machines, site_of, strict=True)
        if (tag := power_tags.get(m.id)) is not None
    }
    kwh_by_tag = _kwh_per_tag(table, tag_start, now_ms)
    for m, name in zip(machines, site_of, strict=True):
        s = sites[name]
        s.machines += 1
        live = current(m.id) if current is not None else None
        state = live[0] if live is not None else None
        if state is None:
            state = state_now(m, newest.get(power_tags.get(m.id, "")), now_ms)
        s.states[state if state in s.states else "unknown"] += 1
        if m.power_tag is not None and m.power_unit != "A":
            kwh = kwh_by_tag.get(f"{m.id}/{m.power_tag}")
            if kwh is not None:
                s.has_power = True
                s.kwh += kwh / 1000.0 if m.power_unit == "W" else kwh
    return sites


@dataclass(frozen=True, slots=True)
class SiteOee:
    """A site's OEE elements from `oee_report` over ``[start_ms, end_ms)`` (today so far)."""

    site: str
    start_ms: int
    end_ms: int
    elements: OeeElements | None  # None: the report refused (e.g. no machine configured)
    note: str = ""
    compute_ms: float = 0.0


def site_oee(
    store: PlantStore,
    historian: Historian,
    plant: PlantConfig,
    enterprise: str,
    site: str,
    now_ms: int,
    *,
    open_part: Callable[[str], Any] | None = None,
) -> SiteOee:
    """Return a site's OEE since its local midnight, from `oee_report` (the one code path)."""
    from indunet.errors import DataError
    from indunet.plant.report import oee_report

    started = time.perf_counter()
    start = day_start_ms(plant.site(site).calendar.timezone, now_ms)
    end = max(now_ms, start + 1)
    try:
        doc = oee_report(store, historian, plant, enterprise, site, start, end, open_part=open_part)
    except DataError as exc:
        return SiteOee(site, start, end, None, str(exc))
    took = (time.perf_counter() - started) * 1000
    return SiteOee(site, start, end, OeeElements.from_dict(doc["total"]), compute_ms=took)


class SiteOeeCache:
    """Each site's `SiteOee`, fresh for ``ttl_ms``; older ones are served while one refreshes.

    A site without a result for its current day is computed while the caller waits (the first
    request, or the first after local midnight). A result older than ``ttl_ms`` is returned as
    it is and the stale sites are computed again by one background thread, one site after the
    other (a site's report reads all its machines' counters: on a 2-core server several at
    once would only slow the requests down).
    """

    def __init__(self, ttl_ms: int = 30_000) -> None:
        self.ttl_ms = ttl_ms
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, SiteOee]] = {}
        self._thread: threading.Thread | None = None
        self._queue: dict[tuple[str, str], Callable[[], SiteOee]] = {}
        self.computed = self.refreshes = 0

    def get(
        self, enterprise: str, site: str, day_start: int, compute: Callable[[], SiteOee]
    ) -> SiteOee:
        """Return the site's OEE of the day starting at ``day_start`` (computing if needed)."""
        key = (enterprise, site)
        with self._lock:
            entry = self._entries.get(key)
        now = time.monotonic() * 1000
        if entry is None or entry[1].start_ms != day_start:
            result = compute()
            with self._lock:
                self._entries[key] = (time.monotonic() * 1000, result)
                self.computed += 1
            return result
        if now - entry[0] >= self.ttl_ms:
            self._schedule(key, compute)
        return entry[1]

    def _schedule(self, key: tuple[str, str], compute: Callable[[], SiteOee]) -> None:
        with self._lock:
            self._queue[key] = compute
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, daemon=True, name="site-oee")
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                key = next(iter(self._queue))
                compute = self._queue.pop(key)
            try:
                result = compute()
            except Exception:  # the old figures stay; the next request asks again
                log.exception("OEE refresh of %s failed", key)
                continue
            with self._lock:
                self._entries[key] = (time.monotonic() * 1000, result)
                self.refreshes += 1

    def drain(self, timeout: float = 60.0) -> None:
        """Wait for the background refresh (tests, benchmarks, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def clear(self) -> None:
        """Forget every site's figures."""
        self.drain()
        with self._lock:
            self._entries.clear()
