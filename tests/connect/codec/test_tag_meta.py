"""The tag metadata contract: valid messages, and malformed, hostile and odd ones refused."""

from __future__ import annotations

import json

import pytest

from indunet.connect.codec.tag_meta import (
    TagMeta,
    encode_tag_meta,
    meta_topic,
    parse_tag_meta,
)
from indunet.errors import DataError
from indunet.model import DataType

TOPIC = meta_topic("acme", "s1/press/l1/m1")


def test_round_trip_of_units_descriptions_and_types():
    payload = encode_tag_meta(
        {
            "power_w": {"unit": "W", "description": "Active power", "data_type": "number"},
            "running": {"data_type": "boolean", "unit": ""},  # empty: left out
            "mode": {"data_type": "string", "unit": None, "expected_interval_ms": 1000},
        }
    )
    enterprise, tags, refused = parse_tag_meta(TOPIC, payload)
    assert enterprise == "acme" and refused == []
    assert sorted(tags, key=lambda t: t.path) == [
        TagMeta("s1/press/l1/m1/mode", DataType.STRING, None, None, 1000),
        TagMeta("s1/press/l1/m1/power_w", DataType.NUMBER, "W", "Active power"),
        TagMeta("s1/press/l1/m1/running", DataType.BOOLEAN),
    ]


def test_unicode_units_are_kept():
    _, tags, _ = parse_tag_meta(
        TOPIC, encode_tag_meta({"t": {"unit": "°C"}, "p": {"unit": "m³/h"}})
    )
    assert {t.unit for t in tags} == {"°C", "m³/h"}


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        ("indunet/v1/acme/s1/press/l1/$meta", "metadata topic must be"),
        ("indunet/v1/acme/s1/press/l1/m1/x/$meta", "metadata topic must be"),
        ("indunet/v1/acme/s1/press/l1/m1", "metadata topic must be"),
        ("indunet/v2/acme/s1/press/l1/m1/$meta", "metadata topic must be"),
        ("indunet/v1/acme/s1/press/l1/m1/meta", "metadata topic must be"),
        ("indunet/v1//s1/press/l1/m1/$meta", "enterprise name is empty"),
        ("indunet/v1/acme/s1/../l1/m1/$meta", "not allowed"),
    ],
)
def test_bad_topics_are_refused(topic, words):
    with pytest.raises(DataError, match=words):
        parse_tag_meta(topic, b'{"tags": {}}')


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"{not json", "not JSON"),
        (b"[]", "must be an object"),
        (b'{"tags": []}', "must be an object"),
        (b'{"tags": {}, "extra": 1}', "must be an object"),
        (b'"tags"', "must be an object"),
        (b"x" * (256 * 1024 + 1), "over"),
        (json.dumps({"tags": {f"t{i}": {} for i in range(10_001)}}).encode(), "more than"),
    ],
)
def test_unusable_messages_are_refused_whole(payload, words):
    with pytest.raises(DataError, match=words):
        parse_tag_meta(TOPIC, payload)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"unit": 5}, "'unit' must be text"),
        ({"unit": "x" * 33}, "longer than 32"),
        ({"unit": "k\nW"}, "control characters"),
        ({"description": "d" * 1001}, "longer than 1000"),
        ({"data_type": "complex"}, "not number, boolean or string"),
        ({"data_type": None}, "not number, boolean or string"),
        ({"expected_interval_ms": 0}, "positive integer"),
        ({"expected_interval_ms": 1.5}, "positive integer"),
        ({"expected_interval_ms": True}, "positive integer"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ("kW", "expected an object"),
    ],
)
def test_a_bad_tag_is_refused_and_the_others_kept(fields, words):
    payload = json.dumps({"tags": {"bad": fields, "good": {"unit": "kW"}}}).encode()
    _, tags, refused = parse_tag_meta(TOPIC, payload)
    assert [t.path for t in tags] == ["s1/press/l1/m1/good"]
    assert len(refused) == 1 and refused[0].startswith("tag 'bad': ") and words in refused[0]


@pytest.mark.parametrize("name", ["", "a/b", "..", "x" * 200])
def test_bad_tag_names_are_refused(name):
    _, tags, refused = parse_tag_meta(TOPIC, json.dumps({"tags": {name: {}}}).encode())
    assert tags == [] and len(refused) == 1


# ---------------------------------------------------------------------------- Sparkplug
def _birth_with_properties(kind: str, seq: int, metrics) -> bytes:
    from indunet.connect.codec.sparkplug import pb

    msg = pb.Payload()
    msg.timestamp, msg.seq = 1_700_000_000_000, seq
    if kind == "NBIRTH":
        m = msg.metrics.add()
        m.name, m.datatype, m.long_value = "bdSeq", 4, 1
    for name, dtype, value, props in metrics:
        m = msg.metrics.add()
        m.name, m.datatype = name, dtype
        if dtype == 11:
            m.boolean_value = value
        else:
            m.double_value = value
        for key, text in props.items():
            m.properties.keys.append(key)
            pv = m.properties.values.add()
            pv.type = 12
            if text is None:
                pv.int_value = 7  # not a string: ignored
            else:
                pv.string_value = text
    return msg.SerializeToString()


def test_sparkplug_birth_properties_give_units_and_descriptions():
    from indunet.connect.codec.sparkplug import SparkplugHost, SparkplugMapping

    host = SparkplugHost(SparkplugMapping(enterprise="acme"))
    host.handle("spBv1.0/g/NBIRTH/n", _birth_with_properties("NBIRTH", 0, []))
    out = host.handle(
        "spBv1.0/g/DBIRTH/n/d",
        _birth_with_properties(
            "DBIRTH",
            1,
            [
                ("Power", 10, 3.5, {"engUnit": "kW", "Documentation": "Spindle power"}),
                ("Temp", 10, 41.0, {"EngUnits": "°C"}),
                ("Running", 11, True, {"description": "Drive on"}),
                ("Plain", 10, 1.0, {}),
                ("Odd", 10, 1.0, {"engUnit": None, "unit": "   "}),  # not text, blank
            ],
        ),
    )
    assert sorted(out.meta) == [
        ("g/n/devices/d/Power", "kW", "Spindle power", DataType.NUMBER),
        ("g/n/devices/d/Running", None, "Drive on", DataType.BOOLEAN),
        ("g/n/devices/d/Temp", "°C", None, DataType.NUMBER),
    ]
    assert not out.errors
