"""Energy: trapezoid integration, meter rollover, local-time roll-ups, idle energy, CO2."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from indunet.errors import DataError
from indunet.plant.config import Shift, ShiftCalendar
from indunet.plant.energy import (
    EnergySummary,
    bucket_edges,
    co2_kg,
    energy_by_bucket,
    energy_by_shift,
    energy_by_state,
    energy_from_intervals,
    energy_from_meter,
    energy_from_power,
    energy_summary,
    kwh_per_part,
)
from indunet.plant.shifts import shift_windows, to_ms
from indunet.plant.states import StateTimeline
from tests.datasets import DATASETS

STEEL = str(DATASETS / "steel_industry" / "Steel_industry_data.csv.gz")
H = 3_600_000
BERLIN = ZoneInfo("Europe/Berlin")


def test_trapezoid_on_a_ramp_and_gaps_not_bridged():
    ts = np.array([0, H, 2 * H, 5 * H, 6 * H])
    kw = np.array([0.0, 10.0, 10.0, 4.0, 4.0])
    p = energy_from_power(ts, kw, max_gap_ms=H)
    assert p.kwh.tolist() == [5.0, 10.0, 4.0]  # the 3 h gap is unknown, not 21 kWh
    assert p.unmetered_ms == 3 * H
    assert p.total_kwh == 19.0
    assert p.between(np.array([0]), np.array([H // 2])).tolist() == [2.5]
    nan = energy_from_power(ts, np.array([0, np.nan, 10, 10, 10.0]), max_gap_ms=10 * H)
    assert nan.total_kwh == 30 + 10 and nan.unmetered_ms == 2 * H
    with pytest.raises(DataError, match=r"m1 power: row 2 field ts"):
        energy_from_power(np.array([0, 5, 5]), np.ones(3), max_gap_ms=10, machine="m1")


def test_meter_rollover_and_backwards_meter():
    ts = np.arange(5) * H
    p = energy_from_meter(
        ts,
        np.array([99_990, 99_998, 6, 10, 10.0]),
        rollover_kwh=100_000,
        machine="m1",
        field_name="kwh_total",
    )
    assert p.kwh.tolist() == [8, 8, 4, 0]
    assert [(a.row, a.kind) for a in p.anomalies] == [(2, "wrap")]
    p = energy_from_meter(ts, np.array([50, 60, 40, 45, np.nan]), field_name="kwh_total")
    # below its high-water mark (60) the meter counts nothing: climbing back is not new energy
    assert p.kwh.tolist() == [10, 0, 0]
    assert [(a.row, a.kind) for a in p.anomalies] == [
        (2, "backwards"),
        (3, "backwards"),
        (4, "missing"),
    ]
    assert "row 2: meter went back from 60 to 40 kWh" in p.anomalies[0].message
    # a meter bridges data gaps: the energy is still counted
    p = energy_from_meter(np.array([0, 10 * H]), np.array([0, 100.0]))
    assert p.total_kwh == 100


def test_hour_and_day_buckets_follow_berlin_dst():
    start = to_ms(datetime(2026, 3, 29, tzinfo=BERLIN))
    end = to_ms(datetime(2026, 3, 30, tzinfo=BERLIN))
    assert len(bucket_edges(start, end, "hour", "Europe/Berlin")) - 1 == 23
    start = to_ms(datetime(2026, 10, 25, tzinfo=BERLIN))
    end = to_ms(datetime(2026, 10, 26, tzinfo=BERLIN))
    edges = bucket_edges(start, end, "hour", "Europe/Berlin")
    assert len(edges) - 1 == 25 and np.all(np.diff(edges) == H)
    ts = np.arange(start, end + 1, 60_000)
    p = energy_from_power(ts, np.full(len(ts), 6.0), max_gap_ms=120_000)
    _, day = energy_by_bucket(p, start, end, "day", "Europe/Berlin")
    assert day.tolist() == pytest.approx([6.0 * 25])
    _, hours = energy_by_bucket(p, start, end, "hour", "Europe/Berlin")
    assert hours == pytest.approx(np.full(25, 6.0))


def test_energy_by_state_idle_energy_per_part_and_co2():
    ts = np.arange(0, 4 * H + 1, 60_000)
    kw = np.where(ts < 2 * H, 10.0, 2.0)
    kw[ts >= 3 * H] = 0.0
    p = energy_from_power(ts, kw, max_gap_ms=120_000)
    tl = StateTimeline(
        np.array([0, 2 * H, 3 * H]), np.array([2 * H, 3 * H, 4 * H]), np.array([2, 1, 0])
    )
    by = energy_by_state(p, tl)
    assert by["running"] == pytest.approx(119 / 60 * 10 + 6 / 60)  # 119 min at 10 kW + ramp
    assert by["idle"] + by["off"] + by["running"] + by["unknown"] == pytest.approx(p.total_kwh)
    assert by["offline"] == 0
    s = energy_summary(p, (0, 4 * H), timeline=tl, good_parts=50, grid_kg_co2_per_kwh=0.5)
    assert s.kwh == pytest.approx(p.total_kwh)
    assert s.non_productive_kwh == pytest.approx(by["idle"] + by["off"])
    assert s.kwh_per_good_part == pytest.approx(p.total_kwh / 50)
    assert s.co2_kg == pytest.approx(p.total_kwh * 0.5)
    assert (s + s).kwh == pytest.approx(2 * s.kwh)
    assert EnergySummary().kwh_per_good_part is None
    assert kwh_per_part(10, 0) is None
    with pytest.raises(DataError, match="must not be negative"):
        co2_kg(1, -0.1)


def test_interval_energy_refuses_bad_rows():
    with pytest.raises(DataError, match="row 1 field kwh"):
        energy_from_intervals(np.array([900_000, 1_800_000]), np.array([1, -2.0]), 900_000)
    with pytest.raises(DataError, match="intervals overlap"):
        energy_from_intervals(np.array([900_000, 1_000_000]), np.array([1, 2.0]), 900_000)


def _steel() -> pd.DataFrame:
    df = pd.read_csv(STEEL, encoding="utf-8-sig")
    end = pd.to_datetime(df["date"], format="%d/%m/%Y %H:%M")
    end = end + pd.to_timedelta((df["NSM"] == 0).astype(int), unit="D")  # 24:00 quirk
    df["end_local"] = end
    return df


def test_steel_plant_rollups_match_the_source_sums():
    """DAEWOO Steel, 2018, 15-min kWh: day, hour and shift roll-ups in Asia/Seoul."""
    df = _steel()
    seoul = ZoneInfo("Asia/Seoul")
    end_ms = (
        df["end_local"]
        .dt.tz_localize("Asia/Seoul")
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
        .to_numpy()
        .astype("datetime64[ms]")
        .astype(np.int64)
    )
    p = energy_from_intervals(end_ms, df["Usage_kWh"].to_numpy(float), 900_000)
    start = to_ms(datetime(2018, 1, 1, tzinfo=seoul))
    stop = to_ms(datetime(2019, 1, 1, tzinfo=seoul))
    _day_start, day_kwh = energy_by_bucket(p, start, stop, "day", "Asia/Seoul")
    src = df.groupby((df["end_local"] - pd.Timedelta(minutes=15)).dt.date)["Usage_kWh"].sum()
    assert len(day_kwh) == 365 == len(src)
    assert day_kwh == pytest.approx(src.to_numpy(), abs=1e-6)
    _, hour_kwh = energy_by_bucket(p, start, stop, "hour", "Asia/Seoul")
    src_h = df.groupby((df["end_local"] - pd.Timedelta(minutes=15)).dt.floor("h"))[
        "Usage_kWh"
    ].sum()
    assert hour_kwh == pytest.approx(src_h.to_numpy(), abs=1e-6)
    assert p.total_kwh == pytest.approx(df["Usage_kWh"].sum())
    # two 12 h shifts starting 09:00 (Light_Load covers 00:00–09:00 in the source)
    cal = ShiftCalendar(
        timezone="Asia/Seoul",
        shifts=[
            Shift(name="day", start="09:00", end="21:00"),
            Shift(name="night", start="21:00", end="09:00"),
        ],
    )
    windows = shift_windows(cal, start, stop)
    per_shift = energy_by_shift(p, windows)
    assert sum(per_shift) == pytest.approx(df["Usage_kWh"].sum())
    local_hour = (df["end_local"] - pd.Timedelta(minutes=15)).dt.hour
    day_src = df.loc[(local_hour >= 9) & (local_hour < 21), "Usage_kWh"].sum()
    assert sum(
        k for w, k in zip(windows, per_shift, strict=False) if w.shift == "day"
    ) == pytest.approx(day_src)
    grid = df["CO2(tCO2)"].sum() * 1000 / df["Usage_kWh"].sum()
    print(
        f"\nsteel 2018: {p.total_kwh:,.1f} kWh, day shifts {day_src:,.1f} kWh, "
        f"source CO2 column implies {grid:.3f} kg CO2/kWh"
    )
    assert co2_kg(p.total_kwh, grid) == pytest.approx(df["CO2(tCO2)"].sum() * 1000)
