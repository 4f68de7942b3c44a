"""The Sparkplug B host against the real Mosquitto broker and a pysparkplug edge node."""

from __future__ import annotations

import json
import threading
import time
import uuid

import paho.mqtt.client as paho
import pysparkplug as sp
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.codec.sparkplug import REBIRTH_METRIC, SparkplugMapping
from indunet.connect.mqtt import MqttIngest, parse_mqtt_url
from indunet.store import open_historian
from tests.connect.test_mqtt import BROKER, _require_broker, _wait


class EdgeNode:
    """A minimal Sparkplug B edge node: paho-mqtt 2 for the session, pysparkplug for payloads.

    (pysparkplug's own EdgeNode needs paho-mqtt < 2; indunet runs on paho-mqtt 2.)
    """

    def __init__(self, group: str, node: str, device: str, bd_seq: int = 0) -> None:
        self.group, self.node, self.device = group, node, device
        self.bd_seq = bd_seq
        self.seq = 0
        self.power = 1.0
        self.births = 0
        host, port, *_ = parse_mqtt_url(BROKER)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{group}")
        death = sp.NDeath(timestamp=sp.get_current_timestamp(), bd_seq_metric=self._bd())
        self.client.will_set(self.topic("NDEATH"), death.encode(include_dtypes=True), qos=1)
        self.client.on_connect = lambda *a: (
            self.client.subscribe(self.topic("NCMD"), 1),
            self.birth(),
        )
        self.client.on_message = self._on_command
        self.client.connect(host, port)
        self.client.loop_start()

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.group}/{kind}/{self.node}" + (f"/{device}" if device else "")

    def _bd(self) -> sp.Metric:
        return sp.Metric(
            timestamp=None, name="bdSeq", datatype=sp.DataType.INT64, value=self.bd_seq
        )

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def birth(self) -> None:
        self.seq = 0
        now = sp.get_current_timestamp()
        nbirth = sp.NBirth(
            timestamp=now,
            seq=0,
            metrics=(
                self._bd(),
                sp.Metric(
                    timestamp=now, name=REBIRTH_METRIC, datatype=sp.DataType.BOOLEAN, value=False
                ),
            ),
        )
        self.client.publish(self.topic("NBIRTH"), nbirth.encode(include_dtypes=True), qos=0)
        dbirth = sp.DBirth(
            timestamp=now,
            seq=self._next_seq(),
            metrics=(
                sp.Metric(
                    timestamp=now,
                    name="Power",
                    datatype=sp.DataType.DOUBLE,
                    value=self.power,
                    alias=1,
                ),
            ),
        )
        self.client.publish(
            self.topic("DBIRTH", self.device), dbirth.encode(include_dtypes=True), qos=0
        )
        self.births += 1

    def send_power(self, value: float) -> None:
        self.power = value
        data = sp.DData(
            timestamp=sp.get_current_timestamp(),
            seq=self._next_seq(),
            metrics=(
                sp.Metric(
                    timestamp=None, name=None, alias=1, datatype=sp.DataType.DOUBLE, value=value
                ),
            ),
        )
        self.client.publish(self.topic("DDATA", self.device), data.encode(), qos=0)

    def _on_command(self, client, userdata, msg) -> None:
        cmd = sp.NCmd.decode(msg.payload)
        if any(m.name == REBIRTH_METRIC and m.value for m in cmd.metrics):
            self.birth()

    def crash(self) -> None:
        """Drop the connection without DISCONNECT, so the broker sends the will (NDEATH)."""
        self.client.loop_stop()
        self.client.socket().close()


