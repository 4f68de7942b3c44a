"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from vendored assets, for plants offline.

The assets live in ``static/apidocs`` (versions and checksums in ``static/VENDORED.md``); the
pages hold no inline script, so the Content-Security-Policy needs no exception for them.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from indunet import __version__

__all__ = ["router"]

router = APIRouter(include_in_schema=False, tags=["docs"])

_V = __version__
_SWAGGER = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>indunet API</title>
<link rel="stylesheet" href="/static/apidocs/swagger-ui.css?v={_V}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/apidocs/swagger-ui-bundle.js?v={_V}"></script>
<script src="/static/apidocs/swagger-init.js?v={_V}"></script>
</body>
</html>
"""
_REDOC = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>indunet API</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/static/apidocs/redoc.standalone.js?v={_V}"></script>
</body>
</html>
"""
_OAUTH2_REDIRECT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>indunet API</title></head>
<body>This page is where Swagger UI's OAuth2 sign-in would return; indunet uses API keys.</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui() -> HTMLResponse:
    """Serve Swagger UI for ``/openapi.json`` from vendored files."""
    return HTMLResponse(_SWAGGER)


@router.get("/redoc", response_class=HTMLResponse)
def redoc() -> HTMLResponse:
    """Serve ReDoc for ``/openapi.json`` from vendored files."""
    return HTMLResponse(_REDOC)


@router.get("/docs/oauth2-redirect", response_class=HTMLResponse)
def oauth2_redirect() -> HTMLResponse:
    """Answer Swagger UI's OAuth2 return address (indunet signs in with keys, not OAuth2)."""
    return HTMLResponse(_OAUTH2_REDIRECT)
