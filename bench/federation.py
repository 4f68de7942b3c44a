"""Federation benchmark: what a regional instance absorbs, and the lag from plant to region.

Through a private Mosquitto (QoS 1, persistent session) into a regional instance on PostgreSQL
(`UplinkConsumer`: what arrived together in one transaction, up to 500 messages, acknowledged
after commit):

* ``absorb``  ``--messages`` uplink records (``states`` and ``kwh_hourly`` of ``--enterprises``
              enterprises × 3 sites, every one new) published by a separate process as fast as
              the broker takes them: records stored per second, from the first publish to the
              last commit. Then the same messages again (duplicates: read, compared, nothing
              written) and, as the reference in the same run, a bare paho subscriber with manual
              acknowledgement that stores nothing.
* ``lag``     a real plant (DuckDB, 4 machines, its `PlantUplink` and forwarder) whose machines
              all stop (power readings written at t0), then a round: the time until the regional
              instance's HTTP API (``GET /api/v1/federation/sites``, chain-operator key, served by
              uvicorn) answers with the site's machines off; then they start again, and so on,
              ``--lag-rounds`` times. The wait for the next round (``uplink.interval_s``, 60 s by
              default) is not in it: add up to that.

The machine's load is recorded (load average before and after, and the share of CPU the other
processes used during each phase).

    .venv/bin/python bench/federation.py                # about a minute
    .venv/bin/python bench/federation.py --messages 5000 --lag-rounds 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from indunet.config import load_settings
from indunet.federation import contract
from indunet.store import open_historian

MOSQUITTO = "/usr/sbin/mosquitto"
MS = 1_780_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class CpuWatch:
    """The share of the machine's CPU that processes other than this one used meanwhile."""

    def __init__(self) -> None:
        self.start = self._total(), self._own(), time.monotonic()

    @staticmethod
    def _total() -> float:
        with open("/proc/stat") as f:
            v = [float(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # busy jiffies: everything but idle and iowait

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def others_cores(self) -> float:
        busy0, own0, t0 = self.start
        hz = os.sysconf("SC_CLK_TCK")
        busy = (self._total() - busy0) / hz
        return round(max(busy - (self._own() - own0), 0.0) / (time.monotonic() - t0), 2)


def records(n: int, enterprises: int) -> list[tuple[str, bytes]]:
    """Return ``n`` distinct uplink messages (states and hourly kWh) as (topic, payload)."""
    out = []
    k = 0
    while len(out) < n:
        ent, site = f"e{k % enterprises:04d}", f"s{(k // enterprises) % 3}"
        step = k // (enterprises * 3)
        at = MS + step * 60_000
        if k % 2:
            r = contract.build(
                ent, "states", site, contract.minute_period(at),
                {"machines": 10, "running": 7, "idle": 1, "off": 1, "offline": 1, "unknown": 0,
                 "at_ms": at},
                computed_ms=at, rev=step,
            )  # fmt: skip
        else:
            hour = MS - MS % 3_600_000 - step * 3_600_000
            r = contract.build(
                ent, "kwh_hourly", site, contract.hour_period(hour),
                {"kwh": 100.0 + k % 7, "coverage": 1.0}, computed_ms=at, rev=step,
            )  # fmt: skip
        out.append((r.topic, r.payload()))
        k += 1
    return out


def publish(port: int, messages: list[tuple[str, bytes]], started: mp.Event) -> None:
    """Publish every message at QoS 1 (a separate process: no shared GIL)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    started.set()
    infos = [c.publish(t, p, qos=1) for t, p in messages]
    for i in infos:
        i.wait_for_publish(120)
    c.disconnect()
    c.loop_stop()


def run_publisher(port: int, messages: list[tuple[str, bytes]]) -> tuple[mp.Process, float]:
    started = mp.Event()
    proc = mp.Process(target=publish, args=(port, messages, started), daemon=True)
    proc.start()
    started.wait(30)
    return proc, time.monotonic()


def until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("not reached in time")
        time.sleep(0.01)


def absorb(args, broker_port: int, historian, settings) -> dict:
    from indunet.federation.regional import UplinkConsumer

    messages = records(args.messages, args.enterprises)
    consumer = UplinkConsumer(historian, settings, None)
    consumer.start()
    until(consumer.connected.is_set, 10)
    time.sleep(0.3)
    out: dict = {"messages": len(messages), "bytes_mean": round(
        statistics.mean(len(p) for _, p in messages))}  # fmt: skip
    for n, phase in enumerate(("new", "again")):
        watch = CpuWatch()
        proc, t0 = run_publisher(broker_port, messages)
        until(lambda n=n: sum(consumer.counts.values()) >= (n + 1) * len(messages), 600)
        dt = time.monotonic() - t0
        proc.join(30)
        out[phase] = {"per_s": round(len(messages) / dt), "seconds": round(dt, 2),
                      "others_cores": watch.others_cores()}  # fmt: skip
        others = out[phase]["others_cores"]
        print(f"  {phase:>9}: {len(messages):,} records in {dt:.2f} s = "
              f"{len(messages) / dt:,.0f}/s (others used {others} cores)")  # fmt: skip
    out["counts"] = dict(consumer.counts)  # again: duplicates, and older states ignored
    out["transactions"] = consumer.batches
    each = 2 * len(messages) / max(consumer.batches, 1)
    print(f"  outcomes: {out['counts']}; {consumer.batches:,} transactions "
          f"({each:.0f} messages each on average)")  # fmt: skip
    consumer.stop()
    assert consumer.counts["refused"] == 0, consumer.counts

    # the reference: a bare paho subscriber, manual acknowledgement, stores nothing
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got = [0]
    bare = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{uuid.uuid4().hex[:6]}",
                       clean_session=False, manual_ack=True)  # fmt: skip

    def on_message(c, _u, m) -> None:
        got[0] += 1
        c.ack(m.mid, m.qos)

    bare.on_message = on_message
    bare.connect("127.0.0.1", broker_port)
    bare.subscribe(f"{contract.ROOT}/#", qos=1)
    bare.loop_start()
    time.sleep(0.3)
    watch = CpuWatch()
    proc, t0 = run_publisher(broker_port, messages)
    until(lambda: got[0] >= len(messages), 600)
    dt = time.monotonic() - t0
    proc.join(30)
    bare.disconnect()
    bare.loop_stop()
    out["bare_paho"] = {"per_s": round(len(messages) / dt), "seconds": round(dt, 2),
                        "others_cores": watch.others_cores()}  # fmt: skip
    print(f"  bare paho: {len(messages):,} messages in {dt:.2f} s = {len(messages) / dt:,.0f}/s")
    return out


def shared_worker(port: int, pg_url: str, schema: str, cid: str, data_dir: str,
                  ready, counts, stop) -> None:  # fmt: skip
    """One regional worker process: an `UplinkConsumer` on the shared subscription."""
    from indunet.federation.regional import UplinkConsumer

    settings = load_settings(
        data_dir=Path(data_dir), db=pg_url, pg_schema=schema, enterprise="region-ops",
        federation={"url": f"mqtt://127.0.0.1:{port}", "shared_group": cid.rsplit("-", 1)[0],
                    "client_id": cid},
    )  # fmt: skip
    historian = open_historian(settings)
    consumer = UplinkConsumer(historian, settings, None)
    consumer.start()
    consumer.connected.wait(10)
    ready.set()
    names = ("stored", "duplicate", "older")
    while not stop.wait(0.01):
        counts[:] = [consumer.counts[n] for n in names]
    consumer.stop(leave=True)  # out of the group for good: no share set aside for it
    counts[:] = [consumer.counts[n] for n in names]
    historian.close()


def shared(args, broker_port: int, tmp: Path) -> dict:
    """New records/s with 1 and then 2 worker processes on one MQTT 5 shared subscription."""
    from indunet.federation.regional import FederationStore

    messages = records(args.messages, args.enterprises)
    out: dict = {"messages": len(messages)}
    for workers in (1, 2):
        schema = f"{args.pg_schema}_share{workers}"
        with psycopg.connect(args.pg_url, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        setup = load_settings(data_dir=tmp / "share", db=args.pg_url, pg_schema=schema)
        h = open_historian(setup)
        FederationStore(h)  # the tables, before the workers race to make them
        h.close()
        procs, stops, tallies = [], [], []
        for w in range(workers):
            ready, stop = mp.Event(), mp.Event()
            counts = mp.Array("q", 3)
            proc = mp.Process(target=shared_worker, args=(
                broker_port, args.pg_url, schema, f"bench-w{workers}-{w}",
                str(tmp / f"w{workers}-{w}"), ready, counts, stop), daemon=True)  # fmt: skip
            proc.start()
            ready.wait(30)
            procs.append(proc)
            stops.append(stop)
            tallies.append(counts)
        time.sleep(0.3)
        watch = CpuWatch()
        pub, t0 = run_publisher(broker_port, messages)
        until(lambda tallies=tallies: sum(sum(c[:]) for c in tallies) >= len(messages), 600)
        dt = time.monotonic() - t0
        pub.join(30)
        for stop in stops:
            stop.set()
        for proc in procs:
            proc.join(60)
        with psycopg.connect(args.pg_url, autocommit=True) as con:
            rows = con.execute(f"SELECT count(*) FROM {schema}.fed_records").fetchone()[0]
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        each = [int(c[0]) for c in tallies]
        dups = sum(int(c[1]) for c in tallies)
        older = sum(int(c[2]) for c in tallies)  # a site's states overtaken by a newer one
        hourly = sum(1 for t, _ in messages if t.endswith("/kwh_hourly"))
        assert rows == hourly, (rows, hourly)  # every hour's record once: nothing lost
        out[f"workers_{workers}"] = {
            "per_s": round(len(messages) / dt), "seconds": round(dt, 2), "stored_each": each,
            "duplicates": dups, "older_states": older, "kwh_rows": rows,
            "others_cores": watch.others_cores(),
        }  # fmt: skip
        print(f"  {workers} worker(s): {len(messages):,} records in {dt:.2f} s = "
              f"{len(messages) / dt:,.0f}/s; stored per worker {each}, duplicates {dups}, "
              f"older states {older}, hourly kWh rows {rows:,} of {hourly:,} "
              f"(others used {watch.others_cores()} cores)")  # fmt: skip
    return out


def lag(args, broker_port: int, historian, settings, tmp: Path) -> dict:
    import httpx
    import numpy as np
    import uvicorn

    from indunet.api.app import create_app
    from indunet.auth.store import AuthStore
    from indunet.federation.regional import UplinkConsumer
    from indunet.federation.uplink import PlantUplink

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.federation.plants import plant_config, simulate
    from tests.plant.plant_data import write

    # the regional instance: consumer + HTTP API
    api_port = free_port()
    settings.port = api_port
    app = create_app(settings, historian)
    consumer = UplinkConsumer(historian, settings, None)
    consumer.start()
    app.state.uplink_consumer = consumer
    key = AuthStore(historian).create_key(
        "*", "chain", name="bench", now_ms=int(time.time() * 1000)
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    until(lambda: server.started, 20)
    until(consumer.connected.is_set, 10)

    # the plant: DuckDB, 4 machines on one site, an hour of history up to now
    cfg = plant_config({"s1": "UTC"}, machines_per_site=4)
    now = int(time.time() * 1000)
    plant_settings = load_settings(
        data_dir=tmp / "plant", enterprise="acme-plant", plant=cfg.model_dump(mode="json"),
        uplink={"url": f"mqtt://127.0.0.1:{broker_port}", "enterprise": "acme", "days_back": 1,
                "reconnect_s": (0.1, 0.3)},
    )  # fmt: skip
    plant_historian = open_historian(plant_settings)
    simulate(plant_historian, cfg, "acme-plant", now - 3_600_000, now, seed=1)
    uplink = PlantUplink(plant_historian, plant_settings)
    uplink.tick()
    uplink.forwarder.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}",
                          headers={"Authorization": f"Bearer {key.secret}"})  # fmt: skip

    def off_count() -> int | None:
        r = client.get("/api/v1/federation/sites")
        r.raise_for_status()
        for s in r.json()["sites"]:
            if s["enterprise"] == "acme" and s["states"]:
                return s["states"]["off"]
        return None

    until(lambda: off_count() is not None, 30)
    lags, round_s = [], []
    watch = CpuWatch()
    for i in range(args.lag_rounds):
        stop = i % 2 == 0
        t_event = time.time()
        ts = np.array([int(t_event * 1000)], np.int64)
        for m in cfg.machines:  # every machine stops (or starts) now
            write(plant_historian, f"{m.id}/power_kw", ts, np.array([0.1 if stop else 15.0]),
                  enterprise="acme-plant")  # fmt: skip
        t0 = time.monotonic()
        uplink.tick()
        round_s.append(time.monotonic() - t0)
        want = 4 if stop else 0
        until(lambda w=want: off_count() == w, 30)
        lags.append(time.time() - t_event)
    others = watch.others_cores()
    client.close()
    uplink.stop(timeout=2)
    plant_historian.close()
    consumer.stop()
    server.should_exit = True
    lags_ms = sorted(x * 1000 for x in lags)
    out = {
        "rounds": len(lags),
        "lag_ms_median": round(statistics.median(lags_ms), 1),
        "lag_ms_max": round(max(lags_ms), 1),
        "round_ms_median": round(statistics.median(round_s) * 1000, 1),
        "others_cores": others,
    }
    print(f"  lag plant event -> regional API answer: median {out['lag_ms_median']} ms, "
          f"max {out['lag_ms_max']} ms over {len(lags)} changes (the plant's round itself: "
          f"median {out['round_ms_median']} ms); others used {others} cores")  # fmt: skip
    return out


def rounds(args, tmp: Path) -> dict:
    """Time a plant's uplink round with and without the ended hours' kWh cache.

    One site of ``--round-machines`` machines with a power reading every second for a day and
    half an hour (DuckDB); a round between full rounds recomputes yesterday (24 h of 1 Hz points)
    and today. Before: every round recomputes every hour from raw points (``kwh_cache=None``).
    After: the first round fills the cache; then a minute of new points is written and the next
    round recomputes only hours whose points changed.
    """
    from indunet.federation.uplink import compute_round
    from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality
    from indunet.plant.config import PlantConfig
    from indunet.plant.store import PlantStore

    n = args.round_machines
    cfg = PlantConfig.model_validate({
        "machines": [{"id": f"s1/press/l1/m{i}", "power_tag": "power_kw",
                      "thresholds": {"off_below": 1.0, "running_above": 5.0},
                      "expected_interval_s": 1.0} for i in range(n)],
        "sites": {"s1": {"calendar": {"timezone": "UTC"}}},
    })  # fmt: skip
    settings = load_settings(data_dir=tmp / "plant", enterprise="bench-plant",
                             plant=cfg.model_dump(mode="json"))  # fmt: skip
    historian = open_historian(settings)
    day0 = (int(time.time() * 1000) // 86_400_000 - 3) * 86_400_000
    now = day0 + 86_400_000 + 30 * 60_000
    rng = np.random.default_rng(1)

    def write(lo: int, hi: int) -> None:
        ts = np.arange(lo, hi, 1000, dtype=np.int64)
        for m in cfg.machines:
            kw = rng.uniform(8, 20) + rng.normal(0, 0.3, len(ts))
            tag = f"{m.id}/power_kw"
            table = pa.table({
                "tag": pa.array([tag] * len(ts), pa.string()), "ts": pa.array(ts, pa.int64()),
                "value": pa.array(kw, pa.float64()), "text": pa.nulls(len(ts), pa.string()),
                "quality": pa.array(np.full(len(ts), int(Quality.GOOD), np.uint8), pa.uint8()),
            }, schema=POINT_SCHEMA)  # fmt: skip
            historian.write(PointBatch("bench-plant", table, {tag: DataType.NUMBER}), source="b")

    t = time.perf_counter()
    write(day0, now)
    points = historian.count("bench-plant")
    out: dict = {"machines": n, "points": points, "write_s": round(time.perf_counter() - t, 1)}
    print(f"  {points:,} points of {n} machines × 1 s written in {out['write_s']} s")
    store = PlantStore(historian, cfg)

    def round_s(at: int, cache: dict | None) -> float:
        t = time.perf_counter()
        compute_round(store, historian, cfg, "bench-plant", at, days_back=1, rev=1,
                      kwh_cache=cache)  # fmt: skip
        return time.perf_counter() - t

    cpu = CpuWatch()
    before = [round_s(now, None) for _ in range(args.round_repeats)]
    cache: dict = {}
    cold = round_s(now, cache)
    warm = []
    for k in range(args.round_repeats):
        write(now + k * 60_000, now + (k + 1) * 60_000)  # a minute of new readings
        warm.append(round_s(now + (k + 1) * 60_000 + 1, cache))
    out.update(
        before_s=[round(x, 2) for x in before],
        cold_s=round(cold, 2),
        after_s=[round(x, 2) for x in warm],
        others_cores=cpu.others_cores(),
    )
    print(f"  round without cache {statistics.median(before):.2f} s (each {out['before_s']}); "
          f"with the cache: first {cold:.2f} s, then {statistics.median(warm):.2f} s "
          f"(each {out['after_s']}); other processes used {out['others_cores']} cores")  # fmt: skip
    historian.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--enterprises", type=int, default=500)
    ap.add_argument("--lag-rounds", type=int, default=10)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--pg-schema", default="bench_federation")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", choices=["absorb", "lag", "rounds", "shared"], action="append",
                    help="run only these phases (repeatable; default all)")  # fmt: skip
    ap.add_argument("--round-machines", type=int, default=200)
    ap.add_argument("--round-repeats", type=int, default=3)
    args = ap.parse_args()
    phases = set(args.only or ["absorb", "lag", "rounds", "shared"])

    with psycopg.connect(args.pg_url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {args.pg_schema} CASCADE")
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "mosquitto": subprocess.run(
            [MOSQUITTO, "-h"], capture_output=True, text=True
        ).stdout.splitlines()[0],
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"{result['date']}; {result['machine']}; load average {result['load_before']}")
    with tempfile.TemporaryDirectory(prefix="bench-fed-") as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        (tmp / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            f"max_inflight_messages 1000\nuser {os.environ.get('USER', 'root')}\n"
        )
        broker = subprocess.Popen([MOSQUITTO, "-c", str(tmp / "mosquitto.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        historian = None
        try:
            wait_port(port)
            settings = load_settings(
                data_dir=tmp / "region", db=args.pg_url, pg_schema=args.pg_schema,
                enterprise="region-ops",
                federation={"url": f"mqtt://127.0.0.1:{port}", "client_id": "bench-region"},
            )  # fmt: skip
            historian = open_historian(settings)
            if "absorb" in phases:
                print("absorb (PostgreSQL, batched transactions):")
                result["absorb"] = absorb(args, port, historian, settings)
            if "lag" in phases:
                print("lag:")
                result["lag"] = lag(args, port, historian, settings, tmp)
            if "shared" in phases:
                print("shared subscription (MQTT 5), 1 then 2 regional worker processes:")
                result["shared"] = shared(args, port, tmp)
            if "rounds" in phases:
                print("uplink rounds (DuckDB plant, 1 Hz power, yesterday and today):")
                result["rounds"] = rounds(args, tmp)
        finally:
            if historian is not None:
                historian.close()
            broker.terminate()
            broker.wait(5)
            with psycopg.connect(args.pg_url, autocommit=True) as con:
                con.execute(f"DROP SCHEMA IF EXISTS {args.pg_schema} CASCADE")
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average after: {result['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
