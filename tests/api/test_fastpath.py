"""GET /api/v1/latest from memory before the framework: same answers, same rules, same headers."""

from __future__ import annotations

import time

import pytest

from indunet.auth.store import AuthStore

TAG = "s1/a/l1/m1/power_kw"
LINE = {"prefix": "s1/a/l1"}


@pytest.fixture
def client(duck_client):
    t0 = int(time.time() * 1000) - 10_000
    duck_client.post("/api/v1/ingest", json=[{"tag": TAG, "ts": t0, "value": 1.5}])
    return duck_client


def answered(client) -> int:
    fast = client.app.latest_fast_path
    assert fast is not None, "the app has no LatestFastPath"
    return fast.answered


def test_the_fast_path_answers_what_the_app_answers(client):
    first = client.get("/api/v1/latest", params=LINE)  # the key is verified by the app
    assert first.status_code == 200
    before = answered(client)
    again = client.get("/api/v1/latest", params=LINE)
    assert answered(client) == before + 1  # from memory this time
    assert again.content == first.content
    for header in ("content-type", "content-security-policy", "cache-control", "x-request-id"):
        assert again.headers[header], header
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert again.headers["cache-control"] == "no-store"
    metrics = client.get("/metrics").text
    assert 'route="/api/v1/latest",status="200"} 2.0' in metrics  # counted like the app


def test_a_write_is_seen_at_once(client):
    client.get("/api/v1/latest", params=LINE)
    client.get("/api/v1/latest", params=LINE)
    t1 = int(time.time() * 1000)
    client.post("/api/v1/ingest", json=[{"tag": TAG, "ts": t1, "value": 7.25}])
    before = answered(client)
    rows = client.get("/api/v1/latest", params=LINE).json()["rows"]
    assert answered(client) == before + 1  # built from the in-memory index, no query
    assert [(r["tag"], r["ts"], r["value"]) for r in rows] == [(TAG, t1, 7.25)]
    want = client.app.state.historian.latest("demo", "s1/a/l1").to_pylist()
    assert [(r["tag"], r["ts"], r["value"]) for r in want] == [(TAG, t1, 7.25)]


def test_refusals_and_errors_still_come_from_the_app(client):
    client.get("/api/v1/latest", params=LINE)  # the default enterprise's key is cached now
    key = client.auth.key_for("demo")
    headers = {"Authorization": f"Bearer {key}"}
    before = answered(client)
    other = client.get("/api/v1/latest", params={**LINE, "enterprise": "acme"}, headers=headers)
    assert other.status_code == 403  # a key of demo may not read acme
    assert client.get("/api/v1/latest", params=LINE, headers={"Authorization": ""}).status_code in (
        401,
        403,
    )
    anonymous = client.get("/api/v1/latest", params=LINE, headers={"Authorization": "Basic x"})
    assert anonymous.status_code == 401
    bad = client.get("/api/v1/latest", params={"prefix": "s1/#"}, headers=headers)
    assert bad.status_code == 422
    assert answered(client) == before  # none of them answered from memory


def test_a_revoked_key_is_refused_at_once(client):
    client.get("/api/v1/latest", params=LINE)
    key = client.auth.key_for("demo")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/latest", params=LINE, headers=headers).status_code == 200
    AuthStore(client.app.state.historian).revoke_key(key.split("_")[1], now_ms=int(time.time()))
    assert client.get("/api/v1/latest", params=LINE, headers=headers).status_code == 401


def test_other_routes_and_methods_pass_through(client):
    client.get("/api/v1/latest", params=LINE)
    before = answered(client)
    assert client.get("/api/v1/tags").status_code == 200
    assert client.post("/api/v1/latest").status_code == 405
    assert client.get("/api/v1/latest/", follow_redirects=False).status_code in (307, 404)
    assert answered(client) == before


def test_without_the_answer_cache_every_answer_is_built_fresh_before_the_framework(client):
    """``ttl_s < 0``: nothing is kept, yet the fast path answers from the index, write by write."""
    client.app.state.latest_cache.ttl_s = -1.0
    client.get("/api/v1/latest", params=LINE)  # verifies the key, seeds the index
    before = answered(client)
    t = int(time.time() * 1000)
    for i in range(3):
        client.post("/api/v1/ingest", json=[{"tag": TAG, "ts": t + i, "value": i + 0.5}])
        rows = client.get("/api/v1/latest", params=LINE).json()["rows"]
        assert [(r["ts"], r["value"]) for r in rows] == [(t + i, i + 0.5)]
    assert answered(client) == before + 3
    key = client.auth.key_for("demo")
    other = client.get(
        "/api/v1/latest",
        params={**LINE, "enterprise": "acme"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert other.status_code == 403 and answered(client) == before + 3
