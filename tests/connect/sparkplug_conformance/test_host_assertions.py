"""Sparkplug 3.0 host application conformance: one test per assertion id of the TCK's host profile.

Each test is named after its assertion id (``tck-id-host-topic-phid-birth-payload-timestamp`` ->
``test_host_topic_phid_birth_payload_timestamp``) and checks it against the real Mosquitto: the
host's packets are read off the wire by a recording proxy, edge nodes are scripted message by
message. Most tests share the module's one host (each with its own edge node and group); the
lifecycle tests start their own. docs/sparkplug-conformance.md maps every id to its test and
says which assertions cannot apply to indunet's design, and why; those tests check what indunet
does instead.

The host runs with ``clean_start=True`` here (``[sparkplug] clean_session = true``), the
Sparkplug 3.0 session; indunet's default is the persistent session of its at-least-once JSON
ingest (test_message_flow_phid_sparkplug_clean_session_50 checks both).
"""

from __future__ import annotations

import json
import time

import pytest

from indunet.connect.codec import mqtt_packets as mp
from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.connect.codec.sparkplug import ONLINE_TAG, REBIRTH_METRIC
from indunet.errors import DataError
from tests.connect.sparkplug_conformance.conftest import Host, start_host
from tests.connect.sparkplug_conformance.peers import (
    Observer,
    Publish,
    metric,
    parse_subscribe,
    wait,
)


def _now() -> int:
    return int(time.time() * 1000)


def _state(raw: bytes) -> dict:
    """Return a STATE payload after checking it is UTF-8 JSON with exactly online + timestamp."""
    doc = json.loads(raw.decode("utf-8"))
    assert set(doc) == {"online", "timestamp"}, doc
    assert isinstance(doc["online"], bool)
    assert isinstance(doc["timestamp"], int) and not isinstance(doc["timestamp"], bool)
    return doc


def _assert_birth(host: Host, conn: int = 1) -> None:
    birth = host.birth(conn)
    assert birth.topic == host.state_topic == f"spBv1.0/STATE/{host.host_id}"
    assert birth.qos == 1 and birth.retain
    doc = _state(birth.payload)
    assert doc["online"] is True
    assert doc["timestamp"] == host.will_ts(conn)
    assert abs(doc["timestamp"] - _now()) < 120_000  # the current UTC time in ms


def _assert_will(host: Host, conn: int = 1) -> None:
    connect = host.connect(conn)
    assert connect.will_topic == host.state_topic
    assert connect.will_qos == 1 and connect.will_retain
    doc = _state(connect.will_payload or b"")
    assert doc["online"] is False
    assert abs(doc["timestamp"] - _now()) < 120_000


def _assert_subscribed_before_birth(host: Host, conn: int = 1) -> None:
    """CONNACK, then SUBSCRIBE (namespace + own STATE), SUBACK, and only then the birth."""
    proxy = host.proxy
    connack = proxy.first(mp.CONNACK, up=False, conn=conn)
    subscribe = proxy.first(mp.SUBSCRIBE, conn=conn)
    suback = proxy.first(mp.SUBACK, up=False, conn=conn)
    birth = host.birth(conn)
    assert connack.n < subscribe.n < suback.n < birth.n
    first_publish = host.publishes(conn)[0]
    assert first_publish.n == birth.n  # nothing published before the subscription is in place
    filters = parse_subscribe(subscribe.body, host.version)
    assert any(f in ("spBv1.0/#", host.state_topic) for f in filters), filters
    assert any(f.startswith("spBv1.0/") and f.endswith("#") for f in filters), filters


def _stopped(fresh_host) -> tuple[Host, Publish, int]:
    """Start a host, stop it cleanly; return it, its death message and the stop time."""
    h = fresh_host()
    before = _now()
    h.ingest.stop()
    # the proxy records packets on its own thread: wait until it has seen the DISCONNECT
    assert wait(lambda: bool(h.proxy.of(mp.DISCONNECT, up=True, conn=1)))
    deaths = [p for p in h.states(1) if not _state(p.payload)["online"]]
    assert len(deaths) == 1
    return h, deaths[0], before


