"""Wide and long CSV / Parquet files: what imports, and how every bad row is reported."""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indunet.errors import DataError
from indunet.ingest.tabular import MAX_FIELD, Chunk, TableSpec, read_table
from indunet.ingest.values import TimeParser
from indunet.model import DataType, DeadLetter
from indunet.uns import MachinePath
from tests.datasets import DATASETS

NOW = 1_800_000_000_000
T0 = 1_700_000_000_000
E = "acme"
M = "s1/press/l1/m1"
TIMES = TimeParser(now_ms=NOW)


def spec(**kw) -> TableSpec:
    kw.setdefault("enterprise", E)
    kw.setdefault("times", TIMES)
    if not kw.get("long"):
        kw.setdefault("machine", MachinePath.parse(M))
    return TableSpec(**kw)


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def read(path: Path, s: TableSpec | None = None) -> tuple[list[tuple], list[DeadLetter]]:
    """Return all (tag, ts, value, text, quality) rows and the dead letters of a file."""
    rows: list[tuple] = []
    rejected: list[DeadLetter] = []
    for chunk in read_table(path, s or spec()):
        assert isinstance(chunk, Chunk)
        t = chunk.batch.table
        rows += zip(
            *(t.column(c).to_pylist() for c in ("tag", "ts", "value", "text", "quality")),
            strict=True,
        )
        assert len(chunk.batch.refs) == len(chunk.batch)
        rejected += chunk.rejected
    return rows, rejected


def reasons(letters: list[DeadLetter]) -> list[str]:
    return [d.reason for d in letters]


WIDE = f"""time,power_kw,mode,door_open
{T0},3.5,running,false
{T0 + 1000},,idle,true
{T0 + 2000},4,,
"""
WIDE_ROWS = [
    (f"{M}/power_kw", T0, 3.5, None, 0),
    (f"{M}/mode", T0, None, "running", 0),
    (f"{M}/door_open", T0, 0.0, None, 0),
    (f"{M}/mode", T0 + 1000, None, "idle", 0),
    (f"{M}/door_open", T0 + 1000, 1.0, None, 0),
    (f"{M}/power_kw", T0 + 2000, 4.0, None, 0),
]


# ---------------------------------------------------------------------------- good files
@pytest.mark.parametrize("name", ["m1.csv", "m1.CSV", "m1.csv.gz", "m1.txt"])
def test_wide_csv(tmp_path, name):
    rows, rejected = read(write(tmp_path / name, WIDE))
    assert rejected == []
    assert rows == WIDE_ROWS  # empty cells are "no value", not zero


def test_wide_csv_types_and_refs(tmp_path):
    path = write(tmp_path / "m1.csv", WIDE)
    [chunk] = list(read_table(path, spec()))
    assert chunk.batch.types == {
        f"{M}/power_kw": DataType.NUMBER,
        f"{M}/mode": DataType.STRING,
        f"{M}/door_open": DataType.BOOLEAN,
    }
    assert chunk.batch.refs[:3] == [
        "m1.csv line 2 column 'power_kw'",
        "m1.csv line 2 column 'mode'",
        "m1.csv line 2 column 'door_open'",
    ]
    assert chunk.batch.enterprise == E


def test_time_column_anywhere_with_bom_crlf_and_spaces(tmp_path):
    text = (
        "\ufeff power_kw , stamp \r\n1.5,2023-11-14T22:13:20Z\r\n\r\n2.5, 2023-11-14T22:13:21Z\r\n"
    )
    rows, rejected = read(write(tmp_path / "x.csv", text), spec(time_column="stamp"))
    assert rejected == []
    assert rows == [(f"{M}/power_kw", T0, 1.5, None, 0), (f"{M}/power_kw", T0 + 1000, 2.5, None, 0)]


