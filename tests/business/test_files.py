from __future__ import annotations

import gzip
import json

import pytest
from openpyxl import Workbook

from indunet.business.files import read_rows
from indunet.business.records import BusinessKind
from indunet.errors import DataError

INV = BusinessKind.inventory


def test_csv_with_bom_semicolons_and_odd_header_spelling(tmp_path):
    p = tmp_path / "stock.csv"
    p.write_text(
        "\ufeffItem;Warehouse;Quantity;As Of;Colour\nsteel;W1;5;2026-11-20;red\n\nx;W1\n",
        encoding="utf-8",
    )
    rows, warnings, first = read_rows(p, INV)
    assert first == 2
    assert rows[0] == {
        "item": "steel",
        "warehouse": "W1",
        "quantity": "5",
        "as_of": "2026-11-20",
        "colour": "red",
    }
    assert rows[1] == {}  # empty line kept for numbering, refused later
    assert rows[2] == {"__error__": "2 cells for 5 columns"}
    assert warnings == ["stock.csv: column(s) colour not used for inventory"]


def test_gzip_csv(tmp_path):
    p = tmp_path / "s.csv.gz"
    p.write_bytes(gzip.compress(b"item,warehouse,quantity,as_of\na,w,1,2026-01-01\n"))
    rows, _, _ = read_rows(p, INV)
    assert rows == [{"item": "a", "warehouse": "w", "quantity": "1", "as_of": "2026-01-01"}]


def test_missing_required_columns_refuse_the_whole_file(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("item,qty\na,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) warehouse, quantity, as_of"):
        read_rows(p, INV)


def test_excel_export(tmp_path):
    from datetime import datetime

    book = Workbook()
    sheet = book.active
    sheet.append(["Order ID", "Item", "Quantity", "Expected At", None])
    sheet.append(["PO-7", "bolts", 500, datetime(2026, 11, 25, 9, 0), None])
    sheet.append([None, None, None, None, None])
    p = tmp_path / "po.xlsx"
    book.save(p)
    rows, _, _ = read_rows(p, BusinessKind.purchase_orders)
    assert rows == [
        {
            "order_id": "PO-7",
            "item": "bolts",
            "quantity": 500,
            "expected_at": datetime(2026, 11, 25, 9, 0),
        }
    ]


def test_json_array_records_document_and_ndjson(tmp_path):
    rec = {"item": "a", "warehouse": "w", "quantity": 1, "as_of": "2026-01-01"}
    a = tmp_path / "a.json"
    a.write_text(json.dumps([rec]))
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"records": [rec]}))
    c = tmp_path / "c.ndjson"
    c.write_text(json.dumps(rec) + "\n{broken\n\n")
    assert read_rows(a, INV)[0] == [rec]
    assert read_rows(b, INV)[0] == [rec]
    rows, _, _ = read_rows(c, INV)
    assert rows[0] == rec and "line 2 is not valid JSON" in rows[1]["__error__"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", b"{not json", "not valid JSON at line 1"),
        ("x.json", b'{"a": 1}', "expected a JSON array"),
        ("x.csv", b"item,warehouse\n\xff\xfe,1\n", "not UTF-8"),
        ("x.xlsx", b"PK\x03\x04 not really a zip", "not a readable .xlsx"),
        ("x.pdf", b"%PDF", "unknown file type"),
        ("x.csv", b"", "the file is empty"),
        ("x.csv.gz", b"\x1f\x8b\x08garbage", "cannot be read"),
    ],
)
def test_hostile_files_are_refused_with_a_reason(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_rows(p, INV)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "nope.csv", INV)
