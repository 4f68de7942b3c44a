"""Accounts, keys and sessions on both backends (real DuckDB file and real PostgreSQL)."""

from __future__ import annotations

import hashlib

import pytest

from indunet.auth.model import CHAIN_SCOPE, Grant, PrincipalKind, Role
from indunet.auth.store import AuthStore
from indunet.errors import DataError

NOW = 1_700_000_000_000
HOUR = 3_600_000


@pytest.fixture
def store(historian) -> AuthStore:
    return AuthStore(historian)


def test_passwords_are_argon2id_hashes(store: AuthStore) -> None:
    store.add_user("ann", "correct horse battery", now_ms=NOW)
    stored = store.sql.rows("SELECT password_hash FROM auth_users WHERE name = 'ann'")[0]
    assert stored["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in stored["password_hash"]
    assert store.check_password("ann", "correct horse battery")
    assert not store.check_password("ann", "correct horse batterY")
    assert not store.check_password("nobody", "correct horse battery")
    store.set_password("ann", "a new long password")
    assert not store.check_password("ann", "correct horse battery")
    assert store.check_password("ann", "a new long password")


def test_bad_users_are_refused_with_the_field(store: AuthStore) -> None:
    with pytest.raises(DataError, match="at least 10"):
        store.add_user("ann", "short", now_ms=NOW)
    with pytest.raises(DataError, match="user name"):
        store.add_user("../etc", "long enough password", now_ms=NOW)
    with pytest.raises(DataError, match="user name"):
        store.add_user("a'; DROP TABLE auth_users; --", "long enough password", now_ms=NOW)
    store.add_user("ann", "long enough password", now_ms=NOW)
    with pytest.raises(DataError, match="already exists"):
        store.add_user("ann", "another long password", now_ms=NOW)
    with pytest.raises(DataError, match="does not exist"):
        store.grant("bob", "acme", "viewer")
    with pytest.raises(ValueError, match="viewer, operator, admin"):
        store.grant("ann", "acme", "root")


def test_grants_replace_and_disable(store: AuthStore) -> None:
    store.add_user("ann", "long enough password", now_ms=NOW)
    store.grant("ann", "acme", "viewer")
    store.grant("ann", "acme", "admin", "s1")  # replaces, not duplicates
    store.grant("ann", "globex", "operator")
    store.grant("ann", "ignored", "chain")
    assert store.grants("ann") == (
        Grant(CHAIN_SCOPE, None),
        Grant("acme", Role.admin, "s1"),
        Grant("globex", Role.operator),
    )
    assert [u["name"] for u in store.users("globex")] == ["ann"]
    assert store.revoke_grant("ann", "globex") and not store.revoke_grant("ann", "globex")
    s = store.start_session("ann", now_ms=NOW, lifetime_ms=HOUR)
    store.set_disabled("ann", True)
    assert not store.check_password("ann", "long enough password")
    assert store.principal_for_session(s.token, now_ms=NOW) is None  # sessions ended


def test_api_keys_are_shown_once_stored_hashed_and_revocable(store: AuthStore) -> None:
    key = store.create_key("acme", "operator", name="mes", now_ms=NOW)
    assert key.secret.startswith(f"ik_{key.key_id}_")
    rows = store.sql.rows("SELECT * FROM auth_keys")
    assert key.secret not in str(rows)
    assert rows[0]["secret_sha256"] == hashlib.sha256(key.secret.encode()).hexdigest()
    p = store.principal_for_key(key.secret, device=False, now_ms=NOW + 5)
    assert p is not None and p.kind is PrincipalKind.api_key
    assert p.grants == (Grant("acme", Role.operator),)
    assert store.key(key.key_id)["last_used_ms"] == NOW + 5
    store.principal_for_key(key.secret, device=False, now_ms=NOW + 10)
    assert store.key(key.key_id)["last_used_ms"] == NOW + 5  # written at most once a minute
    assert store.principal_for_key(key.secret, device=True, now_ms=NOW) is None  # wrong header
    tampered = key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B")
    assert store.principal_for_key(tampered, device=False, now_ms=NOW) is None
    for junk in ("", "ik_", "Bearer x", "ik_zz_" + "a" * 43, key.secret + "x"):
        assert store.principal_for_key(junk, device=False, now_ms=NOW) is None
    assert store.revoke_key(key.key_id, now_ms=NOW + 1)
    assert not store.revoke_key(key.key_id, now_ms=NOW + 2)
    assert store.principal_for_key(key.secret, device=False, now_ms=NOW + 3) is None
    assert [k["key_id"] for k in store.keys("acme")] == [key.key_id]
    assert store.keys("globex") == []


def test_device_keys_only_as_device_keys(store: AuthStore) -> None:
    key = store.create_key("acme", "admin", device=True, now_ms=NOW)
    assert key.secret.startswith("idk_") and key.role == "device"
    assert store.principal_for_key(key.secret, device=False, now_ms=NOW) is None
    p = store.principal_for_key(key.secret, device=True, now_ms=NOW)
    assert p is not None and p.kind is PrincipalKind.device and p.enterprises == ["acme"]
    with pytest.raises(DataError, match="device"):
        store.create_key("acme", "chain", device=True, now_ms=NOW)


def test_chain_key(store: AuthStore) -> None:
    key = store.create_key("whatever", "chain", now_ms=NOW)
    p = store.principal_for_key(key.secret, device=False, now_ms=NOW)
    assert p is not None and p.chain_operator and p.default_enterprise is None


def test_sessions_expire_rotate_and_end(store: AuthStore) -> None:
    store.add_user("ann", "long enough password", now_ms=NOW)
    store.grant("ann", "acme", "viewer")
    first = store.start_session("ann", now_ms=NOW, lifetime_ms=HOUR)
    p = store.principal_for_session(first.token, now_ms=NOW + 1)
    assert p is not None and p.name == "ann" and p.csrf_token == first.csrf_token
    assert store.principal_for_session(first.token, now_ms=NOW + HOUR) is None  # expired
    # logging in again with the old cookie replaces it: a fixed/stolen id dies on login
    second = store.start_session("ann", now_ms=NOW, lifetime_ms=HOUR, replaces=first.token)
    assert second.token != first.token and second.csrf_token != first.csrf_token
    assert store.principal_for_session(first.token, now_ms=NOW + 1) is None
    assert store.principal_for_session(second.token, now_ms=NOW + 1) is not None
    stored = store.sql.rows("SELECT id_sha256 FROM auth_sessions")
    assert second.token not in str(stored)  # only the hash of the id is kept
    store.end_session(second.token)
    assert store.principal_for_session(second.token, now_ms=NOW + 1) is None
    assert store.principal_for_session("x" * 500, now_ms=NOW) is None


def test_verified_keys_are_cached_briefly_and_revocation_ends_them(
    historian, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, other = AuthStore(historian), AuthStore(historian)  # e.g. the app's and a route's
    key = store.create_key("acme", "viewer", now_ms=NOW)
    assert store.cached_principal(key.secret, device=False) is None  # not verified yet
    assert store.principal_for_key(key.secret, device=False, now_ms=NOW) is not None
    lookups: list[str] = []
    real_rows = store.sql.rows
    monkeypatch.setattr(
        store.sql, "rows", lambda *a, **k: lookups.append("db") or real_rows(*a, **k)
    )
    p = store.principal_for_key(key.secret, device=False, now_ms=NOW + 1)
    assert p is not None and p.grants == (Grant("acme", Role.viewer),) and lookups == []
    assert other.cached_principal(key.secret, device=False) == p  # one cache per historian
    assert store.cached_principal(key.secret, device=True) is None  # never as the other kind
    tampered = key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B")
    assert store.principal_for_key(tampered, device=False, now_ms=NOW) is None
    assert other.revoke_key(key.key_id, now_ms=NOW + 2)  # revoked through another store
    assert store.cached_principal(key.secret, device=False) is None
    assert store.principal_for_key(key.secret, device=False, now_ms=NOW + 3) is None

    # a revocation by another process (straight in the table) counts once the cache time is up
    fresh = store.create_key("acme", "viewer", now_ms=NOW)
    assert store.principal_for_key(fresh.secret, device=False, now_ms=NOW) is not None
    store.sql.execute("UPDATE auth_keys SET revoked_ms = 1 WHERE key_id = $1", [fresh.key_id])
    assert store.principal_for_key(fresh.secret, device=False, now_ms=NOW) is not None
    monkeypatch.setattr("indunet.auth.store.KEY_CACHE_S", -1.0)
    store._key_cache.clear()
    assert store.principal_for_key(fresh.secret, device=False, now_ms=NOW) is None
