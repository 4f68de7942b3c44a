"""The supply graph as arrays, and the stuck-point analyses on it.

`SupplyGraph` holds sites and one *market* node per product (final demand) in flat NumPy arrays,
edges sorted by (tier of the customer, customer, item) so every analysis is a few vectorised passes,
tier by tier. Groups are the (customer, item) pairs: a customer needs ``qty`` of the item per unit
and may take it from any supplier in the group (alternative sources).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indunet.chain.network import Network
from indunet.errors import DataError

__all__ = [
    "ItemRisk",
    "SupplyGraph",
    "build_supply_graph",
    "dominators",
    "item_risks",
    "normal_flows",
    "removal_impact",
    "stuck_points",
]

EPS = 1e-9
MARKET = "market:"


@dataclass(frozen=True, eq=False)
class SupplyGraph:
    """Sites (first ``n_sites``) and markets as arrays; build with `from_arrays`."""

    ids: list[str]
    n_sites: int
    items: list[str]
    item_of: np.ndarray  # int32[N] item each node makes (a market: its product)
    capacity: np.ndarray  # float64[N] per week (inf for markets)
    inventory: np.ndarray  # float64[N]
    ttr: np.ndarray  # float64[N] weeks
    region_of: np.ndarray  # int32[N], -1 for markets
    regions: list[str]
    demand: np.ndarray  # float64[N] per week (0 for sites)
    margin: np.ndarray  # float64[N] per unit (0 for sites)
    horizon: float
    src: np.ndarray  # int32[E] supplier
    dst: np.ndarray  # int32[E] customer
    lead: np.ndarray  # float64[E] weeks
    share: np.ndarray  # float64[E], NaN when not given
    grp_start: np.ndarray  # int64[G+1] edge offsets of each (customer, item) group
    grp_dst: np.ndarray  # int32[G]
    grp_item: np.ndarray  # int32[G]
    grp_qty: np.ndarray  # float64[G] units of item per unit of the customer's output
    level: np.ndarray  # int32[N] tier: longest path from a node without inputs
    lvl_grp_start: np.ndarray  # int64[L+2] group offsets of each tier
    bom_parent: np.ndarray  # int32[B] item-level bill of materials
    bom_child: np.ndarray
    bom_qty: np.ndarray
    energy: np.ndarray = field(default_factory=lambda: np.zeros(0))  # kWh per unit
    direct_co2: np.ndarray = field(default_factory=lambda: np.zeros(0))  # kg per unit
    grid_factors: dict[str, float] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Return the number of nodes (sites and markets)."""
        return len(self.ids)

    @property
    def n_markets(self) -> int:
        """Return the number of markets (products)."""
        return self.n - self.n_sites

    def index(self, node_id: str) -> int:
        """Return the array position of a site id; `DataError` when unknown."""
        if not self._index:
            self._index.update({s: i for i, s in enumerate(self.ids[: self.n_sites])})
        try:
            return self._index[node_id]
        except KeyError:
            raise DataError(f"site {node_id!r} is not in the network") from None

    def product(self, m: int) -> str:
        """Return the product item of market position ``m``."""
        return self.items[int(self.item_of[m])]

    def with_capacity(self, overrides: Mapping[str, float]) -> SupplyGraph:
        """Return a copy with some sites' weekly capacity replaced (the live link feeds these)."""
        if not overrides:
            return self
        capacity = self.capacity.copy()
        for node_id, value in overrides.items():
            if not np.isfinite(value) or value < 0:
                raise DataError(f"capacity override for {node_id!r} must be >= 0, got {value}")
            capacity[self.index(node_id)] = value
        return replace(self, capacity=capacity, _index=self._index)

    def down_mask(self, down: Collection[str] = ()) -> np.ndarray:
        """Return a boolean mask of the given site ids."""
        mask = np.zeros(self.n, dtype=bool)
        for node_id in down:
            mask[self.index(node_id)] = True
        return mask

    @classmethod
    def from_arrays(
        cls,
        *,
        ids: list[str],
        n_sites: int,
        items: list[str],
        item_of: np.ndarray,
        capacity: np.ndarray,
        inventory: np.ndarray,
        ttr: np.ndarray,
        region_of: np.ndarray,
        regions: list[str],
        demand: np.ndarray,
        margin: np.ndarray,
        horizon: float,
        src: np.ndarray,
        dst: np.ndarray,
        lead: np.ndarray,
        share: np.ndarray,
        bom_parent: np.ndarray,
        bom_child: np.ndarray,
        bom_qty: np.ndarray,
        market_direct: np.ndarray,
        energy: np.ndarray | None = None,
        direct_co2: np.ndarray | None = None,
        grid_factors: dict[str, float] | None = None,
    ) -> SupplyGraph:
        """Sort the edges, find groups and tiers; ``market_direct[m]``: product made by sites."""
        n = len(ids)
        n_items = len(items)
        src = np.asarray(src, dtype=np.int32)
        dst = np.asarray(dst, dtype=np.int32)
        item_of = np.asarray(item_of, dtype=np.int32)
        edge_item = item_of[src]
        level = _levels(n, src, dst)
        order = np.lexsort((src, edge_item, dst, level[dst]))
        src, dst, edge_item = src[order], dst[order], edge_item[order]
        lead = np.asarray(lead, dtype=np.float64)[order]
        share = np.asarray(share, dtype=np.float64)[order]
        e = len(src)
        if e:
            new = np.ones(e, dtype=bool)
            new[1:] = (dst[1:] != dst[:-1]) | (edge_item[1:] != edge_item[:-1])
            starts = np.flatnonzero(new)
        else:
            starts = np.zeros(0, dtype=np.int64)
        grp_start = np.append(starts, e).astype(np.int64)
        grp_dst = dst[starts]
        grp_item = edge_item[starts]
        # quantity per unit: the item's BOM for sites; 1 for a market of a made product
        parent = item_of[grp_dst].astype(np.int64)
        keys = np.asarray(bom_parent, np.int64) * n_items + np.asarray(bom_child, np.int64)
        korder = np.argsort(keys, kind="stable")
        skeys = keys[korder]
        want = parent * n_items + grp_item
        pos = np.clip(np.searchsorted(skeys, want), 0, max(len(skeys) - 1, 0))
        found = (skeys[pos] == want) if len(skeys) else np.zeros(len(want), dtype=bool)
        qty = np.where(found, np.asarray(bom_qty, np.float64)[korder][pos] if len(skeys) else 0, 0)
        is_market = grp_dst >= n_sites
        direct = np.zeros(n, dtype=bool)
        direct[n_sites:] = np.asarray(market_direct, dtype=bool)
        qty = np.where(is_market & direct[grp_dst], 1.0, qty)
        bad = ~(qty > 0)
        if bad.any():
            g = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"supply of {items[grp_item[g]]!r} to {ids[grp_dst[g]]!r}: "
                "the customer's bill of materials does not use that item"
            )
        grp_level = level[grp_dst]
        top = int(level.max()) if n else 0
        lvl_grp_start = np.searchsorted(grp_level, np.arange(top + 2)).astype(np.int64)
        return cls(
            ids=ids,
            n_sites=n_sites,
            items=items,
            item_of=item_of,
            capacity=np.asarray(capacity, np.float64),
            inventory=np.asarray(inventory, np.float64),
            ttr=np.asarray(ttr, np.float64),
            region_of=np.asarray(region_of, np.int32),
            regions=regions,
            demand=np.asarray(demand, np.float64),
            margin=np.asarray(margin, np.float64),
            horizon=float(horizon),
            src=src,
            dst=dst,
            lead=lead,
            share=share,
            grp_start=grp_start,
            grp_dst=grp_dst,
            grp_item=grp_item,
            grp_qty=qty.astype(np.float64),
            level=level,
            lvl_grp_start=lvl_grp_start,
            bom_parent=np.asarray(bom_parent, np.int32),
            bom_child=np.asarray(bom_child, np.int32),
            bom_qty=np.asarray(bom_qty, np.float64),
            energy=np.zeros(n) if energy is None else np.asarray(energy, np.float64),
            direct_co2=np.zeros(n) if direct_co2 is None else np.asarray(direct_co2, np.float64),
            grid_factors=dict(grid_factors or {}),
        )

    def edge_group(self) -> np.ndarray:
        """Return the group of every edge."""
        sizes = np.diff(self.grp_start)
        return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)


