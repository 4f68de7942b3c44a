"""Docking bench: HiGHS cost and fair allocation vs PuLP + CBC on the same model; ranking.

    python bench/docking.py [--offers 10000 --requests 10000 --lanes-per-request 100]
                            [--peer-scale 0.1] [--json OUT]

Targets (issue 10): 10,000 × 10,000 with 1,000,000 lanes: cost ≤ 10 s, fair ≤ 30 s; ranking one
request among 1,000,000 offers ≤ 100 ms. Validating the document is timed apart (``load_s``, the
column path for many lanes) and with the solve (``load_and_cost_s``); ``load_models_s`` is the
same document through one pydantic model per lane, measured in the same run. The PuLP + CBC peer
builds and solves the same cost model; on the full size it takes very long, so it runs at
--peer-scale of the lanes together with indunet on that same smaller problem, and the ratio is
printed for that size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from indunet.docking.problem import Offer, Request, load_problem
from indunet.docking.ranking import OfferIndex
from indunet.docking.solver import solve


def generate(offers: int, requests: int, per_request: int, items: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    offer_item = rng.integers(0, items, offers)
    request_item = rng.integers(0, items, requests)
    by_item = [np.flatnonzero(offer_item == i) for i in range(items)]
    lanes = []
    for j in range(requests):
        pool = by_item[request_item[j]]
        chosen = rng.choice(pool, size=min(per_request, pool.size), replace=False)
        costs = rng.uniform(1, 50, chosen.size).round(2)
        lanes.extend(
            {"from": f"O{o}", "to": f"R{j}", "cost_per_unit": float(c)}
            for o, c in zip(chosen, costs, strict=True)
        )
    return {
        "requests": [
            {
                "id": f"R{j}",
                "item": f"i{request_item[j]}",
                "quantity": float(rng.integers(10, 1000)),
                "unmet_penalty": 1000.0,
            }
            for j in range(requests)
        ],
        "offers": [
            {"id": f"O{i}", "item": f"i{offer_item[i]}", "quantity": float(rng.integers(5, 900))}
            for i in range(offers)
        ],
        "lanes": lanes,
    }


def indunet_run(doc: dict, *, models_too: bool = False) -> dict:
    """Validate (column path for many lanes) and solve both objectives; times in s.

    ``models_too`` also times validating every lane as a pydantic model (the path before the
    column check), so the two are compared in the same run.
    """
    import indunet.docking.problem as problem_module

    out: dict = {}
    if models_too:
        fast = problem_module.FAST_LANES
        problem_module.FAST_LANES = 10**12
        t0, c0 = time.perf_counter(), time.process_time()
        load_problem(doc)
        out["load_models_s"] = round(time.perf_counter() - t0, 3)
        out["load_models_cpu_s"] = round(time.process_time() - c0, 3)
        problem_module.FAST_LANES = fast
    t0, c0 = time.perf_counter(), time.process_time()
    problem = load_problem(doc)
    out["load_s"] = round(time.perf_counter() - t0, 3)
    out["load_cpu_s"] = round(time.process_time() - c0, 3)
    for objective in ("cost", "fair"):
        t0, c0 = time.perf_counter(), time.process_time()
        result = solve(problem, objective)
        out[f"{objective}_s"] = round(time.perf_counter() - t0, 3)
        out[f"{objective}_cpu_s"] = round(time.process_time() - c0, 3)
        out[f"load_and_{objective}_s"] = round(out["load_s"] + out[f"{objective}_s"], 3)
        out[f"load_and_{objective}_cpu_s"] = round(out["load_cpu_s"] + out[f"{objective}_cpu_s"], 3)
        out[f"{objective}_total_cost"] = round(result.total_cost, 2)
        out[f"{objective}_min_fill"] = result.min_fill_rate
    return out


def pulp_run(doc: dict) -> dict:
    import pulp

    t0, c0 = time.perf_counter(), time.process_time()
    prob = pulp.LpProblem("dock", pulp.LpMinimize)
    x = {
        (lane["from"], lane["to"]): pulp.LpVariable(f"x_{n}", lowBound=0)
        for n, lane in enumerate(doc["lanes"])
    }
    u = {r["id"]: pulp.LpVariable(f"u_{r['id']}", lowBound=0) for r in doc["requests"]}
    cost = {(lane["from"], lane["to"]): lane["cost_per_unit"] for lane in doc["lanes"]}
    prob += pulp.lpSum(cost[k] * v for k, v in x.items()) + pulp.lpSum(
        r["unmet_penalty"] * u[r["id"]] for r in doc["requests"]
    )
    into: dict[str, list] = {r["id"]: [] for r in doc["requests"]}
    out: dict[str, list] = {o["id"]: [] for o in doc["offers"]}
    for (o, r), v in x.items():
        into[r].append(v)
        out[o].append(v)
    for r in doc["requests"]:
        prob += pulp.lpSum(into[r["id"]]) + u[r["id"]] == r["quantity"]
    for o in doc["offers"]:
        if out[o["id"]]:
            prob += pulp.lpSum(out[o["id"]]) <= o["quantity"]
    t_build = time.perf_counter() - t0
    cpu_build = time.process_time() - c0
    t0 = time.perf_counter()
    before = os.times()
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    t_solve = time.perf_counter() - t0
    after = os.times()
    cpu_solve = sum(after[:4]) - sum(before[:4])  # this process and the CBC child
    return {
        "build_s": round(t_build, 3),
        "solve_s": round(t_solve, 3),
        "solve_cpu_s": round(cpu_solve, 3),
        "cost_cpu_s": round(cpu_build + cpu_solve, 3),
        "cost_s": round(t_build + t_solve, 3),
        "status": pulp.LpStatus[prob.status],
        "total_cost": round(pulp.value(prob.objective), 2),
    }


def ranking_run(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    lat = rng.uniform(20, 45, n)
    lon = rng.uniform(100, 125, n)
    items = rng.integers(0, 500, n)
    t0 = time.perf_counter()
    offers = [
        Offer.model_construct(
            id=f"O{i}",
            item=f"i{items[i]}",
            kind="stock",
            quantity=10.0,
            available_day=0,
            from_day=0,
            ramp_days=0,
            conversion_days=0,
            rate_per_day=None,
            location=None,
            enterprise=None,
        )
        for i in range(n)
    ]
    index = OfferIndex.build(offers)
    index.lat[:] = np.radians(lat)
    index.lon[:] = np.radians(lon)
    t_index = time.perf_counter() - t0
    from indunet.docking.problem import Location

    times = []
    for k in range(20):
        req = Request(
            id="R", item=f"i{k}", quantity=5, location=Location(lat=30.0 + k * 0.1, lon=114.0)
        )
        t0 = time.perf_counter()
        index.rank(req, top=10)
        times.append(time.perf_counter() - t0)
    return {
        "offers": n,
        "index_build_s": round(t_index, 2),
        "rank_p50_ms": round(float(np.median(times)) * 1000, 2),
        "rank_max_ms": round(max(times) * 1000, 2),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {n: version(n) for n in ("highspy", "numpy", "pyarrow", "pydantic", "PuLP")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--offers", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--lanes-per-request", type=int, default=100)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--peer-scale", type=float, default=0.1)
    ap.add_argument("--rank-offers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    report: dict = {
        "machine": f"{platform.machine()} {platform.processor() or ''} cores=2",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    doc = generate(args.offers, args.requests, args.lanes_per_request, args.items, args.seed)
    report["size"] = {"offers": args.offers, "requests": args.requests, "lanes": len(doc["lanes"])}
    report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    report["indunet_full"] = indunet_run(doc, models_too=True)
    print(json.dumps({"indunet_full": report["indunet_full"], **report["size"]}), flush=True)
    small_offers = max(10, int(args.offers * args.peer_scale))
    small_requests = max(10, int(args.requests * args.peer_scale))
    small = generate(small_offers, small_requests, args.lanes_per_request, args.items, args.seed)
    report["peer_size"] = {
        "offers": small_offers,
        "requests": small_requests,
        "lanes": len(small["lanes"]),
    }
    report["indunet_peer_size"] = indunet_run(small)
    report["pulp_cbc_peer_size"] = pulp_run(small)
    report["ratio_cost_pulp_over_indunet"] = round(
        report["pulp_cbc_peer_size"]["cost_s"] / max(report["indunet_peer_size"]["cost_s"], 1e-9),
        1,
    )
    report["ratio_cost_cpu_pulp_over_indunet"] = round(
        report["pulp_cbc_peer_size"]["cost_cpu_s"]
        / max(report["indunet_peer_size"]["cost_cpu_s"], 1e-9),
        1,
    )
    same = abs(
        report["pulp_cbc_peer_size"]["total_cost"] - report["indunet_peer_size"]["cost_total_cost"]
    )
    report["same_optimum"] = same <= 1e-6 * max(
        1.0, abs(report["indunet_peer_size"]["cost_total_cost"])
    )
    report["ranking"] = ranking_run(args.rank_offers, args.seed)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["versions"] = _versions()
    report["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
