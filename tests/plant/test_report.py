"""OEE and energy reports from stored timelines: a hand-checked line of two machines."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from indunet.errors import DataError
from indunet.plant.report import energy_report, oee_report, stops_report
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from tests.plant.plant_data import M1, M2, plant, write

H = 3_600_000


def at(hh: float) -> int:
    """2026-06-01 (a Monday) at hh UTC, in ms."""
    return int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000 + hh * H)


def tl(*rows: tuple[float, float, int]) -> StateTimeline:
    return StateTimeline(
        np.array([at(a) for a, _, _ in rows], np.int64),
        np.array([at(b) for _, b, _ in rows], np.int64),
        np.array([s for _, _, s in rows], np.int8),
    )


@pytest.fixture
def line(historian):
    """m1 and m2 on line s1/press/l1, early 06–14 (break 10:00–10:30) and late 14–22 shifts."""
    cfg = plant(shifts=True)
    store = PlantStore(historian, cfg)
    off, idle, run = 0, 1, 2
    store.save_segments("demo", M1, tl((6, 9, run), (9, 10, idle), (10, 16, run)))
    store.save_segments("demo", M2, tl((6, 8, off), (8, 14, run)))
    write(historian, f"{M1}/parts_total", [at(6), at(9), at(14), at(16)], [0, 1000, 2300, 3000])
    write(historian, f"{M1}/scrap_total", [at(6), at(14), at(16)], [0, 50, 60])
    write(historian, f"{M2}/parts_total", [at(6), at(14)], [100, 1600])
    return store, cfg


def test_line_oee_sums_elements_per_shift(historian, line):
    store, cfg = line
    r = oee_report(store, historian, cfg, "demo", "s1/press/l1", at(6), at(22), by="shift")
    early, late = r["groups"]
    assert (early["label"], late["label"]) == ("2026-06-01 early", "2026-06-01 late")
    # early: PBT 7.5 h per machine; APT m1 3 h + 3.5 h, m2 2 h + 3.5 h
    assert early["pbt_ms"] == 2 * 27_000_000
    assert early["apt_ms"] == 23_400_000 + 19_800_000
    assert early["stop_ms"] == {"idle": 3_600_000, "off": 7_200_000, "offline": 0}
    assert (early["produced"], early["scrap"], early["good"]) == (3800, 50, 3750)
    assert early["ideal_ms"] == 38_000_000
    assert early["availability"] == pytest.approx(0.8)
    assert early["oee"] == pytest.approx(38_000 * 3750 / (54_000 * 3800))
    # late: m1 runs 2 h then has no data, m2 has none at all → offline
    assert late["pbt_ms"] == 2 * 28_800_000
    assert late["apt_ms"] == 7_200_000
    assert late["stop_ms"]["offline"] == 21_600_000 + 28_800_000
    assert late["reason_ms"] == {"unassigned": 50_400_000}
    assert (late["produced"], late["good"]) == (700, 690)
    assert late["oee"] == pytest.approx(0.125 * 7000 / 7200 * 690 / 700)
    total = r["total"]
    # totals are sums of the elements, never an average of the shifts' ratios
    assert total["pbt_ms"] == early["pbt_ms"] + late["pbt_ms"]
    assert total["apt_ms"] == early["apt_ms"] + late["apt_ms"]
    assert total["unplanned_running_ms"] == 2 * 1_800_000  # both ran through the break
    assert total["good"] == 4440 and total["machines"] == 2
    assert total["oee"] == pytest.approx(45_000_000 / 111_600_000 * 4440 / 4500)
    assert total["oee"] != pytest.approx((early["oee"] + late["oee"]) / 2)
    assert r["lines"]["s1/press/l1"]["apt_ms"] == total["apt_ms"]
    assert set(r["machines"]) == {M1, M2}
    # one machine alone, no grouping
    one = oee_report(store, historian, cfg, "demo", M2, at(6), at(22))
    assert one["groups"] == [] and one["total"]["produced"] == 1500
    assert one["total"]["performance"] == pytest.approx(15_000 / 19_800)


def test_open_segment_from_a_watcher_is_added(historian, line):
    store, cfg = line
    tail = {M2: tl((14, 15, 2))}
    r = oee_report(
        store,
        historian,
        cfg,
        "demo",
        "s1",
        at(14),
        at(22),
        open_part=lambda m: tail.get(m, StateTimeline.empty()),
    )
    assert r["total"]["apt_ms"] == 2 * H + 1 * H


def test_bad_scope_and_ranges_are_refused(historian, line):
    store, cfg = line
    with pytest.raises(DataError, match="no configured machine under scope 's2'"):
        oee_report(store, historian, cfg, "demo", "s2", at(6), at(22))
    with pytest.raises(DataError, match="no configured machine"):
        oee_report(store, historian, cfg, "demo", "s1/pre", at(6), at(22))  # whole segments
    with pytest.raises(DataError, match="must be after start"):
        oee_report(store, historian, cfg, "demo", "s1", at(22), at(6))
    with pytest.raises(DataError, match="over 400 days"):
        oee_report(store, historian, cfg, "demo", "s1", at(0), at(24 * 500))
    with pytest.raises(DataError, match="by must be"):
        oee_report(store, historian, cfg, "demo", "s1", at(6), at(7), by="week")  # type: ignore[arg-type]


def test_stops_and_unassigned_stops(historian, line):
    store, cfg = line
    stops = stops_report(store, cfg, "demo", "s1", at(6), at(22))
    assert [(s["machine"], s["state"], s["duration_ms"]) for s in stops] == [
        (M1, "idle", H),
        (M2, "off", 2 * H),
    ]
    store.assign_reason("demo", M1, at(9), "waiting", now_ms=at(23))
    open_stops = stops_report(store, cfg, "demo", "s1", at(6), at(22), unassigned=True)
    assert [s["machine"] for s in open_stops] == [M2]
    r = oee_report(store, historian, cfg, "demo", M1, at(6), at(14))
    assert r["total"]["reason_ms"] == {"waiting": H}


def test_energy_per_machine_bucket_idle_share_and_co2(historian):
    cfg = plant(M1)
    store = PlantStore(historian, cfg)
    t0 = at(8)
    ts = t0 + np.arange(3600, dtype=np.int64) * 1000
    kw = np.where(np.arange(3600) < 1800, 10.0, 2.0)
    write(historian, f"{M1}/power_kw", ts, kw)
    write(historian, f"{M1}/parts_total", [t0, int(ts[-1])], [0, 100])
    write(historian, f"{M1}/scrap_total", [t0, int(ts[-1])], [0, 4])
    store.save_segments("demo", M1, tl((8, 8.5, 2), (8.5, 9, 1)))
    r = energy_report(store, historian, cfg, "demo", "s1", at(8), at(9), bucket="hour")
    kwh = (1799 * 10 + 6 + 1799 * 2) / 3600  # trapezoid over 1 s samples
    m = r["machines"][M1]
    assert m["kwh"] == pytest.approx(kwh)
    assert m["running_kwh"] == pytest.approx((1799 * 10 + 6) / 3600)
    assert m["idle_kwh"] == pytest.approx(1799 * 2 / 3600)
    assert m["good_parts"] == 96
    assert m["kwh_per_good_part"] == pytest.approx(kwh / 96)
    assert m["co2_kg"] == pytest.approx(kwh * 0.5)
    assert [b["kwh"] for b in r["buckets"]] == [pytest.approx(kwh)]
    assert r["lines"]["s1/press/l1"]["kwh"] == pytest.approx(kwh)
    assert r["sites"]["s1"]["kwh"] == pytest.approx(kwh)
    # quarter-hour split: day buckets and a 4-way split of the same hour sum to the total
    day = energy_report(store, historian, cfg, "demo", M1, at(0), at(24), bucket="day")
    assert sum(b["kwh"] for b in day["buckets"]) == pytest.approx(kwh)
    with pytest.raises(DataError, match="bucket must be"):
        energy_report(store, historian, cfg, "demo", M1, at(0), at(1), bucket="week")  # type: ignore[arg-type]
