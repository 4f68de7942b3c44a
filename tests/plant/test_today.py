"""Today's figures for the overview agree with the OEE and energy reports, in few queries."""

from __future__ import annotations

import numpy as np
import pytest

from indunet.plant.report import energy_report, oee_report
from indunet.plant.store import PlantStore
from indunet.plant.today import (
    HOUR_MS,
    HourlyCache,
    SiteOee,
    SiteOeeCache,
    day_start_ms,
    read_hourly,
    site_oee,
    site_today,
    state_now,
)
from indunet.plant.watch import recompute_range
from tests.plant.plant_data import M1, M2, T0, plant, write

DAY = 86_400_000
START = T0 - T0 % DAY  # a UTC midnight
NOW = START + 3 * HOUR_MS + 1_800_000  # 03:30


def test_day_start_is_local_midnight():
    assert day_start_ms("UTC", NOW) == START
    assert day_start_ms("Asia/Shanghai", NOW) == START - 8 * HOUR_MS  # 08:00 local, same day


def _plant_data(historian):
    cfg = plant(M1, M2)
    t = np.arange(START - HOUR_MS, NOW - 600_000, 1000, dtype=np.int64)  # 1 s samples
    running = t < START + 2 * HOUR_MS
    write(historian, f"{M1}/power_kw", t, np.where(running, 10.0, 2.0))
    made = np.cumsum(running & (t % 10_000 == 0)).astype(float)
    reset = START + 90 * 60_000
    made = np.where(t >= reset, made - made[t < reset][-1], made)  # back to 0 at 01:30
    write(historian, f"{M1}/parts_total", t, made)
    write(historian, f"{M1}/scrap_total", t, np.floor(np.cumsum(running & (t % 500_000 == 0))))
    t2 = np.arange(START - HOUR_MS, NOW - 1000, 1000, dtype=np.int64)
    write(historian, f"{M2}/power_kw", t2, np.full(len(t2), 0.5))
    store = PlantStore(historian, cfg)
    for m in cfg.machines:
        recompute_range(store, historian, "demo", m, START - HOUR_MS, NOW)
    return cfg, store


def test_site_figures_match_the_reports(historian):
    cfg, store = _plant_data(historian)
    cache = HourlyCache()
    [site] = site_today(store, historian, cfg, "demo", NOW, hourly=cache).values()
    assert site.site == "s1" and site.machines == 2
    assert site.states == {"running": 0, "idle": 0, "off": 1, "offline": 1, "unknown": 0}
    oee = oee_report(store, historian, cfg, "demo", "s1", START, NOW)["total"]
    energy = energy_report(store, historian, cfg, "demo", "s1", START, NOW)["total"]
    # OEE is the report's own (one code path), not an approximation
    found = site_oee(store, historian, cfg, "demo", "s1", NOW)
    assert (found.start_ms, found.end_ms) == (START, NOW)
    assert found.elements is not None and found.elements.as_dict() == oee
    assert site.kwh == pytest.approx(energy["kwh"], rel=0.01)
    assert site.kwh == pytest.approx(2 * 10 + 1.5 * 2 - 10 / 60 * 2 + 3.5 * 0.5, rel=0.01)
    # a later call reads only the points since the last one (one query), same figures
    before = cache.queries
    [again] = site_today(store, historian, cfg, "demo", NOW + 5000, hourly=cache).values()
    assert cache.queries == before + 1
    assert again.kwh == pytest.approx(site.kwh, rel=1e-3)
    site_today(store, historian, cfg, "demo", NOW + 5000, hourly=cache)
    assert cache.queries == before + 1  # nothing new: no query


def test_watcher_state_wins(historian):
    cfg, store = _plant_data(historian)
    later = NOW + 120_000  # stored segments end at NOW; the watcher says running since before
    [site] = site_today(
        store, historian, cfg, "demo", later, current=lambda m: ("running", NOW - 60_000)
    ).values()
    assert site.states["running"] == 2


def test_site_oee_cache_serves_then_refreshes_in_the_background():
    calls = []

    def compute() -> SiteOee:
        calls.append(1)
        return SiteOee("s1", START, START + len(calls), None)

    cache = SiteOeeCache(ttl_ms=0)
    assert cache.get("demo", "s1", START, compute).end_ms == START + 1  # computed, waited
    assert cache.get("demo", "s1", START, compute).end_ms == START + 1  # stale: served
    cache.drain()
    assert cache.get("demo", "s1", START, compute).end_ms == START + 2  # refreshed behind
    cache.drain()
    # a new day is computed while the caller waits
    assert cache.get("demo", "s1", START + 86_400_000, compute).start_ms == START


def test_hourly_cache_merges_new_points_like_a_fresh_read(historian):
    tag = f"{M1}/power_kw"
    t = np.arange(START, START + 90 * 60_000, 10_000, dtype=np.int64)
    write(historian, tag, t, (t % 7).astype(float))
    cache = HourlyCache(grace_ms=60_000)
    first_now = START + 80 * 60_000
    cache.read(historian, "demo", START, first_now)
    t2 = np.arange(START + 90 * 60_000, START + 100 * 60_000, 10_000, dtype=np.int64)
    write(historian, tag, t2, np.full(len(t2), 99.0))
    end = START + 100 * 60_000
    merged = cache.read(historian, "demo", START, end)
    fresh = read_hourly(historian, "demo", START, end)
    assert merged.to_pylist() == fresh.to_pylist()
    assert merged.num_rows == 2 and merged.column("last_value")[1].as_py() == 99.0


def test_hourly_cache_follows_late_and_rewritten_points(historian):
    """Late points in a closed hour and re-written points in the open one reach the cache."""
    tag = f"{M1}/power_kw"
    cache = HourlyCache(grace_ms=60_000)
    historian.change_listeners.append(cache.changed)
    t = np.arange(START, START + 150 * 60_000, 10_000, dtype=np.int64)
    write(historian, tag, t, np.full(len(t), 5.0))
    now = START + 150 * 60_000
    cache.read(historian, "demo", START, now)
    # a late point into the first (closed) hour, and the open hour re-written
    write(historian, tag, [START + 5 * 60_000 + 1], [50.0])
    t3 = t[t >= START + 130 * 60_000]
    write(historian, tag, t3, np.full(len(t3), 1.0))
    got = cache.read(historian, "demo", START, now)
    assert got.to_pylist() == read_hourly(historian, "demo", START, now).to_pylist()
    assert got.column("vmax")[0].as_py() == 50.0


def test_state_from_the_newest_reading():
    [m] = plant(M1).machines
    assert state_now(m, None, NOW) == "unknown"
    assert state_now(m, {"ts": NOW - 1000, "value": 7.0, "quality": 0}, NOW) == "running"
    assert state_now(m, {"ts": NOW - 1000, "value": 3.0, "quality": 0}, NOW) == "idle"
    assert state_now(m, {"ts": NOW - 1000, "value": 0.2, "quality": 0}, NOW) == "off"
    assert state_now(m, {"ts": NOW - 60_000, "value": 7.0, "quality": 0}, NOW) == "offline"
    assert state_now(m, {"ts": NOW - 1000, "value": 7.0, "quality": 2}, NOW) == "unknown"
