"""The historian contract, run against a real DuckDB file and the real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.config import RetentionRule
from indunet.errors import DataError
from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.store import TagSpec
from indunet.store.base import DAY_MS, HOUR_MS, _unique_order, build_tree

T0 = 1_700_000_000_000
E = "acme"


def batch(rows: list[tuple], enterprise: str = E, types: dict | None = None) -> PointBatch:
    """Build a batch from (tag, ts, value) or (tag, ts, value, quality) tuples."""
    tags, ts, values, texts, quality = [], [], [], [], []
    inferred: dict[str, DataType] = {}
    for row in rows:
        tag, t, v = row[:3]
        tags.append(tag)
        ts.append(t)
        if isinstance(v, str):
            values.append(None)
            texts.append(v)
            inferred.setdefault(tag, DataType.STRING)
        else:
            values.append(float(v))
            texts.append(None)
            inferred.setdefault(tag, DataType.BOOLEAN if isinstance(v, bool) else DataType.NUMBER)
        quality.append(row[3] if len(row) > 3 else 0)
    table = pa.table(
        {
            "tag": tags,
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "text": pa.array(texts, pa.string()),
            "quality": pa.array(quality, pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    return PointBatch(enterprise, table, types or inferred)


POWER = "s1/press/l1/m1/power_kw"
MODE = "s1/press/l1/m1/mode"


def test_write_and_read_raw_range(historian):
    result = historian.write(batch([(POWER, T0 + i * 1000, i * 0.5) for i in range(100)]))
    assert result.stored == 100 and result.rejected == []
    got = historian.series(E, POWER, T0 + 10_000, T0 + 20_000)
    assert got.column("ts").to_pylist() == [T0 + i * 1000 for i in range(10, 20)]
    assert got.column("value").to_pylist() == [i * 0.5 for i in range(10, 20)]


def test_series_many_equals_series_per_tag(historian):
    other = "s1/press/l1/m2/power_kw"
    rows = [(POWER, T0 + i * 1000, i * 0.5) for i in range(50)]
    rows += [(other, T0 + i * 700, -i) for i in range(80)] + [(MODE, T0 + 5, "auto")]
    historian.write(batch(rows))
    historian.write(batch([(POWER, T0, 1.0)], enterprise="rival"))  # another tenant's same tag
    tags = [POWER, other, MODE, "s9/x/y/z/never_written"]
    got = historian.series_many(E, tags, T0 + 10_000, T0 + 40_000)
    assert set(got) == {POWER, other, MODE}  # a tag that does not exist is left out
    for tag in (POWER, other, MODE):
        assert got[tag].equals(historian.series(E, tag, T0 + 10_000, T0 + 40_000)), tag
    assert got[MODE].num_rows == 0 and got[other].num_rows > 0
    assert historian.series_many(E, [], T0, T0 + 1) == {}
    assert set(historian.series_many("rival", [POWER, other], T0, T0 + 1)) == {POWER}
    with pytest.raises(DataError):
        historian.series_many(E, [POWER], T0 + 5, T0)


def test_duplicate_overwrites_and_never_doubles_sum(historian):
    rows = [(POWER, T0 + i * 1000, 1.0) for i in range(10)]
    historian.write(batch(rows))
    historian.write(batch(rows))
    historian.write(batch([(POWER, T0 + 5000, 7.0)]))  # a correction
    agg = historian.buckets(E, POWER, T0, T0 + 10_000, 1).to_pylist()[0]
    assert agg["count"] == 10
    assert agg["avg"] * agg["count"] == pytest.approx(9 * 1.0 + 7.0)
    assert historian.count(E) == 10


def test_duplicates_inside_one_batch_keep_the_last(historian):
    historian.write(batch([(POWER, T0, 1.0), (POWER, T0, 2.0), (POWER, T0, 3.0)]))
    assert historian.series(E, POWER, T0, T0 + 1).column("value").to_pylist() == [3.0]


def test_out_of_order_writes_are_read_in_time_order(historian):
    order = np.random.default_rng(1).permutation(200)
    historian.write(batch([(POWER, T0 + int(i) * 1000, float(i)) for i in order[:100]]))
    historian.write(batch([(POWER, T0 + int(i) * 1000, float(i)) for i in order[100:]]))
    got = historian.series(E, POWER, T0, T0 + 200_000)
    assert got.column("value").to_pylist() == [float(i) for i in range(200)]


def test_booleans_strings_and_quality(historian):
    historian.write(
        batch([(MODE, T0, "setup"), (MODE, T0 + 1000, ""), ("s1/press/l1/m1/run", T0, True, 2)])
    )
    got = historian.series(E, MODE, T0, T0 + 2000)
    assert got.column("text").to_pylist() == ["setup", ""]
    assert got.column("value").to_pylist() == [None, None]
    run = historian.series(E, "s1/press/l1/m1/run", T0, T0 + 1).to_pylist()[0]
    assert (run["value"], run["quality"]) == (1.0, 2)
    assert historian.tag(E, MODE).data_type == DataType.STRING


def test_wrong_type_rows_are_dead_lettered_not_dropped(historian):
    historian.write(batch([(POWER, T0, 1.0)]))
    result = historian.write(batch([(POWER, T0 + 1000, "broken"), (POWER, T0 + 2000, 2.0)]))
    assert result.stored == 1
    assert len(result.rejected) == 1
    assert "holds number values" in result.rejected[0].reason
    letters = historian.dead_letters(E)
    assert any("broken" in (d["payload"] or "") for d in letters)


def test_boolean_tag_rejects_numbers_other_than_0_1(historian):
    historian.write(batch([("s1/a/l/m/on", T0, True)]))
    result = historian.write(batch([("s1/a/l/m/on", T0 + 1, 5.0), ("s1/a/l/m/on", T0 + 2, 0.0)]))
    assert result.stored == 1 and len(result.rejected) == 1


def test_buckets_match_numpy(historian):
    rng = np.random.default_rng(3)
    values = rng.normal(10, 3, 3600)
    historian.write(batch([(POWER, T0 + i * 1000, float(v)) for i, v in enumerate(values)]))
    got = historian.buckets(E, POWER, T0, T0 + 3_600_000, 7).to_pylist()
    width = -(-3_600_000 // 7)
    assert len(got) == 7
    for k, row in enumerate(got):
        lo, hi = k * width // 1000, min((k + 1) * width, 3_600_000) // 1000
        lo = -(-(k * width) // 1000)
        hi = -(-min((k + 1) * width, 3_600_000) // 1000)
        part = values[lo:hi]
        assert row["start_ms"] == T0 + k * width
        assert row["count"] == len(part)
        assert row["min"] == pytest.approx(part.min())
        assert row["max"] == pytest.approx(part.max())
        assert row["avg"] == pytest.approx(part.mean())
        assert row["first"] == pytest.approx(part[0])
        assert row["last"] == pytest.approx(part[-1])


def test_buckets_refuse_text_tags_and_bad_ranges(historian):
    historian.write(batch([(MODE, T0, "x")]))
    with pytest.raises(DataError, match="text"):
        historian.buckets(E, MODE, T0, T0 + 1000, 10)
    with pytest.raises(DataError, match="after start"):
        historian.series(E, MODE, T0, T0)
    with pytest.raises(DataError, match="does not exist"):
        historian.series(E, "s1/press/l1/m1/nope", T0, T0 + 1)
    with pytest.raises(DataError, match="buckets"):
        historian.buckets(E, MODE, T0, T0 + 1000, 0)


def test_downsample_keeps_extremes(historian):
    values = np.sin(np.arange(5000) / 50.0)
    values[1234] = 9.0  # a spike a chart must show
    historian.write(batch([(POWER, T0 + i * 1000, float(v)) for i, v in enumerate(values)]))
    for method in ("m4", "lttb"):
        got = historian.downsample(E, POWER, T0, T0 + 5_000_000, 200, method=method)
        assert 3 <= got.num_rows <= 200
        assert 9.0 in got.column("value").to_pylist()
        ts = got.column("ts").to_pylist()
        assert ts == sorted(ts) and ts[0] == T0 and ts[-1] == T0 + 4_999_000


def test_latest_per_prefix_ignores_older_late_data(historian):
    historian.write(batch([(POWER, T0 + 5000, 5.0), (MODE, T0, "a"), ("s2/x/y/z/t", T0, 1.0)]))
    historian.write(batch([(POWER, T0 + 1000, 1.0)]))  # late, older point
    rows = {r["tag"]: r for r in historian.latest(E, "s1").to_pylist()}
    assert set(rows) == {POWER, MODE}
    assert rows[POWER]["value"] == 5.0 and rows[POWER]["ts"] == T0 + 5000
    assert len(historian.latest(E, "").to_pylist()) == 3
    assert historian.latest(E, "s1/pre").num_rows == 0  # whole segments only


def test_tenants_do_not_see_each_other(historian):
    historian.write(batch([(POWER, T0, 1.0)], enterprise="a"))
    historian.write(batch([(POWER, T0, 2.0)], enterprise="b"))
    assert historian.series("a", POWER, T0, T0 + 1).column("value").to_pylist() == [1.0]
    assert historian.series("b", POWER, T0, T0 + 1).column("value").to_pylist() == [2.0]
    assert [r["value"] for r in historian.latest("a").to_pylist()] == [1.0]
    with pytest.raises(DataError):
        historian.series("c", POWER, T0, T0 + 1)


def test_namespace_tags_search_tree_and_declare(historian):
    historian.declare_tags(
        E, [TagSpec("s1/press/l1/m1/temp_c", DataType.NUMBER, "°C", "die temp", 1000, "opcua")]
    )
    historian.write(batch([(POWER, T0, 1.0), ("s1/weld/l2/r1/current_a", T0, 3.0)]))
    paths = [t.path for t in historian.tags(E, "s1/press")]
    assert paths == ["s1/press/l1/m1/power_kw", "s1/press/l1/m1/temp_c"]
    assert [t.path for t in historian.tags(E, search="CURRENT")] == ["s1/weld/l2/r1/current_a"]
    temp = historian.tag(E, "s1/press/l1/m1/temp_c")
    assert (temp.unit, temp.expected_interval_ms, temp.source) == ("°C", 1000, "opcua")
    assert historian.tag(E, POWER).source == "auto"
    assert historian.tree(E) == {
        "s1": {
            "press": {"l1": {"m1": ["power_kw", "temp_c"]}},
            "weld": {"l2": {"r1": ["current_a"]}},
        }
    }
    with pytest.raises(DataError, match="cannot become"):
        historian.declare_tags(E, [TagSpec(POWER, DataType.STRING)])
    # metadata update keeps the tag
    historian.declare_tags(E, [TagSpec(POWER, DataType.NUMBER, unit="kW")])
    assert historian.tag(E, POWER).unit == "kW"


def test_retention_rolls_up_then_deletes(historian):
    now = T0 + 10 * DAY_MS
    old = [(POWER, T0 + i * 60_000, float(i % 7)) for i in range(180)]  # 3 h, 10 days ago
    keep = [("s2/a/l/m/t", T0 + i * 60_000, 1.0) for i in range(10)]
    fresh = [(POWER, now - 1000, 99.0)]
    historian.write(batch(old + keep + fresh))
    result = historian.apply_retention(
        [RetentionRule(prefix="s1", raw_days=2, rollup_days=30)], now
    )
    assert result["deleted_points"] == 180
    assert historian.count(E) == 11
    rolled = historian.rollups(E, POWER, T0 - HOUR_MS, now).to_pylist()
    assert sum(r["count"] for r in rolled) == 180
    assert sum(r["sum"] for r in rolled) == pytest.approx(sum(v for _, _, v in old))
    assert min(r["min"] for r in rolled) == 0.0 and max(r["max"] for r in rolled) == 6.0
    # late data for a rolled-up hour merges into the same roll-up
    historian.write(batch([(POWER, T0 + 30, 100.0)]))
    historian.apply_retention([RetentionRule(prefix="s1", raw_days=2, rollup_days=30)], now)
    rolled = historian.rollups(E, POWER, T0 - HOUR_MS, now).to_pylist()
    assert sum(r["count"] for r in rolled) == 181
    assert max(r["max"] for r in rolled) == 100.0
    # roll-ups expire after their own horizon
    result = historian.apply_retention(
        [RetentionRule(prefix="s1", raw_days=2, rollup_days=30)], now + 40 * DAY_MS
    )
    assert result["deleted_rollups"] >= 3
    assert historian.rollups(E, POWER, 0, now + 40 * DAY_MS).num_rows == 0


def test_empty_batch_is_a_no_op(historian):
    assert historian.write(batch([])).stored == 0


def test_build_tree_is_pure():
    assert build_tree(["a/b/c/d/t1", "a/b/c/d/t2", "a/x/c/d/t"]) == {
        "a": {"b": {"c": {"d": ["t1", "t2"]}}, "x": {"c": {"d": ["t"]}}}
    }


def test_mark_stale_flags_latest_values_under_a_prefix(historian):
    historian.write(batch([(POWER, T0, 1.0), (MODE, T0, "run"), ("s2/a/l/m/t", T0, 1.0)]))
    assert historian.mark_stale(E, "s1/press/l1/m1") == 2
    rows = {r["tag"]: r["quality"] for r in historian.latest(E).to_pylist()}
    assert rows == {POWER: 3, MODE: 3, "s2/a/l/m/t": 0}
    historian.write(batch([(POWER, T0 + 1, 2.0)]))  # fresh data is good again
    assert {r["tag"]: r["quality"] for r in historian.latest(E, "s1").to_pylist()}[POWER] == 0


def test_a_batch_with_every_row_refused_still_keeps_its_dead_letters(historian):
    historian.write(batch([(POWER, T0, 1.0)]))
    result = historian.write(batch([(POWER, T0 + 1, "x"), (POWER, T0 + 2, "y")]))
    assert result.stored == 0 and len(result.rejected) == 2
    assert len(historian.dead_letters(E)) == 2
    assert historian.count(E) == 1


def test_overwrite_of_numeric_points_after_the_fast_path(historian):
    rows = [(POWER, T0 + i, float(i)) for i in range(1000)]
    historian.write(batch(rows))  # nothing stored yet in this range: bulk path
    historian.write(batch([(POWER, T0 + i, -1.0) for i in range(0, 1000, 10)]))  # overlaps
    got = historian.series(E, POWER, T0, T0 + 1000).column("value").to_pylist()
    assert got == [-1.0 if i % 10 == 0 else float(i) for i in range(1000)]
    assert historian.latest(E).column("value").to_pylist() == [999.0]


def test_declare_keeps_metadata_when_a_concurrent_write_created_the_tag_first(historian):
    """A write in another thread may create the tag between declare's look-up and its insert."""
    path = "s1/a/l/m/power"
    looked_up = historian._load_tags
    calls = []

    def stale_lookup(enterprise, paths):  # the first look-up ran before the write committed
        calls.append(paths)
        return {} if len(calls) == 1 else looked_up(enterprise, paths)

    historian.write(batch([(path, T0, 1.0)]))  # the "concurrent" write: no unit
    historian._load_tags = stale_lookup
    try:
        historian.declare_tags(E, [TagSpec(path, DataType.NUMBER, "kW", "Active power")])
        with pytest.raises(DataError, match="cannot become"):
            calls.clear()
            historian.declare_tags(E, [TagSpec(path, DataType.STRING)])
    finally:
        historian._load_tags = looked_up
    tag = historian.tag(E, path)
    assert (tag.unit, tag.description, tag.data_type) == ("kW", "Active power", DataType.NUMBER)


