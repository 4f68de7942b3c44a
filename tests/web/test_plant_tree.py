"""The plant tree view model: nesting, formatting, staleness (pure, no I/O)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indunet.model import DataType, Quality
from indunet.store import TagInfo
from indunet.uns import MachinePath
from indunet.web.plant_tree import (
    DEFAULT_STALE_MS,
    format_age,
    format_epoch_ms,
    format_value,
    is_epoch_ms,
    machine_url,
    plant_view,
    scope_url,
)

NOW = 1_700_000_000_000


def tag(path: str, dtype: DataType = DataType.NUMBER, **kw) -> TagInfo:
    return TagInfo(id=0, path=path, data_type=dtype, **kw)


def row(path: str, ts: int, value=None, text=None, quality=Quality.GOOD) -> dict:
    return {"tag": path, "ts": ts, "value": value, "text": text, "quality": int(quality)}


@pytest.mark.parametrize(
    ("value", "text", "dtype", "shown"),
    [
        (3.14159, None, DataType.NUMBER, "3.142"),
        (35.0, None, DataType.NUMBER, "35"),
        (-2.5, None, DataType.NUMBER, "-2.5"),
        (1234.5678, None, DataType.NUMBER, "1234.6"),
        (0.000123, None, DataType.NUMBER, "0.000123"),
        (2e20, None, DataType.NUMBER, "2e+20"),
        (float("nan"), None, DataType.NUMBER, "NaN"),
        (float("-inf"), None, DataType.NUMBER, "-∞"),
        (1.0, None, DataType.BOOLEAN, "on"),
        (0.0, None, DataType.BOOLEAN, "off"),
        (None, "running", DataType.STRING, "running"),
        (None, "", DataType.STRING, ""),
        (None, None, DataType.NUMBER, None),
    ],
)
def test_format_value(value, text, dtype, shown):
    assert format_value(value, text, dtype) == shown


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_value_keeps_numbers_close(value):
    shown = format_value(value, None, DataType.NUMBER)
    assert shown is not None and len(shown) <= 24
    # never off by more than rounding to 3 significant decimals / 4 significant digits
    shown_d, value_d = Decimal(shown), Decimal(value)
    assert abs(shown_d - value_d) <= max(abs(value_d) * Decimal("0.01"), Decimal("0.0005"))


@pytest.mark.parametrize(
    ("age_ms", "shown"),
    [
        (-5000, "0 s"),
        (0, "0 s"),
        (59_999, "59 s"),
        (60_000, "1 min"),
        (3_599_999, "59 min"),
        (3_600_000, "1 h"),
        (86_400_000 * 3 + 5, "3 d"),
    ],
)
def test_format_age(age_ms, shown):
    assert format_age(age_ms) == shown


def test_machine_url_encodes_each_segment():
    assert machine_url(MachinePath("s 1", "a?b", "l%1", "m&<x>")) == (
        "/machine/s%201/a%3Fb/l%251/m%26%3Cx%3E"
    )


def test_tree_nests_and_sorts_sites_areas_lines_machines():
    tags = [
        tag("wuhan/machining/cell-a/cnc-02/power_kw"),
        tag("qingdao/press/line-1/press-02/power_kw"),
        tag("qingdao/press/line-1/press-01/temp_c"),
        tag("qingdao/press/line-1/press-01/power_kw"),
        tag("qingdao/assembly/line-2/robot-01/power_kw"),
    ]
    view = plant_view("demo", tags, [], NOW)
    assert [s.name for s in view.sites] == ["qingdao", "wuhan"]
    assert [a.name for a in view.sites[0].areas] == ["assembly", "press"]
    press = view.sites[0].areas[1].lines[0]
    assert press.name == "line-1"
    assert [m.path.machine for m in press.machines] == ["press-01", "press-02"]
    assert [r.name for r in press.machines[0].readings] == ["power_kw", "temp_c"]
    assert view.machine_count == 4 and view.live_count == 0
    assert press.machines[0].url == "/machine/qingdao/press/line-1/press-01"


def test_readings_status_good_stale_bad_uncertain_none():
    m = "s/a/l/m"
    tags = [
        tag(f"{m}/fresh", unit="kW"),
        tag(f"{m}/old"),
        tag(f"{m}/slow", expected_interval_ms=600_000),
        tag(f"{m}/bad"),
        tag(f"{m}/gone"),
        tag(f"{m}/unsure"),
        tag(f"{m}/declared", description="spindle speed"),
    ]
    latest = [
        row(f"{m}/fresh", NOW - 1000, 3.2),
        row(f"{m}/old", NOW - DEFAULT_STALE_MS - 1, 1.0),
        row(f"{m}/slow", NOW - 1_500_000, 1.0),  # 2.5 intervals: not stale yet
        row(f"{m}/bad", NOW, 1.0, quality=Quality.BAD),
        row(f"{m}/gone", NOW, 1.0, quality=Quality.STALE),
        row(f"{m}/unsure", NOW, 1.0, quality=Quality.UNCERTAIN),
    ]
    card = plant_view("demo", tags, latest, NOW).sites[0].areas[0].lines[0].machines[0]
    status = {r.name: r.status for r in card.readings}
    assert status == {
        "fresh": "good", "old": "stale", "slow": "good", "bad": "bad", "gone": "stale",
        "unsure": "uncertain", "declared": "none",
    }  # fmt: skip
    by = {r.name: r for r in card.readings}
    assert (by["fresh"].value, by["fresh"].unit, by["fresh"].age) == ("3.2", "kW", "1 s")
    assert by["old"].note == "no new value for 1 min"
    assert by["gone"].note == "the source went offline"
    assert by["declared"].value is None and by["declared"].description == "spindle speed"
    assert card.status == "live"


def test_machine_status_stale_when_no_fresh_good_value():
    tags = [tag("s/a/l/m1/x"), tag("s/a/l/m2/x"), tag("s/a/l/m3/x")]
    latest = [
        row("s/a/l/m1/x", NOW - 10 * DEFAULT_STALE_MS, 1.0),
        row("s/a/l/m2/x", NOW, 1.0, quality=Quality.BAD),
    ]
    line = plant_view("demo", tags, latest, NOW).sites[0].areas[0].lines[0]
    assert [m.status for m in line.machines] == ["stale", "stale", "none"]


def test_only_text_tags_are_not_charted():
    tags = [
        tag("s/a/l/m/mode", DataType.STRING),
        tag("s/a/l/m/running", DataType.BOOLEAN),
        tag("s/a/l/m/power", DataType.NUMBER),
    ]
    card = plant_view("demo", tags, [], NOW).sites[0].areas[0].lines[0].machines[0]
    assert {r.name: r.chartable for r in card.readings} == {
        "mode": False, "power": True, "running": True,
    }  # fmt: skip


def test_a_malformed_tag_path_is_refused_with_its_name():
    with pytest.raises(Exception, match="5 parts"):
        plant_view("demo", [tag("s/a/l/m")], [], NOW)


@pytest.mark.parametrize(
    ("name", "value", "epoch"),
    [
        ("edge_last_good_ms", float(NOW), True),
        ("last_cycle_ms", 1e11, True),
        ("cycle_ms", 850.0, False),  # a duration, not a time
        ("cycle_ms", 1e14, False),
        ("edge_last_good_ms", float("nan"), False),
        ("edge_last_good_ms", None, False),
        ("power_kw", float(NOW), False),
    ],
)
def test_is_epoch_ms(name, value, epoch):
    assert is_epoch_ms(name, value) is epoch


def test_format_epoch_ms_gives_clock_time_and_age():
    assert format_epoch_ms(NOW - 65_000, NOW) == "22:12:15 UTC (1 min ago)"
    assert format_epoch_ms(NOW - 2 * 86_400_000, NOW) == "2023-11-12 22:13 UTC (2 d ago)"
    assert format_epoch_ms(NOW + 5_000, NOW) == "22:13:25 UTC (in 5 s)"


def test_epoch_ms_tag_reads_as_time_in_the_tree():
    view = plant_view(
        "demo",
        [tag("s/a/l/m/edge_last_good_ms"), tag("s/a/l/m/cycle_ms")],
        [
            row("s/a/l/m/edge_last_good_ms", NOW - 1000, NOW - 65_000),
            row("s/a/l/m/cycle_ms", NOW, 850.0),
        ],
        NOW,
    )
    cycle, last = view.sites[0].areas[0].lines[0].machines[0].readings
    assert (last.value, last.kind) == ("22:12:15 UTC (1 min ago)", "epoch_ms")
    assert (cycle.value, cycle.kind) == ("850", "")


def test_scope_url_encodes_each_segment():
    assert scope_url("s1") == "/site/s1"
    assert scope_url("s 1", "a/b?", "<l>") == "/site/s%201/a%2Fb%3F/%3Cl%3E"


def test_units_and_display_names_from_tag_names():
    from indunet.web.plant_tree import display_name, tag_unit

    assert tag_unit("power_kw", None) == "kW" and tag_unit("temp_c", None) == "°C"
    assert tag_unit("temp_c", "K") == "K"  # the metadata wins
    assert tag_unit("edge_last_good_ms", None) is None and tag_unit("mode", None) is None
    assert tag_unit("parts_total", None) == "pcs"
    assert display_name("power_kw") == "Power" and display_name("parts_total") == "Parts total"
    assert display_name("spindle-output_power_kw") == "Spindle output power"
    assert display_name("c") == "C"
