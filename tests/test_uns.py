"""The unified namespace: which tag paths, machine paths and prefixes are accepted."""

from __future__ import annotations

import pytest

from indunet.errors import DataError
from indunet.uns import LEVELS, MAX_SEGMENT, MachinePath, TagPath, check_segment, parse_prefix

LONG = "x" * MAX_SEGMENT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s1/press/l1/m1/power_kw", ("s1", "press", "l1", "m1", "power_kw")),
        (" s1 / press /l1/m1/ power_kw ", ("s1", "press", "l1", "m1", "power_kw")),
        (
            "gwangyang/plant/main/meter/CO2(tCO2)",
            ("gwangyang", "plant", "main", "meter", "CO2(tCO2)"),
        ),
        ("a/b/c/d/Lagging.Power_kVarh", ("a", "b", "c", "d", "Lagging.Power_kVarh")),
        ("工厂/车间/一线/机床1/主轴功率", ("工厂", "车间", "一线", "机床1", "主轴功率")),
        ("a/b/c/d/with space", ("a", "b", "c", "d", "with space")),
        (f"a/b/c/d/{LONG}", ("a", "b", "c", "d", LONG)),
        ("a/b/c/d/...", ("a", "b", "c", "d", "...")),
        ("a/b/c/d/.hidden", ("a", "b", "c", "d", ".hidden")),
    ],
)
def test_valid_tag_paths(text, expected):
    tag = TagPath.parse(text)
    assert (tag.site, tag.area, tag.line, tag.machine, tag.tag) == expected
    assert str(tag) == "/".join(expected)
    assert TagPath.parse(str(tag)) == tag  # round trip
    assert str(tag.machine_path) == "/".join(expected[:4])


@pytest.mark.parametrize(
    ("text", "level", "words"),
    [
        ("", None, "5 parts"),
        ("a/b/c/d", None, "5 parts"),
        ("a/b/c/d/e/f", None, "5 parts"),
        ("a/b/c/d/e/", None, "5 parts"),
        ("/a/b/c/d/e", None, "5 parts"),
        ("a//c/d/e", "area", "empty"),
        ("a/b/c/d/ ", "tag", "empty"),
        (" /b/c/d/e", "site", "empty"),
        ("a/b/c/d/temp#1", "tag", "forbidden"),
        ("a/b/+/d/e", "line", "forbidden"),
        ("a/b/c/#/e", "machine", "forbidden"),
        ("a/b/c/d/e\x00f", "tag", "forbidden"),
        ("a/b/c/d/e\nf", "tag", "forbidden"),
        ("a/b/c/d/e\rf", "tag", "forbidden"),
        ("a/b/c/d/e\x1bf", "tag", "forbidden"),
        ("a/b/c/d/e\tf", "tag", "forbidden"),
        ("a/b/c/d/e\ud800", "tag", "forbidden"),  # a lone surrogate cannot be stored as UTF-8
        ("a/b/c/\udcff/e", "machine", "forbidden"),
        ("a/b/c/d/e\x7ff", "tag", "forbidden"),
        (f"a/b/c/d/{LONG}x", "tag", "longer"),
        (f"{LONG}y/b/c/d/e", "site", "longer"),
        ("a/../c/d/e", "area", "not allowed"),
        ("a/b/c/./e", "machine", "not allowed"),
        ("a/b/c/d/..", "tag", "not allowed"),
    ],
)
def test_invalid_tag_paths(text, level, words):
    with pytest.raises(DataError) as info:
        TagPath.parse(text)
    message = str(info.value)
    assert words in message
    if level:
        assert message.startswith(f"{level} name")


@pytest.mark.parametrize("raw", [None, 5, 3.2, ["a", "b", "c", "d", "e"], {"tag": "x"}])
def test_tag_path_must_be_text(raw):
    with pytest.raises(DataError, match="must be text"):
        TagPath.parse(raw)


def test_constructor_checks_every_level():
    for i, level in enumerate(LEVELS):
        parts = ["a", "b", "c", "d", "e"]
        parts[i] = "bad/name"
        with pytest.raises(DataError, match=f"^{level} name"):
            TagPath(*parts)
    with pytest.raises(DataError, match="must be text"):
        TagPath("a", "b", "c", "d", 5)  # type: ignore[arg-type]


def test_machine_path_parse_and_tag():
    machine = MachinePath.parse("gwangyang/plant/main/meter")
    assert str(machine) == "gwangyang/plant/main/meter"
    assert str(machine.tag("Usage_kWh")) == "gwangyang/plant/main/meter/Usage_kWh"
    assert machine.tag("x").machine_path == machine
    with pytest.raises(DataError, match=r"^tag name"):
        machine.tag("a/b")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a/b/c", "4 parts"),
        ("a/b/c/d/e", "4 parts"),
        ("", "4 parts"),
        ("a/b//d", "line name is empty"),
        ("a/b/c/m+1", "forbidden"),
        ("a/../c/d", "not allowed"),
    ],
)
def test_invalid_machine_paths(text, words):
    with pytest.raises(DataError, match=words):
        MachinePath.parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ""),
        ("", ""),
        ("   ", ""),
        ("/", ""),
        ("s1", "s1"),
        ("s1/", "s1"),
        ("/s1/press/", "s1/press"),
        (" s1 / press ", "s1/press"),
        ("s1/press/l1/m1", "s1/press/l1/m1"),
        ("s1/press/l1/m1/power_kw", "s1/press/l1/m1/power_kw"),
    ],
)
def test_valid_prefixes(text, expected):
    assert parse_prefix(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a/b/c/d/e/f", "more than 5 levels"),
        ("a//b", "area name is empty"),
        ("a/#", "forbidden"),
        ("+", "forbidden"),
        ("a/b\x01", "forbidden"),
        ("a/..", "not allowed"),
        (f"a/{LONG}z", "longer"),
    ],
)
def test_invalid_prefixes(text, words):
    with pytest.raises(DataError, match=words):
        parse_prefix(text)


def test_check_segment_strips_and_names_level():
    assert check_segment("  m1 ", "machine") == "m1"
    with pytest.raises(DataError, match=r"^site name is empty"):
        check_segment("\t ", "site")
