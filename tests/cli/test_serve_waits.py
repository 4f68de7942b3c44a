"""`indunet serve --db postgresql://…` waits for a database that is not up yet, and after an
outage writes again within 2 s of its return; `/health` and `/ready` say so meanwhile.

The database's "up" and "down" are a TCP proxy of our own in front of the machine's shared
PostgreSQL (which must never be stopped): down = nothing listens and every proxied connection
is cut, up = the proxy listens again on the same port.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.broker import free_port
from tests.conftest import PG_URL
from tests.connect.test_broker_failures import MOSQUITTO, PrivateMosquitto

T0 = 1_700_000_000_000


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target``; `down()` stops listening and cuts every link."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.port = free_port()
        self.target = target
        self._listener: socket.socket | None = None
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            links, self._links = self._links, []
        for s in links:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._links += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.HTTPError:
        return None


def _until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _stored(schema: str, enterprise: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as con:
        exists = con.execute("SELECT to_regclass(%s)", [f"{schema}.points"]).fetchone()[0]
        if exists is None:
            return 0
        return con.execute(
            f"SELECT count(*) FROM {schema}.points p JOIN {schema}.tags t ON t.id = p.tag_id "
            "WHERE t.enterprise = %s",
            [enterprise],
        ).fetchone()[0]


def _publish(url_port: int, topic: str, first: int, count: int) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    infos = [
        client.publish(topic, json.dumps({"ts": T0 + i, "v": i}), qos=1)
        for i in range(first, first + count)
    ]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def private_broker(tmp_path):
    if not os.path.exists(MOSQUITTO):
        pytest.skip("the mosquitto binary is needed")
    (tmp_path / "broker").mkdir()
    b = PrivateMosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def test_serve_waits_for_postgresql_and_resumes_within_2_s_of_its_return(
    pg_schema, private_broker, tmp_path
):
    target = urlsplit(PG_URL)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 5432))
    db = f"postgresql://{target.username}@127.0.0.1:{proxy.port}{target.path}"
    http = free_port()
    env = {**os.environ, "INDUNET_PG_SCHEMA": pg_schema, "INDUNET_DATA_DIR": str(tmp_path)}
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indunet.cli",
            "serve",
            "--db",
            db,
            "--port",
            str(http),
            "--mqtt-url",
            private_broker.url,
            "--mqtt-client-id",
            f"ing-{pg_schema}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    enterprise = f"w{uuid.uuid4().hex[:8]}"
    topic = f"indunet/v1/{enterprise}/s/a/l/m"
    try:
        # 1. the database is not up: serve runs, /ready is 503, /health says why
        assert _until(lambda: _get(http, "/health") is not None, 30), Path(log.name).read_text()
        assert serve.poll() is None
        ready = _get(http, "/ready")
        assert ready is not None and ready.status_code == 503
        historian = _get(http, "/health").json()["dependencies"]["historian"]
        assert historian["state"] == "down"
        assert historian["last_error"] and historian["last_error_ms"] > 0
        # 2. it comes up: serve is ready without a restart, the error is cleared
        proxy.up()
        assert _until(lambda: _get(http, "/ready").status_code == 200, 10)
        historian = _get(http, "/health").json()["dependencies"]["historian"]
        assert historian["state"] == "up" and historian["last_error"] is None
        _publish(private_broker.port, topic, 0, 200)
        assert _until(lambda: _stored(pg_schema, enterprise) == 200, 10)
        # 3. an outage: messages wait with the broker, /health shows the error
        proxy.down()
        _publish(private_broker.port, topic, 200, 200)
        assert _until(
            lambda: _get(http, "/health").json()["dependencies"]["historian"]["state"] == "down",
            10,
        )
        time.sleep(3)  # long enough for a doubling backoff to have grown past 2 s
        assert _stored(pg_schema, enterprise) == 200
        # 4. back: everything is written within 2 s, the error cleared
        proxy.up()
        back = time.monotonic()
        assert _until(lambda: _stored(pg_schema, enterprise) == 400, 5, step=0.02)
        resumed_s = time.monotonic() - back
        assert resumed_s <= 2.0, f"writing resumed {resumed_s:.2f} s after the database"
        health = _get(http, "/health").json()
        assert health["dependencies"]["historian"]["state"] == "up"
        assert health["dependencies"]["historian"]["last_error"] is None
        assert health["mqtt"]["last_error"] is None
        assert _get(http, "/ready").status_code == 200
    finally:
        serve.terminate()
        serve.wait(15)
        proxy.down()
    text = Path(log.name).read_text()
    # logged once per outage, not once per retry
    assert text.count("is unavailable, waiting for it") == 2, text[-3000:]
    assert text.count("is back after") == 2, text[-3000:]


def test_serve_waits_for_a_broker_that_is_not_up_yet(tmp_path):
    if not os.path.exists(MOSQUITTO):
        pytest.skip("the mosquitto binary is needed")
    (tmp_path / "broker").mkdir()
    broker = PrivateMosquitto(tmp_path / "broker")  # its port is chosen, nothing listens yet
    http = free_port()
    log = (tmp_path / "serve.log").open("w+")
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indunet.cli",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(http),
            "--mqtt-url",
            broker.url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        assert _until(lambda: _get(http, "/health") is not None, 30), Path(log.name).read_text()
        ready = _get(http, "/ready")
        assert ready.status_code == 503 and "not connected to the broker" in ready.text
        assert _get(http, "/health").json()["dependencies"]["mqtt"]["state"] == "down"
        broker.start()
        assert _until(lambda: _get(http, "/ready").status_code == 200, 15)
        mqtt = _get(http, "/health").json()["dependencies"]["mqtt"]
        assert mqtt == {"state": "up", "last_error": None}
    finally:
        serve.terminate()
        serve.wait(15)
        broker.stop()
    assert Path(log.name).read_text().count("is not up yet, waiting for it") == 1
