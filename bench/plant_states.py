"""Benchmark: machine states + OEE for N machines x one day of 1 s power data.

Times indunet.plant (NumPy, vectorised) on all machines, and a straightforward pandas
row-by-row implementation of the same rules (``DataFrame.itertuples``) on a subset of
machines, scaled linearly to all of them. Both must give the same APT and stop times on the
subset. Prints the figures; ``--json`` writes them.

    .venv/bin/python bench/plant_states.py                 # 1,000 x 86,400 = 86.4 M points
    .venv/bin/python bench/plant_states.py --machines 50   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import time
from datetime import UTC, datetime
from datetime import time as dtime

import numpy as np
import pandas as pd

from indunet.plant.config import CounterConfig, Shift, ShiftCalendar, Thresholds
from indunet.plant.counters import counter_deltas
from indunet.plant.oee import OeeElements, machine_oee
from indunet.plant.shifts import planned_busy
from indunet.plant.states import detect_states

DAY_S = 86_400
START_MS = int(datetime(2026, 6, 10, tzinfo=UTC).timestamp() * 1000) - 2 * 3_600_000  # 00:00 CEST
TH = Thresholds(off_below=1.0, running_above=5.0, hysteresis=0.3, min_dwell_s=5)
CAL = ShiftCalendar(
    timezone="Europe/Berlin",
    shifts=[
        Shift(
            name="early", start=dtime(6), end=dtime(14), breaks=[{"start": "10:00", "end": "10:30"}]
        ),
        Shift(
            name="late", start=dtime(14), end=dtime(22), breaks=[{"start": "18:00", "end": "18:30"}]
        ),
        Shift(name="night", start=dtime(22), end=dtime(6)),
    ],
)
LEVELS = np.array([0.05, 2.5, 9.0])  # off, idle, running (kW)


def make_machine(seed: int, seconds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ts, power (kW) and a part counter sampled each minute, for one machine."""
    rng = np.random.default_rng(seed)
    n_blocks = seconds // 60 + 2
    lengths = rng.integers(10, 1800, n_blocks)
    states = rng.choice(3, n_blocks, p=[0.15, 0.25, 0.60])
    per_second = np.repeat(states, lengths)[:seconds]
    power = LEVELS[per_second] * (1 + 0.08 * rng.standard_normal(seconds))
    power += rng.normal(0, 0.05, seconds)
    # a few data gaps (missing samples) and bad-quality samples
    drop = rng.random(seconds) < 0.0005
    ts = START_MS + np.arange(seconds, dtype=np.int64) * 1000
    gap_at = rng.integers(0, seconds - 600)
    drop[gap_at : gap_at + 300] = True  # a 5-minute outage
    power[rng.random(seconds) < 0.0002] = np.nan
    keep = ~drop
    parts = np.cumsum(per_second == 2)[::60] // 45  # one part per 45 s of running
    return ts[keep], power[keep], parts.astype(float)


def indunet_machine(ts, power, parts, busy, window):
    """Compute the state timeline and OEE elements the way the platform does."""
    tl = detect_states(
        ts, power, TH, interval_ms=1000, offline_after_ms=5000, start_ms=window[0], end_ms=window[1]
    )
    counter_ts = START_MS + np.arange(len(parts), dtype=np.int64) * 60_000
    total = counter_deltas(counter_ts, parts, CounterConfig(tag="parts"))
    return machine_oee(tl, busy, window, total=total, ideal_cycle_s=40.0)


def pandas_row_by_row(ts, power, busy, window):
    """Apply the same state rules one row at a time with pandas, then sum time in PBT."""
    df = pd.DataFrame({"ts": ts, "power": power})
    h, ob, ra = TH.hysteresis, TH.off_below, TH.running_above
    runs: list[list] = []  # [start, end, state, session]
    raw = None
    session = 0
    prev_ts = None
    for row in df.itertuples(index=False):
        t, v = row.ts, row.power
        if prev_ts is not None and runs and runs[-1][1] is None:
            gap = t - prev_ts
            if gap <= 5000:
                runs[-1][1] = t
            else:
                runs[-1][1] = prev_ts + 1000
                runs.append([prev_ts + 1000, t, 3, None])
                raw = None
        if math.isnan(v):
            if runs and runs[-1][1] is None:
                runs[-1][1] = t
            runs.append([t, None, 3, None])
            raw = None
            prev_ts = t
            continue
        if prev_ts is not None and runs and runs[-1][2] == 3 and runs[-1][1] is None:
            runs[-1][1] = t
        if raw is None:
            session += 1
            raw = 0 if v < ob else 2 if v >= ra else 1
        elif raw == 0:
            raw = 2 if v >= ra + h else 1 if v >= ob + h else 0
        elif raw == 1:
            raw = 2 if v >= ra + h else 0 if v < ob - h else 1
        else:
            raw = 0 if v < ob - h else 1 if v < ra - h else 2
        if runs and runs[-1][3] == session and runs[-1][2] == raw:
            runs[-1][1] = None  # extend the open run
        else:
            runs.append([t, None, raw, session])
        prev_ts = t
    if runs and runs[-1][1] is None:
        runs[-1][1] = min(prev_ts + 1000, window[1]) if window[1] - prev_ts > 5000 else window[1]
        if window[1] - prev_ts > 5000:
            runs.append([prev_ts + 1000, window[1], 3, None])
    # minimum dwell
    dwell = TH.min_dwell_s * 1000
    long_state = long_session = None
    for r in runs:
        if r[3] is None:
            continue
        if r[1] - r[0] >= dwell:
            long_state, long_session = r[2], r[3]
        elif long_session == r[3]:
            r[2] = long_state
    # time per state inside the planned busy intervals
    per_state = [0, 0, 0, 0]
    first = int(ts[0]) if len(ts) else window[1]
    if first > window[0]:
        runs.insert(0, [window[0], first, 3, None])
    for s, e, st, _ in runs:
        for b0, b1 in busy:
            overlap = min(e, b1) - max(s, b0)
            if overlap > 0:
                per_state[st] += overlap
    return per_state


