"""Two tenants on one server cannot reach across: the F1 scenario of issue 15, step by step.

demo's admin (Dana) tries to pull globex's admin (Gabe) into demo, to learn which user names
exist elsewhere, and to disable him; Gabe's default tenant must never move, and he joins demo
only by accepting an invitation himself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indunet.api.app import create_app
from indunet.auth.store import AuthStore
from indunet.config import load_settings
from indunet.errors import DataError

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A server of enterprise demo with a second tenant globex, one admin each (CLI-made)."""
    tmp: Path = tmp_path_factory.mktemp("tenants")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("INDUNET_CONFIG", raising=False)
        settings = load_settings(data_dir=tmp / "data", enterprise="demo")
    app = create_app(settings)
    with TestClient(app):
        store = AuthStore(app.state.historian)
        for name, enterprise in (("dana", "demo"), ("gabe", "globex")):
            store.add_user(name, PASSWORD, now_ms=0)
            store.grant(name, enterprise, "admin")
        yield {"app": app, "store": store}


def session(app, name: str) -> TestClient:
    """A browser of ``name``: signed in, sending the CSRF token on every request."""
    client = TestClient(app)
    r = client.post("/api/v1/auth/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def same_error(a, b) -> bool:
    """Two error answers that differ only in their request ids."""
    x, y = a.json(), b.json()
    x.pop("request_id"), y.pop("request_id")
    return a.status_code == b.status_code and x == y


def test_an_admin_cannot_pull_another_tenants_user_in_or_learn_of_him(server) -> None:
    app, store = server["app"], server["store"]
    dana, gabe = session(app, "dana"), session(app, "gabe")
    # the attack of F1: grant globex's admin a role in demo → refused like an unknown name
    grab = dana.put("/api/v1/users/gabe/grant", json={"role": "viewer"})
    nobody = dana.put("/api/v1/users/nobody-at-all/grant", json={"role": "viewer"})
    assert grab.status_code == 404 and same_error(grab, nobody)
    assert store.grants("gabe")[0].enterprise == "globex" and len(store.grants("gabe")) == 1
    # disabling or revoking him: the same answer as for a name that does not exist
    for method, url in (("POST", "/disable"), ("DELETE", "/grant")):
        a = dana.request(method, f"/api/v1/users/gabe{url}")
        b = dana.request(method, f"/api/v1/users/nobody-at-all{url}")
        assert a.status_code == 404 and same_error(a, b), url
    assert store.check_password("gabe", PASSWORD)
    # creating a user of that name tells nothing either: names made here are NAME@demo
    made = dana.post("/api/v1/users", json={"name": "gabe", "password": PASSWORD})
    fresh = dana.post("/api/v1/users", json={"name": "zed", "password": PASSWORD})
    assert made.status_code == fresh.status_code == 201
    assert made.json()["name"] == "gabe@demo" and fresh.json()["name"] == "zed@demo"
    assert (
        dana.post("/api/v1/users", json={"name": "x@globex", "password": PASSWORD}).status_code
        == 422
    )
    again = dana.post("/api/v1/users", json={"name": "GABE", "password": PASSWORD})
    assert again.status_code == 409  # GABE@demo vs gabe@demo: names are unique in any case
    # his default tenant stays globex: what he writes without ?enterprise= never lands in demo
    assert gabe.get("/api/v1/auth/me").json()["default_enterprise"] == "globex"
    point = {"tag": "s/a/l/m/gabe_power", "ts": int(time.time() * 1000) - 1000, "value": 1.5}
    assert gabe.post("/api/v1/ingest", json=point).status_code == 200
    assert "gabe_power" not in dana.get("/api/v1/latest").text
    assert "gabe_power" in gabe.get("/api/v1/latest").text
    # globex's listing of its users shows no trace of demo, demo's shows no gabe
    assert "demo" not in gabe.get("/api/v1/users").text
    assert '"gabe"' not in dana.get("/api/v1/users").text


def test_an_invitation_joins_a_user_only_when_he_accepts(server) -> None:
    app = server["app"]
    dana, gabe = session(app, "dana"), session(app, "gabe")
    inv = dana.post("/api/v1/invitations", json={"user": "gabe", "role": "operator"})
    ghost = dana.post("/api/v1/invitations", json={"user": "no-such-user", "role": "operator"})
    assert inv.status_code == ghost.status_code == 201
    assert set(inv.json()) == set(ghost.json())  # same answer whether the name exists or not
    inv_id = inv.json()["invitation_id"]
    assert "demo" not in gabe.get("/api/v1/auth/me").json()["enterprises"]  # nothing yet
    # nobody else can accept it: not dana, not an API key of globex
    assert dana.post(f"/api/v1/auth/invitations/{inv_id}/accept").status_code == 404
    key = server["store"].create_key("globex", "admin", now_ms=0).secret
    bearer = {"Authorization": f"Bearer {key}"}
    r = TestClient(app).post(f"/api/v1/auth/invitations/{inv_id}/accept", headers=bearer)
    assert r.status_code == 404
    # globex's admin does not see demo's invitation in his tenant's list
    assert inv_id not in gabe.get("/api/v1/invitations").text
    mine = gabe.get("/api/v1/auth/invitations").json()["invitations"]
    assert [i["invitation_id"] for i in mine] == [inv_id] and mine[0]["enterprise"] == "demo"
    ok = gabe.post(f"/api/v1/auth/invitations/{inv_id}/accept")
    assert ok.status_code == 200 and ok.json()["enterprise"] == "demo"
    me = gabe.get("/api/v1/auth/me").json()
    assert me["enterprises"] == ["demo", "globex"] and me["default_enterprise"] == "globex"
    assert gabe.post(f"/api/v1/auth/invitations/{inv_id}/accept").status_code == 404  # once
    # each admin sees only the grant in their own tenant
    demo_view = {u["name"]: u for u in dana.get("/api/v1/users").json()["users"]}
    assert [g["enterprise"] for g in demo_view["gabe"]["grants"]] == ["demo"]
    globex_view = gabe.get("/api/v1/users").text
    assert "demo" not in globex_view
    # demo can now disable him in demo only: his globex account keeps working
    assert dana.post("/api/v1/users/gabe/disable").json()["disabled"] is True
    assert gabe.get("/api/v1/auth/me").json()["enterprises"] == ["globex"]
    assert gabe.get("/api/v1/latest", params={"enterprise": "demo"}).status_code == 403
    assert gabe.get("/api/v1/latest").status_code == 200


def test_password_policy_and_case_insensitive_names(server) -> None:
    store = server["store"]
    dana = session(server["app"], "dana")
    for weak in ("aaaaaaaaaa", "password123", "shortpw", "carol@demo", "Carol2024", "1234567890"):
        r = dana.post("/api/v1/users", json={"name": "carol", "password": weak})
        assert r.status_code == 422, (weak, r.text)
        assert weak not in r.text  # the refused password is never echoed
    with pytest.raises(DataError, match="already exists"):
        store.add_user("DANA", PASSWORD, now_ms=0)
    with pytest.raises(DataError, match="letter case"):
        store.grant("dana", "DEMO", "viewer")
    with pytest.raises(DataError, match="letter case"):
        store.create_key("Globex", "viewer", now_ms=0)
