"""CO2 per unit along the BOM, hand-checked."""

from __future__ import annotations

import pytest

from indunet.chain.carbon import carbon_report
from indunet.chain.graph import build_supply_graph
from indunet.chain.network import parse_network
from indunet.errors import DataError
from tests.chain.networks import MIXED, TWO_LEVELS, TWO_SOURCES, doc


def report(document):
    return carbon_report(build_supply_graph(parse_network(document)))


def test_two_levels() -> None:
    r = report(doc(TWO_LEVELS))
    items = {i["item"]: i["kg_co2_per_unit"] for i in r["items"]}
    assert items == pytest.approx({"r": 1.0, "s": 3.8, "P": 11.6})
    assert r["products"] == [{"product": "P", "kg_co2_per_unit": pytest.approx(11.6)}]


def test_two_sources_compared_by_carbon() -> None:
    r = report(doc(TWO_SOURCES))
    (a,) = r["items"]
    assert a["kg_co2_per_unit"] == pytest.approx(6.0)
    assert {s["id"]: s["kg_co2_per_unit"] for s in a["sources"]} == pytest.approx(
        {"A": 9.0, "B": 3.0}
    )
    assert r["products"][0]["kg_co2_per_unit"] == pytest.approx(6.0)


def test_direct_emissions_add_up() -> None:
    d = doc(TWO_LEVELS)
    d["nodes"][0]["direct_kg_co2_per_unit"] = 1.0  # r: 2 kg; s: 0.8 + 6 = 6.8; P: 4 + 13.6
    items = {i["item"]: i["kg_co2_per_unit"] for i in report(d)["items"]}
    assert items["P"] == pytest.approx(17.6)


def test_energy_without_grid_factor_is_named() -> None:
    d = doc(MIXED)
    d["nodes"][0]["energy_kwh_per_unit"] = 3
    with pytest.raises(DataError, match="site 'A1' uses energy in region 'Hubei'"):
        report(d)
