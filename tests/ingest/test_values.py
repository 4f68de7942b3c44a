"""Timestamps and values from text and JSON: what is accepted, and the errors for the rest."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indunet.errors import ConfigError, DataError
from indunet.ingest.values import (
    MAX_TEXT,
    TimeParser,
    Value,
    parse_cell,
    parse_json_value,
    parse_quality,
    zone,
)
from indunet.model import DataType, Quality

NOW = 1_800_000_000_000  # 2027-01-15T08:00:00Z, a fixed "now" so no test depends on the clock
DAY = 86_400_000
P = TimeParser(now_ms=NOW)


def ms(*args: int, tz=UTC) -> int:
    """Epoch ms of a wall-clock time, computed with integer arithmetic only."""
    dt = datetime(*args, tzinfo=tz)
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


# ---------------------------------------------------------------------------- TimeParser
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1_600_000_000_000, 1_600_000_000_000),
        ("1600000000000", 1_600_000_000_000),
        (" 1600000000000 ", 1_600_000_000_000),
        (1_600_000_000_000.0, 1_600_000_000_000),
        (1.6e12, 1_600_000_000_000),
        ("1.6e12", 1_600_000_000_000),
        (1_600_000_000_123.9, 1_600_000_000_123),  # sub-millisecond part is dropped
        (NOW + DAY, NOW + DAY),  # exactly the allowed future
        (0, 0),  # the epoch itself
        ("2024-03-05T08:00:00Z", ms(2024, 3, 5, 8)),
        ("2024-03-05t08:00:00z", ms(2024, 3, 5, 8)),
        ("2024-03-05T08:00:00+08:00", ms(2024, 3, 5, 0)),
        ("2024-03-05T08:00:00-05:30", ms(2024, 3, 5, 13, 30)),
        ("2024-03-05 08:00:00.250Z", ms(2024, 3, 5, 8) + 250),
        ("2024-03-05T08:00:00.123456Z", ms(2024, 3, 5, 8) + 123),
        ("2039-06-13T14:07:44.535Z", 2_191_586_864_535),  # a value float maths gets wrong
        ("2024-03-05", ms(2024, 3, 5)),
        ("2024-03-05T08:00", ms(2024, 3, 5, 8)),  # naive: the parser's zone (UTC)
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:00:00-02:00", 3_600_000),  # 01:00Z on 1970-01-01
        (datetime(2024, 3, 5, 8, tzinfo=UTC), ms(2024, 3, 5, 8)),
        (datetime(2024, 3, 5, 8), ms(2024, 3, 5, 8)),
    ],
)
def test_time_accepted(raw, expected):
    parser = TimeParser(now_ms=2_300_000_000_000) if isinstance(raw, str) and "2039" in raw else P
    assert parser.parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (1_700_000_000, "epoch seconds"),  # epoch seconds of the same instant
        ("1700000000", "epoch seconds"),
        (1_700_000_000.5, "epoch seconds"),
        ("20240305", "epoch seconds"),
        (-1, "before 1970"),
        ("-1700000000000", "before 1970"),
        ("1969-12-31T23:59:59.999Z", "before 1970"),
        ("1900-01-01T00:00:00Z", "before 1970"),
        ("1970-01-01T00:30:00+01:00", "before 1970"),
        (NOW + DAY + 1, "future"),
        ("2100-01-01T00:00:00Z", "future"),
        ("9999-12-31T23:59:59Z", "future"),
        (10**30, "future"),
        ("1" + "0" * 400, "future"),
        (1e300, "future"),
        (math.nan, "not finite"),
        (math.inf, "not finite"),
        (-math.inf, "not finite"),
        ("nan", "not finite"),
        ("NaN", "not finite"),
        ("inf", "not finite"),
        ("-Infinity", "not finite"),
        ("1e999", "not finite"),
        ("", "empty"),
        ("   ", "empty"),
        (True, "not a time"),
        (False, "not a time"),
        (None, "not a time"),
        ([1_700_000_000_000], "not a time"),
        ({"ms": 1}, "not a time"),
        ("yesterday", "unknown format"),
        ("2024-02-30T00:00:00Z", "unknown format"),
        ("05/03/2024 08:00", "unknown format"),
        ("1_700_000_000_000", "unknown format"),
        ("0x1234", "unknown format"),
    ],
)
def test_time_refused(raw, words):
    with pytest.raises(DataError, match=words):
        P.parse(raw)


def test_naive_times_use_the_zone():
    seoul = TimeParser(now_ms=NOW, tz=zone("Asia/Seoul"))
    assert seoul.parse("2018-01-01T00:15:00") == ms(2017, 12, 31, 15, 15)
    # an explicit offset wins over the parser's zone
    assert seoul.parse("2018-01-01T00:15:00Z") == ms(2018, 1, 1, 0, 15)
    # epoch numbers are zone-free
    assert seoul.parse(1_600_000_000_000) == 1_600_000_000_000


def test_strptime_format():
    p = TimeParser(now_ms=NOW, fmt="%d/%m/%Y %H:%M", tz=zone("Asia/Shanghai"))
    assert p.parse("05/03/2024 08:00") == ms(2024, 3, 5, 0)
    assert p.parse(" 31/12/2018 23:45 ") == ms(2018, 12, 31, 15, 45)
    with pytest.raises(DataError, match="does not match the time format '%d/%m/%Y %H:%M'"):
        p.parse("2024-03-05T08:00:00Z")  # with a format, only the format is accepted
    with pytest.raises(DataError, match="does not match"):
        p.parse("32/01/2024 00:00")
    with pytest.raises(DataError, match="before 1970"):
        p.parse("01/01/1969 00:00")
    with_offset = TimeParser(now_ms=NOW, fmt="%Y%m%d %H%M%S %z")
    assert with_offset.parse("20240305 080000 +0100") == ms(2024, 3, 5, 7)


def test_midnight_ends_day():
    p = TimeParser(now_ms=NOW, fmt="%d/%m/%Y %H:%M", midnight_ends_day=True)
    assert p.parse("31/12/2018 00:00") == ms(2019, 1, 1)
    assert p.parse("31/12/2018 23:45") == ms(2018, 12, 31, 23, 45)
    assert p.parse("28/02/2018 00:00") == ms(2018, 3, 1)
    assert p.parse("29/02/2016 00:00") == ms(2016, 3, 1)
    assert p.parse("31/12/2018 00:01") == ms(2018, 12, 31, 0, 1)  # only exactly 00:00
    iso = TimeParser(now_ms=NOW, midnight_ends_day=True)
    assert iso.parse("2018-12-31T00:00:00") == ms(2019, 1, 1)
    assert iso.parse(ms(2018, 12, 31)) == ms(2018, 12, 31)  # numbers are left alone
    plain = TimeParser(now_ms=NOW, fmt="%d/%m/%Y %H:%M")
    assert plain.parse("31/12/2018 00:00") == ms(2018, 12, 31)


def test_midnight_ends_day_across_dst():
    berlin = ZoneInfo("Europe/Berlin")
    p = TimeParser(now_ms=NOW, fmt="%d/%m/%Y %H:%M", tz=berlin, midnight_ends_day=True)
    # spring forward on 2024-03-31: that day has 23 hours
    end_30 = p.parse("30/03/2024 00:00")
    end_31 = p.parse("31/03/2024 00:00")
    assert end_30 == ms(2024, 3, 30, 23)  # 2024-03-31 00:00 CET
    assert end_31 == ms(2024, 3, 31, 22)  # 2024-04-01 00:00 CEST
    assert end_31 - end_30 == 23 * 3_600_000
    # fall back on 2024-10-27: that day has 25 hours
    end_26 = p.parse("26/10/2024 00:00")
    end_27 = p.parse("27/10/2024 00:00")
    assert end_27 - end_26 == 25 * 3_600_000
    # the last quarter hour before the end of the short day is 15 minutes before it
    assert end_31 - p.parse("31/03/2024 23:45") == 15 * 60_000


def test_far_future_with_midnight_ends_day_is_a_data_error():
    p = TimeParser(now_ms=NOW, max_future_ms=10**16, midnight_ends_day=True)
    with pytest.raises(DataError):
        p.parse("9999-12-31T00:00:00")
    with pytest.raises(DataError):
        TimeParser(now_ms=NOW, fmt="%d/%m/%Y", midnight_ends_day=True).parse("31/12/9999")


def test_zone():
    assert zone(None) is UTC
    assert zone("") is UTC
    assert zone("utc") is UTC
    assert zone("Asia/Seoul").utcoffset(datetime(2018, 1, 1)) == timedelta(hours=9)
    for bad in ("Mars/Olympus", "../etc/passwd", "Asia/Seoul\x00"):
        with pytest.raises(ConfigError, match="unknown time zone"):
            zone(bad)


@given(
    st.datetimes(
        min_value=datetime(1974, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_rfc3339_round_trip_is_exact(dt):
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    expected = (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    p = TimeParser(now_ms=10**14)
    assert p.parse(dt.isoformat()) == expected
    assert p.parse(str(expected)) == expected


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.one_of(
        st.text(max_size=40),
        st.from_regex(r"\A-?\d{1,400}(\.\d*)?([eE][+-]?\d{1,4})?\Z"),
        st.integers(min_value=-(10**400), max_value=10**400).map(str),
        st.datetimes(min_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.strftime("%d/%m/%Y %H:%M")),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.none(),
    ),
    fmt=st.sampled_from([None, "%d/%m/%Y %H:%M"]),
    midnight=st.booleans(),
    tz=st.sampled_from(["UTC", "Asia/Seoul", "America/Santiago"]),
)
def test_time_parser_raises_only_data_error(raw, fmt, midnight, tz):
    p = TimeParser(
        now_ms=NOW, max_future_ms=10**16, fmt=fmt, tz=zone(tz), midnight_ends_day=midnight
    )
    try:
        got = p.parse(raw)
    except DataError:
        return
    assert isinstance(got, int)
    assert 0 <= got <= NOW + 10**16


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", None),
        ("   ", None),
        ("3.2", Value(3.2, None, DataType.NUMBER)),
        (" 41 ", Value(41.0, None, DataType.NUMBER)),
        ("-0.5", Value(-0.5, None, DataType.NUMBER)),
        ("1e3", Value(1000.0, None, DataType.NUMBER)),
        ("0", Value(0.0, None, DataType.NUMBER)),
        ("true", Value(1.0, None, DataType.BOOLEAN)),
        ("TRUE", Value(1.0, None, DataType.BOOLEAN)),
        ("Yes", Value(1.0, None, DataType.BOOLEAN)),
        ("on", Value(1.0, None, DataType.BOOLEAN)),
        ("false", Value(0.0, None, DataType.BOOLEAN)),
        ("off", Value(0.0, None, DataType.BOOLEAN)),
        ("NO", Value(0.0, None, DataType.BOOLEAN)),
        ("Light_Load", Value(None, "Light_Load", DataType.STRING)),
        ("1_000", Value(None, "1_000", DataType.STRING)),
        ("运行", Value(None, "运行", DataType.STRING)),
        ("a\tb", Value(None, "a\tb", DataType.STRING)),
        ("x" * MAX_TEXT, Value(None, "x" * MAX_TEXT, DataType.STRING)),
    ],
)
def test_parse_cell(cell, expected):
    assert parse_cell(cell) == expected


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("nan", "not a finite"),
        ("NaN", "not a finite"),
        ("-nan", "not a finite"),
        ("inf", "not a finite"),
        ("-Infinity", "not a finite"),
        ("1e400", "not a finite"),
        ("1" + "0" * 400, "range"),  # an integer too large for a float
        ("-" + "9" * 350, "range"),
        ("x" * (MAX_TEXT + 1), "longer than"),
        ("a\x00b", "control characters"),
        ("a\nb", "control characters"),
        ("a\x7fb", "control characters"),
        ("bad\udcffbyte", "not valid UTF-8"),
    ],
)
def test_parse_cell_refused(cell, words):
    with pytest.raises(DataError, match=words):
        parse_cell(cell)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3.2, Value(3.2, None, DataType.NUMBER)),
        (7, Value(7.0, None, DataType.NUMBER)),
        (-(2**63), Value(-(2.0**63), None, DataType.NUMBER)),
        (True, Value(1.0, None, DataType.BOOLEAN)),
        (False, Value(0.0, None, DataType.BOOLEAN)),
        ("running", Value(None, "running", DataType.STRING)),
        ("", Value(None, "", DataType.STRING)),
        ("3.2", Value(None, "3.2", DataType.STRING)),  # JSON strings stay strings
    ],
)
def test_parse_json_value(raw, expected):
    assert parse_json_value(raw) == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (None, "missing"),
        (math.nan, "not a finite"),
        (math.inf, "not a finite"),
        (2**64, "out of range"),
        (-(10**400), "out of range"),
        ([1, 2], "got list"),
        ({"v": 1}, "got dict"),
        ("x" * (MAX_TEXT + 1), "longer than"),
        ("line\nbreak", "control characters"),
    ],
)
def test_parse_json_value_refused(raw, words):
    with pytest.raises(DataError, match=words):
        parse_json_value(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Quality.GOOD),
        ("good", Quality.GOOD),
        ("Uncertain", Quality.UNCERTAIN),
        ("BAD", Quality.BAD),
        ("stale", Quality.STALE),
        (0, Quality.GOOD),
        (2, Quality.BAD),
        (3, Quality.STALE),
    ],
)
def test_parse_quality(raw, expected):
    assert parse_quality(raw) is expected


@pytest.mark.parametrize("raw", ["excellent", "", 4, -1, True, 1.0, [0]])
def test_parse_quality_refused(raw):
    with pytest.raises(DataError, match="not one of good, uncertain, bad, stale"):
        parse_quality(raw)


def _check_value(got: Value | None) -> None:
    if got is None:
        return
    assert isinstance(got, Value)
    if got.dtype is DataType.STRING:
        assert got.value is None
        assert isinstance(got.text, str) and len(got.text) <= MAX_TEXT
    else:
        assert got.text is None
        assert isinstance(got.value, float) and math.isfinite(got.value)
        if got.dtype is DataType.BOOLEAN:
            assert got.value in (0.0, 1.0)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
        st.from_regex(r"\A\s*[-+]?\d{1,500}(\.\d{0,20})?([eE][-+]?\d{1,5})?\s*\Z"),
        st.integers(min_value=-(10**400), max_value=10**400).map(str),
        st.sampled_from(["nan", "Inf", "-infinity", "TRUE", "off", "1_0", "\udcff"]),
    )
)
def test_parse_cell_returns_value_or_data_error(cell):
    try:
        got = parse_cell(cell)
    except DataError:
        return
    _check_value(got)
    if got is None:
        assert not cell.strip()


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**66)
    | st.floats()
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(JSONISH)
def test_parse_json_value_returns_value_or_data_error(raw):
    try:
        got = parse_json_value(raw)
    except DataError:
        return
    assert got is not None
    _check_value(got)
