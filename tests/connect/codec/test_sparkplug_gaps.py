"""The gaps a reference edge node found: compressed payloads, 64-bit integers, routes, commands."""

from __future__ import annotations

import gzip
import zlib

import pytest

from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.connect.codec.sparkplug import (
    EXACT_LIMIT,
    MAX_PAYLOAD,
    SparkplugHost,
    SparkplugMapping,
    SparkplugRoute,
    encode_command,
)
from indunet.errors import DataError
from tests.connect.sparkplug_conformance.peers import compress, metric, payload

T = 1_700_000_000_000
G, N = "plant1", "gw1"


def _topic(kind: str, device: str | None = None, group: str = G, node: str = N) -> str:
    return f"spBv1.0/{group}/{kind}/{node}" + (f"/{device}" if device else "")


def _birth(host: SparkplugHost, metrics: list, group: str = G, node: str = N) -> None:
    base = [metric("bdSeq", dtype=pb.Int64, value=0)]
    out = host.handle(
        _topic("NBIRTH", group=group, node=node),
        payload(base + metrics, seq=0, ts=T).SerializeToString(),
    )
    assert not out.errors, out.errors


@pytest.fixture
def host() -> SparkplugHost:
    h = SparkplugHost(SparkplugMapping(enterprise="acme"))
    _birth(h, [metric("Count", alias=1, dtype=pb.UInt64, value=1)])
    return h


# ---------------------------------------------------------------------------- compression
@pytest.mark.parametrize("algorithm", ["GZIP", "DEFLATE"])
def test_compressed_data_is_inflated_and_stored(host, algorithm):
    inner = payload([metric(alias=1, dtype=pb.UInt64, value=42)], seq=1, ts=T + 1)
    out = host.handle(_topic("NDATA"), compress(inner, algorithm))
    assert not out.errors and out.rebirth is None
    assert [(p[0], p[2].value) for p in out.points] == [(f"{G}/{N}/node/{N}/Count", 42.0)]


def test_a_compressed_birth_works_too():
    h = SparkplugHost(SparkplugMapping())
    inner = payload(
        [metric("bdSeq", dtype=pb.Int64, value=0), metric("T", alias=5, dtype=pb.Float, value=1)],
        seq=0,
        ts=T,
    )
    out = h.handle(_topic("NBIRTH"), compress(inner, "DEFLATE"))
    assert not out.errors and [p[2].value for p in out.points] == [1.0]


def _outer(body: bytes, algorithm: str | None = "GZIP", uuid: str = "SPBV1.0_COMPRESSED"):
    outer = pb.Payload()
    outer.uuid = uuid
    outer.body = body
    if algorithm is not None:
        outer.metrics.append(metric("algorithm", dtype=pb.String, value=algorithm))
    return outer.SerializeToString()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_outer(b"not gzip at all"), "does not inflate with GZIP"),
        (_outer(zlib.compress(b"x"), "BROTLI"), "not GZIP or DEFLATE"),
        (_outer(gzip.compress(b"\xff\xff\xff"), "GZIP"), "not a Sparkplug B protobuf"),
        (_outer(gzip.compress(b"\x00" * (MAX_PAYLOAD + 10))), "beyond the"),  # a bomb
        (_outer(gzip.compress(b"\x08\x01" * 10)[:-12]), "cut short"),
        (_outer(gzip.compress(_outer(gzip.compress(b"")))), "another compressed payload"),
    ],
)
def test_bad_compressed_payloads_are_refused_with_the_reason(host, data, reason):
    with pytest.raises(DataError, match=reason):
        host.handle(_topic("NDATA"), data)
    assert host.nodes[(G, N)].online  # a refused message changes nothing of the node


def test_compressed_without_body_is_refused(host):
    outer = pb.Payload()
    outer.uuid = "SPBV1.0_COMPRESSED"
    with pytest.raises(DataError, match="has no body"):
        host.handle(_topic("NDATA"), outer.SerializeToString())


# ---------------------------------------------------------------------------- 64-bit integers
@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (pb.UInt64, 2**53 + 1),
        (pb.UInt64, 2**64 - 1),
        (pb.Int64, -(2**63)),
        (pb.Int64, 2**63 - 1),
        (pb.Int64, -(2**53) - 3),
    ],
)
def test_integers_beyond_2_53_keep_their_exact_digits(dtype, value):
    h = SparkplugHost(SparkplugMapping())
    _birth(h, [metric("Id", alias=2, dtype=dtype, value=value)])
    out = h.handle(
        _topic("NDATA"),
        payload([metric(alias=2, dtype=dtype, value=value)], seq=1, ts=T).SerializeToString(),
    )
    (_, _, v) = out.points[0]
    assert v.text == str(value) and int(v.text) == value
    assert v.value == float(value)  # the float for aggregates and charts