def test_a_batch_with_numbered_tags_is_stored_as_the_same_batch_without(historian):
    """The builder's tag numbering (chunks) stands in for hashing the tags: same rows kept,
    same duplicates replaced, same rows refused, new tags created."""
    from indunet.ingest.batch import BatchBuilder, ChunkTags

    on = "s1/a/l/m/on"
    historian.write(batch([(on, T0, True), (POWER, T0 + 50, 9.0)]))
    tags = ChunkTags([POWER, on, "s1/a/l/m/new", POWER])
    builder = BatchBuilder(E)
    builder.extend_chunk(tags, T0 + 50, np.array([1.0, 0.0, 3.0, 4.0]), "m1")  # POWER twice
    builder.add_number(on, T0 + 20, 5.0, "m2")  # refused: a boolean tag
    builder.extend_chunk(tags, T0 + 10, np.array([5.0, 1.0, 7.0, 8.0]), "m3")  # late
    numbered = builder.take()
    assert numbered.tag_index is not None
    plain = PointBatch(E, numbered.table, numbered.types, numbered.refs)
    got = historian.write(numbered, source="mqtt")
    stored = historian.series_many(E, [POWER, on, "s1/a/l/m/new"], T0, T0 + 100)
    assert got.stored == 6 and len(got.rejected) == 1 and "m2" in got.rejected[0].ref
    assert stored[POWER].column("value").to_pylist() == [8.0, 4.0]  # the later row won
    assert stored[on].column("value").to_pylist() == [1.0, 1.0, 0.0]
    again = historian.write(plain, source="mqtt")  # the same rows again: replaced, not doubled
    assert (again.stored, len(again.rejected)) == (got.stored, len(got.rejected))
    assert historian.series_many(E, [POWER, on, "s1/a/l/m/new"], T0, T0 + 100) == stored
    assert historian.count(E) == 7


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 2**31 - 1) | st.integers(0, 5),
            st.integers(-(2**63), 2**63 - 1) | st.integers(T0, T0 + 10),
        ),
        max_size=40,
    )
)
def test_unique_order_is_the_stable_sort_by_tag_then_time_keeping_the_last(rows):
    ids = np.array([r[0] for r in rows], np.int32)
    ts = np.array([r[1] for r in rows], np.int64)
    got = _unique_order(ids, ts)
    want = {}  # (id, ts) -> the last row index holding it
    for i, key in enumerate(zip(ids.tolist(), ts.tolist(), strict=True)):
        want[key] = i
    assert got.tolist() == [want[k] for k in sorted(want)]
