"""OEE per ISO 22400-2: a hand-computed shift, edge cases, aggregation and stop reasons."""

from __future__ import annotations

import itertools
from datetime import datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.errors import DataError
from indunet.plant.config import CounterConfig, Shift, ShiftCalendar, StopReasonTree
from indunet.plant.counters import counter_deltas
from indunet.plant.oee import (
    OeeElements,
    StopAssignment,
    apply_reasons,
    machine_oee,
    oee_by_shift,
    overlap_ms,
    rollup,
    unassigned_stops,
)
from indunet.plant.shifts import planned_busy, shift_windows, to_ms
from indunet.plant.states import MachineState, StateTimeline, detect_states

BERLIN = ZoneInfo("Europe/Berlin")
OFF, IDLE, RUN, OFFL = (int(s) for s in MachineState)
S = 1000


def t(h, mi=0, d=10, mo=6):
    return to_ms(datetime(2026, mo, d, h, mi, tzinfo=BERLIN))


CAL = ShiftCalendar(
    timezone="Europe/Berlin",
    shifts=[
        Shift(
            name="early", start=time(6), end=time(14), breaks=[{"start": "10:00", "end": "10:30"}]
        ),
        Shift(name="night", start=time(22), end=time(6)),
    ],
)
TREE = StopReasonTree(
    reasons=[
        {"code": "material"},
        {"code": "waiting", "parent": "material"},
        {"code": "mechanical"},
    ]
)


def fixture_timeline() -> StateTimeline:
    rows = [
        (t(6), t(7), RUN),
        (t(7), t(7, 20), IDLE),
        (t(7, 20), t(10), RUN),
        (t(10), t(11), OFF),  # 10:00–10:30 is the planned break
        (t(11), t(13), RUN),
        (t(13), t(13, 30), OFFL),
        (t(13, 30), t(14), RUN),
    ]
    return StateTimeline(*(np.array(c) for c in zip(*rows, strict=False)))


def fixture_counts():
    ts = np.array([t(6), t(8), t(10), t(11), t(12), t(14)])
    total = counter_deltas(
        ts, np.array([1000, 1100, 1230, 1230, 40, 100.0]), CounterConfig(tag="parts_total")
    )
    scrap = counter_deltas(
        np.array([t(6), t(10), t(14)]), np.array([0, 5, 12.0]), CounterConfig(tag="parts_scrap")
    )
    return total, scrap


def test_hand_computed_iso22400_shift():
    """One early shift 06–14 with a 30 min break: all numbers worked out by hand.

    PBT = 8 h − 0.5 h = 27,000 s. Running 1 h + 2 h 40 + 2 h + 0.5 h = 22,200 s (APT).
    Stops in PBT: idle 20 min (1,200 s), off 10:30–11:00 (1,800 s), offline 30 min (1,800 s).
    Counter 1000→1100→1230→1230, reset to 40 → 100: 100 + 130 + 0 + 40 + 60 = 330 parts;
    scrap 12, good 318; ideal cycle 60 s → ideal time 19,800 s.
    A = 22,200/27,000 = 0.8222, P = 19,800/22,200 = 0.8919, Q = 318/330 = 0.9636,
    OEE = 318 × 60 / 27,000 = 0.70667.
    """
    tl = apply_reasons(fixture_timeline(), [StopAssignment(t(7), t(7, 20), "waiting")], TREE)
    total, scrap = fixture_counts()
    (w,) = [w for w in shift_windows(CAL, t(6), t(14))]
    e = machine_oee(
        tl, w.busy, (w.start_ms, w.end_ms), total=total, scrap=scrap, ideal_cycle_s=60.0
    )
    assert e.pbt_ms == 27_000 * S
    assert e.apt_ms == 22_200 * S
    assert e.stop_ms == {"idle": 1_200 * S, "off": 1_800 * S, "offline": 1_800 * S}
    assert e.reason_ms == {"waiting": 1_200 * S, "unassigned": 3_600 * S}
    assert e.apt_ms + e.stop_total_ms == e.pbt_ms
    assert (e.produced, e.scrap, e.good) == (330, 12, 318)
    assert e.ideal_ms == 19_800 * S
    assert e.availability == pytest.approx(22_200 / 27_000)
    assert e.performance == pytest.approx(19_800 / 22_200)
    assert e.quality == pytest.approx(318 / 330)
    assert e.oee == pytest.approx(0.706667, abs=1e-6)
    assert e.unplanned_running_ms == 0 and e.produced_unplanned == 0
    assert [a.kind for a in total.anomalies] == ["reset"]
    d = e.as_dict()
    assert d["oee"] == pytest.approx(0.706667, abs=1e-6) and d["stop_ms"]["idle"] == 1_200_000


