"""End to end: meter (Modbus) + PLC (OPC UA) -> edge agent -> Mosquitto -> MqttIngest -> historian,
and commands back to the PLC: permitted, out of limits, wrong role, not writable - all audited."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.mqtt import MqttIngest
from indunet.edge.agent import EdgeAgent
from indunet.edge.commands import sign_command
from indunet.edge.config import parse_edge_config
from indunet.edge.publish import command_topic
from indunet.store import open_historian
from tests.edge.servers import ModbusSim, OpcuaSim

SECRET = "s3cret-shared-with-the-platform"


def _until(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time: {what}")
        time.sleep(0.05)


def test_meter_and_plc_reach_the_historian_and_writes_are_audited(
    tmp_path: Path, settings_factory
) -> None:
    ent = f"e{uuid.uuid4().hex[:10]}"
    meter = ModbusSim(units=(1,)).start()
    meter.set(1, "ir", 0x0C, list(struct.unpack(">HH", struct.pack(">f", 1500.0))))
    plc = OpcuaSim(count=10).start()
    cfg = parse_edge_config(
        {
            "broker": {
                "url": "mqtt://127.0.0.1:1883",
                "client_id": f"edge-{ent}",
                "enterprise": ent,
            },
            "buffer": {"path": str(tmp_path / "b.sqlite")},
            "commands": {"secret": SECRET, "operators": {"alice": ["s1/press/l1/press-7"]}},
            "devices": [
                {
                    "machine": "s1/press/l1/meter-7",
                    "profile": "eastron-sdm120",
                    "host": "127.0.0.1",
                    "port": meter.port,
                    "poll_ms": 100,
                },
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
                },
            ],
        }
    )
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        "mqtt://127.0.0.1:1883",
        client_id=f"ing-{ent}",
        session_expiry_s=60,
        flush_s=0.05,
        sparkplug_groups=[],
    )
    ingest.start()
    agent = EdgeAgent(cfg)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    import threading

    runner = threading.Thread(target=lambda: loop.run_until_complete(agent.run(stop)), daemon=True)
    runner.start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"platform-{ent}")
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    try:
        _until(lambda: agent.forwarder.stats.connected and ingest.stats.subscribed)
        _until(lambda: all(t.health.connected for t in agent.tasks.values()))
        time.sleep(0.5)  # the command subscription is in place
        topic = command_topic(ent, "s1/press/l1/press-7")
        exp = int(time.time() * 1000) + 30_000
        good = {
            "id": "c1",
            "tag": "setpoint",
            "value": 72.5,
            "user": "alice",
            "role": "operator",
            "exp": exp,
            "machine": "s1/press/l1/press-7",
        }
        commands = [
            sign_command(SECRET, good),
            sign_command(SECRET, {**good, "id": "c2", "value": 150.0}),  # above max
            sign_command(SECRET, {**good, "id": "c3", "role": "viewer"}),  # wrong role
            sign_command(SECRET, {**good, "id": "c4", "tag": "speed"}),  # not writable
            sign_command(SECRET, {**good, "id": "c5", "user": "mallory"}),  # not on the list
            {**sign_command(SECRET, good), "id": "c6"},  # signature no longer matches
            sign_command(SECRET, good),  # replay of c1
        ]
        for c in commands:
            pub.publish(topic, orjson.dumps(c), qos=1).wait_for_publish(5)
        _until(lambda: len(agent.commands_done) == len(commands), what="commands")
        _until(
            lambda: historian.count(ent) > 20 and agent.buffer.stats().rows == 0,
            what=f"hist {historian.count(ent)} {agent.buffer.stats()}",
        )
        stop.set()
        runner.join(20)
        _until(
            lambda: ingest.stats.acked >= agent.forwarder.stats.acked - len(commands) - 5,
            what="acks",
        )
        time.sleep(0.5)
    finally:
        stop.set()
        pub.loop_stop()
        pub.disconnect()
        ingest.stop()
        meter.stop()
        plc_setpoint = plc.call(plc.nodes["setpoint"].read_value())
        plc.stop()
    assert plc_setpoint == 72.5  # the permitted write reached the PLC
    by_id = {r.command_id: r for r in agent.commands_done}
    # c1 and its replay share an id and may finish in either order: one written, one rejected
    c1 = sorted((r for r in agent.commands_done if r.command_id == "c1"), key=lambda r: r.result)
    assert [r.result for r in c1] == ["rejected", "written"]
    assert c1[1].old == "50.0" and c1[1].new == "72.5"
    assert "above its maximum" in by_id["c2"].detail
    assert "role 'viewer'" in by_id["c3"].detail
    assert "not writable" in by_id["c4"].detail
    assert "not an operator" in by_id["c5"].detail
    assert "signature" in by_id["c6"].detail
    results = [r.result for r in agent.commands_done]
    assert results.count("written") == 1 and results.count("rejected") == 6  # c1 replay too
    from indunet.edge.buffer import EdgeBuffer

    audit = EdgeBuffer(tmp_path / "b.sqlite", 1 << 20).audit()
    assert len(audit) == len(commands)  # an audit record for every command
    power = historian.series(ent, "s1/press/l1/meter-7/power_w", 0, 2**62)
    assert power.num_rows > 3 and set(power.column("value").to_pylist()) == {1500.0}
    speed = historian.series(ent, "s1/press/l1/press-7/speed", 0, 2**62)
    assert speed.num_rows >= 1
    health = historian.series(ent, "s1/press/l1/press-7/edge_connected", 0, 2**62)
    assert health.num_rows >= 1
    # the platform stored the edge's audit records too (GET /api/v1/commands reads them)
    from indunet.plant.command_log import CommandLog

    stored = CommandLog(historian).recent(ent, "s1/press/l1/press-7")
    assert {r["command_id"] for r in stored} == {"c1", "c2", "c3", "c4", "c5", "c6"}
    assert [(r["user_name"], r["old"], r["new"]) for r in stored if r["result"] == "written"] == [
        ("alice", "50.0", "72.5")
    ]
    historian.close()
