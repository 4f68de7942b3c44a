"""MQTT ingest benchmark: points committed to the historian per second, through a real Mosquitto.

Scenarios (each on a fresh DuckDB historian; only points committed by the ingest count):

* ``batch``   batched JSON, 100 tags per message on ``indunet/v1/bench/s/a/l/mN``
              (``{"timestamp_ms": .., "t0": .., .., "t99": ..}``): points/s.
* ``single``  one value per message on ``indunet/v1/bench/s/a/l/mN/tagK``
              (``{"timestamp_ms": .., "value": ..}``): messages/s at QoS 0 and QoS 1
              (commit-before-ack), and, in the same run, a bare paho subscriber that stores
              nothing (``manual_ack=False``), QoS 1: messages/s.
* ``spb``     Sparkplug B: NBIRTH + DBIRTH (aliases) first, then DDATA by alias with consecutive
              ``seq``, 50 metrics per message: metrics/s decoded and stored.

The publisher is a separate process (no shared GIL) speaking MQTT 3.1.1 on a raw socket, with
every packet encoded before the clock starts; QoS 1 publishing keeps a window of unacknowledged
messages. Rates are ``stored / (last commit - first publish)``; stored is ``historian.count()``
after the ingest has stopped; loss is ``published - stored``.

Brokers: a private Mosquitto started here on a free port with ``max_queued_messages 0`` (nothing
dropped for a slow subscriber) and ``max_inflight_messages`` from ``--inflight``, and the
system Mosquitto on 127.0.0.1:1883 (stock settings: inflight 20, queue 1000) for reference.

Blocks (``--blocks``): probe (effective broker in-flight window), sweep (MqttIngest parameters;
the best MQTT 5 setting per scenario is then used by main), main (the measured scenarios,
``--repeats`` times), system (reference runs on :1883), micro (in-process costs per point of
the decoders, batch building and historian writes, no MQTT), profile (py-spy on the ingest;
``pip install py-spy``), peer (Mosquitto -> Node-RED -> InfluxDB 1.x through the peers/ming
harness: setup.sh when needed, run.sh, its bench.py ``single`` and ``batch``, always stop.sh).

Before each timed stream the script waits (up to ``--quiet-wait`` s) until other processes use
under 0.25 cores, and records what they used during the run (``others_cores``).
Results: ``bench/results/mqtt_ingest-<tag>.json`` (+ py-spy raw stacks, peer results).

    .venv/bin/python bench/mqtt_ingest.py --quick     # main + peer, under 2 minutes
    .venv/bin/python bench/mqtt_ingest.py             # every block, about 30 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from indunet.config import load_settings
from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb
from indunet.connect.codec.sparkplug import SparkplugMapping
from indunet.connect.decode_workers import DecodeWorkers
from indunet.connect.mqtt import MqttIngest
from indunet.store import open_historian

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PEER = Path(os.environ.get("INDUNET_PEER_MING", "/work/shared/peers/ming"))
MING = Path(os.environ.get("MING", "/tmp/ming"))
ENTERPRISE = "bench"
SYSTEM_BROKER = ("127.0.0.1", 1883)
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MAX_MID = 65_000  # data packet ids cycle 1..MAX_MID; FENCE_MID is kept for the end marker
FENCE_MID = 65_535
TARGETS = {
    "batch_pps": 500_000,
    "batch_pps_goal": 1_000_000,
    "single_qos0_mps": 20_000,
    "single_qos1_vs_bare": 0.8,
    "spb_mps": 300_000,
    "peer_ratio": 10.0,
}
_TCK = os.sysconf("SC_CLK_TCK")


# ============================================================== raw MQTT 3.1.1 (publisher)
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    body = (
        b"\x00\x04MQTT\x04\x02\x00\x00" + len(cid).to_bytes(2, "big") + cid
    )  # clean, no keepalive
    return b"\x10" + _varint(len(body)) + body


def _publish_packet(topic: str, payload: bytes, qos: int, mid: int) -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (mid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | qos << 1]) + _varint(len(body)) + body


def _chunks(packets: list[bytes], max_bytes: int = 64 * 1024) -> list[tuple[int, bytes]]:
    """Join packets into (count, bytes) chunks of about ``max_bytes`` for few ``sendall`` calls."""
    out: list[tuple[int, bytes]] = []
    part: list[bytes] = []
    size = 0
    for p in packets:
        part.append(p)
        size += len(p)
        if size >= max_bytes or len(part) >= 250:
            out.append((len(part), b"".join(part)))
            part, size = [], 0
    if part:
        out.append((len(part), b"".join(part)))
    return out


# ============================================================== message generation
def _mid(i: int) -> int:
    return i % MAX_MID + 1


def gen_batch(n: int, qos: int, t0: int, machines: int, tags: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    names = [f"t{k}" for k in range(tags)]
    out = []
    for i in range(n):
        doc: dict[str, Any] = {"timestamp_ms": t0 + i}
        for name in names:
            doc[name] = round(rnd.uniform(0, 1000), 3)
        topic = f"indunet/v1/{ENTERPRISE}/s/a/l/m{i % machines}"
        out.append(_publish_packet(topic, json.dumps(doc).encode(), qos, _mid(i)))
    return out


def gen_warmup(kind: str, t0: int, machines: int, tags: int) -> list[bytes]:
    """One message per series, an older timestamp: creates every tag before the clock starts."""
    if kind == "batch":
        docs = [
            (f"indunet/v1/{ENTERPRISE}/s/a/l/m{m}", {"timestamp_ms": t0 - 100_000 + m}
             | {f"t{k}": 0.0 for k in range(tags)})
            for m in range(machines)
        ]  # fmt: skip
    else:
        docs = [
            (f"indunet/v1/{ENTERPRISE}/s/a/l/m{m}/tag{k}",
             {"timestamp_ms": t0 - 100_000 + m * tags + k, "value": 0.0})
            for m in range(machines)
            for k in range(tags)
        ]  # fmt: skip
    return [_publish_packet(t, json.dumps(d).encode(), 1, _mid(i)) for i, (t, d) in enumerate(docs)]


def gen_single(n: int, qos: int, t0: int, machines: int, tags: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        topic = f"indunet/v1/{ENTERPRISE}/s/a/l/m{i % machines}/tag{(i // machines) % tags}"
        payload = json.dumps({"timestamp_ms": t0 + i, "value": round(rnd.uniform(0, 1000), 3)})
        out.append(_publish_packet(topic, payload.encode(), qos, _mid(i)))
    return out


def gen_sparkplug(
    n: int, qos: int, t0: int, nodes: int, devices: int, metrics: int, seed: int
) -> tuple[list[bytes], list[bytes]]:
    """Return (births, data): NBIRTH + DBIRTH of every device, then ``n`` DDATA by alias."""
    rnd = random.Random(seed)
    group = "bench"
    seq = dict.fromkeys(range(nodes), 0)
    births: list[bytes] = []

    def next_seq(node: int) -> int:
        seq[node] = (seq[node] + 1) % 256
        return seq[node]

    for node in range(nodes):
        nb = pb.Payload(timestamp=t0 - 10_000, seq=0)
        nb.metrics.add(name="bdSeq", datatype=4, long_value=0)
        nb.metrics.add(name="Node Control/Rebirth", datatype=11, boolean_value=False)
        births.append(
            _publish_packet(f"spBv1.0/{group}/NBIRTH/n{node}", nb.SerializeToString(), 0, 0)
        )
        for dev in range(devices):
            db = pb.Payload(timestamp=t0 - 10_000, seq=next_seq(node))
            for k in range(metrics):
                db.metrics.add(
                    name=f"Sensors/value{k:02d}", alias=k + 1, datatype=10, double_value=0.0
                )
            births.append(
                _publish_packet(
                    f"spBv1.0/{group}/DBIRTH/n{node}/d{dev}", db.SerializeToString(), 0, 0
                )
            )
    data = []
    total = nodes * devices
    for i in range(n):
        d = i % total
        node, dev = divmod(d, devices)
        msg = pb.Payload(timestamp=t0 + i, seq=next_seq(node))
        for k in range(metrics):
            msg.metrics.add(alias=k + 1, datatype=10, double_value=round(rnd.uniform(0, 1000), 3))
        topic = f"spBv1.0/{group}/DDATA/n{node}/d{dev}"
        data.append(_publish_packet(topic, msg.SerializeToString(), qos, _mid(i)))
    return births, data


# ============================================================== publisher process
def _blast(host: str, port: int, chunks: list[tuple[int, bytes]], qos: int, window: int) -> dict:
    """Send pre-encoded chunks; end with a QoS 1 fence so that everything before it was routed."""
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_connect_packet(f"bench-pub-{uuid.uuid4().hex[:8]}"))
    connack = b""
    while len(connack) < 4:
        got = sock.recv(4 - len(connack))
        if not got:
            raise RuntimeError("broker closed the connection before CONNACK")
        connack += got
    if connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"broker refused the publisher: {connack!r}")
    sock.settimeout(None)
    acked = [0]
    cond = threading.Condition()

    def reader() -> None:
        buf = bytearray()
        while True:
            try:
                got = sock.recv(65536)
            except OSError:
                return
            if not got:
                return
            buf += got
            n = 0
            while len(buf) >= 2:
                length, mult, pos = 0, 1, 1
                while pos < len(buf):
                    b = buf[pos]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    pos += 1
                    if not b & 0x80:
                        break
                else:
                    break
                if len(buf) < pos + length:
                    break
                if buf[0] >> 4 == 4:  # PUBACK
                    n += 1
                del buf[: pos + length]
            if n:
                with cond:
                    acked[0] += n
                    cond.notify_all()

    rd = threading.Thread(target=reader, daemon=True)
    rd.start()
    sent = 0
    total_bytes = 0
    t_start = time.monotonic()
    for count, data in chunks:
        if qos:
            with cond:
                while sent > acked[0] and sent + count - acked[0] > window:
                    cond.wait(1.0)
        sock.sendall(data)
        sent += count
        total_bytes += len(data)
    t_sent = time.monotonic()
    want = (sent if qos else 0) + 1
    sock.sendall(_publish_packet("bench/fence", b"", 1, FENCE_MID))
    with cond:
        while acked[0] < want:
            if not cond.wait(120):
                break
    t_acked = time.monotonic()
    got_acks = acked[0]
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    rd.join(10)
    sock.close()
    return {
        "t_start": t_start,
        "t_sent": t_sent,
        "t_acked": t_acked,
        "msgs": sent,
        "bytes": total_bytes,
        "pubacks": got_acks - 1,
    }


def publisher_main(conn: Any) -> None:
    """Child process: encode jobs on request, publish them on "go", report timings back."""
    phases: dict[str, tuple[int, list[tuple[int, bytes]]]] = {}
    job: dict = {}
    while True:
        cmd, arg = conn.recv()
        try:
            if cmd == "quit":
                return
            if cmd == "encode":
                job = arg
                phases.clear()
                kind, n, qos, t0, seed = (
                    job["kind"],
                    job["msgs"],
                    job["qos"],
                    job["t0"],
                    job["seed"],
                )
                if kind in ("batch", "single"):
                    warm = gen_warmup(kind, t0, job["machines"], job["tags"])
                    phases["warmup"] = (1, _chunks(warm))
                if kind == "batch":
                    phases["data"] = (
                        qos,
                        _chunks(gen_batch(n, qos, t0, job["machines"], job["tags"], seed)),
                    )
                elif kind == "single":
                    phases["data"] = (
                        qos,
                        _chunks(gen_single(n, qos, t0, job["machines"], job["tags"], seed)),
                    )
                elif kind == "spb":
                    births, data = gen_sparkplug(
                        n, qos, t0, job["nodes"], job["devices"], job["metrics"], seed
                    )
                    phases["warmup"] = (0, _chunks(births))
                    phases["data"] = (qos, _chunks(data))
                elif kind == "probe":
                    packets = [
                        _publish_packet("bench/probe/x", b"p" * 32, 1, _mid(i)) for i in range(n)
                    ]
                    phases["data"] = (1, _chunks(packets))
                else:
                    raise ValueError(f"unknown job kind {kind}")
                sizes = {k: sum(len(b) for _, b in c) for k, (_, c) in phases.items()}
                conn.send(("ready", {"bytes": sizes, "pid": os.getpid()}))
            elif cmd == "go":
                qos, chunks = phases[arg]
                conn.send(("done", _blast(job["host"], job["port"], chunks, qos, job["window"])))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class Publisher:
    """Handle on the publisher process."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=publisher_main, args=(child,), name="bench-publisher")
        self.proc.start()

    def _expect(self, what: str, timeout: float = 900) -> Any:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"publisher did not answer ({what})")
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"publisher failed:\n{value}")
        if kind != what:
            raise RuntimeError(f"publisher answered {kind}, expected {what}")
        return value

    def encode(self, job: dict) -> dict:
        self.conn.send(("encode", job))
        return self._expect("ready")

    def go(self, phase: str = "data") -> None:
        self.conn.send(("go", phase))

    def result(self, timeout: float = 900) -> dict:
        return self._expect("done", timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("quit", None))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


