"""Decode the JSON topic contract of DESIGN.md §3 (pure: topic and bytes in, points out).

``indunet/v1/{enterprise}/{site}/{area}/{line}/{machine}`` carries several tags of one instant::

    {"timestamp_ms": 1700000000000, "spindle_power_kw": 3.2, "temp_c": 41.5}

``indunet/v1/{enterprise}/{site}/{area}/{line}/{machine}/{tag}`` carries one value::

    {"timestamp_ms": 1700000000000, "value": 3.2}

``ts`` (epoch ms or RFC 3339) is accepted for ``timestamp_ms``.

Values are good unless the payload says otherwise: a single-value payload may carry
``"quality": "uncertain"`` (good, uncertain, bad, stale, or their codes 0-3), and a machine
payload a ``"$quality"`` object naming the tags whose values are not good::

    {"timestamp_ms": 1700000000000, "temp_c": 41.5, "$quality": {"temp_c": "uncertain"}}

A quality that cannot be read refuses the value it names (or, for a ``$quality`` that is not an
object, the whole message): a value is never stored with a quality it was not sent with.

`decode` is the reference: one message in, points out. `UnsJsonDecoder` gives the same
answers faster for a stream: it remembers the topics and tag names it has validated (only
those that passed: a refused name is checked again every time), parses with orjson (falling
back to the standard parser, and its error messages, when orjson refuses), and appends finite
numbers straight into a `BatchBuilder`. It also remembers, per topic, the keys of the last
machine payload that held only finite numbers (its `Shape`): a payload with the same keys in
the same order whose values are all plain ints and floats under 2**63 in size is added as one
chunk (a numpy array against the remembered tags), with no per-point Python work; any other
payload takes the exact path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson

from indunet.errors import DataError
from indunet.ingest.batch import BatchBuilder, ChunkTags
from indunet.ingest.values import (
    SECONDS_LOOKALIKE,
    TimeParser,
    Value,
    parse_json_value,
    parse_quality,
)
from indunet.model import Quality
from indunet.uns import MachinePath, TagPath, check_segment

__all__ = ["QUALITY_KEY", "ROOT", "DecodedMessage", "UnsJsonDecoder", "decode"]

ROOT = "indunet/v1"
MAX_PAYLOAD = 256 * 1024
_TIME_KEYS = ("timestamp_ms", "ts")
QUALITY_KEY = "$quality"  # a machine payload's {tag: quality} for values that are not good
_BIG = float(2**63)
_NUMBER_KINDS = frozenset((float, int))
_MIN, _MAX = np.minimum.reduce, np.maximum.reduce  # without ndarray.min's Python wrapper


@dataclass(slots=True)
class DecodedMessage:
    """What one message holds: its enterprise, points, and reasons for parts refused."""

    enterprise: str = ""
    points: list[tuple[str, int, Value]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    quality: dict[str, Quality] = field(default_factory=dict)  # tag -> quality, when not good


def _timestamp(doc: dict, times: TimeParser) -> int:
    present = [k for k in _TIME_KEYS if k in doc]
    if not present:
        raise DataError("payload has no 'timestamp_ms' (or 'ts')")
    if len(present) > 1:
        raise DataError("payload has both 'timestamp_ms' and 'ts'")
    try:
        return times.parse(doc[present[0]])
    except DataError as exc:
        raise DataError(f"field {present[0]!r}: {exc}") from exc


def _parse_topic(topic: str) -> tuple[str, MachinePath, str | None]:
    """Return enterprise, machine and (single-value topics) tag path of a topic."""
    parts = topic.split("/")
    if parts[:2] != ROOT.split("/"):
        raise DataError(f"topic {topic[:200]!r} is not under {ROOT}/")
    levels = parts[2:]
    if len(levels) not in (5, 6):
        raise DataError(
            f"topic {topic[:200]!r} must be {ROOT}/enterprise/site/area/line/machine[/tag]"
        )
    enterprise = check_segment(levels[0], "enterprise")
    machine = MachinePath(*levels[1:5])
    tag = str(TagPath(*levels[1:6])) if len(levels) == 6 else None
    return enterprise, machine, tag


def _loads(payload: bytes) -> dict:
    """Parse a payload into a JSON object or raise `DataError` saying why not."""
    if len(payload) > MAX_PAYLOAD:
        raise DataError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD} byte limit")
    try:
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"payload is not valid UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"payload is not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise DataError("payload is nested too deeply") from exc
    if not isinstance(doc, dict):
        raise DataError(f"payload must be a JSON object, got {type(doc).__name__}")
    return doc


def _single(doc: dict, tag: str, ts: int) -> tuple[str, int, Value, Quality]:
    unknown = set(doc) - {*_TIME_KEYS, "value", "quality"}
    if unknown:
        names = ", ".join(sorted(unknown))[:200]
        raise DataError(f"single-tag payload has unknown field(s) {names}")
    if "value" not in doc:
        raise DataError("single-tag payload has no 'value'")
    try:
        value = parse_json_value(doc["value"])
    except DataError as exc:
        raise DataError(f"field 'value': {exc}") from exc
    try:
        quality = parse_quality(doc.get("quality"))
    except DataError as exc:
        raise DataError(f"field 'quality': {exc}") from exc
    return (tag, ts, value, quality)


def _qualities(doc: dict) -> tuple[dict[str, Quality], dict[str, str]]:
    """Pop a machine payload's ``$quality``: (key -> quality, key -> why it was refused).

    Raise `DataError` when it is not an object, or names a key the payload does not carry.
    """
    raw = doc.pop(QUALITY_KEY, None)
    if raw is None:
        return {}, {}
    if not isinstance(raw, dict):
        raise DataError(f"field {QUALITY_KEY!r} must be an object of tag: quality")
    missing = [k for k in raw if k not in doc or k in _TIME_KEYS]
    if missing:
        names = ", ".join(repr(k[:100]) for k in sorted(missing))[:200]
        raise DataError(f"field {QUALITY_KEY!r} names tag(s) the payload has no value for: {names}")
    good: dict[str, Quality] = {}
    bad: dict[str, str] = {}
    for key, q in raw.items():
        try:
            quality = parse_quality(q)
        except DataError as exc:
            bad[key] = f"{QUALITY_KEY}: {exc}"
            continue
        if quality != Quality.GOOD:
            good[key] = quality
    return good, bad


def _machine_points(
    doc: dict, tag_of: Callable[[str], str]
) -> tuple[list[tuple[str, Value, Quality]], list[str]]:
    """Return a machine payload's (tag, value, quality) points and the reasons for the tags
    refused; ``tag_of`` turns a payload key into its tag path (or raises `DataError`)."""
    qualities, refused = _qualities(doc)
    points: list[tuple[str, Value, Quality]] = []
    errors: list[str] = []
    for key, raw in doc.items():
        if key in _TIME_KEYS:
            continue
        try:
            tag = tag_of(key)
            if key in refused:
                raise DataError(refused[key])
            points.append((tag, parse_json_value(raw), qualities.get(key, Quality.GOOD)))
        except DataError as exc:
            errors.append(f"tag {key[:100]!r}: {exc}")
    return points, errors


def decode(topic: str, payload: bytes, times: TimeParser) -> DecodedMessage:
    """Decode one message; raise `DataError` when nothing in it can be stored.

    A bad tag inside an otherwise good machine payload is reported in ``errors`` and the
    other tags are kept.
    """
    enterprise, machine, tag = _parse_topic(topic)
    doc = _loads(payload)
    ts = _timestamp(doc, times)
    out = DecodedMessage(enterprise)
    if tag is not None:
        tag, ts, value, quality = _single(doc, tag, ts)
        out.points.append((tag, ts, value))
        if quality != Quality.GOOD:
            out.quality[tag] = quality
        return out
    points, out.errors = _machine_points(doc, lambda key: str(machine.tag(key)))
    for tag, value, quality in points:
        out.points.append((tag, ts, value))
        if quality != Quality.GOOD:
            out.quality[tag] = quality
    if not out.points and not out.errors:
        raise DataError("payload holds a timestamp but no tags")
    return out


@dataclass(slots=True)
class _Topic:
    """A topic that passed validation, and the payload keys already turned into tag paths."""

    enterprise: str
    machine: str  # site/area/line/machine, validated
    tag: str | None  # single-value topic: its tag path, validated
    tags: dict[str, str] = field(default_factory=dict)  # payload key -> tag path
    #: the keys of the last machine payload whose every tag was a finite number (see `_fast`)
    shape: Shape | None = None


class Shape(ChunkTags):
    """The keys of a machine payload in their order, and where its time key is among them."""

    __slots__ = ("keys", "time_at")

    def __init__(self, keys: tuple[str, ...], time_at: int, tags: list[str]) -> None:
        super().__init__(tags)
        self.keys = keys
        self.time_at = time_at


class UnsJsonDecoder:
    """Decode a stream of JSON messages into batch builders, as `decode` would, but faster.

    Only names that passed `check_segment` are remembered, so the cache never accepts what
    `decode` refuses. Both tables are bounded; past the bound, names are checked every time.
    """

    def __init__(
        self,
        max_future_ms: int = 86_400_000,
        *,
        max_topics: int = 100_000,
        max_keys: int = 1_000_000,
    ) -> None:
        self.max_future_ms = max_future_ms
        self.max_topics = max_topics
        self.max_keys = max_keys
        self._topics: dict[str, _Topic] = {}
        self._keys = 0

    def _topic(self, topic: str) -> _Topic:
        entry = self._topics.get(topic)
        if entry is None:
            enterprise, machine, tag = _parse_topic(topic)
            entry = _Topic(enterprise, str(machine), tag)
            if len(self._topics) < self.max_topics:
                self._topics[topic] = entry
        return entry

    def enterprise(self, topic: str) -> str | None:
        """Return the enterprise a topic names when it is valid, else ``None``."""
        try:
            return self._topic(topic).enterprise
        except DataError:
            return None

    def decode_into(
        self,
        topic: str,
        payload: bytes,
        now_ms: int,
        builders: dict[str, BatchBuilder],
        ref: str,
    ) -> tuple[str, list[str]]:
        """Add a message's points to ``builders[enterprise]``; return enterprise and refusals.

        Raise `DataError` (and add nothing) when nothing in the message can be stored.
        """
        entry = self._topic(topic)
        if len(payload) > MAX_PAYLOAD:
            raise DataError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD} byte limit")
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = _loads(payload)  # the standard parser decides, and names the fault
        if type(doc) is not dict:
            doc = _loads(payload)
        raw_ts = doc.get("timestamp_ms")
        if (
            type(raw_ts) is int
            and SECONDS_LOOKALIKE <= raw_ts <= now_ms + self.max_future_ms
            and "ts" not in doc
        ):
            ts = raw_ts
        else:
            ts = _timestamp(doc, TimeParser(now_ms=now_ms, max_future_ms=self.max_future_ms))
        enterprise = entry.enterprise
        if entry.tag is not None:
            value = doc.get("value")
            kind = type(value)
            if kind is float and not -_BIG < value < _BIG and math.isfinite(value):
                doc = _loads(payload)  # orjson read a too-big integer as a float: re-read
                kind = None
            builder = builders.get(enterprise)
            if builder is None:
                builder = builders[enterprise] = BatchBuilder(enterprise)
            if len(doc) == 2 and (  # exactly one time key and "value", which is a number
                (kind is float and -_BIG < value < _BIG)
                or (kind is int and -(2**63) <= value <= 2**63)
            ):
                builder.add_number(entry.tag, ts, float(value), ref)
            else:
                tag, ts, parsed, quality = _single(doc, entry.tag, ts)
                builder.add(tag, ts, parsed, ref, quality)
            return enterprise, []
        if QUALITY_KEY in doc:
            return enterprise, self._with_quality(entry, _loads(payload), ts, builders, ref)
        shape = entry.shape
        if shape is not None and len(doc) == len(shape.keys) and tuple(doc) == shape.keys:
            values = self._fast(shape, doc)
            if values is not None:
                builder = builders.get(enterprise)
                if builder is None:
                    builder = builders[enterprise] = BatchBuilder(enterprise)
                builder.extend_chunk(shape, ts, values, ref)
                return enterprise, []
        collected = self._collect(entry, doc)
        if collected is None:  # orjson read an integer too big for 64 bits as a float
            collected = self._collect(entry, _loads(payload), exact=True)
            assert collected is not None
        tags, values, others, errors = collected
        if not others and not errors and tags and len(tags) == len(doc) - 1:
            self._remember(entry, doc)
        if not tags and not others:
            if not errors:
                raise DataError("payload holds a timestamp but no tags")
            return enterprise, errors
        builder = builders.get(enterprise)
        if builder is None:
            builder = builders[enterprise] = BatchBuilder(enterprise)
        builder.extend_numbers(tags, ts, values, ref)
        for tag, value in others:
            builder.add(tag, ts, value, ref)
        return enterprise, errors

    def _remember(self, entry: _Topic, doc: dict) -> None:
        """Keep the keys of a payload whose every tag was a finite number (and is cached)."""
        keys = tuple(doc)
        known = entry.tags
        if not all(k in known for k in keys if k != "timestamp_ms" and k != "ts"):
            return  # past the cache's bound: names are checked every time
        time_at = next(i for i, k in enumerate(keys) if k == "timestamp_ms" or k == "ts")
        entry.shape = Shape(keys, time_at, [known[k] for k in keys if k != keys[time_at]])

    @staticmethod
    def _fast(shape: Shape, doc: dict) -> np.ndarray | None:
        """Return the values of a payload with ``shape``'s keys when each is a number
        ``_collect`` takes as it is (int or float under 2**63 in size), else ``None``."""
        values = list(doc.values())
        del values[shape.time_at]
        if not set(map(type, values)) <= _NUMBER_KINDS:
            return None  # bool, text, null, object …: the exact path decides
        try:
            array = np.array(values, np.float64)
        except OverflowError:  # an integer too big for a float
            return None
        if not (_MIN(array) > -_BIG and _MAX(array) < _BIG):  # NaN fails too
            return None
        return array

    def _with_quality(
        self, entry: _Topic, doc: dict, ts: int, builders: dict[str, BatchBuilder], ref: str
    ) -> list[str]:
        """Add a machine payload that carries ``$quality`` (parsed by the standard parser, as
        `decode` does, so integers stay exact)."""
        points, errors = _machine_points(
            doc, lambda key: f"{entry.machine}/{check_segment(key, 'tag')}"
        )
        if not points:
            if not errors:
                raise DataError("payload holds a timestamp but no tags")
            return errors
        builder = builders.get(entry.enterprise)
        if builder is None:
            builder = builders[entry.enterprise] = BatchBuilder(entry.enterprise)
        for tag, value, quality in points:
            builder.add(tag, ts, value, ref, quality)
        return errors

    def _collect(
        self, entry: _Topic, doc: dict, *, exact: bool = False
    ) -> tuple[list[str], list[float], list[tuple[str, Value]], list[str]] | None:
        """Sort a machine payload's tags into finite numbers, other values and refusals.

        Return ``None`` when a float is 2**63 or more in size and ``exact`` is false: orjson
        reads a too-big integer as such a float, the standard parser as an int (refused).
        """
        known = entry.tags
        tags: list[str] = []
        values: list[float] = []
        others: list[tuple[str, Value]] = []
        errors: list[str] = []
        for key, raw in doc.items():
            if key == "timestamp_ms" or key == "ts":
                continue
            tag = known.get(key)
            if tag is None:
                try:
                    tag = f"{entry.machine}/{check_segment(key, 'tag')}"
                except DataError as exc:
                    errors.append(f"tag {key[:100]!r}: {exc}")
                    continue
                if self._keys < self.max_keys:
                    known[key] = tag
                    self._keys += 1
            kind = type(raw)
            if kind is float and -_BIG < raw < _BIG:
                tags.append(tag)
                values.append(raw)
            elif kind is int and -(2**63) <= raw <= 2**63:
                tags.append(tag)
                values.append(float(raw))
            elif kind is float and not exact and math.isfinite(raw):
                return None
            else:
                try:
                    others.append((tag, parse_json_value(raw)))
                except DataError as exc:
                    errors.append(f"tag {key[:100]!r}: {exc}")
        return tags, values, others, errors
