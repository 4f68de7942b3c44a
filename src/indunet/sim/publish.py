"""Publish the live simulator over MQTT (JSON contract, QoS 1)."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.codec.uns_json import ROOT
from indunet.connect.mqtt import parse_mqtt_url
from indunet.errors import TemporaryError
from indunet.sim.live import PlantSim

__all__ = ["SimPublisher"]


class SimPublisher:
    """Send one payload per machine every ``1/rate`` seconds until stopped."""

    def __init__(self, sim: PlantSim, url: str, enterprise: str, rate: float = 1.0) -> None:
        self.sim = sim
        self.enterprise = enterprise
        self.period = 1.0 / rate
        self.host, self.port, tls, user, password = parse_mqtt_url(url)
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"indunet-sim-{enterprise}"
        )
        if user:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set()
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect and publish in a background thread."""
        try:
            self.client.connect(self.host, self.port)
        except OSError as exc:
            raise TemporaryError(f"MQTT broker {self.host}:{self.port} is not reachable") from exc
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="sim-publish", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            now_ms = int(time.time() * 1000)
            for path, payload in self.sim.step(now_ms):
                topic = f"{ROOT}/{self.enterprise}/{path}"
                self.client.publish(topic, json.dumps(payload), qos=1)
                self.sent += 1
            next_at += self.period
            self._stop.wait(max(next_at - time.monotonic(), 0))

    def stop(self) -> None:
        """Stop publishing and disconnect."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()
