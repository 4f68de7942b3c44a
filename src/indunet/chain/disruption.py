"""Disruption scenarios: a region, a set of sites or an item stops for some weeks.

Propagation runs tier by tier over the array graph. A customer's supply of an item falls short
when its live suppliers (their normal flow plus spare capacity) no longer cover its normal need;
a supplier's spare capacity is shared among its customers pro rata to their normal flow. The
customer then lives on its own stock of output for ``inventory / shortfall`` weeks, and the products
run out at their *time-to-impact*. Supply resumes when the stopped sites restart after the
outage and their goods travel the lead times again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from indunet.chain.graph import EPS, SupplyGraph, normal_flows
from indunet.errors import DataError

__all__ = [
    "Propagation",
    "Scenario",
    "compare_scenarios",
    "parse_scenario",
    "propagate",
    "run_scenario",
]


class Scenario(BaseModel):
    """What stops and for how long."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)

    name: str = Field("", max_length=200)
    region: str | None = None
    sites: list[str] = Field(default_factory=list)
    item: str | None = None
    weeks: float = Field(gt=0, le=10_000)

    @model_validator(mode="after")
    def _something_stops(self) -> Scenario:
        if not (self.region or self.sites or self.item):
            raise ValueError("say what stops: a region, a list of sites or an item")
        return self

    def label(self) -> str:
        """Return a short description, e.g. ``region Hubei stops for 4 weeks``."""
        parts = []
        if self.region:
            parts.append(f"region {self.region}")
        if self.sites:
            parts.append(
                "sites " + ", ".join(self.sites[:5]) + ("…" if len(self.sites) > 5 else "")
            )
        if self.item:
            parts.append(f"item {self.item}")
        return f"{' + '.join(parts)} stops for {self.weeks:g} weeks"


def parse_scenario(doc: Any) -> Scenario:
    """Validate a scenario document; `DataError` names the field."""
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "scenario"
        raise DataError(f"scenario {where}: {first['msg'].lower()}") from exc


@dataclass
class Propagation:
    """Per-node results of one propagation (arrays over all nodes)."""

    avail: np.ndarray  # fraction of normal output kept once stock runs out
    stop: np.ndarray  # weeks until output falls short (inf: never)
    resume: np.ndarray  # weeks until full supply again
    down: np.ndarray  # bool: stopped by the scenario


def scenario_down(
    g: SupplyGraph, scenario: Scenario, extra_down: Collection[str] = ()
) -> np.ndarray:
    """Return the mask of sites the scenario stops; unknown names are a `DataError`."""
    mask = g.down_mask([*scenario.sites, *extra_down])
    s = g.n_sites
    if scenario.region is not None:
        if scenario.region not in g.regions:
            raise DataError(f"scenario region {scenario.region!r}: no site is in that region")
        r = g.regions.index(scenario.region)
        mask[:s] |= g.region_of[:s] == r
    if scenario.item is not None:
        if scenario.item not in g.items:
            raise DataError(f"scenario item {scenario.item!r}: no such item")
        k = g.items.index(scenario.item)
        hit = g.item_of[:s] == k
        if not hit.any():
            raise DataError(f"scenario item {scenario.item!r}: no site makes it")
        mask[:s] |= hit
    return mask


def propagate(
    g: SupplyGraph,
    down: np.ndarray,
    weeks: float,
    *,
    flow: np.ndarray | None = None,
    thr: np.ndarray | None = None,
) -> Propagation:
    """Propagate an outage of the ``down`` sites for ``weeks`` through the tiers."""
    if flow is None or thr is None:
        flow, thr = normal_flows(g)
    n = g.n
    spare = np.maximum(np.where(np.isfinite(g.capacity), g.capacity, 0.0) - thr, 0.0)
    # a supplier's spare capacity is shared among its customers pro rata to their normal flow
    outdeg = np.bincount(g.src, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        edge_spare = spare[g.src] * np.where(
            thr[g.src] > EPS, flow / thr[g.src], 1.0 / np.maximum(outdeg[g.src], 1)
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(thr > EPS, g.inventory / thr, np.inf)
    avail = np.ones(n)
    stop = np.full(n, np.inf)
    resume = np.zeros(n)
    avail[down] = 0.0
    stop[down] = cover[down]
    resume[down] = weeks
    bridged = down & (stop >= resume)
    avail[bridged], stop[bridged], resume[bridged] = 1.0, np.inf, 0.0
    for lv in range(1, len(g.lvl_grp_start) - 1):
        g0, g1 = int(g.lvl_grp_start[lv]), int(g.lvl_grp_start[lv + 1])
        if g0 == g1:
            continue
        e0, e1 = int(g.grp_start[g0]), int(g.grp_start[g1])
        rel = g.grp_start[g0:g1] - e0
        s = g.src[e0:e1]
        a = avail[s]
        if (a >= 1.0).all():
            continue
        supply = np.add.reduceat(a * (flow[e0:e1] + edge_spare[e0:e1]), rel)
        need = thr[g.grp_dst[g0:g1]] * g.grp_qty[g0:g1]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(need > EPS, np.minimum(supply / need, 1.0), 1.0)
        short_edge = a < 1.0 - EPS
        arrival = np.maximum.reduceat(np.where(short_edge, stop[s] + g.lead[e0:e1], -np.inf), rel)
        back = np.maximum.reduceat(np.where(short_edge, resume[s] + g.lead[e0:e1], -np.inf), rel)
        short = frac < 1.0 - EPS
        dst = g.grp_dst[g0:g1]
        runs = np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]])
        nodes = dst[runs]
        n_avail = np.minimum.reduceat(frac, runs)
        n_start = np.minimum.reduceat(np.where(short, arrival, np.inf), runs)
        n_back = np.maximum.reduceat(np.where(short, back, 0.0), runs)
        is_down = down[nodes]
        # stopped sites: output already 0, back when both they and their inputs are back
        resume[nodes[is_down]] = np.maximum(resume[nodes[is_down]], n_back[is_down])
        up = nodes[~is_down]
        na, ns, nb = n_avail[~is_down], n_start[~is_down], n_back[~is_down]
        with np.errstate(divide="ignore", invalid="ignore"):
            lasts = np.where(na < 1.0 - EPS, cover[up] / np.maximum(1.0 - na, EPS), np.inf)
        when = ns + lasts
        hit = (na < 1.0 - EPS) & (when < nb)
        avail[up] = np.where(hit, na, 1.0)
        stop[up] = np.where(hit, when, np.inf)
        resume[up] = np.where(hit, nb, 0.0)
    return Propagation(avail=avail, stop=stop, resume=resume, down=down)


