"""A simulated Sparkplug B edge node (Eclipse Sparkplug 3.0), pure: payloads in, bytes out.

One edge node per site, one device per machine. The node numbers its MQTT sessions with
``bdSeq`` (the NDEATH will and the NBIRTH of a session carry the same one), numbers every
NBIRTH/DBIRTH/DDATA with ``seq`` 0-255 (NBIRTH is 0, wrapping after 255), gives each device
metric an alias in its DBIRTH, and then reports changed values by alias only. A
``Node Control/Rebirth`` command makes it publish its births again. Sockets live in
`indunet.sim.publish`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.connect.codec.sparkplug import BD_SEQ, NAMESPACE, REBIRTH_METRIC
from indunet.errors import DataError
from indunet.uns import check_segment

__all__ = ["DEVICE_METRICS", "SparkplugEdgeNode", "SparkplugMessage"]

# Sparkplug B data types (spec 3.0, section 6.4.16)
_INT64, _UINT64, _DOUBLE, _BOOLEAN, _STRING = 4, 8, 10, 11, 12

#: the simulator's machine payload fields as Sparkplug device metrics (name -> datatype)
DEVICE_METRICS: dict[str, int] = {
    "power_kw": _DOUBLE,
    "energy_kwh": _DOUBLE,
    "parts_total": _UINT64,
    "good_total": _UINT64,
    "scrap_total": _UINT64,
    "temp_c": _DOUBLE,
    "state": _STRING,
}


@dataclass(frozen=True, slots=True)
class SparkplugMessage:
    """One MQTT message an edge node wants published."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


def _set_value(metric: pb.Payload.Metric, datatype: int, value: object) -> None:
    metric.datatype = datatype
    if value is None:
        metric.is_null = True
    elif datatype == _DOUBLE:
        metric.double_value = float(value)  # type: ignore[arg-type]
    elif datatype in (_UINT64, _INT64):
        metric.long_value = int(value) & ((1 << 64) - 1)  # type: ignore[call-overload]
    elif datatype == _BOOLEAN:
        metric.boolean_value = bool(value)
    elif datatype == _STRING:
        metric.string_value = str(value)
    else:  # pragma: no cover - DEVICE_METRICS is fixed
        raise ValueError(datatype)


@dataclass(slots=True)
class SparkplugEdgeNode:
    """The state of one edge node: its devices, aliases, ``bdSeq`` and ``seq`` (no I/O)."""

    group: str
    node: str
    devices: list[str]
    bd_seq: int = -1  # the current session's bdSeq; `connect()` moves to the next one
    seq: int = 0
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)
    last: dict[str, dict[str, object]] = field(default_factory=dict)  # last value sent

    def __post_init__(self) -> None:
        check_segment(self.group, "Sparkplug group")
        check_segment(self.node, "Sparkplug edge node")
        if len(set(self.devices)) != len(self.devices):
            raise DataError(f"edge node {self.node} has duplicate device ids")
        for i, device in enumerate(self.devices):
            check_segment(device, "Sparkplug device")
            for k, name in enumerate(DEVICE_METRICS):  # unique within the node (spec 6.4.6)
                self.aliases[(device, name)] = i * len(DEVICE_METRICS) + k + 1

    def topic(self, kind: str, device: str | None = None) -> str:
        """Return ``spBv1.0/{group}/{kind}/{node}[/{device}]``."""
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return f"{base}/{device}" if device else base

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _bd_seq_metric(self, message: pb.Payload) -> None:
        metric = message.metrics.add()
        metric.name = BD_SEQ
        _set_value(metric, _INT64, self.bd_seq)

    def connect(self, now_ms: int) -> SparkplugMessage:
        """Start a new MQTT session: move to the next bdSeq and return the NDEATH will."""
        self.bd_seq = (self.bd_seq + 1) % 256
        return self.death(now_ms)

    def death(self, now_ms: int) -> SparkplugMessage:
        """Return the NDEATH of the current session (the will, or sent before a clean exit)."""
        death = pb.Payload()
        death.timestamp = now_ms
        self._bd_seq_metric(death)
        return SparkplugMessage(self.topic("NDEATH"), death.SerializeToString(), qos=1)

    def births(self, values: dict[str, dict], now_ms: int) -> list[SparkplugMessage]:
        """Return the NBIRTH and one DBIRTH per device, with aliases and current ``values``."""
        if self.bd_seq < 0:
            raise DataError(f"edge node {self.node}: call connect() before births()")
        self.seq = 0
        nbirth = pb.Payload()
        nbirth.timestamp = now_ms
        nbirth.seq = 0
        self._bd_seq_metric(nbirth)
        rebirth = nbirth.metrics.add()
        rebirth.name = REBIRTH_METRIC
        _set_value(rebirth, _BOOLEAN, False)
        out = [SparkplugMessage(self.topic("NBIRTH"), nbirth.SerializeToString())]
        self.last = {}
        for device in self.devices:
            payload = values.get(device, {})
            dbirth = pb.Payload()
            dbirth.timestamp = int(payload.get("timestamp_ms", now_ms))
            dbirth.seq = self._next_seq()
            for name, datatype in DEVICE_METRICS.items():
                metric = dbirth.metrics.add()
                metric.name = name
                metric.alias = self.aliases[(device, name)]
                _set_value(metric, datatype, payload.get(name))
            self.last[device] = {k: payload.get(k) for k in DEVICE_METRICS}
            out.append(SparkplugMessage(self.topic("DBIRTH", device), dbirth.SerializeToString()))
        return out

    def data(self, device: str, payload: dict) -> SparkplugMessage | None:
        """Return a DDATA with the metrics that changed since last sent, by alias; or ``None``."""
        if device not in self.last:
            raise DataError(f"device {device} of edge node {self.node} has no DBIRTH yet")
        sent = self.last[device]
        changed = {k: payload[k] for k in DEVICE_METRICS if k in payload and payload[k] != sent[k]}
        if not changed:
            return None
        message = pb.Payload()
        message.timestamp = int(payload["timestamp_ms"])
        message.seq = self._next_seq()
        for name, value in changed.items():
            metric = message.metrics.add()
            metric.alias = self.aliases[(device, name)]
            _set_value(metric, DEVICE_METRICS[name], value)
            sent[name] = value
        return SparkplugMessage(self.topic("DDATA", device), message.SerializeToString())

    def command(
        self, payload: bytes, values: dict[str, dict], now_ms: int
    ) -> list[SparkplugMessage]:
        """Answer an NCMD: ``Node Control/Rebirth`` = true gives the births again."""
        try:
            message = pb.Payload.FromString(payload)
        except (DecodeError, ValueError) as exc:
            raise DataError(f"NCMD to {self.node} is not a Sparkplug B payload ({exc})") from exc
        if any(m.name == REBIRTH_METRIC and m.boolean_value for m in message.metrics):
            return self.births(values, now_ms)
        return []
