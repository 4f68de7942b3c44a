"""The long-run invariant harness: a simulated plant with ground truth, published through a real
Mosquitto into `indunet serve` while faults are injected; then every invariant is checked.

Used by `tests/plant/test_soak.py` (reduced, in `make test`) and `bench/soak.py` (full). Faults:
`serve` stopped with Ctrl+C and with kill -9, the broker restarted, duplicates re-sent, a block of
data withheld and sent late (out of order), and a reading from a device with a skewed clock (two
days ahead: refused into the dead letters, never stored). Checks:

* every published reading is stored, with its value (nothing lost, nothing doubled);
* produced and scrap counts equal the simulator's ground truth;
* time elements add up to the planned busy time;
* `indunet check` is clean;
* availability, performance and quality per machine equal the reference from the simulator's
  own state log, and the site and enterprise figures are their sums.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.broker import free_port
from indunet.sim.truth import THRESHOLDS, TruthMachine, TruthRun, reference_oee, run_plant
from tests.connect.test_durability import PrivateBroker

ENTERPRISE = "soak"
TOPIC = "indunet/v1/" + ENTERPRISE + "/{machine}"


@dataclass
class SoakResult:
    """What the run measured and every invariant that failed (empty when all held)."""

    published: int = 0
    stored: int = 0
    seconds: float = 0.0
    faults: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    machines: dict[str, dict] = field(default_factory=dict)


def plant_toml(machines: list[TruthMachine]) -> str:
    """Return the indunet.toml that configures the truth's machines."""
    out = []
    th = ", ".join(f"{k} = {v}" for k, v in THRESHOLDS.items())
    for m in machines:
        out.append(
            f'[[plant.machines]]\nid = "{m.id}"\npower_tag = "power_kw"\n'
            f"thresholds = {{ {th} }}\nexpected_interval_s = 1.0\n"
            'total_counter = { tag = "parts_total" }\nscrap_counter = { tag = "scrap_total" }\n'
            f'ideal_cycle_s = {{ p = {m.cycle_s} }}\ndefault_product = "p"\n'
        )
    for site in sorted({m.id.split("/")[0] for m in machines}):
        out.append(f"[plant.sites.{site}]\ngrid_kg_co2_per_kwh = 0.5\n")
    return "\n".join(out)


class Serve:
    """`indunet serve` as a subprocess on a data dir, restartable."""

    def __init__(self, workdir: Path, broker_url: str, db: str | None) -> None:
        self.workdir, self.url, self.db = workdir, broker_url, db
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        data = str(self.workdir / "data")
        args = [sys.executable, "-m", "indunet.cli", "serve", "--data-dir", data,
                "--mqtt-url", self.url, "--port", str(self.port),
                "--mqtt-client-id", "soak-ingest"]  # fmt: skip
        if self.db:
            args += ["--db", self.db]
        env = {k: v for k, v in os.environ.items() if not k.startswith("INDUNET_")}
        env["INDUNET_ENTERPRISE"] = ENTERPRISE
        if self.db and "INDUNET_PG_SCHEMA" in os.environ:
            env["INDUNET_PG_SCHEMA"] = os.environ["INDUNET_PG_SCHEMA"]
        self.proc = subprocess.Popen(
            args, cwd=self.workdir, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "serve.log", "ab"),  # noqa: SIM115
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(self.workdir / 'serve.log').read_text()}")
            time.sleep(0.1)
        raise RuntimeError("serve did not start")

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)