def _edge_with_device(host: Host, *, bd_seq: int = 0):
    edge = host.edge(bd_seq=bd_seq)
    born = _now() - 60_000  # births a minute ago: deaths stamped after them
    edge.nbirth([metric("Temp", alias=1, dtype=pb.Double, value=20.0)], ts=born)
    edge.dbirth(
        "press7",
        [
            metric("Power", alias=2, dtype=pb.Double, value=1.5),
            metric("Mode", alias=3, dtype=pb.String, value="auto"),
            metric("Setpoint", alias=4, dtype=pb.Int32, value=10),
        ],
        ts=born,
    )
    node_prefix = f"{edge.group}/{edge.node}/node/{edge.node}"
    device_prefix = f"{edge.group}/{edge.node}/devices/press7"
    assert wait(lambda: "Setpoint" in host.latest(device_prefix)), host.ingest.stats
    assert wait(lambda: "Temp" in host.latest(node_prefix))
    return edge, node_prefix, device_prefix


def _commands(host: Host, kind: str) -> list[Publish]:
    return [p for p in host.publishes() if f"/{kind}/" in p.topic]


def _rebirth(host: Host):
    """Make the host ask a fresh edge node for a rebirth (a seq gap); return its NCMD."""
    edge = host.edge()
    edge.nbirth([metric("Temp", alias=1, dtype=pb.Double, value=20.0)])
    edge.ndata([metric(alias=1, dtype=pb.Double, value=21.0)], seq=9)  # 1 expected
    assert wait(lambda: bool(edge.rebirth_requests()))

    def sent() -> list[Publish]:  # this host's own request (another host may have asked first)
        return [p for p in _commands(host, "NCMD") if p.topic == edge.topic("NCMD")]

    assert wait(lambda: bool(sent()))
    return edge, sent()[0]


def _write(host: Host, device: str | None):
    """Write metrics with send_command; return the edge node and what it received."""
    edge, _, _ = _edge_with_device(host)
    values = {"Setpoint": 12, "Mode": "manual"} if device else {"Temp": 30.5}
    before = _now()
    assert host.ingest.send_command(edge.group, edge.node, values, device=device)
    kind = "DCMD" if device else "NCMD"
    topic = edge.topic(kind, device)
    assert wait(lambda: any(t == topic for t, _ in edge.commands))
    received = next(p for t, p in edge.commands if t == topic)
    sent = next(p for p in _commands(host, kind) if p.topic == topic)
    return edge, received, sent, before, values


# ============================================================================ STATE: birth
def test_components_ph_state(host, fresh_host):
    _assert_birth(host)
    h, death, _ = _stopped(fresh_host)
    assert _state(death.payload)["online"] is False
    assert wait(lambda: any(not _state(p)["online"] for p, _ in h.observer.on(h.state_topic)))


def test_conformance_primary_host(host, fresh_host):
    _assert_birth(host)  # birth certificate
    _assert_will(host)  # death certificate as the will
    _, death, _ = _stopped(fresh_host)  # and on a clean stop
    assert death.qos == 1 and death.retain


def test_host_topic_phid_birth_message(host):
    first = host.publishes(1)[0]
    assert first.topic == host.state_topic and _state(first.payload)["online"] is True


def test_host_topic_phid_birth_payload(host):
    _assert_birth(host)


def test_host_topic_phid_birth_payload_timestamp(host):
    assert _state(host.birth().payload)["timestamp"] == host.will_ts()


def test_host_topic_phid_birth_qos(host):
    assert host.birth().qos == 1


def test_host_topic_phid_birth_required(host):
    _assert_subscribed_before_birth(host)


def test_host_topic_phid_birth_retain(host):
    assert host.birth().retain
    # and the broker keeps it: a client subscribing later gets it as a retained message
    late = Observer(host.broker_url, [host.state_topic])
    try:
        assert wait(lambda: bool(late.on(host.state_topic)))
        payload, retained = late.on(host.state_topic)[0]
        assert retained and _state(payload)["online"] is True
    finally:
        late.close()


def test_host_topic_phid_birth_sub_required(host, fresh_host):
    _assert_subscribed_before_birth(host)
    # a host sharded by group subscribes to its own STATE topic by name
    sharded = fresh_host(groups=["plant1"])
    filters = parse_subscribe(sharded.proxy.first(mp.SUBSCRIBE).body, 5)
    assert sharded.state_topic in filters and "spBv1.0/plant1/#" in filters
    _assert_subscribed_before_birth(sharded)


def test_host_topic_phid_birth_topic(host):
    assert host.birth().topic == f"spBv1.0/STATE/{host.host_id}"


