"""Historian benchmark: bulk writes and queries of indunet (DuckDB, PostgreSQL) beside InfluxDB 1.x.

Phases (each can be skipped):

1. naive  per-row ``executemany`` INSERT into a plain table of the historian's shape (DuckDB file
          and PostgreSQL), on a small sample, for the ratio bulk/naive.
2. cmp    the comparison dataset (default 1,000 tags x 1 hour at 1 s) written to indunet on
          DuckDB, indunet on PostgreSQL (COPY path) and a private InfluxDB 1.x; then the same
          bucketed query (one tag, whole range, 500 buckets, min/max/avg) and latest-of-all-tags
          on each.
3. full   the full dataset (default 1,000 tags x 1 day at 1 s = 86.4 M points) into DuckDB, then
          the bucketed query and latest before and after ``compact()``.
4. bg     the full dataset again, written while `serve`'s background compactor (HourCompactor)
          runs beside the writer, its clock following the data; once the last hour has closed
          and the compactor caught up, the bucketed query *without* a manual ``compact()``.
          Verdict line: that query's median against the 5 ms target.

Points are made with numpy, 1 s apart, in batches of all tags x ``--batch-seconds`` (like a bulk
loader), time-major (each second, every tag) unless ``--order tag``. Only the ``write()`` /
HTTP write calls are timed; making the batches is not. Query figures are wall-clock times of the
public API call (``Historian.buckets`` / ``Historian.latest``, or one HTTP /query for InfluxDB,
including reading the answer), over ``--repeats`` calls on different tags.

    .venv/bin/python bench/historian.py --seconds 3600           # quick run (~1 min)
    .venv/bin/python bench/historian.py --json bench/results.json  # full size
    .venv/bin/python bench/historian.py --quick   # full + bg phases on 1,000 tags x 4 h
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from indunet.config import load_settings
from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.store.base import Historian, open_historian
from peer_influx import InfluxPeer, build_lines, influx_version

ENTERPRISE = "bench"
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BUCKETS = 500
TARGETS = {
    "duckdb_write_pps": 2_000_000,
    "pg_write_pps": 300_000,
    "bucket_median_ms": 20.0,
    "latest_median_ms": 10.0,
    "bg_bucket_median_ms": 5.0,
}


# ------------------------------------------------------------------------------ dataset
@dataclass(frozen=True)
class Dataset:
    """``tags`` tags x ``seconds`` seconds of 1 s numeric points, made in batches."""

    tags: int
    seconds: int
    batch_seconds: int = 600
    order: str = "time"
    seed: int = 42

    @property
    def points(self) -> int:
        return self.tags * self.seconds

    @property
    def start_ms(self) -> int:
        return T0_MS

    @property
    def end_ms(self) -> int:
        return T0_MS + self.seconds * 1000

    def label(self) -> str:
        return f"{self.tags} tags x {self.seconds} s = {self.points:,} points"

    def tag_names(self) -> list[str]:
        # site/area/line/machine/tag, 10 tags per machine, 10 machines per line
        return [
            f"plant1/area{i // 1000:02d}/line{i // 100 % 10:02d}/m{i // 10 % 10:02d}/t{i % 10}"
            for i in range(self.tags)
        ]

    def arrays(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (tag index, ts ms, value) per batch; the same numbers on every call."""
        tags = np.arange(self.tags, dtype=np.int32)
        phase = np.random.default_rng(self.seed).uniform(0, 2 * np.pi, self.tags)
        level = np.random.default_rng(self.seed + 1).uniform(10, 500, self.tags)
        for k, s0 in enumerate(range(0, self.seconds, self.batch_seconds)):
            n_s = min(self.batch_seconds, self.seconds - s0)
            secs = np.arange(s0, s0 + n_s, dtype=np.int64)
            if self.order == "time":
                idx = np.tile(tags, n_s)
                sec = np.repeat(secs, self.tags)
            else:
                idx = np.repeat(tags, n_s)
                sec = np.tile(secs, self.tags)
            rng = np.random.default_rng(self.seed * 1_000_003 + k)
            wave = np.sin(sec * (2 * np.pi / 3600.0) + phase[idx])
            values = np.round(level[idx] * (1 + 0.1 * wave) + rng.normal(0, 0.5, idx.size), 3)
            yield idx, T0_MS + sec * 1000, values

    def batches(self, names: pa.Array) -> Iterator[PointBatch]:
        types = {p: DataType.NUMBER for p in names.to_pylist()}
        for idx, ts, values in self.arrays():
            n = idx.size
            table = pa.Table.from_arrays(
                [
                    names.take(pa.array(idx)),
                    pa.array(ts, pa.int64()),
                    pa.array(values, pa.float64()),
                    pa.nulls(n, pa.string()),
                    pa.array(np.zeros(n, dtype=np.uint8), pa.uint8()),
                ],
                schema=POINT_SCHEMA,
            )
            yield PointBatch(ENTERPRISE, table, types)


