"""Build the FastAPI app: `create_app(settings)`; nothing is opened at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from indunet import __version__
from indunet.api import events, lanes, live
from indunet.api import metrics as api_metrics
from indunet.api.fastpath import FastPathApp, LatestFastPath
from indunet.api.hardening import BodyLimitMiddleware, SecurityHeadersMiddleware
from indunet.api.middleware import RequestIdMiddleware, api_openapi, install_error_handlers
from indunet.api.routes import alarms as alarm_routes
from indunet.api.routes import auth as auth_routes
from indunet.api.routes import (
    business,
    chain,
    condition,
    deadletters,
    docking,
    federation,
    ingest,
    region,
    series,
    tags,
)
from indunet.api.routes import plant as plant_routes
from indunet.api.routes import shift as shift_routes
from indunet.auth.web import authorise
from indunet.config import Settings
from indunet.store import Historian, open_historian
from indunet.web import alarms as alarm_page
from indunet.web import api_docs, pages
from indunet.web import attention as attention_page
from indunet.web import business as business_page
from indunet.web import chain as chain_page
from indunet.web import data as data_page
from indunet.web import docking as docking_page
from indunet.web import energy as energy_page
from indunet.web import fleet as fleet_page
from indunet.web import overview as overview_page
from indunet.web import region as region_pages
from indunet.web import wall as wall_pages

__all__ = ["create_app"]


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0] if route.tags else 'default'}-{route.name}"


def create_app(settings: Settings, historian: Historian | None = None) -> FastAPI:
    """Return the indunet HTTP app; it opens (or uses) one historian for its lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = historian is None
        lanes.install(app, settings.http_read_threads)  # writes never queue behind reads
        app.state.historian = historian or open_historian(settings)
        alarm_routes.install(app)  # event bus (SSE) with alarm replay; app.state.alarms
        stop_live = live.install(app, alarm_routes.app_bus(app))  # values/state events, caches
        try:
            yield
        finally:
            stop_live()
            if owned:
                app.state.historian.close()

    app = FastPathApp(  # GET /api/v1/latest from memory before everything (indunet.api.fastpath)
        title="indunet",
        version=__version__,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # /docs and /redoc come from vendored assets (indunet.web.api_docs)
        redoc_url=None,
    )
    app.state.settings = settings
    guarded = [Depends(authorise)]  # route table: indunet.auth.policy.ROUTES
    app.include_router(auth_routes.router, prefix="/api/v1", dependencies=guarded)
    for module in (ingest, series, tags, deadletters, business, docking, chain, region, federation):
        app.include_router(module.router, prefix="/api/v1", dependencies=guarded)
    app.include_router(condition.router, prefix="/api/v1", dependencies=guarded)  # RUL
    # registering enterprises (an uplinking plant's) in the resumption monitor's registry
    app.include_router(federation.registry_router, prefix="/api/v1", dependencies=guarded)
    app.include_router(plant_routes.router, prefix="/api/v1", dependencies=guarded)  # machines, …
    for extra in (alarm_routes, events):  # alarms and the live event stream (SSE)
        app.include_router(extra.router, prefix="/api/v1", dependencies=guarded)
    # shift reports, Andon, handover notes, display keys; wall screens' data (issue 19)
    app.include_router(shift_routes.router, prefix="/api/v1", dependencies=guarded)
    app.include_router(wall_pages.api_router, prefix="/api/v1", dependencies=guarded)
    app.state.templates = pages.build_templates()
    app.state.templates.env.globals["currency"] = settings.currency  # costs on the pages
    app.include_router(pages.router, dependencies=guarded)
    app.include_router(overview_page.router, dependencies=guarded)  # / (the CEO view)
    app.include_router(region_pages.router, dependencies=guarded)  # /region pages
    app.include_router(docking_page.router, dependencies=guarded)  # /docking
    app.include_router(chain_page.router, dependencies=guarded)  # /chain pages
    for web in (alarm_page, energy_page, business_page, data_page, attention_page, fleet_page):
        app.include_router(web.router, dependencies=guarded)
    app.include_router(wall_pages.router, dependencies=guarded)  # /wall, /andon, /reports
    app.include_router(auth_routes.pages_router, dependencies=guarded)  # /login
    app.include_router(api_docs.router, dependencies=guarded)  # /docs, /redoc (offline)
    app.mount("/static", pages.static_files(), name="static")

    # errors, request ids, metrics, readiness: indunet.api.middleware / indunet.api.metrics
    install_error_handlers(app)  # {"detail", "status", "request_id"} for every 4xx/5xx
    app.state.metrics = api_metrics.Metrics(app)
    app.add_middleware(
        BodyLimitMiddleware,
        bulk_bytes=settings.ingest_max_bytes,
        other_bytes=settings.http_max_body_bytes,
    )
    app.add_middleware(SecurityHeadersMiddleware)  # CSP with a nonce, no framing, nosniff, …
    app.add_middleware(api_metrics.HttpMetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)  # the id is set before anything runs
    # outermost: reads beyond the slots wait before any work is done (writes go first)
    app.add_middleware(lanes.ReadGate, slots=settings.http_read_slots)
    app.include_router(api_metrics.router, dependencies=guarded)  # /metrics, /ready
    # asked before all of the above; adds the request id, security headers and metrics itself
    app.latest_fast_path = LatestFastPath(super(FastPathApp, app).__call__, root=app)
    app.turn_gate = lanes.TurnGate(settings.http_fast_reads_per_turn)  # writes go first
    app.openapi = api_openapi(app)  # documents the error responses of every operation

    @app.get("/health", tags=["health"])
    def health(request: Request) -> api_metrics.Health:
        """Report that the app is up, its historian backend and its MQTT ingest counters."""
        from dataclasses import asdict

        mqtt = getattr(request.app.state, "mqtt", None)
        historian = request.app.state.historian
        dependencies = {}
        if getattr(historian, "health", None) is not None:  # a database server
            dependencies["historian"] = historian.health.as_dict()
        if mqtt is not None:
            dependencies["mqtt"] = {
                "state": "up" if mqtt.stats.connected and mqtt.stats.subscribed else "down",
                "last_error": mqtt.stats.last_error,
            }
        return api_metrics.Health(
            status="ok",
            historian=historian.backend,
            mqtt=asdict(mqtt.stats) if mqtt else None,
            dependencies=dependencies,
        )

    return app
