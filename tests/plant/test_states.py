"""State engine: hysteresis, dwell, offline, incremental == batch, learned thresholds, real data."""

from __future__ import annotations

import glob
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.errors import DataError
from indunet.plant.config import MachineConfig, Thresholds
from indunet.plant.states import (
    MachineState,
    StateTimeline,
    StateTracker,
    check_power_unit,
    detect_states,
    learn_thresholds,
)
from tests.datasets import DATASETS
from tests.plant.reference import reference_states

CNC = str(DATASETS / "cnc_mill_tool_wear")
METRO = str(DATASETS / "metropt3_air_compressor" / "MetroPT3_AirCompressor_first1000rows.csv")
OFF, IDLE, RUN, OFFL = (int(s) for s in MachineState)


def rows(tl: StateTimeline) -> list[tuple[int, int, int]]:
    return [
        (int(a), int(b), int(c)) for a, b, c in zip(tl.start_ms, tl.end_ms, tl.state, strict=False)
    ]


TH = Thresholds(off_below=1, running_above=5, hysteresis=0.5, min_dwell_s=3)


def test_hysteresis_dwell_and_offline_by_hand():
    ts = np.arange(30) * 1000
    v = np.array(
        [
            0,
            0,
            0,
            2,
            2,
            2,
            2,
            6,
            6,
            6,
            4.8,
            6,
            6,
            6,
            0.8,
            2,
            6,
            6,
            6,
            6,
            np.nan,
            0,
            0,
            0,
            0,
            9,
            9,
            9,
            9,
            9,
        ]
    )
    ts[25:] += 20_000
    tl = detect_states(ts, v, TH, offline_after_ms=5000)
    assert rows(tl) == [
        (0, 3000, OFF),
        (3000, 7000, IDLE),
        (7000, 20_000, RUN),  # 4.8 stays running (hysteresis); 0.8/2 for 2 s is too short
        (20_000, 21_000, OFFL),  # NaN (bad quality or DEATH)
        (21_000, 25_000, OFF),  # the last sample before a long gap holds one interval
        (25_000, 45_000, OFFL),
        (45_000, 50_000, RUN),
    ]


def test_range_is_clipped_and_missing_data_is_offline():
    ts = np.array([10_000, 11_000, 12_000])
    v = np.array([6.0, 6.0, 6.0])
    tl = detect_states(ts, v, TH, start_ms=0, end_ms=20_000, offline_after_ms=5000)
    assert rows(tl) == [(0, 10_000, OFFL), (10_000, 13_000, RUN), (13_000, 20_000, OFFL)]
    assert tl.ms_by_state() == {"off": 0, "idle": 0, "running": 3000, "offline": 17_000}
    # the last sample extends to the range end when the gap is short enough
    tl = detect_states(ts, v, TH, start_ms=10_000, end_ms=15_000, offline_after_ms=5000)
    assert rows(tl) == [(10_000, 15_000, RUN)]
    # no samples at all: the whole range is offline
    tl = detect_states(np.zeros(0), np.zeros(0), TH, start_ms=0, end_ms=5000)
    assert rows(tl) == [(0, 5000, OFFL)]


def test_nominal_levels_after_offline_then_hysteresis():
    th = Thresholds(off_below=1, running_above=5, hysteresis=1)
    # 1.5 is inside the off/idle band: first sample uses the nominal level (idle)
    tl = detect_states(np.arange(4) * 1000, np.array([1.5, -0.1, 1.5, 2.5]), th)
    assert rows(tl) == [(0, 1000, IDLE), (1000, 3000, OFF), (3000, 4000, IDLE)]


def test_death_and_tick_mark_offline():
    tr = StateTracker(TH, interval_ms=1000, offline_after_ms=3000)
    out = [tr.feed(np.arange(5) * 1000, np.full(5, 6.0))]
    out.append(tr.death(5000))
    out.append(tr.feed(np.array([8000, 9000]), np.array([0.0, 0.0])))
    out.append(tr.tick(11_000))  # 2 s without data: not yet offline
    assert tr.current == (MachineState.OFF, 8000)
    out.append(tr.tick(20_000))
    out.append(tr.feed(np.array([30_000]), np.array([6.0])))
    out.append(tr.finish(31_000))
    assert rows(StateTimeline.concat(out)) == [
        (0, 5000, RUN),
        (5000, 8000, OFFL),
        (8000, 10_000, OFF),
        (10_000, 30_000, OFFL),
        (30_000, 31_000, RUN),
    ]


