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
