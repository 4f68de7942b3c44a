from __future__ import annotations

import copy

import pytest

from indunet.docking.problem import Location, OfferKind, haversine_km, load_problem
from indunet.errors import DataError

BASE = {
    "requests": [{"id": "H1", "item": "mask", "quantity": 250, "unmet_penalty": 1000}],
    "offers": [{"id": "S1", "item": "mask", "quantity": 300}],
    "lanes": [{"from": "S1", "to": "H1", "cost_per_unit": 4}],
}


def _with(**changes):
    doc = {k: [dict(e) for e in v] for k, v in BASE.items()}
    doc.update(changes)
    return doc


def test_contract_document_loads():
    p = load_problem(BASE)
    assert p.requests[0].penalty == 1000
    assert p.offers[0].kind is OfferKind.stock
    assert p.lanes[0].source == "S1" and p.lanes[0].target == "H1"
    assert not p.timed


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _with(requests=[{"id": "H1", "item": "mask", "quantity": -5}]),
            r"requests\[0\].quantity \(id 'H1'\)",
        ),
        (_with(offers=[{"id": "S1", "item": "mask"}]), "a stock offer needs a quantity"),
        (_with(offers=[{"id": "S1", "item": "mask", "kind": "capacity"}]), "needs rate_per_day"),
        (_with(lanes=[{"from": "S9", "to": "H1"}]), r"lanes\[0\]: 'from' 'S9' is not an offer id"),
        (_with(lanes=[{"from": "S1", "to": "X"}]), r"lanes\[0\]: 'to' 'X' is not a request id"),
        (
            _with(requests=[{"id": "H1", "item": "mask", "quantity": 1}] * 2),
            r"duplicate request id\(s\): H1",
        ),
        (
            _with(offers=[{"id": "H1", "item": "mask", "quantity": 1}], lanes=[]),
            "used by both a request and an offer: H1",
        ),
        (
            _with(offers=[{"id": "S1", "item": "gloves", "quantity": 1}]),
            r"offer S1 \(gloves\) cannot serve request H1 \(mask\)",
        ),
        (_with(lanes=[BASE["lanes"][0]] * 2), "a second lane from S1 to H1"),
        (
            _with(
                requests=[{"id": "H1", "item": "mask", "quantity": 1, "deadline_day": 40}],
                horizon_days=10,
            ),
            "deadline_day 40 is beyond horizon_days 10",
        ),
        (_with(surprise=1), "surprise: Extra inputs are not permitted"),
        ([1, 2], "a docking problem is a JSON object"),
    ],
)
def test_bad_problems_name_the_entry(doc, message):
    with pytest.raises(DataError, match=message):
        load_problem(doc)


def test_offers_nobody_asked_for_are_a_warning_not_an_error():
    p = load_problem(_with(offers=[*BASE["offers"], {"id": "G", "item": "gloves", "quantity": 5}]))
    assert p.warnings() == ["offer G: nobody requests item 'gloves'"]


def test_capacity_production_with_ramp_and_cap():
    p = load_problem(
        _with(
            offers=[
                {
                    "id": "S1",
                    "item": "mask",
                    "kind": "capacity",
                    "rate_per_day": 10,
                    "from_day": 2,
                    "ramp_days": 4,
                    "quantity": 40,
                }
            ]
        )
    )
    o = p.offers[0]
    assert [o.produced_by(d) for d in range(8)] == [0, 0, 2.5, 7.5, 15.0, 25.0, 35.0, 40.0]


def test_haversine():
    wuhan, beijing = Location(lat=30.59, lon=114.31), Location(lat=39.90, lon=116.40)
    assert 1040 < haversine_km(wuhan, beijing) < 1070


# ---------------------------------------------------------------- many lanes: the column path
def _many(n: int = 200) -> dict:
    """A problem with n offers, n requests and n × n / 2 lanes (≥ FAST_LANES), two items."""
    item = ("suit", "mask")
    return {
        "requests": [{"id": f"R{j}", "item": item[j % 2], "quantity": 10 + j} for j in range(n)],
        "offers": [{"id": f"O{i}", "item": item[i % 2], "quantity": 7 + i % 13} for i in range(n)],
        "lanes": [
            {"from": f"O{i}", "to": f"R{j}", "cost_per_unit": (i * 7 + j * 3) % 17}
            for i in range(n)
            for j in range(n)
            if i % 2 == j % 2
        ],
    }


