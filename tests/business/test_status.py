from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from indunet.business.status import (
    DAY_MS,
    inventory_status,
    order_status,
    shipment_status,
    summary,
)

NOW = 1_763_625_600_000


def test_days_of_cover_and_below_cover():
    rows = inventory_status(
        [
            {"item": "a", "quantity": 30.0, "daily_use": 10.0, "min_cover_days": None},
            {"item": "b", "quantity": 30.0, "daily_use": 5.0, "min_cover_days": 7.0},
            {"item": "c", "quantity": 30.0, "daily_use": None, "min_cover_days": None},
            {"item": "d", "quantity": 0.0, "daily_use": 0.0, "min_cover_days": None},
        ],
        default_min_cover_days=3.0,
    )
    assert [(r["days_of_cover"], r["below_cover"]) for r in rows] == [
        (3.0, False),
        (6.0, True),
        (None, False),  # unknown use: cover unknown, not "below"
        (None, False),
    ]


def test_late_orders_need_a_passed_due_time_and_outstanding_quantity():
    base = {"quantity": 100.0, "status": "open"}
    rows = order_status(
        [
            {**base, "order_id": "late", "received_quantity": 40.0, "expected_at": NOW - DAY_MS},
            {**base, "order_id": "future", "received_quantity": 0.0, "expected_at": NOW + 1},
            {**base, "order_id": "full", "received_quantity": 100.0, "expected_at": NOW - 1},
            {
                **base,
                "order_id": "cancelled",
                "status": "cancelled",
                "received_quantity": 0.0,
                "expected_at": NOW - 1,
            },
        ],
        "purchase_orders",
        now_ms=NOW,
    )
    by = {r["order_id"]: r for r in rows}
    assert by["late"]["late"] and by["late"]["outstanding"] == 60.0
    assert by["late"]["days_late"] == 1.0 and by["late"]["progress"] == 0.4
    assert not by["future"]["late"] and not by["full"]["late"] and not by["cancelled"]["late"]


def test_shipment_state_and_lateness():
    rows = shipment_status(
        [
            {"shipment_id": "1", "departed_at": NOW - 10, "eta": NOW - 1, "arrived_at": None},
            {"shipment_id": "2", "departed_at": NOW - 10, "eta": NOW + 1, "arrived_at": NOW},
            {"shipment_id": "3", "departed_at": None, "eta": None, "arrived_at": None},
            {"shipment_id": "4", "status": "cancelled", "eta": NOW - 1},
        ],
        now_ms=NOW,
    )
    assert [(r["state"], r["late"]) for r in rows] == [
        ("on_road", True),
        ("arrived", False),
        ("planned", False),
        ("cancelled", False),
    ]


def test_summary_sums_quantities_rather_than_averaging_ratios():
    prod = order_status(
        [
            {"order_id": "a", "quantity": 1000.0, "done_quantity": 1000.0, "due_at": NOW + 1},
            {"order_id": "b", "quantity": 10.0, "done_quantity": 0.0, "due_at": NOW + 1},
        ],
        "production_orders",
        now_ms=NOW,
    )
    s = summary([], {"production_orders": prod}, [])
    assert s["production_progress"] == round(1000 / 1010, 4)  # not (1.0 + 0.0) / 2


@given(
    st.floats(min_value=0.1, max_value=1e9),
    st.floats(min_value=0, max_value=1e9),
)
def test_progress_stays_in_unit_interval(quantity, done):
    [r] = order_status(
        [{"order_id": "x", "quantity": quantity, "done_quantity": done, "due_at": NOW}],
        "production_orders",
        now_ms=NOW,
    )
    assert 0.0 <= r["progress"] <= 1.0
    assert r["outstanding"] >= 0