# ============================================================== brokers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    name: str
    host: str
    port: int
    settings: dict
    pid: int | None = None
    proc: subprocess.Popen | None = None
    workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @classmethod
    def system(cls) -> Broker:
        pid = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(Path("/run/mosquitto/mosquitto.pid").read_text().strip())
        return cls(
            "system :1883",
            *SYSTEM_BROKER,
            {"max_inflight_messages": 20, "max_queued_messages": 1000, "persistence": True},
            pid,
        )

    @classmethod
    def private(cls, inflight: int, queued: int) -> Broker:
        port = _free_port()
        workdir = Path(tempfile.mkdtemp(prefix="indunet-bench-mosq-"))
        workdir.chmod(0o755)
        conf = workdir / "mosquitto.conf"
        settings = {
            "max_inflight_messages": inflight,
            "max_queued_messages": queued,
            "persistence": False,
        }
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_inflight_messages {inflight}\nmax_queued_messages {queued}\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        conf.chmod(0o644)
        log = (workdir / "mosquitto.log").open("w")
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
        broker = cls(f"private :{port}", "127.0.0.1", port, settings, proc.pid, proc, workdir)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return broker
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    broker.stop()
                    raise RuntimeError(f"private mosquitto did not start: see {workdir}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ============================================================== CPU accounting
def proc_cpu(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TCK


def machine_cpu() -> tuple[float, float]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:9]]
    total = sum(parts)
    return total - parts[3] - parts[4], total


class CpuWatch:
    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.c0 = {k: proc_cpu(p) for k, p in pids.items()}
        self.m0 = machine_cpu()

    def done(self) -> dict:
        dt = time.monotonic() - self.t0
        out: dict[str, Any] = {}
        for k, p in self.pids.items():
            c1, c0 = proc_cpu(p), self.c0[k]
            if c1 is not None and c0 is not None and dt > 0:
                out[f"{k}_pct_of_core"] = round(100 * (c1 - c0) / dt, 1)
        m1 = machine_cpu()
        if m1[1] > self.m0[1]:
            busy = (m1[0] - self.m0[0]) / (m1[1] - self.m0[1])
            ours = sum(v for k, v in out.items() if k.endswith("_pct_of_core")) / 100
            out["machine_busy_pct"] = round(100 * busy, 1)
            out["others_cores"] = round(max(busy * (os.cpu_count() or 1) - ours, 0.0), 2)
        return out


