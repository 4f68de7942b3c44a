"""Prometheus metrics at ``GET /metrics`` (text exposition format), one registry per app.

HTTP requests are counted and timed per route *template* (``/api/v1/machines/{path:path}``, not
the raw path), so the label set stays bounded; unmatched paths share ``route="unmatched"``.
Ingest, MQTT, dead-letter and event-stream figures are read when Prometheus scrapes, from the
objects that own them (``app.state.mqtt.stats``, the event bus, the historian), so no hot path pays
for them. Who may read: an admin of this server's enterprise (``indunet.auth.policy``), e.g. a
Prometheus job with an admin API key as its bearer token.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indunet import __version__
from indunet.api.middleware import ErrorBody, error_response

__all__ = ["Health", "HttpMetricsMiddleware", "Metrics", "Readiness", "record_ingest", "router"]

router = APIRouter(tags=["health"])
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's registry: HTTP counters kept here, everything else read at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "indunet_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "indunet_http_request_duration_seconds",
            "Time to answer an HTTP request (to the first byte for event streams).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self.ingested: dict[str, list[int]] = {}  # source -> [stored, rejected]
        self.registry.register(_StateCollector(self))
        self._routes: dict[int, str] = {}

    def add_ingest(self, source: str, stored: int, rejected: int) -> None:
        """Count points stored and rejected (dead-lettered) by an ingest path other than MQTT."""
        with self._lock:
            pair = self.ingested.setdefault(source, [0, 0])
            pair[0] += stored
            pair[1] += rejected

    def route_template(self, scope: Scope) -> str:
        """Return the full path template of the route that answered, or ``unmatched``."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        found = self._routes.get(id(route))
        if found is None:
            if not self._routes:
                self._routes = {
                    id(rc.original_route): rc.path
                    for rc in iter_route_contexts(self.app.routes)
                    if rc.path is not None
                }
            found = self._routes.get(id(route)) or getattr(route, "path", None) or UNMATCHED
        return found

    def exposition(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)


def record_ingest(app: Any, source: str, stored: int, rejected: int) -> None:
    """Count an ingest on ``app``'s metrics (a no-op for apps without metrics)."""
    metrics: Metrics | None = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.add_ingest(source, stored, rejected)


