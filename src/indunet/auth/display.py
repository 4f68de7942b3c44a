"""Display keys: how a wall screen signs in — view-only, one scope, revocable, kept in the database.

A display key (``iwd_<id>_<secret>``) is issued by an admin for one enterprise and one scope (a
site, area or line path). It acts as a viewer whose grant is limited to that scope, and only on
the wall routes (``/wall/…``, ``/api/v1/wall/…`` and the wall's event stream
``/api/v1/wall-events/…``; `indunet.auth.web.authorise` refuses it everywhere else). The screen
opens ``/wall/<scope>?display_key=…`` once; the server answers with a long-lived HttpOnly cookie
and a redirect to the clean URL, so the key leaves the address bar.
Only the SHA-256 of the key is stored; the key survives server restarts (it lives in the
historian's database) and ends at once when revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import weakref
from typing import Any

from indunet.auth.model import Grant, Principal, PrincipalKind, Role
from indunet.errors import DataError
from indunet.store.base import Historian
from indunet.store.tables import SqlPort
from indunet.uns import check_segment

__all__ = ["DISPLAY_COOKIE", "DisplayKeys", "is_wall_path"]

DISPLAY_COOKIE = "indunet_display"
_DDL = """
CREATE TABLE IF NOT EXISTS auth_display_keys (
  key_id TEXT PRIMARY KEY,
  secret_sha256 TEXT NOT NULL,
  enterprise TEXT NOT NULL,
  scope TEXT NOT NULL,
  name TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  revoked_ms BIGINT,
  last_used_ms BIGINT
)
"""
_KEY = re.compile(r"^iwd_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
CACHE_S = 5.0
_LAST_USED_EVERY_MS = 60_000
_CACHES: weakref.WeakKeyDictionary[Historian, dict[str, tuple[Principal, str, float]]] = (
    weakref.WeakKeyDictionary()
)


def is_wall_path(path: str) -> bool:
    """Tell whether a route template is a wall route (the only ones a display key may call)."""
    return path.startswith(("/wall/", "/api/v1/wall/", "/api/v1/wall-events/"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class DisplayKeys:
    """Issue, list, revoke and verify display keys."""

    def __init__(self, historian: Historian) -> None:
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)
        self._cache = _CACHES.setdefault(historian, {})

    def create(self, enterprise: str, scope: str, *, name: str = "", now_ms: int) -> dict:
        """Issue a key for ``scope`` (site, area or line path); return it with its secret."""
        parts = scope.strip().strip("/").split("/")
        if not 1 <= len(parts) <= 3:
            raise DataError(f"scope {scope!r} must be a site, site/area or site/area/line")
        for p in parts:
            check_segment(p, "scope segment")
        check_segment(enterprise, "enterprise")
        key_id = secrets.token_hex(8)
        token = f"iwd_{key_id}_{secrets.token_urlsafe(32)}"
        scope = "/".join(parts)
        self.sql.execute(
            "INSERT INTO auth_display_keys VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
            [key_id, _sha256(token), enterprise, scope, name[:200], now_ms],
        )
        return {"key_id": key_id, "secret": token, "enterprise": enterprise, "scope": scope}

    def list(self, enterprise: str) -> list[dict[str, Any]]:
        """Return an enterprise's display keys (never their secrets)."""
        return self.sql.rows(
            "SELECT key_id, enterprise, scope, name, created_ms, revoked_ms, last_used_ms "
            "FROM auth_display_keys WHERE enterprise = $1 ORDER BY created_ms, key_id",
            [enterprise],
        )

    def revoke(self, enterprise: str, key_id: str, *, now_ms: int) -> bool:
        """Revoke a key of ``enterprise`` at once; return whether it was live."""
        rows = self.sql.rows(
            "SELECT revoked_ms FROM auth_display_keys WHERE key_id = $1 AND enterprise = $2",
            [key_id, enterprise],
        )
        if not rows or rows[0]["revoked_ms"] is not None:
            return False
        self.sql.execute(
            "UPDATE auth_display_keys SET revoked_ms = $1 WHERE key_id = $2", [now_ms, key_id]
        )
        for digest, (_, kid, _) in list(self._cache.items()):
            if kid == key_id:
                self._cache.pop(digest, None)
        return True

    def principal(self, token: str, *, now_ms: int) -> Principal | None:
        """Return the view-only principal of a live key, or None."""
        m = _KEY.match(token or "")
        if m is None:
            return None
        digest = _sha256(token)
        hit = self._cache.get(digest)
        if hit is not None and hit[2] > time.monotonic():
            return hit[0]
        rows = self.sql.rows(
            "SELECT secret_sha256, enterprise, scope, revoked_ms, last_used_ms "
            "FROM auth_display_keys WHERE key_id = $1",
            [m.group(1)],
        )
        if not rows or not hmac.compare_digest(rows[0]["secret_sha256"], digest):
            return None
        row = rows[0]
        if row["revoked_ms"] is not None:
            self._cache.pop(digest, None)
            return None
        if row["last_used_ms"] is None or now_ms - row["last_used_ms"] >= _LAST_USED_EVERY_MS:
            self.sql.execute(
                "UPDATE auth_display_keys SET last_used_ms = $1 WHERE key_id = $2",
                [now_ms, m.group(1)],
            )
        principal = Principal(
            PrincipalKind.display,
            f"display:{m.group(1)}",
            (Grant(row["enterprise"], Role.viewer, site=row["scope"]),),
            home=row["enterprise"],
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (principal, m.group(1), time.monotonic() + CACHE_S)
        return principal