# ------------------------------------------------------------------------------ helpers
def stats_ms(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))],
        "min_ms": ms[0],
        "max_ms": ms[-1],
    }


def timed(fn: Callable[[], Any], repeats: int) -> tuple[dict[str, float], Any]:
    """Call ``fn`` once untimed-as-first (reported as ``first_ms``), then ``repeats`` times."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        samples.append(time.perf_counter() - t)
    return {"first_ms": first * 1000, **stats_ms(samples)}, out


def rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fmt_rate(pps: float | None) -> str:
    return "-" if pps is None else f"{pps:,.0f} pts/s"


def fmt_ms(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.2f} ms"


# ------------------------------------------------------------------------------ indunet
def load_historian(
    h: Historian, ds: Dataset, after_batch: Callable[[PointBatch], None] | None = None
) -> dict[str, Any]:
    names = pa.array(ds.tag_names(), pa.string())
    write_s = 0.0
    stored = 0
    t_all = time.perf_counter()
    n_batches = 0
    per_batch: list[float] = []
    sizes: list[int] = []
    segments: list[float] = []
    for batch in ds.batches(names):
        t = time.perf_counter()
        res = h.write(batch, source="bench")
        dt = time.perf_counter() - t
        write_s += dt
        per_batch.append(len(batch) / dt)
        sizes.append(len(batch))
        stored += res.stored
        n_batches += 1
        if after_batch is not None:
            after_batch(batch)
        if res.rejected:
            raise RuntimeError(f"{len(res.rejected)} points rejected: {res.rejected[0]}")
        if n_batches % 24 == 0:
            seg = sum(len_ / r for len_, r in zip(sizes[-24:], per_batch[-24:], strict=True))
            segments.append(sum(sizes[-24:]) / seg)
            log(
                f"  {stored:,} points, {stored / write_s:,.0f} pts/s so far, "
                f"last 24 batches {segments[-1]:,.0f} pts/s"
            )
    total_s = time.perf_counter() - t_all
    return {
        "points": stored,
        "batches": n_batches,
        "write_s": write_s,
        "write_pps": stored / write_s,
        "end_to_end_s": total_s,
        "end_to_end_pps": stored / total_s,
        "batch_pps_min": min(per_batch),
        "batch_pps_median": statistics.median(per_batch),
        "batch_pps_max": max(per_batch),
        "batch_pps_first": per_batch[0],
        "batch_pps_last": per_batch[-1],
        "pps_per_24_batches": segments,
    }


def settle() -> None:
    """Flush dirty pages (os.sync) so queries do not run during the write-back of a load."""
    t = time.perf_counter()
    os.sync()
    log(f"  sync: {time.perf_counter() - t:.1f} s")


def query_indunet(h: Historian, ds: Dataset, tags: list[str], repeats: int) -> dict[str, Any]:
    """Median of bucketed queries over ``tags`` (one call each, cycled) and of latest()."""
    settle()
    h.resolve(ENTERPRISE, dict.fromkeys(tags, DataType.NUMBER))  # warm the tag-id cache
    queue = iter(tags * (repeats // len(tags) + 2))

    def one_bucket() -> pa.Table:
        return h.buckets(ENTERPRISE, next(queue), ds.start_ms, ds.end_ms, BUCKETS)

    bucket, table = timed(one_bucket, repeats)
    counts = table.column("count").to_pylist()
    if sum(counts) != ds.seconds:
        raise RuntimeError(f"bucket counts add up to {sum(counts)}, expected {ds.seconds}")
    bucket["buckets_returned"] = table.num_rows
    latest, ltab = timed(lambda: h.latest(ENTERPRISE, ""), repeats)
    if ltab.num_rows != ds.tags:
        raise RuntimeError(f"latest returned {ltab.num_rows} rows, expected {ds.tags}")
    latest["rows"] = ltab.num_rows
    return {"buckets": bucket, "latest": latest}


def open_duckdb(path: Path) -> Historian:
    if path.exists():
        path.unlink()
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.unlink()
    return open_historian(load_settings(db=f"duckdb://{path}"))


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def open_pg(url: str, schema: str) -> Historian:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return open_historian(load_settings(db=url, pg_schema=schema))


def drop_pg_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def pg_schema_bytes(url: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        row = con.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind IN ('r', 'm')",
            [schema],
        ).fetchone()
    return int(row[0])


# ------------------------------------------------------------------------------ naive inserts
def naive_rows(n: int) -> list[tuple[int, int, float, None, int]]:
    rng = np.random.default_rng(7)
    tags = 1000
    values = np.round(rng.normal(100, 5, n), 3).tolist()
    return [(i % tags + 1, T0_MS + (i // tags) * 1000, values[i], None, 0) for i in range(n)]


def naive_duckdb(path: Path, rows: list[tuple]) -> dict[str, Any]:
    if path.exists():
        path.unlink()
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE TABLE naive_points (tag_id INTEGER NOT NULL, ts BIGINT NOT NULL, "
            "value DOUBLE, text VARCHAR, quality UTINYINT NOT NULL)"
        )
        t = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        con.executemany("INSERT INTO naive_points VALUES (?, ?, ?, ?, ?)", rows)
        con.execute("COMMIT")
        dt = time.perf_counter() - t
        n = con.execute("SELECT count(*) FROM naive_points").fetchone()[0]
    finally:
        con.close()
        path.unlink(missing_ok=True)
    return {"rows": n, "seconds": dt, "pps": n / dt}


def naive_pg(url: str, schema: str, rows: list[tuple]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"DROP TABLE IF EXISTS {schema}.naive_points")
        con.execute(
            f"CREATE TABLE {schema}.naive_points (tag_id INTEGER NOT NULL, ts BIGINT NOT NULL, "
            "value DOUBLE PRECISION, text TEXT, quality SMALLINT NOT NULL)"
        )
        t = time.perf_counter()
        with con.transaction(), con.cursor() as cur:
            cur.executemany(f"INSERT INTO {schema}.naive_points VALUES (%s, %s, %s, %s, %s)", rows)
        dt = time.perf_counter() - t
        n = con.execute(f"SELECT count(*) FROM {schema}.naive_points").fetchone()[0]
        con.execute(f"DROP TABLE {schema}.naive_points")
    return {"rows": n, "seconds": dt, "pps": n / dt}


# ------------------------------------------------------------------------------ influx
def load_influx(peer: InfluxPeer, ds: Dataset, lines_per_post: int) -> dict[str, Any]:
    names = ds.tag_names()
    peer.reset_db("bench")

    def groups() -> Iterator[list[bytes]]:
        for idx, ts, values in ds.arrays():
            yield build_lines("m", names, idx, ts, values, lines_per_post)

    t = time.perf_counter()
    res = peer.load("bench", groups())
    total = time.perf_counter() - t
    n = peer.count("bench", "m")
    if n != ds.points:
        raise RuntimeError(f"influx holds {n} points, expected {ds.points}")
    return {
        "points": n,
        "lines_per_post": lines_per_post,
        "posts": res["posts"],
        "retries_5xx": res["retries"],
        "write_s": res["write_s"],
        "write_pps": n / res["write_s"],
        "end_to_end_s": total,
    }


def query_influx(peer: InfluxPeer, ds: Dataset, tags: list[str], repeats: int) -> dict[str, Any]:
    settle()
    width_ms = -(-(ds.end_ms - ds.start_ms) // BUCKETS)
    queue = iter(tags * (repeats // len(tags) + 2))

    def one_bucket() -> dict[str, Any]:
        tag = next(queue).replace("'", "\\'")
        return peer.query(
            f"SELECT min(value), max(value), mean(value) FROM m WHERE \"tag\" = '{tag}' "
            f"AND time >= {ds.start_ms}ms AND time < {ds.end_ms}ms "
            f"GROUP BY time({width_ms}ms) fill(none)",
            "bench",
        )

    bucket, res = timed(one_bucket, repeats)
    bucket["buckets_returned"] = len(res["results"][0]["series"][0]["values"])
    bucket["group_by"] = f"time({width_ms}ms)"
    latest, lres = timed(
        lambda: peer.query('SELECT last(value) FROM m GROUP BY "tag"', "bench"), repeats
    )
    latest["rows"] = len(lres["results"][0]["series"])
    if latest["rows"] != ds.tags:
        raise RuntimeError(f"influx latest returned {latest['rows']} series, expected {ds.tags}")
    return {"buckets": bucket, "latest": latest}


# ------------------------------------------------------------------------------ environment
def environment(pg_url: str | None, influx_bin: str) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    import psycopg

    env: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "psycopg": psycopg.__version__,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "influxdb": influx_version(influx_bin),
    }
    with contextlib.suppress(OSError):
        env["influxdb_package"] = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "influxdb"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    if pg_url:
        try:
            with psycopg.connect(pg_url, connect_timeout=5) as con:
                env["postgresql"] = con.execute("SHOW server_version").fetchone()[0]
        except psycopg.Error as exc:
            env["postgresql"] = f"unreachable: {exc}"
    return env


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tags", type=int, default=1000, help="full dataset: tags (default 1000)")
    p.add_argument(
        "--seconds",
        type=int,
        default=86_400,
        help="full dataset: seconds at 1 s (default 86400 = 1 day)",
    )
    p.add_argument(
        "--cmp-tags",
        type=int,
        default=1000,
        help="comparison dataset (DuckDB, PostgreSQL, InfluxDB): tags",
    )
    p.add_argument(
        "--cmp-seconds", type=int, default=3600, help="comparison dataset: seconds (default 3600)"
    )
    p.add_argument(
        "--batch-seconds",
        type=int,
        default=600,
        help="seconds per write batch (all tags x this); default 600",
    )
    p.add_argument(
        "--order",
        choices=("time", "tag"),
        default="time",
        help="row order inside a batch: time-major (default) or tag-major",
    )
    p.add_argument("--repeats", type=int, default=50, help="timed calls per query (default 50)")
    p.add_argument(
        "--naive-rows",
        type=int,
        default=20_000,
        help="rows for the per-row executemany baseline, one transaction (default 20000)",
    )
    p.add_argument(
        "--lines-per-post",
        type=int,
        default=10_000,
        help="InfluxDB line-protocol lines per HTTP write (default 10000)",
    )
    p.add_argument("--workdir", type=Path, default=Path("/tmp/indunet-bench"))
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument(
        "--pg-schema",
        default="bench",
        help="dedicated PostgreSQL schema; DROPPED at start and end (default bench)",
    )
    p.add_argument("--influx-bin", default="/usr/bin/influxd")
    p.add_argument("--influx-port", type=int, default=18186)
    p.add_argument(
        "--influx-url",
        default=None,
        help="use a running InfluxDB 1.x at this URL instead of starting one",
    )
    p.add_argument(
        "--skip",
        default="",
        help="comma list of phases/backends to skip: naive,cmp,full,pg,influx,compact",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="only the full and bg phases, on --tags x 4 h (unless --seconds is given)",
    )
    p.add_argument("--keep", action="store_true", help="keep the DuckDB files in --workdir")
    p.add_argument("--json", type=Path, default=None, help="write all results to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.quick:
        skip |= {"naive", "cmp", "pg", "influx"}
        if "--seconds" not in (argv if argv is not None else sys.argv):
            args.seconds = 4 * 3600
    args.workdir.mkdir(parents=True, exist_ok=True)
    use_pg = "pg" not in skip
    result: dict[str, Any] = {
        "argv": sys.argv,
        "env": environment(args.pg_url if use_pg else None, args.influx_bin),
        "targets": TARGETS,
    }
    log("environment: " + json.dumps(result["env"]))
    if use_pg:
        try:
            import indunet.store.postgres  # noqa: F401
        except ImportError as exc:
            log(f"PostgreSQL skipped: {exc}")
            use_pg = False
            result["pg_skipped"] = str(exc)

    try:
        # ------------------------------------------------------------ naive
        if "naive" not in skip:
            rows = naive_rows(args.naive_rows)
            log(f"naive executemany, {len(rows):,} rows")
            result["naive_duckdb"] = naive_duckdb(args.workdir / "naive.duckdb", rows)
            log(f"  DuckDB executemany: {fmt_rate(result['naive_duckdb']['pps'])}")
            if use_pg:
                result["naive_pg"] = naive_pg(args.pg_url, args.pg_schema, rows)
                log(f"  PostgreSQL executemany: {fmt_rate(result['naive_pg']['pps'])}")

        # ------------------------------------------------------------ comparison dataset
        if "cmp" not in skip:
            ds = Dataset(args.cmp_tags, args.cmp_seconds, args.batch_seconds, args.order)
            sample = random.Random(1).sample(ds.tag_names(), min(ds.tags, 25))
            cmp: dict[str, Any] = {"dataset": ds.label(), "tags": ds.tags, "seconds": ds.seconds}
            result["cmp"] = cmp
            log(f"comparison dataset: {ds.label()}")

            path = args.workdir / "cmp.duckdb"
            h = open_duckdb(path)
            try:
                log("  indunet/DuckDB: write")
                cmp["duckdb_write"] = load_historian(h, ds)
                log(f"  indunet/DuckDB: {fmt_rate(cmp['duckdb_write']['write_pps'])}")
                cmp["duckdb_query"] = query_indunet(h, ds, sample, args.repeats)
                if "compact" not in skip:
                    t = time.perf_counter()
                    h.compact()
                    cmp["duckdb_compact_s"] = time.perf_counter() - t
                    cmp["duckdb_query_compacted"] = query_indunet(h, ds, sample, args.repeats)
                cmp["duckdb_bytes"] = file_bytes(path)
            finally:
                h.close()
                if not args.keep:
                    for f in path.parent.glob(path.name + "*"):
                        f.unlink()

            if use_pg:
                h = open_pg(args.pg_url, args.pg_schema)
                try:
                    log("  indunet/PostgreSQL: write")
                    cmp["pg_write"] = load_historian(h, ds)
                    log(f"  indunet/PostgreSQL: {fmt_rate(cmp['pg_write']['write_pps'])}")
                    cmp["pg_query"] = query_indunet(h, ds, sample, args.repeats)
                    cmp["pg_bytes"] = pg_schema_bytes(args.pg_url, args.pg_schema)
                finally:
                    h.close()
                    drop_pg_schema(args.pg_url, args.pg_schema)

            if "influx" not in skip:
                peer = InfluxPeer(
                    args.workdir / "influx",
                    http_port=args.influx_port,
                    rpc_port=args.influx_port + 2,
                    binary=args.influx_bin,
                    url=args.influx_url,
                )
                peer.start()
                try:
                    cmp["influx_server"] = peer.server_version()
                    log(f"  InfluxDB {cmp['influx_server']}: write")
                    cmp["influx_write"] = load_influx(peer, ds, args.lines_per_post)
                    log(f"  InfluxDB: {fmt_rate(cmp['influx_write']['write_pps'])}")
                    cmp["influx_query"] = query_influx(peer, ds, sample, args.repeats)
                    cmp["influx_bytes"] = peer.disk_bytes()
                    cmp["influx_rss_peak_bytes"] = peer.rss_bytes()
                    if args.influx_url:
                        peer.query('DROP DATABASE "bench"')
                finally:
                    peer.stop()
                    if not args.influx_url and not args.keep:
                        shutil.rmtree(args.workdir / "influx", ignore_errors=True)

        # ------------------------------------------------------------ full dataset (DuckDB)
        if "full" not in skip:
            ds = Dataset(args.tags, args.seconds, args.batch_seconds, args.order)
            sample = random.Random(2).sample(ds.tag_names(), min(ds.tags, 25))
            full: dict[str, Any] = {"dataset": ds.label(), "tags": ds.tags, "seconds": ds.seconds}
            result["full"] = full
            log(f"full dataset into DuckDB: {ds.label()}")
            path = args.workdir / "full.duckdb"
            h = open_duckdb(path)
            try:
                full["duckdb_write"] = load_historian(h, ds)
                log(f"  write: {fmt_rate(full['duckdb_write']['write_pps'])}")
                t = time.perf_counter()
                h.con.execute("CHECKPOINT")
                full["checkpoint_s"] = time.perf_counter() - t
                full["count"] = h.count()
                full["duckdb_bytes_before_compact"] = file_bytes(path)
                full["duckdb_query"] = query_indunet(h, ds, sample, args.repeats)
                log("  queries before compact: " + json.dumps(full["duckdb_query"]))
                if "compact" not in skip:
                    t = time.perf_counter()
                    h.compact()
                    full["compact_s"] = time.perf_counter() - t
                    log(f"  compact: {full['compact_s']:.1f} s")
                    full["duckdb_bytes_after_compact"] = file_bytes(path)
                    full["duckdb_query_compacted"] = query_indunet(h, ds, sample, args.repeats)
                    log("  queries after compact: " + json.dumps(full["duckdb_query_compacted"]))
            finally:
                h.close()
                if not args.keep:
                    for f in path.parent.glob(path.name + "*"):
                        f.unlink()

        # ------------------------------------------------------------ background compaction
        if "bg" not in skip:
            result["bg"] = background_phase(args)
    finally:
        if use_pg:
            drop_pg_schema(args.pg_url, args.pg_schema)
        result["bench_rss_peak_bytes"] = rss_peak_bytes()

    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        log(f"results written to {args.json}")
    return result


def background_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Write the full dataset while the background compactor runs; query without compact()."""
    import threading

    from indunet.store.base import DAY_MS, HOUR_MS
    from indunet.store.compaction import CompactionSettings, HourCompactor

    ds = Dataset(args.tags, args.seconds, args.batch_seconds, args.order)
    sample = random.Random(2).sample(ds.tag_names(), min(ds.tags, 25))
    bg: dict[str, Any] = {"dataset": ds.label(), "tags": ds.tags, "seconds": ds.seconds}
    log(f"full dataset into DuckDB with background compaction: {ds.label()}")
    path = args.workdir / "bg.duckdb"
    h = open_duckdb(path)
    clock = {"now": ds.start_ms}  # the data's clock: the newest point written
    settings = CompactionSettings(grace_s=0, interval_s=0.5)
    compactor = HourCompactor(h, settings, clock=lambda: clock["now"])
    compactor.start()
    try:

        def follow(batch: PointBatch) -> None:
            clock["now"] = max(clock["now"], batch.table.column("ts")[-1].as_py() + 1)
            compactor.wake()

        bg["duckdb_write"] = load_historian(h, ds, follow)
        log(f"  write beside the compactor: {fmt_rate(bg['duckdb_write']['write_pps'])}")
        # the data's last hour and its day close (serve's clock moves on past midnight)
        clock["now"] = max(ds.end_ms + HOUR_MS, (ds.end_ms - 1) // DAY_MS * DAY_MS + DAY_MS)
        caught_up = threading.Event()
        t = time.perf_counter()
        while not caught_up.is_set():
            compactor.wake()
            status = compactor.status()
            if status["pending_hours"] == 0 and status["pending_days"] == 0:
                caught_up.set()
            else:
                caught_up.wait(0.2)
        bg["catch_up_s"] = time.perf_counter() - t
        bg["compactor"] = compactor.status()
        log(f"  compactor caught up {bg['catch_up_s']:.1f} s after the load: {bg['compactor']}")
        bg["duckdb_query"] = query_indunet(h, ds, sample, args.repeats)
        log("  queries, no compact(): " + json.dumps(bg["duckdb_query"]))
    finally:
        compactor.stop()
        h.close()
        if not args.keep:
            for f in path.parent.glob(path.name + "*"):
                f.unlink()
    return bg


# ------------------------------------------------------------------------------ report
def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def _met(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "MET" if ok else "MISSED"


def report(r: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []

    def add(what: str, value: str, ref: str = "", verdict: str = "") -> None:
        rows.append((what, value, ref, verdict))

    nd, npg = _get(r, "naive_duckdb", "pps"), _get(r, "naive_pg", "pps")
    if nd:
        add(f"DuckDB naive executemany ({r['naive_duckdb']['rows']:,} rows)", fmt_rate(nd))
    if npg:
        add(f"PostgreSQL naive executemany ({r['naive_pg']['rows']:,} rows)", fmt_rate(npg))

    cmp = r.get("cmp")
    if cmp:
        ds = cmp["dataset"]
        dw, pw = _get(cmp, "duckdb_write", "write_pps"), _get(cmp, "pg_write", "write_pps")
        iw = _get(cmp, "influx_write", "write_pps")
        add(
            f"[cmp {ds}] indunet/DuckDB write",
            fmt_rate(dw),
            f"vs naive {_ratio(dw, nd)}, vs influx {_ratio(dw, iw)}",
            _met(dw, TARGETS["duckdb_write_pps"], True),
        )
        add(
            f"[cmp {ds}] indunet/PostgreSQL write (COPY)",
            fmt_rate(pw),
            f"vs naive {_ratio(pw, npg)}, vs influx {_ratio(pw, iw)}",
            _met(pw, TARGETS["pg_write_pps"], True),
        )
        add(f"[cmp {ds}] InfluxDB write (line protocol)", fmt_rate(iw))
        for name, key in (("buckets", "buckets"), ("latest", "latest")):
            ib = _get(cmp, "influx_query", key, "median_ms")
            for label, qk in (
                ("indunet/DuckDB", "duckdb_query"),
                ("indunet/DuckDB compacted", "duckdb_query_compacted"),
                ("indunet/PostgreSQL", "pg_query"),
            ):
                v = _get(cmp, qk, key, "median_ms")
                if v is not None:
                    add(
                        f"[cmp] {label} {name} median",
                        fmt_ms(v),
                        f"influx/indunet {_ratio(ib, v)} (indunet faster if > 1)",
                    )
            if ib is not None:
                add(f"[cmp] InfluxDB {name} median", fmt_ms(ib))

    full = r.get("full")
    if full:
        ds = full["dataset"]
        fw = _get(full, "duckdb_write", "write_pps")
        add(
            f"[full {ds}] indunet/DuckDB write",
            fmt_rate(fw),
            "",
            _met(fw, TARGETS["duckdb_write_pps"], True),
        )
        for label, qk in (
            ("before compact", "duckdb_query"),
            ("after compact", "duckdb_query_compacted"),
        ):
            b = _get(full, qk, "buckets", "median_ms")
            lt = _get(full, qk, "latest", "median_ms")
            if b is not None:
                add(
                    f"[full] buckets median, {label}",
                    fmt_ms(b),
                    f"p90 {fmt_ms(_get(full, qk, 'buckets', 'p90_ms'))}",
                    _met(b, TARGETS["bucket_median_ms"], False),
                )
                add(
                    f"[full] latest({full['tags']} tags) median, {label}",
                    fmt_ms(lt),
                    f"p90 {fmt_ms(_get(full, qk, 'latest', 'p90_ms'))}",
                    _met(lt, TARGETS["latest_median_ms"], False),
                )
        if "compact_s" in full:
            add("[full] compact()", f"{full['compact_s']:.1f} s")

    bg = r.get("bg")
    if bg:
        bw = _get(bg, "duckdb_write", "write_pps")
        add(f"[bg {bg['dataset']}] write beside the compactor", fmt_rate(bw))
        add("[bg] compactor catch-up after the load", f"{bg['catch_up_s']:.1f} s")
        b = _get(bg, "duckdb_query", "buckets", "median_ms")
        add(
            "[bg] buckets median, background compaction, no compact()",
            fmt_ms(b),
            f"p90 {fmt_ms(_get(bg, 'duckdb_query', 'buckets', 'p90_ms'))}",
            _met(b, TARGETS["bg_bucket_median_ms"], False),
        )

    width = [max(len(row[i]) for row in rows) if rows else 0 for i in range(4)]
    print()
    print("=" * (sum(width) + 9))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)))
    print("=" * (sum(width) + 9))
    print(f"targets: {json.dumps(TARGETS)}")
    if bg:
        b = _get(bg, "duckdb_query", "buckets", "median_ms")
        target = TARGETS["bg_bucket_median_ms"]
        print(
            f"VERDICT: bucketed query over {bg['seconds'] / 3600:g} h of {bg['tags']} tags without "
            f"a manual compact(): {fmt_ms(b)} median (target <= {target:g} ms): "
            f"{_met(b, target, False)}"
        )


if __name__ == "__main__":
    main()
