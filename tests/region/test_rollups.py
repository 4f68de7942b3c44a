"""Stored roll-ups and the ``ent_dim`` fast path against the reference SQL, recomputed from scratch.

The reference is `counts_sql` (registry × readings × baselines × θ, the text the docs port to
Trino/Spark); the store computes roll-ups through `dim_counts_sql` and keeps them up to date
incrementally. After every import (new days, late corrections, a correction inside the baseline
period, registry moves with history) both must give exactly the same counts.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from indunet.region.rate import COUNT_COLUMNS, ROLLUP_KEYS, Filters, Rule, counts_sql
from indunet.region.settings import RegionSettings
from indunet.region.simulate import simulate_nation
from indunet.region.store import RegionStore

TODAY = date(2020, 4, 30)
DEC = [date(2019, 12, 1) + timedelta(days=i) for i in range(10)]
MAR = [date(2020, 3, 1) + timedelta(days=i) for i in range(6)]
KEYS = ["day", *ROLLUP_KEYS]


def _sorted(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    frame = frame.with_columns(
        [pl.col(c).cast(pl.Float64 if c.endswith("kwh") else pl.Int64) for c in COUNT_COLUMNS]
    )
    return frame.select([*keys, *COUNT_COLUMNS]).sort(keys, nulls_last=True)


def _reference(store: RegionStore, days: list[date], rule: Rule | None = None) -> pl.DataFrame:
    """Counts at the roll-up grain from the reference SQL, with fresh baselines and θ."""
    rule = rule or store.rule
    store._compute_baselines("ref_baselines", rule, temp=True)
    store._write_thetas("ref_thetas", rule, temp=True)
    sql = counts_sql(list(ROLLUP_KEYS), "TRUE", baselines="ref_baselines", thetas="ref_thetas")
    frame = store._pl(sql, {"days": days, "lo": min(days), "hi": max(days)})
    return _sorted(frame.filter(pl.col("enterprises") > 0), KEYS)


def _stored(store: RegionStore) -> pl.DataFrame:
    frame = store._pl("SELECT * FROM rollups")
    return _sorted(frame.filter(pl.col("enterprises") > 0), KEYS)


def _assert_exact(store: RegionStore) -> None:
    days = store.days()
    stored, ref = _stored(store), _reference(store, days)
    assert stored.height == ref.height > 0
    assert stored.drop([c for c in COUNT_COLUMNS if c.endswith("kwh")]).equals(
        ref.drop([c for c in COUNT_COLUMNS if c.endswith("kwh")])
    )
    for c in ("kwh", "baseline_kwh"):
        assert np.allclose(stored[c].to_numpy(), ref[c].to_numpy(), rtol=1e-9, atol=1e-6)


def _readings(nation, days: list[date], scale: float = 1.0, share: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = []
    for d in days:
        f = nation.readings(d)
        if share < 1:
            f = f.filter(pl.Series(rng.random(f.height) < share))
        frames.append(f.with_columns(pl.lit(d).alias("date"), pl.col("kwh") * scale))
    return pl.concat(frames).select("enterprise_id", "date", "kwh").to_arrow()


@pytest.fixture
def nation_store(tmp_path: Path):
    nation = simulate_nation(400, seed=11)
    store = RegionStore(
        RegionSettings(baseline_min_days=5, theta_by_industry={"C31": 0.5, "C": 0.35}),
        tmp_path / "region.duckdb",
    )
    nation.registry.write_parquet(tmp_path / "registry.parquet")
    store.import_registry(tmp_path / "registry.parquet", effective=date(2019, 11, 1))
    store.load_readings(_readings(nation, DEC + MAR), source="all", today=TODAY)
    yield nation, store
    store.close()


def test_roll_ups_equal_the_reference_after_corrections_and_moves(
    nation_store, tmp_path: Path
) -> None:
    nation, store = nation_store
    _assert_exact(store)
    # late corrections on two March days (a third of the enterprises, kWh halved)
    report = store.load_readings(
        _readings(nation, MAR[2:4], 0.5, 0.3, seed=1), source="late", today=TODAY
    )
    assert report.replaced > 0 and report.rollup_days == 2 and not report.baselines_recomputed
    _assert_exact(store)
    # a new day, and a correction in the baseline period: every day is recomputed
    store.load_readings(_readings(nation, [MAR[-1] + timedelta(days=1)]), source="new", today=TODAY)
    report = store.load_readings(
        _readings(nation, DEC[:3], 3.0, 0.5, seed=2), source="dec", today=TODAY
    )
    assert report.baselines_recomputed
    _assert_exact(store)
    # 30 enterprises move to Hubei from 3 March (new registry versions)
    moved = (
        nation.registry.filter(pl.col("province") != "Hubei")
        .head(30)
        .with_columns(
            pl.lit("Hubei").alias("province"),
            pl.lit("Wuhan").alias("city"),
            pl.lit(date(2020, 3, 3)).alias("valid_from"),
        )
    )
    moved.write_parquet(tmp_path / "moved.parquet")
    reg = store.import_registry(tmp_path / "moved.parquet", effective=TODAY)
    assert reg.changed == 30 and reg.errors == []
    _assert_exact(store)
    march = store._pl("SELECT * FROM rollups WHERE day = DATE '2020-03-05' AND city = 'Wuhan'")
    assert march["enterprises"].sum() >= 30


@pytest.mark.parametrize(
    ("by", "filters"),
    [
        ([], Filters()),
        (["province"], Filters()),
        (["province", "industry", "size"], Filters()),
        (["city"], Filters.parse(province="Guangdong,Jiangsu")),
        (["section", "above_designated_size"], Filters.parse(size="small,micro")),
        (["size"], Filters.parse(industry="C", above_designated_size=True)),
    ],
)
def test_live_fast_path_equals_reference(nation_store, by, filters) -> None:
    _, store = nation_store
    days = MAR[1:4]
    for rule in (
        store.rule,
        Rule.from_settings(store.settings, theta=0.6),
        Rule.from_settings(store.settings, baseline=(date(2019, 12, 3), date(2019, 12, 9))),
    ):
        live, source = store.counts(days, by, filters, rule, live=True)
        assert source == "live"
        base, thetas, _ = store._tables_for(rule)
        where, params = filters.where("e")
        from indunet.region.rate import group_columns

        cols = group_columns(by)
        ref = store._pl(
            counts_sql(cols, where, baselines=base, thetas=thetas),
            {**params, "days": days, "lo": min(days), "hi": max(days)},
        )
        keys = ["day", *cols]
        ref = _sorted(ref.group_by(keys).agg([pl.col(c).sum() for c in COUNT_COLUMNS]), keys)
        live = _sorted(live, keys)
        assert live.drop(["kwh", "baseline_kwh"]).equals(ref.drop(["kwh", "baseline_kwh"]))
        assert np.allclose(live["kwh"].to_numpy(), ref["kwh"].to_numpy())
        if rule == store.rule:
            stored, _ = store.counts(days, by, filters, rule)
            stored = _sorted(stored, keys)
            assert stored.drop(["kwh", "baseline_kwh"]).equals(ref.drop(["kwh", "baseline_kwh"]))


def test_reopening_an_old_file_builds_the_dimension(nation_store, tmp_path: Path) -> None:
    _, store = nation_store
    before = store.rate(MAR[2], ["province"], live=True)[0]
    store._sql("DELETE FROM ent_dim")
    store.close()
    again = RegionStore(store.settings, store.path)
    try:
        assert again._sql("SELECT count(*) FROM ent_dim").fetchone()[0] == 400
        assert again.rate(MAR[2], ["province"], live=True)[0].equals(before)
    finally:
        again.close()