def test_host_topic_phid_death_payload(host, fresh_host):
    _assert_will(host)
    _, death, _ = _stopped(fresh_host)
    assert _state(death.payload)["online"] is False


def test_host_topic_phid_death_qos(host, fresh_host):
    assert host.connect().will_qos == 1
    assert _stopped(fresh_host)[1].qos == 1


def test_host_topic_phid_death_required(host):
    assert host.connect().will_topic is not None


def test_host_topic_phid_death_retain(host, fresh_host):
    assert host.connect().will_retain
    assert _stopped(fresh_host)[1].retain


def test_host_topic_phid_death_topic(host, fresh_host):
    assert host.connect().will_topic == f"spBv1.0/STATE/{host.host_id}"
    h, death, _ = _stopped(fresh_host)
    assert death.topic == f"spBv1.0/STATE/{h.host_id}"


def test_intro_sparkplug_host_state(fresh_host):
    h = fresh_host()
    h.proxy.drop()  # a lost connection: the broker publishes the will
    seen = lambda: [_state(p)["online"] for p, _ in h.observer.on(h.state_topic)]  # noqa: E731
    assert wait(lambda: False in seen())
    assert wait(lambda: seen()[-1] is True)  # back: online again on the new session


# ============================================================================ edge node death
def test_message_flow_edge_node_birth_publish_will_message_topic(host):
    # the edge node's will is its NDEATH on spBv1.0/group/NDEATH/node: when the broker
    # delivers it, the host takes it as the node's death
    edge, node_prefix, device_prefix = _edge_with_device(host)
    edge.crash()
    assert wait(lambda: host.latest(node_prefix)["Temp"]["quality"] == 3)
    assert wait(lambda: host.latest(device_prefix)["Power"]["quality"] == 3)


def test_message_flow_hid_sparkplug_state_message_delivered(fresh_host):
    h = fresh_host()
    before = len(h.states(1))
    h.observer.publish(h.state_topic, json.dumps({"online": False, "timestamp": _now()}).encode())
    assert wait(lambda: len(h.states(1)) > before)
    again = h.states(1)[before]
    assert _state(again.payload) == {"online": True, "timestamp": h.will_ts(1)}
    assert again.qos == 1 and again.retain
    # the retained STATE on the broker says online again
    assert wait(lambda: _state(h.observer.on(h.state_topic)[-1][0])["online"] is True)


def test_message_flow_phid_sparkplug_clean_session_311(fresh_host):
    h = fresh_host(version=4)
    connect = h.connect()
    assert connect.version == 4 and connect.clean
    _assert_birth(h)


def test_message_flow_phid_sparkplug_clean_session_50(host, fresh_host):
    connect = host.connect()
    assert connect.version == 5 and connect.clean and connect.session_expiry == 0
    # indunet's default is a persistent session (at-least-once of the JSON ingest): documented
    persistent = fresh_host(clean=False)
    assert not persistent.connect().clean and persistent.connect().session_expiry > 0


def test_message_flow_phid_sparkplug_state_publish(host):
    _assert_subscribed_before_birth(host)


def test_message_flow_phid_sparkplug_state_publish_payload(host):
    _assert_birth(host)


def test_message_flow_phid_sparkplug_state_publish_payload_timestamp(fresh_host):
    h = fresh_host()
    assert _state(h.birth(1).payload)["timestamp"] == h.will_ts(1)
    h.proxy.drop()  # a new session: a new will timestamp, and the birth follows it
    assert wait(lambda: len(h.proxy.connects()) >= 2 and bool(h.states(2)))
    assert h.will_ts(2) > h.will_ts(1)
    assert _state(h.birth(2).payload)["timestamp"] == h.will_ts(2)


def test_message_flow_phid_sparkplug_subscription(host):
    _assert_subscribed_before_birth(host)


# ============================================================================ commands
def test_operational_behavior_data_commands_dcmd_metric_name(host):
    edge, received, _, _, values = _write(host, "press7")
    assert {m.name for m in received.metrics} == set(values)  # names of the DBIRTH
    with pytest.raises(DataError, match="not in the birth"):
        host.ingest.send_command(edge.group, edge.node, {"Unknown": 1}, device="press7")