def _levels(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Return each node's tier: 0 without inputs, else 1 + the highest supplier tier."""
    level = np.zeros(n, dtype=np.int32)
    if len(src) == 0:
        return level
    order = np.argsort(dst, kind="stable")
    s, d = src[order], dst[order]
    starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
    heads = d[starts]
    for _ in range(n + 1):
        best = np.maximum.reduceat(level[s], starts) + 1
        if np.array_equal(level[heads], best):
            return level
        level[heads] = best
    raise DataError("the supply relations form a cycle (a site depends on its own output)")


def build_supply_graph(network: Network) -> SupplyGraph:
    """Turn a validated `Network` into arrays; missing supply relations mean any maker."""
    makers = network.makers()
    recipes = network.recipes()
    items: list[str] = []
    item_index: dict[str, int] = {}

    def item(name: str) -> int:
        if name not in item_index:
            item_index[name] = len(items)
            items.append(name)
        return item_index[name]

    regions: list[str] = []
    region_index: dict[str, int] = {}
    sites = network.nodes
    ids = [n.id for n in sites] + [MARKET + p.item for p in network.products]
    n_sites = len(sites)
    index = {n.id: i for i, n in enumerate(sites)}
    market_index = {p.item: n_sites + j for j, p in enumerate(network.products)}
    item_of = [item(n.produces) for n in sites] + [item(p.item) for p in network.products]
    region_of = []
    for node in sites:
        if node.region not in region_index:
            region_index[node.region] = len(regions)
            regions.append(node.region)
        region_of.append(region_index[node.region])
    region_of += [-1] * len(network.products)
    bom_parent = [item(b.parent) for b in network.bom]
    bom_child = [item(b.child) for b in network.bom]
    bom_qty = [b.qty for b in network.bom]
    market_direct = [p.item in makers for p in network.products]

    def needs(customer: int) -> list[str]:
        if customer >= n_sites:
            product = network.products[customer - n_sites].item
            return [product] if product in makers else list(recipes.get(product, {}))
        return list(recipes.get(sites[customer].produces, {}))

    edges: dict[tuple[int, int], tuple[float, float]] = {}
    listed: set[tuple[int, str]] = set()
    for s in network.supplies or []:
        customer = index[s.customer] if s.customer in index else market_index[s.customer]
        share = np.nan if s.share is None else s.share
        edges[(index[s.supplier], customer)] = (s.lead_time_weeks, share)
        listed.add((customer, s.item))
    for customer in range(len(ids)):
        for child in needs(customer):
            if (customer, child) in listed:
                continue
            for maker in makers.get(child, []):
                edges.setdefault((index[maker.id], customer), (0.0, np.nan))
    pairs = np.array(list(edges), dtype=np.int64).reshape(-1, 2)
    values = np.array(list(edges.values()), dtype=np.float64).reshape(-1, 2)
    inf = np.full(len(network.products), np.inf)
    zeros = np.zeros(len(network.products))
    return SupplyGraph.from_arrays(
        ids=ids,
        n_sites=n_sites,
        items=items,
        item_of=np.array(item_of),
        capacity=np.r_[[n.capacity_per_week for n in sites], inf],
        inventory=np.r_[[n.inventory for n in sites], zeros],
        ttr=np.r_[[n.ttr_weeks for n in sites], zeros],
        region_of=np.array(region_of),
        regions=regions,
        demand=np.r_[np.zeros(n_sites), [p.demand_per_week for p in network.products]],
        margin=np.r_[np.zeros(n_sites), [p.margin for p in network.products]],
        horizon=network.horizon_weeks,
        src=pairs[:, 0],
        dst=pairs[:, 1],
        lead=values[:, 0],
        share=values[:, 1],
        bom_parent=np.array(bom_parent, dtype=np.int32),
        bom_child=np.array(bom_child, dtype=np.int32),
        bom_qty=np.array(bom_qty, dtype=np.float64),
        market_direct=np.array(market_direct, dtype=bool),
        energy=np.r_[[n.energy_kwh_per_unit for n in sites], zeros],
        direct_co2=np.r_[[n.direct_kg_co2_per_unit for n in sites], zeros],
        grid_factors=network.grid_factors,
    )


# ---------------------------------------------------------------------------- normal flows
def group_weights(g: SupplyGraph) -> np.ndarray:
    """Return each edge's normal share of its group: given shares, else by supplier capacity."""
    e = len(g.src)
    if e == 0:
        return np.zeros(0)
    starts = g.grp_start[:-1]
    sizes = np.diff(g.grp_start)
    known = ~np.isnan(g.share)
    all_known = np.add.reduceat(known.astype(np.int64), starts) == sizes
    share_sum = np.add.reduceat(np.where(known, g.share, 0.0), starts)
    cap = np.where(np.isfinite(g.capacity[g.src]), g.capacity[g.src], 0.0)
    cap_sum = np.add.reduceat(cap, starts)
    grp = g.edge_group()
    use_share = (all_known & (share_sum > 0))[grp]
    use_cap = (cap_sum > 0)[grp]
    w = np.where(
        use_share,
        np.where(known, g.share, 0.0) / np.where(share_sum > 0, share_sum, 1.0)[grp],
        np.where(use_cap, cap / np.where(cap_sum > 0, cap_sum, 1.0)[grp], 1.0 / sizes[grp]),
    )
    return w


def normal_flows(g: SupplyGraph) -> tuple[np.ndarray, np.ndarray]:
    """Return (flow per edge, throughput per node) per week when final demand is met."""
    w = group_weights(g)
    thr = g.demand.copy()
    flow = np.zeros(len(g.src))
    for lv in range(len(g.lvl_grp_start) - 2, -1, -1):
        g0, g1 = g.lvl_grp_start[lv], g.lvl_grp_start[lv + 1]
        if g0 == g1:
            continue
        e0, e1 = g.grp_start[g0], g.grp_start[g1]
        need = thr[g.grp_dst[g0:g1]] * g.grp_qty[g0:g1]
        sizes = np.diff(g.grp_start[g0 : g1 + 1])
        f = np.repeat(need, sizes) * w[e0:e1]
        flow[e0:e1] = f
        thr += np.bincount(g.src[e0:e1], weights=f, minlength=g.n)
    return flow, thr


# ---------------------------------------------------------------------------- per item
@dataclass
class ItemRisk:
    """Concentration of one item's supply."""

    item: str
    sources: int
    single_source: bool
    hhi_supplier: float
    hhi_region: float
    top_region: str
    top_region_share: float
    demand_share: float  # share of final demand (units) whose BOM uses the item
    makers: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Return plain data."""
        return {
            "item": self.item,
            "sources": self.sources,
            "single_source": self.single_source,
            "hhi_supplier": round(self.hhi_supplier, 6),
            "hhi_region": round(self.hhi_region, 6),
            "top_region": self.top_region,
            "top_region_share": round(self.top_region_share, 6),
            "demand_share": round(self.demand_share, 6),
        }


def item_demand_share(g: SupplyGraph) -> np.ndarray:
    """Return, per item, the share of final demand whose bill of materials uses it."""
    n_items = len(g.items)
    p = g.n_markets
    total = g.demand[g.n_sites :].sum()
    if p == 0 or total <= 0:
        return np.zeros(n_items)
    width = (p + 7) // 8
    reach = np.zeros((n_items, width), dtype=np.uint8)
    products = g.item_of[g.n_sites :]
    bits = np.zeros((p, width * 8), dtype=bool)
    bits[np.arange(p), np.arange(p)] = True
    np.bitwise_or.at(reach, products, np.packbits(bits, axis=1))
    # item heights: parents above children; propagate parent -> child from the top
    height = np.zeros(n_items, dtype=np.int64)
    parent, child = g.bom_parent.astype(np.int64), g.bom_child.astype(np.int64)
    for _ in range(n_items + 1):
        new = height.copy()
        np.maximum.at(new, parent, height[child] + 1)
        if np.array_equal(new, height):
            break
        height = new
    line_h = height[parent]
    for h in range(int(height.max()) if n_items else 0, 0, -1):
        sel = line_h == h
        if sel.any():
            np.bitwise_or.at(reach, child[sel], reach[parent[sel]])
    uses = np.unpackbits(reach, axis=1, count=p).astype(np.float64)
    return uses @ (g.demand[g.n_sites :] / total)


def item_risks(g: SupplyGraph, thr: np.ndarray | None = None) -> list[ItemRisk]:
    """Return sources, single-source flag and HHI by supplier and by region for every made item."""
    if thr is None:
        _, thr = normal_flows(g)
    s = g.n_sites
    n_items = len(g.items)
    item = g.item_of[:s].astype(np.int64)
    qualified = g.capacity[:s] > 0
    volume = np.where(qualified, thr[:s], 0.0)
    vol_sum = np.bincount(item, weights=volume, minlength=n_items)
    cap = np.where(qualified, g.capacity[:s], 0.0)
    cap_sum = np.bincount(item, weights=cap, minlength=n_items)
    use_cap = vol_sum <= EPS
    weight = np.where(use_cap[item], cap, volume)
    total = np.where(use_cap, cap_sum, vol_sum)
    safe = np.where(total > 0, total, 1.0)
    share = weight / safe[item]
    hhi_s = np.bincount(item, weights=share**2, minlength=n_items)
    r = max(len(g.regions), 1)
    key = item * r + g.region_of[:s]
    region_share = np.bincount(key, weights=share, minlength=n_items * r).reshape(n_items, r)
    hhi_r = (region_share**2).sum(axis=1)
    top = region_share.argmax(axis=1)
    top_share = region_share.max(axis=1)
    sources = np.bincount(item, weights=qualified.astype(np.float64), minlength=n_items)
    makes = np.bincount(item, minlength=n_items) > 0
    dshare = item_demand_share(g)
    order = np.argsort(item, kind="stable")
    bounds = np.searchsorted(item[order], np.arange(n_items + 1))
    out = []
    for k in np.flatnonzero(makes):
        names = [g.ids[i] for i in order[bounds[k] : bounds[k + 1]][:20]]
        out.append(
            ItemRisk(
                item=g.items[k],
                sources=int(sources[k]),
                single_source=int(sources[k]) <= 1,
                hhi_supplier=float(hhi_s[k]) if total[k] > 0 else 1.0,
                hhi_region=float(hhi_r[k]) if total[k] > 0 else 1.0,
                top_region=g.regions[int(top[k])] if g.regions else "",
                top_region_share=float(top_share[k]) if total[k] > 0 else 1.0,
                demand_share=float(dshare[k]),
                makers=names,
            )
        )
    return out


# ---------------------------------------------------------------------------- critical nodes
def removal_impact(g: SupplyGraph, down: Collection[str] = ()) -> dict[int, np.ndarray]:
    """Return, for each site whose loss cuts some product off, the markets that lose all supply.

    A customer loses an item when every supplier in its group is lost; it then stops. Only a site
    that is the last live supplier of some group can start such a cascade, so the others are
    skipped (their impact is nothing). Sites in ``down`` are already lost before any removal.
    """
    grp = g.edge_group()
    sizes = np.diff(g.grp_start).astype(np.int64)
    base_lost = lost_when(g, np.flatnonzero(g.down_mask(down)))
    remaining = sizes.copy()
    if base_lost.any():
        lost_edges = base_lost[g.src]
        remaining -= np.bincount(grp[lost_edges], minlength=len(sizes))
    sole = remaining == 1
    live_edge = ~base_lost[g.src]
    candidates = np.unique(g.src[sole[grp] & live_edge])
    order = np.argsort(g.src, kind="stable")
    out_start = np.searchsorted(g.src[order], np.arange(g.n + 1))
    out_group = grp[order]
    impact: dict[int, np.ndarray] = {}
    for v in candidates.tolist():
        lost = _cascade_one(g, v, out_start, out_group, remaining, base_lost)
        markets = [m for m in lost if m >= g.n_sites]
        if markets:
            impact[v] = np.array(sorted(markets), dtype=np.int64)
    return impact


def lost_when(g: SupplyGraph, roots: np.ndarray) -> np.ndarray:
    """Return the mask of nodes lost when ``roots`` are lost (tier by tier)."""
    lost = np.zeros(g.n, dtype=bool)
    lost[roots] = True
    if not len(roots):
        return lost
    for lv in range(len(g.lvl_grp_start) - 1):
        g0, g1 = g.lvl_grp_start[lv], g.lvl_grp_start[lv + 1]
        if g0 == g1:
            continue
        e0, e1 = g.grp_start[g0], g.grp_start[g1]
        dead = np.add.reduceat(lost[g.src[e0:e1]].astype(np.int64), g.grp_start[g0:g1] - e0)
        gone = dead >= np.diff(g.grp_start[g0 : g1 + 1])
        lost[g.grp_dst[g0:g1][gone]] = True
    return lost


def _cascade_one(
    g: SupplyGraph,
    root: int,
    out_start: np.ndarray,
    out_group: np.ndarray,
    remaining: np.ndarray,
    base_lost: np.ndarray,
) -> set[int]:
    lost = {root}
    left: dict[int, int] = {}
    stack = [root]
    while stack:
        u = stack.pop()
        for gi in out_group[out_start[u] : out_start[u + 1]].tolist():
            r = left.get(gi, int(remaining[gi])) - 1
            left[gi] = r
            if r == 0:
                d = int(g.grp_dst[gi])
                if d not in lost and not base_lost[d]:
                    lost.add(d)
                    stack.append(d)
    return lost


def immediate_dominators(g: SupplyGraph) -> np.ndarray:
    """Return each node's immediate dominator from a super source feeding every site without inputs.

    The graph is a DAG sorted by tier, so idom(v) is the lowest common ancestor, in the dominator
    tree built so far, of all of v's suppliers (Cooper-Harvey-Kennedy on a DAG in one pass), done
    for a whole tier at once with NumPy. The super source is ``g.n``; it is its own dominator.
    """
    root = g.n
    idom = np.full(g.n + 1, root, dtype=np.int64)
    depth = np.zeros(g.n + 1, dtype=np.int64)
    depth[:root] = 1

    def lca(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = a.copy(), b.copy()
        while True:
            differ = a != b
            if not differ.any():
                return a
            up_a = differ & (depth[a] >= depth[b])
            up_b = differ & (depth[b] > depth[a])
            a[up_a] = idom[a[up_a]]
            b[up_b] = idom[b[up_b]]

    for lv in range(1, len(g.lvl_grp_start) - 1):
        g0, g1 = int(g.lvl_grp_start[lv]), int(g.lvl_grp_start[lv + 1])
        if g0 == g1:
            continue
        e0, e1 = int(g.grp_start[g0]), int(g.grp_start[g1])
        d = g.dst[e0:e1]
        s = g.src[e0:e1].astype(np.int64)
        first = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        nodes = d[first]
        cand = s[first]
        rank = np.arange(len(d)) - np.repeat(first, np.diff(np.r_[first, len(d)]))
        for k in range(1, int(rank.max()) + 1):
            sel = np.flatnonzero(rank == k)
            owner = np.searchsorted(first, sel, side="right") - 1
            cand[owner] = lca(cand[owner], s[sel])
        idom[nodes] = cand
        depth[nodes] = depth[cand] + 1
    return idom


def dominators(g: SupplyGraph) -> dict[int, list[int]]:
    """Return, per market, the sites every supply path to it passes through (nearest first)."""
    idom = immediate_dominators(g)
    root = g.n
    out: dict[int, list[int]] = {}
    for m in range(g.n_sites, g.n):
        chain = []
        d = int(idom[m])
        while d != root:
            chain.append(d)
            d = int(idom[d])
        out[m] = chain
    return out


# ---------------------------------------------------------------------------- ranked list
def _names(g: SupplyGraph, markets: np.ndarray | list[int], limit: int = 5) -> str:
    names = [g.product(int(m)) for m in list(markets)[:limit]]
    more = f" and {len(markets) - limit} more" if len(markets) > limit else ""
    return ", ".join(names) + more


def stuck_points(
    g: SupplyGraph,
    *,
    limit: int = 50,
    down: Collection[str] = (),
    hhi_threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """Return the ranked stuck-point list: kind, subject, score (share of demand) and reason."""
    _, thr = normal_flows(g)
    total = g.demand[g.n_sites :].sum()
    total = total if total > 0 else 1.0
    entries: list[dict[str, Any]] = []
    impact = removal_impact(g, down)
    doms = dominators(g)
    dominated: dict[int, list[int]] = {}
    for m, chain in doms.items():
        for v in chain:
            if v < g.n_sites:
                dominated.setdefault(v, []).append(m)
    for v, markets in impact.items():
        share = float(g.demand[markets].sum() / total)
        where = g.regions[g.region_of[v]] if g.regions else ""
        reason = (
            f"losing site {g.ids[v]}{f' ({where})' if where else ''} cuts all supply of "
            f"{_names(g, markets)}: {share:.0%} of final demand"
        )
        if v in dominated:
            reason += f"; every supply path to {_names(g, dominated[v])} passes through it"
        entries.append(
            {"kind": "critical_site", "subject": g.ids[v], "score": share, "reason": reason}
        )
    for v, markets in dominated.items():
        if v in impact:
            continue
        share = float(g.demand[markets].sum() / total)
        entries.append(
            {
                "kind": "dominator",
                "subject": g.ids[v],
                "score": share,
                "reason": f"every supply path to {_names(g, markets)} passes through {g.ids[v]}",
            }
        )
    for risk in item_risks(g, thr):
        if risk.demand_share <= 0:
            continue
        if risk.single_source:
            maker = risk.makers[0] if risk.makers else "?"
            entries.append(
                {
                    "kind": "single_source_item",
                    "subject": risk.item,
                    "score": risk.demand_share,
                    "reason": (
                        f"item {risk.item} has {risk.sources} qualified source"
                        f"{'' if risk.sources == 1 else 's'} ({maker}); "
                        f"{risk.demand_share:.0%} of final demand uses it"
                    ),
                }
            )
        elif risk.hhi_region > hhi_threshold and len(g.regions) > 1:
            entries.append(
                {
                    "kind": "region_concentration",
                    "subject": risk.item,
                    "score": risk.demand_share * risk.top_region_share,
                    "reason": (
                        f"item {risk.item}: {risk.top_region_share:.0%} of supply from "
                        f"{risk.top_region} (HHI by region {risk.hhi_region:.2f}); "
                        f"{risk.demand_share:.0%} of final demand uses it"
                    ),
                }
            )
        elif risk.hhi_supplier > hhi_threshold:
            entries.append(
                {
                    "kind": "supplier_concentration",
                    "subject": risk.item,
                    "score": risk.demand_share * risk.hhi_supplier,
                    "reason": (
                        f"item {risk.item}: {risk.sources} sources but concentrated "
                        f"(HHI by supplier {risk.hhi_supplier:.2f}); "
                        f"{risk.demand_share:.0%} of final demand uses it"
                    ),
                }
            )
    priority = {
        "critical_site": 0,
        "single_source_item": 1,
        "dominator": 2,
        "region_concentration": 3,
        "supplier_concentration": 4,
    }
    entries.sort(key=lambda e: (-e["score"], priority[e["kind"]], e["subject"]))
    for rank, entry in enumerate(entries[:limit], start=1):
        entry["rank"] = rank
        entry["score"] = round(entry["score"], 6)
    return entries[:limit]
