"""Sparkplug B host codec, fed with payloads encoded by pysparkplug (an independent encoder)."""

from __future__ import annotations

import contextlib

import pysparkplug as sp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.connect.codec.sparkplug import (
    REBIRTH_METRIC,
    SparkplugHost,
    SparkplugMapping,
    encode_rebirth,
)
from indunet.connect.codec.sparkplug import pb as spb
from indunet.errors import DataError
from indunet.model import DataType

T = 1_700_000_000_000
G, N, D = "plant1", "gw1", "press7"
MACH = f"{G}/{N}/devices/{D}"


def metric(name, dtype, value, alias=None, ts=None):
    return sp.Metric(timestamp=ts, name=name, datatype=dtype, value=value, alias=alias)


def nbirth(seq=0, bd=3, extra=()):
    return sp.NBirth(
        timestamp=T,
        seq=seq,
        metrics=(
            metric("bdSeq", sp.DataType.INT64, bd),
            metric("Uptime", sp.DataType.INT64, 5, alias=1),
            metric(REBIRTH_METRIC, sp.DataType.BOOLEAN, False),
            *extra,
        ),
    ).encode(include_dtypes=True)


def dbirth(seq=1):
    return sp.DBirth(
        timestamp=T,
        seq=seq,
        metrics=(
            metric("Power/kW", sp.DataType.DOUBLE, 12.5, alias=10),
            metric("Temp", sp.DataType.INT16, -40, alias=11),
            metric("Running", sp.DataType.BOOLEAN, True, alias=12),
            metric("Recipe", sp.DataType.STRING, "A-1", alias=13),
        ),
    ).encode(include_dtypes=True)


def ddata(seq, metrics):
    return sp.DData(timestamp=T + 1000, seq=seq, metrics=tuple(metrics)).encode()


def topic(kind, device=None):
    return f"spBv1.0/{G}/{kind}/{N}" + (f"/{device}" if device else "")


@pytest.fixture
def host():
    return SparkplugHost(SparkplugMapping(enterprise="acme"))


def test_birth_then_data_by_alias(host):
    out = host.handle(topic("NBIRTH"), nbirth())
    assert [(t, v.value) for t, _, v in out.all_points()] == [(f"{G}/{N}/node/{N}/Uptime", 5.0)]
    out = host.handle(topic("DBIRTH", D), dbirth())
    got = {t.rsplit("/", 1)[1]: (v.value, v.text, v.dtype) for t, _, v in out.all_points()}
    assert got == {
        "Power.kW": (12.5, None, DataType.NUMBER),
        "Temp": (-40.0, None, DataType.NUMBER),  # signed int16 decoded with its sign
        "Running": (1.0, None, DataType.BOOLEAN),
        "Recipe": (None, "A-1", DataType.STRING),
    }
    assert out.rebirth is None and out.errors == []
    out = host.handle(
        topic("DDATA", D),
        ddata(
            2,
            [
                sp.Metric(
                    timestamp=T + 1000, name=None, alias=10, datatype=sp.DataType.DOUBLE, value=13.0
                )
            ],
        ),
    )
    assert [(t, ts, v.value) for t, ts, v in out.all_points()] == [
        (f"{MACH}/Power.kW", T + 1000, 13.0)
    ]


def test_data_before_birth_requests_rebirth(host):
    out = host.handle(topic("DDATA", D), ddata(5, [metric("Temp", sp.DataType.INT16, 1)]))
    assert out.rebirth == (G, N) and out.all_points() == []
    assert "before its NBIRTH" in out.errors[0]


def test_seq_gap_requests_rebirth_but_keeps_good_data(host):
    host.handle(topic("NBIRTH"), nbirth(seq=0))
    host.handle(topic("DBIRTH", D), dbirth(seq=1))
    out = host.handle(
        topic("DDATA", D),
        ddata(
            7, [sp.Metric(timestamp=None, name=None, alias=11, datatype=sp.DataType.INT16, value=3)]
        ),
    )
    assert out.rebirth == (G, N)
    assert "expected 2, got 7" in out.errors[0]
    assert [v.value for _, _, v in out.all_points()] == [3.0]


