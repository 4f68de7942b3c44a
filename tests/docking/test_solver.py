"""Hand-solved docking cases; the arithmetic is in each test's comments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.docking.problem import load_problem
from indunet.docking.solver import solve


def _p(requests, offers, lanes, **extra):
    return load_problem({"requests": requests, "offers": offers, "lanes": lanes, **extra})


def test_contract_example():
    # 250 masks over a lane at 4 per unit: 1000, nothing unmet
    p = _p(
        [{"id": "H1", "item": "mask", "quantity": 250, "unmet_penalty": 1000}],
        [{"id": "S1", "item": "mask", "quantity": 300}],
        [{"from": "S1", "to": "H1", "cost_per_unit": 4}],
    )
    for objective in ("cost", "fair"):
        out = solve(p, objective).as_dict()
        assert out["total_cost"] == 1000
        assert out["min_fill_rate"] == 1.0
        assert out["allocations"] == [
            {"offer": "S1", "request": "H1", "quantity": 250.0, "cost": 1000.0}
        ]
        assert out["unmet"] == []


SHORT = (
    [
        {"id": "H1", "item": "m", "quantity": 100, "unmet_penalty": 1000},
        {"id": "H2", "item": "m", "quantity": 100, "unmet_penalty": 1000},
    ],
    [{"id": "S1", "item": "m", "quantity": 100}],
    [
        {"from": "S1", "to": "H1", "cost_per_unit": 1},
        {"from": "S1", "to": "H2", "cost_per_unit": 5},
    ],
)


def test_cost_sends_everything_the_cheap_way():
    # all 100 to H1 (100) + 100 unmet at H2 × 1000 = 100,100
    out = solve(_p(*SHORT), "cost").as_dict()
    assert out["total_cost"] == 100_100
    assert out["min_fill_rate"] == 0.0
    assert out["unmet"][0]["request"] == "H2"
    assert "short supply" in out["unmet"][0]["reasons"][0]


def test_fair_splits_then_minimises_cost():
    # max-min fill is 0.5 each; cost 50×1 + 50×5 = 300 plus 100 unmet × 1000
    out = solve(_p(*SHORT), "fair").as_dict()
    assert out["min_fill_rate"] == pytest.approx(0.5, abs=1e-6)
    assert out["total_cost"] == pytest.approx(100_300, abs=1e-3)
    got = {a["request"]: a["quantity"] for a in out["allocations"]}
    assert got == pytest.approx({"H1": 50, "H2": 50}, abs=1e-5)


def test_fair_breaks_ties_by_cost():
    # two offers, two requests, plenty: fill 1.0 for both; cheapest pairing 1 + 1 per unit
    p = _p(
        [{"id": "A", "item": "m", "quantity": 10}, {"id": "B", "item": "m", "quantity": 10}],
        [{"id": "X", "item": "m", "quantity": 10}, {"id": "Y", "item": "m", "quantity": 10}],
        [
            {"from": "X", "to": "A", "cost_per_unit": 1},
            {"from": "X", "to": "B", "cost_per_unit": 9},
            {"from": "Y", "to": "A", "cost_per_unit": 9},
            {"from": "Y", "to": "B", "cost_per_unit": 1},
        ],
    )
    out = solve(p, "fair").as_dict()
    assert out["min_fill_rate"] == 1.0
    assert out["total_cost"] == pytest.approx(20)


def test_priority_classes_are_served_in_order_and_explained():
    # 150 units; class 1 gets its 100 first; class 2 gets the remaining 50 and is "outranked"
    p = _p(
        [
            {"id": "ICU", "item": "m", "quantity": 100, "priority": 1},
            {"id": "Plant", "item": "m", "quantity": 100, "priority": 2},
        ],
        [{"id": "S", "item": "m", "quantity": 150}],
        [{"from": "S", "to": "ICU"}, {"from": "S", "to": "Plant"}],
    )
    out = solve(p, "fair").as_dict()
    fills = {f["request"]: f["fill_rate"] for f in out["fills"]}
    assert fills == pytest.approx({"ICU": 1.0, "Plant": 0.5}, abs=1e-6)
    assert out["class_floors"] == pytest.approx({"1": 1.0, "2": 0.5}, abs=1e-6)
    assert out["unmet"][0]["reasons"][0].startswith("outranked: S")


def test_no_lane_and_late_stock_are_explained():
    # N has no lane; L's only stock is available day 3 + 2 transit = day 5 > deadline 4
    p = _p(
        [
            {"id": "N", "item": "m", "quantity": 5},
            {"id": "L", "item": "m", "quantity": 5, "deadline_day": 4},
        ],
        [{"id": "S", "item": "m", "quantity": 50, "available_day": 3}],
        [{"from": "S", "to": "L", "transit_days": 2}],
    )
    out = solve(p, "cost").as_dict()
    reasons = {u["request"]: u["reasons"][0] for u in out["unmet"]}
    assert reasons["N"].startswith("no lane")
    assert reasons["L"].startswith("no stock before the deadline")
    assert out["allocations"] == []


def test_penalty_below_cost_is_explained():
    p = _p(
        [{"id": "H", "item": "m", "quantity": 5, "unmet_penalty": 2}],
        [{"id": "S", "item": "m", "quantity": 50}],
        [{"from": "S", "to": "H", "cost_per_unit": 4}],
    )
    out = solve(p, "cost").as_dict()
    assert out["total_cost"] == 10
    assert out["unmet"][0]["reasons"][0].startswith("unmet penalty is lower")


def test_capacity_ramp_limits_what_arrives_by_the_deadline():
    # 10/day from day 0, ramp 5 days: 2+4+6+8+10 = 30 by day 4 → 30 of 50 (fill 0.6)
    p = _p(
        [{"id": "H", "item": "m", "quantity": 50, "deadline_day": 4}],
        [{"id": "C", "item": "m", "kind": "capacity", "rate_per_day": 10, "ramp_days": 5}],
        [{"from": "C", "to": "H", "cost_per_unit": 1}],
    )
    out = solve(p, "cost").as_dict()
    assert out["fills"][0]["filled"] == pytest.approx(30)
    assert all(a["arrive_day"] <= 4 for a in out["allocations"])


def test_car_line_converts_to_masks_when_it_pays():
    # 100 masks by day 9; line makes 20/day 2 days after converting (cost 500): convert, 160 ≥ 100
    lanes = [{"from": "Car", "to": "H", "cost_per_unit": 1}]
    line = {
        "id": "Car",
        "item": "m",
        "kind": "convertible",
        "rate_per_day": 20,
        "conversion_days": 2,
        "conversion_cost": 500,
        "usual_item": "car",
    }
    hurts = _p([{"id": "H", "item": "m", "quantity": 100, "deadline_day": 9}], [line], lanes)
    out = solve(hurts, "cost").as_dict()
    assert out["total_cost"] == pytest.approx(600)  # 500 conversion + 100 transport
    assert len(out["conversions"]) == 1
    assert out["conversions"][0]["producing_from_day"] == out["conversions"][0]["day"] + 2
    cheap = _p(
        [{"id": "H", "item": "m", "quantity": 100, "deadline_day": 9, "unmet_penalty": 1}],
        [line],
        lanes,
    )
    out = solve(cheap, "cost").as_dict()
    assert out["conversions"] == [] and out["total_cost"] == pytest.approx(100)


def test_conversion_too_late_for_the_deadline():
    # converting takes 5 days, deadline day 3: nothing can arrive
    p = _p(
        [{"id": "H", "item": "m", "quantity": 10, "deadline_day": 3}],
        [
            {
                "id": "Car",
                "item": "m",
                "kind": "convertible",
                "rate_per_day": 20,
                "conversion_days": 5,
            }
        ],
        [{"from": "Car", "to": "H"}],
        horizon_days=10,
    )
    out = solve(p, "fair").as_dict()
    assert out["unmet"][0]["reasons"][0].startswith("no stock before the deadline")


def test_minimum_order_is_all_or_nothing():
    # a 100-unit minimum order cannot serve a 30-unit request: it stays unmet
    p = _p(
        [{"id": "H", "item": "m", "quantity": 30}],
        [{"id": "C", "item": "m", "kind": "capacity", "rate_per_day": 50, "min_order": 100}],
        [{"from": "C", "to": "H"}],
        horizon_days=5,
    )
    out = solve(p, "cost").as_dict()
    assert out["fills"][0]["filled"] == 0


def test_distance_model_makes_lanes_from_locations():
    p = load_problem(
        {
            "requests": [
                {
                    "id": "Wuhan",
                    "item": "m",
                    "quantity": 10,
                    "location": {"lat": 30.59, "lon": 114.31},
                }
            ],
            "offers": [
                {
                    "id": "Near",
                    "item": "m",
                    "quantity": 10,
                    "location": {"lat": 30.6, "lon": 114.3},
                },
                {"id": "Far", "item": "m", "quantity": 10, "location": {"lat": 39.9, "lon": 116.4}},
            ],
            "distance": {"cost_per_unit_km": 0.01, "km_per_day": 500},
        }
    )
    out = solve(p, "cost").as_dict()
    assert [a["offer"] for a in out["allocations"]] == ["Near"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 100), min_size=1, max_size=5),
    st.lists(st.integers(0, 100), min_size=1, max_size=4),
    st.data(),
)
def test_solutions_balance_and_fair_is_never_less_fair(demands, stocks, data):
    requests = [{"id": f"R{i}", "item": "m", "quantity": d} for i, d in enumerate(demands)]
    offers = [{"id": f"O{i}", "item": "m", "quantity": s} for i, s in enumerate(stocks)]
    lanes = [
        {"from": o["id"], "to": r["id"], "cost_per_unit": data.draw(st.integers(0, 20))}
        for o in offers
        for r in requests
    ]
    p = _p(requests, offers, lanes)
    cost, fair = solve(p, "cost").as_dict(), solve(p, "fair").as_dict()
    for out in (cost, fair):
        for f in out["fills"]:
            assert 0.0 <= f["fill_rate"] <= 1.0
        shipped = sum(a["quantity"] for a in out["allocations"])
        assert shipped == pytest.approx(min(sum(demands), sum(stocks)), abs=1e-4)
    assert fair["min_fill_rate"] >= cost["min_fill_rate"] - 1e-6
    assert cost["total_cost"] <= fair["total_cost"] * (1 + 1e-6) + 1e-4
    expected_floor = min(1.0, sum(stocks) / sum(demands)) if sum(demands) else 1.0
    assert fair["min_fill_rate"] == pytest.approx(expected_floor, abs=1e-5)


def test_items_are_solved_apart_and_the_fair_floor_is_the_lowest_item():
    # masks: 100 for 100 (fill 1); gloves: 50 for 100 (fill 0.5): floor 0.5, masks still full
    p = _p(
        [
            {"id": "M", "item": "mask", "quantity": 100},
            {"id": "G", "item": "gloves", "quantity": 100},
        ],
        [
            {"id": "SM", "item": "mask", "quantity": 100},
            {"id": "SG", "item": "gloves", "quantity": 50},
        ],
        [{"from": "SM", "to": "M", "cost_per_unit": 1}, {"from": "SG", "to": "G"}],
    )
    out = solve(p, "fair").as_dict()
    assert out["class_floors"] == pytest.approx({"1": 0.5})
    assert [f["fill_rate"] for f in out["fills"]] == pytest.approx([1.0, 0.5])
    assert out["transport_cost"] == pytest.approx(100)


def test_transit_beyond_the_horizon_does_not_count_even_without_deadlines():
    # horizon 5 days: day 0 + 9 transit arrives on day 9, outside the horizon
    p = _p(
        [{"id": "H", "item": "m", "quantity": 10}],
        [{"id": "S", "item": "m", "quantity": 10}],
        [{"from": "S", "to": "H", "transit_days": 9}],
        horizon_days=5,
    )
    out = solve(p, "cost").as_dict()
    assert out["fills"][0]["filled"] == 0
    assert out["unmet"][0]["reasons"][0].startswith("no stock before the deadline")
