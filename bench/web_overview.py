"""Server time of the overview page (GET /) with 3 sites × 200 machines (target: ≤ 100 ms).

Builds a DuckDB historian with the demo's plant config for 600 machines (`sim.live.build_plants`,
`sim.plant_config.demo_plant_config`), today's history of power, part and scrap counters at
10 s steps (`sim.plant.simulate`; written hour by hour in time order, as live ingest writes),
the machines' stored state timelines (`detect_states` → `PlantStore.save_segments`, what the
watcher stores) and the demo's business records (`sim.business`). The sites' time zone is the
``Etc/GMT`` zone in which it is now about 20:00, so "today" holds ~20 hours whenever it runs.

Then times in-process (FastAPI TestClient, signed with an admin key):

* ``cold``: the first GET / (reads the closed hours once);
* ``computing``: GET / with the overview cache cleared before each request, so the request
  computes and waits — the work of one refresh: latest values, the points since the previous
  refresh, stored segments, business, alarms, render;
* ``served``: GET / once every 100 ms for at least 5 s, as phones and wall screens ask: the
  2 s cache serves them, and when it is older a background refresh runs beside the requests;
* ``computing with OEE``: GET / with the sites' OEE cache cleared too, so every site's
  `oee_report` (the one OEE code path, since issue 14) runs while the request waits — the first
  request of a process; later ones are served while a background thread refreshes each site;
* peer, same data: the OEE and energy of each site for today from the JSON API's reports
  (`plant.report.oee_report` / `energy_report`), the time of one site's `oee_report`, whether
  the overview's OEE is identical to it, and how far the overview's kWh is from the report.

Run: .venv/bin/python bench/web_overview.py [--machines 600] [--requests 50] [--json OUT]
(about 5 minutes for 600 machines on 2 cores, most of it writing the data)
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import indunet
from indunet.api.app import create_app
from indunet.auth.store import AuthStore
from indunet.config import load_settings
from indunet.plant.report import energy_report, oee_report
from indunet.plant.states import STATE_NAMES, detect_states
from indunet.plant.store import PlantStore
from indunet.plant.today import HOUR_MS, day_start_ms
from indunet.sim.business import load_demo_business
from indunet.sim.live import build_plants
from indunet.sim.plant import SimMachine, simulate
from indunet.sim.plant_config import demo_plant_config
from indunet.store import open_historian

STEP_MS = 10_000


def _zone_at_20h(now_ms: int) -> str:
    """Return an Etc/GMT zone where the local time is 19:00–20:59 now."""
    hour = datetime.fromtimestamp(now_ms / 1000, UTC).hour
    offset = (20 - hour + 12) % 24 - 12  # -12 … +11 hours
    # Etc/GMT signs are inverted: Etc/GMT-8 is UTC+8
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", type=int, default=600)
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--requests", type=int, default=50, help="requests served, one per --gap-ms")
    ap.add_argument("--gap-ms", type=int, default=100)
    ap.add_argument("--computed", type=int, default=20, help="requests that compute")
    ap.add_argument("--no-peer", action="store_true", help="skip the per-machine report peer")
    ap.add_argument("--json", help="write the figures as JSON here")
    args = ap.parse_args()

    now = int(time.time() * 1000) // 1000 * 1000
    zone = _zone_at_20h(now)
    plants = build_plants(args.sites, args.machines, 7)
    cfg = demo_plant_config(plants)
    sites = {
        name: s.model_copy(update={"calendar": s.calendar.model_copy(update={"timezone": zone})})
        for name, s in cfg.sites.items()
    }
    cfg = cfg.model_copy(update={"sites": sites})
    settings = load_settings(data_dir=tempfile.mkdtemp(prefix="bench-overview-"), plant=cfg)
    historian = open_historian(settings)
    ent = settings.enterprise
    start = day_start_ms(zone, now) - HOUR_MS  # an hour of yesterday for counters' context
    t0 = time.perf_counter()
    past = tuple(SimMachine(m.path, m.rated_kw * 0.08, m.rated_kw, m.cycle_s) for m in plants)
    batch = simulate(past, start, now - 2000, STEP_MS, enterprise=ent)
    table = batch.table.filter(
        pc.match_substring_regex(batch.table.column("tag"), r"/(power_kw|parts_total|scrap_total)$")
    )
    table = table.sort_by([("ts", "ascending"), ("tag", "ascending")])
    ts = table.column("ts").to_numpy()
    points = table.num_rows
    for lo in range(start, now, HOUR_MS):  # hour by hour, in time order like live ingest
        a, b = np.searchsorted(ts, [lo, lo + HOUR_MS])
        if b > a:
            batch.table = table.slice(int(a), int(b - a))
            historian.write(batch, source="bench")
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = PlantStore(historian, cfg)
    power = table.filter(pc.match_substring_regex(table.column("tag"), r"/power_kw$"))
    power = power.sort_by([("tag", "ascending"), ("ts", "ascending")])
    tags = power.column("tag").to_numpy(zero_copy_only=False)
    cut = np.flatnonzero(tags[1:] != tags[:-1]) + 1
    bounds = np.concatenate([[0], cut, [len(tags)]])
    by_id = {m.id: m for m in cfg.machines}
    pts, vals = power.column("ts").to_numpy(), power.column("value").to_numpy()
    parts = []
    for a, b in itertools.pairwise(bounds):
        m = by_id[str(tags[a]).rsplit("/", 1)[0]]
        tl = detect_states(
            pts[a:b], vals[a:b], m.thresholds, interval_ms=STEP_MS,
            offline_after_ms=3 * STEP_MS, start_ms=start, end_ms=now - 2000, machine=m.id,
        )  # fmt: skip
        parts.append(
            pa.table(
                {
                    "enterprise": pa.array([ent] * len(tl), pa.string()),
                    "machine": pa.array([m.id] * len(tl), pa.string()),
                    "start_ms": pa.array(tl.start_ms, pa.int64()),
                    "end_ms": pa.array(tl.end_ms, pa.int64()),
                    "state": pa.array([STATE_NAMES[x] for x in tl.state], pa.string()),
                    "reason": pa.nulls(len(tl), pa.string()),
                }
            )
        )
    rows = pa.concat_tables(parts)  # what the watcher stores, in one upsert
    segments = store.sql.upsert("plant_states", rows, ("enterprise", "machine", "start_ms"))
    t_states = time.perf_counter() - t0
    reports = load_demo_business(historian, ent, [m.path for m in plants], now_ms=now)
    records = sum(r.stored for r in reports.values())
    print(
        f"data: {args.machines} machines on {args.sites} sites, zone {zone}, today "
        f"{(now - start - HOUR_MS) / HOUR_MS:.1f} h; {points:,} points written in "
        f"{t_write:.1f} s; {segments:,} state segments stored in {t_states:.1f} s; "
        f"{records} business records"
    )

    from fastapi.testclient import TestClient

    app = create_app(settings, historian)
    key = AuthStore(historian).create_key(ent, "admin", name="bench", now_ms=now).secret
    figures: dict[str, object] = {}
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"

        def get() -> tuple[float, str]:
            t = time.perf_counter()
            r = client.get("/")
            took = time.perf_counter() - t
            assert r.status_code == 200, r.text[:300]
            return took, r.headers.get("server-timing", "")

        cold, timing = get()
        print(f"cold GET /: {cold * 1000:.1f} ms ({timing})")
        cache = app.state.overview_cache
        computed, compute_only = [], []
        for _ in range(args.computed):
            cache.clear()  # the request computes and waits: the work of one refresh
            took, timing = get()
            computed.append(took)
            compute_only.append(float(timing.split("dur=")[1].split(";")[0]) / 1000)
        oee_cold = []
        for _ in range(3):  # also without the sites' OEE: every site's oee_report is computed
            cache.clear()
            cache.oee.clear()
            took, timing = get()
            oee_cold.append(took)
        cache.clear()
        get()
        served, refreshes = [], cache.refreshes
        t_end = time.perf_counter() + args.requests * args.gap_ms / 1000
        while len(served) < args.requests or time.perf_counter() < t_end:
            took, timing = get()  # as phones and wall screens ask: some while a refresh runs
            served.append(took)
            time.sleep(args.gap_ms / 1000)
        cache.drain()
        refreshes = cache.refreshes - refreshes
        # worst case: every site's OEE is always stale, so a background oee_report runs all
        # the time beside the requests (in use it runs once per site every 30 s at most)
        cache.oee.ttl_ms = 0
        busy, t_end = [], time.perf_counter() + args.requests * args.gap_ms / 1000
        while len(busy) < args.requests or time.perf_counter() < t_end:
            took, timing = get()
            busy.append(took)
            time.sleep(args.gap_ms / 1000)
        cache.drain()
        oee_refreshes = cache.oee.refreshes
        html = client.get("/").text
        cache.drain()  # no refresh may outlive the historian
    rows = {
        "cold_ms": cold * 1000,
        "computed_p50_ms": _pct(computed, 50),
        "computed_p95_ms": _pct(computed, 95),
        "compute_only_p50_ms": _pct(compute_only, 50),
        "computed_with_oee_p50_ms": _pct(oee_cold, 50),
        "computed_with_oee_max_ms": max(oee_cold) * 1000,
        "oee_background_refreshes": oee_refreshes,
        "served_requests": len(served),
        "served_p50_ms": _pct(served, 50),
        "served_p95_ms": _pct(served, 95),
        "served_max_ms": max(served) * 1000,
        "background_refreshes": refreshes,
        "served_oee_refreshing_p50_ms": _pct(busy, 50),
        "served_oee_refreshing_p95_ms": _pct(busy, 95),
        "served_oee_refreshing_max_ms": max(busy) * 1000,
        "html_bytes": len(html.encode()),
    }
    figures["overview"] = rows
    print(
        f"GET / computing (cache cleared, the work of one refresh) ×{len(computed)}: "
        f"p50 {rows['computed_p50_ms']:.1f} ms, p95 {rows['computed_p95_ms']:.1f} ms "
        f"(figures alone p50 {rows['compute_only_p50_ms']:.1f} ms)"
    )
    print(
        f"GET / computing with the sites' OEE cleared too (every site's oee_report) "
        f"×{len(oee_cold)}: p50 {rows['computed_with_oee_p50_ms']:.1f} ms, "
        f"max {rows['computed_with_oee_max_ms']:.1f} ms; "
        f"{oee_refreshes} background OEE refreshes of a site in the whole run"
    )
    print(
        f"GET / served (one request every {args.gap_ms} ms, 2 s cache, refreshes behind) "
        f"×{len(served)}: p50 {rows['served_p50_ms']:.1f} ms, p95 {rows['served_p95_ms']:.1f} ms, "
        f"max {rows['served_max_ms']:.1f} ms; {refreshes} background refreshes; page "
        f"{rows['html_bytes']:,} bytes"
    )
    print(
        f"GET / served while the sites' OEE is refreshed all the time ×{len(busy)}: p50 "
        f"{rows['served_oee_refreshing_p50_ms']:.1f} ms, p95 "
        f"{rows['served_oee_refreshing_p95_ms']:.1f} ms, max "
        f"{rows['served_oee_refreshing_max_ms']:.1f} ms; {oee_refreshes} site OEE refreshes"
    )

    if not args.no_peer:
        from indunet.plant.today import site_oee, site_today

        day = day_start_ms(zone, now)
        t0 = time.perf_counter()
        peer = {}
        for site in sorted(sites):
            t1 = time.perf_counter()
            o = oee_report(store, historian, cfg, ent, site, day, now)["total"]
            t_oee = time.perf_counter() - t1
            e = energy_report(store, historian, cfg, ent, site, day, now)["total"]
            peer[site] = (o, e["kwh"], t_oee)
        t_peer = time.perf_counter() - t0
        ours = site_today(store, historian, cfg, ent, now)
        diffs = {}
        for s in peer:
            mine = site_oee(store, historian, cfg, ent, s, now).elements
            diffs[s] = {
                "oee_identical": mine is not None and mine.as_dict() == peer[s][0],
                "oee_report_s": peer[s][2],
                "kwh_percent": abs(ours[s].kwh - peer[s][1]) / peer[s][1] * 100,
            }
        figures["peer_reports_s"] = t_peer
        figures["difference"] = diffs
        print(f"peer: OEE + energy reports of the {len(peer)} sites for today: {t_peer:.2f} s")
        for s, d in diffs.items():
            print(
                f"  {s}: oee_report {d['oee_report_s']:.2f} s, overview OEE identical: "
                f"{d['oee_identical']}; kWh {ours[s].kwh:,.0f} vs {peer[s][1]:,.0f} "
                f"({d['kwh_percent']:.2f} %)"
            )
    figures["machine"] = {
        "python": platform.python_version(),
        "indunet": indunet.__version__,
        "duckdb": __import__("duckdb").__version__,
        "pyarrow": pa.__version__,
        "cpus": __import__("os").cpu_count(),
    }
    print(json.dumps(figures["machine"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
