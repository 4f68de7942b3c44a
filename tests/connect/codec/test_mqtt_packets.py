"""MQTT control packets: encoding, stream splitting and PUBLISH parsing, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.connect.codec import mqtt_packets as mp
from indunet.errors import DataError


def _one(packet: bytes) -> tuple[int, bytes]:
    (got,) = mp.PacketReader().feed(packet)
    return got


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1])
def test_publish_round_trip(version, qos):
    packet = mp.encode_publish(
        "indunet/v1/acme/s/a/l/m", b'{"ts": 1}', qos=qos, mid=513 if qos else 0, version=version
    )
    first, body = _one(packet)
    assert first >> 4 == mp.PUBLISH
    assert mp.parse_publish(first, body, version) == (
        "indunet/v1/acme/s/a/l/m",
        b'{"ts": 1}',
        qos,
        513 if qos else 0,
    )


def test_publish_with_mqtt5_properties_skips_them():
    # topic "t", packet id 7, properties: 5 bytes (message expiry 0x02 + 4 bytes), payload "x"
    body = b"\x00\x01t" + b"\x00\x07" + b"\x05\x02\x00\x00\x00\x3c" + b"x"
    assert mp.parse_publish(0x32, body, 5) == ("t", b"x", 1, 7)


def test_large_payload_uses_a_multi_byte_length():
    payload = b"p" * 300_000
    first, body = _one(mp.encode_publish("t", payload, version=4))
    assert mp.parse_publish(first, body, 4)[1] == payload


def test_topic_bytes_that_are_not_utf8_become_surrogates():
    body = b"\x00\x03a\xffb" + b"x"
    topic = mp.parse_publish(0x30, body, 4)[0]
    assert topic == "a\udcffb"


@pytest.mark.parametrize(
    ("first", "body", "version"),
    [
        (0x30, b"\x00", 4),  # no room for the topic length
        (0x30, b"\x00\x09abc", 4),  # topic longer than the packet
        (0x32, b"\x00\x01t\x00", 4),  # QoS 1 without a whole packet id
        (0x30, b"\x00\x01t\x09", 5),  # properties longer than the packet
        (0x30, b"\x00\x01t\xff\xff\xff\xff\x7f", 5),  # property length of 5 bytes
    ],
)
def test_broken_publish_bodies_raise_data_error(first, body, version):
    with pytest.raises(DataError):
        mp.parse_publish(first, body, version)


def test_reader_refuses_a_remaining_length_of_five_bytes():
    with pytest.raises(DataError, match="longer than 4 bytes"):
        mp.PacketReader().feed(b"\x30\xff\xff\xff\xff\x01")


@settings(max_examples=150, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=400), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=1, max_value=500), max_size=40),
)
def test_reader_splits_a_stream_cut_anywhere(payloads, cuts):
    packets = [
        mp.encode_publish(f"t/{i}", p, qos=i % 2, mid=i + 1, version=5)
        for i, p in enumerate(payloads)
    ]
    stream = b"".join(packets)
    reader = mp.PacketReader()
    got = []
    i = 0
    for cut in [*cuts, len(stream)]:
        got.extend(reader.feed(stream[i : i + cut]))
        i += cut
        if i >= len(stream):
            break
    got.extend(reader.feed(stream[i:]))
    assert reader.pending == 0
    assert [mp.parse_publish(f, b, 5)[1] for f, b in got] == payloads


def test_connect_carries_will_credentials_and_mqtt5_session_properties():
    will = mp.Will("spBv1.0/STATE/h", b'{"online": false}', qos=1, retain=True)
    first, body = _one(
        mp.encode_connect(
            "ing-1", version=5, keepalive=30, username="u", password="p", will=will,
            session_expiry_s=3600, receive_maximum=65535,
        )
    )  # fmt: skip
    assert first == 0x10
    assert body[:7] == b"\x00\x04MQTT\x05"
    flags = body[7]
    assert flags & 0x02 == 0  # clean start off: persistent session
    assert flags & 0x04 and (flags >> 3) & 3 == 1 and flags & 0x20  # will, QoS 1, retained
    assert flags & 0x80 and flags & 0x40  # user name and password
    assert b"\x11\x00\x00\x0e\x10" in body  # session expiry 3600 s
    assert b"\x21\xff\xff" in body  # receive maximum 65535
    assert body.endswith(b"\x00\x01u\x00\x01p")


def test_connect_311_has_no_properties():
    _, body = _one(mp.encode_connect("c", version=4, keepalive=10, clean_start=True))
    assert body == b"\x00\x04MQTT\x04\x02\x00\x0a\x00\x01c"


def test_subscribe_pubacks_and_acks_parsing():
    first, body = _one(mp.encode_subscribe(9, [("a/#", 1), ("b/#", 1)], version=5))
    assert first == 0x82 and body == b"\x00\x09\x00\x00\x03a/#\x01\x00\x03b/#\x01"
    assert mp.encode_pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    assert mp.parse_suback(b"\x00\x09\x00\x01\x80", 5) == (9, [1, 0x80])
    assert mp.parse_suback(b"\x00\x09\x01", 4) == (9, [1])
    assert mp.parse_connack(b"\x01\x00\x00", 5) == (True, 0)
    assert mp.parse_connack(b"\x00\x87", 5) == (False, 0x87)
    with pytest.raises(DataError):
        mp.parse_connack(b"\x00", 5)


def test_a_big_packet_arriving_in_small_reads_is_joined_once():
    payload = bytes(range(256)) * 4096  # 1 MiB
    stream = mp.encode_publish("big", payload, qos=1, mid=5, version=5) + mp.encode_pubacks([9])
    reader = mp.PacketReader()
    got = []
    for i in range(0, len(stream), 1000):
        got.extend(reader.feed(stream[i : i + 1000]))
        if i < len(stream) - 1000:
            assert len(got) == 0 or got[0][1][-1:] == payload[-1:]
    assert [f >> 4 for f, _ in got] == [mp.PUBLISH, mp.PUBACK]
    assert mp.parse_publish(got[0][0], got[0][1], 5) == ("big", payload, 1, 5)
    assert reader.pending == 0
