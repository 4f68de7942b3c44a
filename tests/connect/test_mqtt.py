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
from indunet.errors import ConfigError, DataError, StorageUnavailable
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
    first.abort()
    # none of the data was acknowledged (only STATE messages of hosts on the shared broker, which
    # need no storage, may have been)
    assert first.stats.acked <= first.stats.received_sparkplug
    assert first.stats.received - first.stats.received_sparkplug >= 10
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


def _publish_qos(messages: list[tuple[str, bytes, int]], version: int = paho.MQTTv311) -> None:
    host, port, *_ = parse_mqtt_url(BROKER)
    pub = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=version
    )
    pub.connect(host, port)
    pub.loop_start()
    infos = [pub.publish(t, p, qos=q) for t, p, q in messages]
    for info in infos:
        info.wait_for_publish(timeout=10)
    pub.disconnect()
    pub.loop_stop()


def _rows(historian, enterprise: str, end: int) -> int:
    try:
        return historian.series(enterprise, "s1/a/l/m/v", T0, end).num_rows
    except DataError:  # the tag does not exist yet
        return 0


def _take_over(client_id: str) -> None:
    """Connect with the ingest's client id: the broker drops the ingest's connection."""
    from indunet.connect.codec import mqtt_packets as mp

    host, port, *_ = parse_mqtt_url(BROKER)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(mp.encode_connect(client_id, version=5, session_expiry_s=60))
        reader = mp.PacketReader()
        while not reader.feed(sock.recv(1024)):
            pass
        sock.sendall(mp.encode_disconnect())


@pytest.mark.parametrize("version", [5, 4])
def test_qos0_and_qos1_messages_are_stored_in_both_protocol_versions(
    settings_factory, enterprise, version
):
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        BROKER,
        session_expiry_s=60,
        client_id=f"ing-{enterprise}",
        flush_s=0.05,
        sparkplug_groups=[],
        mqtt_version=version,
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        base = f"indunet/v1/{enterprise}/s1/a/l/m"
        _publish_qos(
            [(base, json.dumps({"ts": T0 + i, "v": i}).encode(), i % 2) for i in range(200)]
            + [(f"{base}/..", b'{"ts": 1700000000000, "value": 1}', 1)]  # hostile tag name
        )
        assert _wait(lambda: ingest.stats.acked >= 201), ingest.stats
    finally:
        ingest.stop()
    assert historian.series(enterprise, "s1/a/l/m/v", T0, T0 + 200).num_rows == 200
    (letter,) = historian.dead_letters(enterprise)
    assert "'..' is not allowed" in letter["reason"] and letter["ref"] == f"{base}/.."
    assert ingest.stats.connections == 1
    historian.close()


