"""CO2 per unit along the bill of materials (green chain).

A site's footprint per unit = its energy per unit × its region's grid factor + its direct
emissions per unit + Σ over the items it needs of qty × the flow-weighted footprint of the
suppliers it normally buys from. An item's footprint is the throughput-weighted mean of its
makers'; each maker is listed so alternatives can be compared by carbon as well as by risk.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from indunet.chain.graph import SupplyGraph, group_weights, normal_flows
from indunet.errors import DataError

__all__ = ["carbon_per_unit", "carbon_report"]


def carbon_per_unit(g: SupplyGraph) -> np.ndarray:
    """Return kg CO2 per unit of output of every node (sites and markets)."""
    s = g.n_sites
    needs_grid = g.energy[:s] > 0
    factor = np.zeros(s)
    for r, region in enumerate(g.regions):
        in_region = g.region_of[:s] == r
        if (needs_grid & in_region).any():
            if region not in g.grid_factors:
                first = g.ids[int(np.flatnonzero(needs_grid & in_region)[0])]
                raise DataError(
                    f"site {first!r} uses energy in region {region!r}, which has no grid factor "
                    "(add it to grid_factors, kg CO2 per kWh)"
                )
            factor[in_region] = g.grid_factors[region]
    co2 = np.zeros(g.n)
    co2[:s] = g.energy[:s] * factor + g.direct_co2[:s]
    w = group_weights(g)
    for lv in range(1, len(g.lvl_grp_start) - 1):
        g0, g1 = int(g.lvl_grp_start[lv]), int(g.lvl_grp_start[lv + 1])
        if g0 == g1:
            continue
        e0 = int(g.grp_start[g0])
        rel = g.grp_start[g0:g1] - e0
        e1 = int(g.grp_start[g1])
        per_group = np.add.reduceat(w[e0:e1] * co2[g.src[e0:e1]], rel) * g.grp_qty[g0:g1]
        co2 += np.bincount(g.grp_dst[g0:g1], weights=per_group, minlength=g.n)
    return co2


def carbon_report(g: SupplyGraph) -> dict[str, Any]:
    """Return kg CO2 per unit by item (with each maker) and by product."""
    co2 = carbon_per_unit(g)
    _, thr = normal_flows(g)
    s = g.n_sites
    items: dict[int, list[int]] = {}
    for i in range(s):
        items.setdefault(int(g.item_of[i]), []).append(i)
    rows = []
    for k, makers in sorted(items.items(), key=lambda kv: g.items[kv[0]]):
        volume = thr[makers]
        weights = volume if volume.sum() > 0 else np.maximum(g.capacity[makers], 0)
        if weights.sum() <= 0:
            weights = np.ones(len(makers))
        mean = float(np.dot(weights, co2[makers]) / weights.sum())
        rows.append(
            {
                "item": g.items[k],
                "kg_co2_per_unit": round(mean, 6),
                "sources": [
                    {
                        "id": g.ids[i],
                        "region": g.regions[g.region_of[i]] if g.regions else "",
                        "kg_co2_per_unit": round(float(co2[i]), 6),
                        "share": round(float(weights[n] / weights.sum()), 6),
                    }
                    for n, i in enumerate(makers)
                ],
            }
        )
    products = [
        {"product": g.product(m), "kg_co2_per_unit": round(float(co2[m]), 6)} for m in range(s, g.n)
    ]
    return {"items": rows, "products": products}
