"""Publish the simulator over MQTT: JSON contract, Sparkplug B edge nodes, or a dataset replay.

The payloads come from the pure parts (`sim.live`, `sim.sparkplug_node`, `sim.replay`); this
module only paces them and moves bytes with paho-mqtt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.codec.uns_json import ROOT
from indunet.connect.mqtt import parse_mqtt_url
from indunet.errors import DataError, TemporaryError
from indunet.sim.live import PlantSim
from indunet.sim.replay import ReplayMessage, replay_offset_ms
from indunet.sim.sparkplug_node import SparkplugEdgeNode, SparkplugMessage
from indunet.uns import check_segment

__all__ = ["ReplayPublisher", "SimPublisher", "SparkplugSimPublisher"]

log = logging.getLogger(__name__)


def _client(url: str, name: str) -> tuple[paho.Client, str, int]:
    host, port, tls, user, password = parse_mqtt_url(url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    if user:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client, host, port


def _connect(client: paho.Client, host: str, port: int) -> None:
    try:
        client.connect(host, port)
    except OSError as exc:
        raise TemporaryError(
            f"MQTT broker {host}:{port} is not reachable; check it runs", detail=str(exc)
        ) from exc
    client.loop_start()


class _Ticker:
    """Call ``tick(now_ms)`` every ``period`` seconds on a thread, on the ideal tick times."""

    def __init__(self, period: float, tick: Callable[[int], None]) -> None:
        self.period = period
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-tick", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        period_ms = max(int(self.period * 1000), 1)
        first_ms = -(-int(time.time() * 1000) // period_ms) * period_ms  # next whole tick
        start = time.monotonic() + (first_ms - time.time() * 1000) / 1000
        k = 0
        while not self._stop.wait(max(start + k * self.period - time.monotonic(), 0)):
            self.tick(first_ms + k * period_ms)  # ideal times: a seed gives the same payloads
            k += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class SimPublisher:
    """Send one JSON payload per machine every ``1/rate`` seconds (QoS 1) until stopped."""

    def __init__(self, sim: PlantSim, url: str, enterprise: str, rate: float = 1.0) -> None:
        self.sim = sim
        self.enterprise = check_segment(enterprise, "enterprise")
        self.client, self.host, self.port = _client(url, f"indunet-sim-{enterprise}")
        self.sent = 0
        self._ticker = _Ticker(1.0 / rate, self._tick)

    def start(self) -> None:
        """Connect and publish in a background thread."""
        _connect(self.client, self.host, self.port)
        self._ticker.start()

    def _tick(self, now_ms: int) -> None:
        for path, payload in self.sim.step(now_ms):
            self.client.publish(f"{ROOT}/{self.enterprise}/{path}", json.dumps(payload), qos=1)
            self.sent += 1

    def stop(self) -> None:
        """Stop publishing and disconnect."""
        self._ticker.stop()
        self.client.disconnect()
        self.client.loop_stop()


class _EdgeSession:
    """One edge node on its own MQTT connection: will, births on connect, rebirth on NCMD."""

    def __init__(self, node: SparkplugEdgeNode, url: str, latest: dict[str, dict]) -> None:
        self.node = node
        self.latest = latest  # device -> its newest payload (shared, read under the lock)
        self.lock = threading.Lock()  # seq order = publish order
        self.online = False
        self.births = 0
        self.rebirths = 0
        self.client, self.host, self.port = _client(url, f"indunet-edge-{node.node}")
        self._set_will()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_command

    def _set_will(self) -> None:
        will = self.node.connect(int(time.time() * 1000))
        self.client.will_set(will.topic, will.payload, qos=will.qos, retain=False)

    def _send(self, messages: list[SparkplugMessage]) -> None:
        for m in messages:
            self.client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("edge node %s: broker refused: %s", self.node.node, reason_code)
            return
        client.subscribe(self.node.topic("NCMD"), qos=1)
        with self.lock:
            self._send(self.node.births(self.latest, int(time.time() * 1000)))
            self.births += 1
            self.online = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self.lock:
            self.online = False
            self._set_will()  # the next session gets the next bdSeq, in its will and its NBIRTH

    def _on_command(self, client, userdata, msg: paho.MQTTMessage) -> None:
        with self.lock:
            try:
                answer = self.node.command(msg.payload, self.latest, int(time.time() * 1000))
            except DataError as exc:
                log.warning("edge node %s: %s", self.node.node, exc)
                return
            if answer:
                self._send(answer)
                self.rebirths += 1

    def data(self, device: str, payload: dict) -> int:
        with self.lock:
            self.latest[device] = payload
            if not self.online:
                return 0
            message = self.node.data(device, payload)
            if message is None:
                return 0
            self._send([message])
            return 1


class SparkplugSimPublisher:
    """Run every site of the simulator as a Sparkplug B edge node, each machine a device."""

    def __init__(self, sim: PlantSim, url: str, group: str, rate: float = 1.0) -> None:
        self.sim = sim
        sites: dict[str, list[str]] = {}
        for m in sim.machines:
            sites.setdefault(m.path.site, []).append(m.path.machine)
        self.sessions = {
            site: _EdgeSession(SparkplugEdgeNode(group, site, devices), url, {})
            for site, devices in sites.items()
        }
        self.sent = 0
        self._ticker = _Ticker(1.0 / rate, self._tick)

    def start(self) -> None:
        """Connect every edge node (births follow on connect) and start publishing."""
        for session in self.sessions.values():
            _connect(session.client, session.host, session.port)
        self._ticker.start()

    def _tick(self, now_ms: int) -> None:
        for path, payload in self.sim.step(now_ms):
            self.sent += self.sessions[path.site].data(path.machine, payload)

    def stop(self) -> None:
        """Stop publishing and disconnect cleanly (a clean DISCONNECT sends no NDEATH will)."""
        self._ticker.stop()
        for session in self.sessions.values():
            with session.lock:
                death = session.node.death(int(time.time() * 1000))
                info = session.client.publish(death.topic, death.payload, qos=death.qos)
            with contextlib.suppress(RuntimeError, ValueError):  # broker already gone
                info.wait_for_publish(5)
            session.client.disconnect()
            session.client.loop_stop()


class ReplayPublisher:
    """Publish a dataset's messages (QoS 1) paced at ``speed`` × real time; 0 = at once."""

    def __init__(
        self,
        messages: list[ReplayMessage],
        url: str,
        enterprise: str,
        *,
        speed: float = 1.0,
        keep_time: bool = False,
    ) -> None:
        if speed < 0:
            raise DataError(f"replay speed must be 0 or more, got {speed}")
        self.messages = messages
        self.enterprise = check_segment(enterprise, "enterprise")
        self.speed = speed
        self.keep_time = keep_time
        self.client, self.host, self.port = _client(url, f"indunet-replay-{enterprise}")
        self.client.max_inflight_messages_set(100)
        self.sent = 0
        self.acked = 0
        self.client.on_publish = self._on_publish
        self._stop = threading.Event()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self.acked += 1

    def run(self, timeout_s: float = 60.0) -> int:
        """Publish everything (blocking), wait for the broker's acknowledgements, disconnect."""
        _connect(self.client, self.host, self.port)
        try:
            if self.messages:
                first, last = self.messages[0].ts_ms, self.messages[-1].ts_ms
                start = time.monotonic()
                now_ms = int(time.time() * 1000)
                offset = 0 if self.keep_time else replay_offset_ms(first, last, now_ms, self.speed)
                infos = []
                for m in self.messages:
                    if self.speed:
                        due = start + (m.ts_ms - first) / 1000 / self.speed
                        if self._stop.wait(max(due - time.monotonic(), 0)):
                            break
                    elif self._stop.is_set():
                        break
                    topic = f"{ROOT}/{self.enterprise}/{m.machine}"
                    infos.append(self.client.publish(topic, json.dumps(m.payload(offset)), qos=1))
                    self.sent += 1
                deadline = time.monotonic() + timeout_s
                for info in infos:
                    info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
        finally:
            self.client.disconnect()
            self.client.loop_stop()
        return self.sent

    def stop(self) -> None:
        """Ask a running replay to stop after the current message."""
        self._stop.set()
