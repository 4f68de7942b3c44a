"""Decode workers against a private Mosquitto: stored once, dead letters kept, commit before ack.

Each test starts its own broker (`crashable`: persistence in ``tmp_path``, a free port) so the
shared subscription sees no one else's traffic. A worker is killed with SIGKILL mid-stream: what
it had not acknowledged comes back to its session when it starts again, nothing is lost, and a
redelivery overwrites its point (points are keyed by tag and time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid

import numpy as np
import paho.mqtt.client as paho
import pyarrow as pa
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.broker import free_port
from indunet.connect.codec.tag_meta import encode_tag_meta, meta_topic
from indunet.connect.decode_workers import (
    DecodeWorkers,
    GroupWriter,
    WriterLink,
    _joined,
    _received,
)
from indunet.connect.mqtt import MqttIngest, parse_mqtt_url
from indunet.errors import StorageUnavailable
from indunet.ingest.batch import BatchBuilder, ChunkTags
from indunet.model import POINT_SCHEMA, DataType, PointBatch, WriteResult
from indunet.store import open_historian
from tests.connect.test_broker_crash import crashable  # noqa: F401  (the fixture)
from tests.connect.test_broker_failures import AckCountingPublisher, _stored
from tests.connect.test_mqtt import T0, _wait

M = "s/a/l/m"


def _publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    host, port, *_ = parse_mqtt_url(url)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    pub.connect(host, port)
    pub.loop_start()
    for info in [pub.publish(t, p, qos=1) for t, p in messages]:
        info.wait_for_publish(timeout=10)
    pub.disconnect()
    pub.loop_stop()


class FlakyHistorian:
    """The real historian, but the first ``failures`` writes fail as if the database were down."""

    def __init__(self, real, failures: int) -> None:
        self.real = real
        self.failures = failures

    def write(self, batch, *, source="api"):
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailable("database is down (test)")
        return self.real.write(batch, source=source)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_workers_store_every_message_once_with_dead_letters_and_metadata(
    crashable,  # noqa: F811
    settings_factory,
):
    historian = open_historian(settings_factory())
    enterprise = f"w{uuid.uuid4().hex[:8]}"
    workers = DecodeWorkers(
        historian, crashable.url, count=2, client_id=f"ing-{enterprise}", flush_s=0.05
    )
    workers.start()
    try:
        assert workers.wait_subscribed(60), workers.stats
        base = f"indunet/v1/{enterprise}"
        good = [
            (f"{base}/{M}{i % 7}", json.dumps({"ts": T0 + i, "v": i, "w": -i}).encode())
            for i in range(600)
        ]
        meta = [(meta_topic(enterprise, f"{M}0"), encode_tag_meta({"v": {"unit": "kW"}}))]
        bad = [(f"{base}/{M}0", b"{broken"), (f"{base}/{M}0/x", b'{"ts": 1700000000000}')]
        _publish(crashable.url, meta + good + bad)
        assert _wait(lambda: workers.stats.stored_points >= 1200, timeout=60), workers.stats
        assert _wait(lambda: workers.stats.dead_letters >= 2, timeout=30), workers.stats
        # the broker spread the messages over both workers
        received = [slot["status"].get("received", 0) for slot in workers._slots]
        assert all(r > 0 for r in received), received
    finally:
        workers.stop()
    assert workers.stats.acked == len(meta + good + bad)
    for k in range(7):
        values = historian.series(enterprise, f"{M}{k}/v", T0, T0 + 1000).column("value")
        assert values.to_pylist() == [float(i) for i in range(600) if i % 7 == k]
    assert historian.count(enterprise) == 1200
    units = {t.path: t.unit for t in historian.tags(enterprise)}
    assert units[f"{M}0/v"] == "kW" and units[f"{M}0/w"] is None, (
        units,
        historian.dead_letters(enterprise),
    )
    reasons = [d["reason"] for d in historian.dead_letters(enterprise)]
    assert any("not valid JSON" in r for r in reasons), reasons
    assert any("no 'value'" in r for r in reasons), reasons
    historian.close()


def test_a_failing_writer_delays_the_acknowledgement_and_loses_nothing(
    crashable,  # noqa: F811
    settings_factory,
):
    real = open_historian(settings_factory())
    flaky = FlakyHistorian(real, failures=3)
    enterprise = f"w{uuid.uuid4().hex[:8]}"
    workers = DecodeWorkers(
        flaky, crashable.url, count=2, client_id=f"ing-{enterprise}", flush_s=0.05
    )
    workers.start()
    try:
        assert workers.wait_subscribed(60), workers.stats
        _publish(
            crashable.url,
            [
                (f"indunet/v1/{enterprise}/{M}", json.dumps({"ts": T0 + i, "v": i}).encode())
                for i in range(200)
            ],
        )
        assert _wait(lambda: workers.stats.stored_points >= 200, timeout=60), workers.stats
        assert workers.stats.write_failures == 3
    finally:
        workers.stop()
    assert workers.stats.acked == 200
    assert _stored(real, enterprise, f"{M}/v") == [float(i) for i in range(200)]
    real.close()


def test_kill_9_of_a_worker_mid_stream_loses_nothing_and_stores_each_point_once(
    crashable,  # noqa: F811
    settings_factory,
):
    historian = open_historian(settings_factory())
    enterprise = f"k{uuid.uuid4().hex[:8]}"
    tag = f"{M}/v"
    n = 4000
    workers = DecodeWorkers(
        historian, crashable.url, count=2, client_id=f"ing-{enterprise}", flush_s=0.05
    )
    workers.start()
    try:
        assert workers.wait_subscribed(60), workers.stats
        victim = workers.pids()[0]
        pub = AckCountingPublisher(
            crashable.url, f"indunet/v1/{enterprise}/{M}", n, pace_s=0.0005, mqtt_version=5
        )
        pub.thread.start()
        assert _wait(lambda: workers.stats.stored_points > n // 4, timeout=60), workers.stats
        os.kill(victim, signal.SIGKILL)
        assert pub.published.wait(60)
        assert _wait(lambda: len(pub.acked) == n, timeout=30)
        pub.close()
        assert _wait(lambda: workers.stats.restarts == 1, timeout=30), workers.stats
        assert victim not in workers.pids()
        # the restarted worker's session gets back what the killed one had not acknowledged
        assert _wait(lambda: len(_stored(historian, enterprise, tag)) >= n, timeout=60), len(
            _stored(historian, enterprise, tag)
        )
        stored_before = workers.stats.stored_points
    finally:
        workers.stop()
    values = _stored(historian, enterprise, tag)
    assert values == [float(i) for i in range(n)]  # every one, once, in time order
    assert stored_before < n * 2  # a few redelivered (overwritten), not all twice
    assert historian.dead_letters(enterprise) == []
    historian.close()


def test_sparkplug_host_without_json_topics_leaves_the_json_tree_to_the_workers(
    crashable,  # noqa: F811
    settings_factory,
):
    """The serve process's own ingest drops a JSON subscription its persistent session held."""
    historian = open_historian(settings_factory())
    enterprise = f"h{uuid.uuid4().hex[:8]}"
    cid = f"ing-{enterprise}"
    before = MqttIngest(historian, crashable.url, client_id=cid, session_expiry_s=600)
    before.start()
    assert _wait(lambda: before.stats.subscribed)
    before.stop()  # its session keeps indunet/v1/# at the broker
    host = MqttIngest(historian, crashable.url, client_id=cid, json_topics=False)
    assert all("indunet/v1" not in t for t in host.topics)
    host.start()
    try:
        assert _wait(lambda: host.stats.subscribed)
        seen = host.stats.received_sparkplug
        # a JSON message, then a fence on the Sparkplug tree the host does take: the broker
        # keeps one publisher's order, so once the fence is in, the JSON one would be too
        fence = f"spBv1.0/STATE/fence-{enterprise}"
        _publish(
            crashable.url, [(f"indunet/v1/{enterprise}/{M}", b'{"ts": 1, "v": 1}'), (fence, b"{}")]
        )
        assert _wait(lambda: host.stats.received_sparkplug > seen)
        assert host.stats.received == host.stats.received_sparkplug  # its own STATE only
        assert historian.count(enterprise) == 0
    finally:
        host.stop()
    historian.close()