def test_seq_wraps_at_255(host):
    host.handle(topic("NBIRTH"), nbirth(seq=254))
    out = host.handle(topic("DBIRTH", D), dbirth(seq=255))
    assert out.rebirth is None
    out = host.handle(topic("DDATA", D), ddata(0, [metric("Temp", sp.DataType.INT16, 1)]))
    assert out.rebirth is None and out.errors == []


def test_unknown_alias_requests_rebirth(host):
    host.handle(topic("NBIRTH"), nbirth())
    host.handle(topic("DBIRTH", D), dbirth())
    out = host.handle(
        topic("DDATA", D),
        ddata(
            2,
            [
                sp.Metric(
                    timestamp=None, name=None, alias=99, datatype=sp.DataType.DOUBLE, value=1.0
                )
            ],
        ),
    )
    assert out.rebirth == (G, N) and "unknown alias 99" in out.errors[0]


def test_ndeath_with_matching_bdseq_marks_node_and_devices_stale(host):
    host.handle(topic("NBIRTH"), nbirth(bd=3))
    host.handle(topic("DBIRTH", D), dbirth())
    stale_death = sp.NDeath(
        timestamp=T, bd_seq_metric=metric("bdSeq", sp.DataType.INT64, 2)
    ).encode()
    out = host.handle(topic("NDEATH"), stale_death)
    assert out.stale == [] and "does not match" in out.errors[0]
    death = sp.NDeath(timestamp=T, bd_seq_metric=metric("bdSeq", sp.DataType.INT64, 3)).encode()
    out = host.handle(topic("NDEATH"), death)
    assert out.stale == [f"{G}/{N}/node/{N}", MACH]
    # after death, data needs a new birth
    assert host.handle(topic("DDATA", D), ddata(3, [])).rebirth == (G, N)


def test_ddeath_marks_the_device_stale(host):
    host.handle(topic("NBIRTH"), nbirth())
    host.handle(topic("DBIRTH", D), dbirth())
    out = host.handle(topic("DDEATH", D), sp.DDeath(timestamp=T, seq=2).encode())
    assert out.stale == [MACH]


def test_unsupported_datatypes_are_refused_by_name(host):
    msg = spb.Payload()
    msg.timestamp, msg.seq = T, 0
    m = msg.metrics.add()
    m.name, m.datatype = "Recipe table", 16  # DataSet
    out = host.handle(topic("NBIRTH"), msg.SerializeToString())
    assert "DataSet is not supported" in out.errors[0]


@pytest.mark.parametrize(
    ("t", "payload", "reason"),
    [
        ("spBv1.0/g/NDATA", b"", "not a Sparkplug B topic"),
        ("spAv1.0/g/NDATA/n", b"", "not a Sparkplug B topic"),
        ("spBv1.0/g/NFOO/n", b"", "not a Sparkplug B type"),
        ("spBv1.0/g/DDATA/n", b"", "wrong number of levels"),
        ("spBv1.0/g/NDATA/n/d", b"", "wrong number of levels"),
        ("spBv1.0/g/NBIRTH/n", b"\xff\xff\xff\xff", "not a Sparkplug B protobuf"),
    ],
)
def test_malformed_topics_and_payloads(host, t, payload, reason):
    with pytest.raises(DataError, match=reason):
        host.handle(t, payload)


def test_state_and_commands_are_not_data(host):
    assert host.handle("spBv1.0/STATE/other-host", b'{"online": true}').points == []
    assert host.handle(topic("NCMD"), encode_rebirth(T)).points == []


def test_rebirth_request_payload_is_valid_sparkplug():
    decoded = sp.NCmd.decode(encode_rebirth(T))
    assert decoded.metrics[0].name == REBIRTH_METRIC and decoded.metrics[0].value is True


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), kind=st.sampled_from(["NBIRTH", "NDATA", "NDEATH"]))
def test_garbage_never_crashes_the_host(payload, kind):
    host = SparkplugHost(SparkplugMapping())
    with contextlib.suppress(DataError):
        host.handle(topic(kind), payload)


# ---------------------------------------------------------------- the DATA fast path
def _birth_device(host, metrics, device="d1"):
    assert host.handle(topic("NBIRTH"), nbirth()).errors == []
    db = sp.DBirth(timestamp=T, seq=1, metrics=tuple(metrics)).encode(include_dtypes=True)
    return host.handle(topic("DBIRTH", device), db).errors


