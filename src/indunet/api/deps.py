"""Dependencies shared by the routes: settings, the historian, time parsing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request

from indunet.config import Settings
from indunet.errors import DataError
from indunet.ingest.values import TimeParser
from indunet.store import Historian

__all__ = [
    "HistorianDep",
    "SettingsDep",
    "app_store",
    "parse_time_param",
    "read_json",
    "read_limited",
    "time_parser",
]

StoreT = TypeVar("StoreT")


def get_settings(request: Request) -> Settings:
    """Return the settings of this request (its tenant set by `indunet.auth.web.authorise`)."""
    return getattr(request.state, "settings", None) or request.app.state.settings


def get_historian(request: Request) -> Historian:
    """Return the app's historian (opened in the lifespan)."""
    return request.app.state.historian


async def _settings(request: Request) -> Settings:
    return get_settings(request)


async def _historian(request: Request) -> Historian:
    return get_historian(request)


# async: FastAPI runs a plain ``def`` dependency in a worker thread of the read pool, and each of
# those hops waited there and for its turn back on the loop under a read load (an ingest post
# spent 35-108 ms before its route began, issue 22); these two only read attributes
SettingsDep = Annotated[Settings, Depends(_settings)]
HistorianDep = Annotated[Historian, Depends(_historian)]


def time_parser(settings: Settings) -> TimeParser:
    """Return a time parser bounded by now and the settings' allowed future."""
    return TimeParser(now_ms=int(time.time() * 1000), max_future_ms=settings.max_future_s * 1000)


def parse_time_param(name: str, raw: str | None, default: int, settings: Settings) -> int:
    """Parse a query parameter holding epoch ms or RFC 3339; 422 naming the parameter if bad."""
    if raw is None or raw == "":
        return default
    try:
        return time_parser(settings).parse(raw)
    except DataError as exc:
        raise HTTPException(status_code=422, detail=f"parameter {name!r}: {exc}") from exc


def app_store(
    request: Request, historian: Historian, name: str, make: Callable[[Historian], StoreT]
) -> StoreT:
    """Return the store kept on the app under ``name``, made beside ``historian`` on first use."""
    store = getattr(request.app.state, name, None)
    if store is None or store.historian is not historian:
        store = make(historian)
        setattr(request.app.state, name, store)
    return store


async def read_limited(request: Request, limit: int) -> bytes:
    """Return the request body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes is larger than the limit {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    """Return the request body parsed as JSON; 413 over ``limit``, 400 when it is not JSON."""
    body = await read_limited(request, limit)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from exc
