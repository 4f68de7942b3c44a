"""Dataset replay mapping (pure) on the real datasets in ../shared/datasets."""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, datetime

import pytest

from indunet.errors import ConfigError, DataError
from indunet.sim.replay import (
    DATASETS,
    cnc_messages,
    metropt_messages,
    read_dataset,
    replay_offset_ms,
    steel_messages,
)
from tests.datasets import DATASETS as DATA_ROOT

ROOT = DATA_ROOT


@functools.cache
def _full(name: str) -> list:
    return read_dataset(name, ROOT)


@pytest.mark.parametrize(
    ("name", "rows"),
    [("steel_industry", 35_040), ("cnc_mill_tool_wear", 25_286), ("metropt3_air_compressor", 1000)],
)
def test_every_row_becomes_one_message_with_units_and_rising_time(name, rows):
    messages = _full(name)
    assert len(messages) == rows
    ts = [m.ts_ms for m in messages]
    assert all(b > a for a, b in itertools.pairwise(ts))  # strictly monotonic
    units = DATASETS[name].units
    for m in messages[:: max(rows // 50, 1)]:
        assert set(m.values) <= set(units)
        assert m.machine == DATASETS[name].machine
    assert set(messages[0].values) == set(units)
    for tag, unit in units.items():  # the unit is in the tag name
        if unit in ("kW", "kWh", "A", "V", "bar", "mm", "mm/s", "%"):
            suffix = {"%": "_pct", "mm/s": "_mm_s"}.get(unit, "_" + unit.lower())
            assert tag.endswith(suffix), (tag, unit)


def test_steel_midnight_quirk_and_time_zone():
    messages = read_dataset("steel_industry", ROOT, limit=200)
    first = datetime.fromtimestamp(messages[0].ts_ms / 1000, UTC)
    assert first == datetime(2017, 12, 31, 15, 15, tzinfo=UTC)  # 2018-01-01 00:15 in Korea
    steps = {b.ts_ms - a.ts_ms for a, b in itertools.pairwise(messages)}
    assert steps == {15 * 60_000}  # the 24:00 row written as 00:00 no longer steps back
    midnight = messages[95]  # "01/01/2018 00:00", NSM 0 -> end of 1 January
    assert datetime.fromtimestamp(midnight.ts_ms / 1000, UTC) == datetime(
        2018, 1, 1, 15, 0, tzinfo=UTC
    )
    assert messages[0].values["usage_kwh"] == 3.17
    assert messages[0].values["power_kw"] == pytest.approx(12.68)
    assert messages[0].values["load_type"] == "Light_Load"
    last = _full("steel_industry")[-1]
    assert datetime.fromtimestamp(last.ts_ms / 1000, UTC) == datetime(
        2018, 12, 31, 15, 0, tzinfo=UTC
    )


def test_cnc_runs_follow_each_other_at_100_ms_with_labels():
    messages = read_dataset("cnc_mill_tool_wear", ROOT, limit=1100)
    assert messages[1].ts_ms - messages[0].ts_ms == 100
    first_of_2 = next(i for i, m in enumerate(messages) if m.values["experiment"] == 2)
    assert first_of_2 == 1055  # experiment 1 has 1055 rows
    assert messages[first_of_2].ts_ms - messages[first_of_2 - 1].ts_ms == 60_100
    assert messages[0].values["tool_condition"] == "unworn"
    assert messages[0].values["machining_process"] == "Starting"
    assert messages[0].values["x_axis_actual_position_mm"] == 198.0
    assert "z_axis_output_power_kw" not in messages[0].values


def test_metropt_signals_are_booleans_and_pressures_numbers():
    messages = _full("metropt3_air_compressor")
    m = messages[0]
    assert m.values["comp_no_air_intake"] is True
    assert m.values["motor_current_a"] == 0.04
    running = [x for x in messages if x.values["motor_current_a"] > 1]
    assert len(running) == 252  # 204 offloaded + 48 loaded rows (SOURCE.md)
    assert datetime.fromtimestamp(m.ts_ms / 1000, UTC) == datetime(2020, 2, 1, tzinfo=UTC)


def test_bad_rows_name_the_line_and_field():
    good = {
        "date": "01/01/2018 00:15",
        "Usage_kWh": "3.17",
        "Lagging_Current_Reactive.Power_kVarh": "1",
        "Leading_Current_Reactive_Power_kVarh": "0",
        "CO2(tCO2)": "0",
        "Lagging_Current_Power_Factor": "70",
        "Leading_Current_Power_Factor": "100",
        "NSM": "900",
        "Load_Type": "Light_Load",
    }
    assert len(list(steel_messages([good]))) == 1
    with pytest.raises(DataError, match="line 3 Usage_kWh: 'x' is not a number"):
        list(steel_messages([good, {**good, "Usage_kWh": "x"}]))
    with pytest.raises(DataError, match="line 2 date"):
        list(steel_messages([{**good, "date": "2018-01-01"}]))
    with pytest.raises(DataError, match="NSM 1800 does not match"):
        list(steel_messages([{**good, "NSM": "1800"}]))
    with pytest.raises(DataError, match="not a finite number"):
        list(steel_messages([{**good, "Usage_kWh": "nan"}]))
    row = {"timestamp": "2020-02-01 00:00:00", "COMP": "2"}
    with pytest.raises(DataError, match="line 2 TP2"):
        list(metropt_messages([row]))
    with pytest.raises(DataError, match="experiment_03 header: missing columns"):
        list(cnc_messages([(3, [{"X1_ActualPosition": "1"}])]))


def test_offset_never_puts_a_point_ahead_of_its_publishing_time():
    first, last, start = 1_000_000, 1_000_000 + 3_600_000, 2_000_000_000_000
    assert replay_offset_ms(first, last, start, 1) == start - first  # live: first row now
    assert replay_offset_ms(first, last, start, 0.5) == start - first
    assert replay_offset_ms(first, last, start, 0) == start - last  # backfill: ends now
    for speed in (2, 10, 1000):
        offset = replay_offset_ms(first, last, start, speed)
        for t in (first, (first + last) // 2, last):
            assert t + offset <= start + (t - first) / speed + 1
        assert last + offset == pytest.approx(start + (last - first) / speed, abs=1)
    with pytest.raises(ConfigError):
        replay_offset_ms(first, last, start, -1)


def test_missing_folder_and_unknown_dataset_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="--datasets"):
        read_dataset("steel_industry", tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="unknown dataset 'nab'"):
        read_dataset("nab", ROOT)
    with pytest.raises(ConfigError, match="is missing"):
        read_dataset("steel_industry", tmp_path)
