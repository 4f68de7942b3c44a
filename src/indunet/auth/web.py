"""FastAPI dependencies: who is calling (key, device key or session cookie) and may they.

``authorise`` is attached once per router in ``indunet.api.app`` and applies the route table of
``indunet.auth.policy``. It resolves the principal in this order: ``Authorization: Bearer`` (API
key), ``X-Device-Key`` (device key), the ``indunet_session`` cookie. Cookie-authenticated unsafe
requests must carry the session's CSRF token (synchronizer token kept server-side, sent in the
``X-CSRF-Token`` header or a ``csrf_token`` form field) and, when the browser sends ``Origin``,
come from this server's own origin.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import threading
import time
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, Response
from fastapi.routing import iter_route_contexts

from indunet.api.lanes import run_first
from indunet.auth.model import Decision, Need, Principal, PrincipalKind, decide
from indunet.auth.policy import Rule, rule_for
from indunet.auth.store import AuthStore
from indunet.auth.throttle import LoginThrottle
from indunet.config import Settings

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "PrincipalDep",
    "auth_store",
    "authorise",
    "current_principal",
    "login_throttle",
    "refresh_key_in_background",
    "set_session_cookies",
]

SESSION_COOKIE = "indunet_session"
CSRF_COOKIE = "indunet_csrf"
_SAFE = {"GET", "HEAD", "OPTIONS"}
_UNRESOLVED = object()
_ASSET_QUERY = ("tag", "prefix", "machine", "scope", "site")
_ASSET_PATH = ("site", "path")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _app_state_lock(request: Request) -> threading.Lock:
    return request.app.state.__dict__.setdefault("_auth_lock", threading.Lock())


def auth_store(request: Request) -> AuthStore:
    """Return the app's account store, creating its tables on first use."""
    state = request.app.state
    store = getattr(state, "auth_store", None)
    if store is None or store.sql.historian is not state.historian:
        with _app_state_lock(request):
            store = getattr(state, "auth_store", None)
            if store is None or store.sql.historian is not state.historian:
                store = AuthStore(state.historian)
                state.auth_store = store
    return store


def login_throttle(request: Request) -> LoginThrottle:
    """Return the app's login throttle (in memory, per process)."""
    state = request.app.state
    throttle = getattr(state, "login_throttle", None)
    if throttle is None:
        with _app_state_lock(request):
            throttle = getattr(state, "login_throttle", None)
            if throttle is None:
                a = state.settings.auth
                throttle = LoginThrottle(
                    per_user=a.login_failures_per_user,
                    per_ip=a.login_failures_per_ip,
                    window_s=a.login_window_s,
                    base_s=a.backoff_base_s,
                    max_s=a.backoff_max_s,
                )
                state.login_throttle = throttle
    return throttle


def _presented_key(request: Request) -> tuple[str, bool] | None:
    """Return the request's (API or device key, is it a device key), or None without a key.

    An ``Authorization`` header that is not ``Bearer`` gives an empty key, which no key matches:
    such a request is anonymous, and its session cookie is not looked at either.
    """
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return (token.strip() if scheme.lower() == "bearer" else ""), False
    device = request.headers.get("x-device-key")
    return None if device is None else (device.strip(), True)


def _resolve(request: Request) -> Principal | None:
    """Find the principal of a request (blocking: DB lookups)."""
    store = auth_store(request)
    now = _now_ms()
    key = _presented_key(request)
    if key is not None:
        return store.principal_for_key(key[0], device=key[1], now_ms=now)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return store.principal_for_session(cookie, now_ms=now)
    display = _display_token(request)
    if display:  # a wall screen (indunet.auth.display)
        from indunet.auth.display import DisplayKeys

        return DisplayKeys(request.app.state.historian).principal(display, now_ms=now)
    return None


def _display_token(request: Request) -> str | None:
    """Return a wall screen's display key: its cookie, or ``?display_key=`` on a wall page."""
    from indunet.auth.display import DISPLAY_COOKIE

    if request.url.path.startswith("/wall/"):
        given = request.query_params.get("display_key")
        if given:
            return given
    return request.cookies.get(DISPLAY_COOKIE)


