"""The simulator publisher against the real Mosquitto."""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.mqtt import parse_mqtt_url
from indunet.sim.live import PlantSim, build_plants
from indunet.sim.publish import SimPublisher
from tests.connect.test_mqtt import BROKER, _require_broker, _wait


def test_publisher_sends_contract_payloads_for_every_machine():
    _require_broker()
    enterprise = f"p{uuid.uuid4().hex[:8]}"
    host, port, *_ = parse_mqtt_url(BROKER)
    got: list[tuple[str, dict]] = []
    ready = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"s-{enterprise}")
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    sub.on_subscribe = lambda *a: ready.set()
    sub.connect(host, port)
    sub.subscribe(f"indunet/v1/{enterprise}/#", 1)
    sub.loop_start()
    assert ready.wait(10)
    publisher = SimPublisher(PlantSim(build_plants(2, 3), 1), BROKER, enterprise, rate=10)
    publisher.start()
    try:
        assert _wait(lambda: len(got) >= 9)
    finally:
        publisher.stop()
        sub.disconnect()
        sub.loop_stop()
    machines = {t.split("/", 3)[3] for t, _ in got}
    assert len(machines) == 3
    assert all(set(p) >= {"timestamp_ms", "power_kw", "parts_total", "state"} for _, p in got)
