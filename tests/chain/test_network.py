"""Network import and validation: JSON contract, CSV bundles, errors that name the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.chain.network import load_network, parse_network, read_csv_bundle
from indunet.errors import DataError
from tests.chain.networks import CONTRACT, MIXED, TWO_LEVELS, TWO_SOURCES, doc


def test_contract_example_parses() -> None:
    net = parse_network(doc(CONTRACT))
    assert net.nodes[0].id == "A" and net.horizon_weeks == 52
    assert net.supplies is not None and net.supplies[0].customer == "P1"
    assert net.recipes() == {"P1": {"a": 1.0}}
    assert net.warnings == []


@pytest.mark.parametrize("example", [TWO_SOURCES, TWO_LEVELS, MIXED])
def test_examples_parse_and_round_trip(example) -> None:
    net = parse_network(doc(example))
    again = parse_network(json.loads(net.model_dump_json(exclude_none=True)))
    assert again == net


def error_of(document) -> str:
    with pytest.raises(DataError) as info:
        parse_network(document)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_cyclic_bom_reports_the_cycle() -> None:
    d = doc(TWO_LEVELS)
    d["bom"].append({"parent": "r", "child": "P", "qty": 1})
    message = error_of(d)
    assert "cyclic BOM" in message
    # the cycle P -> s -> r -> P, whichever item it starts from
    assert all(f"'{x}'" in message for x in ("P", "s", "r"))


def test_item_needing_itself_is_a_cycle() -> None:
    d = doc(TWO_SOURCES)
    d["bom"].append({"parent": "a", "child": "a", "qty": 1})
    assert "bom[1] ('a' needs 'a'): cyclic BOM, 'a' needs itself" in error_of(d)


def test_item_nobody_makes() -> None:
    d = doc(TWO_SOURCES)
    d["bom"].append({"parent": "P", "child": "glass", "qty": 2})
    assert "bom[1] ('P' needs 'glass'): item 'glass' is made by no node" in error_of(d)


def test_demand_for_unknown_item() -> None:
    d = doc(TWO_SOURCES)
    d["products"].append({"item": "ventilator", "demand_per_week": 5, "margin": 1})
    assert "products[1] (item 'ventilator'): demand for unknown item 'ventilator'" in error_of(d)


def test_negative_capacity_names_the_node() -> None:
    d = doc(TWO_SOURCES)
    d["nodes"][1]["capacity_per_week"] = -5
    message = error_of(d)
    assert message.startswith("nodes[1] (id 'B'): capacity_per_week")
    assert "-5" in message


def test_node_without_ttr() -> None:
    d = doc(TWO_SOURCES)
    del d["nodes"][0]["ttr_weeks"]
    assert error_of(d) == "nodes[0] (id 'A'): ttr_weeks is missing"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "nodes[2] (id 'A'): duplicate id"),
        (lambda d: d["nodes"][0].update(capacity=5), "nodes[0] (id 'A'): unknown field 'capacity'"),
        (lambda d: d["nodes"][0].update(inventory="lots"), "nodes[0] (id 'A'): inventory"),
        (lambda d: d["nodes"][0].update(inventory=float("nan")), "nodes[0] (id 'A'): inventory"),
        (lambda d: d["bom"][0].update(qty=0), "bom[0] ('P' needs 'a'): qty"),
        (lambda d: d["products"][0].update(margin=-1), "products[0] (item 'P'): margin"),
        (lambda d: d.update(horizon_weeks=0), "field 'horizon_weeks'"),
        (lambda d: d.update(nodes=[]), "field 'nodes'"),
        (lambda d: d["grid_factors"].pop("R2"), "grid_factors: no factor for region 'R2'"),
        (
            lambda d: d["products"].append(dict(d["products"][0])),
            "products[1] (item 'P'): duplicate product",
        ),
    ],
)
def test_bad_entries_are_named(edit, expected) -> None:
    d = doc(TWO_SOURCES)
    edit(d)
    assert expected in error_of(d)


@pytest.mark.parametrize(
    ("supply", "expected"),
    [
        ({"supplier": "Z", "customer": "S1", "item": "r"}, "supplier 'Z' is not a node"),
        ({"supplier": "S1", "customer": "F", "item": "r"}, "supplier makes 's', not 'r'"),
        ({"supplier": "R1", "customer": "F", "item": "r"}, "whose BOM does not use 'r'"),
        ({"supplier": "R1", "customer": "nowhere", "item": "r"}, "neither a node nor a product"),
        ({"supplier": "R1", "customer": "S1", "item": "r"}, "duplicate relation"),
        ({"supplier": "R1", "customer": "S1", "item": "r", "share": 1.5}, "share"),
    ],
)
def test_bad_supply_relations(supply, expected) -> None:
    d = doc(TWO_LEVELS)
    d["supplies"].append(supply)
    message = error_of(d)
    assert "supplies[3]" in message and expected in message


def test_many_errors_are_all_named_but_capped() -> None:
    d = doc(TWO_SOURCES)
    d["bom"] += [{"parent": "P", "child": f"x{i}", "qty": 1} for i in range(30)]
    message = error_of(d)
    assert "'x0' is made by no node" in message and "and 10 more" in message


def test_missing_supply_relation_is_a_warning_and_any_maker_supplies() -> None:
    d = doc(TWO_LEVELS)
    d["supplies"] = [s for s in d["supplies"] if s["customer"] != "S1"]
    net = parse_network(d)
    assert any("site 'S1' needs 'r'" in w for w in net.warnings)


def test_not_an_object() -> None:
    assert "JSON object" in error_of([1, 2])


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.none() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
        max_leaves=12,
    )
)
def test_hostile_documents_give_data_errors(junk) -> None:
    document = {"nodes": junk, "products": junk, "bom": junk}
    with pytest.raises(DataError):
        parse_network(document)


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def bundle(tmp_path: Path) -> Path:
    write(
        tmp_path / "nodes.csv",
        "id,produces,capacity_per_week,inventory,ttr_weeks,region,energy_kwh_per_unit\n"
        "A,a,60,,4,R1,10\n"
        "B,a,60,120,2,R2,10\n",
    )
    write(tmp_path / "products.csv", "item,demand_per_week,margin\nP,100,10\n")
    write(tmp_path / "bom.csv", "parent,child,qty\nP,a,1\n")
    write(tmp_path / "grid.csv", "region,kg_co2_per_kwh\nR1,0.9\nR2,0.3\n")
    return tmp_path


def test_csv_bundle_equals_the_json_document(tmp_path: Path) -> None:
    assert read_csv_bundle(bundle(tmp_path)) == parse_network(doc(TWO_SOURCES))
    assert load_network(tmp_path) == parse_network(doc(TWO_SOURCES))


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    bundle(tmp_path)
    write(tmp_path / "nodes.csv", "id,produces,capacity_per_week,ttr_weeks\nA,a,60,4\nB,a,-1,2\n")
    with pytest.raises(DataError, match=r"^nodes.csv line 3: capacity_per_week"):
        read_csv_bundle(tmp_path)
    write(tmp_path / "nodes.csv", "id,produces,capacity_per_week,ttr_weeks\nA,a,sixty,4\n")
    with pytest.raises(DataError, match=r"nodes.csv line 2: capacity_per_week 'sixty' is not"):
        read_csv_bundle(tmp_path)
    write(tmp_path / "nodes.csv", "id,produces,capacity_per_week,ttr_weeks\nA,a,60\n")
    with pytest.raises(DataError, match=r"nodes.csv line 2: 3 fields, the header has 4"):
        read_csv_bundle(tmp_path)
    write(tmp_path / "nodes.csv", "id,produces,capacity_per_week\nA,a,60\n")
    with pytest.raises(DataError, match=r"nodes.csv line 2: ttr_weeks is missing"):
        read_csv_bundle(tmp_path)
    (tmp_path / "products.csv").unlink()
    with pytest.raises(DataError, match=r"products\.csv is missing"):
        read_csv_bundle(tmp_path)


def test_json_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    write(path, '{"nodes": [')
    with pytest.raises(DataError, match="not valid JSON at line 1"):
        load_network(path)
    with pytest.raises(DataError, match="no such file"):
        load_network(tmp_path / "missing.json")