def test_a_dropped_connection_reconnects_and_old_packet_ids_are_not_acknowledged(
    settings_factory, enterprise
):
    real = open_historian(settings_factory())
    flaky = FlakyHistorian(real, failures=2)
    client_id = f"ing-{enterprise}"
    ingest = MqttIngest(
        flaky,
        BROKER,
        session_expiry_s=60,
        client_id=client_id,
        flush_s=0.05,
        sparkplug_groups=[],
        reconnect_s=(0.1, 0.5),
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        base = f"indunet/v1/{enterprise}/s1/a/l/m"
        _publish([(base, json.dumps({"ts": T0 + i, "v": i}).encode()) for i in range(50)])
        assert _wait(lambda: ingest.stats.received >= 50)
        _take_over(client_id)  # while the first batch is still failing: its ids become void
        assert _wait(lambda: ingest.stats.connections >= 2 and ingest.stats.subscribed), (
            ingest.stats
        )
        _publish([(base, json.dumps({"ts": T0 + i, "v": i}).encode()) for i in range(50, 80)])
        assert _wait(lambda: _rows(real, enterprise, T0 + 80) == 80), ingest.stats
    finally:
        ingest.stop()
    # the broker redelivered what was not acknowledged; idempotent writes kept one row each
    assert real.series(enterprise, "s1/a/l/m/v", T0, T0 + 80).column("value").to_pylist() == [
        float(i) for i in range(80)
    ]
    assert ingest.stats.received >= 80
    real.close()


def test_an_idle_connection_is_kept_alive_by_pings(settings_factory, enterprise):
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        BROKER,
        session_expiry_s=60,
        client_id=f"ing-{enterprise}",
        sparkplug_groups=[],
        keepalive_s=1,
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        time.sleep(3.5)  # the broker drops a client silent for 1.5 keepalives
        assert ingest.stats.connected and ingest.stats.connections == 1, ingest.stats
    finally:
        ingest.stop()
    historian.close()


def test_an_unreachable_broker_is_a_temporary_error(settings_factory):
    from indunet.connect.broker import free_port
    from indunet.errors import TemporaryError

    historian = open_historian(settings_factory())
    ingest = MqttIngest(historian, f"mqtt://127.0.0.1:{free_port()}")
    with pytest.raises(TemporaryError, match="not reachable"):
        ingest.start()
    historian.close()


def test_hostile_topics_are_dead_lettered_without_stopping_the_writer(settings_factory):
    """Decoding and writing without a broker: the receive path's own logic, fed packets."""
    from indunet.connect.codec import mqtt_packets as mp
    from indunet.connect.mqtt import _Pending, _Taken

    historian = open_historian(settings_factory())
    ingest = MqttIngest(historian, BROKER, sparkplug_groups=[])
    good = mp.encode_publish("indunet/v1/acme/s/a/l/m", b'{"ts": 1700000000000, "x": 1}', qos=1,
                             mid=1)  # fmt: skip
    raw_topic = b"indunet/v1/acme/s/a/l/m\xff\xfe"  # not UTF-8
    body = len(raw_topic).to_bytes(2, "big") + raw_topic + b"\x00\x02" + b"\x00" + b"{}"
    hostile = [
        mp.encode_publish("indunet/v1/acme/s/a/l/m/..", b'{"ts": 1, "value": 1}', qos=1, mid=3),
        mp.encode_publish("indunet/v1/acme/s/a/l/m", b"[" * 50_000, qos=1, mid=4),
        mp.encode_publish("spBv1.0/g/DDATA/n/d", b"\xff" * 10, qos=1, mid=5),
        mp.encode_publish("elsewhere", b"x", qos=0),
    ]
    packets = mp.PacketReader().feed(good + b"\x32" + bytes([len(body)]) + body + b"".join(hostile))
    ingest._on_publishes(packets, ingest._epoch)
    pending, ingest._pending = ingest._pending, _Pending()
    assert pending.count == 6 and pending.acks == {0: [1, 2, 3, 4, 5]}
    ingest._write(_Taken.of(pending))
    assert historian.series("acme", "s/a/l/m/x", 0, 2**62).num_rows == 1
    letters = historian.dead_letters(limit=10)
    assert len(letters) == 5
    assert any("\ufffd" in d["ref"] and "forbidden" in d["reason"] for d in letters)
    assert any("nested too deeply" in d["reason"] for d in letters)
    assert any(d["source"] == "sparkplug" for d in letters)
    assert any("not under indunet/v1" in d["reason"] for d in letters)
    historian.close()


def test_a_decoder_bug_dead_letters_the_message_and_the_rest_is_stored(settings_factory):
    from indunet.connect.codec import mqtt_packets as mp
    from indunet.connect.mqtt import _Pending, _Taken

    historian = open_historian(settings_factory())
    ingest = MqttIngest(historian, BROKER, sparkplug_groups=[])
    real = ingest.json.decode_into

    def buggy(topic, payload, now_ms, builders, ref):
        if topic.endswith("/boom"):
            raise RuntimeError("decoder bug")
        return real(topic, payload, now_ms, builders, ref)

    ingest.json.decode_into = buggy
    ingest.sparkplug.handle = lambda topic, payload: 1 / 0
    stream = b"".join(
        [
            mp.encode_publish("indunet/v1/acme/s/a/l/m/boom", b"{}", qos=1, mid=1),
            mp.encode_publish("spBv1.0/g/DDATA/n/d", b"", qos=1, mid=2),
            mp.encode_publish("indunet/v1/acme/s/a/l/m", b'{"ts": 1700000000000, "x": 1}', qos=1,
                              mid=3),
        ]
    )  # fmt: skip
    ingest._on_publishes(mp.PacketReader().feed(stream), ingest._epoch)
    pending, ingest._pending = ingest._pending, _Pending()
    ingest._write(_Taken.of(pending))
    assert historian.series("acme", "s/a/l/m/x", 0, 2**62).num_rows == 1
    reasons = sorted(d["reason"] for d in historian.dead_letters(limit=10))
    assert len(reasons) == 2
    assert "could not decode it (ZeroDivisionError" in reasons[1]
    assert "could not decode it (RuntimeError: decoder bug)" in reasons[0]
    historian.close()


def test_credentials_and_tls_from_options_win_over_the_url():
    from indunet.connect.mqtt import with_credentials

    url = with_credentials("mqtt://old:secret@broker:1884", "plant op", "p@ss:w/rd", tls=True)
    assert url == "mqtts://plant%20op:p%40ss%3Aw%2Frd@broker:1884"
    assert parse_mqtt_url(url) == ("broker", 1884, True, "plant op", "p@ss:w/rd")
    assert with_credentials("mqtt://u:p@h") == "mqtt://u:p@h:1883"
    assert with_credentials("mqtts://h") == "mqtts://h:8883"
    with pytest.raises(ConfigError, match="needs a user name"):
        with_credentials("mqtt://h", password="x")


def test_topics_of_a_decode_worker_and_of_a_host_without_the_json_tree(settings_factory):
    historian = open_historian(settings_factory())
    worker = MqttIngest(
        historian, BROKER, shared_group="g", sparkplug_host=False, command_results=False
    )
    assert worker.topics == ["$share/g/indunet/v1/#"]  # no Sparkplug, no STATE, no audit
    assert worker.unsubscribe == []
    host = MqttIngest(historian, BROKER, json_topics=False)
    assert "indunet/v1/#" not in host.topics and host.unsubscribe == ["indunet/v1/#"]
    assert "spBv1.0/#" in host.topics
    shared = MqttIngest(historian, BROKER, json_topics=False, shared_group="g")
    assert shared.unsubscribe == ["indunet/v1/#", "$share/g/indunet/v1/#"]  # either may be held
    with pytest.raises(ConfigError, match="must host Sparkplug"):
        MqttIngest(historian, BROKER, json_topics=False, sparkplug_host=False)
    historian.close()
