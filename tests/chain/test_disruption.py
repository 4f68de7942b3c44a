"""Disruption scenarios: time-to-impact, lost demand, alternatives, comparison, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.chain.disruption import (
    Scenario,
    compare_scenarios,
    parse_scenario,
    propagate,
    run_scenario,
    scenario_down,
)
from indunet.chain.graph import build_supply_graph
from indunet.chain.network import parse_network
from indunet.errors import DataError
from tests.chain.networks import CONTRACT, MIXED, TWO_LEVELS, TWO_SOURCES, doc


def graph(document):
    return build_supply_graph(parse_network(document))


def product(result, name):
    return next(r for r in result["products"] if r["product"] == name)


def test_contract_region_stop() -> None:
    # A's stock 300 lasts 3 weeks at 100/week; back at week 4 -> 100 units lost, margin 1000
    result = run_scenario(graph(doc(CONTRACT)), Scenario(region="Hubei", weeks=4))
    p1 = product(result, "P1")
    assert p1["hit"] and p1["time_to_impact_weeks"] == 3.0 and p1["supply_back_weeks"] == 4.0
    assert p1["lost_demand"] == 100.0 and p1["lost_margin"] == 1000.0
    assert result["label"] == "region Hubei stops for 4 weeks"


def test_stock_bridges_a_short_stop() -> None:
    result = run_scenario(graph(doc(CONTRACT)), Scenario(sites=["A"], weeks=2.5))
    assert result["products_hit"] == 0 and product(result, "P1")["lost_demand"] == 0.0


def test_item_stop_two_levels_with_lead_times() -> None:
    result = run_scenario(graph(doc(TWO_LEVELS)), Scenario(item="r", weeks=4))
    p = product(result, "P")
    assert p["time_to_impact_weeks"] == pytest.approx(2.625)
    assert p["supply_back_weeks"] == pytest.approx(5.5)
    assert p["lost_demand"] == pytest.approx(115.0)
    assert p["lost_margin"] == pytest.approx(575.0)
    assert result["stopped_sites"] == 1 and result["sites_short"] == 2


def test_region_stop_two_levels() -> None:
    result = run_scenario(graph(doc(TWO_LEVELS)), Scenario(region="Y", weeks=2))
    p = product(result, "P")
    assert p["time_to_impact_weeks"] == pytest.approx(0.5)
    assert p["supply_back_weeks"] == pytest.approx(3.0)
    assert p["lost_demand"] == pytest.approx(100.0)


def test_alternative_source_covers_part_of_the_loss() -> None:
    # A stops for 10 weeks; B has 60/week (its 50 normal + 10 spare) and 120 in stock.
    # P gets 60 of 100 after B's stock covers the 40 shortfall for 120/40... B ships its own
    # stock at its normal 50/week: 120/50 = 2.4 weeks of cover for the shortfall share 0.4 ->
    # shortfall from week 0 + 2.4/0.4 = 6; lost 100 * 0.4 * (10 - 6) = 160
    g = graph(doc(TWO_SOURCES))
    result = run_scenario(g, Scenario(sites=["A"], weeks=10))
    p = product(result, "P")
    assert p["shortfall_share"] == pytest.approx(0.4)
    assert p["time_to_impact_weeks"] == pytest.approx(0.0)
    assert result["alternatives"][0]["item"] == "a"
    assert result["alternatives"][0]["alternatives"] == [
        {"id": "B", "region": "R2", "spare_capacity_per_week": 10.0}
    ]


def test_capacity_override_before_the_scenario() -> None:
    g = graph(doc(MIXED))
    plain = run_scenario(g, Scenario(sites=["A1"], weeks=3))
    # A2 alone: 80 of the 100 a needed -> P and Q short 20%
    assert product(plain, "Q")["shortfall_share"] == pytest.approx(0.2)
    worse = run_scenario(g, Scenario(sites=["A1"], weeks=3), capacity={"A2": 40})
    assert product(worse, "Q")["shortfall_share"] == pytest.approx(0.6)
    downed = run_scenario(g, Scenario(sites=["A1"], weeks=3), extra_down=["B"])
    assert downed["stopped_sites"] == 2


def test_bad_scenarios() -> None:
    g = graph(doc(MIXED))
    with pytest.raises(DataError, match="no site is in that region"):
        scenario_down(g, Scenario(region="Mars", weeks=1))
    with pytest.raises(DataError, match="site 'Z' is not in the network"):
        scenario_down(g, Scenario(sites=["Z"], weeks=1))
    with pytest.raises(DataError, match="scenario item 'zz': no such item"):
        scenario_down(g, Scenario(item="zz", weeks=1))
    with pytest.raises(DataError, match="scenario item 'P': no site makes it"):
        scenario_down(g, Scenario(item="P", weeks=1))
    with pytest.raises(DataError, match="say what stops"):
        parse_scenario({"weeks": 2})
    with pytest.raises(DataError, match="scenario weeks"):
        parse_scenario({"region": "Hubei", "weeks": -1})
    with pytest.raises(DataError, match="scenario weeks"):
        parse_scenario({"region": "Hubei"})


def test_compare_scenarios() -> None:
    g = graph(doc(TWO_LEVELS))
    a = run_scenario(g, Scenario(name="r4", item="r", weeks=4))
    b = run_scenario(g, Scenario(name="y2", region="Y", weeks=2))
    table = compare_scenarios([a, b])
    assert [s["name"] for s in table["scenarios"]] == ["r4", "y2"]
    (row,) = table["products"]
    assert row["r4"]["lost_demand"] == pytest.approx(115.0)
    assert row["y2"]["lost_demand"] == pytest.approx(100.0)


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 400), st.floats(0.1, 30), st.floats(0, 50), st.sampled_from(["R1", "S1", "F"]))
def test_longer_stops_and_less_stock_never_help(stock, weeks, more, site) -> None:
    d = doc(TWO_LEVELS)
    d["nodes"][1]["inventory"] = stock
    g = graph(d)
    short = product(run_scenario(g, Scenario(sites=[site], weeks=weeks)), "P")
    long = product(run_scenario(g, Scenario(sites=[site], weeks=weeks + more)), "P")
    assert long["lost_demand"] >= short["lost_demand"] - 1e-9
    d["nodes"][1]["inventory"] = stock + more
    richer = product(run_scenario(graph(d), Scenario(sites=[site], weeks=weeks)), "P")
    assert richer["lost_demand"] <= short["lost_demand"] + 1e-9
    if short["hit"] and richer["hit"]:
        assert richer["time_to_impact_weeks"] >= short["time_to_impact_weeks"] - 1e-9


def test_propagation_without_stops_hits_nothing() -> None:
    g = graph(doc(MIXED))
    p = propagate(g, g.down_mask([]), 5.0)
    assert (p.avail == 1.0).all()
