"""GET /api/v1/deadletters: input that could not be stored, with the reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from indunet.api.deps import HistorianDep, SettingsDep
from indunet.api.paging import Offset, page

router = APIRouter(tags=["deadletters"])


class DeadLetterOut(BaseModel):
    """Input that could not be stored, with the reason."""

    id: int
    received_ms: int
    enterprise: str | None
    source: str
    ref: str | None
    reason: str
    payload: str | None


class DeadLetters(BaseModel):
    """Dead letters, newest first."""

    rows: list[DeadLetterOut]


@router.get("/deadletters", response_model=DeadLetters)
def list_dead_letters(
    request: Request,
    response: Response,
    historian: HistorianDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(gt=0, le=10_000)] = 100,
    source: str | None = None,
    enterprise: str | None = None,
    offset: Offset = 0,
) -> dict:
    """Return the newest dead letters first (paged: ``Link: rel=next`` when more follow)."""
    enterprise = enterprise or settings.enterprise
    rows = historian.dead_letters(enterprise, limit=offset + limit + 1, source=source)
    return {"rows": page(request, response, rows, limit=limit, offset=offset)}
