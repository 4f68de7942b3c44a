"""GET /api/v1/series and /api/v1/latest: raw, bucketed and downsampled reads."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
import pyarrow as pa
from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from indunet.api.deps import (
    HistorianDep,
    SettingsDep,
    get_historian,
    get_settings,
    parse_time_param,
)
from indunet.errors import DataError
from indunet.store import Historian
from indunet.store.base import exact_integers
from indunet.uns import parse_prefix

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
        "rows": exact_integers(table.to_pylist()),
        "truncated": table.num_rows >= limit,
    }


class LatestIndex:
    """The newest point of every tag of one enterprise, in memory, fed by the historian's writes.

    Seeded once from the historian; every later write and stale mark of this process updates it
    with the rule of the ``latest`` table (a point replaces the stored one when its ``ts`` is not
    older). Only used where this process is the only writer (the embedded DuckDB file).

    Each tag's row is kept encoded as JSON (built on the first read after it changed), and the
    tags under a prefix are looked up once per set of tags, so an answer is a join of bytes:
    reads that may not be cached (``ttl_s < 0``) cost about as little as cached ones.
    """

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, float | None, str | None, int]] = {}
        self._keys: tuple[int, list[str]] | None = None  # (generation, sorted tags)
        self._encoded: dict[str, tuple[tuple, bytes]] = {}  # tag -> (its row, the row's JSON)
        self._spans: dict[str, tuple[int, list[str]]] = {}  # prefix -> (generation, its tags)
        self._generation = 0  # +1 whenever a tag is added: older keys and spans are not used
        self._changes = 0  # +1 at every apply that changed a row: older joins are not used
        self._joined: dict[str, tuple[int, bytes]] = {}  # prefix -> (changes, its rows' JSON)
        self._writing = threading.Lock()  # one apply at a time; readers never take it
        self.ready = False

    def apply(self, newest: pa.Table, *, seed: bool = False) -> None:
        """Take newest points (tag, ts, value, text, quality); a seed never replaces equal ts.

        Readers never wait for it (they would wait for the GIL behind the writer's thread): the
        changes are gathered first and put in with one ``dict.update``, atomic for readers.
        """
        cols = [newest.column(c).to_pylist() for c in ("tag", "ts", "value", "text", "quality")]
        with self._writing:
            rows = self.rows
            changed: dict[str, tuple[int, float | None, str | None, int]] = {}
            added = False
            for tag, ts, value, text, quality in zip(*cols, strict=True):
                old = changed.get(tag) or rows.get(tag)
                if old is None:
                    added = True
                elif ts < old[0] or (seed and ts == old[0]):
                    continue
                changed[tag] = (ts, value, text, quality)
            rows.update(changed)
            if added:
                self._generation += 1
            if changed:
                self._changes += 1  # after the rows: a join never outlives what it shows

    def _tags_under(self, prefix: str) -> list[str]:
        """The tags under a normalised ``prefix`` by path, from the current generation."""
        generation = self._generation
        span = self._spans.get(prefix)
        if span is not None and span[0] == generation:
            return span[1]
        keys = self._keys
        if keys is None or keys[0] != generation:
            keys = self._keys = (generation, sorted(list(self.rows)))
        ordered = keys[1]
        lo = bisect.bisect_left(ordered, prefix) if prefix else 0
        found = []
        for tag in itertools.islice(ordered, lo, None):
            if prefix and not tag.startswith(prefix):
                break
            if not prefix or len(tag) == len(prefix) or tag[len(prefix)] == "/":
                found.append(tag)
        if len(self._spans) >= 4096:
            self._spans.clear()
        self._spans[prefix] = (generation, found)
        return found

    def under(self, prefix: str) -> list[dict[str, Any]]:
        """Return the rows of the tags under a normalised ``prefix``, by tag path."""
        rows = self.rows
        return [_row(tag, *rows[tag]) for tag in self._tags_under(prefix)]

    def encoded_under(self, prefix: str) -> bytes:
        """Return the rows under a normalised ``prefix`` as the JSON of `under`'s list's items,
        comma-separated (without the brackets).

        The join of a prefix is kept until the next apply that changes any row (≈ 40 µs for 200
        tags, against ≈ 1 µs to reuse it): reads between two writes share it.
        """
        changes = self._changes  # read before the rows: a join kept is never newer than it says
        joined_before = self._joined.get(prefix)
        if joined_before is not None and joined_before[0] == changes:
            return joined_before[1]
        rows, encoded = self.rows, self._encoded
        parts = []
        for tag in self._tags_under(prefix):
            row = rows[tag]
            kept = encoded.get(tag)
            if kept is None or kept[0] is not row:  # new, or changed since it was encoded
                kept = encoded[tag] = (row, _encode_row(_row(tag, *row)))
            parts.append(kept[1])
        joined = b",".join(parts)
        if len(self._joined) >= 4096:
            self._joined.clear()
        self._joined[prefix] = (changes, joined)
        return joined


def _row(tag: str, ts: int, value: Any, text: str | None, quality: int) -> dict[str, Any]:
    return {"tag": tag, "ts": ts, "value": value, "text": text, "quality": quality}


class LatestCache:
    """Encoded ``/latest`` answers per (enterprise, prefix), kept until the enterprise's next write.

    Writes in this process drop an enterprise's answers at once (``on_write`` is a historian
    write listener, see `indunet.api.live`); answers are also never older than ``ttl_s``, for
    writers in other processes (PostgreSQL ingest workers). With ``indexed`` (DuckDB: no other
    process can write) answers are built from a `LatestIndex` in memory instead of a query, so
    readers never wait behind ingest for the database. Else one request per key queries;
    requests arriving meanwhile get the previous answer if it is younger than ``ttl_s``.
    """

    def __init__(
        self,
        ttl_s: float = 1.0,
        max_entries: int = 4096,
        max_index_tags: int = 500_000,
        may_index: bool = True,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_index_tags = max_index_tags
        self.may_index = may_index
        self.indexed = False  # set by `indunet.api.live.install` for the embedded DuckDB
        self._version: dict[str, int] = {}
        self._entries: dict[tuple[str, str], tuple[int, float, bytes]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._indexes: dict[str, LatestIndex | None] = {}  # None: too many tags to index
        self.hits = self.misses = self.stale = 0

    def on_write(self, enterprise: str, newest: pa.Table) -> None:
        """Drop the cached answers of ``enterprise``; update its index (a historian listener)."""
        self._version[enterprise] = self._version.get(enterprise, 0) + 1
        index = self._indexes.get(enterprise)
        if index is not None:
            try:
                index.apply(newest)
            except Exception:  # never fail the write; rebuild the index on the next read
                self._indexes.pop(enterprise, None)

    async def get(self, enterprise: str, prefix: str, historian: Historian) -> bytes:
        """Return the cached answer, or build it (index or query) and keep it."""
        key = (enterprise, prefix)
        found = self._fresh(key)
        if found is not None:
            self.hits += 1
            return found
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) >= self.max_entries:
                self._locks.clear()
            lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked():  # being recomputed: the previous answer if it is recent enough
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry[1] <= self.ttl_s:
                self.stale += 1
                return entry[2]
        async with lock:
            found = self._fresh(key)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
            version, at = self._version.get(enterprise, 0), time.monotonic()  # before the read
            index = await self._index(enterprise, historian) if self.indexed else None
            if index is not None:
                body = _encode_parts(prefix, index.encoded_under(parse_prefix(prefix)))
            else:
                body = await run_in_threadpool(
                    lambda: _encode(prefix, historian.latest(enterprise, prefix).to_pylist())
                )
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (version, at, body)
            return body

    def answer_now(self, enterprise: str, prefix: str) -> bytes | None:
        """Return the answer if memory holds it (cached, or the index is ready), else None.

        Never waits and never queries: `indunet.api.fastpath` answers with it before the
        framework, and leaves a None to `get`.
        """
        key = (enterprise, prefix)
        found = self._fresh(key)
        if found is not None:
            self.hits += 1
            return found
        index = self._indexes.get(enterprise) if self.indexed else None
        if index is None or not index.ready:
            return None
        try:
            wanted = parse_prefix(prefix)
        except DataError:
            return None  # the app answers the error
        version, at = self._version.get(enterprise, 0), time.monotonic()
        body = _encode_parts(prefix, index.encoded_under(wanted))
        self.misses += 1
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (version, at, body)
        return body

    async def _index(self, enterprise: str, historian: Historian) -> LatestIndex | None:
        if enterprise in self._indexes:
            index = self._indexes[enterprise]
            if index is None or index.ready:
                return index
        else:
            if len(self._indexes) >= 1000:
                self._indexes.clear()
            index = self._indexes[enterprise] = LatestIndex()  # writes from now on update it
        seed = await run_in_threadpool(historian.latest, enterprise, "")
        if seed.num_rows > self.max_index_tags:
            self._indexes[enterprise] = None
            return None
        index.apply(seed, seed=True)
        index.ready = True
        return index

    def _fresh(self, key: tuple[str, str]) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        version, at, body = entry
        if version != self._version.get(key[0], 0) or time.monotonic() - at > self.ttl_s:
            return None
        return body


def _encode(prefix: str, rows: list[dict[str, Any]]) -> bytes:
    return _encode_parts(prefix, b",".join(_encode_row(r) for r in rows))


def _encode_row(r: dict[str, Any]) -> bytes:
    """One ``LatestRow`` as JSON: exact big integers, the time as text, no NaN (changes ``r``)."""
    exact_integers([r])
    r["time"] = iso(r["ts"])
    v = r["value"]
    if isinstance(v, float) and not math.isfinite(v):
        r["value"] = None
    return orjson.dumps(r)


def _encode_parts(prefix: str, rows: bytes) -> bytes:
    """The ``LatestAnswer`` JSON from its prefix and its encoded rows (comma-separated)."""
    return b'{"prefix":' + orjson.dumps(prefix) + b',"rows":[' + rows + b"]}"


def latest_cache(app: FastAPI) -> LatestCache:
    """Return the app's latest-values cache, creating it on first use."""
    cache = getattr(app.state, "latest_cache", None)
    if cache is None:
        cache = app.state.latest_cache = LatestCache()
    return cache


