"""MQTT ingest against the real Mosquitto broker on 127.0.0.1:1883."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.mqtt import MqttIngest, parse_mqtt_url
from indunet.errors import ConfigError, StorageUnavailable
from indunet.store import open_historian

BROKER = os.environ.get("INDUNET_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
T0 = 1_700_000_000_000


def _require_broker() -> None:
    host, port, *_ = parse_mqtt_url(BROKER)
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = f"MQTT broker {host}:{port} is not available: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _publish(messages: list[tuple[str, bytes]]) -> None:
    host, port, *_ = parse_mqtt_url(BROKER)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    pub.connect(host, port)
    pub.loop_start()
    infos = [pub.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(timeout=10)
    pub.disconnect()
    pub.loop_stop()


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class FlakyHistorian:
    """The real historian, but the first ``failures`` writes fail as if the database were down."""

    def __init__(self, real, failures: int) -> None:
        self.real = real
        self.failures = failures

    def write(self, batch, *, source="api"):
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailable("database is down (test)")
        return self.real.write(batch, source=source)

    def add_dead_letters(self, letters, enterprise=None):
        return self.real.add_dead_letters(letters, enterprise)


@pytest.fixture
def enterprise() -> str:
    _require_broker()
    return f"t{uuid.uuid4().hex[:10]}"


def test_parse_mqtt_url():
    assert parse_mqtt_url("mqtt://u:p%40ss@broker:1884") == ("broker", 1884, False, "u", "p@ss")
    assert parse_mqtt_url("mqtts://broker")[:3] == ("broker", 8883, True)
    with pytest.raises(ConfigError):
        parse_mqtt_url("http://broker")


def test_messages_are_stored_and_bad_ones_dead_lettered(settings_factory, enterprise):
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian, BROKER, session_expiry_s=60, client_id=f"ing-{enterprise}", sparkplug_groups=[]
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        base = f"indunet/v1/{enterprise}/s1/press/l1/m1"
        good = [
            (
                base,
                json.dumps({"timestamp_ms": T0 + i * 1000, "power_kw": i, "mode": "run"}).encode(),
            )
            for i in range(50)
        ]
        bad = [(base, b"{broken"), (base + "/temp", b'{"ts": 1700000000000}')]
        _publish(good + bad + [(base + "/temp", b'{"ts": 1700000000000, "value": 40.5}')])
        assert _wait(lambda: ingest.stats.acked >= 53), ingest.stats
    finally:
        ingest.stop()
    power = historian.series(enterprise, "s1/press/l1/m1/power_kw", T0, T0 + 60_000)
    assert power.column("value").to_pylist() == [float(i) for i in range(50)]
    assert historian.series(enterprise, "s1/press/l1/m1/temp", T0, T0 + 1).column(
        "value"
    ).to_pylist() == [40.5]
    reasons = [d["reason"] for d in historian.dead_letters(enterprise)]
    assert any("not valid JSON" in r for r in reasons)
    assert any("no 'value'" in r for r in reasons)
    historian.close()


def test_database_outage_delays_but_loses_nothing(settings_factory, enterprise):
    real = open_historian(settings_factory())
    flaky = FlakyHistorian(real, failures=3)
    ingest = MqttIngest(
        flaky,
        BROKER,
        session_expiry_s=60,
        client_id=f"ing-{enterprise}",
        flush_s=0.05,
        sparkplug_groups=[],
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        base = f"indunet/v1/{enterprise}/s1/a/l/m"
        _publish([(base, json.dumps({"ts": T0 + i, "v": i}).encode()) for i in range(100)])
        assert _wait(lambda: ingest.stats.acked >= 100, timeout=30), ingest.stats
        assert ingest.stats.write_failures == 3
    finally:
        ingest.stop()
    assert real.series(enterprise, "s1/a/l/m/v", T0, T0 + 100).num_rows == 100
    real.close()


def test_unacknowledged_messages_are_redelivered_after_a_crash(settings_factory, enterprise):
    real = open_historian(settings_factory())
    client_id = f"ing-{enterprise}"
    down = FlakyHistorian(real, failures=10**9)  # the database never comes back in this process
    first = MqttIngest(
        down, BROKER, session_expiry_s=60, client_id=client_id, flush_s=0.05, sparkplug_groups=[]
    )
    first.start()
    assert _wait(lambda: first.stats.subscribed)
    base = f"indunet/v1/{enterprise}/s1/a/l/m"
    _publish([(base, json.dumps({"ts": T0 + i, "v": i}).encode()) for i in range(10)])
    assert _wait(lambda: first.stats.received >= 10)
    # crash: drop the socket without DISCONNECT and without acknowledging anything
    first._stop.set()
    first.client.loop_stop()
    first.client.socket().close()
    assert first.stats.acked == 0
    time.sleep(0.5)
    second = MqttIngest(
        real, BROKER, session_expiry_s=60, client_id=client_id, flush_s=0.05, sparkplug_groups=[]
    )
    second.start()
    try:
        assert _wait(lambda: real_count(real, enterprise) >= 10, timeout=30), second.stats
    finally:
        second.stop()
    assert real.series(enterprise, "s1/a/l/m/v", T0, T0 + 10).column("value").to_pylist() == [
        float(i) for i in range(10)
    ]
    real.close()


def real_count(historian, enterprise: str) -> int:
    try:
        return historian.series(enterprise, "s1/a/l/m/v", T0, T0 + 10).num_rows
    except Exception:
        return 0


def test_two_workers_with_a_shared_subscription_store_each_message_once(
    settings_factory, enterprise
):
    historian = open_historian(settings_factory())
    group = f"grp{enterprise}"
    workers = [
        MqttIngest(
            historian,
            BROKER,
            session_expiry_s=60,
            client_id=f"w{i}-{enterprise}",
            shared_group=group,
            flush_s=0.05,
            sparkplug_groups=[],
        )
        for i in range(2)
    ]
    for w in workers:
        w.start()
    try:
        assert _wait(lambda: all(w.stats.subscribed for w in workers))
        base = f"indunet/v1/{enterprise}/s1/a/l/m"
        _publish([(base, json.dumps({"ts": T0 + i, "v": i}).encode()) for i in range(400)])
        assert _wait(lambda: sum(w.stats.stored_points for w in workers) >= 400, timeout=30)
    finally:
        for w in workers:
            w.stop()
    # the broker split the stream; each message was delivered to one worker only
    json_received = [w.stats.received - w.stats.received_sparkplug for w in workers]
    assert sum(json_received) == 400
    assert all(n > 0 for n in json_received)
    assert historian.series(enterprise, "s1/a/l/m/v", T0, T0 + 400).num_rows == 400
    historian.close()
