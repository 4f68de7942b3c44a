"""Publish buffered readings over MQTT (paho-mqtt 2.x), as UNS JSON or as a Sparkplug B edge node.

`Forwarder` owns one thread and one broker session at a time. It reads the buffer in order,
publishes at QoS 1 with a bounded in-flight window, and removes a row only when its PUBACK came
back. After a reconnect, rows written since the reconnect (live data) and the backlog from the
outage are sent side by side: live rows are never stuck behind the backlog, and the backlog is
replayed oldest first. Rows in flight when a connection drops stay in the buffer and are sent
again (at least once; the historian's writes are idempotent per tag and time).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.connect.codec.sparkplug import NAMESPACE, REBIRTH_METRIC
from indunet.connect.codec.uns_json import QUALITY_KEY, ROOT
from indunet.connect.mqtt import parse_mqtt_url
from indunet.edge.buffer import EdgeBuffer, QueuedRow, now_ms
from indunet.edge.config import (
    BrokerConfig,
    EdgeConfig,
    ModbusDevice,
    OpcuaDevice,
    PublisherConfig,
)
from indunet.edge.reading import HEALTH_TAGS
from indunet.errors import TemporaryError

__all__ = [
    "COMMAND_ROOT",
    "Forwarder",
    "ForwarderStats",
    "JsonEncoder",
    "SparkplugEdgeNode",
    "command_topic",
    "make_encoder",
]

log = logging.getLogger(__name__)

#: JSON command topics: ``indunet/cmd/v1/{enterprise}/{site}/{area}/{line}/{machine}``
COMMAND_ROOT = "indunet/cmd/v1"
#: where write results and audit records are published
AUDIT_ROOT = "indunet/audit/v1"
_DOUBLE, _BOOL, _STRING, _INT64 = 10, 11, 12, 4
_INT32 = 3
_DA_QUALITY = {"good": 192, "uncertain": 64, "bad": 0, "stale": 0}  # OPC DA quality codes
_KIND_TYPE = {"number": _DOUBLE, "boolean": _BOOL, "string": _STRING}


def command_topic(enterprise: str, machine: str) -> str:
    """Return the JSON command topic of a machine."""
    return f"{COMMAND_ROOT}/{enterprise}/{machine}"


def audit_topic(enterprise: str, machine: str) -> str:
    """Return the topic the audit records of a machine are published on."""
    return f"{AUDIT_ROOT}/{enterprise}/{machine}"


def tag_kinds(device: ModbusDevice | OpcuaDevice) -> dict[str, str]:
    """Return each tag's kind (number, boolean, string), health tags included."""
    kinds: dict[str, str] = {}
    for tag in device.tags:
        if isinstance(device, ModbusDevice):
            kind = {"string": "string", "bool": "boolean"}.get(tag.type, "number")  # type: ignore[union-attr]
        else:
            kind = tag.type  # type: ignore[union-attr]
        kinds[tag.name] = kind
    return {**kinds, **HEALTH_TAGS}


class JsonEncoder:
    """Turn buffered rows into UNS JSON messages (DESIGN.md §3)."""

    def __init__(self, enterprise: str, machines: dict[str, str]) -> None:
        self.enterprise = enterprise
        self.topics = {dev: f"{ROOT}/{enterprise}/{m}" for dev, m in machines.items()}

    def births(self) -> list[tuple[str, bytes]]:
        """Return nothing: JSON has no birth messages."""
        return []

    def will(self) -> tuple[str, bytes] | None:
        """Return nothing: JSON has no will message."""
        return None

    def encode(self, row: QueuedRow, historical: bool = False) -> tuple[str, bytes]:
        """Return the topic and payload of a row."""
        if row.kind == "raw":
            return row.key, row.payload
        values = orjson.loads(row.payload)
        values["timestamp_ms"] = row.ts
        return self.topics[row.key], orjson.dumps(values)

    def command_topics(self) -> list[str]:
        """Return the topics commands arrive on."""
        return [t.replace(f"{ROOT}/", f"{COMMAND_ROOT}/", 1) for t in self.topics.values()]


def _set_value(metric: pb.Payload.Metric, dtype: int, value: object) -> None:
    if value is None:
        metric.is_null = True
    elif dtype == _BOOL:
        metric.boolean_value = bool(value)
    elif dtype == _STRING:
        metric.string_value = str(value)
    elif dtype == _INT64:
        metric.long_value = int(value)  # type: ignore[call-overload]
    else:
        metric.double_value = float(value)  # type: ignore[arg-type]


