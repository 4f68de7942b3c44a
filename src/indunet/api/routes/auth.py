"""Log in and out, who am I, and the users and keys of an enterprise (its admins only).

The route table (``indunet.auth.policy``) decides who may call each route; these handlers act on
the tenant it chose (``?enterprise=`` or the caller's default) and never touch another one.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from indunet.api.deps import SettingsDep
from indunet.api.paging import Offset, page
from indunet.auth.model import PrincipalKind
from indunet.auth.store import AuthStore, check_password
from indunet.auth.web import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    PrincipalDep,
    auth_store,
    clear_session_cookies,
    client_address,
    login_throttle,
    principal_summary,
    set_session_cookies,
)
from indunet.errors import DataError

__all__ = ["pages_router", "router"]

router = APIRouter(tags=["auth"])
pages_router = APIRouter(include_in_schema=False, tags=["web"])
StoreDep = Annotated[AuthStore, Depends(auth_store)]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Login(BaseModel):
    """A password login."""

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewUser(BaseModel):
    """A user created by an enterprise admin, with a role in that enterprise."""

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=10, max_length=1024)
    role: Literal["viewer", "operator", "admin"] = "viewer"
    site: str | None = Field(None, max_length=64)


class GrantBody(BaseModel):
    """A role in the admin's enterprise, optionally limited to one site."""

    role: Literal["viewer", "operator", "admin"]
    site: str | None = Field(None, max_length=64)


class NewKey(BaseModel):
    """An API key (for programs) or a device key (ingest only) of the admin's enterprise."""

    name: str = Field("", max_length=200)
    role: Literal["viewer", "operator", "admin"] = "viewer"
    device: bool = False


class GrantOut(BaseModel):
    """A user's role in one enterprise (``chain`` for the chain-operator grant)."""

    enterprise: str
    role: str | None
    site: str | None
    disabled: bool = False


class UserOut(BaseModel):
    """A user of the enterprise and their grant there."""

    name: str
    disabled: bool
    grants: list[GrantOut]


class UserList(BaseModel):
    """The users granted an enterprise."""

    enterprise: str
    users: list[UserOut]


class KeyOut(BaseModel):
    """An API or device key's metadata (never its secret)."""

    key_id: str
    name: str | None
    kind: str
    enterprise: str
    role: str
    created_ms: int
    revoked_ms: int | None
    last_used_ms: int | None


class KeyList(BaseModel):
    """An enterprise's keys, oldest first."""

    enterprise: str
    keys: list[KeyOut]


