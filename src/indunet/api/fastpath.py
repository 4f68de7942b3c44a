"""The hottest read, answered before the framework: ``GET /api/v1/latest`` from memory.

Dashboards poll ``/latest`` many times a second. Through FastAPI each answer costs routing
through every route and dependency solving, about 0.3 ms of CPU, and every request in flight
makes the one event loop's turn longer for everything else, the ingest posts included (issue
22: 64 readers held a 200-point post up for 130 ms). `LatestFastPath` is a plain ASGI layer
that answers the request itself when everything it needs is already in memory:

- an API or device key verified moments ago (`AuthStore.cached_principal`, not near expiry),
  allowed by the same route table and `decide` as `indunet.auth.web.authorise`;
- the answer cached since the enterprise's last write, or built from the in-memory latest index
  (`LatestCache.answer_now`).

Anything else (no key, a session cookie, a key to verify, a refusal, an odd prefix, a cold
cache) goes on to the app unchanged, which answers, refuses or fills the caches. It sits inside
the request-id, metrics and security-header middleware, so answers carry the same headers and
are counted under the same route.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Receive, Scope, Send

from indunet.auth.model import Need, PrincipalKind, decide
from indunet.auth.policy import rule_for

__all__ = ["LATEST_PATH", "LatestFastPath"]

LATEST_PATH = "/api/v1/latest"
_ASSET_QUERY = ("tag", "prefix", "machine", "scope", "site")  # as indunet.auth.web
_REFRESH_AHEAD_S = 1.0  # a key this close to expiry goes the long way (it is verified again)


class LatestFastPath:
    """Answer ``GET /api/v1/latest`` from memory when it can; pass everything else on."""

    def __init__(self, app: ASGIApp, root: Any) -> None:
        self.app = app
        self.root = root  # the FastAPI app: its state (settings, caches, historian)
        self.rule = rule_for("GET", LATEST_PATH)
        self.answered = 0
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from memory, or hand the request to the app."""
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == LATEST_PATH:
            body = self.answer(scope)
            if body is not None:
                self.answered += 1
                scope["route"] = self.route()  # counted under the route's template (metrics)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def answer(self, scope: Scope) -> bytes | None:
        """Return the answer's body if memory holds all it needs, else None (pure of I/O)."""
        state = self.root.state
        cache = getattr(state, "latest_cache", None)
        settings = state.settings
        if cache is None or self.rule is None:
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), True))
        asked = query.get("enterprise") or None
        enterprise = asked or settings.enterprise
        if settings.auth.required and self.rule.need is not Need.public:
            principal = self._principal(scope, state)
            if principal is None or principal.kind is PrincipalKind.display:
                return None
            names = {k: query[k] for k in _ASSET_QUERY if query.get(k)}
            decision = decide(self.rule.need, principal, enterprise=asked, asset_names=names)
            if not decision.allowed:
                return None  # the app answers the refusal, with its reasons and headers
            if asked is None and decision.enterprise is not None:
                enterprise = decision.enterprise
        return cache.answer_now(enterprise, query.get("prefix") or "")

    @staticmethod
    def _principal(scope: Scope, state: Any) -> Any:
        store = getattr(state, "auth_store", None)
        if store is None or store.sql.historian is not getattr(state, "historian", None):
            return None
        token: str | None = None
        device = False
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, given = value.decode("latin-1").partition(" ")
                token = given.strip() if scheme.lower() == "bearer" else ""
                device = False
                break  # a key in Authorization wins, as in indunet.auth.web
            if key == b"x-device-key" and token is None:
                token, device = value.decode("latin-1").strip(), True
        if not token:
            return None
        return store.cached_principal(token, device=device, fresh_for=_REFRESH_AHEAD_S)

    def route(self) -> Any:
        """Return the app's ``/latest`` route object (found once)."""
        if self._route is None:
            for rc in iter_route_contexts(self.root.routes):
                if rc.path == LATEST_PATH and "GET" in (getattr(rc.original_route, "methods", ())):
                    self._route = rc.original_route
                    break
        return self._route
