"""Users, grants, API and device keys, and sessions in the historian's database (DuckDB or PG).

Passwords are hashed with argon2id. API keys, device keys and session ids are random 256-bit
secrets shown once; only their SHA-256 is stored (a fast hash is enough for a secret with that
much entropy, and it keeps per-request checks cheap).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import weakref
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from indunet.auth.model import CHAIN_SCOPE, Grant, Principal, PrincipalKind, Role
from indunet.errors import DataError
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = ["AuthStore", "IssuedKey", "KeyKind", "NewSession", "check_name"]

_DDL = """
CREATE TABLE IF NOT EXISTS auth_users (
  name TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  disabled BOOLEAN NOT NULL,
  created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_grants (
  user_name TEXT NOT NULL,
  enterprise TEXT NOT NULL,
  role TEXT NOT NULL,
  site TEXT,
  PRIMARY KEY (user_name, enterprise)
);
CREATE TABLE IF NOT EXISTS auth_keys (
  key_id TEXT PRIMARY KEY,
  secret_sha256 TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  enterprise TEXT NOT NULL,
  role TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  revoked_ms BIGINT,
  last_used_ms BIGINT
);
CREATE TABLE IF NOT EXISTS auth_sessions (
  id_sha256 TEXT PRIMARY KEY,
  user_name TEXT NOT NULL,
  csrf_token TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL
)
"""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_KEY = re.compile(r"^(ik|idk)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_LAST_USED_EVERY_MS = 60_000
#: a verified key is trusted this long without a database lookup (revoking in this process ends
#: it at once; a revocation by another process, e.g. the CLI, takes effect within this time)
KEY_CACHE_S = 5.0
_KEY_CACHE_MAX = 10_000
#: per historian (so every AuthStore of a process sees a revocation): SHA-256 of a verified live
#: key -> (principal, key id, trusted until in monotonic s)
_KEY_CACHES: weakref.WeakKeyDictionary[Historian, dict[str, tuple[Principal, str, float]]] = (
    weakref.WeakKeyDictionary()
)
KeyKind = str  # "api" or "device"


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid user/enterprise/site name, else raise DataError."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise DataError(
            f"{kind} {value!r} is not valid: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return value


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A new API or device key: ``secret`` is shown once and never stored."""

    key_id: str
    secret: str
    kind: KeyKind
    enterprise: str
    role: str


@dataclass(frozen=True)
class NewSession:
    """A new session: ``token`` goes into the cookie, ``csrf_token`` into forms and headers."""

    token: str
    csrf_token: str
    expires_ms: int


class AuthStore:
    """Accounts, keys and sessions beside the historian's points."""

    def __init__(self, historian: Historian, hasher: PasswordHasher | None = None) -> None:
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None  # hashed on first use: same work for unknown names
        self._key_cache = _KEY_CACHES.setdefault(historian, {})

    # users and grants -------------------------------------------------------------------
    def add_user(self, name: str, password: str, *, now_ms: int) -> None:
        """Create a user; DataError if the name is taken or the password is too short."""
        check_name("user name", name)
        _check_password(password)
        if self.sql.rows("SELECT name FROM auth_users WHERE name = $1", [name]):
            raise DataError(f"user {name!r} already exists")
        self.sql.execute(
            "INSERT INTO auth_users (name, password_hash, disabled, created_ms) "
            "VALUES ($1, $2, FALSE, $3)",
            [name, self.hasher.hash(password), now_ms],
        )

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password (their sessions end)."""
        _check_password(password)
        self._require_user(name)
        with self.sql.transaction():
            self.sql.execute(
                "UPDATE auth_users SET password_hash = $1 WHERE name = $2",
                [self.hasher.hash(password), name],
            )
            self.sql.execute("DELETE FROM auth_sessions WHERE user_name = $1", [name])

    def user(self, name: str) -> dict[str, Any] | None:
        """Return a user's name, disabled flag and grants, or None."""
        rows = self.sql.rows(
            "SELECT name, disabled, created_ms FROM auth_users WHERE name = $1", [name]
        )
        if not rows:
            return None
        out = rows[0]
        out["grants"] = [_grant_dict(g) for g in self.grants(name)]
        return out

    def users(self, enterprise: str | None = None) -> list[dict[str, Any]]:
        """Return every user (or those granted ``enterprise``) with their grants, by name."""
        if enterprise is None:
            names = [r["name"] for r in self.sql.rows("SELECT name FROM auth_users ORDER BY name")]
        else:
            names = [
                r["user_name"]
                for r in self.sql.rows(
                    "SELECT user_name FROM auth_grants WHERE enterprise = $1 ORDER BY user_name",
                    [enterprise],
                )
            ]
        return [u for n in names if (u := self.user(n)) is not None]

    def grant(self, name: str, enterprise: str, role: str, site: str | None = None) -> None:
        """Give ``name`` a role in ``enterprise`` (replacing any), or ``role='chain'``."""
        self._require_user(name)
        if role == "chain":
            enterprise, site = CHAIN_SCOPE, None
        else:
            check_name("enterprise", enterprise)
            role = Role.parse(role).name if isinstance(role, str) else role
            if site is not None:
                check_name("site", site)
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM auth_grants WHERE user_name = $1 AND enterprise = $2",
                [name, enterprise],
            )
            self.sql.execute(
                "INSERT INTO auth_grants (user_name, enterprise, role, site) "
                "VALUES ($1, $2, $3, $4)",
                [name, enterprise, role, site],
            )

    def revoke_grant(self, name: str, enterprise: str) -> bool:
        """Remove ``name``'s grant in ``enterprise``; return whether one existed."""
        found = self.sql.rows(
            "SELECT user_name FROM auth_grants WHERE user_name = $1 AND enterprise = $2",
            [name, enterprise],
        )
        self.sql.execute(
            "DELETE FROM auth_grants WHERE user_name = $1 AND enterprise = $2", [name, enterprise]
        )
        return bool(found)

    def grants(self, name: str) -> tuple[Grant, ...]:
        """Return a user's grants."""
        rows = self.sql.rows(
            "SELECT enterprise, role, site FROM auth_grants WHERE user_name = $1 "
            "ORDER BY enterprise",
            [name],
        )
        return tuple(
            Grant(r["enterprise"], None if r["role"] == "chain" else Role[r["role"]], r["site"])
            for r in rows
        )

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (or enable) a user; disabling ends their sessions."""
        self._require_user(name)
        with self.sql.transaction():
            self.sql.execute(
                "UPDATE auth_users SET disabled = $1 WHERE name = $2", [disabled, name]
            )
            if disabled:
                self.sql.execute("DELETE FROM auth_sessions WHERE user_name = $1", [name])

    def check_password(self, name: str, password: str) -> bool:
        """Return whether ``password`` is right for an enabled user (constant work either way)."""
        rows = self.sql.rows(
            "SELECT password_hash, disabled FROM auth_users WHERE name = $1", [name]
        )
        if not rows and self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        stored = rows[0]["password_hash"] if rows else self._dummy_hash
        assert stored is not None
        try:
            ok = self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if ok and rows and self.hasher.check_needs_rehash(stored):
            self.sql.execute(
                "UPDATE auth_users SET password_hash = $1 WHERE name = $2",
                [self.hasher.hash(password), name],
            )
        return bool(ok and rows and not rows[0]["disabled"])

    def _require_user(self, name: str) -> None:
        if not self.sql.rows("SELECT name FROM auth_users WHERE name = $1", [name]):
            raise DataError(f"user {name!r} does not exist")

    # API and device keys ----------------------------------------------------------------
    def create_key(
        self, enterprise: str, role: str, *, name: str = "", device: bool = False, now_ms: int
    ) -> IssuedKey:
        """Issue a key scoped to ``enterprise`` and ``role`` (``chain`` for cross-enterprise).

        A device key may only send data to that enterprise's ingest.
        """
        if role == "chain":
            if device:
                raise DataError("a device key sends one enterprise's data; it cannot be 'chain'")
            enterprise = CHAIN_SCOPE
        else:
            check_name("enterprise", enterprise)
            role = Role.parse(role).name
        if device:
            role = "device"
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        prefix = "idk" if device else "ik"
        token = f"{prefix}_{key_id}_{secret}"
        kind = "device" if device else "api"
        self.sql.execute(
            "INSERT INTO auth_keys (key_id, secret_sha256, name, kind, enterprise, role, "
            "created_ms, revoked_ms, last_used_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)",
            [key_id, _sha256(token), name[:200], kind, enterprise, role, now_ms],
        )
        return IssuedKey(key_id, token, kind, enterprise, role)

    def keys(self, enterprise: str | None = None) -> list[dict[str, Any]]:
        """Return the keys (never their secrets), of one enterprise or all, oldest first."""
        sql = (
            "SELECT key_id, name, kind, enterprise, role, created_ms, revoked_ms, last_used_ms "
            "FROM auth_keys"
        )
        if enterprise is None:
            return self.sql.rows(sql + " ORDER BY created_ms, key_id")
        return self.sql.rows(
            sql + " WHERE enterprise = $1 ORDER BY created_ms, key_id", [enterprise]
        )

    def key(self, key_id: str) -> dict[str, Any] | None:
        """Return one key's metadata, or None."""
        rows = self.sql.rows(
            "SELECT key_id, name, kind, enterprise, role, created_ms, revoked_ms, last_used_ms "
            "FROM auth_keys WHERE key_id = $1",
            [key_id],
        )
        return rows[0] if rows else None

    def revoke_key(self, key_id: str, *, now_ms: int) -> bool:
        """Revoke a key at once; return whether it existed and was live."""
        found = self.key(key_id)
        if found is None or found["revoked_ms"] is not None:
            return False
        self.sql.execute("UPDATE auth_keys SET revoked_ms = $1 WHERE key_id = $2", [now_ms, key_id])
        self._forget_key(key_id)
        return True

    def _forget_key(self, key_id: str) -> None:
        for digest, (_, kid, _) in list(self._key_cache.items()):
            if kid == key_id:
                self._key_cache.pop(digest, None)

    def cached_principal(
        self, token: str, *, device: bool, fresh_for: float = 0.0
    ) -> Principal | None:
        """Return the principal of a key verified less than `KEY_CACHE_S` ago, else None.

        With ``fresh_for``, only an entry that stays valid that many more seconds counts.
        """
        m = _KEY.match(token or "")
        if m is None or (m.group(1) == "idk") != device:
            return None
        hit = self._key_cache.get(_sha256(token))
        if hit is None or hit[2] < time.monotonic() + fresh_for:
            return None
        return hit[0]

    def principal_for_key(
        self, token: str, *, device: bool, now_ms: int, use_cache: bool = True
    ) -> Principal | None:
        """Return the principal of a live key of the right kind, or None; note its last use.

        ``use_cache=False`` verifies against the database even when the key was verified moments
        ago (a refresh), and forgets the key at once when it is no longer valid.
        """
        if use_cache:
            cached = self.cached_principal(token, device=device)
            if cached is not None:
                return cached
        else:
            found = self._verify_key(token, device=device, now_ms=now_ms)
            if found is None:
                self._key_cache.pop(_sha256(token or ""), None)
            return found
        return self._verify_key(token, device=device, now_ms=now_ms)

    def _verify_key(self, token: str, *, device: bool, now_ms: int) -> Principal | None:
        m = _KEY.match(token or "")
        if m is None or (m.group(1) == "idk") != device:
            return None
        rows = self.sql.rows(
            "SELECT secret_sha256, kind, enterprise, role, revoked_ms, last_used_ms "
            "FROM auth_keys WHERE key_id = $1",
            [m.group(2)],
        )
        if not rows:
            return None
        row = rows[0]
        if not hmac.compare_digest(row["secret_sha256"], _sha256(token)):
            return None
        if row["revoked_ms"] is not None or (row["kind"] == "device") != device:
            return None
        if row["last_used_ms"] is None or now_ms - row["last_used_ms"] >= _LAST_USED_EVERY_MS:
            self.sql.execute(
                "UPDATE auth_keys SET last_used_ms = $1 WHERE key_id = $2", [now_ms, m.group(2)]
            )
        if device:
            principal = Principal(
                PrincipalKind.device, m.group(2), (Grant(row["enterprise"], Role.viewer),)
            )
        else:
            role = None if row["role"] == "chain" else Role[row["role"]]
            principal = Principal(
                PrincipalKind.api_key, m.group(2), (Grant(row["enterprise"], role),)
            )
        if len(self._key_cache) >= _KEY_CACHE_MAX:
            self._key_cache.clear()
        self._key_cache[_sha256(token)] = (principal, m.group(2), time.monotonic() + KEY_CACHE_S)
        return principal

    # sessions ---------------------------------------------------------------------------
    def start_session(
        self, name: str, *, now_ms: int, lifetime_ms: int, replaces: str | None = None
    ) -> NewSession:
        """Open a new session for ``name`` with a fresh random id, ending ``replaces`` if given.

        Every login gets a new id, so an id planted before login is never promoted.
        """
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now_ms + lifetime_ms
        with self.sql.transaction():
            if replaces:
                self.sql.execute(
                    "DELETE FROM auth_sessions WHERE id_sha256 = $1", [_sha256(replaces)]
                )
            self.sql.execute("DELETE FROM auth_sessions WHERE expires_ms <= $1", [now_ms])
            self.sql.execute(
                "INSERT INTO auth_sessions (id_sha256, user_name, csrf_token, created_ms, "
                "expires_ms) VALUES ($1, $2, $3, $4, $5)",
                [_sha256(token), name, csrf, now_ms, expires],
            )
        return NewSession(token, csrf, expires)

    def end_session(self, token: str) -> None:
        """End a session (log out)."""
        self.sql.execute("DELETE FROM auth_sessions WHERE id_sha256 = $1", [_sha256(token)])

    def principal_for_session(self, token: str, *, now_ms: int) -> Principal | None:
        """Return the user of a live session of an enabled user, or None."""
        if not token or len(token) > 100:
            return None
        rows = self.sql.rows(
            "SELECT s.user_name, s.csrf_token, s.expires_ms, u.disabled FROM auth_sessions s "
            "JOIN auth_users u ON u.name = s.user_name WHERE s.id_sha256 = $1",
            [_sha256(token)],
        )
        if not rows or rows[0]["expires_ms"] <= now_ms or rows[0]["disabled"]:
            return None
        name = rows[0]["user_name"]
        return Principal(
            PrincipalKind.user,
            name,
            self.grants(name),
            session_id=token,
            csrf_token=rows[0]["csrf_token"],
        )

    def principal_for_user(self, name: str) -> Principal:
        """Return a user's principal (for tools acting as that user)."""
        return Principal(PrincipalKind.user, name, self.grants(name))


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < 10:
        raise DataError("the password must have at least 10 characters")
    if len(password) > 1024:
        raise DataError("the password must have at most 1024 characters")


def _grant_dict(g: Grant) -> dict[str, Any]:
    return {
        "enterprise": g.enterprise,
        "role": "chain" if g.chain else (g.role.name if g.role else None),
        "site": g.site,
    }
