"""Plant configuration: loading from indunet.toml, and errors that name machine and field."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from indunet.errors import ConfigError, DataError
from indunet.plant.config import (
    MachineConfig,
    PlantConfig,
    Shift,
    ShiftCalendar,
    StopReasonTree,
    Thresholds,
)

TOML = """
[plant]
[[plant.machines]]
id = "s1/milling/l1/cnc1"
power_tag = "spindle_kw"
rated_kw = 7.5
ideal_cycle_s = { wax_s = 120.0, wax_l = 180.0 }
default_product = "wax_s"
thresholds = { off_below = 0.04, running_above = 0.09, hysteresis = 0.01, min_dwell_s = 0.3 }
total_counter = { tag = "parts_total", wrap_at = 65536 }
scrap_counter = { tag = "parts_scrap" }

[[plant.machines]]
id = "s1/milling/l2/cnc2"
power_tag = "power"
power_unit = "W"

[plant.sites.s1]
grid_kg_co2_per_kwh = 0.58
oee_target = 0.72
[plant.sites.s1.calendar]
timezone = "Asia/Shanghai"
[[plant.sites.s1.calendar.shifts]]
name = "day"
start = 08:00:00
end = "20:00"
breaks = [{ start = "12:00", end = "12:30" }]
[[plant.sites.s1.calendar.shifts]]
name = "night"
start = "20:00"
end = "08:00"
[[plant.sites.s1.calendar.planned_downtime]]
start = 2026-05-01T00:00:00
end = 2026-05-04T00:00:00
reason = "Labour Day"

