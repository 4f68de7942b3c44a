"""Spindle wear for the demo: the degradation trend, the runs to failure, the demo's spindles."""

from __future__ import annotations

import numpy as np
import pytest

from indunet.condition.rul import CycleHistory, fit_rul_model, predict_rul, read_run_csv
from indunet.sim.wear import (
    SENSORS,
    Spindle,
    demo_spindles,
    spindle_history,
    spindle_readings,
    spindle_trend,
    training_runs,
    write_training_runs,
)
from indunet.uns import MachinePath

H = 3_600_000
NOW = 1_800_000_000_000


def test_the_trend_rises_slowly_then_steeply_and_holds_at_failure():
    s = Spindle(install_ms=0, life_h=200.0, vib0=2.0, temp0=36.0)
    hours = np.array([0, 50, 100, 150, 190, 200, 260]) * H
    vib, temp = spindle_trend(s, hours)
    assert vib[0] == pytest.approx(2.0) and temp[0] == pytest.approx(36.0)
    assert np.all(np.diff(vib[:-1]) > 0) and np.all(np.diff(temp[:-1]) > 0)
    assert vib[2] - vib[0] < (vib[5] - vib[2]) / 3  # most of the wear shows late
    assert vib[6] == vib[5] and temp[6] == temp[5]  # failed: it stays there
    assert s.used(-H) == 0.0  # before the install: new


def test_readings_are_seeded_noise_around_the_trend():
    s = Spindle(install_ms=0, life_h=200.0, vib0=2.0, temp0=36.0)
    ts = np.full(20_000, 100 * H)
    vib, temp = spindle_readings(s, ts, np.random.default_rng(1))
    trend = spindle_trend(s, 100 * H)
    assert abs(vib.mean() - trend[0]) < 0.01 and 0.12 < vib.std() < 0.18
    assert abs(temp.mean() - trend[1]) < 0.02
    again = spindle_readings(s, ts, np.random.default_rng(1))
    assert np.array_equal(vib, again[0]) and np.array_equal(temp, again[1])


def test_training_runs_end_at_failure_and_teach_a_model(tmp_path):
    runs = training_runs(12, seed=3)
    assert len(runs) == 12
    for r in runs:
        assert r.shape[1] == 3 and np.array_equal(r[:, 0], np.arange(1, len(r) + 1))
        assert 140 <= len(r) <= 261
        assert r[-1, 1] > r[0, 1] + 1.5  # the vibration at failure is well above new
    assert write_training_runs(tmp_path, runs=12, seed=3) == 12
    assert write_training_runs(tmp_path, runs=12, seed=3) == 0  # kept: not written again
    files = sorted(tmp_path.glob("*.csv"))
    assert len(files) == 12
    read = read_run_csv(files[0], list(SENSORS))
    assert read.sensors == SENSORS and len(read.cycles) == len(runs[0])
    model = fit_rul_model([read_run_csv(f) for f in files], cap=100, rounds=60)
    s = Spindle(install_ms=0, life_h=180.0, vib0=1.9, temp0=37.0, gain=3.5, power=3.0)
    hours = np.arange(170)  # 10 h left
    ts = hours[:, None] * H + np.arange(0, H, 60_000)[None, :]
    vib, temp = spindle_readings(s, ts, np.random.default_rng(5))
    history = CycleHistory("m", hours + 1.0, np.column_stack([vib.mean(1), temp.mean(1)]), SENSORS)
    estimate = predict_rul(model, history)
    assert estimate.rul < 40 and estimate.low <= estimate.rul <= estimate.high


def test_demo_spindles_are_spread_over_their_lives_and_keep_their_install():
    paths = [MachinePath("s", "machining", "l", f"m{i}") for i in range(4)]
    spindles = demo_spindles(paths, NOW)
    used = [float(s.used(NOW)) for s in spindles.values()]
    assert used == pytest.approx([0.95, 0.55, 0.75, 0.35], abs=1e-6)
    assert demo_spindles(paths, NOW) == spindles  # seeded
    kept = demo_spindles(paths, NOW + 5 * H, installed={str(paths[0]): NOW - 10 * H})
    assert kept[str(paths[0])].install_ms == NOW - 10 * H
    assert kept[str(paths[1])].install_ms != spindles[str(paths[1])].install_ms  # drawn anew
    assert demo_spindles([], NOW) == {}


def test_history_runs_from_install_or_after_the_kept_reading():
    s = Spindle(install_ms=NOW - 2 * H, life_h=150.0, vib0=2.0, temp0=36.0)
    batch = spindle_history("demo", {"a/b/c/d": s}, NOW)
    table = batch.table
    assert table.num_rows == 2 * 120 and set(batch.types) == {"a/b/c/d/" + n for n in SENSORS}
    ts = table.column("ts").to_numpy()
    assert ts.min() == NOW - 2 * H and ts.max() == NOW - 60_000
    later = spindle_history("demo", {"a/b/c/d": s}, NOW, after={"a/b/c/d": NOW - 5 * 60_000})
    assert later.table.column("ts").to_numpy().min() == NOW - 4 * 60_000
    assert later.table.num_rows == 2 * 4
    assert spindle_history("demo", {}, NOW).table.num_rows == 0