def test_strptime_format_and_zone(tmp_path):
    text = "date,kwh\n01/01/2018 00:15,3.17\n01/01/2018 00:00,3.5\n"
    times = TimeParser(
        now_ms=NOW, fmt="%d/%m/%Y %H:%M", tz=ZoneInfo("Asia/Seoul"), midnight_ends_day=True
    )
    rows, _ = read(write(tmp_path / "x.csv", text), spec(times=times))
    kst = ZoneInfo("Asia/Seoul")
    assert [r[1] for r in rows] == [
        int(datetime(2018, 1, 1, 0, 15, tzinfo=kst).timestamp()) * 1000,
        int(datetime(2018, 1, 2, 0, 0, tzinfo=kst).timestamp()) * 1000,
    ]


def test_long_csv(tmp_path):
    text = (
        "ts,tag,value,quality\n"
        f"{T0},s1/press/l1/m1/power_kw,3.5,\n"
        f"2023-11-14T22:13:21Z,s2/weld/l2/m9/mode,running,uncertain\n"
        f"{T0},s1/press/l1/m1/power_kw,3.6,2\n"  # duplicate (tag, ts) is kept for the historian
        f"{T0 + 5000}, s1/press/l1/m1/door ,true,BAD\n"
    )
    rows, rejected = read(write(tmp_path / "long.csv", text), spec(long=True))
    assert rejected == []
    assert rows == [
        ("s1/press/l1/m1/power_kw", T0, 3.5, None, 0),
        ("s2/weld/l2/m9/mode", T0 + 1000, None, "running", 1),
        ("s1/press/l1/m1/power_kw", T0, 3.6, None, 2),
        ("s1/press/l1/m1/door", T0 + 5000, 1.0, None, 2),
    ]


def test_long_csv_bad_rows_name_file_line_and_column(tmp_path):
    text = (
        "tag,ts,value,quality\n"
        f"s1/press/l1/m1/a,{T0},1,\n"
        f"s1/press/l1,{T0},1,\n"
        f"s1/press/l1/m1/a,later,1,\n"
        f"s1/press/l1/m1/a,{T0},,\n"
        f"s1/press/l1/m1/a,{T0},nan,\n"
        f"s1/press/l1/m1/a,{T0},1,superb\n"
        f"s1/press/l1/m1/a,{T0},1,²\n"
        f"s1/press/l1/m1/a,{T0},1,7\n"
    )
    rows, rejected = read(write(tmp_path / "long.csv", text), spec(long=True))
    assert len(rows) == 1
    assert [d.ref for d in rejected] == [f"long.csv line {n}" for n in range(3, 10)]
    expected = [
        "column 'tag'",
        "column 'ts'",
        "column 'value' is empty",
        "column 'value'",
        "column 'quality'",
        "column 'quality'",
        "column 'quality'",
    ]
    for letter, words in zip(rejected, expected, strict=True):
        assert letter.reason.startswith(letter.ref + ": " + words), letter.reason
        assert letter.source == "import:long.csv"
    assert rejected[0].payload == f"s1/press/l1,{T0},1,"


def test_parquet_wide_typed_columns(tmp_path):
    ts = [T0, T0 + 1000, T0 + 2000]
    table = pa.table(
        {
            "time": pa.array(ts, pa.int64()),
            "power_kw": pa.array([1.5, None, math.nan]),
            "count": pa.array([1, 2, 3], pa.int32()),
            "mode": pa.array(["run", "idle", None]),
            "ok": pa.array([True, False, None]),
        }
    )
    pq.write_table(table, tmp_path / "m1.parquet")
    rows, rejected = read(tmp_path / "m1.parquet")
    assert sorted(rows) == sorted(
        [
            (f"{M}/power_kw", T0, 1.5, None, 0),
            (f"{M}/count", T0, 1.0, None, 0),
            (f"{M}/count", T0 + 1000, 2.0, None, 0),
            (f"{M}/count", T0 + 2000, 3.0, None, 0),
            (f"{M}/mode", T0, None, "run", 0),
            (f"{M}/mode", T0 + 1000, None, "idle", 0),
            (f"{M}/ok", T0, 1.0, None, 0),
            (f"{M}/ok", T0 + 1000, 0.0, None, 0),
        ]
    )
    [nan] = rejected
    assert nan.reason.startswith("m1.parquet line 4 column 'power_kw':")
    assert "not a finite number" in nan.reason


