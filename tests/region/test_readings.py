"""Reading import: bad rows kept aside with reasons, corrections, formats, meter tags, real data."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from indunet.errors import DataError
from indunet.model import POINT_SCHEMA, PointBatch
from indunet.region.readings import MeterKind, daily_from_historian, daily_kwh, reading_files
from indunet.region.store import RegionStore
from indunet.store import open_historian
from tests.datasets import DATASETS
from tests.region.conftest import MAR1, REGISTRY, TODAY, fixture_settings, write

STEEL = DATASETS / "steel_industry" / "Steel_industry_data.csv.gz"

BAD = """enterprise_id,date,kwh
E1,2020-03-01,10
E1,2020-03-01,12
E2,2020-03-01,-5
E3,2020-03-01,9e12
NOPE,2020-03-01,5
E4,2020-02-30,5
E5,,5
E6,2020-03-01,lots
,2020-03-01,5
E6,2099-01-01,5
E1,2020-03-01,1,extra
E2,2020-03-02,7
"""


def test_bad_rows_are_kept_aside_and_reported(make_store, tmp_path: Path) -> None:
    store: RegionStore = make_store()
    store.import_registry(write(tmp_path / "reg.csv", REGISTRY), effective=TODAY)
    report = store.import_readings(write(tmp_path / "bad.csv", BAD), today=TODAY)
    assert report.rows == 12
    assert report.stored == 2  # E1 line 3 (the later duplicate) and E2 on 2 Mar
    assert report.stored + report.quarantined == report.rows
    assert report.reasons == {
        "duplicate (enterprise, date)": 1,
        "negative kwh": 1,
        "absurd kwh": 1,
        "unregistered enterprise": 1,
        "bad date": 2,
        "bad kwh": 1,
        "missing enterprise_id": 1,
        "future date": 1,
        "broken CSV line": 1,
    }
    rows, total = store.quarantine(kind="readings", limit=100)
    assert total == 10
    reasons = " | ".join(r["reason"] for r in rows)
    assert (
        "bad.csv:2: duplicate (enterprise, date): bad.csv:3 of the same file replaces it" in reasons
    )
    assert "bad.csv:4: field kwh: -5.0 is negative" in reasons
    assert "bad.csv:6: enterprise NOPE is not in the registry" in reasons
    assert "bad.csv:7: field date: 2020-02-30 is not a date" in reasons
    assert "bad.csv:8: field date: missing" in reasons
    assert "bad.csv:9: field kwh: lots is not a number" in reasons
    assert "line 12: broken CSV line" in reasons
    assert "absurd (limit 5e+07, setting region.max_daily_kwh)" in reasons
    kept = {
        r["enterprise_id"]: r["kwh"]
        for r in store.enterprises(MAR1, state="not_resumed", limit=10)[0].to_dicts()
    }
    assert kept["E1"] == 12.0  # the later duplicate won, nothing doubled


def test_parquet_and_directories(make_store, tmp_path: Path) -> None:
    store: RegionStore = make_store()
    store.import_registry(write(tmp_path / "reg.csv", REGISTRY), effective=TODAY)
    part = tmp_path / "readings" / "date=2020-03-01"
    part.mkdir(parents=True)
    pl.DataFrame({"enterprise_id": ["E1", "E2", "E1"], "kwh": [1.0, 2.0, -1.0]}).write_parquet(
        part / "part-0.parquet"
    )
    assert reading_files(tmp_path / "readings") == [part / "part-0.parquet"]
    report = store.import_readings(tmp_path / "readings", today=TODAY)
    assert (report.stored, report.quarantined) == (1, 2)
    assert report.reasons == {"duplicate (enterprise, date)": 1, "negative kwh": 1}
    assert report.examples[0].startswith("part-0.parquet:1: duplicate")
    assert store.stats()["readings"] == 1


def test_unusable_files(make_store, tmp_path: Path) -> None:
    store: RegionStore = make_store()
    with pytest.raises(DataError, match="missing column"):
        store.import_readings(write(tmp_path / "x.csv", "id,day,value\n1,2,3\n"), today=TODAY)
    with pytest.raises(DataError, match="no such file"):
        store.import_readings(tmp_path / "none.csv", today=TODAY)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="Parquet"):
        store.import_readings(tmp_path / "junk.parquet", today=TODAY)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.csv"):
        store.import_readings(tmp_path / "empty", today=TODAY)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text + "+00:00").timestamp() * 1000)


def test_daily_kwh_interval_counter_power() -> None:
    # 15-min interval kWh over two full UTC days: 96 × 1 kWh each day
    ts = np.arange(1, 193) * 900_000 + _ms("2020-03-01T00:00:00")
    out = daily_kwh(ts, np.ones(192), MeterKind.INTERVAL, tz="UTC")
    assert out.days.get_column("kwh").to_list() == [96.0, 96.0]
    assert out.days.get_column("coverage").to_list() == [1.0, 1.0]
    # a counter that restarts: 0,10,20 | 5 (reset) ,15 hourly within one day
    t = _ms("2020-03-01T01:00:00") + np.arange(5) * 3_600_000
    out = daily_kwh(t, np.array([0, 10, 20, 5, 15.0]), MeterKind.COUNTER, tz="UTC", min_coverage=0)
    assert out.days.get_column("kwh").to_list() == [35.0]  # 10 + 10 + 5 (after reset) + 10
    # 2 kW sampled every 10 min; the 09:50-13:00 hole is not filled: 20 h 50 min covered
    t = _ms("2020-03-01T00:00:00") + np.arange(0, 145) * 600_000
    keep = (t < _ms("2020-03-01T10:00:00")) | (t >= _ms("2020-03-01T13:00:00"))
    out = daily_kwh(t[keep], np.full(keep.sum(), 2.0), MeterKind.POWER, tz="UTC")
    assert out.days.height == 0 and out.incomplete.get_column("kwh")[0] == pytest.approx(
        2 * (20 + 50 / 60)
    )
    # Shanghai day boundaries: 23:30 UTC is the next local day
    out = daily_kwh(np.array([_ms("2020-03-01T15:30:00")]), np.array([5.0]), MeterKind.INTERVAL)
    assert out.incomplete.get_column("date").to_list() == [date(2020, 3, 1)]


def _steel() -> pl.DataFrame:
    raw = pl.read_csv(STEEL, encoding="utf8-lossy", columns=[0, 1, 7])
    raw.columns = ["date", "kwh", "nsm"]
    stamp = raw.get_column("date").str.to_datetime("%d/%m/%Y %H:%M")
    ends = stamp + pl.when(raw.get_column("nsm") == 0).then(pl.duration(days=1)).otherwise(
        pl.duration(days=0)
    )
    return raw.with_columns(ends.alias("end"), pl.col("date").str.slice(0, 10).alias("day"))


def test_real_steel_meter_gives_daily_kwh_that_sum_up(settings_factory, tmp_path: Path) -> None:
    """DAEWOO Steel 15-min kWh (UCI #851) → historian tag → daily kWh → region readings."""
    steel = _steel()
    ts = steel.select(pl.col("end").dt.replace_time_zone("Asia/Seoul").dt.epoch("ms")).to_series()
    batch = PointBatch(
        "steelco",
        pa.table(
            {
                "tag": ["gwangyang/plant/main/meter/usage_kwh"] * steel.height,
                "ts": ts.to_numpy(),
                "value": steel.get_column("kwh").cast(pl.Float64).to_numpy(),
                "text": pa.nulls(steel.height, pa.string()),
                "quality": np.zeros(steel.height, dtype=np.uint8),
            },
            schema=POINT_SCHEMA,
        ),
    )
    historian = open_historian(settings_factory())
    try:
        historian.write(batch, source="test")
        daily = daily_from_historian(
            historian, "steelco", ["gwangyang/plant/main/meter/usage_kwh"],
            ts.min() - 1, ts.max() + 1, MeterKind.INTERVAL, tz="Asia/Seoul",
        )  # fmt: skip
    finally:
        historian.close()
    expected = (
        steel.group_by("day")
        .agg(pl.col("kwh").sum())
        .with_columns(pl.col("day").str.to_date("%d/%m/%Y"))
    )
    got = daily.days.join(expected.rename({"day": "date", "kwh": "want"}), on="date")
    assert daily.days.height == 365 and daily.incomplete.height == 0 and got.height == 365
    assert np.allclose(got.get_column("kwh").to_numpy(), got.get_column("want").to_numpy())
    assert daily.days.get_column("kwh").sum() == pytest.approx(steel.get_column("kwh").sum())
    # the plant as one enterprise, baseline January 2018: it runs all year
    settings = fixture_settings(baseline_start=date(2018, 1, 1), baseline_end=date(2018, 1, 31))
    with RegionStore(settings, tmp_path / "steel.duckdb") as store:
        reg = "enterprise_id,name,province,city,industry,size\nKR1,Steel,Hubei,Wuhan,C31,large\n"
        store.import_registry(write(tmp_path / "r.csv", reg), effective=date(2019, 1, 1))
        table = pa.table(
            {
                "enterprise_id": ["KR1"] * 365,
                "date": daily.days.get_column("date").to_arrow(),
                "kwh": daily.days.get_column("kwh").to_arrow(),
            }
        )
        report = store.load_readings(table, source="historian", today=date(2019, 1, 1))
        assert (report.stored, report.quarantined) == (365, 0)
        trend, _ = store.trend(date(2018, 1, 1), date(2018, 12, 31), [])
    assert trend.get_column("reporting").to_list() == [1] * 365
    # the plant idles on Sundays (below θ = 0.5 of its January mean) and works on weekdays
    by_weekday = trend.group_by(pl.col("day").dt.weekday().alias("wd")).agg(pl.col("rate").mean())
    rates = dict(by_weekday.iter_rows())
    assert all(rates[wd] > 80 for wd in (1, 2, 3, 4, 5)) and rates[7] < 20
