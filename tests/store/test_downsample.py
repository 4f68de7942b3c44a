"""M4 and LTTB on plain arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.store.downsample import lttb, m4


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    buckets=st.integers(1, 50),
)
def test_m4_keeps_first_last_min_max_of_every_bucket(values, buckets):
    v = np.array(values)
    ts = np.arange(len(v), dtype=np.int64) * 1000
    start, end = 0, len(v) * 1000
    idx = m4(ts, v, start, end, buckets)
    assert np.all(np.diff(idx) > 0)  # sorted, unique
    bucket = np.minimum((ts - start) * buckets // (end - start), buckets - 1)
    kept = set(idx.tolist())
    for b in np.unique(bucket):
        members = np.flatnonzero(bucket == b)
        part = v[members]
        assert members[0] in kept and members[-1] in kept
        assert any(v[i] == part.min() for i in kept if bucket[i] == b)
        assert any(v[i] == part.max() for i in kept if bucket[i] == b)
        assert sum(1 for i in kept if bucket[i] == b) <= 4


def test_m4_small_inputs_pass_through():
    assert m4(np.arange(3), np.arange(3.0), 0, 3, 10).tolist() == [0, 1, 2]
    assert m4(np.empty(0, np.int64), np.empty(0), 0, 1, 10).tolist() == []


def test_lttb_keeps_endpoints_and_a_spike():
    y = np.zeros(10_000)
    y[4321] = 50.0
    idx = lttb(np.arange(10_000), y, 100)
    assert len(idx) == 100
    assert idx[0] == 0 and idx[-1] == 9999
    assert 4321 in idx
    assert np.all(np.diff(idx) > 0)


def test_lttb_below_threshold_returns_everything():
    assert lttb(np.arange(5), np.arange(5.0), 10).tolist() == [0, 1, 2, 3, 4]