class _StateCollector(Collector):
    """Figures read from the running parts when Prometheus scrapes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked collector: names depend on what runs

    def collect(self) -> Iterator[Metric]:
        state = self.metrics.app.state
        historian = getattr(state, "historian", None)
        info = GaugeMetricFamily(
            "indunet_build_info", "indunet version and runtime.", labels=["version", "python"]
        )
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        if historian is not None:
            backend = GaugeMetricFamily(
                "indunet_historian_info", "The historian backend in use.", labels=["backend"]
            )
            backend.add_metric([historian.backend], 1)
            yield backend
        yield from self._ingest(getattr(state, "mqtt", None))
        yield from self._mqtt(getattr(state, "mqtt", None))
        yield from self._events(getattr(state, "events", None))
        if historian is not None:
            yield from self._dead_letters(historian)

    def _ingest(self, mqtt: Any) -> Iterator[Metric]:
        with self.metrics._lock:
            sources = {k: tuple(v) for k, v in self.metrics.ingested.items()}
        if mqtt is not None:
            sources["mqtt"] = (mqtt.stats.stored_points, mqtt.stats.dead_letters)
        stored = CounterMetricFamily(
            "indunet_ingest_points_stored", "Points written to the historian.", labels=["source"]
        )
        rejected = CounterMetricFamily(
            "indunet_ingest_points_rejected",
            "Points or messages refused and dead-lettered, with a reason.",
            labels=["source"],
        )
        for source, (ok, bad) in sorted(sources.items()):
            stored.add_metric([source], ok)
            rejected.add_metric([source], bad)
        yield stored
        yield rejected

    def _mqtt(self, mqtt: Any) -> Iterator[Metric]:
        if mqtt is None:
            return
        s = mqtt.stats
        for name, doc, value in (
            ("received", "MQTT messages received.", s.received),
            ("acked", "MQTT messages committed to the historian and acknowledged.", s.acked),
            ("batches", "Batches written by MQTT ingest.", s.batches),
            (
                "write_failures",
                "Failed historian writes (retried) of MQTT ingest.",
                s.write_failures,
            ),
            ("connections", "Connections made to the MQTT broker.", s.connections),
            ("rebirths_requested", "Sparkplug rebirth requests sent.", s.rebirths_requested),
        ):
            yield CounterMetricFamily(f"indunet_mqtt_{name}", doc, value=value)
        yield GaugeMetricFamily(
            "indunet_mqtt_unacked_messages",
            "MQTT messages received but not yet committed and acknowledged.",
            value=max(s.received - s.acked, 0),
        )
        pending = getattr(mqtt, "_pending", None)  # the batch being collected (swapped whole)
        depth = getattr(pending, "count", 0)
        since = getattr(pending, "since", 0.0)
        yield GaugeMetricFamily(
            "indunet_mqtt_queue_depth_messages",
            "MQTT messages waiting in the batch for the next historian write.",
            value=depth,
        )
        yield GaugeMetricFamily(
            "indunet_mqtt_ingest_lag_seconds",
            "Age of the oldest MQTT message not yet written (0 when none waits).",
            value=max(time.monotonic() - since, 0.0) if depth else 0.0,
        )
        yield GaugeMetricFamily(
            "indunet_mqtt_connected",
            "1 when connected and subscribed to the broker.",
            value=1 if s.connected and s.subscribed else 0,
        )

    def _events(self, bus: Any) -> Iterator[Metric]:
        status = bus.status() if bus is not None else {"subscribers": 0, "published": 0}
        yield GaugeMetricFamily(
            "indunet_sse_subscribers", "Open live event streams (SSE).", value=status["subscribers"]
        )
        yield CounterMetricFamily(
            "indunet_sse_events_published",
            "Events published to the live stream.",
            value=status["published"],
        )
        yield GaugeMetricFamily(
            "indunet_sse_events_dropped",
            "Events dropped for slow clients (open streams only).",
            value=status.get("dropped", 0),
        )

    def _dead_letters(self, historian: Any) -> Iterator[Metric]:
        total = _count_dead_letters(historian)
        if total is not None:
            yield GaugeMetricFamily(
                "indunet_dead_letters", "Dead letters kept (all sources, all tenants).", value=total
            )


def _count_dead_letters(historian: Any) -> int | None:
    try:
        table = historian._query("SELECT count(*) AS n FROM deadletters", [])
    except Exception:  # a scrape must not fail because the store is busy
        return None
    return int(table.column("n")[0].as_py())


class HttpMetricsMiddleware:
    """Plain ASGI: count and time each HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count and time one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", ()):
                    if key.lower() == b"content-type" and value.startswith(b"text/event-stream"):
                        elapsed = time.perf_counter() - start  # a stream: time to first byte
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if elapsed is None:
                elapsed = time.perf_counter() - start
            route = self.metrics.route_template(scope)
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "other"  # clients may send any token
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format): ingest, MQTT, dead letters, HTTP, SSE."""
    registry: Metrics = request.app.state.metrics
    body = await run_in_threadpool(registry.exposition)  # the dead-letter count queries the store
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class Health(BaseModel):
    """Liveness: the process answers; its historian backend and MQTT ingest counters."""

    status: str = Field(description="Always `ok` when the process answers")
    historian: str = Field(description="The historian backend: duckdb or postgresql")
    mqtt: dict[str, Any] | None = Field(None, description="MQTT ingest counters, when it runs")
    dependencies: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Each dependency's state now: `state` up/down, `since_ms`, `last_error` and "
        "`last_error_ms` (cleared when it recovers), `last_outage_s`",
    )


class Check(BaseModel):
    """One readiness check."""

    ok: bool
    reason: str | None = None


class Readiness(BaseModel):
    """Whether this process can serve: each check with its reason when it fails."""

    ready: bool
    checks: dict[str, Check]


def _historian_check(historian: Any, enterprise: str) -> Check:
    try:
        historian.tags(enterprise, "", limit=1)  # a trivial indexed query
    except Exception as exc:  # any failure means not ready; the reason names no secret
        return Check(ok=False, reason=f"historian did not answer ({type(exc).__name__})")
    return Check(ok=True)


def _mqtt_check(mqtt: Any) -> Check:
    if mqtt.stats.connected and mqtt.stats.subscribed:
        return Check(ok=True)
    why = "not subscribed" if mqtt.stats.connected else "not connected to the broker"
    return Check(ok=False, reason=f"MQTT ingest is {why}")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": ErrorBody, "description": "Not ready: `detail` lists the reasons"}},
)
async def ready(request: Request) -> Response | Readiness:
    """Readiness: the historian answers a trivial query and MQTT ingest (when run) is connected."""
    state = request.app.state
    checks = {
        "historian": await run_in_threadpool(
            _historian_check, state.historian, state.settings.enterprise
        )
    }
    mqtt = getattr(state, "mqtt", None)
    if mqtt is not None:
        checks["mqtt"] = _mqtt_check(mqtt)
    failed = [f"{name}: {c.reason}" for name, c in checks.items() if not c.ok]
    if failed:
        response = error_response(request, 503, "not ready: " + "; ".join(failed))
        response.headers["Retry-After"] = "5"
        return response
    return Readiness(ready=True, checks=checks)
