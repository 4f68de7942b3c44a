"""Dependencies shared by the routes: settings, the historian, time parsing."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from indunet.config import Settings
from indunet.errors import DataError
from indunet.ingest.values import TimeParser
from indunet.store import Historian

__all__ = ["HistorianDep", "SettingsDep", "parse_time_param", "time_parser"]


def get_settings(request: Request) -> Settings:
    """Return the settings of this request (its tenant set by `indunet.auth.web.authorise`)."""
    return getattr(request.state, "settings", None) or request.app.state.settings


def get_historian(request: Request) -> Historian:
    """Return the app's historian (opened in the lifespan)."""
    return request.app.state.historian


SettingsDep = Annotated[Settings, Depends(get_settings)]
HistorianDep = Annotated[Historian, Depends(get_historian)]


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