def test_operational_behavior_data_commands_dcmd_metric_value(host):
    edge, received, _, _, _ = _write(host, "press7")
    by_name = {m.name: m for m in received.metrics}
    assert by_name["Setpoint"].datatype == pb.Int32 and by_name["Setpoint"].int_value == 12
    assert by_name["Mode"].datatype == pb.String and by_name["Mode"].string_value == "manual"
    for wrong in ({"Setpoint": "high"}, {"Setpoint": 2**40}, {"Mode": 3}, {"Setpoint": True}):
        with pytest.raises(DataError, match="does not fit"):
            host.ingest.send_command(edge.group, edge.node, wrong, device="press7")


def test_operational_behavior_data_commands_dcmd_verb(host):
    edge, _, sent, _, _ = _write(host, "press7")
    assert sent.topic == f"spBv1.0/{edge.group}/DCMD/{edge.node}/press7"


def test_operational_behavior_data_commands_ncmd_metric_name(host):
    edge, received, _, _, _ = _write(host, None)
    assert [m.name for m in received.metrics] == ["Temp"]
    with pytest.raises(DataError, match="not in the birth"):
        host.ingest.send_command(edge.group, edge.node, {"Power": 1.0})  # a device's metric


def test_operational_behavior_data_commands_ncmd_metric_value(host):
    edge, received, _, _, _ = _write(host, None)
    assert received.metrics[0].datatype == pb.Double and received.metrics[0].double_value == 30.5
    with pytest.raises(DataError, match="does not fit"):
        host.ingest.send_command(edge.group, edge.node, {"Temp": float("nan")})


def test_operational_behavior_data_commands_ncmd_rebirth_name(host):
    _, ncmd = _rebirth(host)
    assert [m.name for m in pb.Payload.FromString(ncmd.payload).metrics] == [REBIRTH_METRIC]


def test_operational_behavior_data_commands_ncmd_rebirth_value(host):
    _, ncmd = _rebirth(host)
    m = pb.Payload.FromString(ncmd.payload).metrics[0]
    assert m.datatype == pb.Boolean and m.boolean_value is True


def test_operational_behavior_data_commands_ncmd_rebirth_verb(host):
    edge, ncmd = _rebirth(host)
    assert ncmd.topic == f"spBv1.0/{edge.group}/NCMD/{edge.node}"


def test_operational_behavior_data_commands_ncmd_verb(host):
    edge, _, sent, _, _ = _write(host, None)
    assert sent.topic == f"spBv1.0/{edge.group}/NCMD/{edge.node}"


# ============================================================================ edge termination
def _online(host: Host, prefix: str) -> dict:
    return host.latest(prefix).get(ONLINE_TAG) or {}


def test_operational_behavior_edge_node_termination_host_action_ddeath_devices_offline(host):
    edge, _, device_prefix = _edge_with_device(host)
    assert wait(lambda: _online(host, device_prefix).get("value") == 1.0)
    death_ts = _now() - 1234  # the DDEATH's own timestamp, not the host's clock
    edge.ddeath("press7", ts=death_ts)
    assert wait(lambda: _online(host, device_prefix).get("value") == 0.0)
    assert _online(host, device_prefix)["ts"] == death_ts


def test_operational_behavior_edge_node_termination_host_action_ddeath_devices_tags_stale(host):
    edge, node_prefix, device_prefix = _edge_with_device(host)
    edge.ddeath("press7", ts=_now() - 10)
    assert wait(lambda: host.latest(device_prefix)["Power"]["quality"] == 3)
    assert {r["quality"] for k, r in host.latest(device_prefix).items() if k != ONLINE_TAG} == {3}
    assert host.latest(node_prefix)["Temp"]["quality"] == 0  # the node itself lives on


def _crash(host: Host):
    edge, node_prefix, device_prefix = _edge_with_device(host)
    before = _now()
    edge.crash()  # the broker publishes the NDEATH (will)
    assert wait(lambda: _online(host, node_prefix).get("value") == 0.0)
    assert wait(lambda: _online(host, device_prefix).get("value") == 0.0)
    return node_prefix, device_prefix, before


def test_operational_behavior_edge_node_termination_host_action_ndeath_devices_offline(host):
    _, device_prefix, before = _crash(host)
    assert before <= _online(host, device_prefix)["ts"] <= _now()  # the host's UTC time


def test_operational_behavior_edge_node_termination_host_action_ndeath_devices_tags_stale(host):
    _, device_prefix, _ = _crash(host)
    assert wait(lambda: host.latest(device_prefix)["Power"]["quality"] == 3)
    assert host.latest(device_prefix)["Mode"]["quality"] == 3


