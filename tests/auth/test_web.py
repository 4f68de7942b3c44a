"""The FastAPI side: auth switched off for a closed lab network, and bad credentials."""

from __future__ import annotations

from fastapi.testclient import TestClient

from indunet.api.app import create_app


def test_auth_can_be_switched_off(settings_factory) -> None:
    with TestClient(create_app(settings_factory(auth={"required": False}))) as c:
        assert c.get("/api/v1/latest").status_code == 200
        assert c.get("/").status_code == 200
        assert c.get("/api/v1/auth/me").status_code == 401


def test_junk_credentials_are_401_never_500(settings_factory) -> None:
    with TestClient(create_app(settings_factory())) as c:
        for headers in (
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer ik_" + "x" * 500},
            {"Authorization": "Token abc"},
            {"X-Device-Key": "idk_0123456789abcdef_" + "+" * 43},
            {"Cookie": "indunet_session=" + "x" * 5000},
        ):
            r = c.get("/api/v1/latest", headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"


def _app_with_key(settings_factory):
    import time

    from indunet.auth.store import AuthStore

    app = create_app(settings_factory())
    client = TestClient(app)
    client.__enter__()
    store = AuthStore(app.state.historian)
    key = store.create_key("demo", "viewer", name="t", now_ms=int(time.time() * 1000)).secret
    return app, client, key


def test_concurrent_requests_with_one_expired_key_share_one_lookup(settings_factory, monkeypatch):
    """A busy client's many connections must not all look its key up at the same moment."""
    import asyncio
    import threading

    from indunet.auth import web

    app, client, key = _app_with_key(settings_factory)
    calls, release = [], threading.Event()
    real = web._resolve

    def slow_resolve(request):
        calls.append(1)
        release.wait(5)
        return real(request)

    monkeypatch.setattr(web, "_resolve", slow_resolve)

    class FakeRequest:
        def __init__(self):
            self.app = app
            self.headers = {"authorization": f"Bearer {key}"}
            self.cookies = {}

    async def many():
        tasks = [asyncio.ensure_future(web._resolve_once(FakeRequest())) for _ in range(20)]
        await asyncio.sleep(0.2)
        release.set()
        return await asyncio.gather(*tasks)

    found = asyncio.run(many())
    client.__exit__(None, None, None)
    assert len(calls) == 1  # one lookup for twenty waiting requests
    assert {p.name for p in found} == {found[0].name} and found[0] is not None
    assert app.state._auth_pending == {}  # nothing left behind


def test_a_key_about_to_expire_is_verified_again_in_the_background(settings_factory, monkeypatch):
    import time

    from indunet.auth import store as auth_store

    app, client, key = _app_with_key(settings_factory)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/latest", headers=headers).status_code == 200  # cached now
    store = auth_store.AuthStore(app.state.historian)
    digest = auth_store._sha256(key)
    principal, kid, _ = store._key_cache[digest]
    store._key_cache[digest] = (principal, kid, time.monotonic() + 0.5)  # about to expire
    for _ in range(5):  # served at once; one refresh however many requests see the entry
        assert client.get("/api/v1/latest", headers=headers).status_code == 200
    deadline = time.monotonic() + 5
    while store._key_cache[digest][2] < time.monotonic() + 2:  # refreshed in the background
        assert time.monotonic() < deadline, "the key was not verified again"
        time.sleep(0.02)
    # a key revoked by another process stops working once its cache entry runs out
    store.sql.execute("UPDATE auth_keys SET revoked_ms = 1 WHERE key_id = $1", [kid])
    store._key_cache[digest] = (principal, kid, time.monotonic() + 0.5)
    client.get("/api/v1/latest", headers=headers)  # triggers a refresh that finds it revoked
    time.sleep(0.7)
    assert client.get("/api/v1/latest", headers=headers).status_code == 401
    client.__exit__(None, None, None)
