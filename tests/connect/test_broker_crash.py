"""A kill -9 of the broker mid-stream loses nothing it acknowledged, with `indunet broker config`.

A private Mosquitto runs on a free port with the configuration `indunet broker config` writes
(persistence in ``tmp_path``). A paho publisher streams QoS 1 messages, one unique timestamp
each, to an `MqttIngest` with a persistent session; the broker is killed with SIGKILL in the
middle (no chance to save anything on the way out) and started again on the same files. Every
message the publisher got a successful PUBACK for must be in the historian exactly once.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indunet.cli import app
from indunet.connect.broker import free_port
from indunet.connect.mosquitto import MosquittoSettings, render_mosquitto_conf
from indunet.connect.mqtt import MqttIngest
from indunet.errors import ConfigError
from indunet.store import open_historian
from tests.connect.test_broker_failures import MOSQUITTO, T0, AckCountingPublisher, _stored
from tests.connect.test_mqtt import _wait


class CrashableMosquitto:
    """A Mosquitto of our own, configured by `render_mosquitto_conf`, that we can kill -9."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            render_mosquitto_conf(
                MosquittoSettings(
                    persistence_dir=workdir,
                    port=self.port,
                    bind="127.0.0.1",
                    allow_anonymous=True,
                    # as root, mosquitto would drop to the user "mosquitto", who cannot write here
                    run_as_user=getpass.getuser(),
                )
            )
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"private mosquitto did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: the broker saves nothing on the way out."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


STOCK_AUTOSAVE = "autosave_interval 1800\n"  # Mosquitto's default: every 30 minutes


@pytest.fixture
def crashable(tmp_path, request):
    if not os.path.exists(MOSQUITTO):
        message = "the mosquitto binary is needed for the broker crash test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    (tmp_path / "broker").mkdir()
    b = CrashableMosquitto(tmp_path / "broker")
    if getattr(request, "param", "indunet") == "stock autosave":
        text = b.conf.read_text()
        b.conf.write_text(
            text.replace("autosave_on_changes true\nautosave_interval 1\n", STOCK_AUTOSAVE)
        )
        assert STOCK_AUTOSAVE in b.conf.read_text()
    b.start()
    yield b
    b.kill()


