"""Benchmark the resumption monitor on a simulated nation (prints figures, writes JSON).

    .venv/bin/python bench/region.py --enterprises 2200000 --days 150 --work /tmp/region-bench

Steps: simulate (NumPy → Parquet partitioned by date), initial import, one day's roll-up by
province × industry × size computed from the readings (``live``) and from the stored roll-ups,
the national trend by province over all days (both ways), one new day's readings imported
(+ roll-ups), one day's readings re-imported as corrections (+ roll-ups), API p95 of a day's
province table, and the same day roll-up in plain pandas (in a child process, so its memory
peak is its own).

``--nation DIR`` reuses a simulated nation written earlier (``registry.parquet`` +
``readings/date=…/``) and ``--db FILE`` an imported ``region.duckdb`` (both are kept): the full
2.2 M × 150 days takes long to generate and import on two shared cores, so generate it once.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl

from indunet.region.rate import Filters
from indunet.region.settings import RegionSettings
from indunet.region.simulate import simulate_nation, write_nation
from indunet.region.store import RegionStore

PANDAS_CHILD = r"""
import json, resource, sys, time
import pandas as pd
reg, base, day = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
e = pd.read_parquet(reg, columns=["enterprise_id", "province", "industry", "size"])
b = pd.read_parquet(base)
x = pd.read_parquet(day)
e["division"] = e["industry"].str[:3]
theta = 0.3
m = e.merge(b, on="enterprise_id", how="left").merge(x, on="enterprise_id", how="left")
m["reporting"] = m["kwh"].notna() & (m["baseline"] > 0)
m["resumed"] = m["reporting"] & (m["kwh"] > theta * m["baseline"])
m["kwh_r"] = m["kwh"].where(m["reporting"], 0.0)
m["base_r"] = m["baseline"].where(m["reporting"], 0.0)
g = m.groupby(["province", "division", "size"]).agg(
    enterprises=("enterprise_id", "size"), reporting=("reporting", "sum"),
    resumed=("resumed", "sum"), kwh=("kwh_r", "sum"), baseline=("base_r", "sum"))
