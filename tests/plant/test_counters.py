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
    # nothing is counted until the counter passes its high-water mark (20) again
    assert res.delta.tolist() == [0, 10, 0, 5, 5]
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


def test_small_drop_is_not_a_reset_and_nothing_is_counted_twice():
    # a re-sent old value in the middle of a run: counting resumes above the mark, once
    res = counter_deltas(TS[:6], np.array([100, 101, 95, 96, 102, 103.0]), CounterConfig(tag="p"))
    assert res.delta.tolist() == [0, 1, 0, 0, 1, 1]
    assert kinds(res) == [(2, "backwards"), (3, "backwards")]
    assert "went backwards from 101 to 95" in res.anomalies[0].message


def test_two_sources_interleaved_count_the_envelope_not_the_zigzag():
    # two copies of a counter a few parts apart (a back-fill over live data): not doubled
    a = np.arange(1000, 1100, 2.0)
    b = a + 5
    zig = np.ravel(np.column_stack([a, b]))
    ts = np.arange(len(zig), dtype=np.int64) * 1000
    res = counter_deltas(ts, zig, CounterConfig(tag="p"))
    assert res.total == zig.max() - zig[0]
    assert (res.delta >= 0).all()


def test_reset_to_near_zero_only():
    cfg = CounterConfig(tag="p")
    # 5000 -> 300 is a drop to 6 % of the mark: a reset; 5000 -> 4000 is not
    res = counter_deltas(TS[:4], np.array([4990, 5000, 300, 310.0]), cfg)
    assert res.delta.tolist() == [0, 10, 300, 10] and kinds(res) == [(2, "reset")]
    res = counter_deltas(TS[:4], np.array([4990, 5000, 4000, 5010.0]), cfg)
    assert res.delta.tolist() == [0, 10, 0, 10] and kinds(res) == [(2, "backwards")]
    # a small counter reset to 1 is still a reset
    res = counter_deltas(TS[:3], np.array([4, 5, 1.0]), cfg)
    assert res.delta.tolist() == [0, 1, 1]


@settings(max_examples=150, deadline=None)
@given(
    runs=st.lists(st.lists(st.integers(0, 20), min_size=1, max_size=15), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_true_count_survives_resets_and_resent_values(runs, seed):
    """A counter reset to 0 between runs, with some readings re-sent later (out of order).

    Stored in time order with (tag, ts) idempotent, the count equals the parts truly made.
    """
    rng = np.random.default_rng(seed)
    values, truth = [], 0
    for run in runs:
        total = 0
        values.append(0.0)  # reset to zero
        for made in run:
            total += made
            values.append(float(total))
        truth += total
    v = np.array(values)
    ts = np.arange(len(v), dtype=np.int64) * 1000
    res = counter_deltas(ts, v, CounterConfig(tag="p", reset_below=0.0))
    assert res.total == truth
    # a stale copy of an earlier reading shows up between two readings of one run: not counted
    if len(v) > 3:
        i = int(rng.integers(2, len(v) - 1))
        if v[i - 1] > 1 and v[i] >= v[i - 1]:
            stale = min(float(rng.integers(2, 4)), v[i - 1])
            ts2 = np.concatenate([ts[:i] * 2, [ts[i - 1] * 2 + 1], ts[i:] * 2])
            v2 = np.concatenate([v[:i], [max(v[i - 1] - stale, 2.0)], v[i:]])
            assert counter_deltas(ts2, v2, CounterConfig(tag="p", reset_below=0.0)).total == truth