class SparkplugEdgeNode:
    """A Sparkplug B edge node: births with aliases, DDATA by alias, NDEATH as will, seq 0-255."""

    def __init__(
        self, group: str, node: str, devices: dict[str, dict[str, str]], bd_seq: int = 0
    ) -> None:
        self.group = group
        self.node = node
        self.bd_seq = bd_seq % 256
        self.seq = 0
        self.metrics: dict[str, dict[str, tuple[int, int]]] = {}  # device -> name -> alias, type
        alias = 1  # 0 is Node Control/Rebirth
        for dev, kinds in devices.items():
            self.metrics[dev] = {}
            for name, kind in kinds.items():
                self.metrics[dev][name] = (alias, _KIND_TYPE[kind])
                alias += 1
        self.last: dict[str, dict[str, object]] = {dev: {} for dev in devices}

    def _topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return f"{base}/{device}" if device else base

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    def will(self) -> tuple[str, bytes]:
        """Return the NDEATH message (topic, payload) to register as the MQTT will."""
        msg = pb.Payload()
        msg.timestamp = now_ms()
        m = msg.metrics.add()
        m.name, m.datatype, m.long_value = "bdSeq", _INT64, self.bd_seq
        return self._topic("NDEATH"), msg.SerializeToString()

    def births(self) -> list[tuple[str, bytes]]:
        """Return NBIRTH then one DBIRTH per device, with every metric, alias and last value."""
        now = now_ms()
        self.seq = 0
        node = pb.Payload()
        node.timestamp, node.seq = now, self._next_seq()
        m = node.metrics.add()
        m.name, m.datatype, m.long_value, m.timestamp = "bdSeq", _INT64, self.bd_seq, now
        m = node.metrics.add()
        m.name, m.alias, m.datatype, m.boolean_value = REBIRTH_METRIC, 0, _BOOL, False
        m.timestamp = now
        out = [(self._topic("NBIRTH"), node.SerializeToString())]
        for dev, metrics in self.metrics.items():
            msg = pb.Payload()
            msg.timestamp, msg.seq = now, self._next_seq()
            for name, (alias, dtype) in metrics.items():
                m = msg.metrics.add()
                m.name, m.alias, m.datatype, m.timestamp = name, alias, dtype, now
                _set_value(m, dtype, self.last[dev].get(name))
            out.append((self._topic("DBIRTH", dev), msg.SerializeToString()))
        return out

    def encode(self, row: QueuedRow, historical: bool = False) -> tuple[str, bytes]:
        """Return the DDATA of a buffered row (or a raw row as it is)."""
        if row.kind == "raw":
            return row.key, row.payload
        values = orjson.loads(row.payload)
        qualities = values.pop(QUALITY_KEY, {})
        metrics = self.metrics[row.key]
        msg = pb.Payload()
        msg.timestamp, msg.seq = row.ts, self._next_seq()
        last = self.last[row.key]
        for name, value in values.items():
            known = metrics.get(name)
            if known is None:
                continue  # a tag removed from the config since the row was written
            m = msg.metrics.add()
            m.alias, m.datatype, m.timestamp = known[0], known[1], row.ts
            if historical:
                m.is_historical = True
            else:
                last[name] = value
            _set_value(m, known[1], value)
            if name in qualities:  # the Quality property, in OPC DA codes (as Ignition sends)
                m.properties.keys.append("Quality")
                prop = m.properties.values.add()
                prop.type = _INT32
                prop.int_value = _DA_QUALITY.get(qualities[name], 0)
        return self._topic("DDATA", row.key), msg.SerializeToString()

    def command_topics(self) -> list[str]:
        """Return the NCMD and DCMD topics of this node."""
        return [self._topic("NCMD"), self._topic("DCMD") + "/+"]

    def is_rebirth(self, topic: str, payload: bytes) -> bool:
        """Return whether a message is an NCMD asking for a rebirth."""
        if topic != self._topic("NCMD"):
            return False
        msg = pb.Payload()
        try:
            msg.ParseFromString(payload)
        except Exception:
            return False
        return any(
            (m.name == REBIRTH_METRIC or (not m.name and m.alias == 0)) and m.boolean_value
            for m in msg.metrics
        )


