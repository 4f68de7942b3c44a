"""Sparkplug B host codec (Eclipse Sparkplug 3.0), pure: topic and bytes in, points and events out.

`SparkplugHost` keeps, per edge node, the aliases and data types from NBIRTH/DBIRTH, the
sequence number and the birth/death sequence (bdSeq). It never touches the network: the glue
in `indunet.connect.mqtt` feeds it messages and carries out what it asks for (store points,
dead-letter a message, request a rebirth, mark tags stale).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.errors import DataError
from indunet.ingest.values import MAX_TEXT, Value
from indunet.model import DataType, Quality
from indunet.uns import check_segment

__all__ = [
    "NAMESPACE",
    "ONLINE_TAG",
    "DecodeOutcome",
    "Numbers",
    "SparkplugHost",
    "SparkplugMapping",
    "SparkplugRoute",
    "decompress",
    "encode_command",
    "encode_rebirth",
]

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
MAX_PAYLOAD = 1024 * 1024
#: the ``uuid`` Eclipse Tahu sets on a payload whose ``body`` is another, compressed payload
COMPRESSED_UUID = "SPBV1.0_COMPRESSED"
#: integers beyond this lose digits as a float: they are kept exactly as text beside the float
EXACT_LIMIT = 1 << 53
#: a boolean tag under each node's and device's machine: 1 from its birth, 0 from its death
ONLINE_TAG = "sparkplug.online"
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
class SparkplugRoute:
    """Where one group's (or one of its edge nodes') data lands: enterprise and site.

    ``node`` None covers every node of the group; a route naming the node wins over it. An
    empty ``enterprise`` or ``site`` keeps the default (the settings' enterprise, the group id).
    """

    group: str
    node: str | None = None
    enterprise: str | None = None
    site: str | None = None

    def __post_init__(self) -> None:
        check_segment(self.group, "Sparkplug group")
        if self.node is not None:
            check_segment(self.node, "Sparkplug edge node")
        if self.enterprise is not None:
            check_segment(self.enterprise, "enterprise")
        if self.site is not None:
            check_segment(self.site, "site")


@dataclass(frozen=True, slots=True)
class SparkplugMapping:
    """Where Sparkplug things land in the namespace: ``{site} {group} {node} {device}``.

    Default: enterprise from the settings and site = group id, unless a `SparkplugRoute` of
    the group (or of the edge node) says otherwise; a device's metrics under
    ``site/node/devices/device``, the node's own metrics under ``site/node/node/node``;
    a metric name's ``/`` folders become ``.`` in the tag name.
    """

    enterprise: str = "demo"
    device_machine: str = "{site}/{node}/devices/{device}"
    node_machine: str = "{site}/{node}/node/{node}"
    routes: tuple[SparkplugRoute, ...] = ()

    def route(self, group: str, node: str) -> tuple[str, str]:
        """Return the (enterprise, site) of an edge node."""
        chosen = None
        for r in self.routes:
            if r.group == group and r.node == node:
                chosen = r
                break
            if r.group == group and r.node is None and chosen is None:
                chosen = r
        if chosen is None:
            return self.enterprise, group
        return chosen.enterprise or self.enterprise, chosen.site or group

    def machine(self, group: str, node: str, device: str | None) -> str:
        """Return the machine path (site/area/line/machine) of a node or device."""
        template = self.device_machine if device else self.node_machine
        site = self.route(group, node)[1]
        path = template.format(group=group, node=node, device=device or "", site=site)
        parts = path.split("/")
        if len(parts) != 4:
            raise DataError(f"Sparkplug mapping gives {path!r}, not site/area/line/machine")
        for level, part in zip(("site", "area", "line", "machine"), parts, strict=True):
            check_segment(part, level)
        return path


@dataclass(slots=True)
class _Node:
    """What the host knows about one edge node since its last birth."""

    enterprise: str = ""
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
    #: when they went offline: the DDEATH's timestamp; 0 for the host's time (NDEATH)
    stale_ts: int = 0
    #: machine paths that came online with this birth, and its timestamp (0: none given)
    born: list[str] = field(default_factory=list)
    born_ts: int = 0
    enterprise: str = ""  # the enterprise the edge node's data belongs to
    #: float and double metrics, kept in columns (no `Value` per point); not in ``points``
    numbers: Numbers = field(default_factory=Numbers)
    #: BIRTH metrics' units and descriptions from their properties: (tag, unit, description,
    #: data type)
    meta: list[tuple[str, str | None, str | None, DataType]] = field(default_factory=list)
    #: index into ``points`` -> quality, for the points whose metric said they are not good
    quality: dict[int, Quality] = field(default_factory=dict)

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
        return _integer(number)
    if dtype in _UNSIGNED or dtype == _DATETIME:
        return _integer(int(raw))  # type: ignore[call-overload]
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


def _integer(number: int) -> Value:
    """Return an integer as a number; beyond 2^53 its exact digits ride along as text."""
    if -EXACT_LIMIT <= number <= EXACT_LIMIT:
        return Value(float(number), None, DataType.NUMBER)
    return Value(float(number), str(number), DataType.NUMBER)


def decompress(message: pb.Payload) -> pb.Payload:
    """Return the inner payload of a compressed one (Tahu's ``compress``), else ``message``.

    The outer payload names the algorithm (GZIP or DEFLATE) in an ``algorithm`` metric and
    carries the compressed inner payload in ``body``; the inner payload may not be larger than
    `MAX_PAYLOAD` (a compression bomb is refused, not inflated).
    """
    algorithm = None
    for metric in message.metrics:
        if metric.name == "algorithm":
            algorithm = metric.string_value.upper()
    if message.uuid != COMPRESSED_UUID and algorithm is None:
        return message
    if not message.HasField("body"):
        raise DataError("compressed payload has no body")
    if algorithm is None:
        algorithm = "DEFLATE"  # Tahu's default when the metric is missing
    if algorithm not in ("GZIP", "DEFLATE"):
        raise DataError(f"compression algorithm {algorithm[:20]!r} is not GZIP or DEFLATE")
    wbits = 31 if algorithm == "GZIP" else 15  # DEFLATE: the zlib format Tahu writes
    try:
        inflater = zlib.decompressobj(wbits)
        raw = inflater.decompress(message.body, MAX_PAYLOAD + 1)
    except zlib.error as exc:
        raise DataError(f"compressed payload does not inflate with {algorithm} ({exc})") from exc
    if len(raw) > MAX_PAYLOAD or inflater.unconsumed_tail:
        raise DataError(f"compressed payload inflates beyond the {MAX_PAYLOAD} byte limit")
    if not inflater.eof:
        raise DataError(f"compressed payload is cut short ({algorithm})")
    try:
        inner = pb.Payload.FromString(raw)
    except (DecodeError, ValueError) as exc:
        raise DataError(f"compressed body is not a Sparkplug B protobuf ({exc})") from exc
    if inner.uuid == COMPRESSED_UUID:
        raise DataError("compressed payload holds another compressed payload")
    return inner


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


def metric_quality(props: pb.Payload.PropertySet) -> Quality | None:
    """Return the quality a metric's ``Quality`` property gives (OPC DA codes, as Ignition and
    Cirrus Link send them: 192-255 good, 64-191 uncertain, 0-63 bad); ``None`` when absent."""
    for key, value in zip(props.keys, props.values, strict=False):
        if key.lower() != "quality":
            continue
        kind = value.WhichOneof("value")
        if kind not in ("int_value", "long_value"):
            return None
        code = getattr(value, kind) & 0xFFFF
        return Quality.GOOD if code >= 192 else Quality.UNCERTAIN if code >= 64 else Quality.BAD
    return None


def _tag_name(name: str) -> str:
    return check_segment(_SANITIZE.sub(".", name), "tag")


class SparkplugHost:
    """Per-session Sparkplug state and the decoding that depends on it (no I/O)."""

    def __init__(self, mapping: SparkplugMapping) -> None:
        self.mapping = mapping
        self.nodes: dict[tuple[str, str], _Node] = {}

    def enterprise_of(self, topic: str) -> str:
        """Return the enterprise a Sparkplug topic's edge node maps to (for its dead letters)."""
        parts = topic.split("/")
        if len(parts) >= 4 and parts[0] == NAMESPACE and parts[2] != "STATE":
            try:
                return self.mapping.route(parts[1], parts[3])[0]
            except DataError:
                pass
        return self.mapping.enterprise

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
        message = decompress(message)
        state = self.nodes.get((group, node))
        if state is None:
            state = self.nodes[(group, node)] = _Node(self.mapping.route(group, node)[0])
        if kind == "NDEATH":
            outcome = self._node_death(group, node, state, message)
            outcome.enterprise = state.enterprise
            return outcome
        outcome = DecodeOutcome(enterprise=state.enterprise)
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
        if birth:
            outcome.born.append(self.mapping.machine(group, node, device))
            outcome.born_ts = message.timestamp if message.HasField("timestamp") else 0
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
        outcome.stale_ts = 0  # Sparkplug 3.0: NDEATH takes the host's time (it is the will's)
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
            if (
                hit is not None
                and not metric.name
                and (metric.datatype or hit[1]) in _FLOATS
                and not metric.HasField("properties")
            ):
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
                if not birth and metric.HasField("properties"):
                    quality = metric_quality(metric.properties)
                    if quality is not None and quality != Quality.GOOD:
                        outcome.quality[len(outcome.points)] = quality
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


def encode_command(
    host: SparkplugHost,
    group: str,
    node: str,
    device: str | None,
    values: dict[str, object],
    now_ms: int,
) -> bytes:
    """Return an NCMD (``device`` None) or DCMD payload writing ``values`` (name -> value).

    Each name must be in the node's (or device's) birth and each value fit the datatype the
    birth gave it; anything else raises `DataError` naming it. The payload carries the time it
    is sent and no seq (Sparkplug 3.0 commands have none).
    """
    if not values:
        raise DataError("a command needs at least one metric to write")
    state = host.nodes.get((group, node))
    where = f"{group}/{node}" + (f"/{device}" if device else "")
    if state is None or not state.online or (device and device not in state.devices_online):
        raise DataError(f"{where} is not online (no birth since its last death)")
    types = state.types.get(device, {})
    message = pb.Payload()
    message.timestamp = now_ms
    for name, value in values.items():
        dtype = types.get(name)
        if dtype is None:
            raise DataError(f"metric {name[:100]!r} is not in the birth of {where}")
        metric = message.metrics.add()
        metric.name = name
        metric.datatype = dtype
        metric.timestamp = now_ms
        _set_value(metric, dtype, value, name)
    return message.SerializeToString()


def _set_value(metric: pb.Payload.Metric, dtype: int, value: object, name: str) -> None:
    """Put ``value`` into the metric's field for ``dtype``, or raise `DataError`."""
    label = pb.DataType.Name(dtype) if dtype in pb.DataType.values() else str(dtype)
    wrong = DataError(f"value {str(value)[:40]!r} does not fit metric {name[:100]!r} ({label})")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if dtype in _SIGNED or dtype in _UNSIGNED or dtype == _DATETIME:
        bits = _SIGNED.get(dtype) or {5: 8, 6: 16, 7: 32, 8: 64}.get(dtype, 64)
        if not is_int:
            raise wrong
        assert isinstance(value, int)
        low = -(1 << (bits - 1)) if dtype in _SIGNED else 0
        high = (1 << (bits - 1)) - 1 if dtype in _SIGNED else (1 << bits) - 1
        if not low <= value <= high:
            raise wrong
        raw = value & ((1 << bits) - 1)  # two's complement, as Tahu encodes
        if bits == 64:
            metric.long_value = raw
        else:
            metric.int_value = raw
    elif dtype in _FLOATS:
        if not (is_int or isinstance(value, float)) or not math.isfinite(value):  # type: ignore[arg-type]
            raise wrong
        if dtype == 9:
            metric.float_value = float(value)  # type: ignore[arg-type]
        else:
            metric.double_value = float(value)  # type: ignore[arg-type]
    elif dtype == _BOOL:
        if not isinstance(value, bool):
            raise wrong
        metric.boolean_value = value
    elif dtype in _TEXTS:
        if not isinstance(value, str):
            raise wrong
        metric.string_value = value
    else:
        raise wrong
