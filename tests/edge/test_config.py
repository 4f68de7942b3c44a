"""Edge config: three-line meters, and errors that name device, tag and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from indunet.edge.config import load_edge_config, parse_edge_config
from indunet.edge.profiles import load_profile, profile_names
from indunet.errors import ConfigError


def test_a_meter_on_an_old_machine_takes_three_lines(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[[devices]]\nmachine = "s1/press/l1/press-7"\nprofile = "eastron-sdm630"\n'
        'host = "10.0.4.17"\n'
    )
    cfg = load_edge_config(path)
    assert not cfg.problems
    (dev,) = cfg.devices
    assert dev.name == "press-7" and dev.protocol == "modbus" and dev.port == 502
    assert {"power_w", "import_energy_kwh", "voltage_l1_v"} <= {t.name for t in dev.tags}
    assert all(t.register == "input" and t.type == "float32" for t in dev.tags)
    assert cfg.buffer.path == tmp_path / "edge-buffer.sqlite"


def test_every_profile_loads_and_cites_its_manual() -> None:
    assert {"eastron-sdm120", "eastron-sdm630", "schneider-iem3000", "carlo-gavazzi-em24"} <= set(
        profile_names()
    )
    for name in profile_names():
        profile = load_profile(name)
        assert profile["source"] and profile["tags"]
        cfg = parse_edge_config({"devices": [{"machine": "a/b/c/d", "host": "h", "profile": name}]})
        assert not cfg.problems, cfg.problems


def test_own_tags_override_the_profile() -> None:
    cfg = parse_edge_config(
        {
            "devices": [
                {
                    "machine": "a/b/c/d",
                    "host": "h",
                    "profile": "eastron-sdm120",
                    "tags": [
                        {
                            "name": "power_w",
                            "address": 12,
                            "register": "input",
                            "type": "float32",
                            "scale": 0.001,
                        }
                    ],
                }
            ]
        }
    )
    power = next(t for t in cfg.devices[0].tags if t.name == "power_w")
    assert power.scale == 0.001


def test_bad_devices_are_named_and_the_others_still_load() -> None:
    cfg = parse_edge_config(
        {
            "devices": [
                {
                    "name": "good",
                    "machine": "a/b/c/good",
                    "host": "h",
                    "tags": [{"name": "t", "address": 1}],
                },
                {"name": "meter9", "machine": "a/b/c/m9", "host": "h", "profile": "acme-9000"},
                {
                    "name": "plc2",
                    "machine": "a/b/c/p2",
                    "host": "h",
                    "tags": [{"name": "speed", "address": 70000}],
                },
                {
                    "name": "plc3",
                    "machine": "a/b/c/p3",
                    "host": "h",
                    "tags": [{"name": "s", "address": 1, "type": "string"}],
                },
                {
                    "name": "plc4",
                    "machine": "a/b/p4",
                    "host": "h",
                    "tags": [{"name": "s", "address": 1}],
                },
                {
                    "name": "ua",
                    "machine": "a/b/c/ua",
                    "endpoint": "http://x",
                    "tags": [{"name": "x", "node": "ns=2;s=X"}],
                },
                {
                    "name": "ua2",
                    "machine": "a/b/c/ua2",
                    "endpoint": "opc.tcp://x:4840",
                    "tags": [{"name": "x", "node": "ns=2;q=???"}],
                },
                {
                    "name": "dup",
                    "machine": "a/b/c/dup",
                    "host": "h",
                    "tags": [{"name": "t", "address": 1}, {"name": "t", "address": 2}],
                },
                {
                    "name": "unit",
                    "machine": "a/b/c/u",
                    "host": "h",
                    "unit": 300,
                    "tags": [{"name": "t", "address": 1}],
                },
            ]
        }
    )
    assert [d.name for d in cfg.devices] == ["good"]
    text = {p.device: p.message for p in cfg.problems}
    assert "unknown meter profile 'acme-9000'" in text["meter9"]
    assert "tag 'speed' field 'address'" in text["plc2"]
    assert "tag 's'" in text["plc3"] and "length" in text["plc3"]
    assert "field 'machine'" in text["plc4"] and "4 parts" in text["plc4"]
    assert "field 'endpoint'" in text["ua"]
    assert "tag 'x'" in text["ua2"] and "node id" in text["ua2"]
    assert "defined twice" in text["dup"]
    assert "field 'unit'" in text["unit"]


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text("[[devices]\nname = ")
    with pytest.raises(ConfigError, match=r"edge.toml is not valid TOML"):
        load_edge_config(path)
    with pytest.raises(ConfigError, match=r"cannot be read"):
        load_edge_config(tmp_path / "missing.toml")


def test_bad_sections_and_weak_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[broker\].*url"):
        parse_edge_config({"broker": {"url": "http://x"}})
    with pytest.raises(ConfigError, match=r"\[commands\].*secret"):
        parse_edge_config({"commands": {"secret": "short"}})
    with pytest.raises(ConfigError, match="unknown section"):
        parse_edge_config({"brokr": {}})
