"""Fixtures of the Sparkplug 3.0 host conformance tests: one broker, one host per module."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from indunet.config import load_settings
from indunet.connect.codec.sparkplug import SparkplugMapping
from indunet.connect.mqtt import MqttIngest
from indunet.store import Historian, open_historian
from tests.connect.sparkplug_conformance.peers import (
    Connect,
    Observer,
    Publish,
    RecordingProxy,
    ScriptedEdgeNode,
    wait,
)
from tests.connect.test_mqtt import BROKER, _require_broker


@dataclass
class Host:
    """An indunet Sparkplug host behind a recording proxy, with an observer of its STATE."""

    ingest: MqttIngest
    proxy: RecordingProxy
    observer: Observer
    host_id: str
    enterprise: str
    historian: Historian
    broker_url: str
    version: int = 5
    edges: list[ScriptedEdgeNode] = field(default_factory=list)

    @property
    def state_topic(self) -> str:
        return f"spBv1.0/STATE/{self.host_id}"

    def connect(self, conn: int = 1) -> Connect:
        return self.proxy.connects()[conn - 1]

    def publishes(self, conn: int | None = None) -> list[Publish]:
        return self.proxy.publishes(conn=conn, version=self.version)

    def states(self, conn: int | None = None) -> list[Publish]:
        return [p for p in self.publishes(conn) if p.topic == self.state_topic]

    def birth(self, conn: int = 1) -> Publish:
        assert wait(lambda: bool(self.states(conn))), "no STATE published"
        return self.states(conn)[0]

    def will_ts(self, conn: int = 1) -> int:
        return json.loads(self.connect(conn).will_payload or b"{}")["timestamp"]

    def edge(self, *, bd_seq: int = 0, node: str = "gw1") -> ScriptedEdgeNode:
        edge = ScriptedEdgeNode(BROKER, f"g{uuid.uuid4().hex[:10]}", node, bd_seq=bd_seq)
        self.edges.append(edge)
        return edge

    def latest(self, prefix: str) -> dict[str, dict]:
        rows = self.historian.latest(self.enterprise, prefix).to_pylist()
        return {r["tag"].removeprefix(prefix + "/"): r for r in rows}

    def stop(self) -> None:
        """Stop everything, and clear the retained STATE the test left on the shared broker."""
        for edge in self.edges:
            edge.close()
        self.edges = []
        self.ingest.stop()
        self.observer.publish(self.state_topic, b"", retain=True)
        self.observer.close()
        self.proxy.close()


def start_host(
    historian: Historian,
    *,
    broker: str = BROKER,
    version: int = 5,
    clean: bool = True,
    groups: list[str] | None = None,
    host_id: str | None = None,
    observer_v5: bool = True,
) -> Host:
    """Start a host (clean session, as Sparkplug 3.0 asks) and wait for its STATE birth."""
    host_id = host_id or f"h{uuid.uuid4().hex[:10]}"
    enterprise = f"e{uuid.uuid4().hex[:8]}"
    proxy = RecordingProxy(broker)
    observer = Observer(broker, [f"spBv1.0/STATE/{host_id}"], v5=observer_v5)
    ingest = MqttIngest(
        historian,
        proxy.url,
        client_id=f"host-{host_id}",
        host_id=host_id,
        clean_start=clean,
        session_expiry_s=5,  # (persistent sessions only) none left behind on the shared broker
        mqtt_version=version,
        flush_s=0.02,
        rebirth_interval_s=0.0,
        reconnect_s=(0.05, 0.5),
        sparkplug=SparkplugMapping(enterprise=enterprise),
        sparkplug_groups=groups,
    )
    ingest.start()
    host = Host(ingest, proxy, observer, host_id, enterprise, historian, broker, version)
    assert wait(lambda: bool(host.states())), "the host published no STATE"
    assert wait(lambda: bool(observer.on(host.state_topic)))
    return host


@pytest.fixture(scope="module")
def sp_historian(tmp_path_factory) -> Iterator[Historian]:
    """One DuckDB historian per module (each host writes under its own enterprise)."""
    _require_broker()
    h = open_historian(load_settings(data_dir=tmp_path_factory.mktemp("sparkplug-host")))
    yield h
    h.close()


@pytest.fixture(scope="module")
def host(sp_historian) -> Iterator[Host]:
    """The module's one host: most assertions are checked on it, each with its own edge node."""
    h = start_host(sp_historian)
    yield h
    h.stop()


@pytest.fixture
def fresh_host(sp_historian) -> Iterator:
    """Start hosts whose lifecycle the test drives (stop, reconnect); stopped afterwards."""
    started: list[Host] = []

    def make(**options) -> Host:
        h = start_host(sp_historian, **options)
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()
