"""BatchBuilder: points collected column by column into an Arrow point batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.ingest.batch import BatchBuilder, ChunkTags
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


def test_extend_numbers_matches_add_point_by_point():
    one, many = BatchBuilder("acme"), BatchBuilder("acme")
    tags, values = [A, "s1/press/l1/m1/temp"], [3.5, 41.0]
    for tag, value in zip(tags, values, strict=True):
        one.add(tag, 1000, Value(value, None, NUM), "msg 1")
    many.extend_numbers(tags, 1000, values, "msg 1")
    one.add(A, 2000, Value(4.0, None, NUM), "msg 2")
    many.extend_numbers([A], [2000], [4.0], "msg 2")  # a time per point
    a, b = one.take(), many.take()
    assert a.table.equals(b.table)
    assert a.types == b.types and a.refs == b.refs == ["msg 1", "msg 1", "msg 2"]


def test_text_and_quality_columns_appear_mid_batch_without_shifting_rows():
    b = BatchBuilder("acme")
    b.extend_numbers([A, A], [1000, 2000], [1.0, 2.0], "m1")
    b.add(B, 3000, Value(None, "running", DataType.STRING), "m2")
    b.extend_numbers([A], 4000, [5.0], "m3")
    b.add(A, 5000, Value(6.0, None, NUM), "m4", Quality.BAD)
    b.extend_numbers([A], 6000, [7.0], "m5")
    rows = b.take().table.to_pylist()
    assert [(r["ts"], r["value"], r["text"], r["quality"]) for r in rows] == [
        (1000, 1.0, None, 0),
        (2000, 2.0, None, 0),
        (3000, None, "running", 0),
        (4000, 5.0, None, 0),
        (5000, 6.0, None, 2),
        (6000, 7.0, None, 0),
    ]


def test_extend_numbers_keeps_the_first_type_seen():
    b = BatchBuilder("acme")
    b.add(A, 1000, Value(1.0, None, DataType.BOOLEAN), "m1")
    b.extend_numbers([A, B], 2000, [3.0, 4.0], "m2")
    b.extend_numbers([], 3000, [], "m3")  # nothing: no rows, no types
    batch = b.take()
    assert batch.types == {A: DataType.BOOLEAN, B: NUM}
    assert len(batch) == 3


def test_add_number_matches_add():
    one, other = BatchBuilder("acme"), BatchBuilder("acme")
    one.add(A, 1000, Value(2.5, None, NUM), "m1")
    other.add_number(A, 1000, 2.5, "m1")
    one.add(B, 2000, Value(None, "on", DataType.STRING), "m2")
    other.add(B, 2000, Value(None, "on", DataType.STRING), "m2")
    one.add(A, 3000, Value(3.5, None, NUM), "m3")
    other.add_number(A, 3000, 3.5, "m3")
    a, b = one.take(), other.take()
    assert a.table.equals(b.table) and a.types == b.types and a.refs == b.refs


C = "s1/press/l1/m1/temp"


def _ops(builder, ops, tags):
    """Apply ("chunk" | "numbers" | "text" | "bad", ts, values) to a builder; chunks via ``tags``
    (a `ChunkTags`), the rest through the list methods."""
    for kind, ts, values in ops:
        ref = f"m{ts}"
        if kind == "chunk":
            builder.extend_chunk(tags, ts, np.array(values, np.float64), ref)
        elif kind == "numbers":
            builder.extend_numbers(tags.tags, ts, values, ref)
        elif kind == "text":
            builder.add(B, ts, Value(None, "running", DataType.STRING), ref)
        else:
            builder.add(A, ts, Value(values[0], None, NUM), ref, Quality.BAD)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["chunk", "chunk", "numbers", "text", "bad"]),
            st.integers(0, 5),
            st.lists(st.floats(allow_nan=False), min_size=3, max_size=3),
        ),
        max_size=12,
    ),
    rounds=st.integers(1, 2),
)
def test_chunks_give_what_extend_numbers_gives_in_the_order_added(ops, rounds):
    chunky, plain = BatchBuilder("acme"), BatchBuilder("acme")
    tags = ChunkTags([A, C, A])  # a tag twice in one run: two rows, one number
    for _ in range(rounds):  # the second round: the tags' numbers of the last batch are stale
        _ops(chunky, ops, tags)
        _ops(plain, [("numbers" if k == "chunk" else k, ts, v) for k, ts, v in ops], tags)
        assert len(chunky) == len(plain)
        a, b = chunky.take(), plain.take()
        assert a.table.equals(b.table)
        assert a.types == b.types and a.refs == b.refs
        if a.tag_index is not None:
            idx, paths = a.tag_index
            assert len(set(paths)) == len(paths)
            assert [paths[i] for i in idx] == a.table.column("tag").to_pylist()
        assert len(chunky) == 0


def test_a_chunk_of_the_wrong_length_is_refused():
    b = BatchBuilder("acme")
    with pytest.raises(ValueError, match="1 values for 2 tags"):
        b.extend_chunk(ChunkTags([A, C]), 1000, np.array([1.0]), "m1")
    assert len(b) == 0
