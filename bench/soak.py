"""The long-run invariant run (issue 14): a simulated week of a plant through faults.

A plant with ground truth (`indunet.sim.truth`: states, part and scrap counters reset at every
shift change, energy meters) is published as fast as it goes through a private Mosquitto into
`indunet serve`, while `serve` is killed with kill -9 and stopped with Ctrl+C, the broker is
restarted, readings are re-sent, a block is withheld and sent last, and a device with a clock two
days ahead sends a reading. Afterwards every invariant is checked (`tests/soak.py`): every
reading stored once with its value, counts equal to the truth, APT + stops = PBT, A/P/Q equal to
the truth's state log, `indunet check` clean. The reduced version (2 h, 3 machines) runs in
`make test` as `tests/plant/test_soak.py`.

There is no peer here: ThingsBoard, UMH and the Node-RED/InfluxDB pipeline have no OEE from a
state log to compare, and the point of the run is the invariants, not a rate.

    .venv/bin/python bench/soak.py                      # a week, 5 machines, DuckDB
    .venv/bin/python bench/soak.py --db postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/soak.py --hours 24 --machines 3 --json bench/results/soak.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.soak import run_soak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=168.0, help="simulated hours (default a week)")
    ap.add_argument("--machines", type=int, default=5)
    ap.add_argument("--db", default=None, help="postgresql://… (default: DuckDB)")
    ap.add_argument("--json", type=Path, default=None, help="write the result here")
    args = ap.parse_args()
    if args.db:  # a schema of its own, dropped afterwards
        os.environ["INDUNET_PG_SCHEMA"] = f"soak_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="indunet-soak-") as tmp:
        print(
            f"soak: {args.machines} machines, {args.hours:g} simulated hours, "
            f"{'PostgreSQL' if args.db else 'DuckDB'}"
        )
        result = run_soak(
            Path(tmp), machines=args.machines, hours=args.hours, db=args.db, chunk=3600
        )
    if args.db:
        import psycopg

        with psycopg.connect(args.db, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {os.environ['INDUNET_PG_SCHEMA']} CASCADE")
    readings = args.machines * int(args.hours * 3600) * 4
    print(f"faults: {'; '.join(result.faults)}")
    print(f"published {result.published:,} messages, stored {result.stored:,} readings "
          f"(expected {readings:,}) in {result.seconds:.0f} s")  # fmt: skip
    for machine, ratios in result.machines.items():
        cells = "  ".join(f"{k} {got:.4f} (truth {ref:.4f})" for k, (got, ref) in ratios.items())
        print(f"  {machine}: {cells}")
    verdict = "PASS" if not result.failures else "FAIL"
    print(f"invariants: {verdict}" + "".join(f"\n  - {f}" for f in result.failures))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
                    "python": platform.python_version(),
                    "backend": "postgresql" if args.db else "duckdb",
                    "hours": args.hours,
                    "machines": args.machines,
                    "published": result.published,
                    "stored": result.stored,
                    "seconds": round(result.seconds, 1),
                    "faults": result.faults,
                    "ratios": result.machines,
                    "failures": result.failures,
                },
                indent=1,
            )
        )
    return 0 if not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