def test_missing_ideal_cycle_time_leaves_performance_unknown_with_a_warning():
    total, scrap = fixture_counts()
    e = machine_oee(
        fixture_timeline(),
        planned_busy(CAL, t(6), t(14)),
        (t(6), t(14)),
        total=total,
        scrap=scrap,
        machine="s/a/l/m1",
    )
    assert e.performance is None and e.oee is None
    assert e.availability == pytest.approx(22_200 / 27_000)
    assert e.warnings == (
        "s/a/l/m1: 330 parts have no ideal cycle time (set ideal_cycle_s for the product); "
        "performance is unknown",
    )
    # per-part cycle times: NaN rows are unknown
    cycles = np.array([60, 60, 60, 60, 60, 60.0])
    e = machine_oee(
        fixture_timeline(),
        planned_busy(CAL, t(6), t(14)),
        (t(6), t(14)),
        total=total,
        ideal_cycle_s=cycles,
    )
    assert e.ideal_ms == 19_800 * S
    cycles[1] = np.nan
    e = machine_oee(
        fixture_timeline(),
        planned_busy(CAL, t(6), t(14)),
        (t(6), t(14)),
        total=total,
        ideal_cycle_s=cycles,
    )
    assert e.produced_without_ideal == 100 and e.performance is None
    with pytest.raises(DataError, match="ideal_cycle_s has 2 rows"):
        machine_oee(
            fixture_timeline(),
            planned_busy(CAL, t(6), t(14)),
            (t(6), t(14)),
            total=total,
            ideal_cycle_s=np.ones(2),
        )


def test_night_shift_across_midnight_machine_offline_whole_shift():
    start, end = t(22, d=9), t(6, d=10)
    # no data at all: the whole night is offline, OEE is 0, P and Q are undefined
    tl = detect_states(np.zeros(0), np.zeros(0), _th(), start_ms=start, end_ms=end)
    (w,) = shift_windows(CAL, start, end)
    assert w.shift == "night" and w.planned_ms == 8 * 3600 * S
    e = machine_oee(tl, w.busy, (w.start_ms, w.end_ms), ideal_cycle_s=60.0)
    assert e.stop_ms["offline"] == e.pbt_ms == 8 * 3600 * S
    assert (e.availability, e.performance, e.quality, e.oee) == (0.0, None, None, 0.0)
    # no timeline at all counts the same way (planned time without data is offline)
    e2 = machine_oee(StateTimeline.empty(), w.busy, (w.start_ms, w.end_ms))
    assert e2.stop_ms == e.stop_ms and e2.reason_ms == {"unassigned": e.pbt_ms}


def test_zero_planned_time_gives_no_ratios_and_keeps_unplanned_output():
    total, _ = fixture_counts()
    e = machine_oee(
        fixture_timeline(), np.zeros((0, 2)), (t(6), t(14)), total=total, ideal_cycle_s=60.0
    )
    assert e.pbt_ms == 0 and e.apt_ms == 0
    assert (e.availability, e.performance, e.quality, e.oee) == (None, None, None, None)
    assert e.unplanned_running_ms == 22_200 * S + 0  # running outside any plan is kept
    assert e.produced == 0 and e.produced_unplanned == 330  # nothing is dropped


def test_dst_night_shift_in_berlin():
    # 2026-03-28 22:00 CET → 06:00 CEST is 7 h; a machine running throughout
    start, end = t(22, d=28, mo=3), t(6, d=29, mo=3)
    ts = np.arange(start, end, 60 * S)
    tl = detect_states(
        ts,
        np.full(len(ts), 10.0),
        _th(),
        interval_ms=60 * S,
        offline_after_ms=300 * S,
        start_ms=start,
        end_ms=end,
    )
    (res,) = oee_by_shift(tl, shift_windows(CAL, start, end))
    assert res.elements.pbt_ms == res.elements.apt_ms == 7 * 3600 * S
    assert res.elements.availability == 1.0


def test_aggregation_sums_elements_never_averages_ratios():
    a = OeeElements(pbt_ms=100, apt_ms=90, stop_ms={"idle": 10}, produced=10, good=10, ideal_ms=90)
    b = OeeElements(pbt_ms=900, apt_ms=300, stop_ms={"off": 600}, produced=5, good=4, ideal_ms=150)
    ab = a + b
    assert ab.pbt_ms == 1000 and ab.apt_ms == 390 and ab.stop_ms == {"idle": 10, "off": 600}
    assert ab.availability == pytest.approx(0.39)
    assert ab.availability != pytest.approx((a.availability + b.availability) / 2)
    assert ab.quality == pytest.approx(14 / 15)
    assert ab.machines == 2
    assert OeeElements.total([a, b]) == ab
    by_machine = {"s1/a1/l1/m1": a, "s1/a1/l1/m2": b, "s1/a1/l2/m3": a, "s2/a1/l1/m1": b}
    lines = rollup(by_machine, "line")
    assert set(lines) == {"s1/a1/l1", "s1/a1/l2", "s2/a1/l1"}
    assert lines["s1/a1/l1"] == ab
    assert rollup(by_machine, "site")["s1"].pbt_ms == 1100
    assert rollup(by_machine, "area")["s1/a1"].machines == 3
    assert rollup(by_machine, "enterprise")["*"].pbt_ms == 2000


