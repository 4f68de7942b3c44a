"""Publishing: a broker outage loses nothing and keeps order; end to end into the historian."""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.codec.sparkplug import SparkplugHost, SparkplugMapping
from indunet.edge.buffer import EdgeBuffer
from indunet.edge.config import parse_edge_config
from indunet.edge.publish import Forwarder, JsonEncoder, SparkplugEdgeNode
from tests.edge.servers import free_port

MOSQUITTO = "/usr/sbin/mosquitto"


class PrivateBroker:
    """A Mosquitto of our own on a free port, to stop and start at will."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        # persistence (as the current user: running as root, Mosquitto would switch to a user
        # that cannot write here) keeps subscribers' sessions and queues across a restart
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {tmp}/\n"
            f"user {getpass.getuser()}\nmax_queued_messages 0\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_port(self.port)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


def _wait_port(port: int) -> None:
    import socket

    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} did not open")


class Listener:
    """A paho subscriber that keeps every message in order."""

    def __init__(self, port: int, topic: str, client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.client_id = client_id or f"l-{uuid.uuid4().hex}"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv311,
            clean_session=False,
        )
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.ready = threading.Event()
        self.client.on_connect = lambda c, *_: (c.subscribe(topic, 1), self.ready.set())
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(5)
        time.sleep(0.2)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def broker(tmp_path: Path):
    if not shutil.which(MOSQUITTO):
        pytest.fail(f"{MOSQUITTO} is needed for the store-and-forward test")
    b = PrivateBroker(tmp_path)
    b.start()
    yield b
    b.stop()


def test_broker_outage_loses_nothing_and_replays_in_order(tmp_path: Path, broker) -> None:
    cfg = parse_edge_config(
        {
            "broker": {
                "url": f"mqtt://127.0.0.1:{broker.port}",
                "client_id": "edge-outage",
                "reconnect_s": [0.1, 0.3],
                "enterprise": "ent",
            },
            "buffer": {"path": str(tmp_path / "b.sqlite")},
            "devices": [
                {
                    "name": "m",
                    "machine": "s/a/l/m",
                    "host": "h",
                    "tags": [{"name": "v", "address": 0}],
                }
            ],
        }
    )
    buf = EdgeBuffer(cfg.buffer.path, 1 << 22)
    fwd = Forwarder(cfg.broker, cfg.publisher, buf, JsonEncoder("ent", {"m": "s/a/l/m"}))
    fwd.start()
    listener = first = Listener(broker.port, "indunet/v1/ent/#")
    n = 0

    def produce(count: int) -> None:
        nonlocal n
        for _ in range(count):
            buf.put([("data", "m", 1_000 + n, orjson.dumps({"v": n}))])
            n += 1
            time.sleep(0.002)

    produce(100)
    _until(lambda: buf.stats().rows == 0)
    broker.stop()
    listener.close()
    produce(300)  # the broker is down: all of this waits on disk
    assert buf.stats().rows >= 290
    broker.start()  # the listener's persistent session queues what arrives before it is back
    listener = Listener(broker.port, "indunet/v1/ent/#", listener.client_id)
    _until(lambda: fwd.stats.connected)
    produce(100)  # live data while the backlog is replayed
    try:
        _until(lambda: buf.stats().rows == 0, 30)
    except AssertionError:
        import sys
        import traceback

        fr = {t.name: t.ident for t in threading.enumerate()}
        raise AssertionError(
            "".join(traceback.format_stack(sys._current_frames()[fr["edge-forwarder"]]))
        ) from None
    fwd.stop()
    listener.close()
    got = [json.loads(p)["v"] for _, p in first.messages + listener.messages]
    before = set(range(100))
    after = [v for v in got if v >= 100]
    assert set(after) == set(range(100, 500))  # nothing lost across the outage
    backlog = [v for v in after if v < 400]
    assert backlog == sorted(backlog)  # the backlog came in order
    live = [v for v in after if v >= 400]
    assert live == sorted(live)
    assert buf.stats().dropped == 0 and fwd.stats.replayed >= 290
    assert before  # the first 100 went out before the outage
    buf.close()


def test_sparkplug_node_births_aliases_and_rebirth(tmp_path: Path, broker) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    cfg = parse_edge_config(
        {
            "broker": {"url": f"mqtt://127.0.0.1:{broker.port}", "client_id": "edge-spb"},
            "publisher": {"mode": "sparkplug", "group": group, "node": "edge1"},
            "buffer": {"path": str(tmp_path / "b.sqlite")},
            "devices": [
                {"name": "meter", "machine": "s/a/l/m", "host": "h", "profile": "eastron-sdm120"}
            ],
        }
    )
    buf = EdgeBuffer(cfg.buffer.path, 1 << 22)
    from indunet.edge.publish import make_encoder

    enc = make_encoder(cfg, buf)
    assert isinstance(enc, SparkplugEdgeNode)
    listener = Listener(broker.port, f"spBv1.0/{group}/#")
    fwd = Forwarder(cfg.broker, cfg.publisher, buf, enc)
    fwd.start()
    _until(lambda: fwd.stats.connected)
    for i in range(5):
        buf.put([("data", "meter", 1_700_000_000_000 + i, orjson.dumps({"power_w": 100.0 + i}))])
    _until(lambda: buf.stats().rows == 0)
    from indunet.connect.codec.sparkplug import encode_rebirth

    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"h-{uuid.uuid4().hex}")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish(f"spBv1.0/{group}/NCMD/edge1", encode_rebirth(1), qos=1).wait_for_publish(5)
    _until(lambda: fwd.stats.births >= 2)
    pub.loop_stop()
    pub.disconnect()
    fwd.stop()
    _until(lambda: any("/NDEATH/" in t for t, _ in listener.messages))
    listener.close()
    host = SparkplugHost(SparkplugMapping(enterprise="e"))
    points = []
    for topic, payload in listener.messages:
        out = host.handle(topic, payload)
        assert not out.errors and out.rebirth is None, (topic, out.errors)
        points += out.all_points()
    power = [v.value for t, _, v in points if t.endswith("/power_w") and v.value is not None]
    assert set(power) >= {100.0 + i for i in range(5)}
    kinds = [t.split("/")[2] for t, _ in listener.messages]
    assert kinds.count("NBIRTH") == 2 and kinds.count("DBIRTH") == 2 and kinds[-1] == "NDEATH"
    buf.close()


def test_sparkplug_values_that_are_not_good_carry_a_quality_the_host_reads() -> None:
    """A buffered row's ``$quality`` becomes each metric's ``Quality`` property (OPC DA codes),
    and the host stores those points with that quality; the others stay good."""
    from indunet.edge.buffer import QueuedRow
    from indunet.model import Quality

    node = SparkplugEdgeNode("g", "n", {"dev": {"temp": "number", "mode": "string"}})
    host = SparkplugHost(SparkplugMapping(enterprise="e"))
    for topic, payload in node.births():
        assert not host.handle(topic, payload).errors
    row = QueuedRow(
        1,
        "data",
        "dev",
        1_700_000_000_000,
        orjson.dumps({"temp": 41.5, "mode": "auto", "$quality": {"temp": "uncertain"}}),
    )
    out = host.handle(*node.encode(row))
    assert not out.errors and not out.numbers  # a metric with properties takes the full path
    got = {t.rsplit("/", 1)[1]: (v.value or v.text, out.quality.get(i, Quality.GOOD))
           for i, (t, _, v) in enumerate(out.points)}  # fmt: skip
    assert got == {"temp": (41.5, Quality.UNCERTAIN), "mode": ("auto", Quality.GOOD)}
