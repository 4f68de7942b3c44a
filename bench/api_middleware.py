"""Cost of the request-ID and metrics middlewares per request, against two peers.

One small FastAPI app (one JSON route) is called in-process over ASGI (no sockets, so the figure
is the middleware's own cost, not the network's) in three set-ups:

* ``bare``: no middleware;
* ``indunet``: `RequestIdMiddleware` + `HttpMetricsMiddleware` (plain ASGI, as in the app);
* ``basehttp``: the same two jobs written as Starlette ``BaseHTTPMiddleware`` classes (the
  usual first implementation, which also buffers streamed bodies).

Rounds alternate the set-ups so a busy neighbour on the shared CPU hits all three alike; the
median of the rounds is printed in µs per request.

    .venv/bin/python bench/api_middleware.py               # ~30 s on 2 cores
    .venv/bin/python bench/api_middleware.py --requests 20000 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
import uuid
from importlib.metadata import version

import fastapi
import starlette
from fastapi import FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware

from indunet.api.metrics import HttpMetricsMiddleware, Metrics
from indunet.api.middleware import RequestIdMiddleware


def build(kind: str) -> FastAPI:
    """Return the test app with the middlewares of ``kind``."""
    app = FastAPI()

    @app.get("/api/v1/things/{name}")
    async def thing(name: str) -> dict:
        return {"name": name, "value": 1.5}

    if kind == "indunet":
        metrics = Metrics(app)
        app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
        app.add_middleware(RequestIdMiddleware)
    elif kind == "basehttp":
        metrics = Metrics(app)

        class Timed(BaseHTTPMiddleware):
            async def dispatch(self, request: Request, call_next):
                start = time.perf_counter()
                response = await call_next(request)
                route = metrics.route_template(request.scope)
                metrics.requests.labels(request.method, route, str(response.status_code)).inc()
                metrics.latency.labels(request.method, route).observe(time.perf_counter() - start)
                return response

        class WithId(BaseHTTPMiddleware):
            async def dispatch(self, request: Request, call_next):
                rid = request.headers.get("x-request-id") or uuid.uuid4().hex
                response = await call_next(request)
                response.headers["X-Request-ID"] = rid
                return response

        app.add_middleware(Timed)
        app.add_middleware(WithId)
    return app


async def call(app: FastAPI, n: int) -> float:
    """Send ``n`` GET requests straight to the ASGI app; return seconds taken."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/things/press-7",
        "raw_path": b"/api/v1/things/press-7",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 5000),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - start
    assert sent[0]["status"] == 200
    return elapsed


def main() -> None:
    """Print µs per request for each set-up (median of rounds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kinds = ("bare", "indunet", "basehttp")
    apps = {k: build(k) for k in kinds}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for k in kinds:  # warm-up (route tables, first label sets)
        asyncio.run(call(apps[k], 200))
    for _ in range(args.rounds):
        for k in kinds:
            times[k].append(asyncio.run(call(apps[k], args.requests)) / args.requests * 1e6)
    print(
        f"python {platform.python_version()}, fastapi {fastapi.__version__}, "
        f"starlette {starlette.__version__}, prometheus_client {version('prometheus-client')}"
    )
    print(f"{args.requests} requests x {args.rounds} rounds, in-process ASGI, median µs/request")
    bare = statistics.median(times["bare"])
    for k in kinds:
        med = statistics.median(times[k])
        print(f"  {k:9s} {med:8.1f} µs   (+{med - bare:6.1f} µs over bare)")


if __name__ == "__main__":
    main()
