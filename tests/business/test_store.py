from __future__ import annotations

from indunet.business.records import BusinessKind, validate_rows
from indunet.business.store import BusinessStore

NOW = 1_763_625_600_000
DAY = 86_400_000


def test_upsert_keeps_one_row_per_key_and_history_of_stock(historian):
    store = BusinessStore(historian)
    store.load(
        "acme",
        "inventory",
        [
            {
                "item": "steel",
                "warehouse": "W1",
                "quantity": 50,
                "as_of": NOW - DAY,
                "daily_use": 10,
            },
            {"item": "steel", "warehouse": "W1", "quantity": 20, "as_of": NOW, "daily_use": 10},
            {"item": "bolts", "warehouse": "W1", "quantity": 9, "as_of": NOW},
        ],
        source="t",
        now_ms=NOW,
    )
    # a corrected reading for the same time replaces the earlier one
    store.load(
        "acme",
        "inventory",
        [{"item": "steel", "warehouse": "W1", "quantity": 25, "as_of": NOW, "daily_use": 10}],
        source="t",
        now_ms=NOW,
    )
    assert len(store.records("acme", "inventory")) == 3  # history kept
    view = {r["item"]: r for r in store.view("acme", "inventory", now_ms=NOW)}
    assert view["steel"]["quantity"] == 25.0
    assert view["steel"]["days_of_cover"] == 2.5 and view["steel"]["below_cover"]
    assert view["bolts"]["days_of_cover"] is None


def test_refused_rows_become_dead_letters_and_good_rows_are_kept(historian):
    store = BusinessStore(historian)
    report = store.load(
        "acme",
        "purchase_orders",
        [
            {"order_id": "PO1", "item": "a", "quantity": 5, "expected_at": NOW - DAY},
            {"order_id": "PO2", "item": "a", "quantity": "five", "expected_at": NOW},
        ],
        source="po.csv",
        now_ms=NOW,
    )
    assert report.stored == 1
    assert report.refused == [
        {"ref": "po.csv row 2", "field": "quantity", "reason": report.refused[0]["reason"]}
    ]
    letters = historian.dead_letters("acme")
    assert letters[0]["source"] == "business:purchase_orders"
    assert letters[0]["ref"] == "po.csv row 2"
    assert '"five"' in letters[0]["payload"]
    [po] = store.view("acme", BusinessKind.purchase_orders, now_ms=NOW)
    assert po["late"] and po["outstanding"] == 5.0


def test_tenants_do_not_see_each_other(historian):
    store = BusinessStore(historian)
    rec = {"shipment_id": "T1", "departed_at": NOW - 5, "eta": NOW + DAY}
    store.load("acme", "shipments", [rec], source="t", now_ms=NOW)
    store.load("globex", "shipments", [{**rec, "vehicle": "truck 9"}], source="t", now_ms=NOW)
    assert [r["vehicle"] for r in store.records("acme", "shipments")] == [None]
    assert [r["vehicle"] for r in store.records("globex", "shipments")] == ["truck 9"]
    assert store.view("acme", "shipments", now_ms=NOW)[0]["state"] == "on_road"


def test_item_list_drives_unknown_item_warnings_and_reopening_keeps_data(historian):
    store = BusinessStore(historian)
    store.save("acme", validate_rows("items", [{"item": "steel", "unit": "t"}]), now_ms=NOW)
    report = store.load(
        "acme",
        "sales_orders",
        [{"order_id": "S1", "item": "gold", "quantity": 1, "due_at": NOW + DAY}],
        source="so.csv",
        now_ms=NOW,
    )
    assert report.stored == 1 and any("'gold'" in w for w in report.warnings)
    again = BusinessStore(historian)  # DDL is idempotent
    assert again.items("acme") == {"steel"}
    overview = again.overview("acme", now_ms=NOW)
    assert overview["late_sales_orders"] == 0 and overview["shipments"] == {}
