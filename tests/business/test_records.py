from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.business.records import BusinessKind, required_columns, to_ms, validate_rows
from indunet.errors import DataError

T = "2026-11-20T08:00:00Z"
T_MS = 1_795_161_600_000


def test_valid_rows_become_typed_records_with_epoch_ms_times():
    out = validate_rows(
        "purchase_orders",
        [{"Order ID": "PO-1", "item": "steel", "quantity": "120", "expected_at": T}],
    )
    assert out.errors == []
    [rec] = out.records
    assert rec["order_id"] == "PO-1"
    assert rec["quantity"] == 120.0
    assert rec["line_no"] == 1
    assert rec["expected_at"] == T_MS
    assert rec["status"] == "open"


def test_refused_rows_name_source_row_and_field():
    rows = [
        {"item": "a", "warehouse": "w", "quantity": "5", "as_of": T},
        {"item": "b", "warehouse": "w", "quantity": "-3", "as_of": T},
        {"item": "c", "warehouse": "w", "quantity": "x", "as_of": T},
        {"item": "d", "warehouse": "w", "quantity": "1", "as_of": "yesterday-ish"},
        {"item": "e", "quantity": "1", "as_of": T},
    ]
    out = validate_rows(BusinessKind.inventory, rows, source="stock.csv", first_row=2)
    assert [r["item"] for r in out.records] == ["a"]
    refs = {e.ref: e for e in out.errors}
    assert set(refs) == {"stock.csv row 3", "stock.csv row 4", "stock.csv row 5", "stock.csv row 6"}
    assert refs["stock.csv row 3"].field == "quantity"
    assert "greater than or equal to 0" in refs["stock.csv row 3"].reason
    assert "'x'" in refs["stock.csv row 4"].reason
    assert refs["stock.csv row 5"].field == "as_of"
    assert refs["stock.csv row 6"].field == "warehouse"
    assert "Field required" in refs["stock.csv row 6"].reason


def test_duplicate_keys_keep_the_last_row_and_warn():
    rows = [
        {"order_id": "S1", "item": "a", "quantity": 1, "due_at": T},
        {"order_id": "S2", "item": "a", "quantity": 2, "due_at": T},
        {"order_id": "S1", "item": "a", "quantity": 9, "due_at": T},
    ]
    out = validate_rows("sales_orders", rows, source="so.csv", first_row=2)
    assert [(r["order_id"], r["quantity"]) for r in out.records] == [("S1", 9.0), ("S2", 2.0)]
    assert len(out.warnings) == 1
    assert "row 4" in out.warnings[0] and "row 2" in out.warnings[0]


def test_unknown_items_are_kept_with_a_warning():
    out = validate_rows(
        "inventory",
        [{"item": "ghost", "warehouse": "w", "quantity": 1, "as_of": T}],
        known_items={"steel"},
    )
    assert len(out.records) == 1
    assert any("'ghost'" in w for w in out.warnings)


def test_naive_times_are_read_in_the_given_zone():
    out = validate_rows(
        "sales_orders",
        [{"order_id": "S", "item": "a", "quantity": 1, "due_at": "2026-11-20 16:00"}],
        tz="Asia/Shanghai",
    )
    assert out.records[0]["due_at"] == T_MS
    from datetime import date

    assert to_ms(date(2026, 11, 20)) == 1_795_132_800_000


def test_bad_kind_zone_and_shapes_are_refused_clearly():
    with pytest.raises(DataError, match="unknown business record kind 'stock'"):
        validate_rows("stock", [])
    with pytest.raises(DataError):
        validate_rows("items", [], tz="Mars/Olympus")
    out = validate_rows("items", [["not", "an", "object"], {}, {"__error__": "3 cells for 2"}])
    assert [e.reason for e in out.errors] == [
        "a record must be an object",
        "empty row",
        "3 cells for 2",
    ]


def test_production_order_line_must_be_a_namespace_line():
    ok = {"order_id": "P", "item": "a", "quantity": 10, "due_at": T, "line": "s1/assembly/l1"}
    out = validate_rows("production_orders", [ok, {**ok, "order_id": "Q", "line": "s1/../x"}])
    assert [r["order_id"] for r in out.records] == ["P"]
    assert out.errors[0].field == "line"


def test_required_columns():
    assert required_columns(BusinessKind.inventory) == ["item", "warehouse", "quantity", "as_of"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(["item", "warehouse", "quantity", "as_of", "junk", "Item "]),
                st.one_of(
                    st.none(),
                    st.text(max_size=20),
                    st.floats(allow_nan=True),
                    st.integers(),
                    st.booleans(),
                ),
            ),
            st.integers(),
            st.text(max_size=5),
        ),
        max_size=20,
    )
)
def test_any_input_is_either_a_record_or_a_named_error(rows):
    out = validate_rows("inventory", rows, source="fuzz")
    # every row is accounted for: stored, refused, or replaced by a later duplicate
    replaced = sum(1 for w in out.warnings if "repeats" in w)
    assert len(out.records) + len(out.errors) + replaced == len(rows)
    for e in out.errors:
        assert e.ref.startswith("fuzz row ")


def test_numbers_in_time_fields_are_epoch_milliseconds():
    row = {"order_id": "S", "item": "a", "quantity": 1, "due_at": T_MS}
    assert validate_rows("sales_orders", [row]).records[0]["due_at"] == T_MS
    small = validate_rows("sales_orders", [{**row, "due_at": 7}]).records[0]["due_at"]
    assert small == 7  # not read as seconds
    bad = validate_rows("sales_orders", [{**row, "due_at": 1e20}])
    assert bad.errors and "epoch milliseconds" in bad.errors[0].reason
