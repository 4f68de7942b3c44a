"""µs of the app per ``GET /api/v1/latest`` (200 tags, API key), in-process over ASGI.

The app of `indunet serve` (`create_app`) on a DuckDB file with one line of 200 tags is called
with a fake scope/receive/send in a loop (no sockets: the figure is the app's own CPU, not
uvicorn's nor the network's), four ways: answers kept or built per request (``cached`` /
``uncached``), each with the fast path (`indunet.api.fastpath`, the default) and through
FastAPI and its middleware (``framework``: the fast path switched off). Rounds alternate the
ways so a busy neighbour on the shared CPU hits all alike; the median of the rounds is printed.

    PYTHONPATH=src .venv/bin/python bench/latest_stack.py                 # ~30 s
    PYTHONPATH=src .venv/bin/python bench/latest_stack.py --requests 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.web_load

from bench.web_load import prepare

from indunet.api.app import create_app
from indunet.api.routes.series import LatestCache
from indunet.config import load_settings
from indunet.store import open_historian

WAYS = ("cached fast", "cached framework", "uncached fast", "uncached framework")


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """A scope as uvicorn makes it for the bench's request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/api/v1/latest",
        "raw_path": b"/api/v1/latest",
        "query_string": b"prefix=site-01/press-shop/line-01",
        "headers": headers,
        "state": {},
    }


async def measure(requests: int, rounds: int) -> dict[str, float]:
    """Return the median µs per request of each way."""
    tmp = tempfile.mkdtemp(prefix="indunet-latest-stack-")
    keys = prepare(Path(tmp) / "data", 1)
    settings = load_settings(data_dir=str(Path(tmp) / "data"))
    historian = open_historian(settings)
    app = create_app(settings, historian)
    fast = app.latest_fast_path
    caches = {"cached": LatestCache(), "uncached": LatestCache(ttl_s=-1.0)}
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"authorization", f"Bearer {keys['viewer']}".encode()),
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    figures: dict[str, list[float]] = {w: [] for w in WAYS}
    try:
        async with app.router.lifespan_context(app):
            for cache in caches.values():  # verify the key, seed each cache's index
                cache.indexed = historian.backend == "duckdb"  # as indunet.api.live.install
                app.state.latest_cache = cache
                await app(scope(headers), receive, send)
                assert sent[0]["status"] == 200, sent[0]
                sent.clear()
            await asyncio.sleep(0.2)
            for _ in range(rounds):
                for way in WAYS:
                    kept, path = way.split()
                    app.state.latest_cache = caches[kept]
                    app.latest_fast_path = fast if path == "fast" else None
                    t0 = time.perf_counter()
                    for i in range(requests):
                        await app(scope(headers), receive, send)
                        sent.clear()
                        if i % 100 == 0:
                            await asyncio.sleep(0)  # the loop's other work (key refreshes)
                    figures[way].append((time.perf_counter() - t0) / requests * 1e6)
            app.latest_fast_path = fast
    finally:
        historian.close()
    return {w: statistics.median(v) for w, v in figures.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=10_000, help="requests per way and round")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    load = os.getloadavg()
    medians = asyncio.run(measure(args.requests, args.rounds))
    print(f"load average {load[0]:.2f} at start; {args.rounds} rounds of {args.requests:,}")
    for way, us in medians.items():
        print(f"  /latest {way:<20} {us:7.1f} µs per request (median)")


if __name__ == "__main__":
    main()
