"""Offset pagination for list endpoints, told in headers so the bodies keep their shape.

A list endpoint takes ``limit`` (bounded per endpoint) and ``offset``; when more rows follow it
answers ``Link: <same URL with offset=N>; rel="next"`` (RFC 8288) and ``X-Next-Offset: N``. No
header means this was the last page. Routes fetch ``offset + limit + 1`` rows (one more than
shown, to know whether another page exists) and hand them to `page`.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Query, Request, Response

__all__ = ["MAX_OFFSET", "NEXT_HEADER", "Offset", "page"]

T = TypeVar("T")
MAX_OFFSET = 1_000_000
NEXT_HEADER = "X-Next-Offset"

Offset = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_OFFSET,
        description="Rows to skip (pagination): follow the `Link: rel=next` header",
    ),
]


def page(
    request: Request, response: Response, rows: list[T], *, limit: int, offset: int
) -> list[T]:
    """Return ``rows[offset:offset + limit]``; set the next-page headers when rows remain."""
    shown = rows[offset : offset + limit]
    if len(rows) > offset + limit and offset + limit <= MAX_OFFSET:
        nxt = offset + limit
        url = request.url.include_query_params(offset=nxt, limit=limit)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
        response.headers[NEXT_HEADER] = str(nxt)
    return shown
