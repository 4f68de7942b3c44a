"""Test peers for the Sparkplug 3.0 host conformance tests, all on a real broker.

- `RecordingProxy` sits between the host and Mosquitto and records every MQTT packet both ways
  (the TCK does the same as a broker extension): CONNECT flags and will, SUBSCRIBE filters,
  each PUBLISH with its QoS and retain flag, and the order of it all.
- `ScriptedEdgeNode` is an edge node whose every message is written by the test (seq, aliases,
  compressed payloads, deaths), so the host can be fed what the assertion needs.
- `Observer` is a plain client that records what the broker delivers on some topics.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from indunet.connect.codec import mqtt_packets as mp
from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.connect.mqtt import parse_mqtt_url

# ---------------------------------------------------------------------------- packets


@dataclass(slots=True)
class Packet:
    """One MQTT packet seen by the proxy."""

    n: int  # global order
    conn: int  # connection number (1 = first)
    up: bool  # client -> broker
    first: int
    body: bytes

    @property
    def kind(self) -> int:
        return self.first >> 4


@dataclass(slots=True)
class Connect:
    """A parsed CONNECT packet."""

    version: int
    clean: bool
    keepalive: int
    session_expiry: int | None
    client_id: str
    will_topic: str | None
    will_payload: bytes | None
    will_qos: int
    will_retain: bool


@dataclass(slots=True)
class Publish:
    """A parsed PUBLISH packet."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    n: int
    conn: int


def _string(body: bytes, i: int) -> tuple[bytes, int]:
    size = int.from_bytes(body[i : i + 2], "big")
    return body[i + 2 : i + 2 + size], i + 2 + size


