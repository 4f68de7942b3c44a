"""The array supply graph and stuck points: sources, HHI, removal impact, dominators, ranking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.chain.graph import (
    build_supply_graph,
    dominators,
    immediate_dominators,
    item_risks,
    lost_when,
    normal_flows,
    removal_impact,
    stuck_points,
)
from indunet.chain.network import parse_network
from tests.chain.networks import MIXED, TWO_LEVELS, TWO_SOURCES, doc


def graph(document):
    return build_supply_graph(parse_network(document))


def test_two_levels_layout_and_flows() -> None:
    g = graph(doc(TWO_LEVELS))
    assert g.ids == ["R1", "S1", "F", "market:P"]
    assert g.level.tolist() == [0, 1, 2, 3]
    _, thr = normal_flows(g)
    # P 40/week -> F 40, S1 2*40 = 80, R1 3*80 = 240
    assert thr.tolist() == [240.0, 80.0, 40.0, 40.0]


def test_shares_split_the_normal_flow() -> None:
    d = doc(TWO_SOURCES)
    d["supplies"] = [
        {"supplier": "A", "customer": "P", "item": "a", "share": 0.9},
        {"supplier": "B", "customer": "P", "item": "a", "share": 0.1},
    ]
    _, thr = normal_flows(graph(d))
    assert thr[:2].tolist() == pytest.approx([90.0, 10.0])
    risk = item_risks(graph(d))[0]
    assert risk.hhi_supplier == pytest.approx(0.81 + 0.01)


def test_item_risks_two_sources() -> None:
    (risk,) = item_risks(graph(doc(TWO_SOURCES)))
    assert risk.item == "a" and risk.sources == 2 and not risk.single_source
    # split by capacity 60/60: HHI 0.5^2 + 0.5^2 by supplier, and by region (R1, R2)
    assert risk.hhi_supplier == pytest.approx(0.5)
    assert risk.hhi_region == pytest.approx(0.5)
    assert risk.demand_share == 1.0


def test_item_risks_mixed() -> None:
    risks = {r.item: r for r in item_risks(graph(doc(MIXED)))}
    assert risks["b"].single_source and risks["b"].sources == 1
    assert risks["a"].top_region == "Hubei" and risks["a"].hhi_region == pytest.approx(1.0)
    assert risks["a"].demand_share == 1.0  # P and Q both use a
    assert risks["b"].demand_share == 0.5  # only P (50 of 100 units)


def test_zero_capacity_maker_is_not_a_qualified_source() -> None:
    d = doc(TWO_SOURCES)
    d["nodes"][1]["capacity_per_week"] = 0
    (risk,) = item_risks(graph(d))
    assert risk.sources == 1 and risk.single_source


def test_removal_impact_and_dominators() -> None:
    g = graph(doc(MIXED))
    impact = removal_impact(g)
    assert {g.ids[v]: [g.product(m) for m in ms] for v, ms in impact.items()} == {"B": ["P"]}
    doms = dominators(g)
    # every path to P does not pass through B: P also gets a from A1/A2 (dominators are OR-paths)
    assert all(chain == [] for chain in doms.values())
    g2 = graph(doc(TWO_LEVELS))
    (m,) = range(g2.n_sites, g2.n)
    assert [g2.ids[v] for v in dominators(g2)[m]] == ["F", "S1", "R1"]
    assert sorted(g2.ids[v] for v in removal_impact(g2)) == ["F", "R1", "S1"]


def test_removal_impact_with_a_site_already_down() -> None:
    g = graph(doc(MIXED))
    impact = removal_impact(g, down=["A1"])
    # with A1 down, A2 is the last source of a: losing it stops P and Q
    assert sorted(g.product(m) for m in impact[g.index("A2")]) == ["P", "Q"]


def test_stuck_points_ranked_with_reasons() -> None:
    points = stuck_points(graph(doc(MIXED)))
    # all of a (used by all demand) comes from Hubei: score 1.0 beats B (P = 50% of demand)
    assert (points[0]["kind"], points[0]["subject"], points[0]["score"]) == (
        "region_concentration",
        "a",
        1.0,
    )
    second = points[1]
    assert second["rank"] == 2 and second["kind"] == "critical_site" and second["subject"] == "B"
    assert second["reason"] == "losing site B (Jiangsu) cuts all supply of P: 50% of final demand"
    kinds = {(p["kind"], p["subject"]) for p in points}
    assert ("single_source_item", "b") in kinds
    assert ("region_concentration", "a") in kinds
    region = next(p for p in points if p["subject"] == "a")
    assert "100% of supply from Hubei" in region["reason"]
    assert [p["rank"] for p in points] == list(range(1, len(points) + 1))
    assert len(stuck_points(graph(doc(MIXED)), limit=1)) == 1


def test_balanced_two_sources_are_not_stuck() -> None:
    assert stuck_points(graph(doc(TWO_SOURCES))) == []


@st.composite
def layered(draw):
    """Random 3-tier networks with 1-3 makers per item and random supply relations."""
    nodes, supplies = [], []
    tiers = [["r1", "r2"], ["m1", "m2"], ["P"]]
    bom = []
    for item in tiers[1]:
        for child in draw(st.lists(st.sampled_from(tiers[0]), min_size=1, max_size=2, unique=True)):
            bom.append({"parent": item, "child": child, "qty": 1})
    for child in draw(st.lists(st.sampled_from(tiers[1]), min_size=1, max_size=2, unique=True)):
        bom.append({"parent": "P", "child": child, "qty": 1})
    for item in tiers[0] + tiers[1]:
        for i in range(draw(st.integers(1, 3))):
            nodes.append(
                {"id": f"{item}_{i}", "produces": item, "capacity_per_week": 10, "ttr_weeks": 1}
            )
    makers = {}
    for n in nodes:
        makers.setdefault(n["produces"], []).append(n["id"])
    for n in nodes:
        for line in bom:
            if line["parent"] == n["produces"]:
                chosen = draw(
                    st.lists(st.sampled_from(makers[line["child"]]), min_size=1, unique=True)
                )
                for s in chosen:
                    supplies.append({"supplier": s, "customer": n["id"], "item": line["child"]})
    for line in bom:
        if line["parent"] == "P":
            for s in makers[line["child"]]:
                supplies.append({"supplier": s, "customer": "P", "item": line["child"]})
    return {
        "nodes": nodes,
        "products": [{"item": "P", "demand_per_week": 5, "margin": 1}],
        "bom": bom,
        "supplies": supplies,
    }


@settings(max_examples=40, deadline=None)
@given(layered())
def test_removal_impact_matches_brute_force(network) -> None:
    g = graph(network)
    fast = {v: ms.tolist() for v, ms in removal_impact(g).items()}
    slow = {}
    for v in range(g.n_sites):
        lost = lost_when(g, np.array([v]))
        markets = np.flatnonzero(lost[g.n_sites :]) + g.n_sites
        if len(markets):
            slow[v] = markets.tolist()
    assert fast == slow


@settings(max_examples=40, deadline=None)
@given(layered())
def test_dominators_match_rustworkx(network) -> None:
    import rustworkx as rx

    g = graph(network)
    ours = immediate_dominators(g)
    graph_ = rx.PyDiGraph()
    graph_.add_nodes_from(range(g.n + 1))
    has_input = set(g.grp_dst.tolist())
    edges = list(zip(g.src.tolist(), g.dst.tolist(), strict=True))
    edges += [(g.n, v) for v in range(g.n) if v not in has_input]
    graph_.add_edges_from_no_data(edges)
    theirs = rx.immediate_dominators(graph_, g.n)
    assert {v: int(ours[v]) for v in range(g.n)} == {v: theirs[v] for v in range(g.n)}
