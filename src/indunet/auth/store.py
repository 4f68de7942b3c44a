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

__all__ = ["AuthStore", "IssuedKey", "KeyKind", "NewSession", "check_name", "check_password"]

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
);
CREATE TABLE IF NOT EXISTS auth_invitations (
  invitation_id TEXT PRIMARY KEY,
  user_name TEXT NOT NULL,
  enterprise TEXT NOT NULL,
  role TEXT NOT NULL,
  site TEXT,
  invited_by TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL
);
ALTER TABLE auth_users ADD COLUMN IF NOT EXISTS default_enterprise TEXT;
ALTER TABLE auth_grants ADD COLUMN IF NOT EXISTS disabled BOOLEAN DEFAULT FALSE;
UPDATE auth_users SET default_enterprise = (
  SELECT min(g.enterprise) FROM auth_grants g
  WHERE g.user_name = auth_users.name AND g.enterprise <> '*'
) WHERE default_enterprise IS NULL
"""
#: an invitation not accepted within this time lapses
INVITATION_MS = 7 * 86_400_000
#: passwords refused whatever their length (the most common ones of breach lists, lower case)
COMMON_PASSWORDS = frozenset(
    [
        "1234567890",
        "12345678910",
        "0123456789",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "123qweasdzxc",
        "qwertyuiop",
        "qwerty1234",
        "qwerty12345",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou12",
        "administrator",
        "admin12345",
        "admin123456",
        "welcome123",
        "letmein123",
        "changeme123",
        "abc1234567",
        "abcdefghij",
        "abcd123456",
        "football123",
        "baseball123",
        "sunshine123",
        "princess123",
        "superman123",
        "trustno1234",
        "monkey1234",
        "dragon1234",
        "master1234",
        "987654321a",
        "1234567890a",
        "a1234567890",
        "zaq12wsxcde",
        "5201314520",
        "woaini1314",
        "qazwsxedcr",
        "11111111111",
        "00000000000",
    ]
)

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
    def add_user(
        self, name: str, password: str, *, now_ms: int, enterprise: str | None = None
    ) -> None:
        """Create a user whose default enterprise is ``enterprise`` (else their first grant).

        DataError if the name is taken in any letter case or the password is weak.
        """
        check_name("user name", name)
        check_password(password, name)
        if self.name_taken(name):
            raise DataError(f"user {name!r} already exists")
        if enterprise is not None:
            self._check_enterprise(enterprise)
        self.sql.execute(
            "INSERT INTO auth_users (name, password_hash, disabled, created_ms, "
            "default_enterprise) VALUES ($1, $2, FALSE, $3, $4)",
            [name, self.hasher.hash(password), now_ms, enterprise],
        )

    def name_taken(self, name: str) -> bool:
        """Return whether a user has this name in any letter case."""
        return bool(
            self.sql.rows("SELECT name FROM auth_users WHERE lower(name) = lower($1)", [name])
        )

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password (their sessions end)."""
        check_password(password, name)
        self._require_user(name)
        with self.sql.transaction():
            self.sql.execute(
                "UPDATE auth_users SET password_hash = $1 WHERE name = $2",
                [self.hasher.hash(password), name],
            )
            self.sql.execute("DELETE FROM auth_sessions WHERE user_name = $1", [name])

    def user(self, name: str) -> dict[str, Any] | None:
        """Return a user's name, disabled flag, default enterprise and every grant, or None.

        Each grant carries its own ``disabled`` flag (an enterprise's admin disables a user
        there only).
        """
        rows = self.sql.rows(
            "SELECT name, disabled, created_ms, default_enterprise FROM auth_users WHERE name = $1",
            [name],
        )
        if not rows:
            return None
        out = rows[0]
        out["grants"] = self.sql.rows(
            "SELECT enterprise, role, site, COALESCE(disabled, FALSE) AS disabled "
            "FROM auth_grants WHERE user_name = $1 ORDER BY enterprise",
            [name],
        )
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

    def _check_enterprise(self, enterprise: str) -> None:
        """Refuse an enterprise name that differs only in letter case from a known one."""
        check_name("enterprise", enterprise)
        clash = self.sql.rows(
            "SELECT enterprise FROM auth_grants WHERE lower(enterprise) = lower($1) "
            "AND enterprise <> $1 UNION SELECT enterprise FROM auth_keys "
            "WHERE lower(enterprise) = lower($1) AND enterprise <> $1 "
            "UNION SELECT default_enterprise FROM auth_users "
            "WHERE lower(default_enterprise) = lower($1) AND default_enterprise <> $1",
            [enterprise],
        )
        if clash:
            raise DataError(
                f"enterprise {enterprise!r} differs only in letter case from "
                f"{clash[0]['enterprise']!r}: enterprise names are unique regardless of case"
            )

    def grant(self, name: str, enterprise: str, role: str, site: str | None = None) -> None:
        """Give ``name`` a role in ``enterprise`` (replacing any, enabled), or ``role='chain'``.

        A user without a default enterprise gets this one; a default once set never changes
        by a grant (only `set_default_enterprise`, i.e. the server's administrator).
        """
        self._require_user(name)
        if role == "chain":
            enterprise, site = CHAIN_SCOPE, None
        else:
            self._check_enterprise(enterprise)
            role = Role.parse(role).name if isinstance(role, str) else role
            if site is not None:
                check_name("site", site)
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM auth_grants WHERE user_name = $1 AND enterprise = $2",
                [name, enterprise],
            )
            self.sql.execute(
                "INSERT INTO auth_grants (user_name, enterprise, role, site, disabled) "
                "VALUES ($1, $2, $3, $4, FALSE)",
                [name, enterprise, role, site],
            )
            if enterprise != CHAIN_SCOPE:
                self.sql.execute(
                    "UPDATE auth_users SET default_enterprise = $2 "
                    "WHERE name = $1 AND default_enterprise IS NULL",
                    [name, enterprise],
                )

    def set_default_enterprise(self, name: str, enterprise: str) -> None:
        """Set the enterprise a user's requests go to when they name none (server admin only)."""
        self._require_user(name)
        self._check_enterprise(enterprise)
        self.sql.execute(
            "UPDATE auth_users SET default_enterprise = $2 WHERE name = $1", [name, enterprise]
        )

    def default_enterprise(self, name: str) -> str | None:
        """Return a user's default enterprise (set at creation), or None."""
        rows = self.sql.rows("SELECT default_enterprise FROM auth_users WHERE name = $1", [name])
        return rows[0]["default_enterprise"] if rows else None

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

    def disable_grant(self, name: str, enterprise: str, disabled: bool = True) -> bool:
        """Disable (or enable) ``name`` in ``enterprise`` only; return whether they had a grant."""
        found = self.sql.rows(
            "SELECT user_name FROM auth_grants WHERE user_name = $1 AND enterprise = $2",
            [name, enterprise],
        )
        self.sql.execute(
            "UPDATE auth_grants SET disabled = $3 WHERE user_name = $1 AND enterprise = $2",
            [name, enterprise, disabled],
        )
        return bool(found)

    def grants(self, name: str) -> tuple[Grant, ...]:
        """Return a user's enabled grants."""
        rows = self.sql.rows(
            "SELECT enterprise, role, site FROM auth_grants WHERE user_name = $1 "
            "AND NOT COALESCE(disabled, FALSE) ORDER BY enterprise",
            [name],
        )
        return tuple(
            Grant(r["enterprise"], None if r["role"] == "chain" else Role[r["role"]], r["site"])
            for r in rows
        )

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (or enable) a user everywhere; disabling ends their sessions (server admin)."""
        self._require_user(name)
        with self.sql.transaction():
            self.sql.execute(
                "UPDATE auth_users SET disabled = $1 WHERE name = $2", [disabled, name]
            )
            if disabled:
                self.sql.execute("DELETE FROM auth_sessions WHERE user_name = $1", [name])

    # invitations ------------------------------------------------------------------------
    def invite(
        self,
        name: str,
        enterprise: str,
        role: str,
        site: str | None,
        *,
        invited_by: str,
        now_ms: int,
    ) -> str:
        """Record an invitation of user ``name`` to ``enterprise``; return its id.

        Nothing is checked about ``name`` (an invitation to a name nobody has is never
        accepted), so inviting tells the inviter nothing about which names exist.
        """
        self._check_enterprise(enterprise)
        role = Role.parse(role).name
        if site is not None:
            check_name("site", site)
        invitation_id = secrets.token_hex(12)
        with self.sql.transaction():
            self.sql.execute("DELETE FROM auth_invitations WHERE expires_ms <= $1", [now_ms])
            self.sql.execute(
                "INSERT INTO auth_invitations (invitation_id, user_name, enterprise, role, site, "
                "invited_by, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [
                    invitation_id,
                    name[:64],
                    enterprise,
                    role,
                    site,
                    invited_by[:200],
                    now_ms,
                    now_ms + INVITATION_MS,
                ],
            )
        return invitation_id

    def invitations(
        self, *, now_ms: int, user: str | None = None, enterprise: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the live invitations of a user or of an enterprise, oldest first."""
        where, params = ["expires_ms > $1"], [now_ms]
        for column, value in (("user_name", user), ("enterprise", enterprise)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        return self.sql.rows(
            "SELECT invitation_id, user_name, enterprise, role, site, invited_by, created_ms, "
            f"expires_ms FROM auth_invitations WHERE {' AND '.join(where)} "
            "ORDER BY created_ms, invitation_id",
            params,
        )

    def accept_invitation(self, invitation_id: str, user: str, *, now_ms: int) -> Grant | None:
        """Turn ``user``'s own live invitation into a grant; None if there is no such one."""
        found = [
            i
            for i in self.invitations(now_ms=now_ms, user=user)
            if i["invitation_id"] == invitation_id
        ]
        if not found:
            return None
        inv = found[0]
        self.grant(user, inv["enterprise"], inv["role"], inv["site"])
        self.withdraw_invitation(invitation_id)
        return Grant(inv["enterprise"], Role[inv["role"]], inv["site"])

    def withdraw_invitation(self, invitation_id: str, enterprise: str | None = None) -> bool:
        """Delete an invitation (of ``enterprise`` when given); return whether it existed."""
        rows = self.sql.rows(
            "SELECT enterprise FROM auth_invitations WHERE invitation_id = $1", [invitation_id]
        )
        if not rows or (enterprise is not None and rows[0]["enterprise"] != enterprise):
            return False
        self.sql.execute("DELETE FROM auth_invitations WHERE invitation_id = $1", [invitation_id])
        return True

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
            self._check_enterprise(enterprise)
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
        found = self.cached_until(token, device=device)
        if found is None or found[1] < time.monotonic() + fresh_for:
            return None
        return found[0]

    def cached_until(self, token: str, *, device: bool) -> tuple[Principal, float] | None:
        """Return the principal of a key verified less than `KEY_CACHE_S` ago and until when
        (monotonic s) it is trusted without a lookup, else None."""
        m = _KEY.match(token or "")
        if m is None or (m.group(1) == "idk") != device:
            return None
        hit = self._key_cache.get(_sha256(token))
        if hit is None or hit[2] < time.monotonic():
            return None
        return hit[0], hit[2]

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
                PrincipalKind.device,
                m.group(2),
                (Grant(row["enterprise"], Role.viewer),),
                home=row["enterprise"],
            )
        else:
            role = None if row["role"] == "chain" else Role[row["role"]]
            principal = Principal(
                PrincipalKind.api_key,
                m.group(2),
                (Grant(row["enterprise"], role),),
                home=None if role is None else row["enterprise"],
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
            home=self.default_enterprise(name),
        )

    def principal_for_user(self, name: str) -> Principal:
        """Return a user's principal (for tools acting as that user)."""
        return Principal(
            PrincipalKind.user, name, self.grants(name), home=self.default_enterprise(name)
        )


def check_password(password: str, user: str | None = None) -> None:
    """Refuse a weak password (DataError saying why): too short, too long, the user's name,
    one character repeated, or one of the common passwords of breach lists."""
    if not isinstance(password, str) or len(password) < 10:
        raise DataError("the password must have at least 10 characters")
    if len(password) > 1024:
        raise DataError("the password must have at most 1024 characters")
    folded = password.casefold()
    if user is not None:
        letters = re.sub(r"[\W\d_]", "", user.casefold().partition("@")[0])
        if folded == user.casefold() or (letters and re.sub(r"[\W\d_]", "", folded) == letters):
            raise DataError("the password must not be the user name (with or without digits)")
    if len(set(folded)) < 4:
        raise DataError("the password must use at least 4 different characters")
    if folded in COMMON_PASSWORDS:
        raise DataError("the password is one of the most common passwords: choose another")
