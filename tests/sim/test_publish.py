"""The simulator publisher against the real Mosquitto."""

from __future__ import annotations

import json
import threading
import time
import uuid

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.mqtt import parse_mqtt_url
from indunet.sim.live import PlantSim, build_plants
from indunet.sim.publish import SimPublisher
from tests.connect.test_mqtt import BROKER, _require_broker, _wait
from tests.datasets import DATASETS


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


def test_sparkplug_simulator_lands_in_the_historian_and_answers_rebirth(settings_factory):

    from indunet.connect.codec.sparkplug import SparkplugMapping, encode_rebirth
    from indunet.connect.mqtt import MqttIngest
    from indunet.sim.publish import SparkplugSimPublisher
    from indunet.store import open_historian

    _require_broker()
    group, enterprise = f"g{uuid.uuid4().hex[:8]}", f"e{uuid.uuid4().hex[:8]}"
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        BROKER,
        client_id=f"ing-{group}",
        flush_s=0.05,
        session_expiry_s=60,
        host_id=f"h-{group}",
        sparkplug_groups=[group],
        sparkplug=SparkplugMapping(enterprise=enterprise),
    )
    ingest.start()
    sim = PlantSim(build_plants(2, 4, seed=3), seed=3)
    publisher = SparkplugSimPublisher(sim, BROKER, group, rate=10)
    host, port, *_ = parse_mqtt_url(BROKER)
    births: list[str] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"w-{group}")
    watcher.on_message = lambda c, u, m: births.append(m.topic)
    ready = threading.Event()
    watcher.on_subscribe = lambda *a: ready.set()
    watcher.connect(host, port)
    watcher.subscribe(f"spBv1.0/{group}/NBIRTH/#", 1)
    watcher.loop_start()
    try:
        assert ready.wait(10)
        assert _wait(lambda: ingest.stats.subscribed)
        publisher.start()
        power = f"{group}/site-01/devices/m-001/power_kw"
        # seven metrics per machine, plus the host's online flag of each node and device
        metrics = lambda: [  # noqa: E731
            t for t in historian.tags(enterprise) if not t.path.endswith("sparkplug.online")
        ]
        assert _wait(lambda: len(metrics()) == 4 * 7), ingest.stats
        first = historian.series(enterprise, power, 0, 2**62).num_rows
        assert _wait(lambda: publisher.sent > 20)
        # a rebirth request is answered with new births (same bdSeq, seq from 0)
        watcher.publish(f"spBv1.0/{group}/NCMD/site-02", encode_rebirth(0), qos=1)
        assert _wait(lambda: publisher.sessions["site-02"].rebirths == 1)
        assert _wait(lambda: births.count(f"spBv1.0/{group}/NBIRTH/site-02") == 2)
        assert _wait(lambda: historian.series(enterprise, power, 0, 2**62).num_rows > first)
    finally:
        publisher.stop()
        ingest.stop()
        watcher.disconnect()
        watcher.loop_stop()
    paths = {t.path.rsplit("/", 1)[0] for t in metrics()}  # the nodes only carry the online flag
    assert paths == {
        f"{group}/site-01/devices/m-001",
        f"{group}/site-01/devices/m-003",
        f"{group}/site-02/devices/m-002",
        f"{group}/site-02/devices/m-004",
    }
    seq_errors = [d for d in historian.dead_letters(enterprise) if "seq" in d["reason"]]
    assert seq_errors == []
    state = historian.tag(enterprise, f"{group}/site-01/devices/m-001/state")
    assert state.data_type == "string"
    historian.close()


def test_replay_at_speed_0_stores_every_row(settings_factory):

    from indunet.connect.mqtt import MqttIngest
    from indunet.sim.publish import ReplayPublisher
    from indunet.sim.replay import read_dataset
    from indunet.store import open_historian

    _require_broker()
    enterprise = f"r{uuid.uuid4().hex[:8]}"
    root = DATASETS
    rows = read_dataset("metropt3_air_compressor", root, limit=300)
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian, BROKER, client_id=f"ing-{enterprise}", flush_s=0.05, session_expiry_s=60
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        replayer = ReplayPublisher(rows, BROKER, enterprise, speed=0)
        assert replayer.run() == 300
        assert replayer.acked == 300
        tag = "porto/metro-depot/train-apu/air-compressor/motor_current_a"
        assert _wait(
            lambda: (
                any(t.path == tag for t in historian.tags(enterprise))
                and historian.series(enterprise, tag, 0, 2**62).num_rows == 300
            )
        ), ingest.stats
    finally:
        ingest.stop()
    series = historian.series(enterprise, tag, 0, 2**62)
    ts = series.column("ts").to_pylist()
    assert ts[-1] - ts[0] == rows[-1].ts_ms - rows[0].ts_ms  # original spacing kept
    assert ts[-1] <= int(time.time() * 1000)  # shifted next to now, never ahead of it
    assert series.column("value").to_pylist() == [m.values["motor_current_a"] for m in rows]
    assert len(historian.tags(enterprise)) == 15
    assert historian.dead_letters(enterprise) == []
    historian.close()