async def _login(request: Request, name: str, password: str) -> tuple[str, Any]:
    """Check a password under the rate limit; return (user, NewSession) or raise 401/429."""
    throttle = login_throttle(request)
    ip = client_address(request)
    wait = throttle.wait_s(name, ip, time.monotonic())
    if wait > 0:
        raise HTTPException(
            429,
            f"too many failed logins: try again in {int(wait) + 1} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    store = auth_store(request)
    ok = await run_in_threadpool(store.check_password, name, password)
    if not ok:
        throttle.failed(name, ip, time.monotonic())
        raise HTTPException(401, "wrong user name or password (or the account is disabled)")
    throttle.succeeded(name, ip)
    settings = request.app.state.settings
    session = await run_in_threadpool(
        lambda: store.start_session(
            name,
            now_ms=_now_ms(),
            lifetime_ms=int(settings.auth.session_hours * 3_600_000),
            replaces=request.cookies.get(SESSION_COOKIE),
        )
    )
    return name, session


@router.post("/auth/login")
async def login(request: Request, response: Response, body: Login) -> dict[str, Any]:
    """Log in with a password: sets the session cookie (a new id every time) and returns the
    CSRF token to send as ``X-CSRF-Token`` on unsafe requests."""
    name, session = await _login(request, body.name, body.password)
    max_age = max(1, (session.expires_ms - _now_ms()) // 1000)
    set_session_cookies(
        request, response, token=session.token, csrf=session.csrf_token, max_age_s=max_age
    )
    principal = await run_in_threadpool(auth_store(request).principal_for_user, name)
    return {
        **principal_summary(principal),
        "csrf_token": session.csrf_token,
        "expires_ms": session.expires_ms,
    }


def _safe_next(target: str | None) -> str:
    """Return a local redirect target (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.post("/auth/login/form", response_class=RedirectResponse, status_code=303)
async def login_form(
    request: Request,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> RedirectResponse:
    """Log in from an HTML form (double-submit CSRF: the form's token equals the CSRF cookie);
    redirect to ``next`` or back to ``/login`` with an error."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    back = _safe_next(next)
    if not cookie or cookie != csrf_token:
        return RedirectResponse(f"/login?error=csrf&next={quote(back)}", status_code=303)
    try:
        _, session = await _login(request, name, password)
    except HTTPException as exc:
        error = "locked" if exc.status_code == 429 else "wrong"
        return RedirectResponse(f"/login?error={error}&next={quote(back)}", status_code=303)
    response = RedirectResponse(back, status_code=303)
    max_age = max(1, (session.expires_ms - _now_ms()) // 1000)
    set_session_cookies(
        request, response, token=session.token, csrf=session.csrf_token, max_age_s=max_age
    )
    return response


@router.post("/auth/logout")
async def logout(request: Request, response: Response, principal: PrincipalDep) -> dict:
    """End the current session (API keys have no session: revoke them instead)."""
    if principal is not None and principal.session_id:
        await run_in_threadpool(auth_store(request).end_session, principal.session_id)
    clear_session_cookies(response)
    return {"logged_out": True}


@router.get("/auth/me")
def me(principal: PrincipalDep) -> dict[str, Any]:
    """Return who is calling, their grants and (for sessions) the CSRF token."""
    if principal is None:  # only when auth.required is off
        raise HTTPException(401, "not signed in (auth.required is off on this server)")
    return {**principal_summary(principal), "csrf_token": principal.csrf_token}


def _tenant(settings: SettingsDep) -> str:
    return settings.enterprise


TenantDep = Annotated[str, Depends(_tenant)]


def _data_error(exc: DataError) -> HTTPException:
    return HTTPException(422, str(exc))


@router.get("/users", response_model=UserList)
def list_users(
    request: Request,
    response: Response,
    store: StoreDep,
    enterprise: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """List the users granted this enterprise, with their grant here (not elsewhere); paged."""
    out = []
    for user in store.users(enterprise):
        here = [g for g in user["grants"] if g["enterprise"] == enterprise]
        disabled = bool(user["disabled"]) or any(g["disabled"] for g in here)
        out.append({"name": user["name"], "disabled": disabled, "grants": here})
    return {
        "enterprise": enterprise,
        "users": page(request, response, out, limit=limit, offset=offset),
    }


def _tenant_user_name(name: str, enterprise: str) -> str:
    """Return the full name of a user an enterprise's admin creates: ``NAME@ENTERPRISE``.

    Names made over the API live in the enterprise's own name space, so whether a name is
    taken never tells an admin anything about another enterprise's users.
    """
    local, at, suffix = name.partition("@")
    if at and suffix != enterprise:
        raise HTTPException(
            422, f"users created in this enterprise are named NAME@{enterprise} (or just NAME)"
        )
    return f"{local}@{enterprise}"


@router.post("/users", status_code=201)
def add_user(store: StoreDep, enterprise: TenantDep, body: NewUser) -> dict[str, Any]:
    """Create user ``NAME@ENTERPRISE`` with a role in this enterprise, which is also their
    default enterprise (409 if this enterprise already has that name)."""
    name = _tenant_user_name(body.name, enterprise)
    try:
        check_password(body.password, name)
        check_password(body.password, body.name.partition("@")[0])
    except DataError as exc:
        raise _data_error(exc) from exc
    if store.name_taken(name):
        raise HTTPException(409, "this enterprise already has a user of that name")
    try:
        store.add_user(name, body.password, now_ms=_now_ms(), enterprise=enterprise)
        store.grant(name, enterprise, body.role, body.site)
    except DataError as exc:
        raise _data_error(exc) from exc
    return {"name": name, "enterprise": enterprise, "role": body.role, "site": body.site}


def _member(store: AuthStore, name: str, enterprise: str) -> bool:
    """Return whether ``name`` has a grant (enabled or not) in ``enterprise``."""
    user = store.user(name)
    return user is not None and any(g["enterprise"] == enterprise for g in user["grants"])


_NOT_HERE = "no such user in this enterprise"


@router.put("/users/{name}/grant")
def grant_user(store: StoreDep, enterprise: TenantDep, name: str, body: GrantBody) -> dict:
    """Change the role of a user of this enterprise, and enable them again here (404 for
    anyone else: a user of another enterprise joins only by accepting an invitation)."""
    if not _member(store, name, enterprise):
        raise HTTPException(404, _NOT_HERE)
    try:
        store.grant(name, enterprise, body.role, body.site)
    except DataError as exc:
        raise _data_error(exc) from exc
    return {"name": name, "enterprise": enterprise, "role": body.role, "site": body.site}


@router.delete("/users/{name}/grant")
def revoke_user(store: StoreDep, enterprise: TenantDep, name: str) -> dict:
    """Remove a user's grant in this enterprise (404 if they had none here)."""
    if not store.revoke_grant(name, enterprise):
        raise HTTPException(404, _NOT_HERE)
    return {"name": name, "enterprise": enterprise, "revoked": True}


@router.post("/users/{name}/disable")
def disable_user(store: StoreDep, enterprise: TenantDep, name: str) -> dict:
    """Disable a user in this enterprise (their grants elsewhere are not this admin's to
    touch, and the answer does not tell whether they have any); 404 if not a user here.
    ``PUT /users/{name}/grant`` enables them again."""
    if not store.disable_grant(name, enterprise):
        raise HTTPException(404, _NOT_HERE)
    return {"name": name, "enterprise": enterprise, "disabled": True}


class InvitationBody(BaseModel):
    """An invitation of a user (of any enterprise) to a role in the admin's enterprise."""

    user: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "operator", "admin"] = "viewer"
    site: str | None = Field(None, max_length=64)


class InvitationOut(BaseModel):
    """An invitation to a role in an enterprise, waiting for the invited user."""

    invitation_id: str
    user_name: str
    enterprise: str
    role: str
    site: str | None
    invited_by: str
    created_ms: int
    expires_ms: int


class InvitationList(BaseModel):
    """Live invitations (of an enterprise, or to the signed-in user)."""

    enterprise: str | None = None
    invitations: list[InvitationOut]


class InvitationDone(BaseModel):
    """What became of an invitation."""

    invitation_id: str
    withdrawn: bool = False
    declined: bool = False


class Accepted(BaseModel):
    """The grant an accepted invitation gave."""

    name: str
    enterprise: str
    role: str | None
    site: str | None


@router.post("/invitations", status_code=201, response_model=InvitationOut)
def invite_user(
    store: StoreDep, enterprise: TenantDep, principal: PrincipalDep, body: InvitationBody
) -> dict[str, Any]:
    """Invite a user to this enterprise; the grant exists once they accept it themselves.

    The answer is the same whether or not the name exists anywhere.
    """
    try:
        invitation_id = store.invite(
            body.user,
            enterprise,
            body.role,
            body.site,
            invited_by=principal.name if principal is not None else "anonymous",
            now_ms=_now_ms(),
        )
    except DataError as exc:
        raise _data_error(exc) from exc
    found = store.invitations(now_ms=_now_ms(), enterprise=enterprise)
    return next(i for i in found if i["invitation_id"] == invitation_id)


@router.get("/invitations", response_model=InvitationList)
def list_invitations(store: StoreDep, enterprise: TenantDep) -> dict[str, Any]:
    """List this enterprise's invitations not yet accepted, declined or lapsed."""
    return {
        "enterprise": enterprise,
        "invitations": store.invitations(now_ms=_now_ms(), enterprise=enterprise),
    }


@router.delete("/invitations/{invitation_id}", response_model=InvitationDone)
def withdraw_invitation(store: StoreDep, enterprise: TenantDep, invitation_id: str) -> dict:
    """Withdraw an invitation of this enterprise (404 for other enterprises' too)."""
    if not store.withdraw_invitation(invitation_id, enterprise):
        raise HTTPException(404, "no such invitation in this enterprise")
    return {"invitation_id": invitation_id, "withdrawn": True}


def _own_invitations(store: AuthStore, principal: Any) -> list[dict[str, Any]]:
    if principal is None or principal.kind is not PrincipalKind.user:
        return []  # keys belong to one enterprise: only users join others
    return store.invitations(now_ms=_now_ms(), user=principal.name)


@router.get("/auth/invitations", response_model=InvitationList)
def my_invitations(store: StoreDep, principal: PrincipalDep) -> dict[str, Any]:
    """List the invitations to the signed-in user (keys have none)."""
    return {"invitations": _own_invitations(store, principal)}


@router.post("/auth/invitations/{invitation_id}/accept", response_model=Accepted)
def accept_invitation(store: StoreDep, principal: PrincipalDep, invitation_id: str) -> dict:
    """Accept an invitation to you: you get its role in its enterprise (your default
    enterprise stays what it was)."""
    if not any(i["invitation_id"] == invitation_id for i in _own_invitations(store, principal)):
        raise HTTPException(404, "no such invitation to you")
    assert principal is not None
    grant = store.accept_invitation(invitation_id, principal.name, now_ms=_now_ms())
    if grant is None:
        raise HTTPException(404, "no such invitation to you")
    return {
        "name": principal.name,
        "enterprise": grant.enterprise,
        "role": grant.role.name if grant.role else None,
        "site": grant.site,
    }


@router.delete("/auth/invitations/{invitation_id}", response_model=InvitationDone)
def decline_invitation(store: StoreDep, principal: PrincipalDep, invitation_id: str) -> dict:
    """Decline an invitation to you."""
    if not any(i["invitation_id"] == invitation_id for i in _own_invitations(store, principal)):
        raise HTTPException(404, "no such invitation to you")
    store.withdraw_invitation(invitation_id)
    return {"invitation_id": invitation_id, "declined": True}


@router.get("/keys", response_model=KeyList)
def list_keys(
    request: Request,
    response: Response,
    store: StoreDep,
    enterprise: TenantDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """List this enterprise's API and device keys (never their secrets); paged."""
    keys = page(request, response, store.keys(enterprise), limit=limit, offset=offset)
    return {"enterprise": enterprise, "keys": keys}


@router.post("/keys", status_code=201)
def create_key(store: StoreDep, enterprise: TenantDep, body: NewKey) -> dict[str, Any]:
    """Issue a key for this enterprise; the secret is in this response only."""
    issued = store.create_key(
        enterprise, body.role, name=body.name, device=body.device, now_ms=_now_ms()
    )
    return {
        "key_id": issued.key_id,
        "secret": issued.secret,
        "kind": issued.kind,
        "enterprise": issued.enterprise,
        "role": issued.role,
        "header": "X-Device-Key" if body.device else "Authorization: Bearer",
    }


@router.delete("/keys/{key_id}")
def revoke_key(store: StoreDep, enterprise: TenantDep, key_id: str) -> dict[str, Any]:
    """Revoke a key of this enterprise at once (404 for keys of other enterprises too)."""
    found = store.key(key_id)
    if found is None or found["enterprise"] != enterprise:
        raise HTTPException(404, "no such key in this enterprise")
    store.revoke_key(key_id, now_ms=_now_ms())
    return {"key_id": key_id, "revoked": True}


_LOGIN_ERRORS = {
    "wrong": "Wrong user name or password.",
    "locked": "Too many failed sign-ins: wait a little and try again.",
    "csrf": "The form had expired: please sign in again.",
}


@pages_router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", error: str = "") -> HTMLResponse:
    """Show the sign-in form (its CSRF token is double-submitted: form field and cookie)."""
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    context = {"next": _safe_next(next), "error": _LOGIN_ERRORS.get(error), "csrf_token": token}
    response = request.app.state.templates.TemplateResponse(request, "login.html", context)
    settings = request.app.state.settings
    secure = settings.auth.secure_cookies
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(CSRF_COOKIE, token, httponly=False, samesite="lax", secure=secure)
    return response