def test_operational_behavior_edge_node_termination_host_action_ndeath_node_offline(host):
    node_prefix, _, before = _crash(host)
    assert before <= _online(host, node_prefix)["ts"] <= _now()


def test_operational_behavior_edge_node_termination_host_action_ndeath_node_tags_stale(host):
    node_prefix, _, _ = _crash(host)
    assert wait(lambda: host.latest(node_prefix)["Temp"]["quality"] == 3)


# ============================================================================ host connect
def test_operational_behavior_host_application_connect_birth(host):
    _assert_subscribed_before_birth(host)
    _assert_birth(host)


def test_operational_behavior_host_application_connect_birth_payload(host):
    _assert_birth(host)


def test_operational_behavior_host_application_connect_birth_qos(host):
    assert host.birth().qos == 1


def test_operational_behavior_host_application_connect_birth_retained(host):
    assert host.birth().retain


def test_operational_behavior_host_application_connect_birth_topic(host):
    assert host.birth().topic == f"spBv1.0/STATE/{host.host_id}"


def test_operational_behavior_host_application_connect_will(host):
    assert host.connect().will_topic == host.state_topic


def test_operational_behavior_host_application_connect_will_payload(host):
    _assert_will(host)
    assert _state(host.connect().will_payload or b"")["timestamp"] == host.will_ts()


def test_operational_behavior_host_application_connect_will_qos(host):
    assert host.connect().will_qos == 1


def test_operational_behavior_host_application_connect_will_retained(host):
    assert host.connect().will_retain


def test_operational_behavior_host_application_connect_will_topic(host):
    assert host.connect().will_topic == f"spBv1.0/STATE/{host.host_id}"


def test_operational_behavior_host_application_death_payload(host, fresh_host):
    _assert_will(host)
    h = fresh_host()
    h.proxy.drop()  # the broker delivers the registered will as it was registered
    assert wait(lambda: any(not _state(p)["online"] for p, _ in h.observer.on(h.state_topic)))
    delivered = next(p for p, _ in h.observer.on(h.state_topic) if not _state(p)["online"])
    assert delivered == h.connect(1).will_payload


def test_operational_behavior_host_application_death_qos(host):
    assert host.connect().will_qos == 1


def test_operational_behavior_host_application_death_retained(host):
    assert host.connect().will_retain


def test_operational_behavior_host_application_death_topic(host):
    assert host.connect().will_topic == f"spBv1.0/STATE/{host.host_id}"


def test_operational_behavior_host_application_disconnect_intentional(fresh_host):
    h, death, _ = _stopped(fresh_host)
    disconnect = h.proxy.first(mp.DISCONNECT)
    assert death.n < disconnect.n  # DISCONNECT right after the death message
    later = [p for p in h.proxy.packets if p.up and p.n > death.n and p.kind != mp.PUBACK]
    assert [p.kind for p in later] == [mp.DISCONNECT]


def test_operational_behavior_host_application_multi_server_timestamp(two_servers):
    a, b = two_servers
    ts_a, ts_b = a.will_ts(1), b.will_ts(1)
    b.proxy.drop()  # a new session on server B only
    assert wait(lambda: len(b.proxy.connects()) >= 2 and bool(b.states(2)))
    assert b.will_ts(2) > ts_b
    assert _state(b.birth(2).payload)["timestamp"] == b.will_ts(2)
    assert len(a.proxy.connects()) == 1 and a.will_ts(1) == ts_a  # A keeps its own
    assert [_state(p.payload)["timestamp"] for p in a.states()] == [ts_a]


def test_operational_behavior_host_application_termination(fresh_host):
    h, death, before = _stopped(fresh_host)
    assert death.topic == h.state_topic and death.qos == 1 and death.retain
    doc = _state(death.payload)
    assert doc["online"] is False and before <= doc["timestamp"] <= _now()


# ============================================================================ reordering
# indunet provides no Reorder Timeout (a SHOULD): a seq gap asks for a rebirth at once, which is
# what the specification asks of a host without one. 58-60 only apply to a host configured
# with a timeout; their tests check the behaviour without one.
def test_operational_behavior_host_reordering_param(host):
    import inspect

    from indunet.connect.mqtt import MqttIngest

    assert not [p for p in inspect.signature(MqttIngest).parameters if "reorder" in p]
    _rebirth(host)  # a gap: rebirth at once