def _ddata(seq, metrics, device="d1", timestamp=T + 1000):
    message = spb.Payload()
    message.timestamp = timestamp
    message.seq = seq
    for fields in metrics:
        metric = message.metrics.add()
        for key, value in fields.items():
            setattr(metric, key, value)
    return topic("DDATA", device), message.SerializeToString()


def test_fast_path_gives_the_same_points_as_the_full_path():
    host = SparkplugHost(SparkplugMapping(enterprise="acme"))
    _birth_device(
        host,
        [
            metric("Power", sp.DataType.DOUBLE, 1.0, alias=1),
            metric("Temp", sp.DataType.FLOAT, 2.0, alias=2),
            metric("Count", sp.DataType.INT32, 3, alias=3),
            metric("Zero", sp.DataType.DOUBLE, 0.0, alias=0),
        ],
    )
    topic, payload = _ddata(
        2,
        [
            {"alias": 1, "double_value": 42.5},  # fast
            {"alias": 2, "float_value": 1.5, "timestamp": T + 5},  # fast, own timestamp
            {"alias": 3, "int_value": 2**32 - 1},  # Int32: full path, sign-extended
            {"alias": 0, "double_value": 7.0},  # alias 0: full path
            {"alias": 1, "double_value": 0.0},  # zero: full path
            {"alias": 1, "is_null": True},  # null: nothing stored
            {"alias": 1, "double_value": 9.0, "datatype": sp.DataType.INT64},  # override
            {"name": "Power", "double_value": 8.0},  # by name
        ],
    )
    out = host.handle(topic, payload)
    assert out.errors == []
    mach = f"{G}/{N}/devices/d1"
    assert len(out.numbers) == 2
    assert sorted((t.rsplit("/", 1)[1], ts, v.value) for t, ts, v in out.all_points()) == sorted(
        [
            ("Power", T + 1000, 42.5),
            ("Temp", T + 5, 1.5),
            ("Count", T + 1000, -1.0),
            ("Zero", T + 1000, 7.0),
            ("Power", T + 1000, 0.0),
            ("Power", T + 1000, 9.0),
            ("Power", T + 1000, 8.0),
        ]
    )
    assert all(t.startswith(mach + "/") for t, _, _ in out.all_points())


def test_fast_path_refuses_what_the_full_path_refuses():
    host = SparkplugHost(SparkplugMapping(enterprise="acme"))
    _birth_device(host, [metric("Power", sp.DataType.DOUBLE, 1.0, alias=1)])
    topic, payload = _ddata(
        2,
        [
            {"alias": 1, "double_value": float("nan")},
            {"alias": 1, "double_value": float("inf")},
            {"alias": 1, "string_value": "high"},
            {"alias": 9, "double_value": 1.0},
        ],
    )
    out = host.handle(topic, payload)
    assert out.all_points() == []
    assert len(out.errors) == 4
    assert "not a finite number" in out.errors[0] and "not a finite number" in out.errors[1]
    assert "'high'" in out.errors[2]
    assert "unknown alias 9" in out.errors[3] and out.rebirth == (G, N)


def test_a_rebirth_with_new_aliases_is_followed_by_the_fast_path():
    host = SparkplugHost(SparkplugMapping(enterprise="acme"))
    _birth_device(host, [metric("Power", sp.DataType.DOUBLE, 1.0, alias=1)])
    _birth_device(host, [metric("Speed", sp.DataType.DOUBLE, 1.0, alias=1)])
    out = host.handle(*_ddata(2, [{"alias": 1, "double_value": 5.0}]))
    assert [(t.rsplit("/", 1)[1], v.value) for t, _, v in out.all_points()] == [("Speed", 5.0)]


def test_a_metric_name_the_namespace_refuses_is_refused_every_time():
    host = SparkplugHost(SparkplugMapping(enterprise="acme"))
    assert (
        "longer than"
        in _birth_device(host, [metric("x" * 200, sp.DataType.DOUBLE, 1.0, alias=1)])[0]
    )
    for seq in (2, 3):
        out = host.handle(*_ddata(seq, [{"alias": 1, "double_value": 5.0}]))
        assert out.all_points() == [] and "longer than" in out.errors[0]
