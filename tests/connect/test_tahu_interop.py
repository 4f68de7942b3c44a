"""Interop with a third-party edge node: Eclipse Tahu's JavaScript `sparkplug-client` (pinned).

`make test` installs it with `npm ci` into tests/peers/tahu (package.json + package-lock.json);
tests/peers/tahu/edge.js drives it line by line. Tahu encodes every payload here, so indunet's
host is checked against an encoder that is not its own: births, data by alias of each type
(64-bit integers beyond 2^53 included), a seq gap and the rebirth Tahu answers it with, compressed
payloads (GZIP and Tahu's default DEFLATE), device and node deaths, and a DCMD write back.
Without node/npm (or the installed package) the tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from indunet.config import load_settings
from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.connect.codec.sparkplug import ONLINE_TAG, SparkplugMapping
from indunet.connect.mqtt import MqttIngest
from indunet.errors import DataError
from indunet.store import open_historian
from indunet.store.base import exact_integers
from tests.connect.sparkplug_conformance.peers import Observer, wait
from tests.connect.test_mqtt import BROKER, _require_broker

PEER = Path(__file__).resolve().parents[1] / "peers" / "tahu"
EDGE_JS = PEER / "edge.js"
PINNED = "3.2.4"


def _require_tahu() -> str:
    node = shutil.which("node")
    installed = PEER / "node_modules" / "sparkplug-client" / "package.json"
    problem = None
    if node is None or shutil.which("npm") is None:
        problem = "node and npm are needed for the Eclipse Tahu interop test"
    elif not installed.is_file():
        problem = f"Tahu's sparkplug-client is not installed: run `npm ci` in {PEER} (make test)"
    elif json.loads(installed.read_text())["version"] != PINNED:
        problem = f"sparkplug-client {PINNED} is pinned; reinstall with `npm ci` in {PEER}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return node  # type: ignore[return-value]


class Tahu:
    """One Tahu edge node process (edge.js): commands in on stdin, events out on stdout."""

    def __init__(self, node_bin: str, group: str, node: str) -> None:
        self.group, self.node = group, node
        self.proc = subprocess.Popen(
            [node_bin, str(EDGE_JS), BROKER, group, node],
            cwd=PEER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert wait(lambda: self.count("connected") >= 1, 20), self.stderr()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read() if self.proc.stderr else ""

    def count(self, event: str) -> int:
        return sum(1 for e in list(self.events) if e["event"] == event)

    def do(self, op: str, **command: object) -> None:
        done = sum(1 for e in list(self.events) if e.get("op") == op)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **command}) + "\n")
        self.proc.stdin.flush()
        if op != "crash":
            assert wait(lambda: sum(1 for e in list(self.events) if e.get("op") == op) > done)
            assert not [e for e in self.events if e["event"] == "error"], self.events

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    node_bin = _require_tahu()
    _require_broker()
    historian = open_historian(load_settings(data_dir=tmp_path_factory.mktemp("tahu")))
    enterprise = f"e{uuid.uuid4().hex[:8]}"
    ingest = MqttIngest(
        historian,
        BROKER,
        client_id=f"tahu-host-{enterprise}",
        host_id=f"tahu-{enterprise}",
        clean_start=True,
        flush_s=0.02,
        rebirth_interval_s=0.0,
        sparkplug=SparkplugMapping(enterprise=enterprise),
    )
    ingest.start()
    assert wait(lambda: ingest.stats.subscribed)
    yield node_bin, ingest, historian, enterprise
    ingest.stop()
    historian.close()


@pytest.fixture
def tahu(host):
    peers: list[Tahu] = []

    def start() -> Tahu:
        peers.append(Tahu(host[0], f"g{uuid.uuid4().hex[:10]}", "tahu1"))
        return peers[-1]

    yield start
    for p in peers:
        p.close()


def _values(host, prefix: str) -> dict:
    _, _, historian, enterprise = host
    rows = exact_integers(historian.latest(enterprise, prefix).to_pylist())
    return {r["tag"].removeprefix(prefix + "/"): r for r in rows}


BIG_U = 2**64 - 1
BIG_S = -(2**63) + 7
DEVICE_BIRTH = [
    {"name": "Power", "alias": 1, "type": "Double", "value": 3.25},
    {"name": "Temp", "alias": 2, "type": "Float", "value": 41.5},
    {"name": "Parts", "alias": 3, "type": "Int32", "value": -12},
    {"name": "Serial", "alias": 4, "type": "UInt64", "value": str(BIG_U)},
    {"name": "Offset", "alias": 5, "type": "Int64", "value": str(BIG_S)},
    {"name": "Running", "alias": 6, "type": "Boolean", "value": True},
    {"name": "Recipe", "alias": 7, "type": "String", "value": "A-1"},
    {"name": "Setpoint", "alias": 8, "type": "Int32", "value": 100},
]


def _born(host, tahu_peer: Tahu, *, compress: str | None = None):
    tahu_peer.do(
        "nbirth",
        metrics=[{"name": "Uptime", "alias": 100, "type": "Int64", "value": 5}],
        **({"compress": compress} if compress else {}),
    )
    tahu_peer.do("dbirth", device="press7", metrics=DEVICE_BIRTH)
    prefix = f"{tahu_peer.group}/{tahu_peer.node}/devices/press7"
    assert wait(lambda: "Setpoint" in _values(host, prefix)), host[1].stats
    return prefix


def test_tahu_births_and_data_by_alias_of_each_type(host, tahu):
    peer = tahu()
    prefix = _born(host, peer)
    got = _values(host, prefix)
    assert got["Serial"]["value"] == BIG_U and got["Offset"]["value"] == BIG_S
    assert got["Recipe"]["text"] == "A-1" and got["Running"]["value"] == 1.0
    assert got["Parts"]["value"] == -12 and got[ONLINE_TAG]["value"] == 1.0
    data = [
        {"alias": 1, "type": "Double", "value": 7.5},
        {"alias": 2, "type": "Float", "value": 42.25},
        {"alias": 3, "type": "Int32", "value": 2_000_000_000},
        {"alias": 4, "type": "UInt64", "value": str(2**53 + 1)},
        {"alias": 5, "type": "Int64", "value": str(-(2**53) - 1)},
        {"alias": 6, "type": "Boolean", "value": False},
        {"alias": 7, "type": "String", "value": "B-2"},
    ]
    peer.do("ddata", device="press7", metrics=data)
    assert wait(lambda: _values(host, prefix)["Recipe"]["text"] == "B-2")
    got = _values(host, prefix)
    assert [got[n]["value"] for n in ("Power", "Temp", "Parts", "Serial", "Offset", "Running")] == [
        7.5,
        42.25,
        2_000_000_000,
        2**53 + 1,
        -(2**53) - 1,
        0.0,
    ]
    _, _, historian, enterprise = host
    assert not [d for d in historian.dead_letters(enterprise, limit=500) if peer.group in d["ref"]]
    assert not peer.count("ncmd")  # nothing made the host ask for a rebirth


def test_tahu_seq_gap_is_answered_by_a_rebirth(host, tahu):
    peer = tahu()
    prefix = _born(host, peer)
    peer.do("skip")  # a message lost on the way
    peer.do("ddata", device="press7", metrics=[{"alias": 1, "type": "Double", "value": 9.5}])
    assert wait(lambda: peer.count("rebirth") >= 1), host[1].stats
    ncmd = next(e for e in peer.events if e["event"] == "ncmd")
    assert ncmd["metrics"] == [["Node Control/Rebirth", True]]
    assert wait(lambda: _values(host, prefix)["Power"]["value"] == 9.5)  # the gap's data kept
    peer.do("ddata", device="press7", metrics=[{"alias": 1, "type": "Double", "value": 11.0}])
    assert wait(lambda: _values(host, prefix)["Power"]["value"] == 11.0)  # after the rebirth
    _, _, historian, enterprise = host
    reasons = [d["reason"] for d in historian.dead_letters(enterprise, limit=500)]
    assert any(peer.group in r and "seq gap" in r for r in reasons)
    assert peer.count("ncmd") == 1  # in sequence again: no further request


@pytest.mark.parametrize("algorithm", ["GZIP", "DEFLATE", "DEFAULT"])
def test_tahu_compressed_payloads(host, tahu, algorithm):
    peer = tahu()
    topic = f"spBv1.0/{peer.group}/DDATA/{peer.node}/press7"
    wire = Observer(BROKER, [topic])  # what Tahu really sent
    try:
        prefix = _born(host, peer, compress=algorithm)  # a compressed NBIRTH too
        metrics = [
            {"alias": 1, "type": "Double", "value": 12.5},
            {"alias": 4, "type": "UInt64", "value": str(2**63 + 1)},
        ]
        peer.do("ddata", device="press7", metrics=metrics, compress=algorithm)
        assert wait(lambda: _values(host, prefix)["Power"]["value"] == 12.5), host[1].stats
        assert wait(lambda: bool(wire.on(topic)))
    finally:
        wire.close()
    outer = pb.Payload.FromString(wire.on(topic)[0][0])
    assert outer.uuid == "SPBV1.0_COMPRESSED" and outer.body and not outer.HasField("seq")
    names = [m.string_value for m in outer.metrics if m.name == "algorithm"]
    assert names == ([] if algorithm == "DEFAULT" else [algorithm])
    assert _values(host, prefix)["Serial"]["value"] == 2**63 + 1
    assert not peer.count("ncmd")
    _, _, historian, enterprise = host
    assert not [d for d in historian.dead_letters(enterprise, limit=500) if peer.group in d["ref"]]


def test_tahu_device_and_node_deaths(host, tahu):
    peer = tahu()
    prefix = _born(host, peer)
    node_prefix = f"{peer.group}/{peer.node}/node/{peer.node}"
    peer.do("ddeath", device="press7")
    assert wait(lambda: _values(host, prefix)[ONLINE_TAG]["value"] == 0.0)
    assert _values(host, prefix)["Power"]["quality"] == 3
    assert _values(host, node_prefix)["Uptime"]["quality"] == 0
    peer.do("crash")  # Tahu's will: NDEATH with its bdSeq
    assert wait(lambda: _values(host, node_prefix)["Uptime"]["quality"] == 3, 20)
    assert wait(lambda: _values(host, node_prefix)[ONLINE_TAG]["value"] == 0.0)


def test_host_writes_reach_tahu_as_dcmd(host, tahu):
    peer = tahu()
    _born(host, peer)
    _, ingest, _, _ = host
    assert ingest.send_command(peer.group, peer.node, {"Setpoint": 120}, device="press7")
    assert wait(lambda: peer.count("dcmd") >= 1)
    dcmd = next(e for e in peer.events if e["event"] == "dcmd")
    assert dcmd["device"] == "press7" and dcmd["metrics"] == [["Setpoint", 120]]
    with pytest.raises(DataError):
        ingest.send_command(peer.group, peer.node, {"Setpoint": "high"}, device="press7")
