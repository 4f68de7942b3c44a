"""`indunet broker acl` on a real Mosquitto: one tenant's device cannot publish into another's.

Also the file builder's hostile input: wildcards in names, a user or Sparkplug group listed for
two enterprises, broken TOML.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from indunet.cli import app
from indunet.connect.broker_acl import acl_text, hash_password, parse_tenants
from indunet.errors import DataError
from tests.connect.test_broker_failures import MOSQUITTO, PrivateMosquitto

TENANTS = """
[ingest]
user = "indunet-ingest"

[enterprises.acme]
sparkplug_groups = ["acme-plant"]
users = ["acme-edge-1"]

[enterprises.globex]
sparkplug_groups = ["globex-plant"]
users = ["globex-edge-1"]
"""


def _client(port: int, user: str, password: str) -> paho.Client:
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{user}-{uuid.uuid4().hex[:6]}",
        protocol=paho.MQTTv5,
    )
    c.username_pw_set(user, password)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(5), user
    return c


def test_a_device_cannot_publish_into_another_tenant(tmp_path) -> None:
    if not os.path.exists(MOSQUITTO):
        pytest.fail("the mosquitto binary is needed for the broker tenant test")
    spec = tmp_path / "tenants.toml"
    spec.write_text(TENANTS)
    out = tmp_path / "broker"
    r = CliRunner().invoke(app, ["broker", "acl", str(spec), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    creds = json.loads((out / "credentials.json").read_text())
    assert oct((out / "credentials.json").stat().st_mode)[-3:] == "600"
    # a second run keeps the passwords (devices already configured keep working)
    CliRunner().invoke(app, ["broker", "acl", str(spec), "--out", str(out)])
    assert json.loads((out / "credentials.json").read_text()) == creds
    (tmp_path / "m").mkdir()
    broker = PrivateMosquitto(
        tmp_path / "m",
        persistence="false",
        allow_anonymous="false",
        password_file=out / "passwd",
        acl_file=out / "acl",
    )
    broker.start()
    try:
        got: list[str] = []
        ingest = _client(broker.port, "indunet-ingest", creds["indunet-ingest"])
        ingest.on_message = lambda c, u, m: got.append(m.topic)
        ingest.subscribe([("indunet/v1/#", 1), ("spBv1.0/#", 1)])
        time.sleep(0.3)
        acme = _client(broker.port, "acme-edge-1", creds["acme-edge-1"])
        reasons: dict[int, int] = {}
        acme.on_publish = lambda c, u, mid, rc, props: reasons.__setitem__(mid, rc.value)
        own = acme.publish("indunet/v1/acme/s1/a/l/m", b'{"value": 1}', qos=1)
        cross = acme.publish("indunet/v1/globex/s1/a/l/m", b'{"value": 666}', qos=1)
        spb = acme.publish("spBv1.0/globex-plant/NDATA/n1", b"x", qos=1)
        own_spb = acme.publish("spBv1.0/acme-plant/NDATA/n1", b"x", qos=1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(got) < 2:
            time.sleep(0.05)
        time.sleep(0.5)  # time for a wrongly delivered message to arrive too
        assert sorted(got) == ["indunet/v1/acme/s1/a/l/m", "spBv1.0/acme-plant/NDATA/n1"]
        # MQTT v5: the broker says so (0x87 not authorised) instead of dropping in silence
        assert reasons[cross.mid] == 0x87 and reasons[spb.mid] == 0x87
        assert reasons[own.mid] == 0 and reasons[own_spb.mid] == 0
        # a wrong password or no user at all gets nowhere
        refused = threading.Event()
        bad = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        bad.username_pw_set("acme-edge-1", "wrong")
        bad.on_connect = lambda c, u, f, rc, p: refused.set() if rc.is_failure else None
        bad.connect("127.0.0.1", broker.port)
        bad.loop_start()
        assert refused.wait(5) and not bad.is_connected()
        bad.loop_stop()
        for c in (ingest, acme):
            c.loop_stop()
            c.disconnect()
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        ({"enterprises": {"ac#me": {}}}, "enterprise 'ac#me'"),
        ({"enterprises": {"a": {"users": ["x/+"]}}}, "users 'x/+'"),
        ({"enterprises": {"a": {"users": ["u"]}, "b": {"users": ["u"]}}}, "listed twice"),
        (
            {"enterprises": {"a": {"sparkplug_groups": ["g"]}, "b": {"sparkplug_groups": ["g"]}}},
            "belongs to a and b",
        ),
        ({"ingest": {"user": "i"}, "enterprises": {"a": {"users": ["i"]}}}, "listed twice"),
        ({"enterprises": {"a": 3}}, "must be a table"),
    ],
)
def test_hostile_tenant_documents_are_refused(doc, text) -> None:
    with pytest.raises(DataError, match=text.replace("+", r"\+")):
        parse_tenants(doc)


def test_bad_files_exit_2_with_the_reason(tmp_path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text("[enterprises\n")
    r = CliRunner().invoke(app, ["broker", "acl", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not valid TOML" in r.output
    r = CliRunner().invoke(app, ["broker", "acl", str(tmp_path / "none.toml")])
    assert r.exit_code == 2


def test_password_hash_is_mosquittos_format() -> None:
    h = hash_password("secretpassword1", salt=bytes(12))
    assert h.startswith("$7$101$AAAAAAAAAAAAAAAA$") and len(h.split("$")[-1]) == 88


UPLINK_TENANTS = """
[ingest]
user = "indunet-ingest"