def _products(g: SupplyGraph, p: Propagation) -> list[dict[str, Any]]:
    rows = []
    h = g.horizon
    for m in range(g.n_sites, g.n):
        hit = bool(p.avail[m] < 1.0 - EPS)
        tti = float(p.stop[m]) if hit else None
        back = float(p.resume[m]) if hit else None
        short_weeks = max(0.0, min(back or 0.0, h) - min(tti or 0.0, h)) if hit else 0.0
        lost = float(g.demand[m] * (1.0 - p.avail[m]) * short_weeks)
        rows.append(
            {
                "product": g.product(m),
                "hit": hit,
                "time_to_impact_weeks": _r(tti),
                "supply_back_weeks": _r(back),
                "shortfall_share": round(float(1.0 - p.avail[m]), 6),
                "lost_demand": round(lost, 6),
                "lost_margin": round(lost * float(g.margin[m]), 6),
            }
        )
    rows.sort(key=lambda r: (not r["hit"], r["time_to_impact_weeks"] or 0.0, r["product"]))
    return rows


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def alternatives(
    g: SupplyGraph, p: Propagation, thr: np.ndarray, *, limit_items: int = 50, per_item: int = 5
) -> list[dict[str, Any]]:
    """Return, per item made by stopped sites, the other makers still up with spare capacity."""
    s = g.n_sites
    items = g.item_of[:s]
    stopped = p.down[:s] & (p.avail[:s] < 1.0)
    if not stopped.any():
        return []
    lost_volume = np.bincount(items[stopped], weights=thr[:s][stopped], minlength=len(g.items))
    stopped_count = np.bincount(items[stopped], minlength=len(g.items))
    ranked = np.argsort(-lost_volume, kind="stable")
    ranked = ranked[stopped_count[ranked] > 0][:limit_items]
    spare = np.maximum(g.capacity[:s] - thr[:s], 0.0)
    ok = (p.avail[:s] >= 1.0) & ~p.down[:s]
    out = []
    for k in ranked.tolist():
        cands = np.flatnonzero((items == k) & ok)
        cands = cands[np.argsort(-spare[cands], kind="stable")][:per_item]
        out.append(
            {
                "item": g.items[k],
                "stopped_sources": int(stopped_count[k]),
                "lost_volume_per_week": round(float(lost_volume[k]), 6),
                "alternatives": [
                    {
                        "id": g.ids[i],
                        "region": g.regions[g.region_of[i]] if g.regions else "",
                        "spare_capacity_per_week": round(float(spare[i]), 6),
                    }
                    for i in cands.tolist()
                ],
            }
        )
    return out


def run_scenario(
    g: SupplyGraph,
    scenario: Scenario,
    *,
    capacity: Mapping[str, float] | None = None,
    extra_down: Collection[str] = (),
) -> dict[str, Any]:
    """Run a scenario; ``capacity``/``extra_down`` override sites (live status) before it starts."""
    g = g.with_capacity(capacity or {})
    down = scenario_down(g, scenario, extra_down)
    flow, thr = normal_flows(g)
    p = propagate(g, down, scenario.weeks, flow=flow, thr=thr)
    products = _products(g, p)
    total = float(g.demand[g.n_sites :].sum())
    lost = sum(r["lost_demand"] for r in products)
    return {
        "scenario": scenario.model_dump(),
        "label": scenario.label(),
        "stopped_sites": int(down[: g.n_sites].sum()),
        "sites_short": int(((p.avail[: g.n_sites] < 1.0) & ~down[: g.n_sites]).sum()),
        "products_hit": sum(r["hit"] for r in products),
        "lost_demand": round(lost, 6),
        "lost_demand_share": round(lost / (total * g.horizon), 6) if total > 0 else 0.0,
        "lost_margin": round(sum(r["lost_margin"] for r in products), 6),
        "products": products,
        "alternatives": alternatives(g, p, thr),
    }


def compare_scenarios(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return products × scenarios: time-to-impact and lost demand side by side."""
    names = [r["scenario"].get("name") or r["label"] for r in results]
    products: dict[str, dict[str, Any]] = {}
    for name, result in zip(names, results, strict=True):
        for row in result["products"]:
            entry = products.setdefault(row["product"], {"product": row["product"]})
            entry[name] = {
                "hit": row["hit"],
                "time_to_impact_weeks": row["time_to_impact_weeks"],
                "lost_demand": row["lost_demand"],
            }
    return {
        "scenarios": [
            {
                "name": name,
                "label": r["label"],
                "products_hit": r["products_hit"],
                "lost_demand": r["lost_demand"],
                "lost_margin": r["lost_margin"],
            }
            for name, r in zip(names, results, strict=True)
        ],
        "products": sorted(products.values(), key=lambda e: e["product"]),
    }