class Watcher:
    """A plain MQTT client recording what is published on some topics."""

    def __init__(self, topics: list[str]) -> None:
        host, port, *_ = parse_mqtt_url(BROKER)
        self.messages: list[tuple[str, bytes, bool]] = []
        self.ready = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"w-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, m.retain)
        )
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.connect(host, port)
        self.client.subscribe([(t, 1) for t in topics])
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_edge_node_data_rebirth_and_death(settings_factory):
    _require_broker()
    group, node, enterprise = f"g{uuid.uuid4().hex[:8]}", "gw1", f"e{uuid.uuid4().hex[:8]}"
    host_id = f"indunet-{group}"
    historian = open_historian(settings_factory())
    watcher = Watcher([f"spBv1.0/{group}/NCMD/{node}", f"spBv1.0/STATE/{host_id}"])
    ingest = MqttIngest(
        historian,
        BROKER,
        session_expiry_s=60,
        client_id=f"ing-{group}",
        flush_s=0.05,
        host_id=host_id,
        sparkplug=SparkplugMapping(enterprise=enterprise),
    )
    ingest.start()
    edge = None
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        assert _wait(
            lambda: any(json.loads(p)["online"] for t, p, _ in watcher.messages if "STATE" in t)
        )
        edge = EdgeNode(group, node, "press7", bd_seq=4)
        power = f"{group}/{node}/devices/press7/Power"
        assert _wait(lambda: _latest(historian, enterprise, power) == 1.0), ingest.stats
        edge.send_power(42.5)  # by alias
        assert _wait(lambda: _latest(historian, enterprise, power) == 42.5), ingest.stats

        # a message out of sequence makes the host ask for a rebirth, and the node answers
        edge.seq = 100
        edge.send_power(43.0)
        assert _wait(lambda: any("NCMD" in t for t, _, _ in watcher.messages)), ingest.stats
        ncmd = next(p for t, p, _ in watcher.messages if "NCMD" in t)
        assert sp.NCmd.decode(ncmd).metrics[0].name == REBIRTH_METRIC
        assert _wait(lambda: edge.births == 2)
        assert _wait(
            lambda: any("seq gap" in d["reason"] for d in historian.dead_letters(enterprise))
        )
        edge.send_power(44.0)  # in sequence again after the rebirth
        assert _wait(lambda: _latest(historian, enterprise, power) == 44.0), ingest.stats

        # the node goes away: the broker sends its will (NDEATH), its tags become stale
        edge.crash()
        edge = None
        assert _wait(lambda: _quality(historian, enterprise, power) == 3), ingest.stats
    finally:
        if edge is not None:
            edge.crash()
        ingest.stop()
        watcher.close()
    states = [json.loads(p)["online"] for t, p, _ in watcher.messages if "STATE" in t]
    assert states[0] is True and states[-1] is False
    historian.close()


def _latest(historian, enterprise, tag):
    rows = [r for r in historian.latest(enterprise).to_pylist() if r["tag"] == tag]
    return rows[0]["value"] if rows else None


def _quality(historian, enterprise, tag):
    rows = [r for r in historian.latest(enterprise).to_pylist() if r["tag"] == tag]
    return rows[0]["quality"] if rows else None


def test_sparkplug_hosting_is_sharded_by_group(settings_factory):
    _require_broker()
    mine, other = f"g{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    enterprise = f"e{uuid.uuid4().hex[:8]}"
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        BROKER,
        session_expiry_s=60,
        client_id=f"ing-{mine}",
        flush_s=0.05,
        host_id=f"h-{mine}",
        sparkplug_groups=[mine],
        sparkplug=SparkplugMapping(enterprise=enterprise),
    )
    ingest.start()
    edges = []
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        edges = [EdgeNode(mine, "gw1", "d1"), EdgeNode(other, "gw1", "d1")]
        assert _wait(lambda: _latest(historian, enterprise, f"{mine}/gw1/devices/d1/Power") == 1.0)
        other_node = edges[1]
        assert _wait(lambda: other_node.births == 1)  # its births went out to the broker
        time.sleep(0.5)  # and had time to reach a host subscribed to them
    finally:
        for e in edges:
            e.crash()
        ingest.stop()
    sites = {t.path.split("/")[0] for t in historian.tags(enterprise)}
    assert sites == {mine}  # the other group is left to another host
    historian.close()
