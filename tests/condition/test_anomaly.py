"""Anomaly detectors on synthetic data with known anomalies, and their data-quality guard."""

from __future__ import annotations

import numpy as np
import pytest

from indunet.condition.anomaly import (
    StreamDetector,
    StreamParams,
    TagMonitor,
    data_quality,
    fit_baseline,
    fit_multivariate,
    guard,
    scan,
    score_baseline,
    score_multivariate,
    stream_scores,
    z_to_score,
)

T0 = 1_700_000_000_000
MIN = 60_000
TAG = "s1/a1/l1/m1/temp"


def _daily(n=4320, seed=3):
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * MIN
    return ts, 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.5, n)


# --------------------------------------------------------------------------- streaming detector


@pytest.mark.parametrize("n", [299, 300, 2000, 9000])
def test_batch_path_equals_streaming_path(n):
    _, v = _daily(max(n, 10), seed=n)
    v = v[:n].copy()
    v[n // 2 : n // 2 + 20] += 25  # an anomaly
    v[n // 3] = np.nan  # a gap
    p = StreamParams(history=1000)
    batch = stream_scores(v, p)
    det = StreamDetector(p)
    points = [det.update(x) for x in v]
    assert np.array_equal([q.score for q in points], batch["score"])
    assert np.array_equal([q.likelihood_z for q in points], batch["likelihood_z"])
    assert np.array_equal([q.extreme for q in points], batch["extreme"])


@pytest.mark.parametrize(
    "shape", ["random_walk", "constant", "steps", "new_extremes"], ids=lambda s: s
)
def test_batch_path_equals_streaming_path_where_novelty_is_dense_or_absent(shape):
    """The batch path computes the likelihood only where the novelty sums change: check it on
    series with novelty everywhere, nowhere after learning, in bursts, and new extremes."""
    rng = np.random.default_rng(7)
    n = 4000
    v = {
        "random_walk": np.cumsum(rng.normal(0, 1, n)),
        "constant": np.full(n, 2.5),
        "steps": np.repeat(rng.integers(0, 4, n // 50), 50).astype(float),
        "new_extremes": np.arange(n, dtype=float) ** 1.5 * (1 + rng.normal(0, 0.01, n)),
    }[shape]
    p = StreamParams(history=700, short=4)
    batch = stream_scores(v, p)
    det = StreamDetector(p)
    points = [det.update(x) for x in v]
    assert np.array_equal([q.score for q in points], batch["score"])
    assert np.array_equal([q.likelihood_z for q in points], batch["likelihood_z"])
    assert np.array_equal([q.novelty for q in points][p.learn :], batch["novelty"][p.learn :])
    assert np.array_equal([q.extreme for q in points], batch["extreme"])


def test_stream_detector_finds_a_level_shift_and_stays_quiet_after():
    _, v = _daily()
    v[3000:] += 30
    s = stream_scores(v)["score"]
    alerts = np.flatnonzero(s >= 0.3)
    assert 3000 in alerts
    assert not ((alerts > 3000) & (alerts <= 3020)).any()  # quiet after an alert


def test_short_series_is_only_learning():
    out = stream_scores(np.arange(100.0))
    assert out["learning"].all() and not out["score"].any()


def test_bad_params_refused():
    with pytest.raises(ValueError):
        StreamParams(bins=(100,))
    with pytest.raises(ValueError):
        StreamParams(learn=1)


def test_z_to_score_is_monotone_in_unit_range():
    s = z_to_score(np.array([-5.0, 0.0, 3.0, 4.3, 6.0, 40.0]))
    assert (np.diff(s) >= 0).all() and s[0] >= 0 and s[-1] == 1.0
    assert 0.45 < s[3] < 0.55


# --------------------------------------------------------------------------- monitor + guard


def _scan(ts, v):
    return scan(TAG, ts, v)


def test_clean_series_raises_nothing():
    ts, v = _daily()
    anomalies, findings, status = _scan(ts, v)
    assert anomalies == [] and findings == [] and status == "ok"


def test_spike_is_found_and_explained():
    ts, v = _daily()
    v[3000:3010] += 15
    anomalies, findings, _ = _scan(ts, v)
    assert [a.ts_ms for a in anomalies] == [ts[3000]]
    a = anomalies[0]
    assert a.tag == TAG and a.z > 3 and a.score >= 0.3 and a.since_ms <= a.ts_ms
    assert a.reason == "new extreme"
    assert TAG in a.explain() and "robust z" in a.explain()
    assert findings == []


def test_changed_pattern_within_the_range_is_found():
    ts, v = _daily()
    v[3000:3200] += np.sin(np.arange(200)) * 5
    anomalies, _, _ = _scan(ts, v)
    assert anomalies and 3000 <= (anomalies[0].ts_ms - T0) // MIN < 3020
    assert anomalies[0].reason == "unusual pattern"


def test_flat_line_is_data_quality_not_anomaly():
    ts, v = _daily()
    v[2500:2600] = v[2500]
    anomalies, findings, _ = _scan(ts, v)
    assert anomalies == []
    assert [f.kind for f in findings] == ["flat_line"]


def test_gap_is_data_quality_not_anomaly():
    ts, v = _daily()
    keep = np.r_[0:2500, 2620 : len(v)]
    anomalies, findings, _ = _scan(ts[keep], v[keep])
    assert anomalies == []
    assert [f.kind for f in findings] == ["gap"]
    assert findings[0].end_ms - findings[0].start_ms == 121 * MIN


def test_nan_values_are_a_gap():
    ts, v = _daily()
    v[2500:2510] = np.nan
    anomalies, findings, _ = _scan(ts, v)
    assert anomalies == [] and [f.kind for f in findings] == ["gap"]


@pytest.mark.parametrize("factor", [1000.0, 0.001, 3600.0])
def test_unit_change_is_data_quality_and_undone(factor):
    ts, v = _daily()
    v[2500:] *= factor
    anomalies, findings, _ = _scan(ts, v)
    assert anomalies == []
    assert [f.kind for f in findings] == ["unit_change"]
    assert findings[0].factor == factor
    g = guard(ts, v)
    assert np.allclose(g.values[2500:], v[2500:] / factor)


def test_restart_after_gap_is_data_quality_not_anomaly():
    ts, v = _daily()
    v[2530] = 0.0
    v[2531:2540] = np.linspace(5, v[2540], 9)
    keep = np.r_[0:2500, 2530 : len(v)]
    anomalies, findings, _ = _scan(ts[keep], v[keep])
    assert anomalies == []
    assert {f.kind for f in findings} == {"gap", "restart"}


def test_counter_reset_is_a_restart():
    ts = T0 + np.arange(200, dtype=np.int64) * MIN
    v = np.r_[np.arange(100.0) * 3 + 10, np.arange(100.0) * 3]
    assert [f.kind for f in data_quality(ts, v)] == ["restart"]


def test_too_little_history_says_so():
    ts, v = _daily(1000)
    v[900] += 100
    anomalies, _, status = _scan(ts, v)
    assert anomalies == [] and status == "insufficient_history"


def test_monitor_ignores_old_and_repeated_samples():
    mon = TagMonitor(TAG)
    mon.update(T0, 1.0)
    assert mon.update(T0, 500.0) is None and mon.update(T0 - MIN, 500.0) is None
    assert mon.detector.n == 1


def test_mismatched_lengths_refused():
    with pytest.raises(ValueError, match="timestamps"):
        scan(TAG, [T0], [1.0, 2.0])


# --------------------------------------------------------------------------- seasonal baseline


def _shift_series(days=14, seed=5):
    """Running 06:00-22:00 at ~100 with a daily shape, stopped (value ~0) at night."""
    rng = np.random.default_rng(seed)
    n = days * 96  # 15-min samples
    ts = T0 - T0 % 86_400_000 + np.arange(n, dtype=np.int64) * 900_000
    hour = (ts // 3_600_000) % 24
    running = (hour >= 6) & (hour < 22)
    v = np.where(running, 100 + 5 * np.sin(hour / 24 * 2 * np.pi), 0.0) + rng.normal(0, 1, n)
    states = np.where(running, "running", "stopped").tolist()
    return ts, v, states


def test_baseline_flags_a_deviation_per_time_of_day_and_not_a_stopped_machine():
    ts, v, states = _shift_series()
    model = fit_baseline(ts[:1000], v[:1000], states[:1000], bucket_s=3600, min_samples=5)
    test_v = v[1000:].copy()
    test_states = list(states[1000:])
    running = np.flatnonzero(np.array(test_states) == "running")
    test_v[running[10]] += 20  # a real deviation while running
    stopped = np.flatnonzero(np.array(test_states) == "stopped")
    test_v[stopped[3]] = 0.0  # normal for a stopped machine
    test_v[stopped[4]] = 150.0  # odd, but the machine is stopped: never an anomaly
    out = score_baseline(model, ts[1000:], test_v, test_states)
    assert out["z"][running[10]] > 10 and out["score"][running[10]] > 0.9
    assert out["status"][stopped[4]] == "stopped" and out["score"][stopped[4]] == 0
    others = np.ones(len(test_v), dtype=bool)
    others[running[10]] = False
    assert out["score"][others].max() < 0.5


def test_baseline_with_too_little_history_says_so():
    ts, v, _ = _shift_series(days=1)
    model = fit_baseline(ts[:20], v[:20], min_samples=30)
    out = score_baseline(model, ts[:20], v[:20])
    assert set(out["status"]) == {"insufficient_history"} and not out["score"].any()


def test_baseline_unknown_state_and_bad_bucket():
    ts, v, states = _shift_series(days=3)
    model = fit_baseline(ts, v, states, min_samples=2)
    out = score_baseline(model, ts[:2], v[:2], ["blocked", "running"])
    assert out["status"][0] == "unknown_state"
    with pytest.raises(ValueError, match="divide a day"):
        fit_baseline(ts, v, bucket_s=7000)


# --------------------------------------------------------------------------- multivariate


def test_multivariate_finds_a_broken_relation_and_names_the_tag():
    rng = np.random.default_rng(7)
    load = rng.uniform(20, 80, 2000)
    power = 2 * load + rng.normal(0, 1, 2000)
    temp = 30 + 0.5 * load + rng.normal(0, 1, 2000)
    m = np.c_[load, power, temp]
    model = fit_multivariate(["load", "power", "temp"], m[:1500])
    test = m[1500:].copy()
    test[100, 1] = 2 * test[100, 0] + 25  # power too high for the load (each tag in range)
    out = score_multivariate(model, test)
    assert out["score"][100] > 0.9
    assert model.tags[out["main"][100]] == "power"
    assert np.delete(out["score"], 100).max() < 0.9
    test[5, 2] = np.nan
    assert score_multivariate(model, test)["score"][5] == 0


def test_multivariate_with_too_little_history_says_so():
    with pytest.raises(ValueError, match="insufficient history"):
        fit_multivariate(["a", "b"], np.ones((10, 2)))
    with pytest.raises(ValueError, match="one column per tag"):
        fit_multivariate(["a"], np.ones((200, 2)))


@pytest.mark.parametrize(
    "params", [StreamParams(learn=5, short=10, history=3), StreamParams(bins=(4,), quiet_min=1)]
)
def test_batch_equals_streaming_with_other_parameters(params):
    _, v = _daily(3000, seed=9)
    v[2000:2005] -= 40
    batch = stream_scores(v, params)["score"]
    det = StreamDetector(params)
    assert np.array_equal([det.update(x).score for x in v], batch)
    assert (batch >= params.alert).any()
