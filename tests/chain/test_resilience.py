"""TTS/TTR linear programs on hand-checked networks, overrides and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.chain.graph import build_supply_graph
from indunet.chain.network import parse_network
from indunet.chain.resilience import resilience_table
from indunet.errors import DataError
from tests.chain.networks import CONTRACT, MIXED, TWO_LEVELS, TWO_SOURCES, doc


def table(document, **kwargs):
    result = resilience_table(build_supply_graph(parse_network(document)), **kwargs)
    return {row["id"]: row for row in result["nodes"]}, result["warnings"]


def test_contract_example() -> None:
    # A down: stock 300 / demand 100 = 3 weeks; over TTR 10: 1000 - 300 = 700 lost * 10
    rows, warnings = table(doc(CONTRACT))
    assert rows["A"] == {
        "id": "A",
        "tts_weeks": 3.0,
        "ttr_weeks": 10.0,
        "performance_impact": 7000.0,
        "rei": 1.0,
        "at_risk": True,
    }
    assert warnings == []


def test_two_sources() -> None:
    rows, _ = table(doc(TWO_SOURCES))
    assert rows["A"]["tts_weeks"] == pytest.approx(3.0)
    assert rows["A"]["performance_impact"] == pytest.approx(400.0)
    assert rows["A"]["at_risk"] is True  # TTS 3 < TTR 4
    assert rows["B"]["tts_weeks"] == pytest.approx(3.0)
    assert rows["B"]["performance_impact"] == 0.0  # its loss costs nothing over its TTR 2
    assert rows["B"]["at_risk"] is False
    assert (rows["A"]["rei"], rows["B"]["rei"]) == (1.0, 0.0)


def test_bom_two_levels_deep() -> None:
    rows, _ = table(doc(TWO_LEVELS))
    assert rows["R1"]["tts_weeks"] == pytest.approx(1.125)
    assert rows["S1"]["tts_weeks"] == pytest.approx(1.125)
    assert rows["F"]["tts_weeks"] == pytest.approx(0.5)
    assert rows["R1"]["performance_impact"] == pytest.approx(975.0)
    assert rows["S1"]["performance_impact"] == pytest.approx(375.0)
    assert rows["F"]["performance_impact"] == pytest.approx(100.0)
    assert rows["S1"]["rei"] == pytest.approx(375 / 975, abs=1e-6)
    assert rows["F"]["rei"] == pytest.approx(100 / 975, abs=1e-6)
    assert all(r["at_risk"] for r in rows.values())


def test_unused_site_costs_nothing_and_survives_the_horizon() -> None:
    d = doc(TWO_SOURCES)
    d["nodes"][0]["capacity_per_week"] = 200  # A alone covers demand
    d["nodes"].append(
        {"id": "C", "produces": "c", "capacity_per_week": 10, "ttr_weeks": 99, "region": "R1"}
    )
    rows, _ = table(d)
    assert rows["C"]["tts_weeks"] == 52.0 and rows["C"]["performance_impact"] == 0.0
    assert rows["B"]["tts_weeks"] == 52.0 and rows["B"]["at_risk"] is False
    # C's TTR 99 weeks is beyond the 52-week horizon but TTS 52 < 99 flags it at risk
    assert rows["C"]["at_risk"] is True


def test_capacity_and_status_overrides() -> None:
    g = build_supply_graph(parse_network(doc(TWO_SOURCES)))
    # live data: B's capacity halved to 30 -> with A down: 30 t + 120 >= 100 t, t = 12/7
    rows = {r["id"]: r for r in resilience_table(g, capacity={"B": 30})["nodes"]}
    assert rows["A"]["tts_weeks"] == pytest.approx(120 / 70, abs=1e-6)
    # B already down (status): A alone 60 + B's stock 120 -> 60 t + 120 >= 100 t, TTS 3 for all
    result = resilience_table(g, down=["B"])
    assert result["warnings"] and "met for only 3 of 52 weeks" in result["warnings"][0]
    with pytest.raises(DataError, match="site 'nope' is not in the network"):
        resilience_table(g, down=["nope"])
    with pytest.raises(DataError, match="capacity override for 'A'"):
        resilience_table(g, capacity={"A": -1})


def test_mixed_single_and_double_sources() -> None:
    rows, _ = table(doc(MIXED))
    # B is P's only source of b: P stops at once; Q goes on. PI_B = 50/wk * 4 * 8 weeks = 1600
    assert rows["B"]["tts_weeks"] == 0.0
    assert rows["B"]["performance_impact"] == pytest.approx(1600.0)
    # A1 down: A2 makes 80 of the 100 a needed; the LP serves P first (margin 4):
    # lost 20 Q/week * 1 * 2 weeks = 40
    assert rows["A1"]["performance_impact"] == pytest.approx(40.0)
    assert rows["A1"]["tts_weeks"] == 0.0


@st.composite
def small_networks(draw):
    """Two tiers: raw item r (1-3 makers) feeding item a (1-3 makers) feeding product P."""
    nodes = []
    for item in ("r", "a"):
        for i in range(draw(st.integers(1, 3))):
            nodes.append(
                {
                    "id": f"{item}{i}",
                    "produces": item,
                    "capacity_per_week": draw(st.floats(0, 200)),
                    "inventory": draw(st.floats(0, 500)),
                    "ttr_weeks": draw(st.floats(0, 20)),
                }
            )
    return {
        "horizon_weeks": draw(st.sampled_from([10, 52])),
        "nodes": nodes,
        "products": [
            {
                "item": "P",
                "demand_per_week": draw(st.floats(1, 100)),
                "margin": draw(st.floats(0, 9)),
            }
        ],
        "bom": [
            {"parent": "P", "child": "a", "qty": draw(st.sampled_from([1, 2]))},
            {"parent": "a", "child": "r", "qty": draw(st.sampled_from([0.5, 1, 3]))},
        ],
    }


@settings(max_examples=25, deadline=None)
@given(small_networks(), st.floats(1, 300), st.data())
def test_adding_inventory_never_lowers_tts(network, extra, data) -> None:
    before, _ = table(network)
    which = data.draw(st.integers(0, len(network["nodes"]) - 1))
    network["nodes"][which]["inventory"] += extra
    after, _ = table(network)
    for node_id, row in before.items():
        assert after[node_id]["tts_weeks"] >= row["tts_weeks"] - 1e-6
        assert after[node_id]["performance_impact"] <= row["performance_impact"] + 1e-6


@settings(max_examples=25, deadline=None)
@given(small_networks())
def test_rei_in_unit_interval_and_tts_within_horizon(network) -> None:
    rows, _ = table(network)
    reis = [r["rei"] for r in rows.values()]
    assert all(0.0 <= r <= 1.0 for r in reis)
    assert max(reis) in (0.0, 1.0)
    for r in rows.values():
        assert 0.0 <= r["tts_weeks"] <= network["horizon_weeks"] + 1e-9
        assert r["performance_impact"] >= 0.0
        assert r["at_risk"] == (r["tts_weeks"] < r["ttr_weeks"] - 1e-9)
