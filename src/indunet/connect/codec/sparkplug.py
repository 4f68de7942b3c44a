"""Sparkplug B host codec (Eclipse Sparkplug 3.0), pure: topic and bytes in, points and events out.

`SparkplugHost` keeps, per edge node, the aliases and data types from NBIRTH/DBIRTH, the
sequence number and the birth/death sequence (bdSeq). It never touches the network: the glue
in `indunet.connect.mqtt` feeds it messages and carries out what it asks for (store points,
dead-letter a message, request a rebirth, mark tags stale).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.errors import DataError
from indunet.ingest.values import MAX_TEXT, Value
from indunet.model import DataType
from indunet.uns import check_segment

__all__ = [
    "NAMESPACE",
    "DecodeOutcome",
    "Numbers",
    "SparkplugHost",
    "SparkplugMapping",
    "encode_rebirth",
]

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
MAX_PAYLOAD = 1024 * 1024
_SIGNED = {1: 8, 2: 16, 3: 32, 4: 64}
_UNSIGNED = {5, 6, 7, 8}
_FLOATS = {9, 10}
_BOOL = 11
_TEXTS = {12, 14, 15}
_DATETIME = 13
_SUPPORTED = set(_SIGNED) | _UNSIGNED | _FLOATS | {_BOOL, _DATETIME} | _TEXTS
_NAMES = {
    16: "DataSet",
    17: "Bytes",
    18: "File",
    19: "Template",
    20: "PropertySet",
    21: "PropertySetList",
}
_SANITIZE = re.compile(r"[/#+\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SparkplugMapping:
    """Where Sparkplug things land in the namespace (``{group}``, ``{node}``, ``{device}``).

    Default: enterprise from the settings; a device's metrics under
    ``group/node/devices/device``, the node's own metrics under ``group/node/node/node``;
    a metric name's ``/`` folders become ``.`` in the tag name.
    """

    enterprise: str = "demo"
    device_machine: str = "{group}/{node}/devices/{device}"
    node_machine: str = "{group}/{node}/node/{node}"

    def machine(self, group: str, node: str, device: str | None) -> str:
        """Return the machine path (site/area/line/machine) of a node or device."""
        template = self.device_machine if device else self.node_machine
        path = template.format(group=group, node=node, device=device or "")
        parts = path.split("/")
        if len(parts) != 4:
            raise DataError(f"Sparkplug mapping gives {path!r}, not site/area/line/machine")
        for level, part in zip(("site", "area", "line", "machine"), parts, strict=True):
            check_segment(part, level)
        return path


@dataclass(slots=True)
class _Node:
    """What the host knows about one edge node since its last birth."""

    bd_seq: int | None = None
    seq: int | None = None
    online: bool = False
    aliases: dict[str | None, dict[int, tuple[str, int]]] = field(default_factory=dict)
    types: dict[str | None, dict[str, int]] = field(default_factory=dict)
    devices_online: set[str] = field(default_factory=set)
    #: per device: its machine path and, per metric name, its tag path (both validated)
    machines: dict[str | None, str] = field(default_factory=dict)
    tags: dict[str | None, dict[str, str]] = field(default_factory=dict)
    #: per device: alias -> (tag path, birth datatype), for aliases already resolved once
    fast: dict[str | None, dict[int, tuple[str, int]]] = field(default_factory=dict)


@dataclass(slots=True)
class Numbers:
    """Good numeric points in three columns: tag paths, epoch-ms times and finite floats."""

    tags: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tags)


@dataclass(slots=True)
class DecodeOutcome:
    """What one Sparkplug message means for indunet."""

    points: list[tuple[str, int, Value]] = field(default_factory=list)  # (tag, ts, value)
    errors: list[str] = field(default_factory=list)  # parts refused, with reasons
    rebirth: tuple[str, str] | None = None  # (group, node) to send a Rebirth request to
    stale: list[str] = field(default_factory=list)  # machine paths whose tags went stale
    stale_ts: int = 0
    #: float and double metrics, kept in columns (no `Value` per point); not in ``points``
    numbers: Numbers = field(default_factory=Numbers)
    #: BIRTH metrics' units and descriptions from their properties: (tag, unit, description,
    #: data type)
    meta: list[tuple[str, str | None, str | None, DataType]] = field(default_factory=list)

    def all_points(self) -> list[tuple[str, int, Value]]:
        """Return every point, ``numbers`` first and then ``points``, as (tag, ts, value)."""
        n = self.numbers
        return [
            (tag, ts, Value(v, None, DataType.NUMBER))
            for tag, ts, v in zip(n.tags, n.ts, n.values, strict=True)
        ] + self.points


def _value(metric: pb.Payload.Metric, dtype: int) -> Value | None:
    """Return a metric's value as an indunet value; ``None`` for a null metric."""
    if metric.is_null:
        return None
    kind = metric.WhichOneof("value")
    if kind is None:
        return None
    raw = getattr(metric, kind)
    try:
        return _convert(raw, dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"value {str(raw)[:40]!r} ({kind}) does not fit the datatype") from exc


