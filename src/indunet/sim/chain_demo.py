"""The demo's national supply chain: automotive and medical supplies across provinces.

A deterministic network of a few hundred sites in twelve provinces. Hubei holds the whole supply
of airbag inflators, most coated nonwoven (protective suits) and part of the wiring harnesses and
car assembly, so the saved scenario "Hubei stops for 4 weeks" hits products; the flow sensor of
ventilators has a single source in Jiangsu. Three body-in-white stamping sites are the demo
enterprise's own plant sites (``plant_site`` = ``site-01`` …), so the live link follows their
machines. Every site's ``enterprise`` is a registry id of the demo nation (``E0000001`` …) for
the regional monitor. Figures are illustrative, not statistics.
"""

from __future__ import annotations

import random
import time
from typing import Any

from indunet.chain.network import Network, parse_network

__all__ = [
    "DEMO_NETWORK",
    "HUBEI_SCENARIO",
    "demo_chain_doc",
    "demo_network",
    "load_demo_chain",
]

DEMO_NETWORK = "national"
HUBEI_SCENARIO: dict[str, Any] = {"name": "Hubei stops for 4 weeks", "region": "Hubei", "weeks": 4}

#: kg CO2 per kWh of each province's grid (rounded regional grid factors, illustrative)
GRID = {
    "Hubei": 0.52,
    "Guangdong": 0.60,
    "Jiangsu": 0.70,
    "Zhejiang": 0.68,
    "Shanghai": 0.70,
    "Shandong": 0.88,
    "Jilin": 0.80,
    "Chongqing": 0.55,
    "Henan": 0.86,
    "Fujian": 0.58,
    "Tianjin": 0.88,
    "Sichuan": 0.30,
}
_EVERYWHERE = list(GRID)