def _stream_through_a_broker_crash(
    crashable, historian, n: int, settle_s: float = 10
) -> tuple[set, set, list]:
    """Return (acknowledged, acknowledged before the kill, stored values)."""
    enterprise = f"k{uuid.uuid4().hex[:8]}"
    tag = "s/a/l/m/v"
    ingest = MqttIngest(
        historian,
        crashable.url,
        client_id=f"ing-{enterprise}",
        flush_s=0.05,
        session_expiry_s=600,
        mqtt_version=5,
    )
    ingest.start()
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        pub = AckCountingPublisher(
            crashable.url, f"indunet/v1/{enterprise}/s/a/l/m", n, pace_s=0.0005, mqtt_version=5
        )
        pub.thread.start()
        # kill while the stream runs and the ingest holds unacknowledged messages
        assert _wait(lambda: ingest.stats.acked > n // 4), ingest.stats
        crashable.kill()
        time.sleep(0.5)  # the publisher and the ingest both see the broker gone
        acked_before = pub.acked  # no PUBACK can arrive while the broker is down
        crashable.start()
        assert pub.published.wait(60)
        assert _wait(lambda: len(pub.acked) == n, timeout=30), (len(pub.acked), pub.refused)
        assert not pub.refused
        pub.close()
        # (one message short: the one a kill may lose)
        _wait(lambda: len(_stored(historian, enterprise, tag)) >= n - 1, timeout=settle_s)
        time.sleep(0.5)  # let redeliveries, if any, arrive too
    finally:
        ingest.stop()
    assert 0 < len(acked_before) < n  # the crash was mid-stream
    assert historian.dead_letters(enterprise) == []
    return pub.acked, acked_before, _stored(historian, enterprise, tag)


def test_kill_9_of_the_broker_loses_at_most_its_last_acknowledgement(crashable, settings_factory):
    """With `indunet broker config`, a kill -9 loses at most the last message it acknowledged.

    Mosquitto 2.0 sends the PUBACK while handling a PUBLISH and saves its database at the end of
    that pass of its event loop (it reads one packet per client per pass). A kill landing between
    the two loses what that pass acknowledged: at most one message per publishing connection,
    the last one acknowledged before the kill. Every earlier one must be stored, exactly once.
    """
    historian = open_historian(settings_factory())
    acked, acked_before, values = _stream_through_a_broker_crash(crashable, historian, 4000)
    historian.close()
    assert len(values) == len(set(values))  # exactly once
    missing = acked - {int(v) for v in values}
    assert missing <= {max(acked_before)}, (
        f"{len(missing)} acknowledged messages lost, first {sorted(missing)[:10]}; "
        f"the last one acknowledged before the kill was {max(acked_before)}"
    )
    assert {int(v) for v in values} <= acked  # nothing invented


@pytest.mark.parametrize("crashable", ["stock autosave"], indirect=True)
def test_kill_9_of_a_broker_with_stock_autosave_loses_acknowledged_messages(
    crashable, settings_factory
):
    """The control: with Mosquitto's default autosave the same crash loses many messages."""
    historian = open_historian(settings_factory())
    acked, _before, values = _stream_through_a_broker_crash(crashable, historian, 4000, 2)
    historian.close()
    lost = len(acked - {int(v) for v in values})
    assert lost > 10, lost


def test_broker_config_writes_an_at_least_once_mosquitto_conf(tmp_path):
    out = tmp_path / "mosquitto.conf"
    result = CliRunner().invoke(
        app,
        [
            "broker",
            "config",
            "--persistence-dir",
            str(tmp_path / "db"),
            "--out",
            str(out),
            "--password-file",
            "/etc/mosquitto/passwd",
            "--max-queued-messages",
            "5000",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = set(out.read_text().splitlines())
    for line in (
        "persistence true",
        f"persistence_location {tmp_path / 'db'}/",
        "autosave_on_changes true",
        "autosave_interval 1",
        "max_queued_messages 5000",
        "allow_anonymous false",
        "password_file /etc/mosquitto/passwd",
        "persistent_client_expiration 14d",
    ):
        assert line in lines, line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--allow-anonymous", "--port", "0"], "port"),
        (["--allow-anonymous", "--port", "70000"], "port"),
        (["--allow-anonymous", "--max-queued-messages", "-1"], "max_queued_messages"),
        (["--allow-anonymous", "--session-expiry", "forever"], "persistent_client_expiration"),
        (["--allow-anonymous", "--session-expiry", "0d"], "persistent_client_expiration"),
        ([], "password file"),
    ],
)
def test_broker_config_refuses_bad_settings_with_exit_2(args, named):
    result = CliRunner().invoke(app, ["broker", "config", *args])
    assert result.exit_code == 2
    assert named in result.output


def test_settings_check_names_the_field():
    with pytest.raises(ConfigError, match="max_inflight_messages"):
        MosquittoSettings(Path("/x"), allow_anonymous=True, max_inflight_messages=-5).check()


def _edge_forwarder(url: str, enterprise: str, tmp_path: Path, resend_s: float):
    from indunet.edge.buffer import EdgeBuffer
    from indunet.edge.config import parse_edge_config
    from indunet.edge.publish import Forwarder, JsonEncoder

    cfg = parse_edge_config(
        {
            "broker": {
                "url": url,
                "client_id": f"edge-{enterprise}",
                "reconnect_s": [0.1, 0.3],
                "enterprise": enterprise,
            },
            "publisher": {"max_inflight": 50, "resend_s": resend_s},
            "buffer": {"path": str(tmp_path / "edge.sqlite")},
            "devices": [
                {
                    "name": "m",
                    "machine": "s/a/l/m",
                    "host": "h",
                    "tags": [{"name": "v", "address": 0}],
                }
            ],
        }
    )
    buf = EdgeBuffer(cfg.buffer.path, 1 << 24)
    return buf, Forwarder(cfg.broker, cfg.publisher, buf, JsonEncoder(enterprise, {"m": "s/a/l/m"}))


def test_kill_9_of_the_broker_loses_nothing_the_edge_agent_sent(
    crashable, settings_factory, tmp_path
):
    """The edge agent closes the last window: after a lost connection it sends again what the
    broker acknowledged in the seconds before (`resend_s`); duplicates are harmless."""
    import orjson

    historian = open_historian(settings_factory())
    n = 4000
    enterprise = f"g{uuid.uuid4().hex[:8]}"
    ingest = MqttIngest(
        historian,
        crashable.url,
        client_id=f"ing-{enterprise}",
        flush_s=0.05,
        session_expiry_s=600,
        mqtt_version=5,
    )
    ingest.start()
    buf, forwarder = _edge_forwarder(crashable.url, enterprise, tmp_path, resend_s=2.0)

    def feed() -> None:  # a device read every 0.5 ms, each reading at its own time
        for i in range(n):
            buf.put([("data", "m", T0 + i, orjson.dumps({"v": i}))])
            buf.wakeup.set()
            time.sleep(0.0005)

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        forwarder.start()
        feeder.start()
        assert _wait(lambda: ingest.stats.acked > n // 4), ingest.stats
        crashable.kill()
        time.sleep(0.5)
        crashable.start()
        feeder.join(60)
        assert _wait(lambda: buf.stats().rows == 0, timeout=30), buf.stats()
        _wait(lambda: len(_stored(historian, enterprise, "s/a/l/m/v")) >= n, timeout=15)
    finally:
        forwarder.stop()
        ingest.stop()
    values = _stored(historian, enterprise, "s/a/l/m/v")
    historian.close()
    missing = sorted(set(range(n)) - {int(v) for v in values})
    assert missing == [], f"{len(missing)} readings lost: {missing[:10]}"
    assert values == [float(i) for i in range(n)]  # each once, in time order
    assert forwarder.stats.resent > 0  # the recently acknowledged rows went out again