def test_serve_with_decode_workers_ingests_end_to_end(crashable, tmp_path):  # noqa: F811
    enterprise = f"e{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDUNET_")}
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in sys.path if p])
    env["INDUNET_AUTH__REQUIRED"] = "false"  # a closed lab: the test reads /api/v1/series
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indunet.cli",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--mqtt-url",
            crashable.url,
            "--mqtt-client-id",
            f"ing-{enterprise}",
            "--decode-workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        while proc.stdout and not any("indunet serving" in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert any("decode workers" in line for line in lines), lines
        n = 300
        _publish(
            crashable.url,
            [
                (f"indunet/v1/{enterprise}/{M}", json.dumps({"ts": T0 + i, "v": i}).encode())
                for i in range(n)
            ],
        )
        import httpx

        last: list = []

        def count() -> int:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/series",
                    params={"tag": f"{M}/v", "start": T0, "end": T0 + n, "enterprise": enterprise},
                    timeout=5,
                )
            except httpx.HTTPError:
                return -1
            last[:] = [r.status_code, r.text[:300]]
            return len(r.json().get("rows", [])) if r.status_code == 200 else -1

        assert _wait(lambda: count() == n, timeout=60), (count(), last)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, "".join(lines) + (proc.stdout.read() if proc.stdout else "")


