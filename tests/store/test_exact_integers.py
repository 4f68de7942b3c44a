"""Integers beyond 2^53 (Sparkplug Int64/UInt64 counters and ids) are kept exactly.

Such a value is stored as its float in ``value`` (aggregates, charts) and its digits in
``text``; the raw readers (API, CLI) hand it out as the exact int. Run on both backends.
"""

from __future__ import annotations

from indunet.ingest.batch import BatchBuilder
from indunet.ingest.values import Value
from indunet.model import DataType
from indunet.store.base import exact_integers

E = "acme"
T0 = 1_700_000_000_000
COUNTER = "s1/a/l1/m1/parts_total"
BIG = [2**53 + 1, 2**64 - 1, -(2**63), 12]


def _exact(number: int) -> Value:
    text = None if abs(number) <= 2**53 else str(number)
    return Value(float(number), text, DataType.NUMBER)


def test_big_integers_round_trip_exactly(historian):
    builder = BatchBuilder(E)
    for i, number in enumerate(BIG):
        builder.add(COUNTER, T0 + i, _exact(number), "test")
    result = historian.write(builder.take(), source="test")
    assert result.stored == len(BIG) and not result.rejected
    rows = exact_integers(historian.series(E, COUNTER, T0, T0 + 10).to_pylist())
    assert [r["value"] for r in rows] == BIG
    assert all(type(r["value"]) is int for r in rows[:3]) and all(r["text"] is None for r in rows)
    latest = exact_integers(historian.latest(E, "s1").to_pylist())
    assert latest[0]["value"] == 12  # the newest
    # the float is what aggregates see
    buckets = historian.buckets(E, COUNTER, T0, T0 + 10, 1).to_pylist()
    assert buckets[0]["count"] == 4 and buckets[0]["max"] == float(2**64 - 1)


def test_a_redelivered_big_integer_is_idempotent(historian):
    for _ in range(2):
        builder = BatchBuilder(E)
        builder.add(COUNTER, T0, _exact(2**53 + 3), "test")
        historian.write(builder.take(), source="test")
    rows = exact_integers(historian.series(E, COUNTER, T0, T0 + 1).to_pylist())
    assert [r["value"] for r in rows] == [2**53 + 3]


def test_text_alone_on_a_number_tag_and_a_big_integer_on_a_text_tag_are_refused(historian):
    builder = BatchBuilder(E)
    builder.add(COUNTER, T0, _exact(5), "r1")
    builder.add("s1/a/l1/m1/recipe", T0, Value(None, "A-1", DataType.STRING), "r2")
    historian.write(builder.take(), source="test")
    builder = BatchBuilder(E)
    builder.add(COUNTER, T0 + 1, Value(None, "9007199254740993", DataType.STRING), "r3")
    builder.add("s1/a/l1/m1/recipe", T0 + 1, _exact(2**60), "r4")
    result = historian.write(builder.take(), source="test")
    assert result.stored == 0
    assert sorted(d.ref for d in result.rejected) == ["r3", "r4"]


def test_exact_integers_leaves_other_rows_alone():
    rows = [
        {"value": None, "text": "A-1"},
        {"value": 1.5, "text": None},
        {"value": 3.0, "text": "not digits"},
    ]
    assert exact_integers([dict(r) for r in rows]) == rows