def test_reasons_split_stops_and_never_touch_running_time():
    tl = fixture_timeline()
    out = apply_reasons(
        tl,
        [
            StopAssignment(t(6, 30), t(7, 10), "waiting"),
            StopAssignment(t(10, 45), t(13, 15), "mechanical"),
        ],
        TREE,
    )
    rows = [
        (int(s), int(e), int(st), r)
        for s, e, st, r in zip(out.start_ms, out.end_ms, out.state, out.reasons(), strict=False)
    ]
    assert (t(7), t(7, 10), IDLE, "waiting") in rows
    assert (t(7, 10), t(7, 20), IDLE, None) in rows
    assert (t(10, 45), t(11), OFF, "mechanical") in rows
    assert (t(13), t(13, 15), OFFL, "mechanical") in rows
    assert all(r is None for s, e, st, r in rows if st == RUN)
    assert out.ms_by_state() == tl.ms_by_state()
    left = unassigned_stops(out)
    assert left.duration_ms.sum() == 10 * 60 * S + 45 * 60 * S + 15 * 60 * S
    with pytest.raises(DataError, match="stop assignment 0: reason 'nope' is not in"):
        apply_reasons(tl, [StopAssignment(t(7), t(8), "nope")], TREE)
    with pytest.raises(DataError, match="stop assignments 1 and 0 overlap"):
        apply_reasons(
            tl,
            [StopAssignment(t(8), t(9), "waiting"), StopAssignment(t(7), t(8, 30), "waiting")],
            TREE,
        )
    with pytest.raises(DataError, match="end_ms is not after"):
        apply_reasons(tl, [StopAssignment(t(8), t(8), "waiting")], TREE)
    assert apply_reasons(tl, [], TREE) is tl


def _th():
    from indunet.plant.config import Thresholds

    return Thresholds(off_below=1, running_above=5)


def test_overlap_ms():
    iv = np.array([[10, 20], [30, 40]])
    assert overlap_ms(np.array([0, 15, 25, 0]), np.array([12, 35, 28, 100]), iv).tolist() == [
        2,
        10,
        0,
        20,
    ]
    assert overlap_ms(np.array([0]), np.array([5]), np.zeros((0, 2))).tolist() == [0]


segments_st = st.lists(
    st.tuples(st.integers(1, 3600), st.sampled_from([OFF, IDLE, RUN, RUN, OFFL])),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    segs=segments_st,
    cuts=st.lists(st.integers(0, 40 * 3600), max_size=5),
    busy_pairs=st.lists(st.tuples(st.integers(0, 40 * 3600), st.integers(1, 7200)), max_size=6),
    good_share=st.floats(0, 1),
    fill=st.floats(0, 1),
)
def test_components_stay_in_unit_range_and_splitting_is_additive(
    segs, cuts, busy_pairs, good_share, fill
):
    lens = np.array([s[0] for s in segs]) * S
    ends = np.cumsum(lens)
    tl = StateTimeline(ends - lens, ends, np.array([s[1] for s in segs])).merged()
    end = int(ends[-1])
    busy = np.array([[a * S, a * S + b * S] for a, b in busy_pairs]).reshape(-1, 2)
    run_ms = machine_oee(tl, busy, (0, end)).apt_ms
    # valid inputs: parts that fit in the running time at a 10 s ideal cycle
    produced = int(run_ms / S / 10 * fill)
    ts = np.linspace(1, end, max(produced, 1) + 1).astype(np.int64)
    ts = np.unique(ts)
    # place the parts inside the planned time so they count
    total = counter_deltas(ts, np.arange(len(ts), dtype=float), CounterConfig(tag="p"))
    whole = machine_oee(tl, busy, (0, end), total=total, ideal_cycle_s=0.0)
    assert whole.apt_ms + whole.stop_total_ms == whole.pbt_ms
    for value in (whole.availability, whole.quality):
        assert value is None or 0.0 <= value <= 1.0
    e = OeeElements(
        pbt_ms=whole.pbt_ms,
        apt_ms=whole.apt_ms,
        produced=produced,
        good=int(produced * good_share),
        ideal_ms=produced * 10 * S,
    )
    for value in (e.availability, e.performance, e.quality, e.oee):
        assert value is None or 0.0 <= value <= 1.0 + 1e-12
    # any split of the range sums to the whole
    bounds = sorted({0, end, *[c * S for c in cuts if 0 < c * S < end]})
    parts = OeeElements.total(
        machine_oee(tl, busy, (lo, hi), total=total) for lo, hi in itertools.pairwise(bounds)
    )
    assert parts.pbt_ms == whole.pbt_ms and parts.apt_ms == whole.apt_ms
    assert {k: v for k, v in parts.stop_ms.items() if v} == {
        k: v for k, v in whole.stop_ms.items() if v
    }
    assert parts.produced == whole.produced
    assert parts.produced_unplanned == whole.produced_unplanned
    assert parts.unplanned_running_ms == whole.unplanned_running_ms


