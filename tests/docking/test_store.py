from __future__ import annotations

import pytest

from indunet.docking.solver import solve
from indunet.docking.store import DockingStore
from indunet.errors import DataError


def test_entries_round_trip_and_runs_are_kept(historian):
    store = DockingStore(historian)
    report = store.save(
        "acme",
        "request",
        [
            {"id": "H1", "item": "mask", "quantity": 10},
            {"id": "H2", "item": "mask", "quantity": -1},
        ],
        now_ms=1,
    )
    assert report["stored"] == 1
    assert report["refused"] == [
        {"index": 1, "field": "quantity", "reason": "Input should be greater than 0"}
    ]
    store.save("acme", "offer", [{"id": "S1", "item": "mask", "quantity": 4}], now_ms=1)
    store.save("acme", "lane", [{"from": "S1", "to": "H1", "cost_per_unit": 2}], now_ms=1)
    store.save("acme", "offer", [{"id": "S1", "item": "mask", "quantity": 6}], now_ms=2)  # update
    problem = store.problem("acme")
    assert [o.quantity for o in problem.offers] == [6]
    solution = solve(problem, "fair")
    run_id = store.save_run("acme", solution, now_ms=3)
    kept = store.run("acme", run_id)
    assert kept["objective"] == "fair" and kept["min_fill_rate"] == pytest.approx(0.6)
    assert store.run("globex", run_id) is None
    assert store.problem("globex").requests == []
    assert store.delete("acme", "lane", "S1->H1") and not store.delete("acme", "lane", "S1->H1")


def test_a_dangling_lane_is_refused_when_the_problem_is_assembled(historian):
    store = DockingStore(historian)
    store.save("acme", "lane", [{"from": "S9", "to": "H1"}], now_ms=1)
    with pytest.raises(DataError, match="'from' 'S9' is not an offer id"):
        store.problem("acme")


def test_dispatch_workflow_is_audited_and_feeds_business_data(historian):
    from indunet.business.store import BusinessStore

    store = DockingStore(historian)
    store.save(
        "acme",
        "request",
        [{"id": "H1", "item": "mask", "quantity": 10, "enterprise": "hospital"}],
        now_ms=1,
    )
    store.save("acme", "offer", [{"id": "S1", "item": "mask", "quantity": 10}], now_ms=1)
    store.save("acme", "lane", [{"from": "S1", "to": "H1"}], now_ms=1)
    run_id = store.save_run("acme", solve(store.problem("acme"), "cost"), now_ms=2)
    [order] = store.propose("acme", run_id, by="dispatcher", now_ms=3)
    assert store.propose("acme", run_id, by="dispatcher", now_ms=4) == [order]  # once per run
    assert order["status"] == "proposed" and order["quantity"] == 10
    oid = order["order_id"]
    with pytest.raises(DataError, match="confirmed by both sides"):
        store.act("acme", oid, "ship", side="supplier", by="s", now_ms=5)
    store.act("acme", oid, "confirm", side="supplier", by="sally", now_ms=5)
    store.act("acme", oid, "confirm", side="requester", by="rita", now_ms=6)
    store.act("acme", oid, "ship", side="supplier", by="sally", now_ms=7, lat=30.5, lon=114.3)
    done = store.act(
        "acme", oid, "deliver", side="requester", by="rita", now_ms=8, warehouse="ward-3"
    )
    assert done["status"] == "delivered"
    trail = store.audit("acme", oid)
    assert [(t["action"], t["to_status"]) for t in trail] == [
        ("propose", "proposed"),
        ("confirm", "supplier_confirmed"),
        ("confirm", "confirmed"),
        ("ship", "shipped"),
        ("deliver", "delivered"),
    ]
    business = BusinessStore(historian)
    [stock] = business.current_inventory("hospital")
    assert (stock["item"], stock["warehouse"], stock["quantity"]) == ("mask", "ward-3", 10.0)
    [trip] = business.view("hospital", "shipments", now_ms=9)
    assert trip["state"] == "arrived" and trip["departed_at"] == 7
    with pytest.raises(LookupError):
        store.act("acme", "nope", "confirm", side="supplier", by="s", now_ms=9)
    with pytest.raises(DataError, match="needs a reason"):
        store.act("acme", oid, "cancel", side="supplier", by="s", now_ms=9)


def test_dock_one_request_with_one_offer_by_hand(historian):
    store = DockingStore(historian)
    store.save("acme", "request", [{"id": "H1", "item": "mask", "quantity": 10}], now_ms=1)
    store.save(
        "acme",
        "offer",
        [
            {"id": "S1", "item": "mask", "quantity": 4, "enterprise": "Supplier"},
            {"id": "G1", "item": "gloves", "quantity": 40},
        ],
        now_ms=1,
    )
    order = store.dock("acme", "H1", "S1", by="olga", now_ms=5)
    assert order["run_id"] == "manual" and order["status"] == "proposed"
    assert order["quantity"] == 4.0 and order["supplier"] == "Supplier"  # capped by the stock
    assert store.dock("acme", "H1", "S1", by="olga", now_ms=6, quantity=2)["quantity"] == 2.0
    assert len(store.dispatch_orders("acme", run_id="manual")) == 2
    [event] = store.audit("acme", order["order_id"])
    assert event["action"] == "dock" and event["by_user"] == "olga"
    # the usual workflow follows
    assert store.act("acme", order["order_id"], "confirm", side="supplier", by="s", now_ms=7)
    with pytest.raises(DataError, match="cannot serve request H1"):
        store.dock("acme", "H1", "G1", by="olga", now_ms=8)
    with pytest.raises(LookupError, match="no offer 'nope'"):
        store.dock("acme", "H1", "nope", by="olga", now_ms=8)
    with pytest.raises(LookupError, match="no request 'H1'"):
        store.dock("globex", "H1", "S1", by="olga", now_ms=8)  # another tenant's entries
    with pytest.raises(DataError, match="'by'"):
        store.dock("acme", "H1", "S1", by=" ", now_ms=8)
    with pytest.raises(DataError, match="greater than 0"):
        store.dock("acme", "H1", "S1", by="olga", now_ms=8, quantity=0)