# ============================================================== the ingest under test
class TimedHistorian:
    """The real historian; notes when each write committed and how long writes took."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.stored = 0
        self.writes = 0
        self.write_s = 0.0
        self.t_last: float | None = None

    def write(self, batch: Any, *, source: str = "api") -> Any:
        t = time.monotonic()
        result = self.real.write(batch, source=source)
        t1 = time.monotonic()
        self.write_s += t1 - t
        self.writes += 1
        self.stored += result.stored
        self.t_last = t1
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@dataclass
class Params:
    max_unacked: int = 20_000  # MqttIngest's defaults
    max_points: int = 262_144
    flush_s: float = 0.2
    mqtt_version: int = 5
    workers: int = 0  # decode worker processes (0: decode in the ingest process)

    def label(self) -> str:
        v = " MQTT3.1.1" if self.mqtt_version == 4 else ""
        w = f" workers={self.workers}" if self.workers else ""
        return f"unacked={self.max_unacked} points={self.max_points} flush={self.flush_s}{v}{w}"


DEFAULT_PARAMS = Params()


@dataclass
class Scenario:
    name: str  # batch | single | spb
    qos: int
    msgs: int
    per_msg: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def warmup_points(self) -> int:
        if self.name == "spb":
            return 4 * 5 * self.per_msg  # DBIRTH metrics of 4 nodes x 5 devices
        return 100 * (self.per_msg if self.name == "batch" else 10)

    @property
    def label(self) -> str:
        return {
            "batch": "batched JSON x100",
            "single": "single-value JSON",
            "spb": "Sparkplug DDATA x50",
        }[self.name] + f" QoS{self.qos}"


def _delete_session(broker: Broker, client_id: str, state_topic: str) -> None:
    """Drop the persistent session and the retained STATE message the ingest left."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    try:
        c.connect(broker.host, broker.port, keepalive=10, clean_start=True)
        c.loop_start()
        c.publish(state_topic, b"", qos=1, retain=True).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()
    except OSError:
        pass


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pub = Publisher()
        self.pub_pid: int | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="indunet-bench-mqtt-"))
        self.rows: list[dict] = []

    def close(self) -> None:
        self.pub.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def wait_quiet(self, broker_pid: int | None) -> dict:
        """Wait (up to --quiet-wait s) until other processes use under 0.25 cores for 2 s."""
        t0 = time.monotonic()
        calm = 0
        others = None
        while time.monotonic() - t0 < self.args.quiet_wait:
            w = CpuWatch({"me": os.getpid(), "broker": broker_pid, "pub": self.pub_pid})
            time.sleep(1.0)
            others = w.done().get("others_cores")
            calm = calm + 1 if others is not None and others < 0.25 else 0
            if calm >= 2:
                break
        return {"waited_s": round(time.monotonic() - t0, 1), "quiet": calm >= 2, "others": others}

    # ---------------------------------------------------------------- jobs
    def _job(self, broker: Broker, scen: Scenario, seed: int) -> dict:
        t0 = int(time.time() * 1000) - 3_600_000  # an hour back
        job = {
            "kind": scen.name,
            "msgs": scen.msgs,
            "qos": scen.qos,
            "t0": t0,
            "seed": seed,
            "host": broker.host,
            "port": broker.port,
            "window": self.args.pub_window,
        }
        if scen.name == "batch":
            job.update(machines=100, tags=scen.per_msg)
        elif scen.name == "single":
            job.update(machines=100, tags=10)
        elif scen.name == "spb":
            job.update(nodes=4, devices=5, metrics=scen.per_msg)
        return job

    def _wait(self, progress: Any, expected: int, t_pub_box: list) -> tuple[bool, dict]:
        """Wait for the publisher, then until ``expected`` is reached or progress stops."""
        idle_s, deadline = self.args.idle, time.monotonic() + self.args.max_wait
        result = None
        last, t_change = progress(), time.monotonic()
        while True:
            if result is None and self.pub.conn.poll(0.05):
                result = self.pub.result()
                t_pub_box.append(result)
            elif result is not None:
                time.sleep(0.05)
            now = time.monotonic()
            value = progress()
            if value != last:
                last, t_change = value, now
            if result is not None and value >= expected:
                return False, result
            if result is not None and now - max(t_change, result["t_acked"]) > idle_s:
                return False, result
            if now > deadline:
                if result is None:
                    result = self.pub.result(timeout=600)
                return True, result

    def run_ingest(
        self,
        broker: Broker,
        scen: Scenario,
        params: Params,
        *,
        group: str,
        repeat: int = 1,
        profile: Path | None = None,
    ) -> dict:
        ready = self.pub.encode(self._job(broker, scen, seed=repeat))
        self.pub_pid = ready["pid"]
        data_dir = Path(tempfile.mkdtemp(prefix="hist-", dir=self.tmp))
        historian = open_historian(load_settings(data_dir=data_dir))
        timed = TimedHistorian(historian)
        client_id = f"bench-ingest-{uuid.uuid4().hex[:8]}"
        ingest = MqttIngest(
            timed,
            broker.url,
            client_id=client_id,
            flush_s=params.flush_s,
            max_points=params.max_points,
            max_unacked=params.max_unacked,
            sparkplug=SparkplugMapping(enterprise=ENTERPRISE),
            host_id=f"bench-{client_id[-8:]}",
            mqtt_version=params.mqtt_version,
            json_topics=not params.workers,  # with workers: Sparkplug here, JSON in them
        )
        workers = None
        if params.workers:
            workers = DecodeWorkers(
                timed,
                broker.url,
                count=params.workers,
                client_id=client_id,
                flush_s=params.flush_s,
                max_points=params.max_points,
                max_unacked=params.max_unacked,
                mqtt_version=params.mqtt_version,
            )
        spy = None
        try:
            ingest.start()
            if workers is not None:
                workers.start()
                if not workers.wait_subscribed(60):
                    raise RuntimeError(f"decode workers did not subscribe: {workers.stats}")
            if not _until(lambda: ingest.stats.subscribed, 10):
                raise RuntimeError(f"ingest did not subscribe: {ingest.stats}")
            # warm-up: every tag once (Sparkplug: NBIRTH + DBIRTH), so tag creation is not timed
            t_warm = time.monotonic()
            self.pub.go("warmup")
            self.pub.result()
            warm = scen.warmup_points
            if not _until(lambda: timed.stored >= warm, 120):
                raise RuntimeError(f"warm-up not stored: {timed.stored} of {warm}")
            warmup_s = time.monotonic() - t_warm
            base = timed.stored
            writes0, write_s0 = timed.writes, timed.write_s
            quiet = self.wait_quiet(broker.pid)
            expected = scen.msgs * scen.per_msg
            if profile:
                spy = _start_py_spy(profile)
            pids = {"ingest": os.getpid(), "broker": broker.pid, "publisher": self.pub_pid}
            for i, pid in enumerate(workers.pids() if workers else []):
                pids[f"worker{i}"] = pid
            cpu = CpuWatch(pids)
            received0 = ingest.stats.received + (workers.stats.received if workers else 0)
            self.pub.go("data")
            box: list = []
            timed_out, pub = self._wait(lambda: timed.stored - base, expected, box)
            usage = cpu.done()
            if spy:
                _stop_py_spy(spy)
                spy = None
        finally:
            if spy:
                _stop_py_spy(spy)
            if workers is not None:
                workers.stop()
                for cid in workers.client_ids():
                    _delete_session(broker, cid, f"bench-none/{cid}")
            ingest.stop()
            _delete_session(broker, client_id, ingest.state_topic)
        stored = historian.count(ENTERPRISE) - base
        stats = ingest.stats
        if workers is not None:  # the workers' counters with the host's
            stats.received += workers.stats.received
            stats.acked += workers.stats.acked
            stats.dead_letters += workers.stats.dead_letters
        historian.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        t_end = timed.t_last or pub["t_acked"]
        elapsed = max(t_end - pub["t_start"], 1e-9)
        published = pub["msgs"] * scen.per_msg
        row = {
            "group": group,
            "scenario": scen.name,
            "label": scen.label,
            "client": "indunet MqttIngest"
            + (f" + {params.workers} decode workers" if params.workers else ""),
            "broker": broker.name,
            "qos": scen.qos,
            "params": params.label(),
            "params_raw": params.__dict__.copy(),
            "repeat": repeat,
            "msgs_published": pub["msgs"],
            "points_published": published,
            "points_stored": stored,
            "msgs_received": stats.received - received0,
            "loss_points": published - stored,
            "elapsed_s": round(elapsed, 3),
            "points_per_s": round(stored / elapsed, 1),
            "msgs_per_s": round(stored / scen.per_msg / elapsed, 1),
            "publish_msgs_per_s": round(pub["msgs"] / max(pub["t_sent"] - pub["t_start"], 1e-9), 1),
            "timed_out": timed_out,
            "warmup_points": base,
            "warmup_s": round(warmup_s, 3),
            "quiet_wait": quiet,
            "writes": timed.writes - writes0,
            "write_s": round(timed.write_s - write_s0, 3),
            "avg_points_per_write": round(
                (timed.stored - base) / max(timed.writes - writes0, 1), 1
            ),
            "dead_letters": stats.dead_letters,
            "rebirths_requested": stats.rebirths_requested,
            "acked": stats.acked,
            "cpu": usage,
        }
        self._print_row(row)
        self.rows.append(row)
        return row

    def run_bare(
        self, broker: Broker, scen: Scenario, *, group: str, repeat: int = 1, raw: bool = False
    ) -> dict:
        """A subscriber that only counts: paho (manual_ack False), or ``raw`` socket parsing."""
        ready = self.pub.encode(self._job(broker, scen, seed=repeat))
        self.pub_pid = ready["pid"]
        count = [0]
        t_last = [0.0]
        sub: Any = RawSubscriber(broker, count, t_last) if raw else None
        mine = f"indunet/v1/{ENTERPRISE}/"
        if sub is None:
            subscribed = threading.Event()

            def on_message(client: Any, userdata: Any, msg: Any) -> None:
                if msg.topic.startswith(mine):  # not other traffic on a shared broker
                    count[0] += 1
                    t_last[0] = time.monotonic()

            c = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
                protocol=paho.MQTTv5,
            )
            c.on_message = on_message
            c.on_connect = lambda cl, *a: cl.subscribe([("indunet/v1/#", 1), ("spBv1.0/#", 1)])
            c.on_subscribe = lambda *a: subscribed.set()
            props = Properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = 65535  # same as MqttIngest
            c.connect(broker.host, broker.port, keepalive=30, clean_start=True, properties=props)
            c.loop_start()
        try:
            if sub is None and not subscribed.wait(10):
                raise RuntimeError("bare subscriber did not subscribe")
            quiet = self.wait_quiet(broker.pid)
            cpu = CpuWatch(
                {"subscriber": os.getpid(), "broker": broker.pid, "publisher": self.pub_pid}
            )
            self.pub.go("data")
            timed_out, pub = self._wait(lambda: count[0], scen.msgs, [])
            usage = cpu.done()
        finally:
            if sub is None:
                c.disconnect()
                c.loop_stop()
            else:
                sub.close()
        elapsed = max((t_last[0] or pub["t_acked"]) - pub["t_start"], 1e-9)
        row = {
            "group": group,
            "scenario": scen.name,
            "label": scen.label,
            "client": "bare raw-socket subscriber" if raw else "bare paho subscriber",
            "broker": broker.name,
            "qos": scen.qos,
            "params": "MQTT 3.1.1, acks per recv(), stores nothing"
            if raw
            else "manual_ack=False, stores nothing",
            "quiet_wait": quiet,
            "repeat": repeat,
            "msgs_published": pub["msgs"],
            "points_published": pub["msgs"],
            "points_stored": None,
            "msgs_received": count[0],
            "loss_points": pub["msgs"] - count[0],
            "elapsed_s": round(elapsed, 3),
            "points_per_s": None,
            "msgs_per_s": round(count[0] / elapsed, 1),
            "publish_msgs_per_s": round(pub["msgs"] / max(pub["t_sent"] - pub["t_start"], 1e-9), 1),
            "timed_out": timed_out,
            "cpu": usage,
        }
        self._print_row(row)
        self.rows.append(row)
        return row

    def probe_window(
        self, broker: Broker, label: str, version: int, receive_max: int | None
    ) -> dict:
        """Count how many QoS 1 messages the broker sends a subscriber that never acknowledges."""
        self.pub.encode(
            {
                "kind": "probe",
                "msgs": 3000,
                "qos": 1,
                "t0": 0,
                "seed": 0,
                "host": broker.host,
                "port": broker.port,
                "window": 500,
            }
        )
        got = [0]
        subscribed = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-probe-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if version == 5 else paho.MQTTv311,
            clean_session=None if version == 5 else True,
            manual_ack=True,
        )
        c.on_message = lambda *a: got.__setitem__(0, got[0] + 1)
        c.on_subscribe = lambda *a: subscribed.set()
        if version == 5:
            props = None
            if receive_max:
                props = Properties(PacketTypes.CONNECT)
                props.ReceiveMaximum = receive_max
            c.connect(broker.host, broker.port, clean_start=True, properties=props)
        else:
            c.connect(broker.host, broker.port)
        c.loop_start()
        try:
            c.subscribe("bench/probe/#", 1)
            subscribed.wait(10)
            self.pub.go("data")
            self.pub.result()
            time.sleep(1.5)
        finally:
            c.disconnect()
            c.loop_stop()
        out = {
            "broker": broker.name,
            "client": label,
            "published_qos1": 3000,
            "received_unacked": got[0],
        }
        print(f"  window probe  {broker.name:<17} {label:<38} -> {got[0]:>5} messages in flight")
        return out

    # ---------------------------------------------------------------- output
    @staticmethod
    def _print_row(r: dict) -> None:
        rate = f"{r['msgs_per_s']:>9,.0f} msg/s"
        if r.get("points_per_s") is not None and r["scenario"] != "single":
            rate = f"{r['points_per_s']:>10,.0f} pt/s"
        print(
            f"  {r['group']:<7} {r['label']:<27} {r['broker']:<17} {r['client'][:14]:<14} "
            f"{r['params'][-44:]:<44} {rate}  loss {r['loss_points']:>7,}  "
            f"{r['elapsed_s']:>6.2f}s  cpu {r['cpu']}",
            flush=True,
        )