def make_encoder(cfg: EdgeConfig, buffer: EdgeBuffer) -> JsonEncoder | SparkplugEdgeNode:
    """Build the encoder the publisher mode asks for."""
    if cfg.publisher.mode == "json":
        return JsonEncoder(cfg.broker.enterprise, {d.name: d.machine for d in cfg.devices})
    return SparkplugEdgeNode(
        cfg.publisher.group,
        cfg.publisher.node,
        {d.name: tag_kinds(d) for d in cfg.devices},
        bd_seq=buffer.next_counter("bdSeq"),
    )


@dataclass(slots=True)
class ForwarderStats:
    """What the publisher did, for status and tests."""

    connected: bool = False
    connections: int = 0
    published: int = 0
    acked: int = 0
    replayed: int = 0
    resent: int = 0  # acknowledged rows sent again after a lost connection
    births: int = 0
    last_error: str | None = None


class Forwarder:
    """Send the buffer to the broker in order at QoS 1; delete rows only after their PUBACK."""

    def __init__(
        self,
        broker: BrokerConfig,
        publisher: PublisherConfig,
        buffer: EdgeBuffer,
        encoder: JsonEncoder | SparkplugEdgeNode,
        on_command: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.broker = broker
        self.publisher = publisher
        self.buffer = buffer
        self.encoder = encoder
        self.on_command = on_command
        self.host, self.port, self.tls, self.user, self.password = parse_mqtt_url(broker.url)
        self.stats = ForwarderStats()
        self._stop = threading.Event()
        self._rebirth = threading.Event()
        self._lock = threading.Lock()
        self._acked_mids: list[int] = []
        self._thread: threading.Thread | None = None
        self._extra_topics: list[str] = []
        # rows the broker acknowledged lately (monotonic time of the PUBACK, row), kept
        # `resend_s` to send again after a lost connection; sent again on reconnect
        self._recent: collections.deque[tuple[float, QueuedRow]] = collections.deque()
        self._lost_at: float | None = None

    def start(self) -> None:
        """Start the publisher thread (it connects and reconnects on its own)."""
        self._thread = threading.Thread(target=self._run, name="edge-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the in-flight messages (up to ``timeout``), send NDEATH and disconnect."""
        self._stop_timeout = timeout
        self._stop.set()
        self.buffer.wakeup.set()
        if self._thread:
            self._thread.join(timeout + 5)

    def _run(self) -> None:
        low, high = self.broker.reconnect_s
        delay = low
        down_logged = False
        while not self._stop.is_set():
            try:
                self._session()
                delay = low
                down_logged = False
            except Exception as exc:  # the loop must survive anything the network does
                self.stats.last_error = str(exc)
                if not down_logged:
                    log.warning("edge publisher: %s; retrying every %.0f-%.0f s", exc, low, high)
                    down_logged = True
            self.stats.connected = False
            if self._stop.is_set():
                break
            self._stop.wait(delay)
            delay = min(delay * 2, high)

    def _client(self, connected: threading.Event, lost: threading.Event):
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.broker.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        client.max_inflight_messages_set(self.publisher.max_inflight)
        if self.user:
            client.username_pw_set(self.user, self.password)
        if self.tls:
            client.tls_set()
        will = self.encoder.will()
        if will:
            client.will_set(will[0], will[1], qos=1, retain=False)

        def on_connect(_c, _u, _f, reason, _p) -> None:
            if reason.is_failure:
                self.stats.last_error = f"broker refused the connection: {reason}"
                lost.set()
            else:
                connected.set()

        def on_disconnect(_c, _u, _f, reason, _p) -> None:
            lost.set()

        def on_publish(_c, _u, mid, _reason, _p) -> None:
            with self._lock:
                self._acked_mids.append(mid)
            self.buffer.wakeup.set()

        def on_message(_c, _u, message) -> None:
            if isinstance(self.encoder, SparkplugEdgeNode) and self.encoder.is_rebirth(
                message.topic, message.payload
            ):
                self._rebirth.set()
                self.buffer.wakeup.set()
                return
            if self.on_command:
                try:
                    self.on_command(message.topic, message.payload)
                except Exception:
                    log.exception("edge command on %s failed", message.topic)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        return client

    def _session(self) -> None:
        connected, lost = threading.Event(), threading.Event()
        client = self._client(connected, lost)
        try:
            client.connect(self.host, self.port, keepalive=self.broker.keepalive_s)
        except OSError as exc:
            raise TemporaryError(
                f"MQTT broker {self.host}:{self.port} is not reachable; readings stay buffered",
                detail=str(exc),
            ) from exc
        client.loop_start()
        try:
            for _ in range(200):
                if connected.is_set() or lost.is_set() or self._stop.is_set():
                    break
                connected.wait(0.05)
            if not connected.is_set():
                raise TemporaryError(
                    f"MQTT broker {self.host}:{self.port} did not accept the connection "
                    f"({self.stats.last_error or 'no CONNACK'})"
                )
            self.stats.connections += 1
            self.stats.connected = True
            self.stats.last_error = None
            log.info("edge publisher connected to %s:%s", self.host, self.port)
            topics = self.encoder.command_topics() + self._extra_topics
            if topics:
                client.subscribe([(t, 1) for t in topics])
            self._pump(client, lost)
        finally:
            client.loop_stop()
            with contextlib.suppress(Exception):  # the socket may already be gone
                client.disconnect()
            with self._lock:
                self._acked_mids.clear()
            if self.stats.connected and not self._stop.is_set():  # a session ended: lost
                self._lost_at = time.monotonic()

    def _send_births(self, client) -> None:
        for topic, payload in self.encoder.births():
            client.publish(topic, payload, qos=0)
        if isinstance(self.encoder, SparkplugEdgeNode):
            self.stats.births += 1

    def _resend_recent(self, client, inflight: dict[int, QueuedRow]) -> None:
        """Send again what was acknowledged within `resend_s` before the connection was lost.

        A broker acknowledges a message before it has saved it (Mosquitto saves at the end of
        its event-loop pass); killed in between, it comes back without it. The historian
        ignores the duplicates.
        """
        keep = self.publisher.resend_s
        lost_at, self._lost_at = self._lost_at, None
        if lost_at is None or not keep or not self._recent:
            return
        rows = [row for at, row in self._recent if at >= lost_at - keep]
        self._recent.clear()
        if rows:
            self._publish_rows(client, rows, inflight, historical=True)
            self.stats.resent += len(rows)
            log.info("edge publisher sent %d recently acknowledged rows again", len(rows))

    def _pump(self, client, lost: threading.Event) -> None:
        inflight: dict[int, QueuedRow] = {}  # mid -> row
        self._send_births(client)
        self._resend_recent(client, inflight)
        live_from = self.buffer.max_id()
        live_cursor, back_cursor = live_from, 0
        window = self.publisher.max_inflight
        deadline = None
        while not lost.is_set():
            if self._stop.is_set():
                if deadline is None:
                    deadline = now_ms() + int(getattr(self, "_stop_timeout", 5.0) * 1000)
                if not inflight or now_ms() > deadline:
                    self._goodbye(client)
                    return
            if self._rebirth.is_set():
                self._rebirth.clear()
                self._send_births(client)
            with self._lock:
                mids, self._acked_mids = self._acked_mids, []
                done = [inflight.pop(m) for m in mids if m in inflight]
            if done:
                self.buffer.ack([row.id for row in done])
                self.stats.acked += len(done)
                if self.publisher.resend_s:
                    at = time.monotonic()
                    self._recent.extend((at, row) for row in done)
                    while self._recent and self._recent[0][0] < at - self.publisher.resend_s:
                        self._recent.popleft()
            room = window - len(inflight)
            sent = 0
            if room > 0 and not self._stop.is_set():
                backlog = back_cursor < live_from
                rows = self.buffer.read(live_cursor, max(1, room // 2) if backlog else room)
                sent += self._publish_rows(client, rows, inflight, historical=False)
                if rows:
                    live_cursor = rows[-1].id
                room = window - len(inflight)
                if backlog and room > 0:
                    old = self.buffer.read(back_cursor, room, upto_id=live_from)
                    if not old:
                        back_cursor = live_from
                    else:
                        sent += self._publish_rows(client, old, inflight, historical=True)
                        back_cursor = old[-1].id
                        self.stats.replayed += len(old)
            if not sent and not done:
                self.buffer.wakeup.wait(0.05)
                self.buffer.wakeup.clear()

    def _publish_rows(
        self, client, rows: list[QueuedRow], inflight: dict[int, QueuedRow], *, historical: bool
    ) -> int:
        for row in rows:
            topic, payload = self.encoder.encode(row, historical)
            # no lock here: paho holds its own lock while calling on_publish; acks are only
            # matched by this thread, after this loop, so every mid is recorded by then
            info = client.publish(topic, payload, qos=1)
            inflight[info.mid] = row
        self.stats.published += len(rows)
        return len(rows)

    def _goodbye(self, client) -> None:
        will = self.encoder.will()
        if will:
            info = client.publish(will[0], will[1], qos=1)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2)
