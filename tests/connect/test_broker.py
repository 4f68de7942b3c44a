"""The embedded amqtt broker with the ingest (MQTT 3.1.1) and the simulator publishing to it."""

from __future__ import annotations

import pytest

from indunet.connect.broker import EmbeddedBroker
from indunet.connect.mqtt import MqttIngest
from indunet.sim.live import PlantSim, build_plants
from indunet.sim.publish import SimPublisher
from indunet.store import open_historian
from tests.connect.test_mqtt import _wait


def test_simulated_plant_flows_through_the_embedded_broker_into_the_historian(settings_factory):
    broker = EmbeddedBroker()
    broker.start()
    historian = open_historian(settings_factory())
    ingest = MqttIngest(historian, broker.url, client_id="t-ingest", mqtt_version=4, flush_s=0.05)
    publisher = SimPublisher(
        PlantSim(build_plants(2, 4, seed=1), seed=1), broker.url, "sim", rate=20
    )
    try:
        ingest.start()
        assert _wait(lambda: ingest.stats.subscribed)
        publisher.start()
        assert _wait(lambda: publisher.sent >= 40)
        publisher.stop()
        assert _wait(lambda: ingest.stats.acked >= publisher.sent), ingest.stats
    finally:
        publisher.stop()
        ingest.stop()
        broker.stop()
    tags = historian.tags("sim")
    names = sorted({t.path.rsplit("/", 1)[1] for t in tags})
    assert names == [
        "energy_kwh",
        "good_total",
        "parts_total",
        "power_kw",
        "scrap_total",
        "state",
        "temp_c",
    ]
    assert len(tags) == 4 * 7  # seven tags per machine
    power = next(t.path for t in tags if t.path.endswith("/power_kw"))
    n = historian.series("sim", power, 0, 2**62).num_rows
    assert n == publisher.sent // 4  # every payload of that machine stored
    assert historian.tag("sim", power.replace("power_kw", "state")).data_type == "string"
    historian.close()


def test_the_subscription_table_survives_changes_during_a_broadcast_walk() -> None:
    """amqtt walks the table and awaits inside the walk; a subscribe or a leave meanwhile
    changed a plain dict under it ("dictionary changed size during iteration": the message was
    not sent to the rest). The walk now runs over a snapshot taken when it starts."""
    from indunet.connect.broker import SubscriptionTable

    plain = {"a/#": [("s1", 1)], "b/#": [("s2", 1)]}
    with pytest.raises(RuntimeError, match="changed size"):
        for k, _subs in plain.items():
            plain[k + "/x"] = []  # what a subscribe does mid-walk
    table = SubscriptionTable({"a/#": [("s1", 1)], "b/#": [("s2", 1)], "c/#": [("s3", 0)]})
    seen = []
    for k, subs in table.items():
        seen.append((k, subs))
        table["new/#"] = [("s4", 1)]  # a subscribe
        table.pop("c/#", None)  # the last subscriber of c/# leaves
        table["a/#"].append(("s5", 1))  # another subscriber of a/#
    assert seen == [("a/#", [("s1", 1)]), ("b/#", [("s2", 1)]), ("c/#", [("s3", 0)])]
    walked = []
    for k in table:  # amqtt's retained-message walk on reconnect
        walked.append(k)
        table.pop(k)
    assert walked == ["a/#", "b/#", "new/#"] and table == {}


def test_the_embedded_broker_uses_the_safe_table() -> None:
    from indunet.connect.broker import SubscriptionTable

    broker = EmbeddedBroker()
    broker.start()
    try:
        assert isinstance(broker._broker._subscriptions, SubscriptionTable)
    finally:
        broker.stop()