def test_operational_behavior_host_reordering_rebirth(host):
    edge, _ = _rebirth(host)  # without a timeout the rebirth goes out at once
    assert len(edge.rebirth_requests()) >= 1


def test_operational_behavior_host_reordering_start(host):
    edge = host.edge()
    edge.nbirth([metric("Temp", alias=1, dtype=pb.Double, value=20.0)])
    prefix = f"{edge.group}/{edge.node}/node/{edge.node}"
    edge.ndata([metric(alias=1, dtype=pb.Double, value=22.0)], seq=2)  # 1 is missing
    assert wait(lambda: bool(edge.rebirth_requests()))  # no timer: at once
    assert wait(lambda: host.latest(prefix)["Temp"]["value"] == 22.0)  # the data is kept


def test_operational_behavior_host_reordering_success(host):
    edge = host.edge()
    edge.nbirth([metric("Temp", alias=1, dtype=pb.Double, value=20.0)])
    prefix = f"{edge.group}/{edge.node}/node/{edge.node}"
    edge.ndata([metric(alias=1, dtype=pb.Double, value=22.0)], seq=2)
    edge.ndata([metric(alias=1, dtype=pb.Double, value=21.0, ts=_now() - 5)], seq=1)  # late
    assert wait(lambda: len(edge.rebirth_requests()) >= 1)
    assert wait(lambda: host.latest(prefix)["Temp"]["value"] == 22.0)  # newest by time wins

    def gap_noted() -> bool:  # dead letters are written with the next flush, not at once
        letters = host.historian.dead_letters(host.enterprise, limit=500)
        return any(edge.group in d["reason"] and "seq gap" in d["reason"] for d in letters)

    assert wait(gap_noted)


# ============================================================================ several servers
def test_operational_behavior_primary_application_state_with_multiple_servers_state(two_servers):
    for server in two_servers:
        first = server.publishes(1)[0]
        assert first.topic == server.state_topic and _state(first.payload)["online"] is True
        _assert_subscribed_before_birth(server)


def test_operational_behavior_primary_application_state_with_multiple_servers_state_subs(
    two_servers,
):
    # an edge node on either server that waits for the primary host sees it online there
    for server in two_servers:
        watcher = Observer(server.broker_url, [server.state_topic])
        try:
            assert wait(lambda w=watcher, s=server: bool(w.on(s.state_topic)))
            payload, retained = watcher.on(server.state_topic)[0]
            assert retained and _state(payload)["online"] is True
        finally:
            watcher.close()


# ============================================================================ command payloads
def test_payloads_dcmd_qos(host):
    assert _write(host, "press7")[2].qos == 0


def test_payloads_dcmd_retain(host):
    assert not _write(host, "press7")[2].retain


def test_payloads_dcmd_seq(host):
    assert not _write(host, "press7")[1].HasField("seq")


def test_payloads_dcmd_timestamp(host):
    _, received, _, before, _ = _write(host, "press7")
    assert before <= received.timestamp <= _now()


def test_payloads_name_cmd_requirement(host):
    _, received, _, before, _ = _write(host, "press7")  # MAY: indunet stamps each metric
    assert all(before <= m.timestamp <= _now() for m in received.metrics)


def test_payloads_ncmd_qos(host):
    assert _write(host, None)[2].qos == 0
    assert _rebirth(host)[1].qos == 0


def test_payloads_ncmd_retain(host):
    assert not _write(host, None)[2].retain
    assert not _rebirth(host)[1].retain


def test_payloads_ncmd_seq(host):
    assert not _write(host, None)[1].HasField("seq")
    assert not pb.Payload.FromString(_rebirth(host)[1].payload).HasField("seq")


def test_payloads_ncmd_timestamp(host):
    before = _now()
    _, received, _, _, _ = _write(host, None)
    assert before <= received.timestamp <= _now()
    rebirth = pb.Payload.FromString(_rebirth(host)[1].payload)
    assert before <= rebirth.timestamp <= _now()


def test_payloads_state_birth(host):
    _assert_subscribed_before_birth(host)
    birth = host.birth()
    assert birth.topic == host.state_topic and birth.qos == 1 and birth.retain


def test_payloads_state_birth_payload(host):
    _assert_birth(host)


def test_payloads_state_subscribe(host):
    filters = parse_subscribe(host.proxy.first(mp.SUBSCRIBE).body, 5)
    assert "spBv1.0/#" in filters  # covers spBv1.0/STATE/{host_id}


