"""Build the FastAPI app: `create_app(settings)`; nothing is opened at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from indunet import __version__
from indunet.api import events
from indunet.api.routes import alarms as alarm_routes
from indunet.api.routes import auth as auth_routes
from indunet.api.routes import business, chain, deadletters, docking, ingest, region, series, tags
from indunet.api.routes import plant as plant_routes
from indunet.auth.web import authorise
from indunet.config import Settings
from indunet.errors import DataError, IndunetError, TemporaryError
from indunet.store import Historian, open_historian
from indunet.web import pages

__all__ = ["create_app"]


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0] if route.tags else 'default'}-{route.name}"


def create_app(settings: Settings, historian: Historian | None = None) -> FastAPI:
    """Return the indunet HTTP app; it opens (or uses) one historian for its lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = historian is None
        app.state.historian = historian or open_historian(settings)
        alarm_routes.install(app)  # event bus (SSE) with alarm replay; app.state.alarms
        try:
            yield
        finally:
            if owned:
                app.state.historian.close()

    app = FastAPI(
        title="indunet",
        version=__version__,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    guarded = [Depends(authorise)]  # route table: indunet.auth.policy.ROUTES
    app.include_router(auth_routes.router, prefix="/api/v1", dependencies=guarded)
    for module in (ingest, series, tags, deadletters, business, docking, chain, region):
        app.include_router(module.router, prefix="/api/v1", dependencies=guarded)
    app.include_router(plant_routes.router, prefix="/api/v1", dependencies=guarded)  # machines, …
    for extra in (alarm_routes, events):  # alarms and the live event stream (SSE)
        app.include_router(extra.router, prefix="/api/v1", dependencies=guarded)
    app.state.templates = pages.build_templates()
    app.include_router(pages.router, dependencies=guarded)
    app.include_router(auth_routes.pages_router, dependencies=guarded)  # /login
    app.mount("/static", pages.static_files(), name="static")

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(TemporaryError)
    async def _temporary(request: Request, exc: TemporaryError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.exception_handler(IndunetError)
    async def _other(request: Request, exc: IndunetError) -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": str(exc)})

    @app.get("/health", tags=["health"])
    def health(request: Request) -> dict:
        """Report that the app is up, its historian backend and its MQTT ingest counters."""
        from dataclasses import asdict

        mqtt = getattr(request.app.state, "mqtt", None)
        return {
            "status": "ok",
            "historian": request.app.state.historian.backend,
            "mqtt": asdict(mqtt.stats) if mqtt else None,
        }

    return app