def test_bad_input_names_row_and_field():
    tr = StateTracker(TH, machine="s/a/l/m1")
    tr.feed(np.array([0, 1000]), np.array([1.0, 1.0]))
    with pytest.raises(DataError, match=r"s/a/l/m1: row 2 field ts: 1000 is not after"):
        tr.feed(np.array([1000]), np.array([1.0]))
    with pytest.raises(DataError, match=r"row 4 field ts: 4000"):
        tr.feed(np.array([3000, 4000, 4000]), np.array([1.0, 1.0, 1.0]))
    with pytest.raises(DataError, match=r"row 2 field value is infinite"):
        tr.feed(np.array([5000]), np.array([np.inf]))
    with pytest.raises(DataError, match="1-D arrays"):
        tr.feed(np.array([5000, 6000]), np.array([1.0]))
    with pytest.raises(DataError, match="overlaps"):
        StateTimeline(np.array([0, 5]), np.array([10, 20]), np.array([0, 1]))
    with pytest.raises(DataError, match="no thresholds"):
        StateTracker.for_machine(MachineConfig(id="s/a/l/m"))


values_st = st.lists(
    st.one_of(
        st.floats(min_value=-0.5, max_value=8, allow_nan=False),
        st.sampled_from([0.5, 1.0, 1.5, 4.5, 5.0, 5.5, float("nan")]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    values=values_st,
    gaps=st.lists(st.sampled_from([1000, 1000, 1000, 2000, 7000]), min_size=80, max_size=80),
    dwell=st.sampled_from([0, 1, 2.5, 4]),
    hyst=st.sampled_from([0, 0.5, 2]),
    cuts=st.lists(st.integers(0, 80), max_size=6),
    end_extra=st.one_of(st.none(), st.integers(1, 9000)),
    tick_at=st.one_of(st.none(), st.integers(0, 80)),
)
def test_chunked_equals_batch_equals_reference(values, gaps, dwell, hyst, cuts, end_extra, tick_at):
    th = Thresholds(off_below=1, running_above=5, hysteresis=hyst, min_dwell_s=dwell)
    v = np.array(values)
    ts = np.cumsum(gaps[: len(v)]).astype(np.int64)
    end_ms = None if end_extra is None else int(ts[-1]) + end_extra
    batch = detect_states(ts, v, th, offline_after_ms=5000, end_ms=end_ms)
    ref = reference_states(ts, v, th, 1000, 5000, end_ms)
    assert rows(batch) == ref
    # any chunking (plus a harmless tick) gives the same timeline
    tr = StateTracker(th, offline_after_ms=5000)
    bounds = sorted({0, len(v), *[c for c in cuts if c <= len(v)]})
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        parts.append(tr.feed(ts[lo:hi], v[lo:hi]))
        if tick_at is not None and hi < len(v):
            parts.append(tr.tick(int(ts[hi]) - 1))  # never more than offline_after behind
    parts.append(tr.finish(end_ms))
    chunked = StateTimeline.concat(parts)
    assert rows(chunked) == rows(batch)
    # every millisecond from the first sample to the end is in exactly one state
    assert batch.start_ms[0] == ts[0]
    assert np.all(batch.start_ms[1:] == batch.end_ms[:-1])


def test_timeline_arrow_round_trip():
    tl = detect_states(
        np.arange(6) * 1000,
        np.array([0, 0, 6, 6, 2, 2.0]),
        TH.model_copy(update={"min_dwell_s": 0}),
    )
    back = StateTimeline.from_arrow(tl.to_arrow())
    assert rows(back) == rows(tl)
    assert tl.to_arrow().column("state").to_pylist() == ["off", "running", "idle"]


def test_learn_thresholds_three_levels_and_errors():
    rng = np.random.default_rng(1)
    v = np.concatenate(
        [rng.normal(0.05, 0.02, 5000), rng.normal(4, 0.3, 3000), rng.normal(12, 1, 2000)]
    )
    prop = learn_thresholds(v)
    assert prop.note.startswith("three")
    assert 0.5 < prop.thresholds.off_below < 3.5
    assert 5 < prop.thresholds.running_above < 10
    with pytest.raises(DataError, match="constant"):
        learn_thresholds(np.full(100, 3.0))
    with pytest.raises(DataError, match="at least 10"):
        learn_thresholds(np.array([1.0, np.nan]))


def test_power_unit_warnings_name_machine_field_and_row():
    m = MachineConfig(id="s/a/l/press", power_tag="power", rated_kw=15)
    watts = np.array([0, 50, 12_000, 14_000, 13_000.0])
    (w,) = check_power_unit(watts, m)
    assert (w.machine, w.field, w.row) == ("s/a/l/press", "power", 2)
    assert "probably in W" in str(w)
    assert check_power_unit(np.array([0, 5, 12, 14.0]), m) == []
    m_w = m.model_copy(update={"power_unit": "W"})
    (w,) = check_power_unit(np.array([0, 5, 12, 14.0]), m_w)
    assert "probably in kW" in w.message
    (w,) = check_power_unit(np.array([0, 5, -3, 14.0]), m)
    assert w.row == 2 and "negative" in w.message
    # no nameplate: only absurd values warn
    bare = MachineConfig(id="s/a/l/x")
    assert len(check_power_unit(np.array([20_000.0, 30_000.0]), bare)) == 1


def _cnc_runs() -> list[pd.DataFrame]:
    files = sorted(glob.glob(f"{CNC}/experiment_*.csv.gz"))
    assert len(files) == 18
    return [pd.read_csv(f) for f in files]


def test_cnc_spindle_states_agree_with_machining_labels():
    """Spindle power at 10 Hz vs the labelled phases of 18 real milling runs.

    Ground truths: ``active`` = every labelled phase except Starting/End (the program runs),
    ``layer`` = cutting phases only (the spindle also turns in the air during Prep and
    Repositioning), ``turning`` = spindle velocity > 1. ``valid`` drops the rows the publisher
    says do not reflect the machine (feed rate 50, X at 198).
    """
    runs = _cnc_runs()
    power = np.concatenate([r["S1_OutputPower"].to_numpy(float) for r in runs])
    prop = learn_thresholds(power)
    assert prop.note.startswith("two levels: off and running")
    th = prop.thresholds.model_copy(update={"min_dwell_s": 0.3})
    hits: dict[str, list[int]] = {}
    for run in runs:
        ts = np.arange(len(run), dtype=np.int64) * 100
        tl = detect_states(
            ts, run["S1_OutputPower"].to_numpy(float), th, interval_ms=100, offline_after_ms=500
        )
        running = tl.state[np.searchsorted(tl.start_ms, ts, side="right") - 1] == RUN
        label = run["Machining_Process"]
        valid = ((run["M1_CURRENT_FEEDRATE"] != 50) & (run["X1_ActualPosition"] != 198)).to_numpy()
        truths = {
            "active": (~label.str.lower().isin(["starting", "end"])).to_numpy(),
            "layer": label.str.startswith("Layer").to_numpy(),
            "turning": (run["S1_ActualVelocity"].abs() > 1).to_numpy(),
        }
        for name, truth in truths.items():
            h = hits.setdefault(name, [0, 0, 0, 0])
            same = running == truth
            h[0] += int(same.sum())
            h[1] += len(run)
            h[2] += int(same[valid].sum())
            h[3] += int(valid.sum())
    share = {k: (h[0] / h[1], h[2] / h[3]) for k, h in hits.items()}
    print(
        f"\nCNC {th}; agreement all rows / publisher-valid rows: "
        + ", ".join(f"{k} {a:.1%} / {b:.1%}" for k, (a, b) in share.items())
    )
    assert share["active"][0] > 0.70 and share["active"][1] > 0.90
    assert share["layer"][0] > 0.60
    assert share["turning"][0] > 0.98


def test_metropt_compressor_states_match_digital_signals():
    """Motor current (A) of a real air compressor: off / offloaded (idle) / loaded (running)."""
    df = pd.read_csv(METRO)
    ts = pd.to_datetime(df["timestamp"]).to_numpy().astype("datetime64[ms]").astype(np.int64)
    amps = df["Motor_current"].to_numpy(float)
    prop = learn_thresholds(amps)
    assert prop.note.startswith("three")
    tl = detect_states(ts, amps, prop.thresholds, interval_ms=10_000, offline_after_ms=60_000)
    idx = np.searchsorted(tl.start_ms, ts, side="right") - 1
    state = tl.state[idx]
    loaded = df["COMP"].to_numpy() == 0  # air intake open = under load
    motor_on = state != OFF
    agree_loaded = float(((state == RUN) == loaded).mean())
    agree_dv = float(((state == RUN) == (df["DV_eletric"].to_numpy() == 1)).mean())
    off_comp = float((df["COMP"].to_numpy()[~motor_on] == 1).mean())
    starts = ts[1:][(state[1:] != OFF) & (state[:-1] == OFF)]
    print(
        f"\nMetroPT-3 thresholds {prop.thresholds}; running==COMP 0 {agree_loaded:.1%}, "
        f"running==DV_eletric {agree_dv:.1%}, COMP=1 while off {off_comp:.1%}, "
        f"starts {len(starts)}"
    )
    assert agree_loaded >= 0.98
    assert agree_dv >= 0.98
    assert off_comp == 1.0
    start_times = [str(t)[11:19] for t in starts.astype("datetime64[ms]")]
    assert start_times == ["00:23:08", "00:57:19", "01:30:41", "02:04:23", "02:37:54"]