class RawSubscriber:
    """Reference only: MQTT 3.1.1 on a raw socket, parses PUBLISH packets, one PUBACK send per
    ``recv()``; shows what the Python-level MQTT client costs (it is not the indunet ingest)."""

    def __init__(self, broker: Broker, count: list, t_last: list) -> None:
        self.count, self.t_last = count, t_last
        self.sock = socket.create_connection((broker.host, broker.port), timeout=10)
        self.sock.sendall(_connect_packet(f"bench-raw-{uuid.uuid4().hex[:8]}"))
        if self.sock.recv(4)[:1] != b"\x20":
            raise RuntimeError("raw subscriber: no CONNACK")
        filters = b"".join(
            len(f).to_bytes(2, "big") + f + b"\x01" for f in (b"indunet/v1/#", b"spBv1.0/#")
        )
        body = b"\x00\x01" + filters
        self.sock.sendall(b"\x82" + _varint(len(body)) + body)
        suback = self.sock.recv(2)
        if suback[:1] != b"\x90":
            raise RuntimeError("raw subscriber: no SUBACK")
        rest = suback[1]
        while rest:
            rest -= len(self.sock.recv(rest))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = b""
        sock = self.sock
        while not self._stop.is_set():
            try:
                got = sock.recv(1 << 18)
            except TimeoutError:
                continue
            except OSError:
                return
            if not got:
                return
            buf = buf + got if buf else got
            acks = []
            n = 0
            pos, end = 0, len(buf)
            while end - pos >= 2:
                first = buf[pos]
                length, mult, i = 0, 1, pos + 1
                while i < end:
                    b = buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    break
                if i + length > end:
                    break
                if first >> 4 == 3:
                    n += 1
                    if first & 0x06:
                        tlen = int.from_bytes(buf[i : i + 2], "big")
                        acks.append(b"\x40\x02" + buf[i + 2 + tlen : i + 4 + tlen])
                pos = i + length
            buf = buf[pos:]
            if acks:
                sock.sendall(b"".join(acks))
            if n:
                self.count[0] += n
                self.t_last[0] = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
        self.sock.close()


