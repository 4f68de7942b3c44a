"""The hand-checked fixture (see conftest) with exact expected rates, history and corrections."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indunet.errors import DataError
from indunet.region.rate import Filters, Rule
from indunet.region.store import RegionStore
from tests.region.conftest import CORRECTION, MAR1, MAR2, REGISTRY, TODAY, fixture_settings, write


def _one(store: RegionStore, day: date, **kw) -> dict:
    frame, _ = store.rate(day, [], **kw)
    return frame.to_dicts()[0]


def test_national_rates_match_hand_counts(loaded: RegionStore) -> None:
    mar1 = _one(loaded, MAR1)
    assert (mar1["enterprises"], mar1["reporting"], mar1["resumed"]) == (6, 3, 1)
    assert (mar1["unknown"], mar1["no_reading"], mar1["no_baseline"]) == (3, 1, 2)
    assert mar1["rate"] == pytest.approx(100 / 3)
    assert mar1["production_index"] == pytest.approx(133 / 310)
    mar2 = _one(loaded, MAR2)
    assert (mar2["reporting"], mar2["resumed"], mar2["stopped"]) == (4, 2, 2)
    assert mar2["rate"] == pytest.approx(50.0)
    assert mar2["change_pp"] == pytest.approx(50 - 100 / 3)
    assert mar2["production_index"] == pytest.approx(572 / 1310)


def test_late_correction_replaces_and_recomputes_only_that_day(
    loaded: RegionStore, tmp_path: Path
) -> None:
    report = loaded.import_readings(write(tmp_path / "fix.csv", CORRECTION), today=TODAY)
    assert (report.stored, report.replaced, report.rollup_days) == (1, 1, 1)
    assert not report.baselines_recomputed
    mar2 = _one(loaded, MAR2)
    assert (mar2["resumed"], mar2["rate"]) == (3, 75.0)
    assert mar2["production_index"] == pytest.approx(575 / 1310)
    assert _one(loaded, MAR1)["rate"] == pytest.approx(100 / 3)  # untouched


def test_by_province_and_change(loaded: RegionStore, tmp_path: Path) -> None:
    loaded.import_readings(write(tmp_path / "fix.csv", CORRECTION), today=TODAY)
    frame, source = loaded.rate(MAR2, ["province"])
    rows = {r["province"]: r for r in frame.to_dicts()}
    assert source == "stored"
    assert (rows["Guangdong"]["rate"], rows["Guangdong"]["change_pp"]) == (50.0, 0.0)
    assert (rows["Hubei"]["rate"], rows["Hubei"]["change_pp"]) == (100.0, 100.0)
    assert rows["Hubei"]["enterprises"] == 3 and rows["Hubei"]["no_baseline"] == 1


def test_theta_per_industry_and_override(loaded: RegionStore) -> None:
    # E2 (C31, θ 0.5) used 80 of 200 on 1 Mar: stopped; with θ 0.3 everywhere it is resumed
    assert _one(loaded, MAR1)["resumed"] == 1
    plain = Rule(theta=0.3, baseline_min_days=2)
    row = _one(loaded, MAR1, rule=plain)
    assert row["resumed"] == 2
    assert loaded.rate(MAR1, [], rule=plain)[1] == "live"


def test_stored_and_live_agree(loaded: RegionStore) -> None:
    for by in ([], ["province"], ["city", "size"], ["industry"], ["section"]):
        stored, _ = loaded.rate(MAR2, by)
        live, src = loaded.rate(MAR2, by, live=True)
        assert src == "live"
        assert (
            stored.drop("kwh", "baseline_kwh").to_dicts()
            == live.drop("kwh", "baseline_kwh").to_dicts()
        )


def test_filters_and_trend(loaded: RegionStore) -> None:
    row = _one(loaded, MAR2, filters=Filters.parse(province="湖北", size="large"))
    assert (row["enterprises"], row["resumed"]) == (1, 1)
    trend, _ = loaded.trend(MAR1, MAR2, ["province"])
    assert trend.height == 4
    with pytest.raises(Exception, match="before"):
        loaded.trend(MAR2, MAR1, [])


def test_drill_down_and_watchlist(loaded: RegionStore, tmp_path: Path) -> None:
    loaded.import_readings(write(tmp_path / "fix.csv", CORRECTION), today=TODAY)
    stopped, total = loaded.enterprises(MAR2)
    assert total == 1 and stopped.get_column("enterprise_id").to_list() == ["E1"]
    unknown, _ = loaded.enterprises(MAR2, state="unknown")
    reasons = dict(zip(unknown["enterprise_id"], unknown["unknown_because"], strict=True))
    assert reasons == {"E4": "no baseline", "E6": "no reading"}
    (key,) = loaded.watchlist(MAR2)
    assert key["enterprise_id"] == "E3" and key["state"] == "resumed"
    assert (key["suppliers"], key["suppliers_stopped"], key["suppliers_unknown"]) == (3, 1, 1)
    assert "is back but 2 of its 3 suppliers are not back" in key["summary"]
    text = loaded.headline(MAR2)
    assert text.startswith("2020-03-02: Resumption 75.0 %, +41.7 points (3 of 4 reporting")


def test_registry_history_moves_an_enterprise(loaded: RegionStore, tmp_path: Path) -> None:
    moved = REGISTRY.splitlines()[0] + ",valid_from\n"
    moved += "E1,Pearl Electronics,Guangdong,Guangzhou,Tianhe,C3911,small,false,,,false,,E3,"
    moved += "2020-03-02\n"
    report = loaded.import_registry(write(tmp_path / "move.csv", moved), effective=TODAY)
    assert (report.changed, report.new) == (1, 0)
    versions = [r for r in loaded.registry(current=False) if r["enterprise_id"] == "E1"]
    assert [(v["city"], v["valid_from"], v["valid_to"]) for v in versions] == [
        ("Shenzhen", None, date(2020, 3, 2)),
        ("Guangzhou", date(2020, 3, 2), None),
    ]
    cities = {
        (r["day"], r["city"]): r["enterprises"]
        for r in loaded.trend(MAR1, MAR2, ["city"])[0].to_dicts()
    }
    assert cities[(MAR1, "Shenzhen")] == 2 and (MAR1, "Guangzhou") not in cities
    assert cities[(MAR2, "Shenzhen")] == 1 and cities[(MAR2, "Guangzhou")] == 1
    again = loaded.import_registry(write(tmp_path / "move2.csv", moved), effective=TODAY)
    assert (again.changed, again.unchanged) == (0, 1)
    stored, live = loaded.rate(MAR2, ["city"])[0], loaded.rate(MAR2, ["city"], live=True)[0]
    assert (
        stored.select("city", "enterprises", "rate").to_dicts()
        == live.select("city", "enterprises", "rate").to_dicts()
    )


def test_export_parquet_partitioned_by_date(loaded: RegionStore, tmp_path: Path) -> None:
    counts = loaded.export_parquet(tmp_path / "out")
    assert counts["readings"] == 19
    parts = sorted(p.parent.name for p in (tmp_path / "out" / "readings").rglob("*.parquet"))
    assert parts[0] == "date=2019-12-01" and "date=2020-03-02" in parts


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kwh=st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), min_size=1, max_size=8),
    base=st.lists(st.floats(min_value=1, max_value=1000), min_size=8, max_size=8),
    province=st.sampled_from(["Hubei", "Guangdong", "Tibet"]),
)
def test_silent_enterprise_never_changes_the_resumed_share(
    tmp_path_factory: pytest.TempPathFactory, kwh: list[float], base: list[float], province: str
) -> None:
    d = tmp_path_factory.mktemp("prop")
    header = "enterprise_id,name,province,city,industry,size\n"
    reg = "".join(f"P{i},F{i},Hubei,Wuhan,C36,small\n" for i in range(len(kwh)))
    lines = ["enterprise_id,date,kwh"]
    for i, k in enumerate(kwh):
        lines += [
            f"P{i},2019-12-01,{base[i]}",
            f"P{i},2019-12-02,{base[i]}",
            f"P{i},2020-03-01,{k}",
        ]
    with RegionStore(fixture_settings(), d / "r.duckdb") as store:
        store.import_registry(write(d / "reg.csv", header + reg), effective=TODAY)
        store.import_readings(write(d / "x.csv", "\n".join(lines) + "\n"), today=TODAY)
        before = _one(store, MAR1)
        extra = header + f"SILENT,Quiet,{province},Somewhere,C17,micro\n"
        store.import_registry(write(d / "reg2.csv", extra), effective=TODAY)
        after = _one(store, MAR1)
    assert after["enterprises"] == before["enterprises"] + 1
    assert after["unknown"] == before["unknown"] + 1
    assert (after["reporting"], after["resumed"], after["rate"]) == (
        before["reporting"],
        before["resumed"],
        before["rate"],
    )


def _e4(store: RegionStore) -> dict:
    return store.states_of([("E4", MAR2)])[0]


def test_declared_baseline_judges_an_enterprise_without_normal_period_readings(
    loaded: RegionStore,
) -> None:
    """E4 has no December readings (unknown); its declared normal use makes it count."""
    before = loaded.rate(MAR2, [])[0].row(0, named=True)
    assert _e4(loaded)["unknown_because"] == "no baseline"
    assert loaded.declare_baselines({"E4": 100.0, "E1": 1.0}, source="t") == 2
    e4 = _e4(loaded)
    assert (e4["baseline_kwh"], e4["state"]) == (100.0, "resumed")  # 50 > 0.3 × 100
    # a baseline from the normal period's readings wins over a declared one
    assert loaded.states_of([("E1", MAR2)])[0]["baseline_kwh"] == 100.0
    stored = loaded.rate(MAR2, [])[0].row(0, named=True)
    live = loaded.rate(MAR2, [], live=True)[0].row(0, named=True)
    assert stored["reporting"] == before["reporting"] + 1 == live["reporting"]
    assert stored["resumed"] == before["resumed"] + 1 == live["resumed"]


def test_declared_baselines_refused_whole(loaded: RegionStore) -> None:
    bads = [{"E4": 0.0}, {"E4": -1}, {"E4": True}, {"E4": 6e7}, {"E4": 10.0, "nobody": 5.0}]
    for bad in bads:
        with pytest.raises(DataError, match="not in"):
            loaded.declare_baselines(bad, source="t")
    assert _e4(loaded)["baseline_kwh"] is None  # nothing stored


def test_register_documents_all_or_nothing_with_a_declared_baseline(loaded: RegionStore) -> None:
    row = {"enterprise_id": "U1", "name": "Uplink Works", "province": "Hubei", "city": "Wuhan",
           "industry": "C36", "size": "small", "baseline_kwh": "250"}  # fmt: skip
    with pytest.raises(DataError, match=r"row 2, field province"):
        loaded.register([row, {**row, "enterprise_id": "U2", "province": "Atlantis"}],
                        source="t", effective=TODAY)  # fmt: skip
    with pytest.raises(DataError, match=r"row 1, field baseline_kwh"):
        loaded.register([{**row, "baseline_kwh": "lots"}], source="t", effective=TODAY)
    with pytest.raises(DataError, match="unknown field"):
        loaded.register([{**row, "evil": "x"}], source="t", effective=TODAY)
    assert loaded.registered(["U1", "U2", "E1"]) == {"E1"}
    report = loaded.register([row], source="t", effective=TODAY)
    assert report.new == 1 and loaded.registered(["U1"]) == {"U1"}
    again = loaded.register([row], source="t", effective=TODAY)  # the same again: no change
    assert again.new == 0 and again.changed == 0
    assert loaded.states_of([("U1", MAR2)])[0]["baseline_kwh"] == 250.0


def test_last_full_day_skips_a_day_few_reported(loaded: RegionStore) -> None:
    assert loaded.last_full_day() == MAR2
    import pyarrow as pa

    table = pa.table({"enterprise_id": ["E1"], "date": ["2020-03-03"], "kwh": [10.0]})
    loaded.load_readings(table, source="t", today=TODAY)
    assert loaded.days()[-1] == date(2020, 3, 3) and loaded.last_full_day() == MAR2
