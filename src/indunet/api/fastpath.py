"""The hottest read, answered before the framework: ``GET /api/v1/latest`` from memory.

Dashboards poll ``/latest`` many times a second. Through FastAPI each answer costs routing
through every route and dependency solving, about 0.3 ms of CPU, and every request in flight
makes the one event loop's turn longer for everything else, the ingest posts included (issue
22: 64 readers held a 200-point post up for 130 ms). `LatestFastPath` answers the request itself
when everything it needs is already in memory:

- an API or device key verified moments ago (`AuthStore.cached_principal`), allowed by the same
  route table and `decide` as `indunet.auth.web.authorise`; a key within a second of its cache
  entry's end is answered and verified again in the background, as the app does;
- the answer cached since the enterprise's last write, or built from the in-memory latest index
  (`LatestCache.answer_now`).

Anything else (no key, a session cookie, a key to verify, a refusal, an odd prefix, a request
with a body, a cold cache, FastAPI's own telemetry switched on) goes on to the app unchanged,
which answers, refuses or fills the caches.

`FastPathApp` (the app `indunet.api.app.create_app` returns) asks it first, before FastAPI and
every middleware: a fast answer does itself what the middleware would have done for it — the
request id (the caller's valid ``X-Request-ID`` or a new one), the security headers with a
fresh CSP nonce, and the count and time under the route's template in the HTTP metrics — with
the same header names, order and values as the framework's answer (tested). Skipping the
layers took a kept answer's app time from 93–140 µs to ≈ 30 µs (issue 22,
`bench/latest_stack.py`).
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Receive, Scope, Send

from indunet.api.hardening import security_headers
from indunet.api.lanes import TurnGate
from indunet.api.middleware import REQUEST_ID_HEADER, new_request_id, valid_request_id
from indunet.auth.model import Need, PrincipalKind, decide
from indunet.auth.policy import rule_for

__all__ = ["LATEST_PATH", "FastPathApp", "LatestFastPath"]

LATEST_PATH = "/api/v1/latest"
_ASSET_QUERY = ("tag", "prefix", "machine", "scope", "site")  # as indunet.auth.web
_REFRESH_AHEAD_S = 1.0  # a key this close to its entry's end is verified again (background)
_QUERY_CACHE = 1024  # parsed query strings kept (cleared when full)
_QUERY_KEPT_BYTES = 512  # longer query strings are parsed each time, never kept
_TELEMETRY_CHECK_S = 1.0  # how often FastAPI's telemetry switch is looked at
_RID_KEY = REQUEST_ID_HEADER.lower().encode()
_JSON = (b"content-type", b"application/json")


class LatestFastPath:
    """Answer ``GET /api/v1/latest`` from memory when it can; pass everything else on."""

    def __init__(self, app: ASGIApp, root: Any) -> None:
        self.app = app
        self.root = root  # the FastAPI app: its state (settings, caches, historian, metrics)
        self.rule = rule_for("GET", LATEST_PATH)
        self.answered = 0
        self._route: Any = None
        self._queries: dict[bytes, tuple[str | None, str, dict[str, str]]] = {}
        self._counted: tuple[Any, Any, Any] | None = None  # (metrics, requests, latency)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from memory, or hand the request to the app."""
        if (
            scope["type"] == "http"
            and scope["path"] == LATEST_PATH
            and scope["method"] == "GET"
            and await self.try_answer(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def try_answer(self, scope: Scope, send: Send) -> bool:
        """Send the answer of a ``GET /api/v1/latest`` scope if memory holds it; True if sent."""
        start = time.perf_counter()
        auth = device = rid = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                if auth is None:
                    auth = value
            elif key == b"x-device-key":
                if device is None:
                    device = value
            elif key == _RID_KEY:
                if rid is None:
                    rid = value
            elif key == b"transfer-encoding" or (key == b"content-length" and value != b"0"):
                return False  # a body: the app reads (or refuses) it
        try:
            body = self._answer(scope, auth, device)
        except Exception:  # never fail here: the app answers, or reports the error its way
            body = None
        if body is None:
            return False
        self.answered += 1
        scope["route"] = self.route()  # as the router sets it (metrics, logs)
        request_id = (rid is not None and valid_request_id(rid)) or new_request_id()
        headers = [
            (b"content-length", str(len(body)).encode()),
            _JSON,
            *security_headers(secrets.token_urlsafe(16), api=True),
            (_RID_KEY, request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._count(time.perf_counter() - start)
        return True

    def answer(self, scope: Scope) -> bytes | None:
        """Return the answer's body if memory holds all it needs, else None (pure of I/O)."""
        auth = device = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization" and auth is None:
                auth = value
            elif key == b"x-device-key" and device is None:
                device = value
        return self._answer(scope, auth, device)

    def _answer(self, scope: Scope, auth: bytes | None, device: bytes | None) -> bytes | None:
        state = self.root.state
        cache = getattr(state, "latest_cache", None)
        if cache is None or self.rule is None:
            return None
        asked, prefix, names = self._query(scope.get("query_string", b""))
        settings = state.settings
        enterprise = asked or settings.enterprise
        if settings.auth.required and self.rule.need is not Need.public:
            principal = self._principal(scope, state, auth, device)
            if principal is None or principal.kind is PrincipalKind.display:
                return None
            decision = decide(self.rule.need, principal, enterprise=asked, asset_names=names)
            if not decision.allowed:
                return None  # the app answers the refusal, with its reasons and headers
            if asked is None and decision.enterprise is not None:
                enterprise = decision.enterprise
        return cache.answer_now(enterprise, prefix)

    def _query(self, raw: bytes) -> tuple[str | None, str, dict[str, str]]:
        """The asked enterprise (or None), the prefix and the asset names of a query string."""
        found = self._queries.get(raw)
        if found is not None:
            return found
        query = dict(parse_qsl(raw.decode("latin-1"), True))
        found = (
            query.get("enterprise") or None,
            query.get("prefix") or "",
            {k: query[k] for k in _ASSET_QUERY if query.get(k)},
        )
        if len(raw) <= _QUERY_KEPT_BYTES:
            if len(self._queries) >= _QUERY_CACHE:
                self._queries.clear()
            self._queries[raw] = found
        return found

    def _principal(self, scope: Scope, state: Any, auth: bytes | None, device: bytes | None) -> Any:
        store = getattr(state, "auth_store", None)
        if store is None or store.sql.historian is not getattr(state, "historian", None):
            return None
        if auth is not None:  # a key in Authorization wins, as in indunet.auth.web
            scheme, _, given = auth.decode("latin-1").partition(" ")
            token, is_device = (given.strip() if scheme.lower() == "bearer" else ""), False
        elif device is not None:
            token, is_device = device.decode("latin-1").strip(), True
        else:
            return None
        if not token:
            return None
        found = store.cached_until(token, device=is_device)
        if found is None:
            return None
        principal, until = found
        if until < time.monotonic() + _REFRESH_AHEAD_S:  # about to run out: verify again
            self._refresh(scope)
        return principal

    def _refresh(self, scope: Scope) -> None:
        """Verify the request's key again in the background, as `authorise` does (once)."""
        from starlette.requests import Request

        from indunet.auth.web import refresh_key_in_background

        scope["app"] = self.root
        refresh_key_in_background(Request(scope))

    def _count(self, elapsed: float) -> None:
        """Count and time the answer as `HttpMetricsMiddleware` would (same labels)."""
        metrics = getattr(self.root.state, "metrics", None)
        if metrics is None:
            return
        counted = self._counted
        if counted is None or counted[0] is not metrics:
            route = metrics.route_template({"route": self.route()})
            counted = self._counted = (
                metrics,
                metrics.requests.labels("GET", route, "200"),
                metrics.latency.labels("GET", route),
            )
        counted[1].inc()
        counted[2].observe(elapsed)

    def route(self) -> Any:
        """Return the app's ``/latest`` route object (found once)."""
        if self._route is None:
            for rc in iter_route_contexts(self.root.routes):
                if rc.path == LATEST_PATH and "GET" in (getattr(rc.original_route, "methods", ())):
                    self._route = rc.original_route
                    break
        return self._route


class FastPathApp(FastAPI):
    """FastAPI whose ``GET /api/v1/latest`` is tried from memory before anything else.

    `latest_fast_path` (set by `create_app`) is asked first; what it does not answer goes through
    FastAPI and its middleware as always. While FastAPI's own telemetry (OpenTelemetry) is
    switched on, every request goes the framework's way, so each one is traced.
    """

    latest_fast_path: LatestFastPath | None = None
    turn_gate: TurnGate | None = None  # writes first: fast reads per turn while one runs
    _telemetry_off_until = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``/latest`` from memory, or run the app."""
        if scope["type"] == "http":
            method = scope["method"]
            if method == "GET":
                fast = self.latest_fast_path
                if fast is not None and scope["path"] == LATEST_PATH and self._untraced():
                    if self.turn_gate is not None:
                        await self.turn_gate.read()
                    if await fast.try_answer(scope, send):
                        return
            elif method != "HEAD" and self.turn_gate is not None:
                await self.turn_gate.write(super().__call__, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _untraced(self) -> bool:
        """Whether FastAPI's telemetry is off (looked at once a second: the check costs µs)."""
        now = time.monotonic()
        if now < self._telemetry_off_until:
            return True
        telemetry = getattr(self, "_native_telemetry", None)
        if telemetry is not None and telemetry.enabled():
            return False
        self._telemetry_off_until = now + _TELEMETRY_CHECK_S
        return True
