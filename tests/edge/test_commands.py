"""Commands: Sparkplug DCMD payloads decoded by name and by alias, and a DCMD by alias carried out
end to end (Mosquitto -> edge agent in Sparkplug mode -> OPC UA PLC), audited either way."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.edge.agent import EdgeAgent
from indunet.edge.buffer import EdgeBuffer
from indunet.edge.commands import decode_dcmd
from indunet.edge.config import parse_edge_config
from tests.edge.servers import OpcuaSim

_DOUBLE = 10


def dcmd(*metrics: dict) -> bytes:
    """Build a DCMD payload; each metric dict has name and/or alias and a double value."""
    msg = pb.Payload()
    msg.timestamp = int(time.time() * 1000)
    for spec in metrics:
        m = msg.metrics.add()
        if "name" in spec:
            m.name = spec["name"]
        if "alias" in spec:
            m.alias = spec["alias"]
        m.datatype = _DOUBLE
        if "value" in spec:
            m.double_value = spec["value"]
    return msg.SerializeToString()


def test_decode_by_name_by_alias_and_unknown_alias() -> None:
    payload = dcmd(
        {"name": "speed", "value": 1.5},
        {"alias": 7, "value": 2.5},
        {"alias": 99, "value": 3.5},
        {"name": "no-value"},  # a metric without a value writes nothing
    )
    got = decode_dcmd(payload, {7: "setpoint"})
    assert got == {"speed": 1.5, "setpoint": 2.5, "alias 99": 3.5}


def test_alias_zero_is_an_alias_and_names_win_over_aliases() -> None:
    got = decode_dcmd(dcmd({"alias": 0, "value": 1.0}, {"name": "x", "alias": 3, "value": 2.0}))
    assert got == {"alias 0": 1.0, "x": 2.0}


def test_junk_payload_is_an_error_not_an_empty_write() -> None:
    with pytest.raises(Exception):  # noqa: B017 - protobuf's DecodeError
        decode_dcmd(b"\xff\xff\xff\xff")


def _until(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time: {what}")
        time.sleep(0.05)


def test_dcmd_by_alias_reaches_the_plc_and_unknown_aliases_are_audited(tmp_path: Path) -> None:
    group, node = f"g{uuid.uuid4().hex[:8]}", "edge-1"
    plc = OpcuaSim(count=10).start()
    cfg = parse_edge_config(
        {
            "broker": {
                "url": "mqtt://127.0.0.1:1883",
                "client_id": f"edge-{group}",
                "enterprise": "acme",
            },
            "buffer": {"path": str(tmp_path / "b.sqlite")},
            "publisher": {"mode": "sparkplug", "group": group, "node": node},
            "commands": {"sparkplug_writes": True},
            "devices": [
                {
                    "name": "press-7",
                    "machine": "s1/press/l1/press-7",
                    "endpoint": plc.endpoint,
                    "sampling_ms": 50,
                    "poll_ms": 100,
                    "tags": [
                        {"name": "speed", "node": "ns=2;s=Press.Speed"},
                        {
                            "name": "setpoint",
                            "node": "ns=2;s=Press.Setpoint",
                            "writable": True,
                            "min": 0,
                            "max": 100,
                        },
                    ],
                }
            ],
        }
    )
    agent = EdgeAgent(cfg)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=lambda: loop.run_until_complete(agent.run(stop)), daemon=True)
    runner.start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"host-{group}")
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    try:
        _until(lambda: agent.forwarder.stats.connected, what="edge connected")
        _until(lambda: all(t.health.connected for t in agent.tasks.values()), what="plc")
        time.sleep(0.5)  # the DCMD subscription is in place
        alias = agent.encoder.metrics["press-7"]["setpoint"][0]  # as announced in DBIRTH
        topic = f"spBv1.0/{group}/DCMD/{node}/press-7"
        payload = dcmd({"alias": alias, "value": 64.0}, {"alias": 9999, "value": 1.0})
        pub.publish(topic, payload, qos=1).wait_for_publish(5)
        _until(lambda: len(agent.commands_done) == 1, what="dcmd done")
        time.sleep(0.2)
    finally:
        stop.set()
        runner.join(20)
        pub.loop_stop()
        pub.disconnect()
        setpoint = plc.call(plc.nodes["setpoint"].read_value())
        plc.stop()
    assert setpoint == 64.0
    records = {r.tag: r for r in agent.commands_done[0]}
    assert records["setpoint"].result == "written" and records["setpoint"].user == "sparkplug"
    assert records["alias 9999"].result == "rejected"
    audit = EdgeBuffer(tmp_path / "b.sqlite", 1 << 20).audit()
    assert {a["tag"] if isinstance(a, dict) else a.tag for a in audit} == {"setpoint", "alias 9999"}
