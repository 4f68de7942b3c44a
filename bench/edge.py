"""Edge agent benchmark: Modbus and OPC UA load, and the ThingsBoard IoT Gateway as a peer.

Everything runs on this machine, each part in a process of its own so that CPU is counted per
process (``/proc/<pid>/stat`` utime + stime over the measured window ÷ wall time):

* a private Mosquitto on a free loopback port (config in a temp dir, run as the current user);
* 20 pymodbus TCP servers (one process) with 250 holding registers each (5,000 registers),
  every register changing once a second; the servers count the requests they see;
* the indunet edge agent (``indunet.edge.service.run_agent``) polling them at 1 Hz, JSON to
  the broker; then the ThingsBoard IoT Gateway (PyPI ``thingsboard-gateway``, in its own venv
  ``/tmp/tbgw-venv``) polling the same servers with the same tags, to the same broker;
* an asyncua server (its own process) with 10,000 variables changing at 1 Hz, read by the agent
  with subscriptions and published as a Sparkplug B edge node; then a browse of its 10,000 nodes.

A paho subscriber in this process counts the points that reach the broker.

    .venv/bin/python bench/edge.py --quick              # about 2 minutes
    .venv/bin/python bench/edge.py --json bench/results/edge.json

The peer's venv is created on first use (``python3 -m venv /tmp/tbgw-venv`` then
``pip install thingsboard-gateway pymodbus==3.9.2 pyserial pyserial-asyncio``; the gateway's
Modbus connector wants exactly pymodbus 3.9.2 and would otherwise pip-install it at start).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TBGW_VENV = Path("/tmp/tbgw-venv")
TBGW_PACKAGES = ["thingsboard-gateway", "pymodbus==3.9.2", "pyserial", "pyserial-asyncio"]
DEVICES, REGISTERS, OPC_ITEMS = 20, 250, 10_000
TICK = os.sysconf("SC_CLK_TCK")
_TB_RPC = "v1/devices/me/rpc/request/"


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_port(port: int, timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def stop_process(proc: subprocess.Popen | None) -> None:
    """Stop a process this script started (SIGTERM, then SIGKILL)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ----------------------------------------------------------------------------- child processes