class LatestRow(BaseModel):
    """The newest point of one tag."""

    tag: str
    ts: int = Field(description="epoch ms")
    value: int | float | None = Field(description="an int beyond 2^53 is exact (Int64/UInt64)")
    text: str | None
    quality: int = Field(description="0 good, 1 uncertain, 2 bad, 3 stale")
    time: str = Field(description="``ts`` as RFC 3339 UTC")


class LatestAnswer(BaseModel):
    """The newest value of every tag under a prefix, by tag path."""

    prefix: str
    rows: list[LatestRow]


_LATEST_PARAMS = [
    {
        "name": "prefix",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "default": "", "title": "Prefix"},
        "description": "site/area/line/machine/tag prefix (whole segments); empty: every tag",
    },
    {
        "name": "enterprise",
        "in": "query",
        "required": False,
        "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Enterprise"},
        "description": "Enterprise (tenant); default: the caller's",
    },
]


@router.get(
    "/latest",
    response_class=Response,
    responses={200: {"model": LatestAnswer}},
    openapi_extra={"parameters": _LATEST_PARAMS},
)
async def latest(request: Request) -> Response:
    """Return the newest value of every tag under a namespace prefix.

    The hottest read of dashboards: the query parameters are read straight from the request
    (documented above), the answer is cached per prefix until the next write (`LatestCache`).
    """
    params = request.query_params
    prefix = params.get("prefix") or ""
    enterprise = params.get("enterprise") or get_settings(request).enterprise
    body = await latest_cache(request.app).get(enterprise, prefix, get_historian(request))
    return Response(body, media_type="application/json")
