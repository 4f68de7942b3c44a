"""Part counters: resets, wrap-around, counters going backwards, gaps and hostile values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.errors import DataError
from indunet.plant.config import CounterConfig
from indunet.plant.counters import counter_deltas

TS = np.arange(8, dtype=np.int64) * 1000


def kinds(res):
    return [(a.row, a.kind) for a in res.anomalies]


def test_reset_is_counted_from_zero():
    res = counter_deltas(TS[:6], np.array([100, 105, 110, 3, 8, 8.0]), CounterConfig(tag="parts"))
    assert res.delta.tolist() == [0, 5, 5, 3, 5, 0]
    assert kinds(res) == [(3, "reset")]
    assert not res.anomalies[0].is_warning
    assert res.total == 18 and res.last_value == 8


def test_wrap_at_modulus():
    cfg = CounterConfig(tag="parts", wrap_at=65536)
    res = counter_deltas(TS[:4], np.array([65530, 65535, 4, 10.0]), cfg, machine="s/a/l/m")
    assert res.delta.tolist() == [0, 5, 5, 6]
    assert kinds(res) == [(2, "wrap")]
    assert "s/a/l/m parts row 2: counter wrapped from 65535 to 4" in res.anomalies[0].message
    # a small drop on a wrapping counter is a reset, not a wrap
    res = counter_deltas(TS[:3], np.array([500, 510, 2.0]), cfg)
    assert res.delta.tolist() == [0, 10, 2] and kinds(res) == [(2, "reset")]


def test_counter_going_backwards_is_flagged_and_not_counted():
    cfg = CounterConfig(tag="parts", resets=False)
    res = counter_deltas(TS[:5], np.array([10, 20, 15, 25, 30.0]), cfg, machine="m", row_offset=100)
    assert res.delta.tolist() == [0, 10, 0, 10, 5]
    (a,) = res.anomalies
    assert (a.row, a.kind, a.field, a.ts_ms) == (102, "backwards", "parts", 2000)
    assert "m parts row 102: counter went backwards from 20 to 15" in a.message
    assert a.is_warning


def test_missing_negative_and_jumps_are_reported():
    cfg = CounterConfig(tag="parts", max_step=50, wrap_at=1000)
    res = counter_deltas(TS[:7], np.array([1, np.nan, 3, -4, 200, 5000, 210.0]), cfg)
    assert kinds(res) == [(1, "missing"), (3, "negative"), (4, "jump"), (5, "out_of_range")]
    assert res.delta.tolist() == [0, 0, 2, 0, 197, 0, 10]
    assert counter_deltas(TS[:1], np.array([np.nan]), cfg).total == 0


def test_unsorted_timestamps_are_refused_naming_the_row():
    with pytest.raises(DataError, match=r"parts: row 2 field ts: 1000 is not after"):
        counter_deltas(np.array([0, 1000, 1000]), np.array([1, 2, 3.0]), CounterConfig(tag="parts"))


def test_counts_inside_intervals_are_right_closed():
    res = counter_deltas(TS[:5], np.array([0, 1, 3, 6, 10.0]), CounterConfig(tag="p"))
    assert res.total_in(np.array([[1000, 3000]])) == 2 + 3  # (1000, 3000]
    assert res.total_in(np.zeros((0, 2))) == 0


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.integers(-30, 60), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    resets=st.booleans(),
)
def test_chunked_deltas_equal_whole(steps, cuts, resets):
    cfg = CounterConfig(tag="p", resets=resets, wrap_at=1000)
    values = np.mod(500 + np.cumsum(steps), 1000).astype(float)
    ts = np.arange(len(values), dtype=np.int64) * 1000
    whole = counter_deltas(ts, values, cfg)
    assert (whole.delta >= 0).all()
    bounds = sorted({0, len(values), *[c for c in cuts if c <= len(values)]})
    prev, parts, rows = None, [], []
    for lo, hi in itertools.pairwise(bounds):
        r = counter_deltas(ts[lo:hi], values[lo:hi], cfg, previous=prev, row_offset=lo)
        prev = r.last_value
        parts.append(r.delta)
        rows += [(a.row, a.kind) for a in r.anomalies]
    joined = np.concatenate(parts)
    assert joined.tolist() == whole.delta.tolist()
    assert rows == [(a.row, a.kind) for a in whole.anomalies]
