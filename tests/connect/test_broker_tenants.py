"""The embedded amqtt broker with a two-enterprise tenant spec: the same rule as Mosquitto's.

The ingest is the real `MqttIngest` (MQTT 3.1.1): what it stores is what the broker let through.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.broker import EmbeddedBroker, tenant_plugins
from indunet.connect.broker_acl import hash_password, parse_tenants
from indunet.connect.mqtt import MqttIngest
from indunet.errors import DataError
from indunet.store import open_historian
from tests.connect.test_mqtt import _wait

SPEC = parse_tenants(
    {
        "ingest": {"user": "indunet-ingest"},
        "enterprises": {
            "acme": {"sparkplug_groups": ["acme-plant"], "users": ["acme-edge-1"]},
            "globex": {"sparkplug_groups": ["globex-plant"], "users": ["globex-edge-1"]},
        },
    }
)
PASSWORDS = {u: f"pw-{u}-{uuid.uuid4().hex}" for u in SPEC.users()}


def _value(ts_ms: int, value: float) -> bytes:
    return json.dumps({"timestamp_ms": ts_ms, "value": value}).encode()


def _connect(port: int, user: str | None, password: str | None) -> tuple[paho.Client, int]:
    """Return a started MQTT 3.1.1 client and its CONNACK code (0: accepted)."""
    c = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv311
    )
    if user is not None:
        c.username_pw_set(user, password)
    answered = threading.Event()
    codes: list[int] = []
    c.on_connect = lambda cl, u, f, rc, p: (codes.append(rc.value), answered.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert answered.wait(10), f"no CONNACK for {user}"
    return c, codes[0]


@pytest.fixture
def broker():
    b = EmbeddedBroker(
        tenants=SPEC, password_hashes={u: hash_password(p) for u, p in PASSWORDS.items()}
    )
    b.start()
    yield b
    b.stop()


def test_a_device_cannot_publish_into_another_tenant(broker, settings_factory) -> None:
    historian = open_historian(settings_factory())
    url = f"mqtt://indunet-ingest:{PASSWORDS['indunet-ingest']}@127.0.0.1:{broker.port}"
    ingest = MqttIngest(historian, url, client_id="t-ingest", mqtt_version=4, flush_s=0.05)
    spb: list[str] = []
    watcher, code = _connect(broker.port, "indunet-ingest", PASSWORDS["indunet-ingest"])
    watcher.on_message = lambda c, u, m: spb.append(m.topic)
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *a: subscribed.set()
    watcher.subscribe("spBv1.0/+/NDATA/#", qos=1)
    acme, acme_code = _connect(broker.port, "acme-edge-1", PASSWORDS["acme-edge-1"])
    try:
        assert code == 0 and acme_code == 0 and subscribed.wait(10)
        ingest.start()
        assert _wait(lambda: ingest.stats.subscribed), ingest.stats
        # cross-tenant first: by the time the own messages arrive, a leaked one would have too
        now = int(time.time() * 1000)
        acme.publish("indunet/v1/globex/s1/a/l/press/power_kw", _value(now, 666), qos=1)
        acme.publish("spBv1.0/globex-plant/NDATA/n1", b"x", qos=1).wait_for_publish(10)
        acme.publish("indunet/v1/acme/s1/a/l/press/power_kw", _value(now, 1), qos=1)
        acme.publish("spBv1.0/acme-plant/NDATA/n1", b"x", qos=1).wait_for_publish(10)
        assert _wait(lambda: ingest.stats.stored_points >= 1 and spb), (ingest.stats, spb)
        assert _wait(lambda: historian.tags("acme")), ingest.stats
        assert [t.path for t in historian.tags("acme")] == ["s1/a/l/press/power_kw"]
        assert historian.tags("globex") == []
        assert spb == ["spBv1.0/acme-plant/NDATA/n1"]
        assert ingest.stats.stored_points == 1
        # reading another tenant's commands is refused as well (SUBACK 0x80)
        granted: list[int] = []
        done = threading.Event()
        acme.on_subscribe = lambda c, u, mid, rcs, p: (
            granted.extend(r.value for r in rcs),
            done.set(),
        )
        acme.subscribe([("indunet/cmd/v1/globex/#", 1), ("indunet/cmd/v1/acme/#", 1)])
        assert done.wait(10) and granted == [0x80, 1]
    finally:
        ingest.stop()
        for c in (watcher, acme):
            c.loop_stop()
            c.disconnect()
        historian.close()


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("acme-edge-1", "wrong"),  # wrong password
        ("acme-edge-1", ""),  # none
        ("acme-edge-1", PASSWORDS["globex-edge-1"]),  # another user's
        ("mallory", "anything"),  # not in the spec
        (None, None),  # anonymous
    ],
)
def test_clients_without_their_own_password_are_refused(broker, user, password) -> None:
    client, code = _connect(broker.port, user, password)
    client.loop_stop()
    client.disconnect()
    assert code != 0  # 4 (bad user name or password) or 5 (not authorised)


def test_without_a_spec_every_local_client_may_publish_anywhere() -> None:
    b = EmbeddedBroker()
    b.start()
    try:
        client, code = _connect(b.port, None, None)
        got = threading.Event()
        client.on_message = lambda *a: got.set()
        client.subscribe("#", qos=1)
        client.publish("indunet/v1/any/x", b"1", qos=1)
        assert code == 0 and got.wait(10)
        client.loop_stop()
        client.disconnect()
    finally:
        b.stop()


def test_hashes_for_users_outside_the_spec_are_refused() -> None:
    with pytest.raises(DataError, match="mallory"):
        tenant_plugins(SPEC, {"mallory": hash_password("x")})


def _persistent(port: int, user: str, client_id: str) -> tuple[paho.Client, list[str], int]:
    """Connect with a kept session (clean_session false); return client, topics got, CONNACK."""
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv311,
        clean_session=False,
    )
    c.username_pw_set(user, PASSWORDS[user])
    got: list[str] = []
    c.on_message = lambda cl, u, m: got.append(m.topic)
    answered = threading.Event()
    codes: list[int] = []
    c.on_connect = lambda cl, u, f, rc, p: (codes.append(rc.value), answered.set())
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert answered.wait(10), f"no CONNACK for {user}"
    return c, got, codes[0]


def test_another_tenant_cannot_take_over_the_ingests_session(broker) -> None:
    ingest, _, code = _persistent(broker.port, "indunet-ingest", "t-ingest-kept")
    subscribed = threading.Event()
    ingest.on_subscribe = lambda *a: subscribed.set()
    ingest.subscribe("indunet/v1/#", qos=1)
    assert code == 0 and subscribed.wait(10)
    ingest.disconnect()
    ingest.loop_stop()
    acme, acme_code = _connect(broker.port, "acme-edge-1", PASSWORDS["acme-edge-1"])
    # queued for the ingest's kept session while it is away
    acme.publish("indunet/v1/acme/s1/a/l/press/power_kw", b"1", qos=1).wait_for_publish(10)
    thief, stolen, thief_code = _persistent(broker.port, "globex-edge-1", "t-ingest-kept")
    thief.loop_stop()
    thief.disconnect()
    assert acme_code == 0 and thief_code != 0 and stolen == []
    # the ingest gets in again on its kept session and its subscription still delivers; what
    # was queued for it is lost: amqtt 0.12.1 lets any refused CONNECT take the session over
    # (docs/mqtt.md, "The embedded broker")
    ingest, got, code = _persistent(broker.port, "indunet-ingest", "t-ingest-kept")
    try:
        assert code == 0
        acme.publish("indunet/v1/acme/s1/a/l/press/temp_c", b"2", qos=1).wait_for_publish(10)
        assert _wait(lambda: "indunet/v1/acme/s1/a/l/press/temp_c" in got), got
        assert stolen == []
    finally:
        for c in (ingest, acme):
            c.loop_stop()
            c.disconnect()


def test_a_plant_publishes_only_its_own_enterprises_uplink_on_the_embedded_broker(
    settings_factory,
) -> None:
    """The same uplink rule as Mosquitto's (`topic_rules`), with the real regional consumer."""
    from indunet.federation import contract
    from indunet.federation.regional import UplinkConsumer

    spec = parse_tenants(
        {
            "region": {"user": "indunet-region"},
            "enterprises": {
                "acme": {"uplink_users": ["acme-uplink"]},
                "globex": {"uplink_users": ["globex-uplink"]},
            },
        }
    )
    passwords = {u: f"pw-{u}-{uuid.uuid4().hex}" for u in spec.users()}
    b = EmbeddedBroker(
        tenants=spec, password_hashes={u: hash_password(p) for u, p in passwords.items()}
    )
    b.start()
    settings = settings_factory()
    historian = open_historian(settings)
    pw = passwords["indunet-region"]
    settings.federation.url = f"mqtt://indunet-region:{pw}@127.0.0.1:{b.port}"
    settings.federation.client_id = f"region-{uuid.uuid4().hex[:6]}"
    consumer = UplinkConsumer(historian, settings, None)
    plant, code = _connect(b.port, "acme-uplink", passwords["acme-uplink"])

    def record(enterprise: str, kwh: float) -> contract.Uplink:
        data = {"kwh": kwh, "coverage": 1.0, "sites": ["s1"], "timezone": "UTC"}
        return contract.build(
            enterprise, "kwh_daily", "s1", "2026-06-01", data, computed_ms=1_780_000_000_000, rev=1
        )

    try:
        assert code == 0
        consumer.start()
        assert consumer.connected.wait(10)
        time.sleep(0.3)
        spoofed, own = record("globex", 666.0), record("acme", 100.0)
        plant.publish(spoofed.topic, spoofed.payload(), qos=1).wait_for_publish(10)
        plant.publish(own.topic, own.payload(), qos=1).wait_for_publish(10)
        assert _wait(lambda: consumer.counts["stored"] >= 1)
        time.sleep(0.5)  # time for the spoofed one to arrive, had it been let through
        stored = consumer.store.records("kwh_daily")
        assert [(s["enterprise"], s["data"]["kwh"]) for s in stored] == [("acme", 100.0)]
        assert sum(consumer.counts.values()) == 1
    finally:
        consumer.stop()
        plant.loop_stop()
        plant.disconnect()
        historian.close()
        b.stop()