class Publisher:
    """QoS 1 publisher that waits for every PUBACK of a chunk and re-sends what was not acked."""

    def __init__(self, url: str) -> None:
        self.port = int(url.rsplit(":", 1)[1])
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"soak-{uuid.uuid4().hex[:6]}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        self.sent = 0

    def send(self, messages: list[tuple[str, dict]]) -> None:
        pending = list(messages)
        while pending:
            infos = [(t, p, self.client.publish(t, json.dumps(p), qos=1)) for t, p in pending]
            retry = []
            for t, p, info in infos:
                ok = False
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=5)
                    ok = info.is_published()
                if not ok:
                    retry.append((t, p))
            self.sent += len(pending) - len(retry)
            if retry:
                time.sleep(0.2)  # the broker is away: send again (the same readings)
            pending = retry

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _api(port: int, key: str, path: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def _cli(workdir: Path, db: str | None, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "indunet.cli", *args, "--data-dir", str(workdir / "data")]
    if db:
        argv += ["--db", db]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDUNET_")}
    env["INDUNET_ENTERPRISE"] = ENTERPRISE
    if db and "INDUNET_PG_SCHEMA" in os.environ:
        env["INDUNET_PG_SCHEMA"] = os.environ["INDUNET_PG_SCHEMA"]
    return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


def run_soak(
    workdir: Path,
    *,
    machines: int = 3,
    hours: float = 2.0,
    db: str | None = None,
    seed: int = 11,
    chunk: int = 600,
    log=print,
) -> SoakResult:
    """Run the plant for ``hours`` of simulated time as fast as it goes, with faults; check all."""
    t_start = time.monotonic()
    plant = [
        TruthMachine(f"site-{1 + i % 2}/area/line-{1 + i // 4}/m{i + 1}", cycle_s=8.0 + 3 * i)
        for i in range(machines)
    ]
    samples = int(hours * 3600)
    start = (int(time.time() * 1000) - samples * 1000 - 600_000) // 1000 * 1000
    shift_ms = min(8 * 3_600_000, max(int(hours * 3_600_000 / 3), 1))  # counters reset at each
    truth = run_plant(plant, start, samples, shift_ms=shift_ms, seed=seed)
    (workdir / "indunet.toml").write_text(plant_toml(plant))
    result = SoakResult()
    broker = PrivateBroker(workdir)
    if os.geteuid() == 0:  # else mosquitto drops to its own user, which cannot save its state here
        broker.conf.write_text(broker.conf.read_text() + "user root\n")
    broker.start()
    key = _admin_key(workdir, db)  # before serve holds the DuckDB file
    serve = Serve(workdir, broker.url, db)
    serve.start()
    pub = Publisher(broker.url)
    late_m = plant[0].id
    late = slice(samples // 3, samples // 3 + 300)  # 5 minutes of one machine, sent at the end
    n_chunks = -(-samples // chunk)
    faults = {
        n_chunks // 5: "serve kill -9",
        2 * n_chunks // 5: "broker restart",
        3 * n_chunks // 5: "serve Ctrl+C",
        4 * n_chunks // 5: "duplicates",
    }
    try:
        for k in range(n_chunks):
            rows = slice(k * chunk, min((k + 1) * chunk, samples))
            messages = []
            for m in plant:
                payloads = truth.payloads(m.id, rows)
                if m.id == late_m:
                    keep = [
                        p
                        for p in payloads
                        if not truth.ts[late.start]
                        <= p["timestamp_ms"]
                        < truth.ts[late.stop - 1] + 1
                    ]
                    payloads = keep
                messages += [(TOPIC.format(machine=m.id), p) for p in payloads]
            pub.send(messages)
            fault = faults.get(k)
            if fault == "serve kill -9":
                serve.stop(signal.SIGKILL)
                serve.start()
            elif fault == "serve Ctrl+C":
                serve.stop(signal.SIGINT)
                serve.start()
            elif fault == "broker restart":
                broker.stop()
                broker.start()
            elif fault == "duplicates":
                pub.send(messages[: len(messages) // 2])  # the same readings once more
            if fault:
                result.faults.append(f"{fault} after chunk {k + 1} of {n_chunks}")
                log(f"  fault: {fault} after chunk {k + 1}/{n_chunks}")
        # the withheld block arrives late, out of order
        pub.send([(TOPIC.format(machine=late_m), p) for p in truth.payloads(late_m, late)])
        result.faults.append(f"late block: {late.stop - late.start} s of {late_m} sent last")
        # a device whose clock is two days ahead: refused (dead letters), never stored
        ahead = int(time.time() * 1000) + 2 * 86_400_000
        pub.send([(TOPIC.format(machine=plant[-1].id), {"timestamp_ms": ahead, "power_kw": 1.0})])
        result.faults.append("a reading from a clock two days ahead")
        result.published = pub.sent
        _wait_stored(workdir, db, serve, truth, plant, log)
        time.sleep(6)  # the watcher follows within a tick or two
        end = start + samples * 1000
        report = _api(serve.port, key, f"/api/v1/oee?scope=&start={start}&end={end}")
        serve.stop(signal.SIGINT)
    finally:
        pub.close()
        with contextlib.suppress(Exception):
            serve.stop(signal.SIGKILL)
        broker.stop()
    _check(workdir, db, truth, plant, start, samples, report, result, log)
    result.seconds = time.monotonic() - t_start
    return result


def _historian(workdir: Path, db: str | None):
    from indunet.config import load_settings
    from indunet.store import open_historian

    extra = {"db": db} if db else {}
    if db and "INDUNET_PG_SCHEMA" in os.environ:
        extra["pg_schema"] = os.environ["INDUNET_PG_SCHEMA"]
    return open_historian(load_settings(data_dir=workdir / "data", enterprise=ENTERPRISE, **extra))


def _wait_stored(workdir, db, serve, truth: TruthRun, plant, log, timeout_s: float = 120) -> None:
    """Wait until the ingest has stored the last published reading of every machine."""
    key = _admin_key(workdir, db)  # made before serve started
    deadline = time.monotonic() + timeout_s
    want = int(truth.ts[-1])
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            latest = _api(serve.port, key, f"/api/v1/latest?prefix=&enterprise={ENTERPRISE}")
            newest = {r["tag"]: r["ts"] for r in latest.get("rows", latest.get("items", []))}
            if all(newest.get(f"{m.id}/power_kw", 0) >= want for m in plant):
                return
        time.sleep(0.5)
    log("  (timed out waiting for the last readings)")


_KEYS: dict[str, str] = {}


def _admin_key(workdir: Path, db: str | None) -> str:
    if str(workdir) not in _KEYS:
        r = _cli(
            workdir, db, "keys", "create", "--enterprise", ENTERPRISE, "--role", "admin", "--json"
        )
        _KEYS[str(workdir)] = json.loads(r.stdout)["secret"]
    return _KEYS[str(workdir)]


def _check(
    workdir, db, truth: TruthRun, plant, start, samples, report, result: SoakResult, log
) -> None:
    fail = result.failures.append
    # 1. every published reading stored, with its value; nothing more
    historian = _historian(workdir, db)
    try:
        for m in plant:
            for name in ("power_kw", "parts_total", "scrap_total", "energy_kwh"):
                t = historian.series(ENTERPRISE, f"{m.id}/{name}", 0, 2**53, limit=10**8)
                ts, v = t.column("ts").to_numpy(), t.column("value").to_numpy()
                want = getattr(truth, name)[m.id]
                result.stored += len(ts)
                if len(ts) != samples or not np.array_equal(ts, truth.ts):
                    fail(f"{m.id}/{name}: {len(ts)} stored, {samples} published")
                elif not np.allclose(v, want, rtol=0, atol=1e-9):
                    fail(f"{m.id}/{name}: stored values differ from the published ones")
        letters = historian.dead_letters(ENTERPRISE, limit=100)
    finally:
        historian.close()
    if not any("future" in str(x) or "ahead" in str(x) for x in letters):
        fail("the reading from a clock two days ahead is not in the dead letters")
    end = start + samples * 1000
    # 2-5. OEE per machine from the API (the running server's timelines): counts, elements
    for m in plant:
        got = report["machines"][m.id]
        ref = reference_oee(truth, m)
        result.machines[m.id] = {
            "A": (got["availability"], ref["availability"]),
            "P": (got["performance"], ref["performance"]),
            "Q": (got["quality"], ref["quality"]),
        }
        if (got["produced"], got["scrap"]) != (ref["produced"], ref["scrap"]):
            fail(f"{m.id}: produced/scrap {got['produced']}/{got['scrap']}, "
                 f"truth {ref['produced']}/{ref['scrap']}")  # fmt: skip
        if got["apt_ms"] + sum(got["stop_ms"].values()) != got["pbt_ms"]:
            fail(f"{m.id}: APT + stops != PBT")
        if (got["pbt_ms"], got["apt_ms"]) != (ref["pbt_ms"], ref["apt_ms"]):
            fail(f"{m.id}: PBT/APT {got['pbt_ms']}/{got['apt_ms']} ms, "
                 f"truth {ref['pbt_ms']}/{ref['apt_ms']} ms")  # fmt: skip
        for k in ("availability", "performance", "quality"):
            g = got[k]
            if g is None or not 0 <= g <= 1:
                fail(f"{m.id}: {k} {g} outside [0, 1]")
            elif abs(g - ref[k]) > 1e-9:
                fail(f"{m.id}: {k} {g:.5f}, reference {ref[k]:.5f}")
    total = report["total"]
    if total["produced"] != sum(report["machines"][m.id]["produced"] for m in plant):
        fail("the enterprise total is not the sum of its machines")
    chk = _cli(workdir, db, "check", "--start", str(start), "--end", str(end), "--json")
    if chk.returncode != 0:
        fail(f"indunet check: {chk.stdout.strip()[:2000]} {chk.stderr.strip()[:500]}")
    log(f"  checked: {len(result.failures)} invariant(s) failed")