def _cached_key(request: Request, fresh_for: float = 0.0) -> Principal | None:
    """Return the principal of the request's API or device key if recently verified, else None."""
    store = getattr(request.app.state, "auth_store", None)
    if store is None or store.sql.historian is not request.app.state.historian:
        return None
    key = _presented_key(request)
    if key is None:
        return None
    return store.cached_principal(key[0], device=key[1], fresh_for=fresh_for)


async def current_principal(request: Request) -> Principal | None:
    """Return the request's principal (resolved once per request), or None."""
    found = getattr(request.state, "principal", _UNRESOLVED)
    if found is _UNRESOLVED:
        found = _cached_key(request)  # a key verified moments ago: no thread, no database
        if found is None:
            found = await _resolve_once(request)
        elif _cached_key(request, fresh_for=_REFRESH_AHEAD_S) is None:
            refresh_key_in_background(request)  # about to expire: verify again, nobody waits
        request.state.principal = found
    return found


#: a cached key this close to expiry is verified again in the background
_REFRESH_AHEAD_S = 1.0


def _verify_key_again(request: Request) -> None:
    """Check a cached key against the database again (renewing or forgetting its entry)."""
    key = _presented_key(request)
    if key is not None:
        auth_store(request).principal_for_key(
            key[0], device=key[1], now_ms=_now_ms(), use_cache=False
        )


def refresh_key_in_background(request: Request) -> None:
    """Verify the request's key again in a worker thread, once however many requests see it."""
    credential = _credential(request)
    state = request.app.state
    refreshing: dict[tuple[str, str], asyncio.Task[Any]] | None = getattr(
        state, "_auth_refreshing", None
    )
    if refreshing is None:
        refreshing = state._auth_refreshing = {}
    if credential is None or credential in refreshing:
        return
    again = run_first(request.app, _verify_key_again, request)  # never behind the reads
    task = asyncio.get_running_loop().create_task(again)
    refreshing[credential] = task  # also keeps a reference until it is done

    def done(t: asyncio.Task[Any]) -> None:
        refreshing.pop(credential, None)
        if not t.cancelled():
            t.exception()  # a failed refresh: the entry runs out and the next request verifies

    task.add_done_callback(done)


def _credential(request: Request) -> tuple[str, str] | None:
    """Return what identifies the caller (header or cookie value), or None when anonymous."""
    for name in ("authorization", "x-device-key"):
        value = request.headers.get(name)
        if value is not None:
            return name, value
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return ("cookie", cookie)
    display = _display_token(request)
    return ("display", display) if display else None


async def _resolve_once(request: Request) -> Principal | None:
    """Resolve a credential once at a time: concurrent requests with it share one lookup.

    When a busy client's cached key expires, its many open connections would otherwise all look
    the key up at the same moment (a queue of database reads behind one lock, seen as a one-second
    stall every few seconds under load).
    """
    credential = _credential(request)
    if credential is None:
        return await run_first(request.app, _resolve, request)
    state = request.app.state
    pending: dict[tuple[str, str], asyncio.Future[Principal | None]] | None = getattr(
        state, "_auth_pending", None
    )
    if pending is None:
        pending = state._auth_pending = {}
    shared = pending.get(credential)
    if shared is not None:
        return await asyncio.shield(shared)
    future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
    pending[credential] = future
    try:
        found = await run_first(request.app, _resolve, request)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
        raise
    else:
        future.set_result(found)
    finally:
        pending.pop(credential, None)
    return found


PrincipalDep = Annotated[Principal | None, Depends(current_principal)]


def _route_path(request: Request) -> str | None:
    """Return the full path template of the matched route (with router prefixes)."""
    route = request.scope.get("route")
    if route is None:
        return None
    paths = getattr(request.app.state, "_route_paths", None)
    if paths is None:
        paths = {
            id(rc.original_route): rc.path
            for rc in iter_route_contexts(request.app.routes)
            if rc.path is not None
        }
        request.app.state._route_paths = paths
    return paths.get(id(route), getattr(route, "path", None))


def _asset_names(request: Request) -> dict[str, str]:
    names = {k: request.query_params[k] for k in _ASSET_QUERY if request.query_params.get(k)}
    for k in _ASSET_PATH:
        v = request.path_params.get(k)
        if v:
            names[f"path:{k}"] = str(v)
    return names


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser cross-site form (browsers send Origin on unsafe requests)
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in ("http", "https")


