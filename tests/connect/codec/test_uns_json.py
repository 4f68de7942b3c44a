"""The JSON topic contract decoder, without sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.connect.codec.uns_json import MAX_PAYLOAD, decode
from indunet.errors import DataError
from indunet.ingest.values import TimeParser
from indunet.model import DataType

NOW = 1_700_000_100_000
TIMES = TimeParser(now_ms=NOW)
MACHINE = "indunet/v1/acme/s1/press/l1/m1"


def test_machine_payload_with_several_tags():
    msg = decode(
        MACHINE,
        b'{"timestamp_ms": 1700000000000, "power_kw": 3.2, "on": true, "mode": "auto"}',
        TIMES,
    )
    assert msg.enterprise == "acme"
    assert [(t, ts, v.value, v.text, v.dtype) for t, ts, v in msg.points] == [
        ("s1/press/l1/m1/power_kw", 1_700_000_000_000, 3.2, None, DataType.NUMBER),
        ("s1/press/l1/m1/on", 1_700_000_000_000, 1.0, None, DataType.BOOLEAN),
        ("s1/press/l1/m1/mode", 1_700_000_000_000, None, "auto", DataType.STRING),
    ]
    assert msg.errors == []


def test_single_tag_payload_and_rfc3339_ts():
    msg = decode(MACHINE + "/temp_c", b'{"ts": "2023-11-14T22:13:20Z", "value": 41.5}', TIMES)
    assert [(t, ts, v.value) for t, ts, v in msg.points] == [
        ("s1/press/l1/m1/temp_c", 1_700_000_000_000, 41.5)
    ]


def test_bad_tag_inside_a_good_payload_is_reported_and_the_rest_kept():
    msg = decode(
        MACHINE, b'{"timestamp_ms": 1700000000000, "ok": 1, "bad": {"x": 1}, "n": null}', TIMES
    )
    assert [t for t, _, _ in msg.points] == ["s1/press/l1/m1/ok"]
    assert len(msg.errors) == 2 and any("'bad'" in e for e in msg.errors)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("other/v1/acme/s/a/l/m", b'{"ts": 1700000000000, "x": 1}', "not under indunet/v1"),
        ("indunet/v1/acme/s/a/l", b'{"ts": 1700000000000, "x": 1}', "must be"),
        ("indunet/v1/acme/s/a/l/m/t/extra", b'{"ts": 1700000000000, "value": 1}', "must be"),
        ("indunet/v1/acme/s//l/m", b'{"ts": 1700000000000, "x": 1}', "area name is empty"),
        (MACHINE, b"{not json", "not valid JSON"),
        (MACHINE, b"\xff\xfe", "not valid UTF-8"),
        (MACHINE, b"[1, 2]", "must be a JSON object"),
        (MACHINE, b'{"x": 1}', "no 'timestamp_ms'"),
        (MACHINE, b'{"ts": 1700000000000, "timestamp_ms": 1700000000000, "x": 1}', "both"),
        (MACHINE, b'{"ts": 1700000000, "x": 1}', "epoch seconds"),
        (MACHINE, b'{"ts": -5, "x": 1}', "before 1970"),
        (MACHINE, b'{"ts": 9999999999999, "x": 1}', "future"),
        (MACHINE, b'{"ts": 1700000000000}', "no tags"),
        (MACHINE + "/t", b'{"ts": 1700000000000}', "no 'value'"),
        (MACHINE + "/t", b'{"ts": 1700000000000, "value": NaN}', "finite"),
        (MACHINE + "/t", b'{"ts": 1700000000000, "value": 1, "unit": "kW"}', "unknown field"),
        (MACHINE, b"[" * 100_000, "nested too deeply"),
        (MACHINE, b'{"ts": 1700000000000, "x": "' + b"a" * MAX_PAYLOAD + b'"}', "limit"),
    ],
)
def test_malformed_messages_raise_data_error_with_reason(topic, payload, reason):
    with pytest.raises(DataError, match=reason):
        decode(topic, payload, TIMES)


@settings(max_examples=300, deadline=None)
@given(topic_tail=st.lists(st.text(max_size=8), max_size=7), payload=st.binary(max_size=200))
def test_any_input_decodes_or_raises_data_error(topic_tail, payload):
    topic = "/".join(["indunet", "v1", *topic_tail])
    try:
        msg = decode(topic, payload, TIMES)
    except DataError:
        return
    assert msg.points or msg.errors


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
        st.one_of(
            st.integers(-(10**9), 10**9),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_every_good_tag_becomes_a_point(values):
    values.pop("ts", None)
    if not values:
        return
    body = json.dumps({"timestamp_ms": 1_700_000_000_000, **values}).encode()
    msg = decode(MACHINE, body, TIMES)
    assert len(msg.points) == len(values) and msg.errors == []