def test_parquet_timestamp_column_and_long(tmp_path):
    stamps = [datetime(2023, 11, 14, 22, 13, 20) + timedelta(seconds=i) for i in range(3)]
    table = pa.table({"t": pa.array(stamps, pa.timestamp("ms", tz="UTC")), "v": [1.0, 2.0, 3.0]})
    pq.write_table(table, tmp_path / "w.pq")
    rows, rejected = read(tmp_path / "w.pq")
    assert rejected == []
    assert [r[1] for r in rows] == [T0, T0 + 1000, T0 + 2000]
    long = pa.table(
        {
            "tag": ["s1/a/l/m/x", "s1/a/l/m/y", "bad"],
            "ts": pa.array([T0, T0, T0], pa.int64()),
            "value": pa.array([1.0, 2.0, 3.0]),
        }
    )
    pq.write_table(long, tmp_path / "long.parquet")
    rows, rejected = read(tmp_path / "long.parquet", spec(long=True))
    assert rows == [("s1/a/l/m/x", T0, 1.0, None, 0), ("s1/a/l/m/y", T0, 2.0, None, 0)]
    assert reasons(rejected)[0].startswith("long.parquet line 4: column 'tag'")


def test_parquet_with_no_rows(tmp_path):
    pq.write_table(
        pa.table({"time": pa.array([], pa.int64()), "v": pa.array([], pa.float64())}),
        tmp_path / "empty.parquet",
    )
    assert read(tmp_path / "empty.parquet") == ([], [])


def test_chunks_split_the_file_without_losing_rows(tmp_path):
    lines = ["time,a,b"] + [f"{T0 + i * 1000},{i},{'x' if i % 7 == 0 else i}" for i in range(1000)]
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    chunks = list(read_table(path, spec(chunk_rows=150)))
    assert len(chunks) > 5
    assert all(len(c.batch) <= 151 for c in chunks)  # a chunk ends after the row that fills it
    assert sum(len(c.batch) for c in chunks) == 2000
    whole, _ = read(path)
    assert [r for c in chunks for r in c.batch.table.to_pylist()] == [
        dict(zip(("tag", "ts", "value", "text", "quality"), r, strict=True)) for r in whole
    ]


# ---------------------------------------------------------------------------- bad rows
def test_wrong_field_count(tmp_path):
    text = f"time,a,b\n{T0},1,2\n{T0 + 1000},3\n{T0 + 2000},4,5,6\n{T0 + 3000},7,8\n"
    rows, rejected = read(write(tmp_path / "f.csv", text))
    assert [r[2] for r in rows] == [1.0, 2.0, 7.0, 8.0]
    assert reasons(rejected) == [
        "f.csv line 3: has 2 fields, the header has 3",
        "f.csv line 4: has 4 fields, the header has 3",
    ]
    assert rejected[1].payload == f"{T0 + 2000},4,5,6"


def test_unclosed_quote_on_the_last_line(tmp_path):
    text = f'time,a,b\n{T0},1,2\n{T0 + 1000},"3,4\n'
    rows, rejected = read(write(tmp_path / "q.csv", text))
    assert [r[2] for r in rows] == [1.0, 2.0]
    [letter] = rejected
    assert letter.reason.startswith("q.csv line 3: broken CSV")


def test_unclosed_quote_in_the_middle_names_the_lines_it_swallows(tmp_path):
    text = f'time,a,b\n{T0},1,2\n{T0 + 1000},"3,4\n{T0 + 2000},5,6\n{T0 + 3000},7,8\n'
    rows, rejected = read(write(tmp_path / "q.csv", text))
    assert [r[2] for r in rows] == [1.0, 2.0]
    [letter] = rejected
    assert letter.reason.startswith("q.csv line 3: broken CSV")
    assert "lines 3-5 were not imported" in letter.reason  # nothing vanishes without a word