# item: (industry, makers, provinces the makers are in (cycled), capacity slack,
#        weeks of own stock, TTR weeks, kWh per unit)
_ITEMS: dict[str, tuple[str, int, list[str], float, float, float, float]] = {
    # medical supplies
    "PP resin": ("chemicals", 8, ["Shandong", "Jiangsu", "Guangdong", "Zhejiang"], 1.3, 2, 6, 0.4),
    "PE film": ("chemicals", 6, ["Shandong", "Zhejiang", "Fujian"], 1.3, 2, 4, 0.3),
    "ear loop": ("textiles", 10, ["Zhejiang", "Fujian", "Guangdong", "Henan"], 1.4, 2, 2, 0.001),
    "nose wire": ("metals", 8, ["Jiangsu", "Zhejiang", "Tianjin"], 1.4, 2, 2, 0.002),
    "zipper": ("textiles", 8, ["Fujian", "Zhejiang", "Guangdong"], 1.4, 2, 2, 0.01),
    "spunbond fabric": ("textiles", 16, ["Hubei", *_EVERYWHERE[1:6]], 1.25, 1, 4, 1.2),
    "meltblown fabric": ("textiles", 14, ["Hubei", *_EVERYWHERE[1:7]], 1.25, 1, 6, 2.0),
    "coated nonwoven": (
        "textiles",
        5,
        ["Hubei", "Hubei", "Hubei", "Hubei", "Henan"],
        1.1,
        1,
        3,
        0.2,
    ),
    "surgical mask": ("medical", 30, _EVERYWHERE, 1.2, 1, 2, 2.0),
    "N95 mask": ("medical", 20, _EVERYWHERE, 1.2, 1, 3, 4.0),
    "protective suit": ("medical", 12, ["Hubei", "Henan", "Jiangsu", "Guangdong"], 1.2, 1, 3, 0.3),
    "turbine blower": ("machinery", 4, ["Jiangsu", "Shanghai", "Guangdong"], 1.2, 3, 8, 4.0),
    "flow sensor": ("electronics", 1, ["Jiangsu"], 1.2, 4, 12, 0.5),
    "housing": ("plastics", 6, ["Guangdong", "Zhejiang", "Jiangsu"], 1.3, 3, 3, 1.5),
    "PCB": ("electronics", 14, ["Guangdong", "Jiangsu", "Hubei", "Sichuan"], 1.25, 2, 4, 2.0),
    "MCU chip": ("electronics", 2, ["Shanghai", "Jiangsu"], 1.1, 6, 16, 1.0),
    "control board": ("electronics", 6, ["Guangdong", "Shanghai", "Jiangsu"], 1.2, 2, 4, 0.8),
    "ventilator": ("medical", 4, ["Shanghai", "Guangdong", "Jiangsu", "Hubei"], 1.1, 2, 8, 60.0),
    # automotive
    "steel sheet": (
        "metals",
        8,
        ["Hubei", "Shandong", "Jiangsu", "Tianjin", "Henan"],
        1.2,
        3,
        8,
        600,
    ),
    "copper wire": ("metals", 8, ["Jiangsu", "Zhejiang", "Henan", "Guangdong"], 1.3, 2, 4, 30),
    "engine block casting": (
        "metals",
        10,
        ["Hubei", "Shandong", "Jilin", "Chongqing"],
        1.2,
        2,
        6,
        300,
    ),
    "piston": ("machinery", 8, ["Zhejiang", "Shandong", "Hubei"], 1.3, 2, 4, 5),
    "engine": (
        "automotive",
        8,
        ["Hubei", "Jilin", "Chongqing", "Guangdong", "Shandong"],
        1.2,
        1,
        8,
        150,
    ),
    "transmission": ("automotive", 8, ["Hubei", "Jilin", "Chongqing", "Zhejiang"], 1.2, 1, 8, 120),
    "body-in-white": (
        "automotive",
        8,
        ["Hubei", "Jilin", "Guangdong", "Shanghai"],
        1.25,
        1,
        4,
        250,
    ),
    "seat set": (
        "automotive",
        12,
        ["Hubei", "Jilin", "Guangdong", "Shanghai", "Chongqing"],
        1.3,
        1,
        3,
        20,
    ),
    "tyre": ("automotive", 10, ["Shandong", "Jiangsu", "Henan", "Tianjin"], 1.3, 2, 4, 15),
    "wiring harness": (
        "automotive",
        10,
        ["Hubei", "Hubei", "Hubei", "Jilin", "Zhejiang"],
        1.15,
        1,
        3,
        8,
    ),
    "airbag inflator": ("automotive", 2, ["Hubei"], 1.1, 1, 10, 1.0),
    "airbag cushion": ("textiles", 6, ["Jiangsu", "Zhejiang", "Hubei"], 1.3, 2, 3, 0.5),
    "airbag module": ("automotive", 6, ["Shanghai", "Jilin", "Jiangsu", "Hubei"], 1.25, 1, 4, 0.8),
    "ECU": ("electronics", 8, ["Shanghai", "Jiangsu", "Hubei", "Guangdong"], 1.25, 2, 6, 1.5),
    "BMS board": ("electronics", 6, ["Guangdong", "Fujian", "Jiangsu"], 1.25, 2, 6, 1.5),
    "battery cell": (
        "electrical",
        6,
        ["Fujian", "Guangdong", "Sichuan", "Jiangsu"],
        1.2,
        2,
        10,
        0.6,
    ),
    "battery pack": ("electrical", 6, ["Fujian", "Guangdong", "Shanghai"], 1.2, 1, 6, 40),
    "e-motor": ("electrical", 6, ["Zhejiang", "Shanghai", "Hubei", "Guangdong"], 1.25, 1, 6, 30),
    "sedan": ("automotive", 4, ["Hubei", "Hubei", "Jilin", "Guangdong"], 1.2, 1, 6, 700),
    "EV": ("automotive", 3, ["Guangdong", "Shanghai", "Hubei"], 1.2, 1, 6, 600),
}

# parent: {child: qty per unit}
_BOM: dict[str, dict[str, float]] = {
    "spunbond fabric": {"PP resin": 1.05},
    "meltblown fabric": {"PP resin": 1.1},
    "coated nonwoven": {"spunbond fabric": 0.05, "PE film": 0.03},
    # masks are counted in thousands
    "surgical mask": {
        "meltblown fabric": 1,
        "spunbond fabric": 3,
        "ear loop": 2000,
        "nose wire": 1000,
    },
    "N95 mask": {"meltblown fabric": 3, "spunbond fabric": 4, "ear loop": 2000, "nose wire": 1000},
    "protective suit": {"coated nonwoven": 2.5, "zipper": 1},
    "control board": {"MCU chip": 2, "PCB": 1},
    "ventilator": {"turbine blower": 1, "flow sensor": 2, "control board": 1, "housing": 1},
    "engine": {"engine block casting": 1, "piston": 4},
    "body-in-white": {"steel sheet": 0.4},
    "wiring harness": {"copper wire": 3},
    "airbag module": {"airbag inflator": 1, "airbag cushion": 1},
    "ECU": {"MCU chip": 1, "PCB": 1},
    "BMS board": {"MCU chip": 1, "PCB": 1},
    "battery pack": {"battery cell": 96, "BMS board": 1},
    "sedan": {
        "engine": 1,
        "transmission": 1,
        "body-in-white": 1,
        "seat set": 1,
        "wiring harness": 1,
        "ECU": 3,
        "airbag module": 6,
        "tyre": 5,
    },
    "EV": {
        "battery pack": 1,
        "e-motor": 1,
        "body-in-white": 1,
        "seat set": 1,
        "wiring harness": 1,
        "ECU": 4,
        "airbag module": 6,
        "tyre": 5,
    },
}

