"""The NAB scorer against NAB's own published figures and hand-worked small cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indunet.condition.nab import (
    PROFILES,
    load_series,
    load_windows,
    scaled_sigmoid,
    score_corpus,
    sweep_series,
)
from tests.datasets import DATASETS

NAB = DATASETS / "nab_machine_temperature"
SCORES = DATASETS / "nab_numenta_scores" / "numenta_machine_temperature_system_failure.csv"
KEY = "realKnownCause/machine_temperature_system_failure.csv"


@pytest.fixture(scope="module")
def numenta_sweep():
    ts, _ = load_series(NAB / "machine_temperature_system_failure.csv")
    windows = load_windows(NAB / "combined_windows_machine_temperature.json")[KEY]
    scores = np.array([float(x) for x in SCORES.read_text().split()[1:]])
    return sweep_series(KEY, ts, scores, windows)


@pytest.mark.parametrize(
    ("profile", "threshold", "published"),
    [
        # numenta/NAB results/numenta/numenta_<profile>_scores.csv, row of this file
        ("standard", 0.542187690735, 1.36013273774),
        ("reward_low_FP_rate", 0.575195503235, 1.32453417071),
        ("reward_low_FN_rate", 0.542187690735, 0.360132737738),
    ],
)
def test_reproduces_numentas_published_file_score(numenta_sweep, profile, threshold, published):
    got = score_corpus([numenta_sweep], profile, threshold)
    assert got.raw == pytest.approx(published, abs=1e-9)
    assert got.windows == 4


def test_optimal_threshold_is_at_least_as_good_as_any_given(numenta_sweep):
    best = score_corpus([numenta_sweep], "standard")
    for th in (0.3, 0.5, 0.542187690735, 0.6, 0.9):
        assert best.raw >= score_corpus([numenta_sweep], "standard", th).raw
    assert best.normalised > 0


def _series(n):
    return [f"2020-01-01 {i // 60:02d}:{i % 60:02d}:00" for i in range(n)]


def test_hand_worked_window_and_false_positives():
    ts = _series(200)  # probation: 30 rows
    window = [[ts[100], ts[109]]]  # 10 rows
    scores = np.zeros(200)
    scores[100] = 1.0  # earliest row of the window: full tp weight
    scores[50] = 1.0  # before any window: -fp
    sweep = sweep_series("s", ts, scores, window)
    got = score_corpus([sweep], "standard", 0.5)
    assert got.raw == pytest.approx(1.0 - 0.11)
    assert got.null == -1.0 and got.perfect == 1.0
    assert got.normalised == pytest.approx(100 * (1.0 - 0.11 + 1.0) / 2.0)
    # the window's right edge counts (almost) nothing, a late detection less than an early one
    late = np.zeros(200)
    late[109] = 1.0
    assert score_corpus([sweep_series("s", ts, late, window)], "standard", 0.5).raw == (
        pytest.approx(
            float(scaled_sigmoid(np.array([-0.1]))[0]) / float(scaled_sigmoid(np.array([-1.0]))[0])
        )
    )
    # a false positive right after the window costs less than fp (sigmoid of the distance)
    after = np.zeros(200)
    after[111] = 1.0
    r = score_corpus([sweep_series("s", ts, after, window)], "reward_low_FN_rate", 0.5).raw
    assert -2.0 - 0.11 < r < -2.0


def test_probationary_rows_are_not_scored():
    ts = _series(200)
    scores = np.zeros(200)
    scores[5] = 1.0  # inside the first 15 %
    got = score_corpus([sweep_series("s", ts, scores, [])], "standard")
    assert got.fp == 0 and got.raw == 0.0


def test_detection_semantics_is_score_at_or_above_threshold():
    ts = _series(200)
    window = [[ts[100], ts[119]]]
    scores = np.full(200, 0.2)
    scores[105] = 0.7
    sweep = sweep_series("s", ts, scores, window)
    assert score_corpus([sweep], "standard", 0.7).tp == 1
    assert score_corpus([sweep], "standard", 0.70001).tp == 0
    best = score_corpus([sweep], "standard")
    assert best.threshold == 0.7 and best.fp == 0


@pytest.mark.parametrize(
    ("scores", "windows", "match"),
    [
        (np.full(200, 1.5), [], "within"),
        (np.full(199, 0.5), [], "199 scores"),
        (np.full(200, np.nan), [], "finite"),
        (np.zeros(200), [["2030-01-01 00:00:00", "2030-01-01 00:05:00"]], "not a timestamp"),
    ],
)
def test_bad_input_is_refused(scores, windows, match):
    with pytest.raises(ValueError, match=match):
        sweep_series("s", _series(200), scores, windows)


def test_unknown_profile_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unknown NAB profile"):
        score_corpus([], "fast")
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="object"):
        load_windows(bad)
    csv = tmp_path / "x.csv"
    csv.write_text("time,v\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        load_series(csv)
    assert set(PROFILES) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
