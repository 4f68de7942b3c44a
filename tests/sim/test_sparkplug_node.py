"""The simulated Sparkplug B edge node (pure), checked with another implementation (pysparkplug)
and with indunet's own host codec."""

from __future__ import annotations

import pysparkplug as sp
import pytest

from indunet.connect.codec.sparkplug import (
    REBIRTH_METRIC,
    SparkplugHost,
    SparkplugMapping,
    encode_rebirth,
)
from indunet.errors import DataError
from indunet.sim.live import PlantSim, build_plants
from indunet.sim.sparkplug_node import DEVICE_METRICS, SparkplugEdgeNode

T0 = 1_700_000_000_000


def _node_and_sim(machines: int = 3) -> tuple[SparkplugEdgeNode, PlantSim]:
    plants = build_plants(1, machines, seed=2)
    node = SparkplugEdgeNode("acme", "site-01", [m.path.machine for m in plants])
    return node, PlantSim(plants, seed=2)


def _values(sim: PlantSim, now_ms: int) -> dict[str, dict]:
    return {path.machine: payload for path, payload in sim.step(now_ms)}


def test_births_carry_bdseq_rebirth_metric_and_aliases():
    node, sim = _node_and_sim()
    will = node.connect(T0)
    assert will.topic == "spBv1.0/acme/NDEATH/site-01" and will.qos == 1
    death = sp.NDeath.decode(will.payload)
    values = _values(sim, T0)
    messages = node.births(values, T0)
    assert [m.topic for m in messages] == [
        "spBv1.0/acme/NBIRTH/site-01",
        "spBv1.0/acme/DBIRTH/site-01/m-001",
        "spBv1.0/acme/DBIRTH/site-01/m-002",
        "spBv1.0/acme/DBIRTH/site-01/m-003",
    ]
    nbirth = sp.NBirth.decode(messages[0].payload)
    assert nbirth.seq == 0
    by_name = {m.name: m for m in nbirth.metrics}
    assert by_name["bdSeq"].value == death.bd_seq_metric.value == 0  # matching bdSeq
    assert by_name[REBIRTH_METRIC].datatype == sp.DataType.BOOLEAN
    assert by_name[REBIRTH_METRIC].value is False
    aliases = set()
    for seq, message in enumerate(messages[1:], start=1):
        dbirth = sp.DBirth.decode(message.payload)
        assert dbirth.seq == seq
        assert [m.name for m in dbirth.metrics] == list(DEVICE_METRICS)
        device = message.topic.rsplit("/", 1)[1]
        assert {m.name: m.value for m in dbirth.metrics} == {
            k: values[device][k] for k in DEVICE_METRICS
        }
        aliases |= {m.alias for m in dbirth.metrics}
    assert len(aliases) == 3 * len(DEVICE_METRICS)  # unique within the node


def test_ddata_reports_changes_by_alias_with_wrapping_seq():
    node, sim = _node_and_sim(2)
    node.connect(T0)
    births = node.births(_values(sim, T0), T0)
    dbirths = {m.topic.rsplit("/", 1)[1]: sp.DBirth.decode(m.payload) for m in births[1:]}
    seqs = []
    for k in range(1, 200):
        for device, payload in _values(sim, T0 + k * 1000).items():
            message = node.data(device, payload)
            if message is None:
                continue
            data = sp.DData.decode(message.payload, birth=dbirths[device])
            seqs.append(data.seq)
            assert all(m.alias is not None for m in data.metrics)
            decoded = {m.name: m.value for m in data.metrics}  # names resolved from the birth
            assert decoded and all(payload[k] == v for k, v in decoded.items())
    assert len(seqs) > 300
    expected = [(3 + i) % 256 for i in range(len(seqs))]  # NBIRTH 0, DBIRTHs 1-2, then on
    assert seqs == expected
    assert 255 in seqs and seqs[seqs.index(255) + 1] == 0


def test_unchanged_values_send_nothing_and_unborn_devices_are_refused():
    node, sim = _node_and_sim(1)
    with pytest.raises(DataError, match="connect"):
        node.births({}, T0)
    node.connect(T0)
    values = _values(sim, T0)
    with pytest.raises(DataError, match="no DBIRTH"):
        node.data("m-001", values["m-001"])
    node.births(values, T0)
    assert node.data("m-001", values["m-001"]) is None
    with pytest.raises(DataError, match="duplicate"):
        SparkplugEdgeNode("g", "n", ["a", "a"])
    with pytest.raises(DataError, match="forbidden"):
        SparkplugEdgeNode("g/x", "n", ["a"])


def test_rebirth_command_resends_births_with_the_same_bdseq_and_a_new_session_moves_it():
    node, sim = _node_and_sim(2)
    node.connect(T0)
    values = _values(sim, T0)
    node.births(values, T0)
    node.data("m-001", _values(sim, T0 + 1000)["m-001"])
    again = node.command(encode_rebirth(T0 + 2000), values, T0 + 2000)
    assert [m.topic.split("/")[2] for m in again] == ["NBIRTH", "DBIRTH", "DBIRTH"]
    nbirth = sp.NBirth.decode(again[0].payload)
    assert nbirth.seq == 0
    assert {m.name: m.value for m in nbirth.metrics}["bdSeq"] == 0
    assert node.command(b"", values, T0) == []  # an empty command asks for nothing
    with pytest.raises(DataError, match="NCMD"):
        node.command(b"\xff\xff\xff", values, T0)
    # a new MQTT session (reconnect): the next bdSeq, in both its will and its NBIRTH
    will = node.connect(T0 + 3000)
    assert sp.NDeath.decode(will.payload).bd_seq_metric.value == 1
    nbirth = sp.NBirth.decode(node.births(values, T0)[0].payload)
    assert {m.name: m.value for m in nbirth.metrics}["bdSeq"] == 1


def test_bdseq_wraps_after_255():
    node = SparkplugEdgeNode("g", "n", ["d"], bd_seq=254)
    assert sp.NDeath.decode(node.connect(T0).payload).bd_seq_metric.value == 255
    assert sp.NDeath.decode(node.connect(T0).payload).bd_seq_metric.value == 0


def test_indunet_host_stores_every_simulated_value_without_gaps():
    node, sim = _node_and_sim(3)
    host = SparkplugHost(SparkplugMapping(enterprise="e"))
    node.connect(T0)
    stored: dict[str, float | str] = {}
    expected: dict[str, float | str] = {}

    def feed(message) -> None:
        outcome = host.handle(message.topic, message.payload)
        assert not outcome.errors and outcome.rebirth is None
        for tag, _ts, value in outcome.all_points():
            stored[tag] = value.value if value.text is None else value.text

    values = _values(sim, T0)
    for m in node.births(values, T0):
        feed(m)
    for k in range(1, 400):  # past a seq wrap
        values = _values(sim, T0 + k * 1000)
        for device, payload in values.items():
            message = node.data(device, payload)
            if message:
                feed(message)
    for device, payload in values.items():
        for name in DEVICE_METRICS:
            expected[f"acme/site-01/devices/{device}/{name}"] = payload[name]
    assert stored == expected