# product: (demand per week, margin per unit)
_PRODUCTS: dict[str, tuple[float, float]] = {
    "surgical mask": (20_000, 200.0),  # thousands of masks
    "N95 mask": (5_000, 1500.0),
    "protective suit": (40_000, 30.0),
    "ventilator": (500, 8000.0),
    "sedan": (20_000, 6000.0),
    "EV": (8_000, 9000.0),
}

#: the demo enterprise's own stamping sites (plant sites of the simulated plant)
PLANT_SITES = ("site-01", "site-02", "site-03")
_SUPPLIERS_PER_INPUT = 3
_ABBREV = {
    "Hubei": "HB",
    "Guangdong": "GD",
    "Jiangsu": "JS",
    "Zhejiang": "ZJ",
    "Shanghai": "SH",
    "Shandong": "SD",
    "Jilin": "JL",
    "Chongqing": "CQ",
    "Henan": "HA",
    "Fujian": "FJ",
    "Tianjin": "TJ",
    "Sichuan": "SC",
}


def _codes() -> dict[str, str]:
    """Return a short unique code per item (initials, or the first letters of one word)."""
    out: dict[str, str] = {}
    for item in _ITEMS:
        words = item.replace("-", " ").split()
        code = "".join(w[0] for w in words).upper() if len(words) > 1 else item[:4].upper()
        while code in out.values():
            code += item[-1].upper()
        out[item] = code
    return out


def demo_chain_doc(seed: int = 2020) -> dict[str, Any]:
    """Return the national chain as a NETWORK.json document (same seed, same document)."""
    rng = random.Random(seed)
    sites: dict[str, list[dict[str, Any]]] = {}
    counter = 0
    codes = _codes()
    for item, (industry, count, provinces, _, _, ttr, kwh) in _ITEMS.items():
        rows = []
        for k in range(count):
            region = provinces[k % len(provinces)]
            counter += 1
            rows.append(
                {
                    "id": f"{_ABBREV[region]}-{codes[item]}-{k + 1:02d}",
                    "produces": item,
                    "region": region,
                    "industry": industry,
                    "enterprise": f"E{counter * 37 % 20_000 + 1:07d}",
                    "ttr_weeks": round(ttr * rng.uniform(0.7, 1.4), 1),
                    "energy_kwh_per_unit": kwh,
                }
            )
        sites[item] = rows
    # the demo enterprise's three stamping sites join the body-in-white makers
    for k, site in enumerate(PLANT_SITES):
        sites["body-in-white"].append(
            {
                "id": f"DEMO-BIW-{k + 1:02d}",
                "produces": "body-in-white",
                "region": "Jiangsu",
                "industry": "automotive",
                "enterprise": "",
                "plant_site": site,
                "ttr_weeks": 2.0,
                "energy_kwh_per_unit": _ITEMS["body-in-white"][6],
            }
        )
    supplies: list[dict[str, Any]] = []
    customers: dict[str, list[tuple[str, str, float]]] = {}  # item -> (customer, region, qty)
    for parent, children in _BOM.items():
        for row in sites[parent]:
            for child, qty in children.items():
                customers.setdefault(child, []).append((row["id"], row["region"], qty))
    for product in _PRODUCTS:
        for child, qty in ({product: 1.0}).items():
            customers.setdefault(child, []).append((product, "", qty))
    region_of = {row["id"]: row["region"] for rows in sites.values() for row in rows}
    for child, users in customers.items():
        makers = sites[child]
        offset = rng.randrange(len(makers))
        for u, (customer, region, _) in enumerate(users):
            if customer in _PRODUCTS:  # the market buys from every maker
                chosen = makers
            else:
                k = min(_SUPPLIERS_PER_INPUT, len(makers))
                chosen = [makers[(offset + u * k + j) % len(makers)] for j in range(k)]
            for maker in chosen:
                same = region and region_of[maker["id"]] == region
                supplies.append(
                    {
                        "supplier": maker["id"],
                        "customer": customer,
                        "item": child,
                        "share": round(1.0 / len(chosen), 6),
                        "lead_time_weeks": 0.3 if same else round(rng.uniform(0.6, 1.5), 1),
                    }
                )
    doc: dict[str, Any] = {
        "horizon_weeks": 52,
        "nodes": [row for rows in sites.values() for row in rows],
        "products": [
            {"item": p, "demand_per_week": d, "margin": m} for p, (d, m) in _PRODUCTS.items()
        ],
        "bom": [
            {"parent": p, "child": c, "qty": q}
            for p, children in _BOM.items()
            for c, q in children.items()
        ],
        "supplies": supplies,
        "grid_factors": GRID,
    }
    _size(doc)
    return doc


