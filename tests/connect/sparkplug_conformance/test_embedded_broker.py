"""The host's STATE lifecycle on the embedded broker (amqtt, MQTT 3.1.1) used by `indunet demo`.

The assertion tests run on Mosquitto; amqtt differs (3.1.1 only, its own will and retain
handling), so the STATE rules that depend on the broker are checked on it too.
"""

from __future__ import annotations

import json

import pytest

from indunet.connect.broker import EmbeddedBroker
from indunet.connect.codec import mqtt_packets as mp
from tests.connect.sparkplug_conformance.conftest import start_host
from tests.connect.sparkplug_conformance.peers import wait


@pytest.fixture(scope="module")
def embedded():
    broker = EmbeddedBroker()
    broker.start()
    yield broker
    broker.stop()


def test_state_birth_will_and_reassertion_on_the_embedded_broker(embedded, sp_historian):
    host = start_host(sp_historian, broker=embedded.url, version=4, observer_v5=False)
    try:
        connect = host.connect()
        assert connect.version == 4 and connect.clean
        birth = host.birth()
        assert birth.qos == 1 and birth.retain
        will = json.loads(connect.will_payload or b"")
        assert json.loads(birth.payload) == {"online": True, "timestamp": will["timestamp"]}
        assert host.proxy.first(mp.SUBACK, up=False).n < birth.n
        # someone says the host is offline: it says online again, same timestamp
        host.observer.publish(
            host.state_topic, json.dumps({"online": False, "timestamp": 1}).encode()
        )
        assert wait(lambda: len(host.states(1)) >= 2)
        assert json.loads(host.states(1)[1].payload) == json.loads(birth.payload)
        # a lost connection: amqtt publishes the will, the host comes back with a new session
        host.proxy.drop()
        seen = lambda: [json.loads(p) for p, _ in host.observer.on(host.state_topic) if p]  # noqa: E731
        assert wait(lambda: will in seen())
        assert wait(lambda: len(host.proxy.connects()) >= 2 and bool(host.states(2)))
        assert (
            json.loads(host.birth(2).payload)["timestamp"]
            == json.loads(host.connect(2).will_payload or b"")["timestamp"]
        )
    finally:
        host.stop()
