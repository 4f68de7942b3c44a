"""Nothing acknowledged is lost: kill -9 of the ingest process mid-stream.

It runs against a private Mosquitto (with persistence) started by the fixture, so that
restarting it does not disturb the machine's shared broker.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import duckdb
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.broker import free_port
from tests.connect.test_mqtt import _wait

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
T0 = 1_700_000_000_000


class PrivateBroker:
    """A Mosquitto of our own on a free port, with persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nautosave_interval 1\nmax_inflight_messages 100\n"
            "max_queued_messages 100000\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves its persistence file on the way out
            self.proc.wait(timeout=10)


@pytest.fixture
def broker(tmp_path):
    if not os.path.exists(MOSQUITTO):
        message = "the mosquitto binary is needed for durability tests"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    b = PrivateBroker(tmp_path)
    b.start()
    yield b
    b.stop()


class CountingPublisher:
    """Publish QoS 1 messages one by one, as a device does: resend until the broker acks.

    ``acked`` holds the messages the broker acknowledged (PUBACK) — the ones that must not be lost.
    """

    def __init__(self, url: str, topic: str, n: int, pace_s: float = 0.0) -> None:
        self.port = int(url.rsplit(":", 1)[1])
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}"
        )
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        self.acked: set[int] = set()
        self.topic, self.n, self.pace_s = topic, n, pace_s
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for i in range(self.n):
            payload = json.dumps({"ts": T0 + i, "v": i})
            while True:
                info = self.client.publish(self.topic, payload, qos=1)
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=2)
                if info.is_published():
                    self.acked.add(i)
                    break
                time.sleep(0.05)  # broker away: resend the same message (same ts) later
            if self.pace_s:
                time.sleep(self.pace_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _stored(db: Path, enterprise: str) -> list[float]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT p.value FROM points p JOIN tags t ON t.id = p.tag_id "
            "WHERE t.enterprise = ? ORDER BY p.ts",
            [enterprise],
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def _serve(data_dir: Path, url: str, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indunet.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--mqtt-url",
            url,
            "--port",
            str(port),
            "--mqtt-client-id",
            "durable-ingest",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _health(port: int) -> dict | None:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
    except (httpx.HTTPError, ValueError):
        return None


def test_kill_9_of_the_ingest_loses_nothing_acknowledged(broker, tmp_path):
    enterprise = f"k{uuid.uuid4().hex[:8]}"
    data_dir, port = tmp_path / "data", free_port()
    server = _serve(data_dir, broker.url, port)
    try:
        assert _wait(lambda: (_health(port) or {}).get("mqtt", {}).get("subscribed"), timeout=30)
        pub = CountingPublisher(broker.url, f"indunet/v1/{enterprise}/s/a/l/m", 3000, pace_s=0.0005)
        pub.thread.start()
        assert _wait(lambda: ((_health(port) or {}).get("mqtt") or {}).get("acked", 0) > 300)
        server.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
        server.wait(timeout=10)
        pub.thread.join(timeout=60)
        assert _wait(lambda: len(pub.acked) == 3000, timeout=30)
        pub.close()
        server = _serve(data_dir, broker.url, port)  # the same persistent session resumes
        assert _wait(
            lambda: ((_health(port) or {}).get("mqtt") or {}).get("subscribed"), timeout=30
        )
        assert _wait(
            lambda: ((_health(port) or {}).get("mqtt") or {}).get("received", 0) > 0, timeout=30
        )
        time.sleep(1.0)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    values = _stored(data_dir / "indunet.duckdb", enterprise)
    assert values == [float(i) for i in sorted(pub.acked)]  # every acked message, once