_DATA: list = []  # filled before forking, so worker processes share it copy-on-write


def _work(args: tuple[int, int, list, tuple[int, int]]) -> list[OeeElements]:
    lo, hi, busy, window = args
    busy_arr = np.asarray(busy, dtype=np.int64).reshape(-1, 2)
    return [indunet_machine(*_DATA[i], busy_arr, window) for i in range(lo, hi)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--machines", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=DAY_S)
    ap.add_argument("--baseline-machines", type=int, default=4)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()

    window = (START_MS, START_MS + args.seconds * 1000)
    busy = planned_busy(CAL, *window)
    print(f"generating {args.machines} machines x {args.seconds} s ...", flush=True)
    t0 = time.perf_counter()
    data = [make_machine(i, args.seconds) for i in range(args.machines)]
    points = sum(len(d[0]) for d in data)
    print(f"  {points:,} power points in {time.perf_counter() - t0:.1f} s (not timed)")

    _DATA[:] = data
    for i in range(min(3, len(data))):  # warm-up, untimed
        indunet_machine(*data[i], busy, window)
    t0 = time.perf_counter()
    elements = [indunet_machine(ts, p, parts, busy, window) for ts, p, parts in data]
    ours_s = time.perf_counter() - t0
    site = OeeElements.total(elements)
    print(
        f"indunet.plant, 1 process: {ours_s:.2f} s for states + OEE of {args.machines} "
        f"machines ({points / ours_s / 1e6:.1f} M points/s, "
        f"{ours_s / args.machines * 1000:.1f} ms per machine)"
    )
    print(
        f"  site: PBT {site.pbt_ms / 3.6e6:,.0f} h, A {site.availability:.3f}, "
        f"P {site.performance:.3f}, Q {site.quality:.3f}, OEE {site.oee:.3f}"
    )
    par_s = None
    if args.workers > 1:
        step = max(1, args.machines // (args.workers * 8))
        jobs = [
            (lo, min(lo + step, args.machines), busy.tolist(), window)
            for lo in range(0, args.machines, step)
        ]
        t0 = time.perf_counter()
        with mp.get_context("fork").Pool(args.workers) as pool:
            par = [e for chunk in pool.map(_work, jobs) for e in chunk]
        par_s = time.perf_counter() - t0
        if OeeElements.total(par) != site:
            raise SystemExit("parallel result differs from the single-process one")
        print(
            f"indunet.plant, {args.workers} processes (fork, pool start included): "
            f"{par_s:.2f} s ({points / par_s / 1e6:.1f} M points/s)"
        )

    k = min(args.baseline_machines, args.machines)
    t0 = time.perf_counter()
    base = [pandas_row_by_row(ts, p, busy.tolist(), window) for ts, p, _ in data[:k]]
    base_s = time.perf_counter() - t0
    base_points = sum(len(d[0]) for d in data[:k])
    scaled = base_s * points / base_points
    for i in range(k):
        e = elements[i]
        ours = [e.stop_ms["off"], e.stop_ms["idle"], e.apt_ms, e.stop_ms["offline"]]
        if ours != base[i]:
            raise SystemExit(f"machine {i}: row-by-row {base[i]} != indunet {ours}")
    ratio = scaled / ours_s
    print(
        f"pandas row-by-row (itertuples): {base_s:.2f} s on {k} machines "
        f"({base_points:,} points) -> scaled linearly to {args.machines} machines: "
        f"{scaled:,.0f} s; same per-state times on the subset: yes"
    )
    best = min(ours_s, par_s or ours_s)
    print(
        f"speed-up, 1 process vs row-by-row: {ratio:.0f}x  (targets: <= 10 s "
        f"{'met' if best <= 10 else 'MISSED'} with {best:.2f} s, >= 20x "
        f"{'met' if ratio >= 20 else 'MISSED'})"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.json:
        import importlib.metadata as md

        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "machines": args.machines,
                    "seconds": args.seconds,
                    "points": points,
                    "indunet_s": ours_s,
                    "indunet_parallel_s": par_s,
                    "workers": args.workers,
                    "loadavg_1min": os.getloadavg()[0],
                    "baseline_machines": k,
                    "baseline_s": base_s,
                    "baseline_scaled_s": scaled,
                    "speedup": ratio,
                    "site": site.as_dict(),
                    "env": {
                        "python": platform.python_version(),
                        "numpy": md.version("numpy"),
                        "pandas": md.version("pandas"),
                        "cpu": platform.processor() or platform.machine(),
                        "cores": os.cpu_count(),
                        "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    },
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
