"""PlantStore on both backends: machine configs, segments, recompute edges, stop reasons."""

from __future__ import annotations

import pytest

from indunet.errors import DataError
from indunet.plant.store import PlantStore
from tests.plant.plant_data import M1, M2, plant
from tests.plant.test_report import at, tl


def test_machine_configs_file_union_api(historian):
    store = PlantStore(historian, plant(M1))
    assert [m.id for m in store.effective("demo").machines] == [M1]
    store.put_machine("demo", {"power_tag": "p", "rated_kw": 3}, now_ms=1, path=M2)
    store.put_machine("demo", {"power_tag": "spindle"}, now_ms=2, path=M1)
    eff = store.effective("demo")
    assert [(m.id, m.power_tag) for m in eff.machines] == [(M1, "spindle"), (M2, "p")]
    assert store.machine_sources("demo") == {M1: "api", M2: "api"}
    assert store.effective("other").machine(M1).power_tag == "power_kw"  # per enterprise
    with pytest.raises(DataError, match=r"field thresholds\.running_above"):
        store.put_machine("demo", {"thresholds": {"off_below": 1}}, now_ms=3, path=M2)
    with pytest.raises(DataError, match="site 's2' has no"):
        store.put_machine("demo", {"power_tag": "p"}, now_ms=3, path="s2/a/l/m")
    with pytest.raises(DataError, match="missing field power_tag or meter_tag"):
        store.put_machine("demo", {}, now_ms=3, path=M2)
    assert store.effective("demo").machine(M2).rated_kw == 3  # refused docs change nothing


def test_the_file_config_belongs_to_its_owner_only(historian):
    """Another tenant sees none of the file's machines, sites or reasons, and uses its own."""
    store = PlantStore(historian, plant(M1), owner="demo")
    assert [m.id for m in store.effective("demo").machines] == [M1]
    other = store.effective("globex")
    assert other.machines == [] and other.sites == {} and other.reasons.reasons == []
    store.put_machine("globex", {"power_tag": "p"}, now_ms=1, path="bsite/a/l/m")
    assert [m.id for m in store.effective("globex").machines] == ["bsite/a/l/m"]
    assert store.machine_sources("globex") == {"bsite/a/l/m": "api"}
    assert [m.id for m in store.effective("demo").machines] == [M1]


def test_segments_replace_range_keeps_the_outside_and_reasons(historian):
    store = PlantStore(historian, plant(M1, M2))
    store.save_segments("demo", M1, tl((6, 8, 2), (8, 10, 1), (10, 12, 2)))
    store.save_segments("demo", M2, tl((6, 7, 0)))
    store.assign_reason("demo", M1, at(8), "waiting", now_ms=0)
    # recompute 7–11: the crossing segments keep their parts outside the range
    store.replace_segments("demo", M1, at(7), at(11), tl((7, 9, 1), (9, 11, 0)))
    got = store.timeline("demo", M1, at(0), at(24))
    assert [
        (int(s), int(e), int(x), r)
        for s, e, x, r in zip(got.start_ms, got.end_ms, got.state, got.reasons(), strict=True)
    ] == [
        (at(6), at(7), 2, None),
        (at(7), at(8), 1, None),
        (at(8), at(9), 1, "waiting"),  # the stored assignment 8–10 is applied again
        (at(9), at(10), 0, "waiting"),
        (at(10), at(11), 0, None),
        (at(11), at(12), 2, None),
    ]
    both = store.timelines("demo", "s1/press", at(0), at(24))
    assert set(both) == {M1, M2} and len(both[M2]) == 1
    assert store.timelines("demo", "s1/pre", at(0), at(24)) == {}
    assert store.last_segment("demo", M1) == (at(11), at(12), "running")
    with pytest.raises(DataError, match="is not after start"):
        store.replace_segments("demo", M1, at(9), at(9), tl())