[[plant.reasons.reasons]]
code = "mechanical"
[[plant.reasons.reasons]]
code = "spindle"
parent = "mechanical"
[[plant.reasons.reasons]]
code = "no_material"
"""


def test_plant_table_loads_from_indunet_toml(settings_factory, tmp_path):
    assert settings_factory().plant == PlantConfig()
    (tmp_path / "indunet.toml").write_text(TOML, encoding="utf-8")
    plant = settings_factory().plant
    cnc1 = plant.machine("s1/milling/l1/cnc1")
    assert cnc1.line == "s1/milling/l1" and cnc1.site == "s1"
    assert cnc1.ideal_cycle() == 120.0 and cnc1.ideal_cycle("wax_l") == 180.0
    assert cnc1.thresholds == Thresholds(
        off_below=0.04, running_above=0.09, hysteresis=0.01, min_dwell_s=0.3
    )
    assert cnc1.total_counter.wrap_at == 65536 and cnc1.total_counter.resets
    assert cnc1.offline_after_ms == 5000
    cal = plant.site("s1").calendar
    assert [s.name for s in cal.shifts] == ["day", "night"]
    assert cal.shifts[0].start == time(8) and cal.shifts[1].length_min == 12 * 60
    assert plant.site("s1").grid_kg_co2_per_kwh == 0.58
    assert plant.site("s1").oee_target == 0.72 and plant.site("s9").oee_target is None
    assert plant.reasons.path("spindle") == ["mechanical", "spindle"]
    assert plant.reasons.category("spindle") == "mechanical"
    assert [m.id for m in plant.line_machines("s1/milling/l2")] == ["s1/milling/l2/cnc2"]
    with pytest.raises(DataError, match="'s1/x/y/z' is not in the plant"):
        plant.machine("s1/x/y/z")
    assert plant.site("elsewhere").calendar.timezone == "UTC"


@pytest.mark.parametrize(
    ("snippet", "where", "message"),
    [
        ("ideal_cycle_s = { a = 0 }", "plant.machines.0.ideal_cycle_s", "product 'a' must be > 0"),
        ('default_product = "b"', "plant.machines.0", "default_product 'b' has no ideal_cycle_s"),
        (
            "thresholds = { off_below = 5, running_above = 2 }",
            "plant.machines.0.thresholds",
            "off_below (5.0) must be below running_above",
        ),
        (
            "thresholds = { off_below = 1, running_above = 2, hysteresis = 1 }",
            "plant.machines.0.thresholds",
            "hysteresis (1.0) must be at most half",
        ),
        ('power_unit = "MW"', "plant.machines.0.power_unit", "'kW', 'W' or 'A'"),
        ('total_counter = { tag = "a/b" }', "plant.machines.0.total_counter.tag", "forbidden"),
    ],
)
def test_bad_machine_fields_are_named(settings_factory, tmp_path, snippet, where, message):
    (tmp_path / "indunet.toml").write_text(
        f'[[plant.machines]]\nid = "s/a/l/m1"\n{snippet}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        settings_factory()
    assert f"setting {where}:" in str(err.value)
    assert message in str(err.value)


def test_plant_level_errors_name_the_machine():
    with pytest.raises(
        ValidationError, match=r"machines\[1\] \(s/a/l/m1\): the machine id is listed twice"
    ):
        PlantConfig(machines=[{"id": "s/a/l/m1"}, {"id": "s/a/l/m1"}])
    with pytest.raises(ValidationError, match=r"site 's' has no \[plant.sites.s\] table"):
        PlantConfig(machines=[{"id": "s/a/l/m1"}], sites={"other": {}})
    with pytest.raises(ValidationError, match="4 parts"):
        MachineConfig(id="just-a-name")


@pytest.mark.parametrize("target", [0, -0.1, 1.5, "high"])
def test_an_impossible_oee_target_is_refused(target):
    from indunet.plant.config import SiteConfig

    with pytest.raises(ValidationError, match="oee_target"):
        SiteConfig(oee_target=target)


def test_overlapping_shifts_are_refused():
    with pytest.raises(ValidationError, match="shifts 'early' and 'late' overlap"):
        ShiftCalendar(
            shifts=[
                Shift(name="early", start=time(6), end=time(14)),
                Shift(name="late", start=time(13), end=time(22)),
            ]
        )
    # a Sunday night shift runs into Monday's early shift (the week wraps round)
    with pytest.raises(ValidationError, match=r"'night' and 'early' overlap|'early' and 'night'"):
        ShiftCalendar(
            shifts=[
                Shift(name="early", start=time(5), end=time(13), days=[0]),
                Shift(name="night", start=time(22), end=time(6), days=[6]),
            ]
        )
    # back to back is fine, also across midnight
    ShiftCalendar(
        shifts=[
            Shift(name="a", start=time(6), end=time(14)),
            Shift(name="b", start=time(14), end=time(22)),
            Shift(name="c", start=time(22), end=time(6)),
        ]
    )
    with pytest.raises(ValidationError, match=r"break 'lunch' .* is not inside the shift"):
        Shift(
            name="a",
            start=time(6),
            end=time(14),
            breaks=[{"name": "lunch", "start": "13:30", "end": "14:30"}],
        )
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        ShiftCalendar(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="used twice"):
        ShiftCalendar(shifts=[Shift(name="a", start=time(1), end=time(2))] * 2)
    with pytest.raises(ValidationError, match="days must be"):
        Shift(name="a", start=time(1), end=time(2), days=[7])


def test_reason_tree_refuses_unknown_parents_cycles_and_duplicates():
    with pytest.raises(ValidationError, match="parent 'nope' is not a reason code"):
        StopReasonTree(reasons=[{"code": "a", "parent": "nope"}])
    with pytest.raises(ValidationError, match="own ancestor"):
        StopReasonTree(reasons=[{"code": "a", "parent": "b"}, {"code": "b", "parent": "a"}])
    with pytest.raises(ValidationError, match="used twice"):
        StopReasonTree(reasons=[{"code": "a"}, {"code": "a"}])
    tree = StopReasonTree(reasons=[{"code": "a"}])
    with pytest.raises(DataError, match="'zz' is not in the reason tree"):
        tree.path("zz")
