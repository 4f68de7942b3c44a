"""BatchBuilder: points collected column by column into an Arrow point batch."""

from __future__ import annotations

from indunet.ingest.batch import BatchBuilder
from indunet.ingest.values import Value
from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality

NUM = DataType.NUMBER
A = "s1/press/l1/m1/power_kw"
B = "s1/press/l1/m1/mode"


def test_empty_builder_gives_empty_batch_with_the_schema():
    batch = BatchBuilder("acme").take()
    assert isinstance(batch, PointBatch)
    assert len(batch) == 0
    assert batch.table.schema == POINT_SCHEMA
    assert batch.types == {}
    assert batch.refs == []


def test_columns_types_and_refs():
    b = BatchBuilder("acme")
    b.add(A, 1000, Value(3.5, None, NUM), "line 2")
    b.add(B, 1000, Value(None, "running", DataType.STRING), "line 2", Quality.UNCERTAIN)
    b.add(A, 2000, Value(4.0, None, NUM), "line 3", Quality.BAD)
    assert len(b) == 3
    batch = b.take()
    assert batch.enterprise == "acme"
    assert batch.table.schema == POINT_SCHEMA
    assert batch.table.to_pylist() == [
        {"tag": A, "ts": 1000, "value": 3.5, "text": None, "quality": 0},
        {"tag": B, "ts": 1000, "value": None, "text": "running", "quality": 1},
        {"tag": A, "ts": 2000, "value": 4.0, "text": None, "quality": 2},
    ]
    assert batch.types == {A: NUM, B: DataType.STRING}
    assert batch.refs == ["line 2", "line 2", "line 3"]


def test_first_value_sets_the_type_within_a_batch():
    b = BatchBuilder("acme")
    b.add(A, 1000, Value(1.0, None, DataType.BOOLEAN), "r0")
    b.add(A, 2000, Value(None, "x", DataType.STRING), "r1")
    b.add(A, 3000, Value(5.0, None, NUM), "r2")
    batch = b.take()
    assert batch.types == {A: DataType.BOOLEAN}
    assert len(batch) == 3  # the builder keeps everything; the historian checks types


def test_duplicates_are_kept_for_the_historian_to_resolve():
    b = BatchBuilder("acme")
    for v in (1.0, 2.0, 3.0):
        b.add(A, 1000, Value(v, None, NUM), f"v{v}")
    batch = b.take()
    assert batch.table.column("value").to_pylist() == [1.0, 2.0, 3.0]
    assert batch.table.column("ts").to_pylist() == [1000] * 3


def test_take_starts_afresh():
    b = BatchBuilder("acme")
    b.add(A, 1000, Value(1.0, None, NUM), "r0")
    first = b.take()
    assert len(b) == 0
    b.add(B, 2000, Value(None, "idle", DataType.STRING), "r1")
    second = b.take()
    assert len(first) == 1 and len(second) == 1
    assert first.types == {A: NUM}
    assert second.types == {B: DataType.STRING}
    assert first.refs == ["r0"] and second.refs == ["r1"]
    assert first.table.column("tag").to_pylist() == [A]  # not changed by later adds


def test_large_timestamps_stay_exact():
    b = BatchBuilder("acme")
    ts = 4_102_444_800_123  # 2100-01-01T00:00:00.123Z: the int64 column keeps every ms
    b.add(A, ts, Value(1.0, None, NUM), "r0")
    assert b.take().table.column("ts").to_pylist() == [ts]