def _convert(raw: object, dtype: int) -> Value:
    if dtype in _SIGNED:
        bits = _SIGNED[dtype]
        number = int(raw) & ((1 << bits) - 1)  # type: ignore[call-overload]
        if number >= 1 << (bits - 1):
            number -= 1 << bits
        return Value(float(number), None, DataType.NUMBER)
    if dtype in _UNSIGNED or dtype == _DATETIME:
        return Value(float(int(raw)), None, DataType.NUMBER)  # type: ignore[call-overload]
    if dtype in _FLOATS:
        if not isinstance(raw, float | int) or not math.isfinite(raw):
            raise DataError(f"value {str(raw)[:40]!r} is not a finite number")
        return Value(float(raw), None, DataType.NUMBER)
    if dtype == _BOOL:
        return Value(1.0 if raw else 0.0, None, DataType.BOOLEAN)
    if dtype in _TEXTS:
        if len(text := str(raw)) > MAX_TEXT:
            raise DataError(f"text value is longer than {MAX_TEXT} characters")
        return Value(None, text, DataType.STRING)
    raise DataError(f"datatype {_NAMES.get(dtype, dtype)} is not supported")


#: property keys (lower case) that state a metric's unit or description; Sparkplug 3.0 fixes
#: none, these are the ones in use (Ignition: engUnit, Documentation)
_UNIT_KEYS = ("engunit", "engunits", "unit", "units")
_DESCRIPTION_KEYS = ("description", "documentation")


def _metric_meta(props: pb.Payload.PropertySet) -> tuple[str | None, str | None]:
    """Return the unit and description a metric's properties state (strings only)."""
    found: dict[str, str] = {}
    for key, value in zip(props.keys, props.values, strict=False):
        if value.WhichOneof("value") == "string_value" and value.string_value.strip():
            found.setdefault(key.lower(), value.string_value.strip())
    unit = next((found[k] for k in _UNIT_KEYS if k in found), None)
    description = next((found[k] for k in _DESCRIPTION_KEYS if k in found), None)
    return (unit[:32] if unit else None), (description[:1000] if description else None)


def _tag_name(name: str) -> str:
    return check_segment(_SANITIZE.sub(".", name), "tag")


