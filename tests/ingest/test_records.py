"""JSON ingest bodies: a JSON array, one object or NDJSON; bad records become dead letters."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indunet.errors import DataError
from indunet.ingest.records import ParsedBody, parse_body, parse_records
from indunet.ingest.values import TimeParser
from indunet.model import DataType

NOW = 1_800_000_000_000
T0 = 1_700_000_000_000
TIMES = TimeParser(now_ms=NOW)
A = "s1/press/l1/m1/power_kw"
B = "s1/press/l1/m1/mode"
E = "acme"


def parse(body: bytes | str, *, ndjson: bool = False, limit: int = 4096) -> ParsedBody:
    if isinstance(body, str):
        body = body.encode()
    return parse_body(
        body, ndjson=ndjson, enterprise=E, times=TIMES, source="test", payload_limit=limit
    )


def rows(parsed: ParsedBody) -> list[tuple]:
    t = parsed.batch.table
    return list(
        zip(
            *(t.column(c).to_pylist() for c in ("tag", "ts", "value", "text", "quality")),
            strict=True,
        )
    )


def test_json_array():
    body = json.dumps(
        [
            {"tag": A, "ts": T0, "value": 3.2},
            {"tag": B, "timestamp_ms": T0 + 1000, "value": "running", "quality": "uncertain"},
            {"tag": A, "ts": "2023-11-14T22:13:21Z", "value": 4, "quality": 2},
            {"tag": "s1/press/l1/m1/door_open", "ts": str(T0), "value": True},
        ]
    )
    parsed = parse(body)
    assert parsed.rejected == []
    assert rows(parsed) == [
        (A, T0, 3.2, None, 0),
        (B, T0 + 1000, None, "running", 1),
        (A, T0 + 1000, 4.0, None, 2),
        ("s1/press/l1/m1/door_open", T0, 1.0, None, 0),
    ]
    assert parsed.batch.types == {
        A: DataType.NUMBER,
        B: DataType.STRING,
        "s1/press/l1/m1/door_open": DataType.BOOLEAN,
    }
    assert parsed.batch.refs == ["record 0", "record 1", "record 2", "record 3"]
    assert parsed.batch.enterprise == E


def test_single_object_and_bom():
    parsed = parse(b"\xef\xbb\xbf" + json.dumps({"tag": A, "ts": T0, "value": 1}).encode())
    assert rows(parsed) == [(A, T0, 1.0, None, 0)]
    assert parsed.batch.refs == ["record 0"]


def test_tag_is_normalised():
    parsed = parse(json.dumps({"tag": " s1/press /l1/m1/power_kw ", "ts": T0, "value": 1}))
    assert rows(parsed)[0][0] == A


def test_ndjson_with_broken_and_blank_lines():
    lines = [
        json.dumps({"tag": A, "ts": T0, "value": 1.5}),
        "",
        "{not json",
        "   ",
        json.dumps({"tag": A, "ts": T0 + 1000, "value": 2.5}),
        '{"tag": "' + A + '", "ts": ' + str(T0) + ', "value": 1}  trailing',
        "[1, 2]",
        json.dumps({"tag": B, "ts": T0, "value": "idle"}) + "\r",  # CRLF line ends
    ]
    parsed = parse("\n".join(lines), ndjson=True)
    assert rows(parsed) == [
        (A, T0, 1.5, None, 0),
        (A, T0 + 1000, 2.5, None, 0),
        (B, T0, None, "idle", 0),
    ]
    assert parsed.batch.refs == ["line 1", "line 5", "line 8"]
    reasons = [d.reason for d in parsed.rejected]
    assert [d.ref for d in parsed.rejected] == ["line 3", "line 6", "line 7"]
    assert reasons[0].startswith("line 3: not valid JSON")
    assert reasons[1].startswith("line 6: not valid JSON")
    assert reasons[2] == "line 7: record must be a JSON object, got list"
    assert parsed.rejected[0].payload == "{not json"
    assert all(d.source == "test" for d in parsed.rejected)


def test_ndjson_line_may_hold_unicode_line_separators():
    # JSON allows U+2028/U+2029 and U+0085 unescaped in strings; they do not end an NDJSON line
    text = "a\u2028b\u2029c\x85d"
    body = json.dumps({"tag": B, "ts": T0, "value": text}, ensure_ascii=False) + "\n"
    parsed = parse(body, ndjson=True)
    assert parsed.rejected == []
    assert rows(parsed) == [(B, T0, None, text, 0)]


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"ts": T0, "value": 1}, "field 'tag' is missing"),
        ({"tag": A, "value": 1}, "field 'ts' is missing"),
        ({"tag": A, "ts": None, "value": 1}, "field 'ts' is missing"),
        ({"tag": A, "ts": T0}, "field 'value' is missing"),
        ({"tag": A, "ts": T0, "value": None}, "field 'value': value is missing"),
        ({"tag": A, "ts": T0, "value": 1, "unit": "kW"}, "unknown field(s) 'unit'"),
        ({"tag": A, "ts": T0, "value": 1, "b": 1, "a": 2}, "unknown field(s) 'a', 'b'"),
        ({"tag": A, "ts": T0, "timestamp_ms": T0, "value": 1}, "either 'ts' or 'timestamp_ms'"),
        ({"tag": "a/b/c", "ts": T0, "value": 1}, "field 'tag': tag 'a/b/c' must have 5 parts"),
        ({"tag": "a/b/c/d/e#", "ts": T0, "value": 1}, "field 'tag': tag name"),
        ({"tag": "a/b//d/e", "ts": T0, "value": 1}, "field 'tag': line name is empty"),
        ({"tag": 42, "ts": T0, "value": 1}, "field 'tag': tag must be text"),
        ({"tag": A, "ts": T0 // 1000, "value": 1}, "field 'ts': timestamp 1700000000 looks like"),
        ({"tag": A, "ts": "soon", "value": 1}, "field 'ts': timestamp 'soon' is in an unknown"),
        ({"tag": A, "ts": True, "value": 1}, "field 'ts': timestamp True is not a time"),
        ({"tag": A, "ts": -5, "value": 1}, "field 'ts': timestamp '-5' is before 1970"),
        ({"tag": A, "ts": NOW + 10 * 86_400_000, "value": 1}, "field 'ts': timestamp"),
        ({"tag": A, "ts": T0, "value": [1]}, "field 'value': value must be a number"),
        ({"tag": A, "ts": T0, "value": {"v": 1}}, "field 'value': value must be a number"),
        ({"tag": A, "ts": T0, "value": "x" * 300}, "field 'value': text value is longer"),
        ({"tag": A, "ts": T0, "value": 1, "quality": "great"}, "field 'quality': quality"),
        ({"tag": A, "ts": T0, "value": 1, "quality": 9}, "field 'quality': quality 9"),
    ],
)
def test_bad_record_names_record_and_field(record, words):
    good = {"tag": A, "ts": T0, "value": 0}
    parsed = parse(json.dumps([good, record, good]))
    assert len(parsed.batch) == 2
    assert parsed.batch.refs == ["record 0", "record 2"]
    [letter] = parsed.rejected
    assert letter.ref == "record 1"
    assert letter.reason.startswith("record 1: ")
    assert words in letter.reason, letter.reason
    assert json.loads(letter.payload) == record  # the rejected input is kept, not lost


def test_bad_record_in_ndjson_names_the_line():
    body = (
        json.dumps({"tag": A, "ts": T0, "value": 1})
        + "\n\n"
        + json.dumps({"tag": A, "ts": "later", "value": 1})
    )
    parsed = parse(body, ndjson=True)
    [letter] = parsed.rejected
    assert letter.reason.startswith("line 3: field 'ts':")


def test_nan_and_infinity_literals_are_refused():
    body = (
        f'[{{"tag": "{A}", "ts": {T0}, "value": NaN}}, {{"tag": "{A}", "ts": {T0}, '
        f'"value": Infinity}}, {{"tag": "{A}", "ts": {T0}, "value": 1e999}}]'
    )
    parsed = parse(body)
    assert len(parsed.batch) == 0
    assert [d.ref for d in parsed.rejected] == ["record 0", "record 1", "record 2"]
    assert all("not a finite number" in d.reason for d in parsed.rejected)


def test_duplicates_are_kept_in_the_batch():
    body = json.dumps([{"tag": A, "ts": T0, "value": v} for v in (1, 2, 3)])
    parsed = parse(body)
    assert [r[2] for r in rows(parsed)] == [1.0, 2.0, 3.0]


def test_payload_is_cut_to_the_limit():
    record = {"tag": A, "ts": "x" * 10_000, "value": 1}
    parsed = parse(json.dumps([record]), limit=100)
    assert len(parsed.rejected[0].payload) == 100
    parsed = parse("{" + "x" * 10_000 + "\n", ndjson=True, limit=50)
    assert len(parsed.rejected[0].payload) == 50


@pytest.mark.parametrize(
    ("body", "ndjson", "words"),
    [
        (b"", False, "body is empty"),
        (b"  \n\t ", False, "body is empty"),
        (b"", True, "body is empty"),
        (b"\n\n", True, "body is empty"),
        (b"\xef\xbb\xbf", False, "body is empty"),
        (b'[{"tag": "a/b/c/d/e", "value": "\xff"}]', False, "not valid UTF-8 (byte 32)"),
        (b'{"tag": "caf\xc3"}', True, "not valid UTF-8"),
        (b"[1, 2", False, "not valid JSON"),
        (b"{'tag': 1}", False, "not valid JSON"),
        (b"[1] [2]", False, "not valid JSON"),
        (b"42", False, "must be a JSON array"),
        (b'"text"', False, "must be a JSON array"),
        (b"null", False, "must be a JSON array"),
        (b"[" * 100_000 + b"]" * 100_000, False, "nested too deeply"),
        (b"[" + b"1" * 5000 + b"]", False, "not valid JSON"),
    ],
)
def test_unusable_body(body, ndjson, words):
    with pytest.raises(DataError, match=re.escape(words)):
        parse(body, ndjson=ndjson)


def test_deep_nesting_or_huge_number_in_ndjson_is_one_bad_line():
    good = json.dumps({"tag": A, "ts": T0, "value": 1})
    body = "\n".join(
        [
            good,
            "[" * 100_000,
            '{"tag": "' + A + '", "ts": 1' + "0" * 5000 + "}",
            good.replace(str(T0), str(T0 + 1)),
        ]
    )
    parsed = parse(body, ndjson=True)
    assert len(parsed.batch) == 2
    assert [d.ref for d in parsed.rejected] == ["line 2", "line 3"]
    assert "nested too deeply" in parsed.rejected[0].reason


def test_deeply_nested_value_is_one_bad_record():
    deep = "[" * 900 + "]" * 900
    body = (
        f'[{{"tag": "{A}", "ts": {T0}, "value": {deep}}}, {{"tag": "{A}", "ts": {T0}, "value": 2}}]'
    )
    parsed = parse(body)
    assert len(parsed.batch) == 1
    assert parsed.rejected[0].reason.startswith("record 0: field 'value'")


def test_unknown_field_names_are_quoted_safely():
    # a lone surrogate in a key must not end up raw in the reason (it could not be stored)
    parsed = parse(b'[{"tag": "a/b/c/d/e", "ts": 1700000000000, "value": 1, "\\ud800": 1}]')
    [letter] = parsed.rejected
    assert "unknown field(s) '\\ud800'" in letter.reason
    letter.reason.encode("utf-8")  # storable as UTF-8
    parsed = parse(b'[{"tag": "a/b/c/d/\\udcff", "ts": 1700000000000, "value": 1}]')
    assert "field 'tag'" in parsed.rejected[0].reason
    parsed.rejected[0].reason.encode("utf-8")


def test_parse_records_accepts_any_iterator():
    items = iter([("msg 1", {"tag": A, "ts": T0, "value": 1}), ("msg 2", "nope")])
    parsed = parse_records(items, enterprise=E, times=TIMES, source="mqtt")
    assert len(parsed.batch) == 1
    assert parsed.rejected[0].reason == "msg 2: record must be a JSON object, got str"
    assert parsed.rejected[0].source == "mqtt"


def test_end_to_end_counts_through_the_historian(historian):
    records = [
        {"tag": A, "ts": T0, "value": 1.0},
        {"tag": A, "ts": T0 + 1000, "value": "oops"},  # parse ok, wrong type for a number tag
        {"tag": A, "ts": T0 + 2000, "value": 3.0},
        {"tag": A, "ts": "bad", "value": 4.0},
        {"tag": B, "ts": T0, "value": "running"},
        {"tag": B, "ts": T0 + 1000, "value": 5},  # number for a text tag
    ]
    parsed = parse(json.dumps(records))
    result = historian.write(parsed.batch, source="test")
    rejected = parsed.rejected + result.rejected
    assert result.stored + len(rejected) == len(records)
    assert sorted(d.ref for d in rejected) == ["record 1", "record 3", "record 5"]
    bad_type = {d.ref: d.reason for d in result.rejected}
    assert "record 1" in bad_type["record 1"] and A in bad_type["record 1"]
    got = historian.series(E, A, T0, T0 + 10_000)
    assert got.column("value").to_pylist() == [1.0, 3.0]


def test_duplicates_in_one_body_are_deduplicated_by_the_historian(historian):
    body = json.dumps([{"tag": A, "ts": T0, "value": v} for v in (1, 2, 3)])
    result = historian.write(parse(body).batch)
    assert result.stored == 1
    assert historian.series(E, A, T0, T0 + 1).column("value").to_pylist() == [3.0]


# ---------------------------------------------------------------------------- properties
TAGS = st.sampled_from([A, B, "a/b/c", "", "a/b/c/d/#", 7, None, "x/y/z/w/\u2028"])
STAMPS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from([T0, str(T0), "2023-11-14T22:13:20Z", "2023-11-14T22:13:20+08:00"]),
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=300),
    st.lists(st.integers(), max_size=2),
)
RECORDS = st.one_of(
    st.fixed_dictionaries(
        {"tag": TAGS},
        optional={
            "ts": STAMPS,
            "timestamp_ms": STAMPS,
            "value": VALUES,
            "quality": st.sampled_from(["good", "bad", 1, 7, "x", None]),
            "extra": st.integers(),
        },
    ),
    st.integers(),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def _records_in(body: bytes, ndjson: bool) -> int:
    """Count the records of a body that parses as a whole, independently of the parser."""
    text = body.decode("utf-8-sig")
    if ndjson:
        return sum(1 for line in text.split("\n") if line.strip())
    doc = json.loads(text)
    return 1 if isinstance(doc, dict) else len(doc)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(RECORDS, max_size=8),
    ndjson=st.booleans(),
    noise=st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.binary(max_size=3)), max_size=2
    ),
)
def test_generated_bodies_count_every_record(records, ndjson, noise):
    if ndjson:
        body = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    else:
        body = json.dumps(records, ensure_ascii=False).encode()
    for pos, junk in noise:  # sometimes damage the body
        body = body[:pos] + junk + body[pos:]
    try:
        parsed = parse_body(body, ndjson=ndjson, enterprise=E, times=TIMES, source="p")
    except DataError:
        return
    assert isinstance(parsed, ParsedBody)
    assert len(parsed.batch) + len(parsed.rejected) == _records_in(body, ndjson)
    assert len(parsed.batch.refs) == len(parsed.batch)
    for letter in parsed.rejected:
        assert letter.reason.startswith(letter.ref + ": ")
        letter.reason.encode("utf-8")
        letter.payload.encode("utf-8")
    if not noise:
        assert len(parsed.batch) + len(parsed.rejected) == len(records)


@settings(max_examples=200)
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_give_data_error_or_parsed_body(body, ndjson):
    try:
        parsed = parse_body(body, ndjson=ndjson, enterprise=E, times=TIMES, source="p")
    except DataError:
        return
    assert isinstance(parsed, ParsedBody)
    assert len(parsed.batch) + len(parsed.rejected) == _records_in(body, ndjson)