def _hour_running(parts_at_s: list[int], values: list[float]):
    """One hour, running throughout, a counter sampled at the given seconds."""
    t0 = t(6)
    tl = StateTimeline(np.array([t0]), np.array([t0 + 3_600 * S]), np.array([RUN]))
    ts = np.array([t0 + s * S for s in parts_at_s])
    total = counter_deltas(ts, np.array(values), CounterConfig(tag="parts_total"))
    busy = np.array([[t0, t0 + 3_600 * S]], dtype=np.int64)
    return tl, total, busy, (t0, t0 + 3_600 * S)


def test_a_part_begun_before_the_window_is_not_implausible():
    """61 parts of 60 s counted in an hour of running: the first was begun before the hour.

    Its ideal time (60 s) covers the excess (3,660 − 3,600 s), so performance is 100 % with a
    note, and OEE stays within [0, 1]; the figures stay plausible.
    """
    # a sample at 0 s with the counter at 100, then one part a minute from 0:30 (61 parts)
    secs = [0] + [30 + 60 * k for k in range(60)] + [3_599]
    values = [100.0] + [101.0 + k for k in range(60)] + [161.0]
    tl, total, busy, win = _hour_running(secs, values)
    e = machine_oee(tl, busy, win, total=total, ideal_cycle_s=60.0, machine="m1")
    assert e.produced == 61
    assert e.performance == 1.0 and 0.0 <= e.oee <= 1.0
    assert e.plausible and not e.implausible
    assert any("within the first count" in w for w in e.warnings)


def test_an_excess_beyond_the_first_count_stays_implausible():
    """The same hour with the ideal cycle at 62 s: 61 × 62 s = 3,782 s, 182 s over — more
    than the first part's 62 s, so the ideal cycle time is wrong: flagged, not capped."""
    secs = [0] + [30 + 60 * k for k in range(60)] + [3_599]
    values = [100.0] + [101.0 + k for k in range(60)] + [161.0]
    tl, total, busy, win = _hour_running(secs, values)
    e = machine_oee(tl, busy, win, total=total, ideal_cycle_s=62.0, machine="m1")
    assert e.performance == pytest.approx(61 * 62 / 3_600)
    assert not e.plausible
    assert [f.figure for f in e.implausible] == ["performance"]


def test_the_tolerance_is_the_first_counted_parts_ideal_time_per_product():
    """With an ideal cycle per counter row, the first row's cycle sets the tolerance."""
    secs = [0, 60, 3_599]
    # 10 parts at 60 s, then 50 parts: 60 parts, ideal 10 × 90 s + 50 × 58 s = 3,800 s
    values = [0.0, 10.0, 60.0]
    tl, total, busy, win = _hour_running(secs, values)
    cycles = np.array([np.nan, 90.0, 58.0])
    e = machine_oee(tl, busy, win, total=total, ideal_cycle_s=cycles, machine="m1")
    assert e.ideal_ms == 3_600 * S  # the 200 s excess is within the first count's 900 s
    assert e.performance == 1.0 and e.plausible
    cycles = np.array([np.nan, 10.0, 75.0])  # 100 s + 3,750 s: 250 s over, the first is 100 s
    e = machine_oee(tl, busy, win, total=total, ideal_cycle_s=cycles, machine="m1")
    assert e.performance == pytest.approx(3_850 / 3_600) and not e.plausible


@settings(max_examples=200, deadline=None)
@given(
    cycle=st.floats(min_value=1.0, max_value=600.0),
    deltas=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=30),
)
def test_performance_is_capped_only_within_the_first_count(cycle, deltas):
    """Invariant: performance is either at most 100 %, or flagged implausible."""
    n = len(deltas)
    secs = [0] + [int(3_599 * (k + 1) / n) for k in range(n)]
    values = list(np.cumsum([0.0, *deltas]))
    tl, total, busy, win = _hour_running(secs, values)
    e = machine_oee(tl, busy, win, total=total, ideal_cycle_s=cycle, machine="m1")
    if e.performance is not None and e.performance > 1.0:
        assert not e.plausible
        first = next(d for d in deltas if d > 0)
        assert sum(deltas) * cycle - 3_600 > first * cycle
    else:
        assert e.oee is None or 0.0 <= e.oee <= 1.0