def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


# ============================================================== profiling (py-spy)
def _py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def _start_py_spy(out: Path) -> subprocess.Popen:
    spy = _py_spy()
    if not spy:
        raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(os.getpid()),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)  # let it attach before the stream starts
    return proc


def _stop_py_spy(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _frame(text: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)`` with the module path shortened."""
    name, _, where = text.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarize_profile(path: Path, top: int = 20) -> dict:
    """Self and inclusive sample shares per function, and per thread, from py-spy raw output."""
    total = 0
    self_c: Counter = Counter()
    incl: Counter = Counter()
    threads: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        frames = frames[1:] if frames[0].startswith("thread") else frames
        total += count
        if "paho" in stack and "_flush_loop" not in stack:
            thread = "paho network loop"
        elif "_flush_loop" in stack:
            thread = "mqtt-flush (batch writer)"
        threads[thread] += count
        names = [_frame(f) for f in frames]
        if names:
            self_c[names[-1]] += count
        for name in set(names):
            incl[name] += count

    def pct(c: Counter, only_src: bool = False) -> list[tuple[str, float]]:
        items = [(k, v) for k, v in c.most_common() if not only_src or "indunet/" in k]
        return [(k, round(100 * v / max(total, 1), 1)) for k, v in items[:top]]

    return {
        "samples": total,
        "threads_pct": pct(threads),
        "self_pct": pct(self_c),
        "inclusive_pct_src": pct(incl, only_src=True),
        "inclusive_pct_all": pct(incl),
    }


# ============================================================== peer (MING via peers/ming)
def run_peer(args: argparse.Namespace, tag: str) -> dict:
    """Run peers/ming: setup.sh (if needed), run.sh, bench.py single+batch, stop.sh (always)."""
    out_dir = RESULTS / f"mqtt_ingest-{tag}-ming"
    out_dir.mkdir(parents=True, exist_ok=True)
    py = MING / "venv" / "bin" / "python"
    if not py.exists() or not (MING / "nodered" / "node_modules" / "node-red").exists():
        subprocess.run(["bash", str(PEER / "setup.sh")], check=True)
    runs: list[dict] = []
    commands: list[str] = []
    try:
        for profile in args.peer_profiles.split(","):
            subprocess.run(["bash", str(PEER / "stop.sh")], check=False)
            env = {**os.environ, "MING_BROKER_QUEUE": profile}
            commands.append(f"MING_BROKER_QUEUE={profile} bash {PEER}/run.sh")
            subprocess.run(["bash", str(PEER / "run.sh")], check=True, env=env)
            cmd = [
                str(py), str(PEER / "bench.py"), "--scenarios", "single,batch",
                "--repeats", str(args.peer_repeats),
                "--single-msgs", str(args.peer_single), "--batch-msgs", str(args.peer_batch),
                "--quiet", str(args.peer_quiet),
                "--out", str(out_dir), "--tag", f"{tag}-{profile}",
            ]  # fmt: skip
            commands.append(" ".join(cmd))
            subprocess.run(cmd, check=True)
            with open(out_dir / f"runs-{tag}-{profile}.jsonl") as f:
                runs.extend(json.loads(line) for line in f if line.strip())
            commands.append(f"bash {PEER}/stop.sh")
            subprocess.run(["bash", str(PEER / "stop.sh")], check=False)
    finally:
        subprocess.run(["bash", str(PEER / "stop.sh")], check=False)
    return {"runs": runs, "commands": commands, "out_dir": str(out_dir)}


# ============================================================== micro: in-process costs
def _unpack(packet: bytes) -> tuple[str, bytes]:
    """(topic, payload) of an encoded PUBLISH packet."""
    i = 1
    while packet[i] & 0x80:
        i += 1
    i += 1
    qos = (packet[0] >> 1) & 3
    tlen = int.from_bytes(packet[i : i + 2], "big")
    topic = packet[i + 2 : i + 2 + tlen].decode()
    return topic, packet[i + 2 + tlen + (2 if qos else 0) :]


def _per(fn: Any, n_items: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs of ``fn()``, in microseconds per item."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(best / n_items * 1e6, 3)


def run_micro(tmp: Path) -> dict:
    """In-process costs per point (no MQTT): decoders, batch building, historian writes."""
    from indunet.connect.codec.sparkplug import SparkplugHost
    from indunet.connect.codec.uns_json import UnsJsonDecoder, decode
    from indunet.ingest.batch import BatchBuilder
    from indunet.ingest.values import TimeParser

    out: dict[str, Any] = {}
    BatchBuilder(ENTERPRISE).extend_numbers(["x"], 1, [1.0], "warm-up")
    BatchBuilder(ENTERPRISE).take()  # pyarrow's first list conversion imports pandas (~1 s)
    t0 = int(time.time() * 1000) - 3_600_000
    now = int(time.time() * 1000)
    times = TimeParser(now_ms=now)
    batch = [_unpack(p) for p in gen_batch(1000, 1, t0, 100, 100, 1)]
    npts = 100 * len(batch)

    def reference_batch() -> None:
        b = BatchBuilder(ENTERPRISE)
        for topic, payload in batch:
            for tag, ts, v in decode(topic, payload, times).points:
                b.add(tag, ts, v, topic)

    out["json_batch_reference_decode_add_us_per_point"] = _per(reference_batch, npts)
    decoder = UnsJsonDecoder()

    def stream_batch() -> BatchBuilder:
        builders: dict = {}
        for topic, payload in batch:
            decoder.decode_into(topic, payload, now, builders, topic)
        return builders[ENTERPRISE]

    out["json_batch_decode_into_us_per_point"] = _per(stream_batch, npts)
    out["json_loads_only_us_per_point"] = _per(lambda: [json.loads(p) for _, p in batch], npts)
    singles = [_unpack(p) for p in gen_single(20_000, 1, t0, 100, 10, 1)]

    def stream_single() -> None:
        builders: dict = {}
        for topic, payload in singles:
            decoder.decode_into(topic, payload, now, builders, topic)

    out["json_single_decode_into_us_per_msg"] = _per(stream_single, len(singles))
    births, data = gen_sparkplug(2000, 0, t0, 4, 5, 50, 1)
    births_u, data_u = [_unpack(p) for p in births], [_unpack(p) for p in data]

    def spb() -> None:
        host = SparkplugHost(SparkplugMapping(enterprise=ENTERPRISE))
        for topic, payload in births_u:
            host.handle(topic, payload)
        for topic, payload in data_u:
            host.handle(topic, payload)

    out["spb_handle_us_per_metric"] = _per(spb, 50 * len(data_u))
    b = stream_batch()
    out["batchbuilder_take_us_per_point"] = _per(lambda: BatchBuilder.take(b), npts, repeat=1)
    historian = open_historian(load_settings(data_dir=Path(tempfile.mkdtemp(dir=tmp))))
    first = stream_batch().take()
    t = time.perf_counter()
    historian.write(first, source="mqtt")
    out["historian_first_write_10k_new_tags_s"] = round(time.perf_counter() - t, 3)
    for n_msgs in (200, 660, 2000):
        msgs = [_unpack(p) for p in gen_batch(n_msgs, 1, t0 + 10_000 * n_msgs, 100, 100, 2)]
        builders: dict = {}
        for topic, payload in msgs:
            decoder.decode_into(topic, payload, now, builders, topic)
        pts = builders[ENTERPRISE].take()
        t = time.perf_counter()
        historian.write(pts, source="mqtt")
        out[f"historian_write_{len(pts)}_known_tags_us_per_point"] = round(
            (time.perf_counter() - t) / len(pts) * 1e6, 3
        )
    paths = [f"s/a/l/m{m}/t{k}" for m in range(100) for k in range(100)]
    t = time.perf_counter()
    historian._load_tags(ENTERPRISE, paths)
    out["load_tags_10k_ms"] = round((time.perf_counter() - t) * 1000, 1)
    historian.close()
    for k, v in out.items():
        print(f"  {k:<52} {v:>10}")
    return out


# ============================================================== versions and machine
def _cmd(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    return (
        (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "n/a"
    )


def environment() -> dict:
    import duckdb
    import google.protobuf
    import pyarrow

    cpu = "n/a"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "n/a"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    nr = "n/a"
    with contextlib.suppress(OSError, ValueError):
        nr = json.loads((MING / "nodered/node_modules/node-red/package.json").read_text())[
            "version"
        ]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "paho_mqtt": paho.__version__ if hasattr(paho, "__version__") else _paho_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "protobuf": google.protobuf.__version__,
        "mosquitto": _cmd(["dpkg-query", "-W", "-f=${Version}", "mosquitto"]),
        "node": _cmd(["node", "--version"]),
        "node_red": nr,
        "influxdb": _cmd(["dpkg-query", "-W", "-f=${Version}", "influxdb"]),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _paho_version() -> str:
    import paho.mqtt

    return paho.mqtt.__version__


# ============================================================== report
def _median_rows(rows: list[dict], key: str) -> dict:
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return {}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def summarize(rows: list[dict], group: str) -> list[dict]:
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["group"] == group:
            by.setdefault((r["label"], r["broker"], r["client"], r["params"]), []).append(r)
    out = []
    for (label, broker, client, params), rs in by.items():
        out.append(
            {
                "label": label,
                "scenario": rs[0]["scenario"],
                "qos": rs[0]["qos"],
                "broker": broker,
                "client": client,
                "params": params,
                "params_raw": rs[0].get("params_raw"),
                "runs": len(rs),
                "msgs_published": sum(r["msgs_published"] for r in rs),
                "points_published": sum(r["points_published"] for r in rs),
                "points_stored": sum(r["points_stored"] or 0 for r in rs)
                if rs[0]["points_stored"] is not None
                else None,
                "msgs_received": sum(r["msgs_received"] for r in rs),
                "loss_per_run": [r["loss_points"] for r in rs],
                "msgs_per_s": _median_rows(rs, "msgs_per_s"),
                "points_per_s": _median_rows(rs, "points_per_s"),
                "publish_msgs_per_s": _median_rows(rs, "publish_msgs_per_s"),
                "others_cores": _median_rows(
                    [{"o": r["cpu"].get("others_cores")} for r in rs], "o"
                ),
            }
        )
    return out


def pick_best(summary: list[dict], scenario: str, broker: str) -> Params | None:
    """Return the parameters with the best median rate for ``scenario`` on ``broker``."""
    cands = [
        s for s in summary
        if s["scenario"] == scenario and s["broker"] == broker and s["points_per_s"]
        and s["params_raw"]["mqtt_version"] == 5
    ]  # fmt: skip
    if not cands:
        return None
    best = max(cands, key=lambda s: s["points_per_s"]["median"])
    return Params(**best["params_raw"])


def print_table(title: str, summary: list[dict]) -> None:
    print(f"\n{title}")
    head = (
        f"{'scenario':<28}{'broker':<18}{'client / params':<58}{'runs':>4} "
        f"{'msgs/s (median, min-max)':>30} {'points/s (median)':>18} {'loss per run':>14} "
        f"{'others':>6}"
    )
    print(head)
    print("-" * len(head))
    for s in summary:
        m, p = s["msgs_per_s"], s["points_per_s"]
        mps = f"{m['median']:,.0f} ({m['min']:,.0f}-{m['max']:,.0f})" if m else "-"
        pps = f"{p['median']:,.0f}" if p else "-"
        who = s["client"] if s["client"].startswith("bare") else s["params"]
        loss = ",".join(f"{x:,}" for x in s["loss_per_run"])
        other = f"{s['others_cores']['median']:.2f}" if s["others_cores"] else "-"
        print(
            f"{s['label']:<28}{s['broker']:<18}{who[:57]:<58}{s['runs']:>4} {mps:>30} "
            f"{pps:>18} {loss:>14} {other:>6}"
        )
    print("(others = CPU cores used by processes outside the benchmark during the run, median)")


def verdicts(main: list[dict], peer: dict | None) -> list[dict]:
    def find(scenario: str, qos: int, bare: bool = False) -> dict | None:
        for s in main:
            if (
                s["scenario"] == scenario
                and s["qos"] == qos
                and (
                    s["client"] == "bare paho subscriber"
                    if bare
                    else not s["client"].startswith("bare")
                )
            ):
                return s
        return None

    out = []
    b = find("batch", 1) or find("batch", 0)
    if b:
        v = b["points_per_s"]["median"]
        out.append(
            {
                "target": f"{b['label']}: >= 500,000 points/s (goal 1,000,000)",
                "value": v,
                "met": v >= TARGETS["batch_pps"],
                "goal_met": v >= TARGETS["batch_pps_goal"],
            }
        )
    s0 = find("single", 0)
    if s0:
        v = s0["msgs_per_s"]["median"]
        out.append(
            {"target": "single-value QoS0: >= 20,000 msgs/s", "value": v, "met": v >= 20_000}
        )
    s1, bare = find("single", 1), find("single", 1, bare=True)
    raw = next(
        (
            s
            for s in main
            if s["scenario"] == "single" and s["qos"] == 1 and "raw-socket" in s["client"]
        ),
        None,
    )
    if s1 and raw:
        v = s1["msgs_per_s"]["median"] / raw["msgs_per_s"]["median"]
        out.append(
            {
                "target": "(reference) single-value QoS1 commit-before-ack vs a raw-socket "
                "subscriber that stores nothing, >= 80%",
                "value": round(v, 3),
                "indunet_msgs_per_s": s1["msgs_per_s"]["median"],
                "raw_msgs_per_s": raw["msgs_per_s"]["median"],
                "met": v >= TARGETS["single_qos1_vs_bare"],
                "reference": True,
            }
        )
    if s1 and bare:
        v = s1["msgs_per_s"]["median"] / bare["msgs_per_s"]["median"]
        out.append(
            {
                "target": "single-value QoS1 commit-before-ack >= 80% of bare paho QoS1",
                "value": round(v, 3),
                "indunet_msgs_per_s": s1["msgs_per_s"]["median"],
                "bare_msgs_per_s": bare["msgs_per_s"]["median"],
                "met": v >= TARGETS["single_qos1_vs_bare"],
            }
        )
    sp = find("spb", 0) or find("spb", 1)
    if sp:
        v = sp["points_per_s"]["median"]
        out.append(
            {"target": f"{sp['label']}: >= 300,000 metrics/s", "value": v, "met": v >= 300_000}
        )
    if peer and peer.get("runs"):
        for prof in sorted({r.get("broker_profile") for r in peer["runs"]}):
            for kind, ours in (("single-point", s1), ("batch-100", b)):
                rs = [
                    r
                    for r in peer["runs"]
                    if r.get("broker_profile") == prof and kind in r["scenario"]
                ]
                if not rs or not ours:
                    continue
                theirs = statistics.median(r["stored_points_per_s"] for r in rs)
                mine = ours["points_per_s"]["median"]
                out.append(
                    {
                        "target": f"indunet {ours['label']} / MING {kind} (broker queue {prof})"
                        " >= 10x",
                        "value": round(mine / theirs, 1),
                        "indunet_points_per_s": mine,
                        "indunet_loss_per_run": ours["loss_per_run"],
                        "peer_points_per_s": theirs,
                        "peer_loss_per_run": [r["points_lost"] for r in rs],
                        "met": mine / theirs >= TARGETS["peer_ratio"],
                    }
                )
    return out


def raw_rate(main: list[dict]) -> float:
    """Return the raw-socket subscriber's single-value QoS 1 rate (msg/s), 0 when not run."""
    for s in main:
        if s["scenario"] == "single" and s["qos"] == 1 and "raw-socket" in s["client"]:
            return s["msgs_per_s"]["median"]
    return 0.0


def both_cores_verdicts(main: list[dict], peer: dict | None) -> list[dict]:
    """Issue 22: batched JSON QoS 1 >= 3 M points/s, single QoS 1 >= 80 k msg/s, 0 loss."""
    out = []
    for s in main:
        if s["qos"] != 1 or s["client"].startswith("bare"):
            continue
        if s["scenario"] not in ("batch", "single"):
            continue
        workers = (s.get("params_raw") or {}).get("workers", 0)
        batch = s["scenario"] == "batch"
        value = s["points_per_s" if batch else "msgs_per_s"]["median"]
        target = 3_000_000 if batch else 80_000
        lost = sum(s["loss_per_run"])
        v = {
            "issue22": True,
            "kind": "batched JSON x100 QoS1" if batch else "single-value QoS1",
            "setup": f"decode workers {workers}",
            "unit": "points/s" if batch else "msg/s",
            "target": f"{s['label']} with {workers} decode workers: >= {target:,} "
            f"{'points' if batch else 'msgs'}/s, 0 loss",
            "value": value,
            "loss": lost,
            "met": value >= target and lost == 0,
        }
        kind = "batch-100" if batch else "single-point"
        rs = [r for r in (peer or {}).get("runs", []) if kind in r["scenario"]]
        if rs:
            theirs = statistics.median(r["stored_points_per_s"] for r in rs)
            v["vs_ming"] = round(s["points_per_s"]["median"] / max(theirs, 1e-9), 1)
        out.append(v)
    return out


# ============================================================== main
def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="main + peer only, small sizes, 1 repeat, short quiet wait: under 2 minutes",
    )
    ap.add_argument(
        "--blocks",
        default=None,
        help="comma list of probe,sweep,main,system,profile,micro,peer (all; quick: main,peer)",
    )
    ap.add_argument("--repeats", type=int, default=None, help="main block repeats (3; quick 1)")
    ap.add_argument("--batch-msgs", type=int, default=None, help="batched messages (20,000)")
    ap.add_argument("--single-msgs", type=int, default=None, help="single messages (150,000)")
    ap.add_argument("--spb-msgs", type=int, default=None, help="Sparkplug DDATA (20,000)")
    ap.add_argument("--inflight", type=int, default=1000, help="private broker max_inflight")
    ap.add_argument("--queued", type=int, default=0, help="private broker max_queued (0: no cap)")
    ap.add_argument("--pub-window", type=int, default=2000, help="publisher QoS1 window")
    ap.add_argument("--max-unacked", type=int, default=None, help="tuned MqttIngest max_unacked")
    ap.add_argument("--max-points", type=int, default=None, help="tuned MqttIngest max_points")
    ap.add_argument("--flush-s", type=float, default=None, help="tuned MqttIngest flush_s")
    ap.add_argument("--idle", type=float, default=5.0, help="s without progress that end a run")
    ap.add_argument("--max-wait", type=float, default=600.0)
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="max s to wait for an idle machine (60; quick 3)",
    )
    ap.add_argument("--sweep-repeats", type=int, default=None, help="sweep repeats (2; quick 1)")
    ap.add_argument("--peer-profiles", default=None, help="default,unlimited (quick: unlimited)")
    ap.add_argument("--peer-repeats", type=int, default=1)
    ap.add_argument("--peer-single", type=int, default=None, help="peer single msgs (30,000)")
    ap.add_argument("--peer-batch", type=int, default=None, help="peer batch msgs (5,000)")
    ap.add_argument("--tag", default=time.strftime("%Y%m%dT%H%M%S"))
    ap.add_argument(
        "--decode-workers",
        default="0,2",
        help="decode worker counts compared in the main block (batched and single QoS 1), "
        "comma list; 0 is the single-process ingest (always run)",
    )
    args = ap.parse_args()
    q = args.quick
    args.repeats = args.repeats or (1 if q else 3)
    args.sweep_repeats = args.sweep_repeats or (1 if q else 2)
    args.batch_msgs = args.batch_msgs or (10_000 if q else 20_000)
    args.single_msgs = args.single_msgs or (60_000 if q else 150_000)
    args.spb_msgs = args.spb_msgs or (8_000 if q else 20_000)
    # quick: few enough single messages that the peer's HTTP sockets (one per write) do not
    # make its harness wait for TIME_WAIT expiry before the batch run
    args.peer_single = args.peer_single or (1_500 if q else 30_000)
    args.peer_quiet = 2.0 if q else 5.0
    args.peer_batch = args.peer_batch or (2_000 if q else 5_000)
    args.peer_profiles = args.peer_profiles or ("unlimited" if q else "default,unlimited")
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (3.0 if q else 60.0)
    args.blocks = args.blocks or (
        "main,peer" if q else "probe,sweep,main,system,profile,micro,peer"
    )
    blocks = set(args.blocks.split(","))
    worker_counts = [int(n) for n in args.decode_workers.split(",") if n.strip() and int(n) > 0]
    tag = args.tag + ("-quick" if q else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS / f"mqtt_ingest-{tag}.json"
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))

    env = environment()
    print(
        f"machine: {env['nproc']} CPU ({env['cpu']}), {env['ram']} RAM; "
        f"load {env['loadavg_at_start']}"
    )
    print(
        f"python {env['python']}, paho-mqtt {env['paho_mqtt']}, duckdb {env['duckdb']}, "
        f"mosquitto {env['mosquitto']}, node-red {env['node_red']}, influxdb {env['influxdb']}"
    )
    report: dict[str, Any] = {"environment": env, "args": vars(args), "targets": TARGETS}
    bench = Bench(args)
    private = Broker.private(args.inflight, args.queued)
    private20 = Broker.private(20, 0)
    private20.name = f"private20 :{private20.port}"
    system = Broker.system()
    report["brokers"] = {
        "private": private.settings | {"port": private.port},
        "private20": private20.settings | {"port": private20.port},
        "system": system.settings,
    }
    print(f"private broker: port {private.port}, {private.settings}")

    def scen(name: str, qos: int, scale: float = 1.0) -> Scenario:
        if name == "batch":
            return Scenario("batch", qos, max(int(args.batch_msgs * scale), 100), 100)
        if name == "single":
            return Scenario("single", qos, max(int(args.single_msgs * scale), 1000), 1)
        return Scenario("spb", qos, max(int(args.spb_msgs * scale), 100), 50)

    tuned = {  # MqttIngest's defaults; replaced by the sweep's best when the sweep runs
        "batch": Params(),
        "single": Params(),
        "spb": Params(),
    }
    for p in tuned.values():
        p.max_unacked = args.max_unacked or p.max_unacked
        p.max_points = args.max_points or p.max_points
        p.flush_s = args.flush_s or p.flush_s
    try:
        # ------------------------------------------------------------ probe
        if "probe" in blocks:
            print("\n== probe: effective in-flight window (QoS 1, subscriber never acknowledges)")
            report["probe"] = [
                bench.probe_window(b, label, v, rm)
                for b in (system, private)
                for label, v, rm in (
                    ("MQTT 3.1.1", 4, None),
                    ("MQTT 5, no ReceiveMaximum", 5, None),
                    ("MQTT 5, ReceiveMaximum 65535 (MqttIngest)", 5, 65535),
                )
            ]
        # ------------------------------------------------------------ sweep
        if "sweep" in blocks:
            print(f"\n== sweep: MqttIngest parameters ({args.sweep_repeats} run(s) each)")
            s = 0.2 if q else 0.5
            v4 = 4
            grid = {
                "batch": [
                    Params(),
                    Params(100, 20_000, 0.2),
                    Params(500, 50_000, 0.2),
                    Params(2000, 200_000, 0.2),
                    Params(1000, 20_000, 0.2, v4),
                ],
                "single": [
                    Params(),
                    Params(1000, 20_000, 0.2),
                    Params(5000, 50_000, 0.2),
                    Params(20000, 200_000, 0.5),
                    Params(1000, 20_000, 0.2, v4),
                    Params(5000, 50_000, 0.2, v4),
                ],
                "spb": [
                    Params(),
                    Params(500, 50_000, 0.2),
                    Params(2000, 100_000, 0.2),
                    Params(1000, 20_000, 0.2, v4),
                ],
            }
            if q:
                grid = {k: [v[0], v[2], v[-1]] for k, v in grid.items()}
            for rep in range(1, args.sweep_repeats + 1):
                for name, plist in grid.items():
                    for p in plist:
                        sc = scen(name, 1 if name != "spb" else 0, s)
                        bench.run_ingest(private, sc, p, group="sweep", repeat=rep)
                # the broker's window: MQTT 3.1.1 gets max_inflight_messages (20 here, the
                # default); MQTT 5 with ReceiveMaximum 65535 is not bound by it
                for p in (Params(20, 20_000, 0.2, v4), Params(1000, 20_000, 0.2, v4), Params()):
                    bench.run_ingest(
                        private20, scen("single", 1, s / 4), p, group="sweep", repeat=rep
                    )
                bench.run_ingest(
                    private20, scen("batch", 1, s / 4), Params(20, 20_000, 0.2, v4),
                    group="sweep", repeat=rep,
                )  # fmt: skip
            # the stock broker: 3.1.1 window 20 + queue 1000 under a burst
            bench.run_ingest(
                system, scen("single", 1, s / 4), Params(20, 20_000, 0.2, v4), group="sweep"
            )
            report["sweep"] = summarize(bench.rows, "sweep")
            print_table("sweep summary", report["sweep"])
            for name in tuned:
                best = pick_best(report["sweep"], name, private.name)  # MQTT 5 only
                if best and not (args.max_unacked or args.max_points or args.flush_s):
                    tuned[name] = best
            report["tuned"] = {k: v.__dict__ for k, v in tuned.items()}
            print(f"tuned (best median in the sweep): { {k: v.label() for k, v in tuned.items()} }")
        # ------------------------------------------------------------ main
        if "main" in blocks:
            print(f"\n== main: private broker, tuned parameters, {args.repeats} repeat(s)")
            for rep in range(1, args.repeats + 1):
                for name, qos in (("batch", 1), ("batch", 0)):
                    bench.run_ingest(
                        private, scen(name, qos), tuned[name], group="main", repeat=rep
                    )
                bench.run_ingest(
                    private, scen("single", 0), tuned["single"], group="main", repeat=rep
                )
                bench.run_ingest(
                    private, scen("single", 1), tuned["single"], group="main", repeat=rep
                )
                bench.run_bare(private, scen("single", 1), group="main", repeat=rep)
                bench.run_bare(private, scen("single", 0), group="main", repeat=rep)
                bench.run_bare(private, scen("single", 1), group="main", repeat=rep, raw=True)
                bench.run_ingest(private, scen("spb", 0), tuned["spb"], group="main", repeat=rep)
                bench.run_ingest(private, scen("spb", 1), tuned["spb"], group="main", repeat=rep)
                for n in worker_counts:  # issue 22: decode workers beside the same rows
                    for name in ("batch", "single"):
                        p = Params(**(tuned[name].__dict__ | {"workers": n}))
                        bench.run_ingest(private, scen(name, 1), p, group="main", repeat=rep)
            report["main"] = summarize(bench.rows, "main")
            print_table("main summary (private broker)", report["main"])
        # ------------------------------------------------------------ system broker
        if "system" in blocks:
            print("\n== system: stock Mosquitto on 127.0.0.1:1883 (inflight 20, queue 1000)")
            sessions = _sys_counts()
            bench.run_ingest(system, scen("batch", 1, 0.5), tuned["batch"], group="system")
            bench.run_ingest(system, scen("single", 1, 0.5), tuned["single"], group="system")
            bench.run_bare(system, scen("single", 1, 0.5), group="system")
            bench.run_ingest(system, scen("single", 0, 0.5), tuned["single"], group="system")
            bench.run_ingest(system, scen("single", 1, 0.5), DEFAULT_PARAMS, group="system")
            report["system"] = summarize(bench.rows, "system")
            report["system_broker_clients"] = sessions.result()
            print_table("system broker summary", report["system"])
            print(
                "system broker $SYS client counts during the block: "
                f"{report['system_broker_clients']}"
            )
        # ------------------------------------------------------------ micro
        if "micro" in blocks:
            print("\n== micro: in-process costs (no MQTT)")
            report["micro"] = run_micro(bench.tmp)
        # ------------------------------------------------------------ profile
        if "profile" in blocks and _py_spy():
            print("\n== profile: py-spy on the ingest process (separate runs, private broker)")
            report["profile"] = {}
            for name, qos in (("batch", 1), ("single", 1), ("spb", 0)):
                path = RESULTS / f"mqtt_ingest-{tag}-pyspy-{name}.txt"
                row = bench.run_ingest(
                    private, scen(name, qos, 0.5), tuned[name], group="profile", profile=path
                )
                summ = summarize_profile(path)
                summ["rate"] = row["points_per_s"]
                summ["raw"] = str(path.relative_to(HERE.parent))
                report["profile"][name] = summ
                _print_profile(name, summ)
    finally:
        bench.close()
        private.stop()
        private20.stop()
    # ---------------------------------------------------------------- peer
    if "peer" in blocks:
        print("\n== peer: Mosquitto -> Node-RED -> InfluxDB 1.x (peers/ming harness)")
        report["peer"] = run_peer(args, tag)
    report["verdicts"] = verdicts(report.get("main", []), report.get("peer"))
    report["verdicts"] += both_cores_verdicts(report.get("main", []), report.get("peer"))
    report["rows"] = bench.rows
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print("\n== verdicts")
    for v in report["verdicts"]:
        mark = "INFO" if v.get("reference") else ("MET " if v["met"] else "MISS")
        print(f"  [{mark}] {v['target']}: {v['value']:,}")
        if "vs_ming" in v:
            print(f"         {v['vs_ming']}x MING (Mosquitto -> Node-RED -> InfluxDB) points/s")
        if "peer_points_per_s" in v:
            print(
                f"         indunet {v['indunet_points_per_s']:,.0f} pt/s (loss "
                f"{v['indunet_loss_per_run']}), MING {v['peer_points_per_s']:,.0f} pt/s "
                f"(loss {v['peer_loss_per_run']})"
            )
    both = [v for v in report["verdicts"] if v.get("issue22")]
    if both:
        best = {v["kind"]: v for v in sorted(both, key=lambda v: v["value"])}
        ok = all(v["met"] for v in best.values()) and len(best) == 2
        print(
            f"\nVERDICT issue 22 both cores for ingest: {'MET' if ok else 'MISSED'} — "
            + "; ".join(
                f"{k} best {v['value']:,.0f} {v['unit']} ({v['setup']}, loss {v['loss']})"
                for k, v in best.items()
            )
            + f"; raw-socket subscriber {raw_rate(report.get('main', [])):,.0f} msg/s"
        )
    print(f"\nresults: {out_path}")
    return 0


class _SysCounter:
    """Collect $SYS/broker/clients/* of the system broker in the background (10 s interval)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-sys-{uuid.uuid4().hex[:6]}"
        )
        self.c.on_message = lambda c, u, m: self.values.__setitem__(
            m.topic.rsplit("/", 1)[-1], m.payload.decode()
        )
        self.c.on_connect = lambda c, *a: c.subscribe("$SYS/broker/clients/+", 0)
        try:
            self.c.connect(*SYSTEM_BROKER)
            self.c.loop_start()
        except OSError:
            pass

    def result(self) -> dict:
        with contextlib.suppress(Exception):
            self.c.disconnect()
            self.c.loop_stop()
        return self.values


def _sys_counts() -> _SysCounter:
    return _SysCounter()


def _print_profile(name: str, summ: dict) -> None:
    print(f"  profile {name}: {summ['samples']} samples; threads {summ['threads_pct'][:4]}")
    print("    inclusive (src):")
    for k, v in summ["inclusive_pct_src"][:14]:
        print(f"      {v:5.1f}%  {k}")
    print("    self:")
    for k, v in summ["self_pct"][:12]:
        print(f"      {v:5.1f}%  {k}")


if __name__ == "__main__":
    sys.exit(main())