def test_text_after_closing_quote(tmp_path):
    text = f'time,a,b\n{T0},1,2\n{T0 + 1000},"3"x,4\n{T0 + 2000},5,6\n'
    rows, rejected = read(write(tmp_path / "q.csv", text))
    assert [r[2] for r in rows] == [1.0, 2.0, 5.0, 6.0]
    assert reasons(rejected)[0].startswith("q.csv line 3: broken CSV")


def test_quoted_newline_keeps_line_numbers_right(tmp_path):
    text = f'time,a,b\n{T0},"multi\nline",2\n\n\n{T0 + 1000},nan,3\n'
    rows, rejected = read(write(tmp_path / "n.csv", text))
    assert [r[2] for r in rows] == [2.0, 3.0]
    assert [d.ref for d in rejected] == ["n.csv line 2 column 'a'", "n.csv line 6 column 'a'"]
    assert "control characters" in rejected[0].reason


def test_invalid_utf8_row(tmp_path):
    data = (
        f"time,a,b\n{T0},1,2\n{T0 + 1000},caf".encode()
        + b"\xe9"
        + f",3\n{T0 + 2000},4,5\n".encode()
    )
    rows, rejected = read(write(tmp_path / "u.csv", data))
    assert [r[2] for r in rows] == [1.0, 2.0, 4.0, 5.0]
    [letter] = rejected
    assert letter.reason == "u.csv line 3: is not valid UTF-8"
    assert letter.payload == f"{T0 + 1000},caf\ufffd,3"  # readable, storable text
    letter.payload.encode("utf-8")


def test_huge_cell_is_rejected_and_the_rest_imports(tmp_path):
    big = "9" * (MAX_FIELD + 10)
    text = f"time,a,b\n{T0},1,2\n{T0 + 1000},{big},3\n{T0 + 2000},4,5\n"
    rows, rejected = read(write(tmp_path / "h.csv", text))
    assert [r[2] for r in rows] == [1.0, 2.0, 4.0, 5.0]
    [letter] = rejected
    assert letter.reason.startswith("h.csv line 3: broken CSV")
    assert "field larger than field limit" in letter.reason
    assert len(letter.payload) < 10_000


