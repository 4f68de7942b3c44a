"""Tag metadata on the bus reaches the historian: units, descriptions and types of tags."""

from __future__ import annotations

import json
import uuid

import pytest

from indunet.connect.codec.tag_meta import encode_tag_meta, meta_topic
from indunet.connect.mqtt import MqttIngest
from indunet.store import open_historian
from tests.connect.test_mqtt import BROKER, T0, _publish, _require_broker, _wait

M = "s1/press/l1/m1"


@pytest.fixture
def enterprise() -> str:
    _require_broker()
    return f"m{uuid.uuid4().hex[:8]}"


def _units(historian, enterprise: str) -> dict[str, tuple]:
    return {t.path: (t.unit, t.description, str(t.data_type)) for t in historian.tags(enterprise)}


def test_metadata_messages_declare_units_and_bad_ones_are_dead_lettered(
    settings_factory, enterprise
):
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian, BROKER, session_expiry_s=60, client_id=f"ing-{enterprise}", sparkplug_groups=[]
    )
    ingest.start()
    topic = meta_topic(enterprise, M)
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        _publish(
            [
                # metadata first, then data: the tag is created with its unit
                (
                    topic,
                    encode_tag_meta(
                        {
                            "power_w": {"unit": "W", "description": "Active power"},
                            "running": {"data_type": "boolean"},
                            "bad": {"unit": 7},
                        }
                    ),
                ),
                (f"indunet/v1/{enterprise}/{M}", json.dumps({"ts": T0, "power_w": 5}).encode()),
                (f"indunet/v1/{enterprise}/{M}", json.dumps({"ts": T0, "temp_c": 41.5}).encode()),
                (topic, b"{broken"),
            ]
        )
        assert _wait(lambda: len(historian.dead_letters(enterprise)) >= 2)
        assert _wait(lambda: f"{M}/temp_c" in _units(historian, enterprise))
        units = _units(historian, enterprise)
        assert units[f"{M}/power_w"] == ("W", "Active power", "number")
        assert units[f"{M}/running"] == (None, None, "boolean")
        assert units[f"{M}/temp_c"] == (None, None, "number")  # data without metadata
        # metadata after the data: an existing tag gets its unit; a type change is refused
        _publish(
            [
                (
                    topic,
                    encode_tag_meta({"temp_c": {"unit": "°C"}, "power_w": {"data_type": "string"}}),
                )
            ]
        )
        assert _wait(lambda: _units(historian, enterprise)[f"{M}/temp_c"][0] == "°C")
        assert _wait(lambda: len(historian.dead_letters(enterprise)) >= 3)
        assert _units(historian, enterprise)[f"{M}/power_w"] == ("W", "Active power", "number")
    finally:
        ingest.stop()
    reasons = sorted(d["reason"] for d in historian.dead_letters(enterprise))
    assert any("tag 'bad': field 'unit' must be text" in r for r in reasons), reasons
    assert any("payload is not JSON" in r for r in reasons), reasons
    assert any("cannot become string" in r for r in reasons), reasons
    assert {d["source"] for d in historian.dead_letters(enterprise)} == {"meta"}
    historian.close()


def test_sparkplug_birth_properties_reach_the_tags(settings_factory, enterprise):
    from indunet.connect.codec.sparkplug import SparkplugMapping
    from tests.connect.codec.test_tag_meta import _birth_with_properties

    group = f"g{uuid.uuid4().hex[:8]}"
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        BROKER,
        session_expiry_s=60,
        client_id=f"ing-{enterprise}",
        sparkplug_groups=[group],
        sparkplug=SparkplugMapping(enterprise=enterprise),
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        _publish(
            [
                (f"spBv1.0/{group}/NBIRTH/n", _birth_with_properties("NBIRTH", 0, [])),
                (
                    f"spBv1.0/{group}/DBIRTH/n/d",
                    _birth_with_properties("DBIRTH", 1, [("Power", 10, 3.5, {"engUnit": "kW"})]),
                ),
            ]
        )
        tag = f"{group}/n/devices/d/Power"
        assert _wait(lambda: _units(historian, enterprise).get(tag, (None,))[0] == "kW")
    finally:
        ingest.stop()
        historian.close()
