"""POST /api/v1/ingest: JSON array or NDJSON of ``{"tag", "ts", "value"}`` records."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from indunet.api.deps import HistorianDep, SettingsDep, read_limited, time_parser
from indunet.api.lanes import run_first
from indunet.api.metrics import record_ingest
from indunet.errors import DataError
from indunet.ingest.records import parse_body
from indunet.model import DeadLetter

router = APIRouter(tags=["ingest"])
MAX_ERRORS = 100
#: a post of at most ``http_inline_points`` points (and these body bytes) is stored on the event
#: loop itself: it goes before every request waiting there instead of queueing behind them for
#: a worker thread and back (under read load, each turn of the loop lasts as long as all
#: readers' requests); bigger posts, and posts arriving while another writer holds the
#: historian, go to a worker thread so the loop is never held long nor waits for a lock
INLINE_BYTES = 256 * 1024
INLINE_WAIT_S = 0.25  # how long a small post waits for another writer's batch, then a thread
INLINE_POLL_S = 0.002


class IngestResult(BaseModel):
    """How many records were stored and rejected, with the first reasons."""

    stored: int
    rejected: int
    errors: list[str]


_RECORD = {
    "type": "object",
    "required": ["tag", "ts", "value"],
    "properties": {
        "tag": {"type": "string", "description": "site/area/line/machine/tag"},
        "ts": {"type": ["integer", "string"], "description": "Epoch ms or RFC 3339"},
        "value": {"type": ["number", "boolean", "string"]},
    },
}
_BODY = {  # read raw (size limit, NDJSON), so documented here rather than by a model
    "required": True,
    "content": {
        "application/json": {"schema": {"anyOf": [_RECORD, {"type": "array", "items": _RECORD}]}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "One record a line"}},
    },
}


@router.post("/ingest", response_model=IngestResult, openapi_extra={"requestBody": _BODY})
async def ingest(
    request: Request,
    historian: HistorianDep,
    settings: SettingsDep,
    enterprise: Annotated[str | None, Query(description="Enterprise (tenant)")] = None,
    format: Annotated[str | None, Query(pattern="^(json|ndjson)$")] = None,
) -> IngestResult:
    """Store points; bad records are dead-lettered and reported, the good ones are stored."""
    from starlette.concurrency import run_in_threadpool

    enterprise = enterprise or settings.enterprise
    body = await read_limited(request, settings.ingest_max_bytes)
    ctype = request.headers.get("content-type", "")
    ndjson = format == "ndjson" or (format is None and "ndjson" in ctype)
    source = "http:ingest"
    try:
        parsed = parse_body(
            body,
            ndjson=ndjson,
            enterprise=enterprise,
            times=time_parser(settings),
            source=source,
            payload_limit=settings.deadletter_payload_bytes,
        )
    except DataError as exc:
        letter = DeadLetter(
            source,
            str(exc),
            "body",
            body[: settings.deadletter_payload_bytes].decode("utf-8", "replace"),
        )
        await run_in_threadpool(historian.add_dead_letters, [letter], enterprise)
        raise HTTPException(400, str(exc)) from exc

    def store() -> IngestResult:
        result = historian.write(parsed.batch, source=source)
        if parsed.rejected:
            historian.add_dead_letters(parsed.rejected, enterprise)
        rejected = parsed.rejected + result.rejected
        record_ingest(request.app, "http", result.stored, len(rejected))  # for /metrics
        return IngestResult(
            stored=result.stored,
            rejected=len(rejected),
            errors=[d.reason for d in rejected[:MAX_ERRORS]],
        )

    small = len(body) <= INLINE_BYTES and parsed.batch.table.num_rows <= settings.http_inline_points
    writer = getattr(historian, "_lock", None)  # held by another writer (MQTT, compaction)?
    if small and writer is not None and await _writer_free(writer):
        try:  # free: store now, on the loop, before the readers waiting there
            return store()
        finally:
            writer.release()
    return await run_first(request.app, store)  # never behind the reads' worker threads


async def _writer_free(writer: Any) -> bool:
    """Take the historian's write lock from the event loop, waiting (without blocking the loop)
    up to `INLINE_WAIT_S` for another writer's batch to finish; False: still busy.

    A write in a worker thread beside a busy loop and MQTT ingest waits for the GIL at each of
    its steps (web_load: HTTP ingest fell to 1,546 of 2,000 points/s beside 20,000 over MQTT);
    another writer's batches are short, so waiting for the gap between two is faster.
    """
    deadline = time.monotonic() + INLINE_WAIT_S
    while not writer.acquire(blocking=False):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(INLINE_POLL_S)
    return True
