"""The broker goes away mid-stream: nothing the broker acknowledged to the publisher is lost.

A paho publisher sends a QoS 1 stream, one unique timestamp per message, to an `MqttIngest`
with a persistent session; the broker is stopped and started again in the middle. Counted are
only the messages whose PUBACK the publisher received with a success reason code; each of them
must be in the historian exactly once (the historian is idempotent on (tag, ts)).

Mosquitto runs privately on a free port with its own config and persistence in ``tmp_path``
so that stopping it does not disturb the machine's shared broker.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.broker import EmbeddedBroker, free_port
from indunet.connect.mqtt import MqttIngest, parse_mqtt_url
from indunet.store import open_historian
from tests.connect.test_mqtt import _wait

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
T0 = 1_700_000_000_000


class PrivateMosquitto:
    """A Mosquitto of our own with persistence; stop() is a clean SIGTERM shutdown."""

    def __init__(self, workdir: Path, **options: object) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        settings = {
            # run as root, mosquitto drops to the user "mosquitto", which cannot write its
            # persistence file into our tmp_path: it then loses every queued message on restart
            "user": getpass.getuser(),
            "allow_anonymous": "true",
            "persistence": "true",
            "persistence_location": f"{workdir}/",
            "autosave_interval": 1,
            # the default (1000) silently drops what is queued beyond it for an offline client
            "max_queued_messages": 100_000,
            **options,
        }
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n" + "".join(f"{k} {v}\n" for k, v in settings.items())
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf), "-v"], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"private mosquitto did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # writes mosquitto.db on the way out
            self.proc.wait(timeout=10)


@pytest.fixture
def mosquitto(tmp_path):
    if not os.path.exists(MOSQUITTO):
        message = "the mosquitto binary is needed for broker failure tests"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    (tmp_path / "broker").mkdir()
    b = PrivateMosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


class AckCountingPublisher:
    """Publish ``n`` QoS 1 messages in order and record each PUBACK's reason code.

    paho keeps QoS 1 messages published while the broker is away (its queue is unbounded
    by default) and sends them again after it reconnects; `acked` holds the indexes of the
    messages the broker acknowledged with a success code, the ones that must not be lost.
    """

    def __init__(self, url: str, topic: str, n: int, *, pace_s: float, mqtt_version: int) -> None:
        host, port, _tls, user, password = parse_mqtt_url(url)
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if mqtt_version == 5 else paho.MQTTv311,
        )
        if user:
            self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.max_inflight_messages_set(50)
        self.reasons: dict[int, list] = {}  # mid -> reason codes of its PUBACKs
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()
        self.topic, self.n, self.pace_s = topic, n, pace_s
        self.mids: list[int] = []
        self.published = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.reasons.setdefault(mid, []).append(reason_code)

    def _run(self) -> None:
        for i in range(self.n):
            info = self.client.publish(self.topic, json.dumps({"ts": T0 + i, "v": i}), qos=1)
            assert info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN), info.rc
            self.mids.append(info.mid)
            time.sleep(self.pace_s)
        self.published.set()

    @property
    def acked(self) -> set[int]:
        """Return the indexes of the messages acknowledged with success."""
        return {
            i
            for i, mid in enumerate(self.mids)
            if any(not rc.is_failure for rc in self.reasons.get(mid, []))
        }

    @property
    def refused(self) -> set[int]:
        """Return the indexes of the messages the broker answered with a failure code."""
        return {
            i
            for i, mid in enumerate(self.mids)
            if any(rc.is_failure for rc in self.reasons.get(mid, []))
        }

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _stored(historian, enterprise: str, tag: str) -> list[float]:
    if not any(t.path == tag for t in historian.tags(enterprise)):
        return []
    table = historian.series(enterprise, tag, T0, T0 + 10**7)
    return table.column("value").to_pylist()


def _stream_through_a_broker_restart(
    historian, url: str, restart, *, n: int, mqtt_version: int
) -> tuple[AckCountingPublisher, MqttIngest, str, str]:
    enterprise = f"b{uuid.uuid4().hex[:8]}"
    tag = "s/a/l/m/v"
    ingest = MqttIngest(
        historian,
        url,
        client_id=f"ing-{enterprise}",
        flush_s=0.05,
        session_expiry_s=600,
        mqtt_version=mqtt_version,
    )
    ingest.start()
    assert _wait(lambda: ingest.stats.subscribed)
    pub = AckCountingPublisher(
        url, f"indunet/v1/{enterprise}/s/a/l/m", n, pace_s=0.0005, mqtt_version=mqtt_version
    )
    pub.thread.start()
    assert _wait(lambda: ingest.stats.acked > n // 5), ingest.stats
    restart()  # mid-stream
    assert pub.published.wait(60)
    assert _wait(lambda: len(pub.acked) == n, timeout=30), (len(pub.acked), pub.refused)
    pub.close()
    return pub, ingest, enterprise, tag


def test_mosquitto_stop_and_restart_loses_nothing_acknowledged(mosquitto, settings_factory):
    historian = open_historian(settings_factory())
    n = 3000

    def restart() -> None:
        mosquitto.stop()
        time.sleep(1.0)  # the publisher and the ingest both see the broker gone
        mosquitto.start()

    pub, ingest, enterprise, tag = _stream_through_a_broker_restart(
        historian, mosquitto.url, restart, n=n, mqtt_version=5
    )
    try:
        assert _wait(lambda: len(_stored(historian, enterprise, tag)) >= n, timeout=30), (
            len(_stored(historian, enterprise, tag)),
            ingest.stats,
        )
        time.sleep(0.5)  # let redeliveries, if any, arrive too
    finally:
        ingest.stop()
    values = _stored(historian, enterprise, tag)
    assert values == [float(i) for i in sorted(pub.acked)]  # every acked message, once
    assert not pub.refused
    assert ingest.stats.received >= n
    assert historian.dead_letters(enterprise) == []
    historian.close()


def test_mosquitto_logged_no_persistence_error(mosquitto, settings_factory):
    """Guard the cause of the loss seen before: a broker that cannot save its database."""
    mosquitto.stop()
    mosquitto.start()
    log = mosquitto.log.read_text(errors="replace")
    assert "Saving in-memory database" in log
    assert "Error saving" not in log, log[-2000:]
    assert (mosquitto.conf.parent / "mosquitto.db").exists()


#: messages amqtt may hold in flight to a subscriber when it is cut off
IN_FLIGHT = 20


def test_amqtt_keeps_the_session_of_an_ingest_that_went_away(settings_factory):
    """The embedded amqtt broker queues a stream for the persistent session of an ingest that left.

    amqtt drops QoS 1 messages for sessions its stock plugin marks anonymous; `EmbeddedBroker`
    uses `LocalClientsAuth` instead, so clients without a user name keep their session. amqtt
    keeps sessions in memory only (`Broker.start()` clears them), so a restart of amqtt itself
    loses what it holds; here the ingest goes away instead, mid-stream, like a crash.
    """
    broker = EmbeddedBroker()
    broker.start()
    url = broker.url
    historian = open_historian(settings_factory())
    n = 1500
    client_id = f"ing-{uuid.uuid4().hex[:8]}"
    replaced: list[MqttIngest] = []

    def make() -> MqttIngest:
        ingest = MqttIngest(historian, url, client_id=client_id, flush_s=0.05, mqtt_version=4)
        replaced.append(ingest)
        return ingest

    try:
        first = make()
        first.start()
        assert _wait(lambda: first.stats.subscribed)
        enterprise = f"a{uuid.uuid4().hex[:8]}"
        tag = "s/a/l/m/v"
        pub = AckCountingPublisher(
            broker.url,
            f"indunet/v1/{enterprise}/s/a/l/m",
            n,
            pace_s=0.001,
            mqtt_version=4,
        )
        pub.thread.start()
        assert _wait(lambda: first.stats.acked > n // 5), first.stats
        first.abort()  # no acknowledgements, no DISCONNECT
        time.sleep(0.5)  # the stream goes on without it
        second = make()
        second.start()
        assert pub.published.wait(60)
        assert _wait(lambda: len(pub.acked) == n, timeout=30), len(pub.acked)
        pub.close()
        # amqtt 0.12.1 drops a QoS 1 message whose PUBACK times out on a session that was cut
        # (its in-flight window at the abort) instead of sending it again: a few may be lost,
        # never more than that window, and nothing is doubled or changed (docs/mqtt.md)
        assert _wait(lambda: len(_stored(historian, enterprise, tag)) >= n - IN_FLIGHT, 30), (
            len(_stored(historian, enterprise, tag)),
            second.stats,
        )
        time.sleep(0.3)
        values = _stored(historian, enterprise, tag)
        assert len(values) == len(set(values)) >= n - IN_FLIGHT
        assert set(values) <= {float(i) for i in pub.acked}
        assert values[-100:] == [float(i) for i in sorted(pub.acked)][-100:]  # after the abort
        assert not pub.refused
        assert second.stats.received > 0  # the second ingest got the rest from the session
    finally:
        for ingest in replaced:
            ingest.stop()
        broker.stop()
        historian.close()
