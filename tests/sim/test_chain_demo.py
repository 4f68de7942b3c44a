"""The demo's national chain: valid, deterministic, and the Hubei scenario hits products."""

from __future__ import annotations

import json

import pytest

from indunet.chain.disruption import parse_scenario, run_scenario
from indunet.chain.graph import build_supply_graph, stuck_points
from indunet.chain.store import ChainStore
from indunet.sim.chain_demo import (
    DEMO_NETWORK,
    HUBEI_SCENARIO,
    PLANT_SITES,
    demo_chain_doc,
    demo_network,
    load_demo_chain,
)


@pytest.fixture(scope="module")
def graph():
    return build_supply_graph(demo_network())


def test_the_chain_is_national_and_valid() -> None:
    net = demo_network()
    assert net.warnings == []
    assert 200 <= len(net.nodes) <= 500
    regions = {n.region for n in net.nodes}
    assert {"Hubei", "Guangdong", "Jilin", "Jiangsu"} <= regions and len(regions) >= 10
    assert {"automotive", "medical"} <= {n.industry for n in net.nodes}
    assert {p.item for p in net.products} >= {"sedan", "EV", "N95 mask", "ventilator"}
    assert all(n.capacity_per_week > 0 and n.ttr_weeks > 0 for n in net.nodes)
    assert [n.plant_site for n in net.nodes if n.plant_site] == list(PLANT_SITES)
    # single-source parts exist
    makers = net.makers()
    assert len(makers["flow sensor"]) == 1
    assert {n.region for n in makers["airbag inflator"]} == {"Hubei"}


def test_the_document_is_deterministic() -> None:
    assert json.dumps(demo_chain_doc()) == json.dumps(demo_chain_doc())
    assert json.dumps(demo_chain_doc(1)) != json.dumps(demo_chain_doc())


def test_hubei_stopping_hits_products(graph) -> None:
    result = run_scenario(graph, parse_scenario(HUBEI_SCENARIO))
    hit = {p["product"]: p for p in result["products"] if p["hit"]}
    assert {"sedan", "EV", "protective suit"} <= set(hit)
    # masks have enough sources outside Hubei
    assert "surgical mask" not in hit
    for row in hit.values():
        assert 0 < row["time_to_impact_weeks"] < row["supply_back_weeks"]
        assert row["lost_demand"] > 0
    # cars run out only after their stock and the lead times: not at once, within the outage
    assert 1 < hit["sedan"]["time_to_impact_weeks"] <= 4 + 2
    assert result["lost_demand"] == pytest.approx(sum(p["lost_demand"] for p in hit.values()))
    inflators = next(a for a in result["alternatives"] if a["item"] == "airbag inflator")
    assert inflators["alternatives"] == []  # every maker is in Hubei
    suits = next(a for a in result["alternatives"] if a["item"] == "coated nonwoven")
    assert [a["id"] for a in suits["alternatives"]] == ["HA-CN-05"]


def test_stuck_points_name_the_hubei_and_single_source_parts(graph) -> None:
    subjects = {s["subject"]: s for s in stuck_points(graph, limit=50)}
    assert "airbag inflator" in subjects and "Hubei" in subjects["airbag inflator"]["reason"]
    assert "flow sensor" in subjects or "JS-FS-01" in subjects


def test_load_stores_network_scenario_and_resilience(historian) -> None:
    solve = historian.backend == "duckdb"  # the LPs once; the store is the same on PostgreSQL
    summary = load_demo_chain(historian, "demo", now_ms=1_700_000_000_000, resilience=solve)
    store = ChainStore(historian)
    assert [n["name"] for n in store.networks("demo")] == [DEMO_NETWORK]
    assert store.networks("other") == []
    saved = store.scenario("demo", DEMO_NETWORK, HUBEI_SCENARIO["name"])
    assert saved["products_hit"] == summary["products_hit"] >= 3
    if solve:
        assert summary["at_risk"] >= 1  # the single-source flow sensor cannot survive its TTR
        kept = store.resilience("demo", DEMO_NETWORK)
        assert len(kept["nodes"]) == summary["sites"] and kept["nodes"][0]["id"] == "SD-PR-01"
    else:
        assert "at_risk" not in summary and store.resilience("demo", DEMO_NETWORK) is None
        store.save_resilience("demo", DEMO_NETWORK, {"nodes": [], "warnings": ["w"]}, now_ms=2)
        assert store.resilience("demo", DEMO_NETWORK) == {"nodes": [], "warnings": ["w"]}
    again = load_demo_chain(historian, "demo", now_ms=1_700_000_000_001)  # idempotent
    assert again == {k: v for k, v in summary.items() if k != "at_risk"}
    assert store.resilience("demo", DEMO_NETWORK) is None  # a new version: solved again later
    assert len(store.scenarios("demo", DEMO_NETWORK)) == 1
