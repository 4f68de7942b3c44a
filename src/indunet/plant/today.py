"""Today's figures per site for the overview, in few queries: states now, OEE and energy.

The JSON reports (`indunet.plant.report`) read raw points per machine, which is right for a
chosen range but costs seconds for hundreds of machines. The overview only needs "since local
midnight", so this module reads:

* the newest value of every tag (`Historian.latest`, one query) for each machine's state now,
  unless a running `PlantWatcher` knows it;
* hourly aggregates of every tag since the earliest site midnight (one query over raw points;
  closed hours are kept by `HourlyCache`, so later calls read only the open hour) for energy
  (mean kW × covered time per hour) and part counters (first/last per hour, with resets);
* the stored state segments (the plant store's ``plant_states``, one query) plus the watcher's
  open state, for availability within the planned busy time of each site's shift calendar.

OEE per site is Σ(ideal cycle × good parts) ÷ Σ planned busy time — sums, never averaged
ratios; it equals A × P × Q of ISO 22400-2. Hourly aggregates make these approximations of the
report's figures: a machine's parts of the day are scaled by the share of its running time that
lay in planned busy time (the report counts parts by timestamp), and a data gap inside an hour
is not removed from that hour's energy. bench/web_overview.py compares both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indunet.model import Quality
from indunet.plant.config import MachineConfig, PlantConfig
from indunet.plant.oee import overlap_ms
from indunet.plant.shifts import intersect, planned_busy
from indunet.plant.states import STATE_NAMES
from indunet.plant.store import PlantStore
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = [
    "HOUR_MS",
    "STATES",
    "HourlyCache",
    "SiteToday",
    "counter_increase",
    "day_start_ms",
    "hourly_kwh",
    "read_hourly",
    "read_running",
    "site_today",
    "state_now",
]

HOUR_MS = 3_600_000
#: the states a machine can be in now, as the overview counts them
STATES = ("running", "idle", "off", "offline", "unknown")
#: the watcher's current state of a machine: (state name, since ms), or None
CurrentState = Callable[[str], tuple[str, int] | None]


@dataclass
class SiteToday:
    """A site's machines by state now and its OEE time elements and energy since midnight."""

    site: str
    day_start_ms: int
    machines: int = 0
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    pbt_ms: int = 0
    apt_ms: int = 0
    produced: float = 0.0
    good: float = 0.0
    ideal_ms: float = 0.0
    ideal_good_ms: float = 0.0
    kwh: float = 0.0
    has_timelines: bool = False
    has_counters: bool = False
    has_power: bool = False

    @property
    def availability(self) -> float | None:
        """Return APT ÷ PBT, or None without planned time or state history."""
        return self.apt_ms / self.pbt_ms if self.pbt_ms and self.has_timelines else None

    @property
    def performance(self) -> float | None:
        """Return ideal time of the parts made ÷ APT, or None."""
        if not self.apt_ms or not self.has_counters:
            return None
        return self.ideal_ms / self.apt_ms

    @property
    def quality(self) -> float | None:
        """Return good ÷ produced parts, or None when nothing was made."""
        return self.good / self.produced if self.produced else None

    @property
    def oee(self) -> float | None:
        """Return Σ ideal time of good parts ÷ Σ planned busy time (A × P × Q), or None."""
        if self.availability is None or not self.has_counters:
            return None
        return self.ideal_good_ms / self.pbt_ms


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
    Calendars' planned busy time of the day is kept too (``busy``).
    """

    def __init__(self, grace_ms: int = 120_000) -> None:
        self.grace_ms = grace_ms
        self._closed: dict[tuple[str, int], pa.Table] = {}
        #: per enterprise: (first open hour, read up to ms, aggregates of [first open hour, …))
        self._open: dict[str, tuple[int, int, pa.Table]] = {}
        self.busy: dict[tuple[str, int], np.ndarray] = {}
        self.queries = 0

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


def read_running(store: PlantStore, enterprise: str, start_ms: int, end_ms: int) -> pa.Table:
    """Return the stored state segments overlapping a range: machine, start, end, running.

    One query over the plant store's ``plant_states`` table, for all machines at once.
    """
    return store.sql.query(
        "SELECT machine, start_ms, end_ms, state = 'running' AS running FROM plant_states "
        "WHERE enterprise = $1 AND end_ms > $2 AND start_ms < $3 ORDER BY machine, start_ms",
        [enterprise, start_ms, end_ms],
    )


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


def counter_increase(
    rows: Mapping[str, np.ndarray], same_tag: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """Return how much a resetting part counter rose in each kept hourly aggregate.

    Inside an hour the rise is last − first, or (max − first) + (last − min) when it dropped
    (a reset). Before it, the rise from the previous aggregate's last value is first − that,
    or first after a reset; ``same_tag`` says whether the previous row is of the same tag
    (else nothing is counted across). Rows not in ``keep`` count 0.
    """
    first, last = rows["first_value"], rows["last_value"]
    vmin, vmax = rows["vmin"], rows["vmax"]
    inside = np.where(vmin < first, (vmax - first) + (last - vmin), last - first)
    before = np.concatenate([[np.nan], last[:-1]])
    before = np.where(same_tag, before, np.nan)
    between = np.where(first >= before, first - before, first)
    between = np.where(np.isnan(before), 0.0, between)
    rise = np.clip(np.nan_to_num(inside), 0, None) + np.clip(np.nan_to_num(between), 0, None)
    return np.where(keep, rise, 0.0)


_COLS = ("hour_ms", "vmin", "vmax", "vsum", "vcount", "first_ts", "first_value", "last_ts",
         "last_value")  # fmt: skip


def _per_tag(
    table: pa.Table, day_start: Mapping[str, int], now_ms: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Return per tag the kWh (of power tags in kW) and the counter rise since its day start."""
    if not table.num_rows:
        return {}, {}
    codes = table.column("tag").combine_chunks().dictionary_encode()
    names = codes.dictionary.to_pylist()
    idx = codes.indices.to_numpy(zero_copy_only=False)
    rows = {c: table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in _COLS}
    starts = np.array([day_start.get(n, now_ms) for n in names], np.float64)[idx]
    same = np.concatenate([[False], idx[1:] == idx[:-1]])
    keep = rows["hour_ms"] + HOUR_MS > starts
    kwh = np.bincount(idx, hourly_kwh(rows, starts, now_ms), len(names))
    rise = np.bincount(idx, counter_increase(rows, same, keep), len(names))
    return dict(zip(names, kwh.tolist(), strict=True)), dict(zip(names, rise.tolist(), strict=True))


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
    """Return each configured site's figures: machines by state now, OEE elements, kWh today.

    ``latest`` is `Historian.latest` of the enterprise (read here when None); ``current`` is a
    running watcher's `PlantWatcher.current` (its states win over the latest readings);
    ``hourly`` keeps closed hours' aggregates and calendars between calls. Stored segments
    come from ``store``'s table (``plant_states``) in one query.
    """
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
    tag_start = {}
    for m, name in zip(machines, site_of, strict=True):
        for t in (m.power_tag, m.total_counter and m.total_counter.tag,
                  m.scrap_counter and m.scrap_counter.tag):  # fmt: skip
            if t:
                tag_start[f"{m.id}/{t}"] = sites[name].day_start_ms
    kwh_by_tag, rise_by_tag = _per_tag(table, tag_start, now_ms)
    # planned busy time since midnight, per site (or per machine with its own downtime)
    busy_key: list[str] = []
    busy_of: dict[str, np.ndarray] = {}
    for m, name in zip(machines, site_of, strict=True):
        s = sites[name]
        cal = calendars[name]
        key = m.id if any(d.machines for d in cal.planned_downtime) else name
        busy_key.append(key)
        if key not in busy_of:
            day = (key, s.day_start_ms)
            if day not in hourly.busy:
                for old in [k for k in hourly.busy if k[0] == key]:
                    del hourly.busy[old]
                hourly.busy[day] = planned_busy(
                    cal, s.day_start_ms, s.day_start_ms + 86_400_000, machine=m.id
                )
            busy_of[key] = intersect(hourly.busy[day], np.array([[s.day_start_ms, now_ms]]))
        s.pbt_ms += int((busy_of[key][:, 1] - busy_of[key][:, 0]).sum())
    # running segments: stored ones, then the watcher's open state up to now
    segs = read_running(store, enterprise, earliest, now_ms + 1)
    index = {m.id: i for i, m in enumerate(machines)}
    who = np.array([index.get(x, -1) for x in segs.column("machine").to_pylist()], np.int64)
    lo = segs.column("start_ms").to_numpy().astype(np.int64)
    hi = segs.column("end_ms").to_numpy().astype(np.int64)
    run = segs.column("running").to_numpy(zero_copy_only=False).astype(bool)
    last_end = np.full(len(machines), -(2**62), np.int64)
    known = who >= 0
    np.maximum.at(last_end, who[known], hi[known])
    has_segments = np.zeros(len(machines), bool)
    has_segments[who[known]] = True
    tails = []
    for i, (m, name) in enumerate(zip(machines, site_of, strict=True)):
        s = sites[name]
        live = current(m.id) if current is not None else None
        state = live[0] if live is not None else None
        if state is None:
            state = state_now(m, newest.get(power_tags.get(m.id, "")), now_ms)
        s.states[state if state in s.states else "unknown"] += 1
        if live is not None and live[0] in STATE_NAMES:
            has_segments[i] = True
            open_from = max(live[1], int(last_end[i]), s.day_start_ms)
            if open_from < now_ms and live[0] == "running":
                tails.append((i, open_from, now_ms))
    if tails:
        t_who, t_lo, t_hi = (np.array(c, np.int64) for c in zip(*tails, strict=True))
        who = np.concatenate([who, t_who])
        lo, hi = np.concatenate([lo, t_lo]), np.concatenate([hi, t_hi])
        run = np.concatenate([run, np.ones(len(tails), bool)])
    keep = run & (who >= 0)
    who, lo, hi = who[keep], lo[keep], hi[keep]
    starts = np.array([sites[n].day_start_ms for n in site_of], np.int64)
    lo, hi = np.maximum(lo, starts[who]), np.minimum(hi, now_ms)
    ok = hi > lo
    who, lo, hi = who[ok], lo[ok], hi[ok]
    apt = np.zeros(len(machines), np.int64)
    ran = np.bincount(who, hi - lo, len(machines)).astype(np.int64)
    keys = np.array([busy_key[i] for i in who.tolist()], dtype=object)
    for key, busy in busy_of.items():
        sel = keys == key
        if sel.any() and len(busy):
            apt += np.bincount(who[sel], overlap_ms(lo[sel], hi[sel], busy), len(machines)).astype(
                np.int64
            )
    for i, (m, name) in enumerate(zip(machines, site_of, strict=True)):
        s = sites[name]
        s.machines += 1
        s.has_timelines |= bool(has_segments[i])
        s.apt_ms += int(apt[i])
        # of the parts made today, the share made in planned busy time (parts need running)
        share = apt[i] / ran[i] if ran[i] else 1.0
        if m.total_counter is not None:
            made = rise_by_tag.get(f"{m.id}/{m.total_counter.tag}")
            if made is not None:
                bad = 0.0
                if m.scrap_counter is not None:
                    bad = rise_by_tag.get(f"{m.id}/{m.scrap_counter.tag}", 0.0)
                made, bad = made * share, bad * share
                s.has_counters = True
                s.produced += made
                s.good += max(made - bad, 0.0)
                cycle = m.ideal_cycle()
                if cycle is not None:
                    s.ideal_ms += made * cycle * 1000
                    s.ideal_good_ms += max(made - bad, 0.0) * cycle * 1000
        if m.power_tag is not None and m.power_unit != "A":
            kwh = kwh_by_tag.get(f"{m.id}/{m.power_tag}")
            if kwh is not None:
                s.has_power = True
                s.kwh += kwh / 1000.0 if m.power_unit == "W" else kwh
    return sites