async def check_csrf(request: Request, principal: Principal) -> None:
    """Refuse a cookie-authenticated unsafe request without the session's CSRF token (403)."""
    if request.method in _SAFE or principal.session_id is None:
        return
    if not _same_origin(request):
        raise HTTPException(403, "cross-site request refused (Origin is not this server)")
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, principal.csrf_token or ""):
        raise HTTPException(
            403, "missing or wrong CSRF token: send X-CSRF-Token (see /api/v1/auth/me)"
        )


#: routes outside /api/ that programs call (Prometheus): refused with 401, never sent to sign in
MACHINE_PATHS = frozenset({"/metrics"})


def is_page(path: str) -> bool:
    """Return whether a path is a web page (anonymous callers are sent to the sign-in form)."""
    return not path.startswith("/api/") and path not in MACHINE_PATHS


def _deny(request: Request, decision: Decision) -> HTTPException:
    if decision.status == 401 and is_page(request.url.path):
        # a page: send the browser to the sign-in form and back here afterwards
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"/login?next={quote(target, safe='')}"
        if request.headers.get("hx-request"):  # an htmx fragment: redirect the whole page
            return HTTPException(401, decision.reason, headers={"HX-Redirect": login})
        return HTTPException(303, decision.reason, headers={"Location": login})
    headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else None
    return HTTPException(decision.status, decision.reason, headers=headers)


async def authorise(request: Request) -> None:
    """Apply the route table to this request: 401/403 or set the request's tenant."""
    settings: Settings = request.app.state.settings
    path = _route_path(request)
    rule: Rule | None = rule_for(request.method, path or "")
    if rule is None:  # fail closed: a route nobody classified
        raise HTTPException(403, "this route has no authorisation rule yet")
    if not settings.auth.required or rule.need is Need.public:
        return  # public routes: no principal, no CSRF check (login forms double-submit)
    principal = await current_principal(request)
    if principal is not None:
        await check_csrf(request, principal)
    if rule.scope == "server":
        target: str | None = settings.enterprise
    elif rule.scope == "query":
        target = request.query_params.get("enterprise") or None
    else:
        target = None
    if principal is not None and principal.kind is PrincipalKind.display:
        from indunet.auth.display import is_wall_path

        if not is_wall_path(path or ""):
            raise HTTPException(403, "a display key only shows wall screens")
    decision = decide(rule.need, principal, enterprise=target, asset_names=_asset_names(request))
    if not decision.allowed:
        raise _deny(request, decision)
    if decision.enterprise is not None and decision.enterprise != settings.enterprise:
        # routes fall back to settings.enterprise when no ?enterprise= is given: make that the
        # principal's tenant for this request (api.deps.get_settings reads request.state first)
        request.state.settings = settings.model_copy(update={"enterprise": decision.enterprise})


def set_session_cookies(
    request: Request, response: Response, *, token: str, csrf: str, max_age_s: int
) -> None:
    """Set the HttpOnly session cookie and the readable CSRF cookie on ``response``."""
    settings: Settings = request.app.state.settings
    secure = settings.auth.secure_cookies
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age_s,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age_s, httponly=False, samesite="lax", secure=secure
    )


def clear_session_cookies(response: Response) -> None:
    """Delete the session and CSRF cookies."""
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


def _trusted(address: str, proxies: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p, strict=False) for p in proxies)


def client_address(request: Request) -> str:
    """Return the caller's address for rate limiting.

    ``X-Forwarded-For`` counts only when the peer is one of ``auth.trusted_proxies``; then the
    address is the right-most one in the header that is not itself a trusted proxy (what the
    outermost trusted proxy saw). From anyone else the header is ignored.
    """
    peer = request.client.host if request.client else "unknown"
    proxies = request.app.state.settings.auth.trusted_proxies
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [
        h.strip()
        for value in request.headers.getlist("x-forwarded-for")
        for h in value.split(",")
        if h.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from behind the proxy: count the proxy itself
    return peer


def principal_summary(principal: Principal) -> dict[str, Any]:
    """Return what ``/auth/me`` shows about a principal."""
    return {
        "kind": principal.kind.value,
        "name": principal.name,
        "enterprises": principal.enterprises,
        "default_enterprise": principal.default_enterprise,
        "chain_operator": principal.chain_operator,
        "grants": [
            {
                "enterprise": g.enterprise,
                "role": "chain" if g.chain else (g.role.name if g.role else None),
                "site": g.site,
            }
            for g in principal.grants
        ],
    }
