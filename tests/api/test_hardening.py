"""A server exposed to a plant network (issue 15, F3-F5 and the smaller findings).

Forwarded addresses only from trusted proxies, one body limit in front of every route, browser
security headers on every answer, offline API docs, 405 with a full Allow, one error body.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from indunet.api.app import create_app
from indunet.auth.store import AuthStore
from indunet.config import load_settings

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """An app behind a reverse proxy at 10.0.0.5 (and the 192.168.9.0/24 proxies)."""
    tmp: Path = tmp_path_factory.mktemp("hardening")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("INDUNET_CONFIG", raising=False)
        settings = load_settings(
            data_dir=tmp / "data",
            enterprise="acme",
            auth={
                "trusted_proxies": ["10.0.0.5", "192.168.9.0/24"],
                "login_failures_per_ip": 3,
                "login_failures_per_user": 1000,
            },
        )
    app = create_app(settings)
    with TestClient(app) as client:
        store = AuthStore(app.state.historian)
        key = store.create_key("acme", "admin", now_ms=0).secret
        client.headers["Authorization"] = f"Bearer {key}"
        yield {"app": app, "client": client, "store": store}


def _logins(app, peer: str, forwarded: list[str]) -> list[int]:
    """Wrong-password logins from ``peer``, each with its own X-Forwarded-For."""
    c = TestClient(app, client=(peer, 40000))
    return [
        c.post(
            "/api/v1/auth/login",
            json={"name": "nobody", "password": "wrong password"},
            headers={"X-Forwarded-For": f},
        ).status_code
        for f in forwarded
    ]


def test_forwarded_for_counts_only_from_trusted_proxies(server) -> None:
    app = server["app"]
    # F3: an attacker (not a proxy) varying X-Forwarded-For is still one address: locked out
    codes = _logins(app, "203.0.113.7", [f"198.51.100.{i}" for i in range(6)])
    assert codes[:3] == [401] * 3 and set(codes[3:]) == {429}
    # behind the trusted proxy each client is its own address (the right-most untrusted hop)
    assert _logins(app, "10.0.0.5", ["198.51.100.50", "198.51.100.51"]) == [401, 401]
    chain = ["6.6.6.6, 198.51.100.60, 192.168.9.3"] * 4  # a forged left part does not help
    assert _logins(app, "10.0.0.5", chain)[-1] == 429
    assert _logins(app, "10.0.0.5", ["198.51.100.61"]) == [401]


def test_every_body_has_one_limit_and_is_never_echoed(server) -> None:
    client = server["client"]
    big = b'{"name": "x", "password": "' + b"A" * 3_000_000 + b'"}'
    started = time.perf_counter()
    r = client.post("/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 300 and b"AAAA" not in r.content
    assert r.json()["status"] == 413 and r.json()["request_id"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        yield b'{"name": "x", "password": "'
        for _ in range(40):
            yield b"B" * 100_000

    r = client.post(
        "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and b"BBBB" not in r.content
    assert time.perf_counter() - started < 10  # not parsed for seconds (F4 took 9-12 s)
    # a 4xx about a body never holds the body: validation errors drop the input
    secret = "hunter2-secret-value"
    r = client.post("/api/v1/users", json={"name": "x", "password": 12, "role": secret})
    assert r.status_code == 422 and secret not in r.text
    r = client.post("/api/v1/keys", json={"name": ["not", "a", secret]})
    assert r.status_code == 422 and secret not in r.text
    # bulk routes keep their larger limit
    rows = [{"tag": "s/a/l/m/t", "ts": 1_700_000_000_000 + i, "value": 1.0} for i in range(30_000)]
    assert client.post("/api/v1/ingest", json=rows).status_code == 200


HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def _check_headers(r) -> list[str]:
    wrong = [f"{k}: {r.headers.get(k)}" for k, v in HEADERS.items() if r.headers.get(k) != v]
    policy = r.headers.get("content-security-policy", "")
    if "frame-ancestors 'none'" not in policy or "'unsafe-inline'" in policy.split("style-src")[0]:
        wrong.append(f"csp: {policy}")
    return wrong


def test_security_headers_on_every_page_and_answer(server) -> None:
    app, client = server["app"], server["client"]
    wrong = []
    for rc in iter_route_contexts(app.routes):
        if rc.path is None or "GET" not in (rc.methods or ()) or "{" in rc.path:
            continue
        if rc.path == "/api/v1/events":
            continue  # an endless stream; its headers come from the same middleware
        r = client.get(rc.path, follow_redirects=False)
        wrong += [f"{rc.path}: {w}" for w in _check_headers(r)]
        if r.headers.get("content-type", "").startswith("text/html"):
            # every inline script carries this answer's nonce (JSON data blocks do not run)
            nonce = re.search(r"'nonce-([^']+)'", r.headers["content-security-policy"])
            for tag in re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", r.text):
                if "application/json" not in tag and (nonce is None or nonce.group(1) not in tag):
                    wrong.append(f"{rc.path}: inline script without the nonce: {tag}")
            assert 'target="_blank"' not in r.text or "noopener" in r.text
    for anonymous in ("/login", "/api/v1/auth/me", "/nope", "/static/style.css"):
        wrong += [f"{anonymous}: {w}" for w in _check_headers(TestClient(app).get(anonymous))]
    assert not wrong, "\n".join(wrong)
    login = TestClient(app).get("/login")
    a, b = (TestClient(app).get("/login").headers["content-security-policy"] for _ in range(2))
    assert a != b and login.status_code == 200  # a fresh nonce per answer


def test_secrets_are_not_cached(server) -> None:
    client = server["client"]
    r = client.post("/api/v1/keys", json={"name": "meter"})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    assert client.get("/api/v1/auth/me").headers["cache-control"] == "no-store"


def test_api_docs_work_offline(server) -> None:
    """/docs and /redoc load only this server's files: no CDN, nothing from the internet."""
    client = TestClient(server["app"])
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text), r.text
        assets = re.findall(r"""(?:src|href)="(/static/[^"]+)""", r.text)
        assert assets
        for asset in assets:
            got = client.get(asset)
            assert got.status_code == 200 and len(got.content) > 100, asset
        assert "<script>" not in r.text  # no inline script: nothing for the CSP to allow
    assert client.get("/openapi.json").json()["info"]["title"] == "indunet"


def test_undeclared_methods_get_405_with_every_allowed_method(server) -> None:
    client = server["client"]
    for method, url, allow in (
        ("PATCH", "/api/v1/keys", "GET, HEAD, POST"),
        ("GET", "/api/v1/dock/runs", "POST"),
        ("PUT", "/api/v1/users", "GET, HEAD, POST"),
        ("DELETE", "/api/v1/dock/requests", "GET, HEAD, POST"),
    ):
        r = client.request(method, url)
        assert r.status_code == 405 and r.headers["allow"] == allow, (url, r.headers)
        assert set(r.json()) == {"detail", "status", "request_id"}


def test_one_error_body_for_alarm_rules(server) -> None:
    r = server["client"].post("/api/v1/alarm-rules", json={"id": "k", "kind": "spike"})
    assert r.status_code == 422 and isinstance(r.json()["detail"], str)
    assert set(r.json()) == {"detail", "status", "request_id"}
