"""GET /api/v1/series and /api/v1/latest: raw, bucketed and downsampled reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from indunet.api.deps import HistorianDep, SettingsDep, parse_time_param

router = APIRouter(tags=["series"])

Agg = Literal["min", "max", "avg", "first", "last", "count"]


def iso(ms: int | None) -> str | None:
    """Return epoch ms as RFC 3339 UTC text."""
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@router.get("/series")
def series(
    historian: HistorianDep,
    settings: SettingsDep,
    tag: Annotated[str, Query(description="site/area/line/machine/tag")],
    start: Annotated[
        str | None, Query(description="epoch ms or RFC 3339; default end-1 day")
    ] = None,
    end: Annotated[
        str | None, Query(description="epoch ms or RFC 3339 (exclusive); default now")
    ] = None,
    buckets: Annotated[int | None, Query(gt=0, le=100_000)] = None,
    agg: Annotated[list[Agg] | None, Query()] = None,
    downsample: Annotated[Literal["m4", "lttb"] | None, Query()] = None,
    points: Annotated[int, Query(ge=3, le=100_000)] = 1000,
    width: Annotated[
        int | None,
        Query(
            ge=3,
            le=100_000,
            description="Chart width in px: downsample (M4 unless `downsample` says) to at most "
            "this many points.",
        ),
    ] = None,
    limit: Annotated[int, Query(gt=0, le=1_000_000)] = 100_000,
    enterprise: str | None = None,
) -> dict:
    """Return a tag's points: raw, bucketed (``buckets``) or downsampled for a chart."""
    enterprise = enterprise or settings.enterprise
    end_ms = parse_time_param("end", end, int(time.time() * 1000), settings)
    start_ms = parse_time_param("start", start, end_ms - 86_400_000, settings)
    if buckets:
        table = historian.buckets(enterprise, tag, start_ms, end_ms, buckets)
        cols = ["start_ms", *(agg or ["min", "max", "avg", "first", "last", "count"])]
        return {
            "tag": tag,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "buckets": buckets,
            "rows": table.select(cols).to_pylist(),
        }
    if width and not buckets:
        downsample, points = downsample or "m4", width
    if downsample:
        table = historian.downsample(enterprise, tag, start_ms, end_ms, points, method=downsample)
        return {
            "tag": tag,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "method": downsample,
            "points": points,
            "rows": table.to_pylist(),
        }
    table = historian.series(enterprise, tag, start_ms, end_ms, limit=limit)
    return {
        "tag": tag,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "rows": table.to_pylist(),
        "truncated": table.num_rows >= limit,
    }


@router.get("/latest")
def latest(
    historian: HistorianDep,
    settings: SettingsDep,
    prefix: str = "",
    enterprise: str | None = None,
) -> dict:
    """Return the newest value of every tag under a namespace prefix."""
    enterprise = enterprise or settings.enterprise
    rows = historian.latest(enterprise, prefix).to_pylist()
    for r in rows:
        r["time"] = iso(r["ts"])
    return {"prefix": prefix, "rows": rows}
