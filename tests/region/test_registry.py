"""Registry rows: normalisation and per-row errors naming row and field."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from indunet.errors import DataError
from indunet.region.registry import (
    check_registry,
    divisions,
    industry_key,
    province_code,
    provinces,
    read_registry_file,
)
from indunet.region.store import RegionStore
from tests.region.conftest import REGISTRY, TODAY, write


def test_code_tables_are_complete() -> None:
    assert len(provinces()) == 31
    assert provinces()["42"].name == "Hubei" and provinces()["44"].name_zh == "广东省"
    assert len([k for k in divisions() if len(k) == 1]) == 20  # sections A–T
    assert len([k for k in divisions() if len(k) == 3]) == 97
    assert divisions()["C36"].name == "Manufacture of automobiles"


@pytest.mark.parametrize(
    ("raw", "code"),
    [("Guangdong", "44"), ("广东省", "44"), ("广东", "44"), ("44", "44"), ("440000", "44"),
     ("xizang", "54"), (" inner mongolia ", "15")],
)  # fmt: skip
def test_province_names(raw: str, code: str) -> None:
    assert province_code(raw) == code


@pytest.mark.parametrize(
    ("raw", "key"), [("C", "C"), ("36", "C36"), ("c36", "C36"), ("C3670", "C36"), ("3911", "C39")]
)
def test_industry_codes(raw: str, key: str) -> None:
    assert industry_key(raw) == key


@pytest.mark.parametrize("raw", ["C99", "X36", "B36", "3", "steel", ""])
def test_bad_industry_codes(raw: str) -> None:
    with pytest.raises(DataError):
        industry_key(raw)


def test_normalised_rows(tmp_path: Path) -> None:
    frame, errors = read_registry_file(write(tmp_path / "r.csv", REGISTRY))
    check = check_registry(frame)
    assert errors == [] and check.errors == []
    rows = {r["enterprise_id"]: r for r in check.rows.to_dicts()}
    assert rows["E2"]["province"] == "Guangdong" and rows["E2"]["division"] == "C31"
    assert rows["E4"]["industry"] == "C3670" and rows["E4"]["province_code"] == "42"
    assert rows["E3"]["above_designated_size"] is True  # given
    assert rows["E5"]["above_designated_size"] is False  # micro, not given
    assert rows["E1"]["supplies"] == ["E3"] and rows["E5"]["supplies"] == []


BAD = """enterprise_id,name,province,city,industry,size,lat,above_designated_size,valid_from
A1,Fine,Hubei,Wuhan,C36,small,30.5,true,
A2,Nowhere,Atlantis,X,C36,small,,,
A3,Bad code,Hubei,Wuhan,C99,small,,,
,No id,Hubei,Wuhan,C36,small,,,
A5,Bad size,Hubei,Wuhan,C36,giant,,,
A6,Off map,Hubei,Wuhan,C36,small,-40,maybe,2020-13-01
A1,Again,Hubei,Wuhan,C36,small,,,
A8,Short line,Hubei
A9,Wrong section,Hubei,Wuhan,B36,small,,,
"""


def test_bad_rows_are_named_by_row_and_field(tmp_path: Path) -> None:
    frame, read_errors = read_registry_file(write(tmp_path / "bad.csv", BAD))
    check = check_registry(frame)
    found = {(e.row, e.field) for e in read_errors + check.errors}
    assert found == {
        (3, "province"),
        (4, "industry"),
        (5, "enterprise_id"),
        (6, "size"),
        (7, "lat"),
        (7, "above_designated_size"),
        (7, "valid_from"),
        (2, "enterprise_id"),  # A1 again in row 8, which is kept
        (9, "*"),
        (10, "industry"),
    }
    messages = " | ".join(str(e) for e in check.errors)
    assert "row 3, field province: 'Atlantis' is not a mainland province" in messages
    assert "division 36 belongs to section C" in messages
    assert check.rows.get_column("name").to_list() == ["Again"]


def test_refused_rows_are_kept_aside(make_store, tmp_path: Path) -> None:
    store: RegionStore = make_store()
    report = store.import_registry(write(tmp_path / "bad.csv", BAD), effective=TODAY)
    assert report.new == 1 and report.refused == 8
    rows, total = store.quarantine(kind="registry")
    assert total == len(report.errors)
    assert any("Atlantis" in r["reason"] for r in rows)


def test_missing_columns_and_files(tmp_path: Path) -> None:
    frame = pl.DataFrame({"enterprise_id": ["x"], "name": ["y"]})
    with pytest.raises(DataError, match="missing column"):
        check_registry(frame)
    with pytest.raises(DataError, match="no such file"):
        read_registry_file(tmp_path / "none.csv")
    with pytest.raises(DataError, match=r"use a \.csv"):
        read_registry_file(write(tmp_path / "r.txt", "x"))


def test_parquet_registry(tmp_path: Path) -> None:
    frame, _ = read_registry_file(write(tmp_path / "r.csv", REGISTRY))
    frame.drop("row").with_columns(pl.col("lat").cast(pl.Float64, strict=False)).write_parquet(
        tmp_path / "r.parquet"
    )
    again, _ = read_registry_file(tmp_path / "r.parquet")
    check = check_registry(again)
    assert check.errors == [] and check.rows.height == 6
