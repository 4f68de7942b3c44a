"""The JSON topic contract decoder, without sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.connect.codec.uns_json import MAX_PAYLOAD, UnsJsonDecoder, decode
from indunet.errors import DataError
from indunet.ingest.values import TimeParser
from indunet.model import DataType, Quality

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


# ---------------------------------------------------------------- UnsJsonDecoder (the fast path)
def _fast(decoder, topic, payload, now=NOW):
    """Run the stream decoder; return (enterprise, points, errors) like `decode` does."""
    builders: dict = {}
    enterprise, errors = decoder.decode_into(topic, payload, now, builders, "ref")
    points = []
    for builder in builders.values():
        batch = builder.take()
        for row in batch.table.to_pylist():
            points.append(
                (
                    row["tag"],
                    row["ts"],
                    row["value"],
                    row["text"],
                    batch.types[row["tag"]],
                    row["quality"],
                )
            )
    return enterprise, points, errors


def _slow(topic, payload, now=NOW):
    msg = decode(topic, payload, TimeParser(now_ms=now))
    points = [
        (t, ts, v.value, v.text, v.dtype, int(msg.quality.get(t, 0))) for t, ts, v in msg.points
    ]
    return msg.enterprise, points, msg.errors


def _same(decoder, topic, payload):
    """Both decoders give the same points and reasons, or both refuse with the same reason."""
    try:
        want = _slow(topic, payload)
    except DataError as exc:
        with pytest.raises(DataError) as got:
            _fast(decoder, topic, payload)
        assert str(got.value) == str(exc)
        return None
    got_enterprise, got_points, got_errors = _fast(decoder, topic, payload)
    assert got_enterprise == want[0]
    assert sorted(got_points, key=repr) == sorted(want[1], key=repr)
    assert got_errors == want[2]
    return want


def test_decoder_agrees_with_decode_on_good_and_mixed_payloads():
    decoder = UnsJsonDecoder()
    for _ in range(2):  # the second round is served from the caches
        _same(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "a": 3.2, "b": 7, "on": true}')
        _same(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "mode": "auto", "x": 1e308}')
        _same(decoder, MACHINE + "/temp_c", b'{"ts": "2023-11-14T22:13:20Z", "value": 41.5}')
        _same(decoder, MACHINE, b'{"ts": 1700000000000, "ok": 1, "bad": {"x": 1}, "n": null}')
        _same(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "big": 9223372036854775808}')
        _same(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "huge": 99999999999999999999}')
        _same(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "nan": NaN, "inf": Infinity}')
        _same(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "s": "\\ud800"}')
        _same(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "a": 1, "a": 2}')
        _same(decoder, MACHINE, b'{"ts": 1700000000000, "a": 1, "b": 2, "$quality": {"a": "bad"}}')
        _same(decoder, MACHINE, b'{"ts": 1700000000000, "a": 1, "$quality": {"a": "nope"}}')
        _same(decoder, MACHINE, b'{"ts": 1700000000000, "a": 1, "$quality": {"b": 1}}')
        _same(decoder, MACHINE, b'{"ts": 1700000000000, "a": 1, "$quality": [1]}')
        _same(decoder, MACHINE, b'{"ts": 1700000000000, "a": 1, "$quality": {"a": 0}}')
        _same(decoder, MACHINE + "/t", b'{"ts": 1700000000000, "value": 1, "quality": 1}')
        _same(decoder, MACHINE + "/t", b'{"ts": 1700000000000, "value": 1, "quality": "x"}')
        for value in (b"99999999999999999999", b"-9223372036854775808", b"1e300", b"7", b"true"):
            _same(
                decoder, MACHINE + "/t", b'{"timestamp_ms": 1700000000000, "value": ' + value + b"}"
            )
            _same(
                decoder, MACHINE + "/t", b'{"ts": "2023-11-14T22:13:20Z", "value": ' + value + b"}"
            )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("other/v1/acme/s/a/l/m", b'{"ts": 1700000000000, "x": 1}', "not under indunet/v1"),
        ("indunet/v1/acme/s//l/m", b'{"ts": 1700000000000, "x": 1}', "area name is empty"),
        ("indunet/v1/acme/s/a+/l/m", b'{"ts": 1700000000000, "x": 1}', "forbidden"),
        ("indunet/v1/acme/s/a/l/m\udcff", b'{"ts": 1700000000000, "x": 1}', "forbidden"),
        (MACHINE, b"{not json", "not valid JSON"),
        (MACHINE, b"\xff\xfe", "not valid UTF-8"),
        (MACHINE, b"[1, 2]", "must be a JSON object"),
        (MACHINE, b'"text"', "must be a JSON object"),
        (MACHINE, b'{"ts": 1700000000, "x": 1}', "epoch seconds"),
        (MACHINE, b'{"timestamp_ms": 99999999999, "x": 1}', "epoch seconds"),
        (MACHINE, b'{"timestamp_ms": 9999999999999, "x": 1}', "future"),
        (MACHINE, b'{"timestamp_ms": 1700000000000, "ts": 1700000000000, "x": 1}', "both"),
        (MACHINE, b'{"timestamp_ms": true, "x": 1}', "not a time"),
        (MACHINE, b'{"ts": 1700000000000}', "no tags"),
        (MACHINE, b"[" * 100_000, "nested too deeply"),
        (MACHINE + "/t", b'{"ts": 1700000000000, "value": 1, "unit": "kW"}', "unknown field"),
    ],
)
def test_decoder_refuses_what_decode_refuses(topic, payload, reason):
    decoder = UnsJsonDecoder()
    for _ in range(2):
        builders: dict = {}
        with pytest.raises(DataError, match=reason):
            decoder.decode_into(topic, payload, NOW, builders, "ref")
        assert all(len(b) == 0 for b in builders.values())  # nothing half-added


def test_a_refused_name_is_refused_again_and_never_cached():
    decoder = UnsJsonDecoder()
    bad_topic = "indunet/v1/acme/s1/press/l1/m#1"
    for _ in range(3):
        with pytest.raises(DataError, match="forbidden"):
            decoder.decode_into(bad_topic, b'{"ts": 1700000000000, "x": 1}', NOW, {}, "r")
        _, points, errors = _fast(decoder, MACHINE, b'{"ts": 1700000000000, "a/b": 1, "ok": 2}')
        assert [p[0] for p in points] == ["s1/press/l1/m1/ok"]
        assert len(errors) == 1 and "forbidden" in errors[0]
    assert bad_topic not in decoder._topics
    assert "a/b" not in decoder._topics[MACHINE].tags
    assert decoder.enterprise(bad_topic) is None
    assert decoder.enterprise(MACHINE) == "acme"


def test_padded_names_are_stored_trimmed_as_decode_does():
    decoder = UnsJsonDecoder()
    topic = "indunet/v1/acme/ s1 /press/l1/m1"
    for _ in range(2):
        assert _same(decoder, topic, b'{"ts": 1700000000000, " power ": 1}')[1][0][0] == (
            "s1/press/l1/m1/power"
        )


def test_caches_are_bounded_and_still_decode_past_the_bound():
    decoder = UnsJsonDecoder(max_topics=3, max_keys=5)
    for m in range(10):
        topic = f"indunet/v1/acme/s/a/l/m{m}"
        body = json.dumps({"ts": 1_700_000_000_000, **{f"k{i}": i for i in range(4)}}).encode()
        assert len(_fast(decoder, topic, body)[1]) == 4
    assert len(decoder._topics) == 3
    assert sum(len(t.tags) for t in decoder._topics.values()) == 5


def test_time_is_checked_against_the_given_now():
    decoder = UnsJsonDecoder(max_future_ms=1000)
    body = b'{"timestamp_ms": 1700000000500, "x": 1}'
    assert _fast(decoder, MACHINE, body, now=1_700_000_000_000)[1][0][1] == 1_700_000_000_500
    with pytest.raises(DataError, match="future"):
        decoder.decode_into(MACHINE, b'{"timestamp_ms": 1700000002000, "x": 1}',
                            1_700_000_000_000, {}, "r")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    topic_tail=st.lists(st.sampled_from(["acme", "s", "", " a ", "l#", "m", "+", "t"]), max_size=7),
    payload=st.one_of(
        st.binary(max_size=120),
        st.dictionaries(
            st.text(max_size=6),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.floats(),
                st.text(max_size=5),
                st.lists(st.integers(), max_size=2),
            ),
            max_size=5,
        ).map(lambda d: json.dumps({"ts": 1_700_000_000_000, **d}).encode()),
    ),
)
def test_decoder_matches_decode_on_any_input(topic_tail, payload):
    decoder = UnsJsonDecoder()
    topic = "/".join(["indunet", "v1", *topic_tail])
    _same(decoder, topic, payload)
    _same(decoder, topic, payload)  # and again from the caches


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=5),
    ),
    time_key=st.sampled_from(["timestamp_ms", "ts"]),
    extra=st.sampled_from([None, "unit", "value2"]),
)
def test_single_value_decoder_matches_decode(value, time_key, extra):
    doc = {time_key: 1_700_000_000_000, "value": value}
    if extra:
        doc[extra] = 1
    payload = json.dumps(doc).encode()  # NaN and Infinity as the standard encoder writes them
    decoder = UnsJsonDecoder()
    _same(decoder, MACHINE + "/t", payload)
    _same(decoder, MACHINE + "/t", payload)


# ---------------------------------------------------------------- quality in the contract
def test_values_carry_the_quality_the_payload_gives():
    body = (
        b'{"timestamp_ms": 1700000000000, "temp_c": 41.5, "p_kw": 3.2,'
        b' "$quality": {"temp_c": "uncertain", "p_kw": "good"}}'
    )
    msg = decode(MACHINE, body, TIMES)
    assert msg.errors == []
    assert {t.rsplit("/", 1)[1]: msg.quality.get(t, Quality.GOOD) for t, _, _ in msg.points} == {
        "temp_c": Quality.UNCERTAIN,
        "p_kw": Quality.GOOD,
    }
    single = decode(MACHINE + "/t", b'{"ts": 1700000000000, "value": 2, "quality": "stale"}', TIMES)
    assert single.quality == {single.points[0][0]: Quality.STALE}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"ts": 1700000000000, "a": 1, "$quality": "bad"}', "must be an object"),
        (b'{"ts": 1700000000000, "a": 1, "$quality": {"b": "bad"}}', "has no value for: 'b'"),
        (b'{"ts": 1700000000000, "a": 1, "$quality": {"ts": "bad"}}', "has no value for"),
    ],
)
def test_a_quality_that_cannot_apply_refuses_the_message(payload, reason):
    with pytest.raises(DataError, match=reason):
        decode(MACHINE, payload, TIMES)


def test_an_unreadable_quality_refuses_only_the_value_it_names():
    msg = decode(MACHINE, b'{"ts": 1700000000000, "a": 1, "b": 2, "$quality": {"a": 9}}', TIMES)
    assert [t.rsplit("/", 1)[1] for t, _, _ in msg.points] == ["b"]
    assert len(msg.errors) == 1 and "'a'" in msg.errors[0] and "quality 9" in msg.errors[0]


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3)),
        min_size=1,
    ),
    quality=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.one_of(st.sampled_from(["good", "UNCERTAIN", "bad", "stale", "x"]), st.integers(-1, 4)),
        max_size=3,
    ),
)
def test_decoder_matches_decode_with_quality(values, quality):
    payload = json.dumps({"ts": 1_700_000_000_000, **values, "$quality": quality}).encode()
    decoder = UnsJsonDecoder()
    _same(decoder, MACHINE, payload)
    _same(decoder, MACHINE, payload)


# ---------------------------------------------------------------- the shape cache
def _bits(points):
    """Points with floats as their exact bits (-0.0 and 0.0 differ, NaN equals NaN)."""
    return [tuple(float.hex(x) if isinstance(x, float) else x for x in point) for point in points]


def _exact(decoder, topic, payload):
    """Like `_same`, but values compared bit for bit, and in the payload's order when every
    value is a number under 2**63 in size (the shape cache's chunks keep it)."""
    try:
        want = _slow(topic, payload)
    except DataError as exc:
        with pytest.raises(DataError) as got:
            _fast(decoder, topic, payload)
        assert str(got.value) == str(exc)
        return
    got = _fast(decoder, topic, payload)
    assert got[0] == want[0]
    assert got[2] == want[2]
    assert sorted(_bits(got[1]), key=repr) == sorted(_bits(want[1]), key=repr)
    plain = [p[4] == DataType.NUMBER and p[3] is None and abs(p[2]) < 2**63 for p in want[1]]
    if all(plain) and not want[2]:
        assert _bits(got[1]) == _bits(want[1])


def _payload(pairs):
    return ("{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}").encode()


_PLAIN = st.one_of(
    st.floats(-1e6, 1e6).map(repr),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["-0.0", "0", "1e300", "-1e300", "4.9e-324", "9007199254740993"]),
)
_ODD = st.sampled_from(
    [
        "true",
        "false",
        "null",
        '"text"',
        "[1]",
        '{"x": 1}',
        "NaN",
        "Infinity",
        "-Infinity",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
        "1e19",
        "-1e19",
        "9.3e18",
        "1e400",
    ]
)


