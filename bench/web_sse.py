"""The live event stream under 500 open clients: delivery latency, server memory and CPU.

The app runs under uvicorn in its own process (as in ``web_load.py``); ``--clients`` SSE
connections (raw asyncio sockets, one API key) subscribe to ``values`` on
``GET /api/v1/events``; a writer posts ``--tags`` new values (stamped with the wall clock) to
``POST /api/v1/ingest`` every ``--every`` seconds. Each client notes when each ``values`` event
arrives; latency = arrival - the values' stamp, so it covers the HTTP ingest, the historian
write, the coalescing feed and the fan-out. Writes are spaced more than the feed's 1 s window,
so each write is published at once (a faster writer is coalesced to one event a second).

Run::

    .venv/bin/python bench/web_sse.py [--clients 500] [--seconds 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.web_load import (  # noqa: E402
    EXTRA_PATH,
    _cpu_s,
    _rss_mb,
    indunet_server,
    prepare,
    set_extra_path,
    versions,
)

DATA = re.compile(rb"event: values\ndata: (\{.*?\})\n\n", re.S)


async def client(
    host: str, port: int, key: str, latencies: list[float], fanout: list[float], ready: list
) -> None:
    """One SSE subscriber: note the latency of every values event until cancelled."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            "GET /api/v1/events?kinds=values HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    buf = b""
    first = True
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.time() * 1000
            if first:
                if not chunk.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(chunk[:200])
                ready.append(1)
                first = False
            buf += chunk
            last = 0
            for m in DATA.finditer(buf):
                data = json.loads(m.group(1))
                stamp = max(v["ts"] for v in data["values"])
                latencies.append(now - stamp)
                fanout.append(now - data["at"])
                last = m.end()
            if last:
                buf = buf[last:]
            elif len(buf) > 1_000_000:
                buf = buf[-100_000:]
    finally:
        writer.close()


async def run(args: argparse.Namespace, url: str, pid: int, keys: dict) -> dict:
    """Connect the clients, write while they listen, and collect the figures."""
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    latencies: list[float] = []
    fanout: list[float] = []  # from the server's publish ("at") to the client
    posts: list[float] = []  # the ingest POST's duration (ms)
    ready: list = []
    rss_idle = _rss_mb(pid)
    tasks = []
    for _ in range(args.clients):
        tasks.append(
            asyncio.create_task(client(host, port, keys["viewer"], latencies, fanout, ready))
        )
        if len(tasks) % 50 == 0:
            await asyncio.sleep(0.05)  # do not flood the accept queue
    deadline = time.monotonic() + 60
    while len(ready) < args.clients and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    connected = len(ready)
    rss_connected = _rss_mb(pid)
    tags = [f"site-01/press-shop/line-01/m00/t{i}" for i in range(args.tags)]
    writes = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        cpu0, t0 = _cpu_s(pid), time.monotonic()
        end = t0 + args.seconds
        while time.monotonic() < end:
            stamp = int(time.time() * 1000)
            body = [{"tag": t, "ts": stamp, "value": writes % 100} for t in tags]
            t_post = time.perf_counter()
            r = await http.post(
                "/api/v1/ingest", json=body, headers={"X-Device-Key": keys["device"]}
            )
            r.raise_for_status()
            posts.append((time.perf_counter() - t_post) * 1000)
            writes += 1
            await asyncio.sleep(args.every)
        await asyncio.sleep(2)  # the last event's delivery
        cpu = 100 * (_cpu_s(pid) - cpu0) / (time.monotonic() - t0)
    rss_after = _rss_mb(pid)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(latencies)

    def pct(q: float, xs: list[float] | None = None) -> float:
        xs = lat if xs is None else sorted(xs)
        return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else float("nan")

    return {
        "clients": args.clients,
        "connected": connected,
        "writes": writes,
        "deliveries": len(lat),
        "expected_deliveries": writes * connected,
        "latency_p50_ms": pct(0.50),
        "latency_p99_ms": pct(0.99),
        "latency_max_ms": round(lat[-1], 1) if lat else None,
        "fanout_p50_ms": pct(0.50, fanout),
        "fanout_p99_ms": pct(0.99, fanout),
        "ingest_post_p50_ms": pct(0.50, posts),
        "ingest_post_p99_ms": pct(0.99, posts),
        "latency_mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        "server_rss_idle_mb": round(rss_idle, 1),
        "server_rss_connected_mb": round(rss_connected, 1),
        "server_rss_after_mb": round(rss_after, 1),
        "server_cpu_pct": round(cpu, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--every", type=float, default=1.5, help="seconds between writes")
    p.add_argument("--tags", type=int, default=20, help="tags per write (= values per event)")
    p.add_argument("--json", type=Path)
    p.add_argument("--extra-path", default=EXTRA_PATH, help="import path with uvloop/httptools")
    args = p.parse_args()
    set_extra_path(args.extra_path)
    with tempfile.TemporaryDirectory(prefix="indunet-websse-") as tmp:
        data_dir = Path(tmp) / "data"
        keys = prepare(data_dir, 1)
        with indunet_server(data_dir) as (url, pid):
            res = asyncio.run(run(args, url, pid, keys))
    res["versions"] = versions()
    print(f"versions: {res['versions']}")
    print(
        f"{res['connected']}/{res['clients']} SSE clients connected; {res['writes']} writes of "
        f"{args.tags} values every {args.every:g} s over {args.seconds:g} s; 2 cores shared with "
        "the clients, the writer and other work on this machine"
    )
    print(
        f"deliveries {res['deliveries']:,} of {res['expected_deliveries']:,}; latency write → "
        f"client p50 {res['latency_p50_ms']} ms, p99 {res['latency_p99_ms']} ms, "
        f"max {res['latency_max_ms']} ms"
    )
    print(
        f"  of which the ingest POST p50 {res['ingest_post_p50_ms']} ms, p99 "
        f"{res['ingest_post_p99_ms']} ms; publish → client (fan-out) p50 "
        f"{res['fanout_p50_ms']} ms, p99 {res['fanout_p99_ms']} ms"
    )
    print(
        f"server RSS {res['server_rss_idle_mb']} MB idle, {res['server_rss_connected_mb']} MB "
        f"with {res['connected']} clients, {res['server_rss_after_mb']} MB after; "
        f"server CPU {res['server_cpu_pct']}% of one core during the run"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