def test_integers_within_2_53_are_plain_numbers():
    h = SparkplugHost(SparkplugMapping())
    _birth(h, [metric("Id", alias=2, dtype=pb.Int64, value=EXACT_LIMIT)])
    (_, _, v) = h.handle(
        _topic("NDATA"),
        payload([metric(alias=2, dtype=pb.Int64, value=-EXACT_LIMIT)], seq=1).SerializeToString(),
    ).points[0]
    assert v.text is None and v.value == -float(EXACT_LIMIT)


# ---------------------------------------------------------------------------- routes
def test_routes_map_groups_and_nodes_to_enterprise_and_site():
    mapping = SparkplugMapping(
        enterprise="demo",
        routes=(
            SparkplugRoute("plant1", enterprise="acme", site="shanghai"),
            SparkplugRoute("plant1", node="gw9", enterprise="beta"),
            SparkplugRoute("plant2", site="suzhou"),
        ),
    )
    assert mapping.route("plant1", "gw1") == ("acme", "shanghai")
    assert mapping.route("plant1", "gw9") == ("beta", "plant1")  # the node's route wins
    assert mapping.route("plant2", "gw1") == ("demo", "suzhou")
    assert mapping.route("other", "gw1") == ("demo", "other")
    assert mapping.machine("plant1", "gw1", "press7") == "shanghai/gw1/devices/press7"
    h = SparkplugHost(mapping)
    _birth(h, [metric("T", alias=1, dtype=pb.Double, value=1.0)], group="plant1", node="gw9")
    out = h.handle(
        _topic("NDATA", group="plant1", node="gw9"),
        payload([metric(alias=1, dtype=pb.Double, value=2.0)], seq=1).SerializeToString(),
    )
    assert out.enterprise == "beta"
    assert h.enterprise_of("spBv1.0/plant1/NDATA/gw1") == "acme"
    assert h.enterprise_of("spBv1.0/STATE/x") == "demo"


@pytest.mark.parametrize(
    "route",
    [
        dict(group="a/b"),
        dict(group="g", node="n+"),
        dict(group="g", enterprise="#"),
        dict(group="g", site=""),
        dict(group=""),
    ],
)
def test_bad_routes_are_refused(route):
    with pytest.raises(DataError):
        SparkplugRoute(**route)


# ---------------------------------------------------------------------------- commands
def test_encode_command_checks_names_and_values(host):
    out = pb.Payload.FromString(encode_command(host, G, N, None, {"Count": 2**64 - 1}, T))
    assert out.timestamp == T and not out.HasField("seq")
    assert out.metrics[0].long_value == 2**64 - 1 and out.metrics[0].datatype == pb.UInt64
    for values, reason in [
        ({}, "at least one"),
        ({"Nope": 1}, "not in the birth"),
        ({"Count": -1}, "does not fit"),
        ({"Count": 2**64}, "does not fit"),
        ({"Count": 1.5}, "does not fit"),
    ]:
        with pytest.raises(DataError, match=reason):
            encode_command(host, G, N, None, values, T)
    with pytest.raises(DataError, match="not online"):
        encode_command(host, G, "unknown", None, {"Count": 1}, T)
    with pytest.raises(DataError, match="not online"):
        encode_command(host, G, N, "no-such-device", {"Count": 1}, T)


# ---------------------------------------------------------------------------- dead letters
@pytest.mark.parametrize(
    ("raw", "limit", "want"),
    [
        (b'{"value": 1}', 100, '{"value": 1}'),
        (b"temp\tC\n", 100, "temp\tC\n"),  # tab and newline are text
        ("温度 ok".encode(), 100, "温度 ok"),
        ("温度".encode(), 4, "温"),  # the limit cut a character in two: drop the half
        (b"\x08\x01\x12\x05hello", 100, "base64:CAESBWhlbGxv"),  # protobuf: binary
        (b"\xff\xfe\xfd", 100, "base64://79"),  # not UTF-8
        (b"a\x00b", 100, "base64:YQBi"),  # NUL: binary even though it decodes
        (b"\xff" * 10, 4, "base64://///w=="),  # binary, cut at the limit
    ],
)
def test_dead_letter_payloads_are_text_or_base64(raw, limit, want):
    from indunet.connect.mqtt import _payload_text

    assert _payload_text(raw, limit) == want