@st.composite
def _stream(draw):
    """Messages of one machine topic that mostly repeat one set of keys, sometimes reordered,
    grown, shrunk, or with a value the fast path must leave to the exact one."""
    base = draw(st.lists(st.sampled_from(["a", "b", "c", "d", " e ", "f/g"]), min_size=1,
                         max_size=5, unique=True))  # fmt: skip
    time_key = draw(st.sampled_from(["timestamp_ms", "ts"]))
    messages = []
    for _ in range(draw(st.integers(1, 8))):
        keys = list(base)
        change = draw(st.sampled_from(["same", "same", "same", "reorder", "add", "drop", "time"]))
        if change == "reorder":
            keys = draw(st.permutations(keys))
        elif change == "add":
            keys.append("z")
        elif change == "drop" and len(keys) > 1:
            keys.pop()
        values = [draw(st.one_of(_PLAIN, _PLAIN, _PLAIN, _ODD)) for _ in keys]
        pairs = list(zip(keys, values, strict=True))
        key = "ts" if change == "time" and time_key == "timestamp_ms" else time_key
        pairs.insert(draw(st.integers(0, len(pairs))), (key, "1700000000000"))
        messages.append(_payload(pairs))
    return messages


@settings(max_examples=400, deadline=None)
@given(messages=_stream())
def test_the_shape_cache_matches_decode_bit_for_bit(messages):
    decoder = UnsJsonDecoder()
    for payload in messages:
        _exact(decoder, MACHINE, payload)
    for payload in messages:  # again, every shape now cached
        _exact(decoder, MACHINE, payload)