def _varint(body: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = body[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


_FIXED = {0x01: 1, 0x02: 4, 0x11: 4, 0x17: 1, 0x18: 4, 0x19: 1, 0x21: 2, 0x22: 2, 0x27: 4}


def _properties(body: bytes, i: int) -> tuple[dict[int, object], int]:
    size, i = _varint(body, i)
    end, props = i + size, {}
    while i < end:
        ident = body[i]
        i += 1
        if ident in _FIXED:
            props[ident] = int.from_bytes(body[i : i + _FIXED[ident]], "big")
            i += _FIXED[ident]
        elif ident in (0x03, 0x08, 0x09, 0x15, 0x16):
            props[ident], i = _string(body, i)
        elif ident == 0x26:
            _, i = _string(body, i)
            _, i = _string(body, i)
        else:
            raise ValueError(f"property 0x{ident:02x} not understood by the test parser")
    return props, end


def parse_connect(body: bytes) -> Connect:
    """Parse a CONNECT body (MQTT 3.1.1 or 5)."""
    name, i = _string(body, 0)
    assert name == b"MQTT", name
    version, flags = body[i], body[i + 1]
    keepalive = int.from_bytes(body[i + 2 : i + 4], "big")
    i += 4
    expiry = None
    if version == 5:
        props, i = _properties(body, i)
        expiry = int(props.get(0x11, 0))  # type: ignore[arg-type]
    client_id, i = _string(body, i)
    will_topic = will_payload = None
    if flags & 0x04:
        if version == 5:
            _, i = _properties(body, i)
        topic, i = _string(body, i)
        will_payload, i = _string(body, i)
        will_topic = topic.decode()
    return Connect(
        version,
        bool(flags & 0x02),
        keepalive,
        expiry,
        client_id.decode(),
        will_topic,
        will_payload,
        (flags >> 3) & 0x03,
        bool(flags & 0x20),
    )


def parse_subscribe(body: bytes, version: int) -> list[str]:
    """Return the topic filters of a SUBSCRIBE body."""
    i = 2
    if version == 5:
        _, i = _properties(body, i)
    filters = []
    while i < len(body):
        topic, i = _string(body, i)
        filters.append(topic.decode())
        i += 1  # options
    return filters


# ---------------------------------------------------------------------------- proxy


class RecordingProxy:
    """A TCP proxy to the broker that records every MQTT packet of its connections."""

    def __init__(self, broker_url: str) -> None:
        self.upstream = parse_mqtt_url(broker_url)[:2]
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.packets: list[Packet] = []
        self._lock = threading.Lock()
        self._n = 0
        self._conns = 0
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            broker.settimeout(None)
            with self._lock:
                self._conns += 1
                conn = self._conns
                self._open += [client, broker]
            for src, dst, up in ((client, broker, True), (broker, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up, conn), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool, conn: int) -> None:
        reader = mp.PacketReader()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:  # record before forwarding: the order is the wire's order
                    for first, body in reader.feed(data):
                        self._n += 1
                        self.packets.append(Packet(self._n, conn, up, first, bytes(body)))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Cut every connection as a network failure would (no DISCONNECT: the will fires)."""
        with self._lock:
            socks, self._open = self._open, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._closed = True
        self.server.close()
        self.drop()

    # -------------------------------------------------------------- views
    def of(self, kind: int, *, up: bool = True, conn: int | None = None) -> list[Packet]:
        with self._lock:
            return [
                p
                for p in self.packets
                if p.kind == kind and p.up == up and (conn is None or p.conn == conn)
            ]

    def connects(self) -> list[Connect]:
        return [parse_connect(p.body) for p in self.of(mp.CONNECT)]

    def publishes(self, *, conn: int | None = None, version: int = 5) -> list[Publish]:
        out = []
        for p in self.of(mp.PUBLISH, conn=conn):
            topic, payload, qos, _ = mp.parse_publish(p.first, p.body, version)
            out.append(Publish(topic, payload, qos, bool(p.first & 1), p.n, p.conn))
        return out

    def first(self, kind: int, *, up: bool = True, conn: int = 1) -> Packet:
        found = self.of(kind, up=up, conn=conn)
        assert found, f"no packet of kind {kind} (up={up}) on connection {conn}"
        return found[0]


# ---------------------------------------------------------------------------- edge node


def metric(
    name: str | None = None,
    *,
    alias: int | None = None,
    dtype: int = pb.Double,
    value: object = None,
    ts: int | None = None,
) -> pb.Payload.Metric:
    """Return one Sparkplug metric (``value`` None: a null metric)."""
    m = pb.Payload.Metric()
    if name is not None:
        m.name = name
    if alias is not None:
        m.alias = alias
    m.datatype = dtype
    if ts is not None:
        m.timestamp = ts
    if value is None:
        m.is_null = True
    elif dtype in (pb.Int8, pb.Int16, pb.Int32, pb.UInt8, pb.UInt16, pb.UInt32):
        m.int_value = int(value) & 0xFFFFFFFF  # type: ignore[call-overload]
    elif dtype in (pb.Int64, pb.UInt64, pb.DateTime):
        m.long_value = int(value) & 0xFFFFFFFFFFFFFFFF  # type: ignore[call-overload]
    elif dtype == pb.Float:
        m.float_value = float(value)  # type: ignore[arg-type]
    elif dtype == pb.Double:
        m.double_value = float(value)  # type: ignore[arg-type]
    elif dtype == pb.Boolean:
        m.boolean_value = bool(value)
    elif dtype in (pb.String, pb.Text, pb.UUID):
        m.string_value = str(value)
    elif dtype == pb.Bytes:
        m.bytes_value = bytes(value)  # type: ignore[call-overload]
    else:
        raise ValueError(f"the scripted edge node cannot encode datatype {dtype}")
    return m


def payload(metrics: list, *, seq: int | None = None, ts: int | None = None) -> pb.Payload:
    """Return a Sparkplug payload of ``metrics``."""
    message = pb.Payload()
    message.timestamp = int(time.time() * 1000) if ts is None else ts
    if seq is not None:
        message.seq = seq
    message.metrics.extend(metrics)
    return message


def compress(message: pb.Payload, algorithm: str = "GZIP") -> bytes:
    """Return ``message`` wrapped as Eclipse Tahu's ``compress: true`` does."""
    raw = message.SerializeToString()
    outer = pb.Payload()
    outer.uuid = "SPBV1.0_COMPRESSED"
    outer.body = gzip.compress(raw) if algorithm == "GZIP" else zlib.compress(raw)
    outer.metrics.append(metric("algorithm", dtype=pb.String, value=algorithm))
    return outer.SerializeToString()


@dataclass
class ScriptedEdgeNode:
    """An edge node (paho-mqtt) whose every Sparkplug message is written by the test."""

    broker_url: str
    group: str
    node: str
    bd_seq: int = 0
    seq: int = 0
    commands: list[tuple[str, pb.Payload]] = field(default_factory=list)

    def __post_init__(self) -> None:
        host, port, *_ = parse_mqtt_url(self.broker_url)
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"edge-{self.group}-{uuid.uuid4().hex[:6]}"
        )
        death = payload([metric("bdSeq", dtype=pb.Int64, value=self.bd_seq)])
        self.client.will_set(self.topic("NDEATH"), death.SerializeToString(), qos=1)
        self.client.on_message = lambda c, u, m: self.commands.append(
            (m.topic, pb.Payload.FromString(m.payload))
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(
            [(self.topic("NCMD"), 1), (f"spBv1.0/{self.group}/DCMD/{self.node}/+", 1)]
        )
        assert subscribed.wait(10)

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")

    def send(self, kind: str, data: bytes, device: str | None = None) -> None:
        info = self.client.publish(self.topic(kind, device), data, qos=0)
        info.wait_for_publish(5)

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def nbirth(self, metrics: list, *, ts: int | None = None) -> None:
        self.seq = 0
        base = [
            metric("bdSeq", dtype=pb.Int64, value=self.bd_seq),
            metric("Node Control/Rebirth", dtype=pb.Boolean, value=False),
        ]
        self.send("NBIRTH", payload(base + metrics, seq=0, ts=ts).SerializeToString())

    def dbirth(self, device: str, metrics: list, *, ts: int | None = None) -> None:
        data = payload(metrics, seq=self.next_seq(), ts=ts).SerializeToString()
        self.send("DBIRTH", data, device)

    def ndata(self, metrics: list, *, seq: int | None = None, gzip_: str | None = None) -> None:
        message = payload(metrics, seq=self.next_seq() if seq is None else seq)
        self.send("NDATA", compress(message, gzip_) if gzip_ else message.SerializeToString())

    def ddata(self, device: str, metrics: list, *, seq: int | None = None) -> None:
        message = payload(metrics, seq=self.next_seq() if seq is None else seq)
        self.send("DDATA", message.SerializeToString(), device)

    def ddeath(self, device: str, *, ts: int | None = None) -> None:
        self.send("DDEATH", payload([], seq=self.next_seq(), ts=ts).SerializeToString(), device)

    def crash(self) -> None:
        """Drop the connection without DISCONNECT: the broker publishes the will (NDEATH)."""
        self.client.loop_stop()
        self.client.socket().close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def rebirth_requests(self) -> list[pb.Payload]:
        return [
            p
            for t, p in list(self.commands)
            if t.endswith(f"/NCMD/{self.node}")
            and any(m.name == "Node Control/Rebirth" for m in p.metrics)
        ]


# ---------------------------------------------------------------------------- observer


class Observer:
    """A client recording (topic, payload, retain) of what the broker delivers (MQTT 5,
    retain as published, so a live message shows the retain flag its publisher set)."""

    def __init__(self, broker_url: str, topics: list[str], *, v5: bool = True) -> None:
        host, port, *_ = parse_mqtt_url(broker_url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"obs-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        )
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, m.retain)
        )
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect(host, port)
        self.client.loop_start()
        opts = SubscribeOptions(qos=1, retainAsPublished=True) if v5 else 1
        self.client.subscribe([(t, opts) for t in topics])
        assert ready.wait(10)

    def publish(self, topic: str, data: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        return [(p, r) for t, p, r in list(self.messages) if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (a missing key or row: not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except LookupError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
