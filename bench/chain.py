"""Supply-chain resilience benchmark: big generated network, networkx peer, TTS/PI LPs.

Phases:

1. big    a generated five-tier network (default 1,000,000 sites, ~5,000,000 supply relations,
          31 provinces): build the array graph; "Hubei stops for 4 weeks" propagation with
          time-to-impact (normal flows computed once per network, then the propagation); the
          stuck-point analyses (single source / HHI per item, removal impact, dominators).
2. peer   the same propagation written with networkx (node/edge attributes, topological order,
          per-node Python) on a scaled-down network (default 100,000 sites), timed beside the
          NumPy propagation on that same network; results compared; ratio printed, and the
          networkx time scaled linearly to the full size (said so in the output).
3. lp     TTS and PI for every site of a 2,000-site network (HiGHS, one model per objective,
          bounds changed per site).

    .venv/bin/python bench/chain.py                     # everything (~3-5 min, ~6 GB peak)
    .venv/bin/python bench/chain.py --sites 100000      # smaller big phase
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

from indunet.chain.disruption import propagate
from indunet.chain.graph import (
    SupplyGraph,
    dominators,
    item_risks,
    normal_flows,
    removal_impact,
    stuck_points,
)
from indunet.chain.resilience import resilience_table

PROVINCES = [
    "Guangdong", "Jiangsu", "Zhejiang", "Shandong", "Henan", "Hubei", "Sichuan", "Hebei",
    "Fujian", "Hunan", "Anhui", "Shanghai", "Beijing", "Liaoning", "Shaanxi", "Jiangxi",
    "Chongqing", "Guangxi", "Tianjin", "Yunnan", "Shanxi", "Inner Mongolia", "Guizhou", "Jilin",
    "Heilongjiang", "Xinjiang", "Gansu", "Hainan", "Ningxia", "Qinghai", "Tibet",
]  # fmt: skip
TIER_SHARE = [0.40, 0.30, 0.20, 0.09, 0.01]
ITEMS_PER_SITE = 0.05


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    print(f"  {label:<48} {dt:8.3f} s   (peak RSS {rss_mb():,.0f} MB)", flush=True)
    return out, dt


def generate(n_sites: int, edges_per_site: float, seed: int) -> SupplyGraph:
    """Make a five-tier network: raw materials -> parts -> modules -> systems -> products."""
    rng = np.random.default_rng(seed)
    tier_sizes = np.floor(np.array(TIER_SHARE) * n_sites).astype(np.int64)
    tier_sizes[0] += n_sites - tier_sizes.sum()
    item_counts = np.maximum((tier_sizes * ITEMS_PER_SITE).astype(np.int64), 2)
    item_counts[-1] = max(int(tier_sizes[-1] // 10), 2)  # products: ~10 OEM sites each
    item_base = np.r_[0, np.cumsum(item_counts)]
    site_base = np.r_[0, np.cumsum(tier_sizes)]
    n_items = int(item_base[-1])
    # sites -> items: every item has one maker, the rest at random (5% of items stay single)
    item_of = np.empty(n_sites, dtype=np.int64)
    for t in range(5):
        k, n = int(item_counts[t]), int(tier_sizes[t])
        own = np.arange(k)
        rest = rng.integers(int(k * 0.05), k, n - k) if n > k else np.zeros(0, np.int64)
        item_of[site_base[t] : site_base[t + 1]] = item_base[t] + np.r_[own, rest][:n]
    # BOM: an item of tier t needs 3-4 items of tier t-1
    parents, children, qtys = [], [], []
    for t in range(1, 5):
        k = int(item_counts[t])
        per = rng.integers(3, 5, k)
        parent = np.repeat(np.arange(k) + item_base[t], per)
        child = item_base[t - 1] + rng.integers(0, item_counts[t - 1], len(parent))
        key = np.unique(parent * n_items + child)
        parents.append(key // n_items)
        children.append(key % n_items)
        qtys.append(rng.integers(1, 4, len(key)).astype(np.float64))
    bom_parent, bom_child, bom_qty = map(np.concatenate, (parents, children, qtys))
    # makers of each item, for picking suppliers
    maker_order = np.argsort(item_of, kind="stable")
    maker_start = np.searchsorted(item_of[maker_order], np.arange(n_items + 1))
    maker_count = np.diff(maker_start)
    # groups: each site of tier >= 1 needs every child item of its item
    bom_order = np.argsort(bom_parent, kind="stable")
    bom_start = np.searchsorted(bom_parent[bom_order], np.arange(n_items + 1))
    site_idx = np.arange(site_base[1], n_sites)
    nkids = bom_start[item_of[site_idx] + 1] - bom_start[item_of[site_idx]]
    g_site = np.repeat(site_idx, nkids)
    offs = np.arange(len(g_site)) - np.repeat(np.cumsum(nkids) - nkids, nkids)
    g_child = bom_child[bom_order][bom_start[item_of[g_site]] + offs]
    target = edges_per_site * n_sites
    mean_sup = max(target / max(len(g_site), 1), 1.0)
    nsup = np.clip(rng.poisson(mean_sup - 1, len(g_site)) + 1, 1, None)
    e_dst = np.repeat(g_site, nsup)
    e_child = np.repeat(g_child, nsup)
    pick = (rng.random(len(e_dst)) * maker_count[e_child]).astype(np.int64)
    e_src = maker_order[maker_start[e_child] + pick]
    key = np.unique(e_src * (n_sites + n_items) + e_dst)
    e_src, e_dst = key // (n_sites + n_items), key % (n_sites + n_items)
    # markets: one per product item, supplied by every maker of the product
    products = np.arange(item_base[4], item_base[5])
    n_markets = len(products)
    m_src = maker_order[maker_start[products[0]] : maker_start[products[-1] + 1]]
    m_dst = n_sites + (item_of[m_src] - item_base[4])
    src = np.r_[e_src, m_src]
    dst = np.r_[e_dst, m_dst]
    weights = 1.0 / (np.arange(len(PROVINCES)) + 2) ** 0.7
    region_of = rng.choice(len(PROVINCES), n_sites, p=weights / weights.sum())
    capacity = rng.uniform(50, 500, n_sites) * (1 + 3 * (np.arange(n_sites) >= site_base[4]))
    return SupplyGraph.from_arrays(
        ids=[f"S{i}" for i in range(n_sites)] + [f"market:I{p}" for p in products],
        n_sites=n_sites,
        items=[f"I{i}" for i in range(n_items)],
        item_of=np.r_[item_of, products],
        capacity=np.r_[capacity, np.full(n_markets, np.inf)],
        inventory=np.r_[capacity * rng.uniform(0, 3, n_sites), np.zeros(n_markets)],
        ttr=np.r_[rng.uniform(1, 12, n_sites), np.zeros(n_markets)],
        region_of=np.r_[region_of, np.full(n_markets, -1)],
        regions=PROVINCES,
        demand=np.r_[np.zeros(n_sites), rng.uniform(10, 100, n_markets)],
        margin=np.r_[np.zeros(n_sites), rng.uniform(100, 3000, n_markets)],
        horizon=52.0,
        src=src,
        dst=dst,
        lead=rng.uniform(0, 3, len(src)).round(1),
        share=np.full(len(src), np.nan),
        bom_parent=bom_parent,
        bom_child=bom_child,
        bom_qty=bom_qty,
        market_direct=np.ones(n_markets, dtype=bool),
    )


def graph_bytes(g: SupplyGraph) -> int:
    return sum(v.nbytes for v in vars(g).values() if isinstance(v, np.ndarray))


def propagate_networkx(g: SupplyGraph, down: np.ndarray, weeks: float, flow, thr):
    """The same propagation as `indunet.chain.disruption.propagate`, per node with networkx."""
    import networkx as nx

    eps = 1e-9
    t0 = time.perf_counter()
    graph = nx.DiGraph()
    for i in range(g.n):
        graph.add_node(i, cap=g.capacity[i], inv=g.inventory[i], thr=thr[i])
    qty = {}
    for gi in range(len(g.grp_dst)):
        qty[(int(g.grp_dst[gi]), int(g.grp_item[gi]))] = float(g.grp_qty[gi])
    for e in range(len(g.src)):
        graph.add_edge(int(g.src[e]), int(g.dst[e]), flow=flow[e], lead=g.lead[e])
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    avail, stop, resume = {}, {}, {}
    for v in nx.topological_sort(graph):
        data = graph.nodes[v]
        cover = data["inv"] / data["thr"] if data["thr"] > eps else np.inf
        groups: dict[int, list] = {}
        for u in graph.predecessors(v):
            groups.setdefault(int(g.item_of[u]), []).append(u)
        na, ns, nb = 1.0, np.inf, 0.0
        for item, sups in groups.items():
            need = data["thr"] * qty[(v, item)]
            supply = 0.0
            arrival, back = -np.inf, -np.inf
            for u in sups:
                e = graph[u][v]
                tu = graph.nodes[u]["thr"]
                ucap = graph.nodes[u]["cap"]
                spare = max((ucap if np.isfinite(ucap) else 0.0) - tu, 0.0)
                share = e["flow"] / tu if tu > eps else 1.0 / graph.out_degree(u)
                supply += avail[u] * (e["flow"] + spare * share)
                if avail[u] < 1 - eps:
                    arrival = max(arrival, stop[u] + e["lead"])
                    back = max(back, resume[u] + e["lead"])
            frac = min(supply / need, 1.0) if need > eps else 1.0
            na = min(na, frac)
            if frac < 1 - eps:
                ns = min(ns, arrival)
                nb = max(nb, back)
        if down[v]:
            if cover >= weeks:  # its stock bridges the stop
                avail[v], stop[v], resume[v] = 1.0, np.inf, max(0.0, nb)
            else:
                avail[v], stop[v], resume[v] = 0.0, cover, max(weeks, nb)
            continue
        lasts = cover / max(1 - na, eps) if na < 1 - eps else np.inf
        when = ns + lasts
        if na < 1 - eps and when < nb:
            avail[v], stop[v], resume[v] = na, when, nb
        else:
            avail[v], stop[v], resume[v] = 1.0, np.inf, 0.0
    ran = time.perf_counter() - t0
    return avail, stop, built, ran


def phase_big(args, out: dict) -> None:
    print(f"\n[big] {args.sites:,} sites, ~{args.edges_per_site:g} supply relations per site")
    g, dt = timed("generate + build array graph (sort, tiers, groups)", generate,
                  args.sites, args.edges_per_site, args.seed)  # fmt: skip
    out["sites"], out["relations"] = g.n_sites, len(g.src)
    out["items"], out["products"] = len(g.items), g.n_markets
    out["tiers"] = int(g.level.max())
    out["graph_array_mb"] = round(graph_bytes(g) / 2**20, 1)
    print(f"  {g.n_sites:,} sites, {len(g.src):,} relations, {len(g.items):,} items, "
          f"{g.n_markets:,} products, {out['tiers']} tiers; "
          f"arrays {out['graph_array_mb']} MB")  # fmt: skip
    (flow, thr), out["normal_flows_s"] = timed("normal flows (once per network)", normal_flows, g)
    down = np.zeros(g.n, dtype=bool)
    down[: g.n_sites] = g.region_of[: g.n_sites] == PROVINCES.index("Hubei")
    best = np.inf
    for _ in range(3):
        p, dt = timed("propagate 'Hubei stops for 4 weeks'", propagate, g, down, 4.0,
                      flow=flow, thr=thr)  # fmt: skip
        best = min(best, dt)
    out["propagation_s"] = round(best, 3)
    markets = slice(g.n_sites, g.n)
    hit = p.avail[markets] < 1
    out["hubei_sites"] = int(down.sum())
    out["products_hit"] = int(hit.sum())
    out["sites_short"] = int(((p.avail[: g.n_sites] < 1) & ~down[: g.n_sites]).sum())
    tti = p.stop[markets][hit]
    print(f"  Hubei: {out['hubei_sites']:,} sites stopped, {out['sites_short']:,} short, "
          f"{out['products_hit']}/{g.n_markets} products hit, time-to-impact "
          f"min {tti.min() if len(tti) else float('nan'):.2f} / median "
          f"{np.median(tti) if len(tti) else float('nan'):.2f} weeks")  # fmt: skip
    t_all = time.perf_counter()
    risks, dt_items = timed("per item: sources, single source, HHI (supplier/region)",
                            item_risks, g, thr)  # fmt: skip
    impact, dt_imp = timed("removal impact of every site", removal_impact, g)
    doms, dt_dom = timed("dominators (tiered LCA, from a super source)", dominators, g)
    out["analysis_s"] = round(time.perf_counter() - t_all, 3)
    out["item_risks_s"], out["removal_impact_s"], out["dominators_s"] = (
        round(dt_items, 3), round(dt_imp, 3), round(dt_dom, 3))  # fmt: skip
    out["single_source_items"] = sum(r.single_source for r in risks)
    out["critical_sites"] = len(impact)
    out["sites_dominating_a_product"] = len({v for c in doms.values() for v in c})
    print(f"  {out['single_source_items']:,} single-source items, {out['critical_sites']:,} "
          f"critical sites, {out['sites_dominating_a_product']:,} dominators; analysis "
          f"{out['analysis_s']} s")  # fmt: skip
    _, out["stuck_points_s"] = timed("ranked stuck-point list (all of the above + ranking)",
                                     stuck_points, g, limit=50)  # fmt: skip
    out["peak_rss_mb"] = round(rss_mb())


def phase_peer(args, out: dict) -> None:
    n = args.peer_sites
    print(f"\n[peer] networkx vs NumPy propagation on {n:,} sites")
    g = generate(n, args.edges_per_site, args.seed + 1)
    flow, thr = normal_flows(g)
    down = np.zeros(g.n, dtype=bool)
    down[: g.n_sites] = g.region_of[: g.n_sites] == PROVINCES.index("Hubei")
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        p = propagate(g, down, 4.0, flow=flow, thr=thr)
        best = min(best, time.perf_counter() - t0)
    avail, stop, built, ran = propagate_networkx(g, down, 4.0, flow, thr)
    nx_avail = np.array([avail[i] for i in range(g.n)])
    nx_stop = np.array([stop[i] for i in range(g.n)])
    same = np.allclose(nx_avail, p.avail) and np.allclose(nx_stop, p.stop, equal_nan=True)
    ratio = ran / best
    scale = args.sites / n
    out.update(
        peer_sites=g.n_sites,
        peer_relations=len(g.src),
        numpy_propagation_s=round(best, 4),
        networkx_build_s=round(built, 2),
        networkx_propagation_s=round(ran, 2),
        ratio=round(ratio, 1),
        results_identical=bool(same),
        networkx_full_size_estimate_s=round(ran * scale, 1),
    )
    print(f"  {g.n_sites:,} sites, {len(g.src):,} relations: NumPy {best:.4f} s, networkx "
          f"{ran:.2f} s (+{built:.2f} s to build the DiGraph) -> {ratio:.0f}x; same results: "
          f"{same}")  # fmt: skip
    print(f"  networkx at {args.sites:,} sites, scaled linearly (not run): ~{ran * scale:.0f} s")


def phase_lp(args, out: dict) -> None:
    print(f"\n[lp] TTS and PI for every site of a {args.lp_sites:,}-site network")
    g = generate(args.lp_sites, 5.0, args.seed + 2)
    print(f"  {g.n_sites:,} sites, {len(g.src):,} relations, {g.n_markets} products")
    table, dt = timed("resilience table (TTS + PI per site, HiGHS)", resilience_table, g)
    rows = table["nodes"]
    out.update(
        lp_sites=g.n_sites,
        lp_relations=len(g.src),
        lp_s=round(dt, 2),
        lp_at_risk=sum(r["at_risk"] for r in rows),
        lp_warnings=table["warnings"],
    )
    print(f"  {out['lp_at_risk']} sites at risk (TTS < TTR); warnings: {table['warnings']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1_000_000)
    parser.add_argument("--edges-per-site", type=float, default=5.45)
    parser.add_argument("--peer-sites", type=int, default=100_000)
    parser.add_argument("--lp-sites", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip", nargs="*", default=[], choices=["big", "peer", "lp"])
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    import highspy
    import networkx
    import rustworkx

    out: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{len(__import__('os').sched_getaffinity(0))} cores",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rustworkx": rustworkx.__version__,
        "networkx": networkx.__version__,
        "highspy": highspy.Highs().version(),
    }
    print(json.dumps(out))
    if "big" not in args.skip:
        phase_big(args, out)
    if "peer" not in args.skip:
        phase_peer(args, out)
    if "lp" not in args.skip:
        phase_lp(args, out)
    print("\n" + json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