def test_nan_inf_and_overflow_cells(tmp_path):
    text = (
        f"time,a,b\n{T0},NaN,1\n{T0 + 1000},-inf,2\n{T0 + 2000},1e999,3\n"
        f"{T0 + 3000},4,{'1' * 400}\n"
    )
    rows, rejected = read(write(tmp_path / "n.csv", text))
    assert [r[2] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert [d.ref for d in rejected] == [
        "n.csv line 2 column 'a'",
        "n.csv line 3 column 'a'",
        "n.csv line 4 column 'a'",
        "n.csv line 5 column 'b'",
    ]
    assert [d.payload for d in rejected[:3]] == ["NaN", "-inf", "1e999"]


def test_bad_times_name_the_time_column(tmp_path):
    text = (
        f"stamp,a\n{T0},1\n05/03/2024 08:00,2\n,3\n{T0 // 1000},4\n1960-01-01T00:00:00Z,5\n"
        f"2999-01-01T00:00:00Z,6\n"
    )
    rows, rejected = read(write(tmp_path / "t.csv", text))
    assert [r[2] for r in rows] == [1.0]
    assert [d.ref for d in rejected] == [f"t.csv line {n}" for n in range(3, 8)]
    words = ["unknown format", "empty", "epoch seconds", "before 1970", "future"]
    for letter, w in zip(rejected, words, strict=True):
        assert letter.reason.startswith(letter.ref + ": column 'stamp': ")
        assert w in letter.reason


def test_time_format_that_does_not_match(tmp_path):
    text = f"time,a\n2024-03-05 08:00,1\n{T0},2\n"
    times = TimeParser(now_ms=NOW, fmt="%d/%m/%Y %H:%M")
    rows, rejected = read(write(tmp_path / "t.csv", text), spec(times=times))
    assert rows == []
    assert all("does not match the time format" in r for r in reasons(rejected))
    assert len(rejected) == 2


def test_blank_lines_are_skipped(tmp_path):
    text = f"time,a\n\n{T0},1\n   \n\n{T0 + 1000},2\n,\n"
    rows, rejected = read(write(tmp_path / "b.csv", text))
    assert [r[2] for r in rows] == [1.0, 2.0]
    assert rejected == []


def test_strings_in_a_numeric_column_are_rejected_by_the_historian(tmp_path, historian):
    text = (
        f"time,power_kw,mode\n{T0},1.5,run\n{T0 + 1000},n/a,idle\n{T0 + 2000},2.5,5\n"
        f"{T0 + 3000},true,stop\n"
    )
    path = write(tmp_path / "mix.csv", text)
    [chunk] = list(read_table(path, spec()))
    assert chunk.rejected == []  # at parse stage every cell is a value of some type
    result = historian.write(chunk.batch, source="import:mix.csv")
    assert result.stored == 6  # 1.5, 2.5, true as 1 / run, idle, stop
    got = sorted(reasons(result.rejected))
    assert got[0] == (
        f"mix.csv line 3 column 'power_kw': tag {M}/power_kw holds number values, got 'n/a'"
    )
    assert got[1].startswith(f"mix.csv line 4 column 'mode': tag {M}/mode holds string values")
    assert "5.0" in got[1]
    assert historian.series(E, f"{M}/power_kw", T0, T0 + 10_000).column("value").to_pylist() == [
        1.5,
        2.5,
        1.0,
    ]
    assert historian.series(E, f"{M}/mode", T0, T0 + 10_000).column("text").to_pylist() == [
        "run",
        "idle",
        "stop",
    ]
    # the stored type holds for later files too, even when their first value is text
    later = write(tmp_path / "later.csv", f"time,power_kw\n{T0 + 5000},broken\n{T0 + 6000},3\n")
    [chunk] = list(read_table(later, spec()))
    result = historian.write(chunk.batch, source="import:later.csv")
    assert result.stored == 1
    assert reasons(result.rejected) == [
        f"later.csv line 2 column 'power_kw': tag {M}/power_kw holds number values, got 'broken'"
    ]
    letters = historian.dead_letters(E, limit=10)
    assert {d["reason"] for d in letters} >= set(reasons(result.rejected))


def test_type_conflict_reason_shows_the_number_plainly(tmp_path, historian):
    path = write(tmp_path / "mix.csv", f"time,mode\n{T0},run\n{T0 + 1000},5\n")
    [chunk] = list(read_table(path, spec()))
    result = historian.write(chunk.batch)
    assert reasons(result.rejected) == [
        f"mix.csv line 3 column 'mode': tag {M}/mode holds string values, got 5.0"
    ]


# ---------------------------------------------------------------------------- unusable files
@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.csv", b"", "file is empty"),
        ("bom.csv", b"\xef\xbb\xbf", "file is empty"),
        ("empty.csv.gz", gzip.compress(b""), "file is empty"),
        ("dup.csv", b"time,a,b,a\n1700000000000,1,2,3\n", "column 'a' appears twice"),
        ("dup2.csv", b"time, a,a \n", "column 'a' appears twice"),
        ("badtag.csv", b"time,temp#1\n", "column 'temp#1' cannot be a tag name"),
        ("blankcol.csv", b"time,a,\n", "column '' cannot be a tag name"),
        ("onlytime.csv", b"time\n1700000000000\n", "no tag columns"),
        ("badhead.csv", b"time,caf\xe9\n", "header line is not valid UTF-8"),
        ("notgzip.csv.gz", b"time,a\n1,2\n", "not a valid gzip file"),
        ("short.csv.gz", b"\x1f\x8b", "not a valid gzip file"),
        ("garbage.parquet", b"this is not parquet at all", "not a readable Parquet file"),
        ("empty.parquet", b"", "not a readable Parquet file"),
    ],
)
def test_unusable_files(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(words)) as info:
        read(path)
    assert name in str(info.value)


