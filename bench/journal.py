"""What the change journal costs the write path (issue 14), against the release before it.

Every stored batch now also journals, per followed tag (machines' power tags), the range it
wrote, in the same transaction. This times `Historian.write` of ingest-like batches (``--tags``
tags × ``--seconds`` s of 1 s points per batch) on DuckDB and PostgreSQL with a checkout of an
earlier commit (``--before``, its ``src`` folder) as the peer, and with this tree twice: no tag
followed, and 10 % of the tags followed (a plant's power tags among its other tags); alternating
runs in fresh processes, medians printed.

    git worktree add /tmp/before 2ed38ed        # the commit before the journal
    .venv/bin/python bench/journal.py --before /tmp/before/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432/test"

WORKER = r"""
import json, sys, time, tempfile, pathlib
import numpy as np, pyarrow as pa
from indunet.config import load_settings
from indunet.model import POINT_SCHEMA, PointBatch
from indunet.store import open_historian
tags, seconds, batches, db, schema, follow = sys.argv[1:7]
tags, seconds, batches, follow = int(tags), int(seconds), int(batches), follow == "1"
kw = {"db": db, "pg_schema": schema} if db != "-" else {}
h = open_historian(load_settings(data_dir=pathlib.Path(tempfile.mkdtemp()), **kw))
names = [f"s/a/l/m{i // 10}/t{i % 10}" for i in range(tags)]
if follow and hasattr(h, "follow_tags"):
    h.follow_tags("demo", [n for n in names if n.endswith("/t0")])
t0 = 1_780_000_000_000
total = 0.0
for b in range(batches):
    ts = t0 + (b * seconds + np.arange(seconds, dtype=np.int64)) * 1000
    tag = np.repeat(np.array(names, dtype=object)[None, :], seconds, 0).ravel()
    tt = np.repeat(ts, tags)
    n = len(tt)
    table = pa.table({"tag": pa.array(tag, pa.string()), "ts": pa.array(tt, pa.int64()),
                      "value": pa.array(np.random.rand(n)), "text": pa.nulls(n, pa.string()),
                      "quality": pa.array(np.zeros(n, np.uint8))}, schema=POINT_SCHEMA)
    start = time.perf_counter()
    h.write(PointBatch("demo", table))
    total += time.perf_counter() - start
h.close()
print(json.dumps({"points_per_s": tags * seconds * batches / total}))
"""


def run(src: Path, backend: str, args: argparse.Namespace, follow: bool = True) -> float:
    schema = f"bj_{uuid.uuid4().hex[:8]}"
    db = PG if backend == "postgresql" else "-"
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(args.tags), str(args.seconds), str(args.batches), db,
         schema, "1" if follow else "0"],
        env=env, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    if backend == "postgresql":
        import psycopg

        with psycopg.connect(PG, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return json.loads(out.stdout)["points_per_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="src folder of the earlier commit")
    ap.add_argument("--tags", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=5, help="seconds of points per batch")
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="duckdb,postgresql")
    args = ap.parse_args()
    print(
        f"{args.batches} batches of {args.tags} tags x {args.seconds} s (medians of {args.repeats})"
    )
    for backend in args.backends.split(","):
        got: dict[str, list[float]] = {"before": [], "none": [], "journal": []}
        for _ in range(args.repeats):
            got["before"].append(run(args.before, backend, args))
            got["none"].append(run(ROOT / "src", backend, args, follow=False))
            got["journal"].append(run(ROOT / "src", backend, args))
        b, n, a = (statistics.median(got[k]) for k in ("before", "none", "journal"))
        print(f"{backend:10s} before {b:10,.0f}   this tree, no tag followed {n:10,.0f} "
              f"({(n / b - 1) * 100:+.1f} %)   10 % followed {a:10,.0f} "
              f"({(a / b - 1) * 100:+.1f} %) points/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
