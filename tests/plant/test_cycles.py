"""Learning the ideal cycle time from counted parts and running time (synthetic, known cycle)."""

from __future__ import annotations

import numpy as np
import pytest

from indunet.errors import DataError
from indunet.plant.cycles import learn_cycle

S = 1000
H = 3_600_000


def _parts(running: list[tuple[int, int]], cycles_s: list[float], seed: int = 3):
    """A part at the end of each cycle inside each running stretch; counter samples every 5 s."""
    rng = np.random.default_rng(seed)
    times = []
    for (a, b), c in zip(running, cycles_s, strict=True):
        t = a + c * S * (1 + rng.uniform(0, 0.02))
        while t <= b:
            times.append(t)
            t += c * S * (1 + rng.uniform(0, 0.02))  # never faster than the ideal
    part_ts = np.array(times, np.int64)
    grid = np.arange(running[0][0], running[-1][1] + 5 * S, 5 * S, dtype=np.int64)
    counted = np.searchsorted(part_ts, grid, side="right")  # counter value at each sample
    return grid, np.diff(np.concatenate([[0], counted])).astype(float)


def test_fastest_sustained_cycle_of_a_machine_that_is_often_slower():
    # 2 h at the best cycle (30 s), 4 h slowed to 45 s, with stops between the stretches
    running = [(0, 2 * H), (2 * H + 600 * S, 6 * H + 600 * S)]
    ts, dq = _parts(running, [30.0, 45.0])
    p = learn_cycle(ts, dq, np.array(running), machine="s/a/l/m")
    assert p.ideal_cycle_s == pytest.approx(30.0, rel=0.04)  # the best sustained, not the mean
    assert p.median_cycle_s > 35  # most windows ran at 45 s
    assert p.window_s == pytest.approx(30 * (6 * H / 1000) / dq.sum(), rel=0.01)
    assert p.machine == "s/a/l/m" and "p95" in p.note


def test_parts_outside_running_time_and_partial_windows_do_not_count():
    running = [(0, 3 * H)]
    ts, dq = _parts(running, [20.0])
    # a burst of 500 parts counted while the machine was stopped (e.g. a counter re-sync)
    ts = np.append(ts, 4 * H)
    dq = np.append(dq, 500.0)
    p = learn_cycle(ts, dq, np.array([[0, 3 * H], [3 * H + 1, 3 * H + 1]]))
    assert p.ideal_cycle_s == pytest.approx(20.0, rel=0.04)
    assert p.parts <= dq[:-1].sum()


def test_too_little_running_production_is_refused_with_the_reason():
    ts, dq = _parts([(0, 5 * 60 * S)], [30.0])
    with pytest.raises(DataError, match=r"m1: only \d+ running stretches"):
        learn_cycle(ts, dq, np.array([[0, 5 * 60 * S]]), machine="m1")
    with pytest.raises(DataError, match="no running time"):
        learn_cycle(ts, dq, np.zeros((0, 2)), machine="m1")
    with pytest.raises(DataError, match="no parts counted while running"):
        learn_cycle(ts, np.zeros(len(ts)), np.array([[0, H]]), machine="m1")
    with pytest.raises(DataError, match="percentile"):
        learn_cycle(ts, dq, np.array([[0, H]]), percentile=100)
    with pytest.raises(DataError, match="deltas"):
        learn_cycle(ts, dq[:-1], np.array([[0, H]]))


def test_nan_and_negative_deltas_are_ignored():
    running = [(0, 8 * H)]
    ts, dq = _parts(running, [60.0])
    dq[::7] = np.nan
    dq[1::11] = -5.0
    p = learn_cycle(ts, dq, np.array(running), percentile=90)
    # the dropped deltas' parts are lost (counter_deltas keeps them in real use): never faster
    kept = 1 - 1 / 7 - 1 / 11
    assert 60 <= p.ideal_cycle_s <= 60 / kept * 1.05 and np.isfinite(p.median_cycle_s)