def test_header_only(tmp_path):
    assert read(write(tmp_path / "h.csv", "time,a,b\n")) == ([], [])
    assert read(write(tmp_path / "h2.csv", "time,a,b")) == ([], [])


def test_missing_time_column(tmp_path):
    path = write(tmp_path / "m.csv", WIDE)
    words = "m.csv: no column 'timestamp'; columns are time, power_kw"
    with pytest.raises(DataError, match=re.escape(words)):
        read(path, spec(time_column="timestamp"))


def test_long_table_without_value_column(tmp_path):
    path = write(tmp_path / "l.csv", f"tag,ts,val\ns1/a/l/m/x,{T0},1\n")
    with pytest.raises(DataError, match="no column 'value'"):
        read(path, spec(long=True))


def test_wide_table_needs_a_machine(tmp_path):
    path = write(tmp_path / "w.csv", WIDE)
    with pytest.raises(DataError, match="--machine"):
        read(path, TableSpec(enterprise=E, times=TIMES))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read(tmp_path)


def test_parquet_file_named_csv(tmp_path):
    pq.write_table(pa.table({"time": [T0], "a": [1.0]}), tmp_path / "real.parquet")
    disguised = tmp_path / "disguised.csv"
    disguised.write_bytes((tmp_path / "real.parquet").read_bytes())
    words = "disguised.csv: this is a Parquet file; name it .parquet"
    with pytest.raises(DataError, match=re.escape(words)):
        read(disguised)


