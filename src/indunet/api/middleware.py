"""Request IDs and one error body for every 4xx/5xx JSON answer.

`RequestIdMiddleware` is plain ASGI (no ``BaseHTTPMiddleware``: that one buffers streams and
breaks server-sent events). It keeps a caller's ``X-Request-ID`` when it is short and made of safe
characters, else makes a new one, puts it in ``request.state.request_id`` and sends it back in the
response header. `install_error_handlers` makes every error body
``{"detail": ..., "status": 422, "request_id": "..."}``: ``detail`` stays what it was (a sentence,
or the validation error list), so existing clients keep working; a crash answers a fixed sentence,
never a stack trace.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indunet.errors import DataError, IndunetError, TemporaryError

__all__ = [
    "REQUEST_ID_HEADER",
    "ErrorBody",
    "RequestIdMiddleware",
    "error_response",
    "install_error_handlers",
    "new_request_id",
    "request_id_of",
    "valid_request_id",
]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
CRASH_DETAIL = "internal error: the server could not answer; quote the request_id when reporting it"


class ErrorBody(BaseModel):
    """The body of every error answer (4xx/5xx)."""

    detail: Any = Field(description="What went wrong: a sentence, or a list of validation errors")
    status: int = Field(description="The HTTP status code, repeated for log readers")
    request_id: str = Field(description="This request's id (also the X-Request-ID header)")


def new_request_id() -> str:
    """Return a new request id: a random UUID (version 4) as 32 hex digits, as ``uuid4().hex``
    (a quarter of its cost: no UUID object)."""
    n = int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET
    return f"{n:032x}"


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version nibble, the variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, variant RFC 4122


def valid_request_id(raw: bytes) -> str | None:
    """Return a caller's ``X-Request-ID`` if it is short and made of safe characters, else None."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if _VALID_ID.fullmatch(text) else None


class RequestIdMiddleware:
    """Give each HTTP request an id (the caller's valid ``X-Request-ID`` or a new one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Tag one request with its id."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for key, value in scope.get("headers", ()):
            if key == _HEADER_KEY:
                rid = valid_request_id(value)
                break
        rid = rid or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        header = (_HEADER_KEY, rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER_KEY]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id_of(request: Request) -> str:
    """Return the request's id (set by `RequestIdMiddleware`; a new one if it did not run)."""
    state = request.scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        rid = state["request_id"] = new_request_id()
    return rid


def error_response(
    request: Request, status: int, detail: Any, headers: dict[str, str] | None = None
) -> Response:
    """Return the error body ``{"detail", "status", "request_id"}`` with ``status``."""
    rid = request_id_of(request)
    if status in (204, 304):
        return Response(status_code=status, headers=headers)
    body = {"detail": jsonable_encoder(detail), "status": status, "request_id": rid}
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-Request-ID": rid})


_LOC_CHARS = 64


def validation_detail(errors: Any) -> list[dict[str, Any]]:
    """Return validation errors without the caller's input (never echo a body back).

    Each error keeps ``type``, ``loc`` (names cut to 64 characters) and ``msg``.
    """
    out = []
    for e in list(errors)[:50]:
        loc = [p[:_LOC_CHARS] if isinstance(p, str) else p for p in e.get("loc", ())]
        out.append({"type": e.get("type"), "loc": loc, "msg": str(e.get("msg", ""))[:300]})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Map HTTP errors, validation errors, indunet errors and crashes to `ErrorBody`."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = exc.headers
        if exc.status_code == 405:  # every method of the path, not only the first route's
            from indunet.api.hardening import allowed_methods

            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(app, request.scope))}
        return error_response(request, exc.status_code, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, validation_detail(exc.errors()))

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        return error_response(request, 422, str(exc))

    @app.exception_handler(TemporaryError)
    async def _temporary(request: Request, exc: TemporaryError) -> Response:
        return error_response(request, 503, str(exc), {"Retry-After": "5"})

    @app.exception_handler(IndunetError)
    async def _other(request: Request, exc: IndunetError) -> Response:
        log.error("request %s failed: %s (%s)", request_id_of(request), exc, exc.detail)
        return error_response(request, 500, str(exc))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        # runs in Starlette's outermost middleware, which re-raises for the server's log
        log.error("request %s crashed: %r", request_id_of(request), exc)
        return error_response(request, 500, CRASH_DETAIL)


_ERRORS = {
    400: "Bad request: the body is not valid JSON or CSV",
    401: "Not signed in: send `Authorization: Bearer <API key>` or a session cookie",
    403: "Signed in, but this role or tenant may not do this (or the CSRF token is missing)",
    404: "No such route or record",
    409: "Conflict: the record is not in a state that allows this",
    413: "The request body is larger than the limit",
    422: "Invalid parameters or body: `detail` says which",
    429: "Too many failed sign-ins: wait `Retry-After` seconds",
    500: "Internal error: quote the `request_id` when reporting it",
    503: "A store or broker is unavailable: retry after `Retry-After` seconds",
}
_WITH_BODY = {"post", "put", "patch"}
_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def _errors_of(method: str, path: str, op: dict[str, Any]) -> list[int]:
    from indunet.auth.model import Need
    from indunet.auth.policy import rule_for

    rule = rule_for(method.upper(), path)
    codes = [404, 422, 500, 503]
    if rule is None or rule.need is not Need.public:
        codes += [401, 403]
    if method in _WITH_BODY or "requestBody" in op:
        codes += [400, 413]
    if method in _WITH_BODY or method == "delete":
        codes.append(409)
    if path.startswith("/api/v1/auth/login"):
        codes += [401, 429]  # a wrong password; too many of them
    return sorted(set(codes))


def api_openapi(app: FastAPI) -> Any:
    """Return ``app.openapi`` that also documents each operation's error answers (`ErrorBody`)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorBody"] = ErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path, item in spec.get("paths", {}).items():
            for method, op in item.items():
                if method not in _METHODS:
                    continue
                responses = op.setdefault("responses", {})
                for code in _errors_of(method, path, op):
                    entry = responses.setdefault(str(code), {"description": _ERRORS[code]})
                    entry["content"] = {"application/json": {"schema": ref}}
                op["responses"] = dict(sorted(responses.items()))
        for unused in ("HTTPValidationError", "ValidationError"):  # 422 answers are ErrorBody
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    return openapi


def json_body(description: str, *, array: bool = False) -> dict[str, Any]:
    """Return ``openapi_extra`` documenting a JSON body a route reads itself (`read_json`)."""
    schema: dict[str, Any] = (
        {"type": "array", "items": {"type": "object"}} if array else {"type": "object"}
    )
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }
