"""Docking bench: HiGHS cost and fair allocation vs PuLP + CBC on the same model; ranking.

    python bench/docking.py [--offers 10000 --requests 10000 --lanes-per-request 100]
                            [--peer-scale 0.1] [--json OUT]

Targets (issue 10): 10,000 × 10,000 with 1,000,000 lanes: cost ≤ 10 s, fair ≤ 30 s; ranking one
request among 1,000,000 offers ≤ 100 ms. The PuLP + CBC peer builds and solves the same cost model;
on the full size it takes very long, so it runs at --peer-scale of the lanes together with indunet
on that same smaller problem, and the ratio is printed for that size.
"""

from __future__ import annotations

import argparse
import json
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


def indunet_run(doc: dict) -> dict:
    t0 = time.perf_counter()
    problem = load_problem(doc)
    t_load = time.perf_counter() - t0
    out = {"load_s": round(t_load, 3)}
    for objective in ("cost", "fair"):
        t0 = time.perf_counter()
        result = solve(problem, objective)
        out[f"{objective}_s"] = round(time.perf_counter() - t0, 3)
        out[f"{objective}_total_cost"] = round(result.total_cost, 2)
        out[f"{objective}_min_fill"] = result.min_fill_rate
    return out


def pulp_run(doc: dict) -> dict:
    import pulp

    t0 = time.perf_counter()
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
    t0 = time.perf_counter()
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    t_solve = time.perf_counter() - t0
    return {
        "build_s": round(t_build, 3),
        "solve_s": round(t_solve, 3),
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
    report["indunet_full"] = indunet_run(doc)
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
    same = abs(
        report["pulp_cbc_peer_size"]["total_cost"] - report["indunet_peer_size"]["cost_total_cost"]
    )
    report["same_optimum"] = same <= 1e-6 * max(
        1.0, abs(report["indunet_peer_size"]["cost_total_cost"])
    )
    report["ranking"] = ranking_run(args.rank_offers, args.seed)
    report["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