def _both_ways(doc: dict, monkeypatch, fast_from: int = 1000) -> list:
    """Load ``doc`` by the column path and by the models: the problems, or the error messages."""
    import indunet.docking.problem as problem

    out = []
    for fast in (fast_from, 10**9):
        monkeypatch.setattr(problem, "FAST_LANES", fast)
        try:
            out.append(load_problem(copy.deepcopy(doc)))
        except DataError as exc:
            out.append(str(exc))
    return out


def test_many_lanes_take_the_column_path_and_solve_the_same(monkeypatch):
    from indunet.docking.problem import FAST_LANES, LaneColumns
    from indunet.docking.solver import solve

    big = _many()
    assert len(big["lanes"]) >= FAST_LANES
    assert isinstance(load_problem(big).lanes, LaneColumns)
    doc = _many(50)
    fast, slow = _both_ways(doc, monkeypatch)
    assert isinstance(fast.lanes, LaneColumns) and isinstance(slow.lanes, list)
    assert not fast.timed and len(fast.lanes) == len(slow.lanes)
    assert fast.lanes[3] == slow.lanes[3]
    assert fast.lanes[:2] == slow.lanes[:2] and list(fast.lanes)[-1] == slow.lanes[-1]
    for objective in ("cost", "fair"):
        a, b = solve(fast, objective).as_dict(), solve(slow, objective).as_dict()
        assert a["total_cost"] == pytest.approx(b["total_cost"])
        assert a["min_fill_rate"] == pytest.approx(b["min_fill_rate"])
        assert a["allocations"] == b["allocations"]


def _set(n: int, **values):
    return lambda d: d["lanes"][n].update(values)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set(1000, **{"from": "nobody"}), "lanes[1000]: 'from' 'nobody' is not an offer id"),
        (_set(800, to="O3"), "lanes[800]: 'to' 'O3' is not a request id"),
        (_set(775, to="R0"), "lanes[775]: offer O31 (mask) cannot serve request R0 (suit)"),
        (lambda d: d["lanes"].append(dict(d["lanes"][5])), "a second lane from O0 to R10"),
        (_set(7, cost_per_unit=-1), "lanes[7].cost_per_unit"),
        (_set(9, cost_per_unit=float("nan")), "lanes[9].cost_per_unit"),
        (_set(9, cost_per_unit=None), "lanes[9].cost_per_unit"),
        (lambda d: d["lanes"][10].pop("to"), "lanes[10].to"),
        (_set(11, via="sea"), "lanes[11].via"),
        (_set(12, **{"from": "O\x01"}), "lanes[12].from"),
        (_set(12, **{"from": ""}), "lanes[12].from"),
        (_set(13, transit_days=1.5), "lanes[13].transit_days"),
        (_set(13, transit_days=-2), "lanes[13].transit_days"),
        (lambda d: d["lanes"].__setitem__(14, ["O1", "R1"]), "lanes[14]"),
        (lambda d: d["requests"][3].update({"quantity": -1}), "requests[3].quantity"),
    ],
)
def test_many_lanes_get_the_same_messages_as_few(change, expected, monkeypatch):
    doc = _many(50)
    change(doc)
    fast, slow = _both_ways(doc, monkeypatch)
    assert fast == slow
    assert expected in fast


@pytest.mark.parametrize("value", [True, "4", 3.0])
def test_many_lanes_accept_what_the_models_accept(value, monkeypatch):
    doc = _many(50)
    doc["lanes"][8]["cost_per_unit"] = value
    doc["lanes"][9]["transit_days"] = 2.0 if value == 3.0 else 0
    fast, slow = _both_ways(doc, monkeypatch)
    assert fast.lanes[8] == slow.lanes[8] and fast.lanes[9] == slow.lanes[9]