[region]
user = "indunet-region"

[enterprises.acme]
users = ["acme-edge-1"]
uplink_users = ["acme-uplink"]

[enterprises.globex]
uplink_users = ["globex-uplink"]
"""


def test_a_plant_can_publish_only_its_own_enterprises_uplink(tmp_path, settings_factory) -> None:
    """A real Mosquitto with `indunet broker acl` files; the real regional `UplinkConsumer`."""
    from indunet.federation import contract
    from indunet.federation.regional import UplinkConsumer
    from indunet.store import open_historian

    if not os.path.exists(MOSQUITTO):
        pytest.fail("the mosquitto binary is needed for the broker uplink test")
    spec = tmp_path / "tenants.toml"
    spec.write_text(UPLINK_TENANTS)
    out = tmp_path / "broker"
    r = CliRunner().invoke(app, ["broker", "acl", str(spec), "--out", str(out)])
    assert r.exit_code == 0, r.output
    creds = json.loads((out / "credentials.json").read_text())
    (tmp_path / "m").mkdir()
    broker = PrivateMosquitto(
        tmp_path / "m",
        persistence="false",
        allow_anonymous="false",
        password_file=out / "passwd",
        acl_file=out / "acl",
    )
    broker.start()
    settings = settings_factory()
    historian = open_historian(settings)
    settings.federation.url = (
        f"mqtt://indunet-region:{creds['indunet-region']}@127.0.0.1:{broker.port}"
    )
    consumer = UplinkConsumer(historian, settings, None)

    def record(enterprise: str, kwh: float) -> contract.Uplink:
        data = {"kwh": kwh, "coverage": 1.0, "sites": ["s1"], "timezone": "UTC"}
        return contract.build(
            enterprise, "kwh_daily", "s1", "2026-06-01", data, computed_ms=1_780_000_000_000, rev=1
        )

    clients: list[paho.Client] = []
    try:
        consumer.start()
        assert consumer.connected.wait(10)
        time.sleep(0.3)  # the SUBACK
        acme = _client(broker.port, "acme-uplink", creds["acme-uplink"])
        clients.append(acme)
        reasons: dict[int, int] = {}
        acme.on_publish = lambda c, u, mid, rc, props: reasons.__setitem__(mid, rc.value)
        own, spoofed = record("acme", 100.0), record("globex", 666.0)
        cross = acme.publish(spoofed.topic, spoofed.payload(), qos=1)
        mine = acme.publish(own.topic, own.payload(), qos=1)
        # a device user of acme is no uplink either, nor is the region a publisher
        edge = _client(broker.port, "acme-edge-1", creds["acme-edge-1"])
        region = _client(broker.port, "indunet-region", creds["indunet-region"])
        clients += [edge, region]
        edge_reasons: dict[int, int] = {}
        edge.on_publish = lambda c, u, mid, rc, props: edge_reasons.__setitem__(mid, rc.value)
        by_edge = edge.publish(own.topic, record("acme", 7.0).payload(), qos=1)
        region_reasons: dict[int, int] = {}
        region.on_publish = lambda c, u, mid, rc, props: region_reasons.__setitem__(mid, rc.value)
        by_region = region.publish(spoofed.topic, spoofed.payload(), qos=1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            consumer.counts["stored"] < 1 or len(reasons) < 2 or not edge_reasons
            or not region_reasons
        ):  # fmt: skip
            time.sleep(0.05)
        time.sleep(0.5)  # time for a wrongly delivered message to arrive too
        assert reasons[mine.mid] == 0 and reasons[cross.mid] == 0x87
        assert edge_reasons[by_edge.mid] == 0x87 and region_reasons[by_region.mid] == 0x87
        stored = consumer.store.records("kwh_daily")
        assert [(s["enterprise"], s["data"]["kwh"]) for s in stored] == [("acme", 100.0)]
        assert consumer.counts == {"stored": 1, "duplicate": 0, "older": 0, "refused": 0}
        # an uplink user cannot read another enterprise's uplinks (nor its own: write only)
        peek: list[str] = []
        globex = _client(broker.port, "globex-uplink", creds["globex-uplink"])
        clients.append(globex)
        globex.on_message = lambda c, u, m: peek.append(m.topic)
        globex.subscribe("indunet/uplink/v1/#", qos=1)
        time.sleep(0.3)
        again = acme.publish(own.topic, record("acme", 101.0).payload(), qos=1)
        again.wait_for_publish(5)
        time.sleep(0.5)
        assert peek == []
    finally:
        consumer.stop()
        for c in clients:
            c.loop_stop()
            c.disconnect()
        historian.close()
        broker.stop()


def test_uplink_rules_in_the_acl_file() -> None:
    spec = parse_tenants(
        {"region": {"user": "r"}, "enterprises": {"a": {"uplink_users": ["a-up"]}}}
    )
    text = acl_text(spec)
    assert "user a-up\ntopic write indunet/uplink/v1/a/#\n" in text
    assert "user r\ntopic read indunet/uplink/v1/#\n" in text
    assert spec.users() == ["indunet-ingest", "a-up", "r"]
    with pytest.raises(DataError, match="listed twice"):
        parse_tenants({"region": {"user": "u"}, "enterprises": {"a": {"uplink_users": ["u"]}}})
    with pytest.raises(DataError, match="uplink_users 'a/#'"):
        parse_tenants({"enterprises": {"a": {"uplink_users": ["a/#"]}}})