def test_truncated_gzip_keeps_what_came_before(tmp_path):
    lines = ["time,a"] + [f"{T0 + i * 1000},{i}" for i in range(50_000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    rows, rejected = read(path)
    assert 0 < len(rows) < 50_000
    values = [r[2] for r in rows]
    assert values == [float(i) for i in range(len(rows))]  # a clean prefix, in order
    [letter] = rejected
    assert letter.reason.startswith(f"cut.csv.gz line {len(rows) + 2}: file ends in the middle")


def test_small_truncated_gzip(tmp_path):
    data = gzip.compress(f"time,a\n{T0},1\n{T0 + 1000},2\n".encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[:-6])  # the data is there, the gzip trailer is not
    rows, rejected = read(path)
    assert len(rows) <= 2
    assert [letter.reason.split(":")[0] for letter in rejected] == ["cut.csv.gz line 4"]
    assert "file ends in the middle" in rejected[0].reason


# ---------------------------------------------------------------------------- real data
# a copy of ../shared/datasets/steel_industry (CC BY 4.0, see its SOURCE.md) kept in the repo
STEEL = DATASETS / "steel_industry" / "Steel_industry_data.csv.gz"
STEEL_MACHINE = "gwangyang/plant/main/meter"
STEEL_TEXT = ("WeekStatus", "Day_of_week", "Load_Type")


def _need_steel() -> None:
    """Fail under CI, skip locally, when the real data set is not there."""
    if not STEEL.is_file():
        message = f"real data set {STEEL} is missing"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def steel() -> dict:
    """Expected per-column sums, counts and times, computed with the csv module only."""
    _need_steel()
    with gzip.open(STEEL, "rt", encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        records = list(reader)
        columns = [c for c in reader.fieldnames if c != "date"]
    kst = ZoneInfo("Asia/Seoul")
    times = []
    for r in records:
        local = datetime.strptime(r["date"], "%d/%m/%Y %H:%M")
        if local.hour == 0 and local.minute == 0:  # interval end: 00:00 is 24:00 of that date
            local += timedelta(days=1)
        times.append(int(local.replace(tzinfo=kst).timestamp()) * 1000)
    numeric = [c for c in columns if c not in STEEL_TEXT]
    return {
        "times": times,
        "numeric": numeric,
        "sums": {c: math.fsum(float(r[c]) for r in records) for c in numeric},
        "text": {c: [r[c] for r in records] for c in STEEL_TEXT},
    }


@pytest.fixture(scope="module")
def steel_chunks(steel) -> list[Chunk]:
    """The steel file read by the importer once (the slow part), shared by both backends."""
    times = TimeParser(
        now_ms=NOW, fmt="%d/%m/%Y %H:%M", tz=ZoneInfo("Asia/Seoul"), midnight_ends_day=True
    )
    s = TableSpec(enterprise=E, times=times, machine=MachinePath.parse(STEEL_MACHINE))
    return list(read_table(STEEL, s))


def _import_steel(historian, chunks: list[Chunk]) -> tuple[int, list[DeadLetter]]:
    stored = 0
    rejected: list[DeadLetter] = []
    for chunk in chunks:
        result = historian.write(chunk.batch, source="import:steel")
        stored += result.stored
        rejected += chunk.rejected + result.rejected
    return stored, rejected


def _historian_sums(historian, numeric, start, end) -> dict:
    sums = {}
    for c in numeric:
        tag = f"{STEEL_MACHINE}/{c}"
        [bucket] = historian.buckets(E, tag, start, end, 1).to_pylist()
        assert bucket["count"] == 35_040, c
        sums[c] = bucket["avg"] * bucket["count"]
    return sums


def test_steel_industry_real_data(historian, steel, steel_chunks):
    assert len(steel["times"]) == 35_040
    assert len(steel["numeric"]) == 7
    stored, rejected = _import_steel(historian, steel_chunks)
    assert rejected == []
    assert stored == 35_040 * 10
    start, end = steel["times"][0], steel["times"][-1] + 1
    # 2018-01-01 00:15 KST is the first interval end, 2019-01-01 00:00 KST the last
    assert start == 1_514_733_300_000 and end - 1 == 1_546_268_400_000
    for c in steel["numeric"]:
        tag = f"{STEEL_MACHINE}/{c}"
        got = historian.series(E, tag, start, end)
        ts = got.column("ts").to_pylist()
        assert ts == steel["times"], c
        assert all(b - a == 900_000 for a, b in itertools.pairwise(ts))
        assert math.fsum(got.column("value").to_pylist()) == steel["sums"][c], c
    for c in STEEL_TEXT:
        got = historian.series(E, f"{STEEL_MACHINE}/{c}", start, end)
        assert got.column("text").to_pylist() == steel["text"][c]
    sums = _historian_sums(historian, steel["numeric"], start, end)
    for c in steel["numeric"]:
        assert sums[c] == pytest.approx(steel["sums"][c], rel=1e-9, abs=1e-6), c
    # importing the same file again changes nothing
    stored_again, rejected_again = _import_steel(historian, steel_chunks)
    assert rejected_again == [] and stored_again == stored
    again = _historian_sums(historian, steel["numeric"], start, end)
    for c in steel["numeric"]:  # avg is summed in parallel: equal up to rounding
        assert again[c] == pytest.approx(sums[c], rel=1e-12), c
        values = historian.series(E, f"{STEEL_MACHINE}/{c}", start, end).column("value")
        assert math.fsum(values.to_pylist()) == steel["sums"][c], c  # exactly, not doubled
    assert historian.count(E) == 35_040 * 10
    tags = {t.path: t.data_type for t in historian.tags(E, STEEL_MACHINE)}
    assert tags[f"{STEEL_MACHINE}/Usage_kWh"] == DataType.NUMBER
    assert tags[f"{STEEL_MACHINE}/Load_Type"] == DataType.STRING
    assert f"{STEEL_MACHINE}/CO2(tCO2)" in tags
    assert f"{STEEL_MACHINE}/Lagging_Current_Reactive.Power_kVarh" in tags


def test_steel_file_has_one_record_per_line():
    """Guard the independent expectation: the gzip holds 35,040 plain data lines."""
    _need_steel()
    with gzip.open(STEEL, "rb") as f:
        lines = f.read().splitlines()
    assert lines[0].startswith(b"\xef\xbb\xbfdate,Usage_kWh")
    assert len(lines) - 1 == 35_040