class SparkplugHost:
    """Per-session Sparkplug state and the decoding that depends on it (no I/O)."""

    def __init__(self, mapping: SparkplugMapping) -> None:
        self.mapping = mapping
        self.nodes: dict[tuple[str, str], _Node] = {}

    def handle(self, topic: str, payload: bytes) -> DecodeOutcome:
        """Decode one message; raise `DataError` when nothing of it can be used."""
        parts = topic.split("/")
        if len(parts) == 3 and parts[:2] == [NAMESPACE, "STATE"]:
            return DecodeOutcome()  # a host application's state: nothing to store
        if len(parts) < 4 or parts[0] != NAMESPACE:
            raise DataError(f"topic {topic[:200]!r} is not a Sparkplug B topic")
        if len(parts) not in (4, 5):
            raise DataError(f"topic {topic[:200]!r} has too many levels")
        group, kind, node = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else None
        if kind in ("NCMD", "DCMD"):
            return DecodeOutcome()  # commands to edge nodes, not data
        if kind not in ("NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"):
            raise DataError(f"message type {kind[:20]!r} is not a Sparkplug B type")
        if (device is None) != kind.startswith("N"):
            raise DataError(f"{kind} topic {topic[:200]!r} has the wrong number of levels")
        if len(payload) > MAX_PAYLOAD:
            raise DataError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD} byte limit")
        try:
            message = pb.Payload.FromString(payload)
        except (DecodeError, ValueError) as exc:
            raise DataError(f"payload is not a Sparkplug B protobuf ({exc})") from exc
        state = self.nodes.setdefault((group, node), _Node())
        if kind == "NDEATH":
            return self._node_death(group, node, state, message)
        outcome = DecodeOutcome()
        if kind == "NBIRTH":
            self._node_birth(state, message)
        elif not state.online:
            outcome.rebirth = (group, node)
            outcome.errors.append(
                f"{kind} from {group}/{node} before its NBIRTH; rebirth requested"
            )
            return outcome
        else:
            self._check_seq(group, node, state, message, outcome)
        if kind == "DBIRTH":
            assert device is not None
            state.aliases[device] = {}
            state.types[device] = {}
            state.tags[device] = {}
            state.fast[device] = {}
            state.devices_online.add(device)
        elif kind == "DDEATH":
            state.devices_online.discard(device or "")
            outcome.stale.append(self.mapping.machine(group, node, device))
            outcome.stale_ts = message.timestamp if message.HasField("timestamp") else 0
            return outcome
        elif kind == "DDATA" and device not in state.devices_online:
            outcome.rebirth = (group, node)
            outcome.errors.append(f"DDATA from {group}/{node}/{device} before its DBIRTH")
            return outcome
        birth = kind in ("NBIRTH", "DBIRTH")
        self._metrics(group, node, device, state, message, birth, outcome)
        return outcome

    # ------------------------------------------------------------------ lifecycle
    def _node_birth(self, state: _Node, message: pb.Payload) -> None:
        state.aliases = {None: {}}
        state.types = {None: {}}
        state.tags = {}
        state.fast = {}
        state.devices_online = set()
        state.online = True
        state.seq = message.seq if message.HasField("seq") else 0
        state.bd_seq = None
        for metric in message.metrics:
            if metric.name == BD_SEQ:
                state.bd_seq = int(metric.long_value or metric.int_value)

    def _node_death(
        self, group: str, node: str, state: _Node, message: pb.Payload
    ) -> DecodeOutcome:
        bd_seq = None
        for metric in message.metrics:
            if metric.name == BD_SEQ:
                bd_seq = int(metric.long_value or metric.int_value)
        outcome = DecodeOutcome()
        if state.bd_seq is not None and bd_seq is not None and bd_seq != state.bd_seq:
            outcome.errors.append(
                f"NDEATH of {group}/{node} with bdSeq {bd_seq} does not match its birth "
                f"(bdSeq {state.bd_seq}); ignored as a stale death"
            )
            return outcome
        state.online = False
        outcome.stale.append(self.mapping.machine(group, node, None))
        outcome.stale.extend(
            self.mapping.machine(group, node, d) for d in sorted(state.devices_online)
        )
        state.devices_online = set()
        outcome.stale_ts = message.timestamp if message.HasField("timestamp") else 0
        return outcome

    def _check_seq(
        self, group: str, node: str, state: _Node, message: pb.Payload, outcome: DecodeOutcome
    ) -> None:
        if not message.HasField("seq"):
            outcome.errors.append(f"message from {group}/{node} has no seq")
            outcome.rebirth = (group, node)
            return
        expected = ((state.seq or 0) + 1) % 256
        if message.seq != expected:
            outcome.errors.append(
                f"seq gap from {group}/{node}: expected {expected}, got {message.seq}; "
                "rebirth requested"
            )
            outcome.rebirth = (group, node)
        state.seq = message.seq

    # ------------------------------------------------------------------ metrics
    @staticmethod
    def _fast_numbers(
        metrics: list, fast: dict[int, tuple[str, int]], default_ts: int | None, numbers: Numbers
    ) -> list:
        """Put float/double DATA metrics known by alias into ``numbers``; return the others.

        Alias 0, named metrics, zero, null and non-finite values take the full path. An empty
        name counts as no name, and a metric timestamp of 0 as no timestamp.
        """
        rest = []
        add_tag, add_ts, add_value = numbers.tags.append, numbers.ts.append, numbers.values.append
        for metric in metrics:
            alias = metric.alias
            hit = fast.get(alias) if alias else None
            if hit is not None and not metric.name and (metric.datatype or hit[1]) in _FLOATS:
                raw = metric.double_value or metric.float_value
                if raw and raw - raw == 0.0 and not metric.is_null:  # set and finite
                    ts = metric.timestamp or default_ts
                    if ts is not None:
                        add_tag(hit[0])
                        add_ts(ts)
                        add_value(raw)
                        continue
            rest.append(metric)
        return rest

    def _metrics(
        self,
        group: str,
        node: str,
        device: str | None,
        state: _Node,
        message: pb.Payload,
        birth: bool,
        outcome: DecodeOutcome,
    ) -> None:
        machine = state.machines.get(device)
        if machine is None:
            machine = state.machines[device] = self.mapping.machine(group, node, device)
        aliases = state.aliases.setdefault(device, {})
        types = state.types.setdefault(device, {})
        known = state.tags.setdefault(device, {})
        default_ts = message.timestamp if message.HasField("timestamp") else None
        fast = state.fast.setdefault(device, {})
        metrics = message.metrics
        if not birth:
            metrics = self._fast_numbers(metrics, fast, default_ts, outcome.numbers)
        for metric in metrics:
            has_name = metric.HasField("name")
            name = metric.name if has_name else None
            if birth:
                if name is None:
                    outcome.errors.append("BIRTH metric without a name")
                    continue
                if name == BD_SEQ and device is None:
                    continue
                types[name] = metric.datatype
                if metric.HasField("alias"):
                    aliases[metric.alias] = (name, metric.datatype)
                    fast.pop(metric.alias, None)
            elif name is None:
                if not metric.HasField("alias") or metric.alias not in aliases:
                    label = metric.alias if metric.HasField("alias") else "none"
                    outcome.errors.append(
                        f"unknown alias {label} from {group}/{node}; rebirth requested"
                    )
                    outcome.rebirth = (group, node)
                    continue
                name = aliases[metric.alias][0]
            if name not in types:
                outcome.errors.append(
                    f"metric {name[:100]!r} was not in the BIRTH; rebirth requested"
                )
                outcome.rebirth = (group, node)
                continue
            if name.startswith(("Node Control/", "Device Control/")):
                continue
            dtype = metric.datatype or types[name]
            if dtype not in _SUPPORTED:
                outcome.errors.append(
                    f"metric {name[:100]!r}: datatype {_NAMES.get(dtype, dtype)} is not supported"
                )
                continue
            ts = metric.timestamp if metric.HasField("timestamp") else default_ts
            if ts is None:
                outcome.errors.append(f"metric {name[:100]!r} has no timestamp")
                continue
            try:
                value = _value(metric, dtype)
                tag = known.get(name)
                if tag is None:
                    tag = f"{machine}/{_tag_name(name)}"
                    known[name] = tag  # only names that passed the check are remembered
                if metric.HasField("alias") and aliases.get(metric.alias, ("",))[0] == name:
                    fast[metric.alias] = (tag, aliases[metric.alias][1])
            except DataError as exc:
                outcome.errors.append(f"metric {name[:100]!r}: {exc}")
                continue
            if birth and metric.HasField("properties"):
                unit, description = _metric_meta(metric.properties)
                if unit or description:
                    kind = (
                        DataType.BOOLEAN
                        if dtype == _BOOL
                        else DataType.STRING
                        if dtype in _TEXTS
                        else DataType.NUMBER
                    )
                    outcome.meta.append((tag, unit, description, kind))
            if value is not None:
                outcome.points.append((tag, int(ts), value))


def encode_rebirth(now_ms: int) -> bytes:
    """Return the NCMD payload asking an edge node to publish its births again."""
    message = pb.Payload()
    message.timestamp = now_ms
    metric = message.metrics.add()
    metric.name = REBIRTH_METRIC
    metric.datatype = _BOOL
    metric.boolean_value = True
    return message.SerializeToString()
