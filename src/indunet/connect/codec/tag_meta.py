"""The tag metadata contract: a machine's tags with unit, description and data type.

``indunet/v1/{enterprise}/{site}/{area}/{line}/{machine}/$meta`` carries, at QoS 1::

    {"tags": {"power_w": {"unit": "W", "description": "Active power", "data_type": "number"},
              "running": {"data_type": "boolean"}}}

Every field of a tag is optional; a message states each named tag's metadata whole (a field
left out is cleared). The historian declares the tags (`Historian.declare_tags`), exactly as
``indunet declare`` / ``POST /api/v1/tags`` do. Publishers (the edge agent) send it when they
start and whenever a device's metadata changes (an OPC UA server's EngineeringUnits read at
connect); sending it again is harmless. It rides on the JSON topic tree, so every ingest that
takes the machine's data (a shared subscription included) takes its metadata, with no
subscription of its own. ``$meta`` is therefore not a tag name. Pure: topic and bytes in,
`TagMeta` out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from indunet.errors import DataError
from indunet.model import DataType
from indunet.uns import MachinePath, check_segment

__all__ = [
    "META_LEVEL",
    "TagMeta",
    "encode_tag_meta",
    "is_meta_topic",
    "meta_topic",
    "parse_tag_meta",
]

ROOT = "indunet/v1"  # the JSON contract's root (codec.uns_json.ROOT)
META_LEVEL = "$meta"
_SUFFIX = "/" + META_LEVEL
MAX_PAYLOAD = 256 * 1024
MAX_TAGS = 10_000
MAX_UNIT = 32  # as POST /api/v1/tags
MAX_DESCRIPTION = 1000
_FIELDS = {"unit", "description", "data_type", "expected_interval_ms"}


@dataclass(frozen=True, slots=True)
class TagMeta:
    """One tag's metadata (``path`` is ``site/area/line/machine/tag``)."""

    path: str
    data_type: DataType = DataType.NUMBER
    unit: str | None = None
    description: str | None = None
    expected_interval_ms: int | None = None


def meta_topic(enterprise: str, machine: str) -> str:
    """Return the metadata topic of a machine (``site/area/line/machine``)."""
    return f"{ROOT}/{enterprise}/{machine}{_SUFFIX}"


def is_meta_topic(topic: str) -> bool:
    """Return whether a topic of the JSON tree is a metadata topic (cheap: for the hot path)."""
    return topic.endswith(_SUFFIX)


def encode_tag_meta(tags: dict[str, dict[str, object]]) -> bytes:
    """Return the payload for ``{tag name: {unit, description, data_type, …}}``; empty
    strings and None are left out."""
    clean = {
        name: {k: v for k, v in fields.items() if v not in (None, "")}
        for name, fields in tags.items()
    }
    return json.dumps({"tags": clean}, ensure_ascii=False, sort_keys=True).encode()


def _text(value: object, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"field {field!r} must be text, got {type(value).__name__}")
    text = value.strip()
    if len(text) > limit:
        raise DataError(f"field {field!r} is longer than {limit} characters")
    if any(ord(c) < 32 for c in text):
        raise DataError(f"field {field!r} holds control characters")
    return text or None


def _one(machine: MachinePath, name: str, fields: object) -> TagMeta:
    tag = machine.tag(check_segment(name, "tag"))
    if not isinstance(fields, dict):
        raise DataError(f"tag {name!r}: expected an object, got {type(fields).__name__}")
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise DataError(f"tag {name!r}: unknown field {unknown[0]!r}; known: {sorted(_FIELDS)}")
    raw_type = fields.get("data_type", "number")
    try:
        data_type = DataType(raw_type)
    except ValueError:
        raise DataError(
            f"tag {name!r}: data_type {raw_type!r} is not number, boolean or string"
        ) from None
    interval = fields.get("expected_interval_ms")
    if interval is not None and (
        isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0
    ):
        raise DataError(f"tag {name!r}: expected_interval_ms must be a positive integer")
    try:
        unit = _text(fields.get("unit"), "unit", MAX_UNIT)
        description = _text(fields.get("description"), "description", MAX_DESCRIPTION)
    except DataError as exc:
        raise DataError(f"tag {name!r}: {exc}") from None
    return TagMeta(str(tag), data_type, unit, description, interval)


def parse_tag_meta(topic: str, payload: bytes) -> tuple[str, list[TagMeta], list[str]]:
    """Return (enterprise, good tags, reasons for refused tags) of a metadata message.

    Raises `DataError` when the whole message is unusable (topic, size, JSON, shape).
    """
    parts = topic.split("/")
    depth = ROOT.count("/") + 1
    if parts[:depth] != ROOT.split("/") or len(parts) != depth + 6 or parts[-1] != META_LEVEL:
        raise DataError(
            f"metadata topic must be {ROOT}/{{enterprise}}/{{site}}/{{area}}/{{line}}/"
            f"{{machine}}/{META_LEVEL}"
        )
    enterprise = check_segment(parts[depth], "enterprise")
    machine = MachinePath.parse("/".join(parts[depth + 1 : -1]))
    if len(payload) > MAX_PAYLOAD:
        raise DataError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
    try:
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError("payload is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"payload is not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"tags"} or not isinstance(doc["tags"], dict):
        raise DataError('payload must be an object {"tags": {tag name: {unit, …}}}')
    if len(doc["tags"]) > MAX_TAGS:
        raise DataError(f"more than {MAX_TAGS} tags in one message")
    good: list[TagMeta] = []
    refused: list[str] = []
    for name, fields in doc["tags"].items():
        try:
            good.append(_one(machine, name, fields))
        except DataError as exc:
            refused.append(str(exc))
    return enterprise, good, refused