def test_a_repeated_shape_is_added_as_one_chunk_and_odd_values_take_the_exact_path():
    decoder = UnsJsonDecoder()
    builders: dict = {}
    for i in range(3):
        body = f'{{"timestamp_ms": 1700000000000, "a": {i}.5, "b": {i}}}'.encode()
        decoder.decode_into(MACHINE, body, NOW, builders, "ref")
    assert decoder._topics[MACHINE].shape is not None
    assert len(builders["acme"]._chunks) == 2  # the first message taught the shape
    odd = [b'{"timestamp_ms": 1700000000000, "a": true, "b": 1}',
           b'{"timestamp_ms": 1700000000000, "a": 1e19, "b": 1}',
           b'{"timestamp_ms": 1700000000000, "a": NaN, "b": 1}',
           b'{"timestamp_ms": 1700000000000, "a": 99999999999999999999, "b": 1}',
           b'{"timestamp_ms": 1700000000000, "a": "x", "b": 1}',
           b'{"timestamp_ms": 1700000000000, "b": 1, "a": 2}']  # fmt: skip
    for body in odd:
        _exact(decoder, MACHINE, body)
        _exact(decoder, MACHINE, b'{"timestamp_ms": 1700000000000, "a": 0.5, "b": 0}')
    batch = builders["acme"].take()
    assert batch.table.column("value").to_pylist() == [0.5, 0.0, 1.5, 1.0, 2.5, 2.0]


def test_reordered_keys_keep_each_value_with_its_tag():
    decoder = UnsJsonDecoder()
    builders: dict = {}
    decoder.decode_into(MACHINE, b'{"ts": 1700000000000, "a": 1, "b": 2}', NOW, builders, "r")
    decoder.decode_into(MACHINE, b'{"b": 4, "ts": 1700000000001, "a": 3}', NOW, builders, "r")
    decoder.decode_into(MACHINE, b'{"b": 6, "ts": 1700000000002, "a": 5}', NOW, builders, "r")
    rows = builders["acme"].take().table.to_pylist()
    got = [(r["tag"].rsplit("/", 1)[1], r["ts"] - 1_700_000_000_000, r["value"]) for r in rows]
    assert got == [("a", 0, 1.0), ("b", 0, 2.0), ("b", 1, 4.0), ("a", 1, 3.0),
                   ("b", 2, 6.0), ("a", 2, 5.0)]  # fmt: skip