def test_payloads_state_will_message(host):
    assert host.connect().will_topic == f"spBv1.0/STATE/{host.host_id}"


def test_payloads_state_will_message_payload(host):
    _assert_will(host)


def test_payloads_state_will_message_qos(host):
    assert host.connect().will_qos == 1


def test_payloads_state_will_message_retain(host):
    assert host.connect().will_retain


def test_principles_birth_certificates_order(fresh_host):
    h = fresh_host()
    edge = h.edge()
    edge.nbirth([metric("Temp", alias=1, dtype=pb.Double, value=20.0)])
    edge.ndata([metric(alias=1, dtype=pb.Double, value=21.0)], seq=5)  # provoke an NCMD
    assert wait(lambda: bool(edge.rebirth_requests()))
    h.proxy.drop()
    assert wait(lambda: len(h.proxy.connects()) >= 2 and bool(h.states(2)))
    for conn in (1, 2):  # on every session the STATE birth is the first message
        first = h.publishes(conn)[0]
        assert first.topic == h.state_topic and _state(first.payload)["online"] is True


# ============================================================================ command topics
def test_topics_dcmd_mqtt(host):
    sent = _write(host, "press7")[2]
    assert sent.qos == 0 and not sent.retain


def test_topics_dcmd_payload(host):
    _, received, _, _, values = _write(host, "press7")
    assert {m.name: (m.int_value or m.string_value) for m in received.metrics} == values


def test_topics_dcmd_timestamp(host):
    _, received, _, before, _ = _write(host, "press7")
    assert before <= received.timestamp <= _now()


def test_topics_dcmd_topic(host):
    edge, _, sent, _, _ = _write(host, "press7")
    assert sent.topic == f"spBv1.0/{edge.group}/DCMD/{edge.node}/press7"


def test_topics_ncmd_mqtt(host):
    sent = _write(host, None)[2]
    assert sent.qos == 0 and not sent.retain


def test_topics_ncmd_payload(host):
    _, received, _, _, values = _write(host, None)
    assert {m.name: m.double_value for m in received.metrics} == values


def test_topics_ncmd_timestamp(host):
    _, received, _, before, _ = _write(host, None)
    assert before <= received.timestamp <= _now()


def test_topics_ncmd_topic(host):
    edge, _, sent, _, _ = _write(host, None)
    assert sent.topic == f"spBv1.0/{edge.group}/NCMD/{edge.node}"


# ============================================================================ death timestamps
def test_host_topic_phid_death_payload_timestamp_disconnect_clean(fresh_host):
    h, death, before = _stopped(fresh_host)
    ts = _state(death.payload)["timestamp"]
    assert before <= ts <= _now()  # the time of the disconnect, not the will's
    # the proxy records packets on its own thread: under load the DISCONNECT may come a bit later
    assert wait(lambda: h.proxy.of(mp.DISCONNECT, up=True, conn=1))
    assert death.n < h.proxy.first(mp.DISCONNECT).n


def test_host_topic_phid_death_payload_timestamp_disconnect_with_no_disconnect_packet(
    fresh_host,
):
    # indunet never ends a session on purpose without DISCONNECT (stop() always sends one);
    # a connection lost without it is announced by the will, stamped at the CONNECT
    h = fresh_host()
    assert not [p for p in h.proxy.packets if p.kind == mp.DISCONNECT]
    h.proxy.drop()
    assert wait(lambda: any(not _state(p)["online"] for p, _ in h.observer.on(h.state_topic)))
    will = next(p for p, _ in h.observer.on(h.state_topic) if not _state(p)["online"])
    assert _state(will)["timestamp"] == h.will_ts(1)


# ============================================================================ two servers
@pytest.fixture(scope="module")
def two_servers(sp_historian, tmp_path_factory):
    """One host application connected to two brokers (Mosquitto + a private Mosquitto)."""
    from tests.connect.test_broker_failures import PrivateMosquitto

    work = tmp_path_factory.mktemp("second-broker")
    second = PrivateMosquitto(work)
    second.start()
    hosts = []
    try:
        a = start_host(sp_historian)
        hosts.append(a)
        hosts.append(start_host(sp_historian, broker=second.url, host_id=a.host_id))
        b = hosts[1]
        yield a, b
    finally:
        for h in hosts:
            h.stop()
        second.stop()