g["rate"] = 100 * g["resumed"] / g["reporting"]
g["index"] = g["kwh"] / g["baseline"]
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "groups": len(g), "resumed": int(g["resumed"].sum()),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _timed(fn, repeat: int = 1):
    times = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return result, times


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--enterprises", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=150)
    ap.add_argument("--start", default="2019-12-01")
    ap.add_argument("--work", type=Path, default=Path("/tmp/region-bench"))
    ap.add_argument("--nation", type=Path, help="Reuse (or write once) the nation here.")
    ap.add_argument("--db", type=Path, help="Reuse (or import once into) this region.duckdb.")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--skip-live-trend", action="store_true", help="Skip the slow live trend.")
    ap.add_argument("--live-trend-limit", type=float, default=300.0, help="Stop it after, s.")
    ap.add_argument("--keep", action="store_true", help="Keep the generated files.")
    ap.add_argument("--json", type=Path, help="Also write the figures to this file.")
    args = ap.parse_args()
    start = date.fromisoformat(args.start)
    end = start + timedelta(days=args.days - 1)
    work: Path = args.work
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    nation_dir: Path = args.nation or work / "nation"
    db: Path = args.db or work / "region.duckdb"
    out: dict = {
        "enterprises": args.enterprises,
        "days": args.days,
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, "
        f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "polars": pl.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "load_average_at_start": list(__import__("os").getloadavg()),
    }

    def say(key: str, value) -> None:
        out[key] = value
        print(f"{key}: {value}", flush=True)

    if (nation_dir / "registry.parquet").exists():
        say("nation", f"reused {nation_dir}")
    else:
        nation, t = _timed(lambda: simulate_nation(args.enterprises))
        counts, t2 = _timed(lambda: write_nation(nation, start, end, nation_dir))
        del nation
        say("readings_rows", counts["readings"])
        say("simulate_and_write_s", round(t[0] + t2[0], 1))
    say(
        "parquet_mb",
        round(sum(p.stat().st_size for p in nation_dir.rglob("*.parquet")) / 2**20, 1),
    )

    settings = RegionSettings()
    fresh = not db.exists()
    store, t = _timed(lambda: RegionStore(settings, db))
    if not fresh:
        say("open_existing_db_s", round(t[0], 2))
    if fresh or not store.days():
        _, t = _timed(lambda: store.import_registry(nation_dir / "registry.parquet", effective=end))
        say("import_registry_s", round(t[0], 2))
        report, t = _timed(lambda: store.import_readings(nation_dir / "readings", today=end))
        say("initial_import_s", round(t[0], 1))
        say("initial_import_rows_per_s", round(report.stored / t[0]))
    else:
        say("db", f"reused {db}")
    stats = store.stats()
    say("enterprises_in_store", stats["enterprises"])
    say("readings_in_store", stats["readings"])
    days = store.days()
    start, end = days[0], days[-1]
    say("days_in_store", len(days))
    say("duckdb_file_mb", round(db.stat().st_size / 2**20, 1))
    say("rollup_rows", store._sql("SELECT count(*) FROM rollups").fetchone()[0])
    _, t = _timed(lambda: store._build_dim())
    say("dimension_build_s", round(t[0], 2))

    day = date(2020, 3, 5) if start <= date(2020, 3, 5) <= end else end
    by3 = ["province", "industry", "size"]
    (frame, _), t = _timed(lambda: store.rate(day, by3, live=True), repeat=5)
    say("day_rollup_province_industry_size_live_s", round(statistics.median(t), 3))
    say("day_rollup_groups", frame.height)
    _, t = _timed(lambda: store.rate(day, by3), repeat=5)
    say("day_rollup_province_industry_size_stored_s", round(statistics.median(t), 4))
    if not args.skip_live_trend:  # interrupted after --live-trend-limit seconds
        timer = threading.Timer(args.live_trend_limit, store._con.interrupt)
        timer.start()
        try:
            _, t = _timed(lambda: store.trend(start, end, ["province"], live=True))
            say("trend_all_days_by_province_live_s", round(min(t), 2))
        except duckdb.InterruptException:
            say("trend_all_days_by_province_live_s", f"> {args.live_trend_limit} (interrupted)")
        finally:
            timer.cancel()
    _, t = _timed(lambda: store.trend(start, end, ["province"]), repeat=3)
    say("trend_all_days_by_province_stored_s", round(min(t), 3))
    sme = Filters.parse(size="medium,small,micro")
    say("headline_sme", store.headline(day, sme))
    say("headline_all", store.headline(day))

    # one new day: the last day's readings as the next day (new rows + that day's roll-ups)
    last = nation_dir / "readings" / f"date={end.isoformat()}" / "part-0.parquet"
    new_day = end + timedelta(days=1)
    new_dir = work / "new-day" / f"date={new_day.isoformat()}"
    new_dir.mkdir(parents=True, exist_ok=True)
    pl.read_parquet(last).write_parquet(new_dir / "part-0.parquet")
    report, t = _timed(lambda: store.import_readings(work / "new-day", today=new_day))
    say("new_day_rows", report.stored)
    say("new_day_import_and_rollups_s", round(t[0], 2))
    for table in ("readings", "reading_days", "rollups"):  # leave the file as it was
        store._sql(f"DELETE FROM {table} WHERE day = $d", {"d": new_day})
    shutil.rmtree(work / "new-day")

    # one day's readings again, as corrections (+3 %): replace + roll-up for that day
    part = nation_dir / "readings" / f"date={day.isoformat()}" / "part-0.parquet"
    corr = work / "correction" / f"date={day.isoformat()}"
    corr.mkdir(parents=True, exist_ok=True)
    pl.read_parquet(part).with_columns(pl.col("kwh") * 1.03).write_parquet(corr / "part-0.parquet")
    report, t = _timed(lambda: store.import_readings(work / "correction", today=end))
    say("one_day_reimport_rows", report.stored)
    say("one_day_reimport_replaced", report.replaced)
    say("one_day_reimport_and_rollups_s", round(t[0], 2))
    shutil.rmtree(work / "correction")
    (live_check, _), _ = _timed(lambda: store.rate(day, by3, live=True))
    stored_check, _ = store.rate(day, by3)
    ints = ["day", "province_code", "division", "size", "enterprises", "reporting", "resumed"]
    say(
        "stored_equals_live_after_correction",  # counts exactly; kWh sums to rounding
        live_check.select(ints).equals(stored_check.select(ints)),
    )

    # API p95 of a day's province table from the stored roll-ups
    store.close()
    from fastapi.testclient import TestClient

    from indunet.api.app import create_app
    from indunet.config import load_settings

    if db.name != "region.duckdb":
        raise SystemExit("--db must name a file called region.duckdb (the API opens that name)")
    app_settings = load_settings(data_dir=db.parent)  # the API's historian goes beside it
    with TestClient(create_app(app_settings)) as client:
        from indunet.auth.store import AuthStore  # the region routes need a chain operator

        chain = AuthStore(client.app.state.historian).create_key("*", "chain", now_ms=0)
        client.headers["Authorization"] = f"Bearer {chain.secret}"
        url = f"/api/v1/region/rate?date={day}&by=province"
        assert client.get(url).status_code == 200
        lat = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            r = client.get(url)
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200
        page = []
        for _ in range(max(10, args.requests // 10)):
            t0 = time.perf_counter()
            r = client.get(f"/region?date={day}")
            page.append(time.perf_counter() - t0)
            assert r.status_code == 200
    lat.sort()
    page.sort()
    say("api_rate_by_province_p50_ms", round(1000 * lat[len(lat) // 2], 1))
    say("api_rate_by_province_p95_ms", round(1000 * lat[int(len(lat) * 0.95)], 1))
    say("page_region_p50_ms", round(1000 * page[len(page) // 2], 1))
    say("page_region_p95_ms", round(1000 * page[int(len(page) * 0.95)], 1))

    # pandas peer on the same day (baselines handed over as a file, as DuckDB has them stored)
    store = RegionStore(settings, db)
    store._sql(
        f"COPY (SELECT k.enterprise_id, b.kwh AS baseline FROM baselines b JOIN enterprise_keys "
        f"k USING (eid)) TO '{work / 'baselines.parquet'}' (FORMAT parquet)"
    )
    store.close()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            PANDAS_CHILD,
            str(nation_dir / "registry.parquet"),
            str(work / "baselines.parquet"),
            str(part),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    peer = json.loads(child.stdout)
    say("pandas_day_rollup_s", round(peer["seconds"], 3))
    say("pandas_groups", peer["groups"])
    say("pandas_maxrss_mb", round(peer["maxrss_mb"]))
    say(
        "ratio_pandas_over_duckdb_live",
        round(peer["seconds"] / out["day_rollup_province_industry_size_live_s"], 1),
    )
    say(
        "ratio_pandas_over_duckdb_stored",
        round(peer["seconds"] / out["day_rollup_province_industry_size_stored_s"], 1),
    )
    say("bench_maxrss_mb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    say("load_average_at_end", list(__import__("os").getloadavg()))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    if not args.keep and args.db is None and args.nation is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