def test_reason_assignment_is_checked(historian):
    store = PlantStore(historian, plant(M1))
    store.save_segments("demo", M1, tl((6, 8, 2), (8, 10, 3)))
    with pytest.raises(DataError, match="not in the reason tree"):
        store.assign_reason("demo", M1, at(8), "ghost", now_ms=0)
    with pytest.raises(DataError, match="is running"):
        store.assign_reason("demo", M1, at(6), "waiting", now_ms=0)
    with pytest.raises(DataError, match="no stored state segment"):
        store.assign_reason("demo", M1, at(7), "waiting", now_ms=0)
    assert store.assign_reason("demo", M1, at(8), "mechanical", now_ms=0)["state"] == "offline"
    assert store.assign_reason("demo", M1, at(8), "waiting", now_ms=1)["reason"] == "waiting"
    assert [a.reason for a in store.assignments("demo", M1, at(0), at(24))] == ["waiting"]


CAL = {"timezone": "Europe/Berlin", "shifts": [{"name": "early", "start": "06:00", "end": "14:00"}]}


def test_site_configs_per_tenant_api_wins_and_can_be_forgotten(historian):
    """A tenant other than the file's owner sets its own site; the owner's file is untouched."""
    store = PlantStore(historian, plant(M1), owner="demo")
    store.put_machine("globex", {"power_tag": "p"}, now_ms=1, path="bsite/a/l/m")
    store.put_machine("globex", {"power_tag": "p"}, now_ms=1, path="csite/a/l/m")
    assert store.effective("globex").site("bsite").calendar.timezone == "UTC"
    store.put_site("globex", "bsite", {"calendar": CAL, "oee_target": 0.8}, now_ms=2)
    eff = store.effective("globex")
    assert eff.site("bsite").calendar.timezone == "Europe/Berlin"
    assert [s.name for s in eff.site("bsite").calendar.shifts] == ["early"]
    assert eff.site("csite").calendar.shifts == []  # undeclared: UTC, no shifts, not an error
    assert store.site_sources("globex") == {"bsite": "api"}
    assert store.effective("demo").sites == plant(M1).sites  # the owner's file, untouched
    # a machine on a new site is still accepted once sites come from the API
    store.put_machine("globex", {"power_tag": "p"}, now_ms=3, path="dsite/a/l/m")
    # replace, then forget: UTC again
    store.put_site("globex", "bsite", {"calendar": {"timezone": "Asia/Shanghai"}}, now_ms=4)
    assert store.effective("globex").site("bsite").calendar.timezone == "Asia/Shanghai"
    assert store.delete_site("globex", "bsite") is True
    assert store.delete_site("globex", "bsite") is False
    assert store.effective("globex").site("bsite").calendar.timezone == "UTC"


@pytest.mark.parametrize(
    ("site", "doc", "text"),
    [
        ("bsite", {"calendar": {"timezone": "Mars/Olympus"}}, "field calendar.timezone"),
        ("bsite", {"grid_kg_co2_per_kwh": -1}, "field grid_kg_co2_per_kwh"),
        ("bsite", {"oee_target": 1.5}, "field oee_target"),
        ("bsite", {"colour": "red"}, "field colour"),
        ("bsite", [1], "must be a JSON object"),
        ("bsite", None, "must be a JSON object"),
        ("b/site", {}, "site"),
        ("  ", {}, "site name is empty"),
        (
            "bsite",
            {"calendar": {"shifts": [{"name": "x", "start": "06:00", "end": "25:00"}]}},
            "field calendar.shifts",
        ),
    ],
)
def test_bad_site_docs_are_refused_and_change_nothing(historian, site, doc, text):
    store = PlantStore(historian, plant(M1), owner="demo")
    store.put_site("globex", "bsite", {"oee_target": 0.5}, now_ms=1)
    with pytest.raises(DataError, match=text):
        store.put_site("globex", site, doc, now_ms=2)
    assert store.effective("globex").site("bsite").oee_target == 0.5