def serve_modbus(ports: list[int]) -> None:
    """Child: run one pymodbus server per port; change every register each second.

    Answers ``count`` on stdin with a JSON line of the requests each server has seen.
    """
    from tests.edge.servers import ModbusSim

    sims = [ModbusSim(units=(1,), size=REGISTERS + 8, port=p).start() for p in ports]
    print(json.dumps({"ready": True}), flush=True)

    def tick() -> None:
        n = 0
        while True:
            n += 1
            for i, sim in enumerate(sims):
                sim.set(1, "hr", 0, [(n + i + k) % 65536 for k in range(REGISTERS)])
            time.sleep(1.0)

    threading.Thread(target=tick, daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "count":
            print(json.dumps([s.requests for s in sims]), flush=True)


def serve_opcua(port: int, items: int, status: Path) -> None:
    """Child: an asyncua server with ``items`` doubles (ns=2;s=Bulk.V<i>) changing at 1 Hz.

    After each round of changes it writes how many values it changed so far to ``status``.
    """
    import logging

    from asyncua import Server, ua

    logging.basicConfig(level=logging.ERROR)

    async def main() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace("urn:indunet:bench")
        folders = []
        for f in range(items // 1000 + (items % 1000 > 0)):
            folders.append(
                await server.nodes.objects.add_object(ua.NodeId(f"Line{f}", ns), f"{ns}:Line{f}")
            )
        ids = []
        for i in range(items):
            node = await folders[i // 1000].add_variable(
                ua.NodeId(f"Bulk.V{i}", ns), f"{ns}:V{i}", float(i)
            )
            ids.append(node.nodeid)
        async with server:
            print(json.dumps({"ready": True}), flush=True)
            n = 0
            while True:
                n += 1
                t0 = time.monotonic()
                for i, nid in enumerate(ids):
                    await server.write_attribute_value(
                        nid, ua.DataValue(ua.Variant(float(n * 100_000 + i), ua.VariantType.Double))
                    )
                tmp = status.with_suffix(".tmp")
                tmp.write_text(
                    json.dumps({"changes": n * items, "last_round_s": time.monotonic() - t0})
                )
                tmp.replace(status)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    asyncio.run(main())


def run_indunet_agent(config: Path) -> None:
    """Child: run the indunet edge agent on a config file until SIGTERM."""
    import logging

    from indunet.edge.config import load_edge_config
    from indunet.edge.service import run_agent

    logging.basicConfig(level=logging.WARNING)
    run_agent(load_edge_config(config))


# ----------------------------------------------------------------------------- broker side
class PrivateMosquitto:
    """A Mosquitto of our own on a free loopback port, no persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start and wait until it listens."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_port(self.port, 10)

    def stop(self) -> None:
        """Stop it."""
        stop_process(self.proc)


class PointCounter:
    """A paho subscriber that counts the data points arriving per kind of publisher."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.points = {"json": 0, "sparkplug": 0, "tbgw": 0}
        self.messages = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"count-{uuid.uuid4()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(
            [("indunet/#", 0), ("spBv1.0/#", 0), ("v1/#", 0)]
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.startswith(_TB_RPC):
            self._answer_tb(msg.topic, msg.payload)
            return
        try:
            kind, n = self._count(msg.topic, msg.payload)
        except Exception as exc:  # count the damage, keep counting
            self.errors.append(f"{msg.topic}: {exc!r}"[:200])
            return
        with self._lock:
            self.messages += 1
            if kind:
                self.points[kind] += n

    def _answer_tb(self, topic: str, payload: bytes) -> None:
        """Play ThingsBoard's part of the gateway's start: answer getSessionLimits (no limits)."""
        if json.loads(payload).get("method") != "getSessionLimits":
            return
        none = {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""}
        limits = {
            "rateLimits": none,
            "gatewayRateLimits": none,
            "maxInflightMessages": 1000,
            "maxPayloadSize": 65536,
        }
        reply = topic.replace("/rpc/request/", "/rpc/response/")
        self.client.publish(reply, json.dumps(limits), qos=1)

    @staticmethod
    def _count(topic: str, payload: bytes) -> tuple[str | None, int]:
        if topic.startswith("indunet/v1/"):
            doc = json.loads(payload)
            return "json", sum(1 for k in doc if k != "timestamp_ms" and not k.startswith("edge_"))
        if topic.startswith("spBv1.0/") and "/DDATA/" in topic:
            from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb

            msg = pb.Payload()
            msg.ParseFromString(payload)
            return "sparkplug", len(msg.metrics)
        if topic == "v1/gateway/telemetry":
            doc = json.loads(payload)
            n = 0
            for entries in doc.values():
                for entry in entries if isinstance(entries, list) else [entries]:
                    n += len(entry.get("values", entry)) if isinstance(entry, dict) else 0
            return "tbgw", n
        return None, 0

    def snapshot(self) -> dict[str, int]:
        """Return the counts so far."""
        with self._lock:
            return dict(self.points)

    def stop(self) -> None:
        """Disconnect."""
        self.client.loop_stop()
        self.client.disconnect()


# ----------------------------------------------------------------------------- measurement
def measure(
    pid: int,
    counter: PointCounter,
    kind: str,
    seconds: float,
    requests: Any = None,
    servers: int | None = None,
) -> dict[str, Any]:
    """Measure a running publisher over ``seconds``: CPU share, points/s, requests/s.

    ``servers`` is the pid of the simulated devices' process: its CPU share is reported too
    (it is not the publisher's, but it shows when the simulation itself is the limit).
    """
    r0 = requests() if requests else None
    s0 = cpu_seconds(servers) if servers else 0.0
    c0, p0, t0 = cpu_seconds(pid), counter.snapshot()[kind], time.monotonic()
    load0 = os.getloadavg()[0]
    time.sleep(seconds)
    c1, p1, t1 = cpu_seconds(pid), counter.snapshot()[kind], time.monotonic()
    s1 = cpu_seconds(servers) if servers else 0.0
    r1 = requests() if requests else None
    wall, cpu, points = t1 - t0, c1 - c0, p1 - p0
    out = {
        "seconds": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "cpu_share": round(cpu / wall, 4),
        "points": points,
        "points_per_s": round(points / wall, 1),
        "points_per_cpu_s": round(points / cpu, 1) if cpu else None,
        "load_1m_start": round(load0, 2),
    }
    if servers:
        out["servers_cpu_share"] = round((s1 - s0) / wall, 4)
    if r0 is not None and r1 is not None:
        out["requests_per_s"] = round((sum(r1) - sum(r0)) / wall, 1)
    return out


class ModbusFarm:
    """The 20 pymodbus servers in a child process."""

    def __init__(self) -> None:
        self.ports = [free_port() for _ in range(DEVICES)]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-modbus", ",".join(map(str, self.ports))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if '"ready"' not in line:
            raise RuntimeError(f"modbus servers did not start: {line!r}")

    def requests(self) -> list[int]:
        """Return the requests each server has seen."""
        self.proc.stdin.write("count\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop the servers."""
        stop_process(self.proc)


def indunet_modbus_config(ports: list[int], mqtt_port: int, workdir: Path) -> Path:
    """Write the agent's edge.toml for the Modbus farm (JSON publisher)."""
    lines = [
        "[broker]",
        f'url = "mqtt://127.0.0.1:{mqtt_port}"',
        f'client_id = "bench-edge-{uuid.uuid4().hex[:8]}"',
        'enterprise = "bench"',
        "[publisher]",
        'mode = "json"',
        "max_inflight = 1000",
        "[buffer]",
        f'path = "{workdir / "modbus-buffer.sqlite"}"',
    ]
    for d, port in enumerate(ports):
        lines += [
            "[[devices]]",
            f'name = "meter{d:02d}"',
            f'machine = "plant/area/line/meter{d:02d}"',
            'host = "127.0.0.1"',
            f"port = {port}",
            "unit = 1",
            "poll_ms = 1000",
        ]
        for k in range(REGISTERS):
            lines += ["[[devices.tags]]", f'name = "r{k}"', f"address = {k}", 'type = "uint16"']
    path = workdir / "edge-modbus.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def indunet_opcua_config(endpoint: str, mqtt_port: int, workdir: Path, items: int) -> Path:
    """Write the agent's edge.toml for the OPC UA server (Sparkplug publisher)."""
    lines = [
        "[broker]",
        f'url = "mqtt://127.0.0.1:{mqtt_port}"',
        f'client_id = "bench-spb-{uuid.uuid4().hex[:8]}"',
        'enterprise = "bench"',
        "[publisher]",
        'mode = "sparkplug"',
        'group = "bench"',
        f'node = "n{uuid.uuid4().hex[:8]}"',
        "max_inflight = 1000",
        "[buffer]",
        f'path = "{workdir / "opcua-buffer.sqlite"}"',
        "[[devices]]",
        'name = "plc"',
        'machine = "plant/area/line/plc"',
        f'endpoint = "{endpoint}"',
        'mode = "subscribe"',
        "sampling_ms = 1000",
        "poll_ms = 1000",
        "timeout_s = 30",
    ]
    for i in range(items):
        lines += ["[[devices.tags]]", f'name = "v{i}"', f'node = "ns=2;s=Bulk.V{i}"']
    path = workdir / "edge-opcua.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_points(counter: PointCounter, kind: str, timeout: float) -> bool:
    """Wait until points of ``kind`` flow; return whether they did."""
    deadline = time.monotonic() + timeout
    first = counter.snapshot()[kind]
    while time.monotonic() < deadline:
        if counter.snapshot()[kind] > first:
            return True
        time.sleep(0.2)
    return False


def run_indunet(config: Path, workdir: Path, name: str) -> subprocess.Popen:
    """Start the agent in a child process."""
    log = (workdir / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, __file__, "--run-agent", str(config)], stdout=log, stderr=log
    )


# ----------------------------------------------------------------------------- the peer
def ensure_tbgw() -> str | None:
    """Create the peer's venv when missing; return why it cannot be used, or None."""
    python = TBGW_VENV / "bin" / "python"
    probe = [str(python), "-c", "import thingsboard_gateway, pymodbus; print(pymodbus.__version__)"]
    if python.exists():
        ok = subprocess.run(probe, capture_output=True, text=True, check=False)
        if ok.returncode == 0 and ok.stdout.strip() == "3.9.2":
            return None
    print(
        f"creating the peer's venv: python3 -m venv {TBGW_VENV} && "
        f"{TBGW_VENV}/bin/pip install {' '.join(TBGW_PACKAGES)}",
        flush=True,
    )
    try:
        subprocess.run(["python3", "-m", "venv", str(TBGW_VENV)], check=True)
        subprocess.run(
            [str(TBGW_VENV / "bin" / "pip"), "install", "-q", *TBGW_PACKAGES], check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"could not install thingsboard-gateway into {TBGW_VENV}: {exc}"
    ok = subprocess.run(probe, capture_output=True, text=True, check=False)
    return None if ok.returncode == 0 else f"thingsboard-gateway does not import: {ok.stderr}"


def tbgw_version() -> str:
    """Return the installed thingsboard-gateway version."""
    out = subprocess.run(
        [
            str(TBGW_VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('thingsboard-gateway'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def tbgw_config(ports: list[int], mqtt_port: int, workdir: Path) -> Path:
    """Write the gateway's config dir: tb_gateway.json, logs.json and modbus.json."""
    cfg_dir = workdir / "tbgw"
    cfg_dir.mkdir(exist_ok=True)
    (cfg_dir / "logs").mkdir(exist_ok=True)
    gateway = {
        "thingsboard": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "latencyDebugMode": False,
            "statistics": {
                "enable": False,
                "statsSendPeriodInSeconds": 3600,
                "customStatsSendPeriodInSeconds": 3600,
            },
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 65535,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600,
            "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": "bench"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 1_000_000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "bench", "configuration": "modbus.json"}],
    }
    slaves = []
    for d, port in enumerate(ports):
        slaves.append(
            {
                "host": "127.0.0.1",
                "port": port,
                "type": "tcp",
                "method": "socket",
                "unitId": 1,
                "deviceName": f"meter{d:02d}",
                "deviceType": "meter",
                "timeout": 5,
                "byteOrder": "BIG",
                "wordOrder": "BIG",
                "retries": 1,
                "pollPeriod": 1000,
                "connectAttemptTimeMs": 1000,
                "connectAttemptCount": 5,
                "waitAfterFailedAttemptsMs": 1000,
                "attributes": [],
                "timeseries": [
                    {
                        "tag": f"r{k}",
                        "type": "16uint",
                        "functionCode": 3,
                        "objectsCount": 1,
                        "address": k,
                    }
                    for k in range(REGISTERS)
                ],
                "attributeUpdates": [],
                "rpc": [],
            }
        )
    (cfg_dir / "tb_gateway.json").write_text(json.dumps(gateway, indent=1))
    (cfg_dir / "modbus.json").write_text(json.dumps({"master": {"slaves": slaves}}, indent=1))
    logs = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"f": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "f",
                "filename": str(workdir / "tbgw.log"),
            }
        },
        "loggers": {
            name: {"handlers": ["file"], "level": "WARNING", "propagate": False}
            for name in (
                "service",
                "connector",
                "converter",
                "tb_connection",
                "storage",
                "extension",
                "tb_utility",
            )
        }
        # pymodbus 3.9.2 warns "BinaryPayloadDecoder is deprecated" on every decode: silenced,
        # so that the peer is not charged for writing megabytes of log
        | {"pymodbus": {"handlers": ["file"], "level": "ERROR", "propagate": False}},
        "root": {"level": "WARNING", "handlers": ["file"]},
    }
    (cfg_dir / "logs.json").write_text(json.dumps(logs, indent=1))
    return cfg_dir


def run_tbgw(cfg_dir: Path, workdir: Path) -> subprocess.Popen:
    """Start the gateway with our config dir."""
    env = {**os.environ, "TB_GW_CONFIG_DIR": str(cfg_dir)}
    log = (workdir / "tbgw.out").open("ab")
    return subprocess.Popen(
        [
            str(TBGW_VENV / "bin" / "python"),
            "-c",
            "from thingsboard_gateway.tb_gateway import daemon; daemon()",
        ],
        cwd=cfg_dir,
        env=env,
        stdout=log,
        stderr=log,
    )


# ----------------------------------------------------------------------------- main
def environment() -> dict[str, Any]:
    """Return machine, versions, date and load."""
    import importlib.metadata as md

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mosq = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, check=False)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "asyncua": md.version("asyncua"),
        "pymodbus": md.version("pymodbus"),
        "paho-mqtt": md.version("paho-mqtt"),
        "mosquitto": (mosq.stdout or mosq.stderr).splitlines()[0]
        if (mosq.stdout or mosq.stderr)
        else "unknown",
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short windows (about 2 minutes)")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window per run")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    ap.add_argument("--skip", default="", help="comma list of: modbus,peer,opcua,browse")
    ap.add_argument("--json", type=Path, help="write all figures here")
    ap.add_argument("--serve-modbus", help=argparse.SUPPRESS)
    ap.add_argument("--serve-opcua", help=argparse.SUPPRESS)
    ap.add_argument("--run-agent", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_modbus:
        serve_modbus([int(p) for p in args.serve_modbus.split(",")])
        return 0
    if args.serve_opcua:
        port, items, status = args.serve_opcua.split(",")
        serve_opcua(int(port), int(items), Path(status))
        return 0
    if args.run_agent:
        run_indunet_agent(Path(args.run_agent))
        return 0
    if args.quick:
        args.seconds, args.warmup = 15.0, 6.0
    skip = set(filter(None, args.skip.split(",")))
    report: dict[str, Any] = {"env": environment(), "seconds": args.seconds}
    print(
        f"edge bench {report['env']['date']} on {report['env']['cpu']} "
        f"({report['env']['cores']} cores), load {report['env']['load_avg_start']}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="indunet-edge-bench-"))
    broker = PrivateMosquitto(workdir)
    broker.start()
    counter = PointCounter(broker.port)
    farm: ModbusFarm | None = None
    procs: list[subprocess.Popen] = []
    try:
        if "modbus" not in skip or "peer" not in skip:
            farm = ModbusFarm()
        if "modbus" not in skip and farm:
            cfg = indunet_modbus_config(farm.ports, broker.port, workdir)
            agent = run_indunet(cfg, workdir, "agent-modbus")
            procs.append(agent)
            if not wait_points(counter, "json", 60):
                raise RuntimeError(f"indunet agent sends nothing; see {workdir}/agent-modbus.log")
            time.sleep(args.warmup)
            res = measure(agent.pid, counter, "json", args.seconds, farm.requests, farm.proc.pid)
            res["requests_per_cycle"] = res.pop("requests_per_s")
            res["one_request_per_tag"] = DEVICES * REGISTERS
            report["modbus_indunet"] = res
            stop_process(agent)
            print(f"modbus indunet: {res}", flush=True)
        if "peer" not in skip and farm:
            why = ensure_tbgw()
            if why is None:
                report["env"]["thingsboard-gateway"] = tbgw_version()
                peer = run_tbgw(tbgw_config(farm.ports, broker.port, workdir), workdir)
                procs.append(peer)
                if wait_points(counter, "tbgw", 90):
                    time.sleep(args.warmup)
                    res = measure(
                        peer.pid, counter, "tbgw", args.seconds, farm.requests, farm.proc.pid
                    )
                    res["requests_per_cycle"] = res.pop("requests_per_s")
                    report["modbus_tbgw"] = res
                    print(f"modbus thingsboard-gateway: {res}", flush=True)
                else:
                    why = (
                        f"the gateway delivered no telemetry in 90 s; its logs: "
                        f"{workdir}/tbgw.out, {workdir}/tbgw.log"
                    )
                stop_process(peer)
            if why:
                report["modbus_tbgw"] = {"not_run": why}
                print(f"peer not run: {why}", flush=True)
        if farm:
            farm.stop()
            farm = None
        if not {"opcua", "browse"} <= skip:
            port = free_port()
            endpoint = f"opc.tcp://127.0.0.1:{port}/bench/"
            status = workdir / "opcua-server.json"
            t0 = time.monotonic()
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve-opcua", f"{port},{OPC_ITEMS},{status}"],
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(server)
            line = server.stdout.readline()  # type: ignore[union-attr]
            if '"ready"' not in line:
                raise RuntimeError(f"OPC UA server did not start: {line!r}")
            report["opcua_server_start_s"] = round(time.monotonic() - t0, 1)
            if "browse" not in skip:
                from indunet.edge.opcua import browse

                t0 = time.perf_counter()
                nodes = asyncio.run(browse(endpoint, timeout_s=30))
                took = time.perf_counter() - t0
                report["opcua_browse"] = {"variables": len(nodes), "seconds": round(took, 2)}
                print(f"opcua browse: {report['opcua_browse']}", flush=True)
            if "opcua" not in skip:
                cfg = indunet_opcua_config(endpoint, broker.port, workdir, OPC_ITEMS)
                agent = run_indunet(cfg, workdir, "agent-opcua")
                procs.append(agent)
                if not wait_points(counter, "sparkplug", 120):
                    raise RuntimeError(f"agent sends no DDATA; see {workdir}/agent-opcua.log")
                time.sleep(args.warmup)
                changes0 = json.loads(status.read_text())["changes"]
                t0 = time.monotonic()
                res = measure(agent.pid, counter, "sparkplug", args.seconds, None, server.pid)
                changes = json.loads(status.read_text())
                res["server_changes_per_s"] = round(
                    (changes["changes"] - changes0) / (time.monotonic() - t0), 1
                )
                res["server_last_round_s"] = round(changes["last_round_s"], 3)
                report["opcua_indunet"] = res
                stop_process(agent)
                print(f"opcua indunet (sparkplug): {res}", flush=True)
            stop_process(server)
    finally:
        for p in procs:
            stop_process(p)
        if farm:
            farm.stop()
        counter.stop()
        broker.stop()
    report["env"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["subscriber_errors"] = counter.errors[:5]
    verdicts = summarise(report)
    report["verdicts"] = verdicts
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    failed = counter.errors or any(isinstance(v, dict) and "not_run" in v for v in report.values())
    if failed:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Print the summary table and return the verdicts."""
    rows: list[tuple[str, str, str, str]] = []
    verdicts: dict[str, Any] = {}
    mi, mt = report.get("modbus_indunet"), report.get("modbus_tbgw")
    if mi:
        ok = mi["cpu_share"] <= 0.25
        verdicts["modbus_cpu_le_25pct"] = ok
        rows += [
            (
                "modbus indunet CPU (share of one core)",
                f"{mi['cpu_share']:.1%}",
                "<= 25 %",
                "met" if ok else "MISSED",
            ),
            (
                "modbus indunet requests per cycle",
                f"{mi['requests_per_cycle']:.0f}",
                f"vs {mi['one_request_per_tag']} one per tag",
                "",
            ),
            (
                "modbus indunet points/s to broker",
                f"{mi['points_per_s']:.0f}",
                f"{DEVICES * REGISTERS}/s offered",
                "",
            ),
            ("modbus indunet points per CPU-second", f"{mi['points_per_cpu_s']:.0f}", "", ""),
        ]
    if mt and "not_run" not in mt:
        rows += [
            ("modbus TB gateway CPU (share of one core)", f"{mt['cpu_share']:.1%}", "", ""),
            ("modbus TB gateway requests per cycle", f"{mt['requests_per_cycle']:.0f}", "", ""),
            ("modbus TB gateway points/s to broker", f"{mt['points_per_s']:.0f}", "", ""),
            ("modbus TB gateway points per CPU-second", f"{mt['points_per_cpu_s']:.0f}", "", ""),
        ]
        if mi and mi["points_per_cpu_s"] and mt["points_per_cpu_s"]:
            ratio = mi["points_per_cpu_s"] / mt["points_per_cpu_s"]
            verdicts["points_per_cpu_s_ratio"] = round(ratio, 2)
            verdicts["ratio_ge_5"] = ratio >= 5
            rows.append(
                (
                    "indunet ÷ TB gateway points per CPU-second",
                    f"{ratio:.1f}x",
                    ">= 5x",
                    "met" if ratio >= 5 else "MISSED",
                )
            )
    elif mt:
        rows.append(("TB gateway", "not run", mt["not_run"][:60], ""))
    oi = report.get("opcua_indunet")
    if oi:
        ok = oi["cpu_share"] <= 0.5
        verdicts["opcua_cpu_le_50pct"] = ok
        rows += [
            (
                "opcua 10k items -> sparkplug CPU",
                f"{oi['cpu_share']:.1%}",
                "<= 50 %",
                "met" if ok else "MISSED",
            ),
            ("opcua points/s to broker", f"{oi['points_per_s']:.0f}", f"{OPC_ITEMS}/s offered", ""),
        ]
    ob = report.get("opcua_browse")
    if ob:
        rows.append(("opcua browse", f"{ob['seconds']:.1f} s", f"{ob['variables']} variables", ""))
    width = max((len(r[0]) for r in rows), default=10)
    print()
    for name, value, target, verdict in rows:
        print(f"{name:<{width}}  {value:>10}  {target:<28} {verdict}")
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
