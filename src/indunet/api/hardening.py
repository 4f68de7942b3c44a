"""What every HTTP answer gets on a server exposed to a plant network.

* `SecurityHeadersMiddleware`: a Content-Security-Policy whose only inline script allowance is a
  fresh nonce per request (``request.state.csp_nonce``, used by ``base.html``), no framing
  (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), ``nosniff``, a Referrer-Policy,
  and ``Cache-Control: no-store`` on every ``/api/`` answer that sets no caching itself (they
  carry tenant data, CSRF tokens and, once, new keys' secrets).
* `BodyLimitMiddleware`: one body-size limit in front of every route, before anything parses
  the body: bulk routes (ingest, uploads, documents) get ``ingest_max_bytes``, every other
  route (login included) ``http_max_body_bytes``. A larger body is refused with 413 as soon as
  it is known (``Content-Length`` or counted while streaming), never parsed nor echoed.
* `allowed_methods`: every method the app routes for a path, for 405 answers with a full
  ``Allow`` header.

All are plain ASGI (no ``BaseHTTPMiddleware``: it buffers server-sent events).
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BULK_PREFIXES",
    "BodyLimitMiddleware",
    "SecurityHeadersMiddleware",
    "allowed_methods",
    "csp",
    "security_headers",
]

#: routes that take bulk data (their own `read_limited` checks apply under this cap too)
BULK_PREFIXES = (
    "/api/v1/ingest",
    "/api/v1/business/",
    "/api/v1/dock/",
    "/api/v1/chain/networks/",
    "/api/v1/machines/",
    "/api/v1/tags",
    "/api/v1/alarm-rules",
    "/api/v1/monitors",
)


def csp(nonce: str) -> str:
    """Return the Content-Security-Policy of a page whose inline scripts carry ``nonce``."""
    return _CSP_HEAD + nonce + _CSP_TAIL


_CSP_HEAD, _CSP_TAIL = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'nonce-\0'",
        "style-src 'self' 'unsafe-inline'",  # style attributes of the templates, ECharts
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",  # ReDoc's search worker
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
).split("\0")
_CSP_HEAD_B, _CSP_TAIL_B = _CSP_HEAD.encode(), _CSP_TAIL.encode()
_FIXED = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
_NO_STORE = (b"cache-control", b"no-store")


def security_headers(nonce: str, *, api: bool) -> list[tuple[bytes, bytes]]:
    """Return the headers every answer gets, in order (``api``: an ``/api/`` path's, which
    adds ``Cache-Control: no-store``)."""
    headers = [(b"content-security-policy", _CSP_HEAD_B + nonce.encode() + _CSP_TAIL_B), *_FIXED]
    if api:
        headers.append(_NO_STORE)
    return headers


class SecurityHeadersMiddleware:
    """Add the browser security headers to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Give the request a CSP nonce and its answer the headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        api = scope.get("path", "").startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                have = {k.lower() for k, _ in headers}
                extra = security_headers(nonce, api=api)
                headers += [(k, v) for k, v in extra if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """Refuse request bodies over the limit of their route with 413, before any parsing."""

    def __init__(self, app: ASGIApp, *, bulk_bytes: int, other_bytes: int) -> None:
        self.app = app
        self.bulk_bytes = bulk_bytes
        self.other_bytes = other_bytes

    def limit_for(self, path: str) -> int:
        """Return the body limit of a path."""
        return self.bulk_bytes if path.startswith(BULK_PREFIXES) else self.other_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count what arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _refuse(scope, receive, send, limit)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"the request body is larger than {limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    from fastapi import Request

    from indunet.api.middleware import error_response

    response = error_response(
        Request(scope, receive), 413, f"the request body is larger than {limit} bytes"
    )
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Return every method some route of ``app`` answers for the request's path, sorted."""
    table = getattr(app.state, "_method_table", None)
    if table is None:
        from fastapi.routing import iter_route_contexts
        from starlette.routing import compile_path

        table = [
            (compile_path(rc.path)[0], frozenset(rc.methods))
            for rc in iter_route_contexts(app.routes)
            if rc.path is not None and rc.methods
        ]
        app.state._method_table = table
    path = scope.get("path", "")
    methods = {m for regex, ms in table if regex.match(path) for m in ms}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