def test_mosquitto_keeps_an_absent_shared_subscribers_share_in_its_session(
    crashable,  # noqa: F811
    settings_factory,
):
    """Why a dead worker must come back: Mosquitto 2.0 does not hand its share to the others.

    While one member of the group is away (its persistent session stays), the broker keeps
    sending it its turn of the round robin: those messages wait in its session and arrive only
    when it reconnects.
    """
    historian = open_historian(settings_factory())
    enterprise = f"r{uuid.uuid4().hex[:8]}"

    def member(cid: str) -> MqttIngest:
        ingest = MqttIngest(
            historian,
            crashable.url,
            client_id=f"{cid}-{enterprise}",
            shared_group=enterprise,
            sparkplug_host=False,
            command_results=False,
            flush_s=0.05,
        )
        ingest.start()
        assert _wait(lambda: ingest.stats.subscribed)
        return ingest

    stays, leaves = member("a"), member("z")
    leaves.abort()  # like a crash: no DISCONNECT, the session stays at the broker
    n = 400
    topic = f"indunet/v1/{enterprise}/{M}"
    _publish(
        crashable.url, [(topic, json.dumps({"ts": T0 + i, "v": i}).encode()) for i in range(n)]
    )
    assert _wait(lambda: stays.stats.acked >= n // 2)
    back = member("z")
    try:
        assert _wait(lambda: historian.count(enterprise) == n, timeout=30)
        assert back.stats.received > 0  # its share waited for it
        assert stays.stats.received < n
    finally:
        stays.stop()
        back.stop()
    historian.close()


class _SlowHistorian:
    """Records each write; the first one waits until released (the writer is busy)."""

    def __init__(self) -> None:
        self.calls: list = []
        self.release = threading.Event()

    def write(self, batch, *, source="api"):
        self.calls.append((batch.enterprise, batch.table.column("ts").to_pylist(), batch.refs))
        if len(self.calls) == 1:
            self.release.wait(10)
        if batch.table.column("value").null_count:
            raise StorageUnavailable("down (test)")
        return WriteResult(stored=len(batch))


def _batch(enterprise: str, ts: list[int], values: list[float | None]) -> PointBatch:
    table = pa.table(
        {
            "tag": ["s/a/l/m/v"] * len(ts),
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "text": pa.nulls(len(ts), pa.string()),
            "quality": pa.array([0] * len(ts), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    return PointBatch(enterprise, table, {"s/a/l/m/v": DataType.NUMBER}, [f"r{t}" for t in ts])


def test_group_writer_commits_batches_that_wait_together_as_one():
    slow = _SlowHistorian()
    writer = GroupWriter(slow)
    results: dict = {}

    def submit(name: str, batch: PointBatch) -> None:
        try:
            results[name] = writer.write(batch, "mqtt")
        except StorageUnavailable as exc:
            results[name] = exc

    first = threading.Thread(target=submit, args=("first", _batch("e", [1], [1.0])))
    first.start()
    assert _wait(lambda: len(slow.calls) == 1)  # the writer is busy with the first
    waiting = [
        threading.Thread(target=submit, args=("b", _batch("e", [2, 3], [2.0, 3.0]))),
        threading.Thread(target=submit, args=("c", _batch("e", [4], [4.0]))),
        threading.Thread(target=submit, args=("other", _batch("f", [5], [5.0]))),
        threading.Thread(target=submit, args=("bad", _batch("g", [6], [None]))),
    ]
    for t in waiting:
        t.start()
    assert _wait(lambda: len(writer._jobs) == 4)
    slow.release.set()
    for t in [first, *waiting]:
        t.join(10)
    writer.close()
    joined = sorted(c for c in slow.calls[1:])
    assert joined[0][0] == "e" and sorted(joined[0][1]) == [2, 3, 4]  # one write for both
    assert sorted(joined[0][2]) == ["r2", "r3", "r4"]
    assert [c[0] for c in joined] == ["e", "f", "g"]  # one per enterprise
    assert results["b"].stored + results["c"].stored == 3
    assert isinstance(results["bad"], StorageUnavailable)  # its worker keeps its batch


def _numbered(enterprise: str, runs: list[tuple[list[str], int, list[float]]]) -> PointBatch:
    builder = BatchBuilder(enterprise)
    for tags, ts, values in runs:
        builder.extend_chunk(ChunkTags(tags), ts, np.array(values, np.float64), f"r{ts}")
    return builder.take()


def test_a_numbered_batch_crosses_the_pipe_and_joins_with_one_numbering():
    a = _numbered("e", [([f"{M}/x", f"{M}/y"], T0, [1.0, 2.0]), ([f"{M}/y"], T0 + 1, [3.0])])
    b = _numbered("e", [([f"{M}/z", f"{M}/x"], T0 + 2, [4.0, 5.0])])
    plain = PointBatch("e", b.table, b.types, b.refs)  # a worker's batch without numbering
    link_sent: list = []

    class Pipe:
        def send(self, request):
            link_sent.append(request)

        def recv(self):
            return ("ok", (0, []))

    WriterLink(Pipe()).write(a, source="mqtt")
    _, enterprise, ipc, types, refs, _ = link_sent[0]
    got = _received(enterprise, ipc, types, refs)
    assert got.table.equals(a.table) and got.table.schema == POINT_SCHEMA
    assert got.tag_index is not None and got.refs == a.refs
    idx, paths = got.tag_index
    assert [paths[i] for i in idx] == a.table.column("tag").to_pylist()
    for parts in ([got, b], [got, plain]):
        joined = _joined("e", [{"batch": x} for x in parts])
        assert joined.table.equals(pa.concat_tables([x.table for x in parts]))
        if joined.tag_index is not None:
            idx, paths = joined.tag_index
            assert len(set(paths)) == len(paths)
            assert [paths[i] for i in idx] == joined.table.column("tag").to_pylist()
    assert _joined("e", [{"batch": got}, {"batch": b}]).tag_index is not None
    assert _joined("e", [{"batch": got}, {"batch": plain}]).tag_index is None