def _size(doc: dict[str, Any]) -> None:
    """Give every site capacity (throughput × slack) and stock (weeks of throughput)."""
    thr: dict[str, float] = {}
    need: dict[str, float] = {p["item"]: p["demand_per_week"] for p in doc["products"]}
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for s in doc["supplies"]:
        by_customer.setdefault(s["customer"], []).append(s)
    item_of = {n["id"]: n["produces"] for n in doc["nodes"]}
    # walk customers from the markets down the BOM (parents before children)
    order = _topological(list(_ITEMS))
    demand_of = dict.fromkeys(item_of, 0.0)
    for product, d in need.items():
        for s in by_customer[product]:
            demand_of[s["supplier"]] += d * s["share"]
    for item in order:
        for node in (n for n in doc["nodes"] if n["produces"] == item):
            volume = demand_of[node["id"]]
            thr[node["id"]] = volume
            for s in by_customer.get(node["id"], []):
                demand_of[s["supplier"]] += volume * _BOM[item][s["item"]] * s["share"]
    for node in doc["nodes"]:
        _, _, _, slack, weeks, _, _ = _ITEMS[node["produces"]]
        volume = thr[node["id"]]
        if node["id"].startswith("DEMO-"):
            slack = 1.2
        node["capacity_per_week"] = round(max(volume * slack, 1.0), 3)
        node["inventory"] = round(volume * weeks, 3)


def _topological(items: list[str]) -> list[str]:
    """Return items with every parent before its children."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(item: str) -> None:
        if item in seen:
            return
        seen.add(item)
        for parent, children in _BOM.items():
            if item in children:
                visit(parent)
        out.append(item)

    for item in items:
        visit(item)
    return out


def demo_network(seed: int = 2020) -> Network:
    """Return the validated national chain."""
    return parse_network(demo_chain_doc(seed))


def load_demo_chain(
    historian: Any, enterprise: str, *, now_ms: int | None = None, resilience: bool = False
) -> dict[str, Any]:
    """Store the national chain for ``enterprise`` with its Hubei scenario; return a summary.

    With ``resilience``, also solve and keep its TTS/TTR table (1-2 s of LPs); otherwise the
    live link's first round (or the first view of the page) does it in the background.
    """
    from indunet.chain.disruption import parse_scenario, run_scenario
    from indunet.chain.graph import build_supply_graph
    from indunet.chain.resilience import resilience_table
    from indunet.chain.store import ChainStore

    now = int(time.time() * 1000) if now_ms is None else now_ms
    network = demo_network()
    store = ChainStore(historian)
    store.save_network(enterprise, DEMO_NETWORK, network, now_ms=now)
    g = build_supply_graph(network)
    result = run_scenario(g, parse_scenario(HUBEI_SCENARIO))
    store.save_scenario(enterprise, DEMO_NETWORK, result, now_ms=now)
    summary: dict[str, Any] = {
        "network": DEMO_NETWORK,
        "sites": len(network.nodes),
        "scenario": HUBEI_SCENARIO["name"],
        "products_hit": result["products_hit"],
        "lost_demand": result["lost_demand"],
    }
    if resilience:
        table = resilience_table(g)
        store.save_resilience(enterprise, DEMO_NETWORK, table, now_ms=now)
        summary["at_risk"] = sum(1 for n in table["nodes"] if n["at_risk"])
    return summary
