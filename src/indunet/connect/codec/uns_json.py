"""Decode the JSON topic contract of DESIGN.md §3 (pure: topic and bytes in, points out).

``indunet/v1/{enterprise}/{site}/{area}/{line}/{machine}`` carries several tags of one instant::

    {"timestamp_ms": 1700000000000, "spindle_power_kw": 3.2, "temp_c": 41.5}

``indunet/v1/{enterprise}/{site}/{area}/{line}/{machine}/{tag}`` carries one value::

    {"timestamp_ms": 1700000000000, "value": 3.2}

``ts`` (epoch ms or RFC 3339) is accepted for ``timestamp_ms``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from indunet.errors import DataError
from indunet.ingest.values import TimeParser, Value, parse_json_value
from indunet.uns import MachinePath, TagPath, check_segment

__all__ = ["ROOT", "DecodedMessage", "decode"]

ROOT = "indunet/v1"
MAX_PAYLOAD = 256 * 1024
_TIME_KEYS = ("timestamp_ms", "ts")


@dataclass(slots=True)
class DecodedMessage:
    """What one message holds: its enterprise, points, and reasons for parts refused."""

    enterprise: str = ""
    points: list[tuple[str, int, Value]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


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


def decode(topic: str, payload: bytes, times: TimeParser) -> DecodedMessage:
    """Decode one message; raise `DataError` when nothing in it can be stored.

    A bad tag inside an otherwise good machine payload is reported in ``errors`` and the
    other tags are kept.
    """
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
    ts = _timestamp(doc, times)
    out = DecodedMessage(enterprise)
    if len(levels) == 6:
        tag = str(TagPath(*levels[1:6]))
        unknown = set(doc) - {*_TIME_KEYS, "value"}
        if unknown:
            names = ", ".join(sorted(unknown))[:200]
            raise DataError(f"single-tag payload has unknown field(s) {names}")
        if "value" not in doc:
            raise DataError("single-tag payload has no 'value'")
        try:
            out.points.append((tag, ts, parse_json_value(doc["value"])))
        except DataError as exc:
            raise DataError(f"field 'value': {exc}") from exc
        return out
    for key, raw in doc.items():
        if key in _TIME_KEYS:
            continue
        try:
            tag = str(machine.tag(key))
            out.points.append((tag, ts, parse_json_value(raw)))
        except DataError as exc:
            out.errors.append(f"tag {key[:100]!r}: {exc}")
    if not out.points and not out.errors:
        raise DataError("payload holds a timestamp but no tags")
    return out
