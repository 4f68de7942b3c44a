"""GET /api/v1/deadletters: input that could not be stored, with the reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from indunet.api.deps import HistorianDep, SettingsDep

router = APIRouter(tags=["deadletters"])


@router.get("/deadletters")
def list_dead_letters(
    historian: HistorianDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(gt=0, le=10_000)] = 100,
    source: str | None = None,
    enterprise: str | None = None,
) -> dict:
    """Return the newest dead letters first."""
    enterprise = enterprise or settings.enterprise
    return {"rows": historian.dead_letters(enterprise, limit=limit, source=source)}
