"""The demo's mask shortage: valid, shows every kind of explanation, and loads into the store."""

from __future__ import annotations

import pytest

from indunet.docking.problem import load_problem
from indunet.docking.solver import solve
from indunet.docking.store import DockingStore
from indunet.sim.docking_demo import MAX_KM, load_docking_demo, mask_shortage


def _fills(out: dict) -> dict[str, dict]:
    return {f["request"]: f for f in out["fills"]}


def test_scenario_is_valid_and_spans_provinces() -> None:
    doc = mask_shortage()
    problem = load_problem(doc)
    assert problem.warnings() == []
    provinces = {r["contact"].rsplit("(", 1)[1] for r in doc["requests"]}
    assert len(provinces) >= 6
    kinds = {o["kind"] for o in doc["offers"]}
    assert kinds == {"stock", "capacity", "convertible"}
    cars = [o for o in doc["offers"] if o["kind"] == "convertible"]
    assert {o["usual_item"] for o in cars} >= {"car", "truck"}
    assert all(o["conversion_days"] > 0 and o["conversion_cost"] > 0 for o in cars)
    assert all(lane["transit_days"] >= 1 for lane in doc["lanes"])
    assert len({r["priority"] for r in doc["requests"]}) == 3
    assert MAX_KM > 0 and mask_shortage() == doc  # deterministic


def test_fair_run_explains_every_kind_of_shortage() -> None:
    problem = load_problem(mask_shortage())
    fair = solve(problem, "fair").as_dict()
    fills = _fills(fair)
    assert fills["URC-CLN-suit"]["reasons"][0].startswith("no lane")
    assert fills["HRB-CLN-mask"]["reasons"][0].startswith("no stock before the deadline")
    assert fills["XG-CEN-mask"]["reasons"][0].startswith("outranked")
    # the car lines convert to masks, in time for the hospitals
    converted = {c["offer"] for c in fair["conversions"]}
    assert {"LZ-CAR-mask", "SY-TRK-mask"} <= converted
    # class 1 is served first: its Wuhan mask requests are full, class 2 shares what is left
    assert fills["WH-JYT-mask"]["fill_rate"] == pytest.approx(1.0)
    assert fills["XG-CEN-mask"]["fill_rate"] == pytest.approx(fills["WZ-CEN-mask"]["fill_rate"])
    assert 0 < fills["XG-CEN-mask"]["fill_rate"] < 1
    # fair is fairer than least cost within class 2, and costs at least as much
    cost = solve(problem, "cost").as_dict()
    spread = abs(
        _fills(cost)["XG-CEN-mask"]["fill_rate"] - _fills(cost)["WZ-CEN-mask"]["fill_rate"]
    )
    assert spread > 0.05
    assert fair["total_cost"] >= cost["total_cost"] - 1e-6
    assert fair["class_floors"]["1"] > 0 and fair["class_floors"]["2"] > 0


def test_loader_stores_the_scenario_once(historian) -> None:
    doc = mask_shortage()
    counts = load_docking_demo(historian, "demo", now_ms=1)
    assert counts == {"requests": 13, "offers": 10, "lanes": len(doc["lanes"])}
    load_docking_demo(historian, "demo", now_ms=2)  # a second start replaces, not doubles
    store = DockingStore(historian)
    problem = store.problem("demo")
    assert len(problem.requests) == 13 and len(problem.lanes) == len(doc["lanes"])
    assert store.problem("other").requests == []
