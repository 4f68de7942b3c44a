from __future__ import annotations

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
