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


# --- before the framework: same headers, ids and metrics; hostile input goes the long way ---


def framework_answer(client, url="/api/v1/latest", **kwargs):
    """The same request answered by FastAPI and its middleware (the fast path switched off)."""
    fast, client.app.latest_fast_path = client.app.latest_fast_path, None
    try:
        return client.get(url, **kwargs)
    finally:
        client.app.latest_fast_path = fast


def test_headers_are_those_of_the_framework_in_name_order_and_value(client):
    client.get("/api/v1/latest", params=LINE)
    slow = framework_answer(client, params=LINE)
    before = answered(client)
    fast = client.get("/api/v1/latest", params=LINE)
    assert answered(client) == before + 1
    assert fast.content == slow.content
    assert [k for k, _ in fast.headers.raw] == [k for k, _ in slow.headers.raw]
    differ = {b"content-security-policy", b"x-request-id"}  # a fresh nonce and id per answer
    assert [h for h in fast.headers.raw if h[0] not in differ] == [
        h for h in slow.headers.raw if h[0] not in differ
    ]
    nonce = fast.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert len(nonce) >= 16
    assert fast.headers["content-security-policy"].replace(nonce, "N") == slow.headers[
        "content-security-policy"
    ].replace(slow.headers["content-security-policy"].split("'nonce-")[1].split("'")[0], "N")
    rid = fast.headers["x-request-id"]
    assert len(rid) == 32 and int(rid, 16) >= 0 and rid[12] == "4"  # a uuid4's hex, as the app


def test_a_callers_request_id_is_kept_and_a_bad_one_replaced(client):
    client.get("/api/v1/latest", params=LINE)
    before = answered(client)
    kept = client.get("/api/v1/latest", params=LINE, headers={"X-Request-ID": "trace-1:a.b"})
    assert kept.headers["x-request-id"] == "trace-1:a.b"
    for bad in (b"has space", b"-leading", b"x" * 200, "ünïcode".encode("latin-1")):
        got = client.get("/api/v1/latest", params=LINE, headers={"X-Request-ID": bad})
        assert got.status_code == 200
        assert got.headers["x-request-id"].encode() != bad
        assert len(got.headers["x-request-id"]) == 32
    two = client.get(
        "/api/v1/latest",
        params=LINE,
        headers=[("X-Request-ID", "first"), ("X-Request-ID", "second")],
    )
    assert two.headers.get_list("x-request-id") == ["first"]  # the first, as the app's
    assert answered(client) == before + 6


def test_every_fast_answer_is_counted_and_timed_under_the_route(client):
    client.get("/api/v1/latest", params=LINE)
    before = answered(client)
    for _ in range(5):
        client.get("/api/v1/latest", params=LINE)
    assert answered(client) == before + 5
    text = client.get("/metrics").text
    assert 'indunet_http_requests_total{method="GET",route="/api/v1/latest",status="200"} 6.0' in (
        text
    )
    assert (
        'indunet_http_request_duration_seconds_count{method="GET",route="/api/v1/latest"} 6.0'
        in (text)
    )


def test_a_request_with_a_body_goes_to_the_app(client):
    client.get("/api/v1/latest", params=LINE)
    before = answered(client)
    limit = client.app.state.settings.http_max_body_bytes
    too_big = client.request(
        "GET", "/api/v1/latest", params=LINE, headers={"Content-Length": str(limit + 1)}
    )
    assert too_big.status_code == 413  # refused by the body limit, as before
    with_body = client.request("GET", "/api/v1/latest", params=LINE, content=b"{}")
    assert with_body.status_code == 200
    chunked = client.request(
        "GET", "/api/v1/latest", params=LINE, content=iter([b"a", b"b"])
    )  # Transfer-Encoding: chunked
    assert chunked.status_code == 200
    assert answered(client) == before  # none of them from memory
    empty = client.request("GET", "/api/v1/latest", params=LINE, headers={"Content-Length": "0"})
    assert empty.status_code == 200 and answered(client) == before + 1


@pytest.mark.parametrize(
    "query",
    [
        b"prefix=s1/a/l1&prefix=s1",  # duplicates: the last wins, as Starlette's query_params
        b"prefix=s1%2Fa%2Fl1",
        b"prefix=s1/a/l1&unknown=1&&&=x",
        b"prefix=",
        b"prefix=s1/a/l1&enterprise=",
        b"%ff%fe=1&prefix=s1",
        b"prefix=s1/a/l1#frag",
    ],
)
def test_odd_query_strings_answer_what_the_app_answers(client, query):
    client.get("/api/v1/latest", params=LINE)
    url = "/api/v1/latest?" + query.decode()
    want = framework_answer(client, url)
    got = client.get(url)
    assert got.status_code == want.status_code
    assert got.content == want.content


@pytest.mark.parametrize(
    "query",
    ["prefix=s1/%23", "prefix=" + "a/" * 5000, "enterprise=acme", "prefix=s1/+/l1"],
)
def test_refused_or_invalid_queries_are_answered_by_the_app(client, query):
    client.get("/api/v1/latest", params=LINE)
    key = client.auth.key_for("demo")  # acme's data with demo's key: refused
    before = answered(client)
    got = client.get("/api/v1/latest?" + query, headers={"Authorization": f"Bearer {key}"})
    assert got.status_code in (403, 422)
    assert got.json()["request_id"] == got.headers["x-request-id"]  # the app's error body
    assert answered(client) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "A" * 20_000},
        {"Authorization": "Bearer ink_nope_nope"},
        {"Authorization": "bearer"},
        {"Authorization": "Token abc"},
        {"X-Device-Key": "idk_bad_bad"},
        {"X-Device-Key": ""},
        {"Authorization": "Bearer \u00e9\u00e8".encode("latin-1")},
    ],
)
def test_bad_keys_are_refused_by_the_app(client, headers):
    client.get("/api/v1/latest", params=LINE)
    before = answered(client)
    got = client.get("/api/v1/latest", params=LINE, headers=headers)
    assert got.status_code in (401, 403)
    assert answered(client) == before


def test_huge_and_many_headers_are_still_answered_the_same(client):
    first = client.get("/api/v1/latest", params=LINE)
    before = answered(client)
    noise = [(f"x-noise-{i}", "v" * 100) for i in range(200)] + [("cookie", "c" * 8000)]
    key = client.auth.key_for("demo")
    got = client.get(
        "/api/v1/latest", params=LINE, headers=[*noise, ("Authorization", f"Bearer {key}")]
    )
    assert got.status_code == 200 and got.content == first.content
    assert answered(client) == before + 1


def test_a_key_in_authorization_wins_over_a_device_key(client):
    client.get("/api/v1/latest", params=LINE)
    key = client.auth.key_for("demo")
    before = answered(client)
    got = client.get(
        "/api/v1/latest",
        params=LINE,
        headers=[("X-Device-Key", "idk_bad_bad"), ("Authorization", f"Bearer {key}")],
    )
    assert got.status_code == 200 and answered(client) == before + 1


def test_a_key_near_its_cache_end_is_answered_and_verified_again(client):
    client.get("/api/v1/latest", params=LINE)
    key = client.auth.key_for("demo")
    store = client.app.state.auth_store
    from indunet.auth import store as auth_store_module

    digest = auth_store_module._sha256(key)
    principal, key_id, _ = store._key_cache[digest]
    store._key_cache[digest] = (principal, key_id, time.monotonic() + 0.5)  # about to run out
    before = answered(client)
    assert client.get("/api/v1/latest", params=LINE).status_code == 200
    assert answered(client) == before + 1  # answered from memory all the same
    deadline = time.monotonic() + 5
    while store._key_cache[digest][2] < time.monotonic() + 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # waits for the background check (an event we poll, no fixed sleep)
    assert store._key_cache[digest][2] >= time.monotonic() + 2  # verified again: renewed


def test_a_key_revoked_elsewhere_is_forgotten_by_the_refresh(client):
    client.get("/api/v1/latest", params=LINE)
    key = client.auth.key_for("demo")
    store = client.app.state.auth_store
    from indunet.auth import store as auth_store_module

    digest = auth_store_module._sha256(key)
    principal, key_id, _ = store._key_cache[digest]
    store.sql.execute("UPDATE auth_keys SET revoked_ms = 1 WHERE key_id = $1", [key_id])
    store._key_cache[digest] = (principal, key_id, time.monotonic() + 0.5)
    headers = {"Authorization": f"Bearer {key}"}
    client.get("/api/v1/latest", params=LINE, headers=headers)  # still trusted, checked again
    deadline = time.monotonic() + 5
    while digest in store._key_cache and time.monotonic() < deadline:
        time.sleep(0.01)
    assert digest not in store._key_cache
    assert client.get("/api/v1/latest", params=LINE, headers=headers).status_code == 401


def test_with_fastapi_telemetry_on_every_request_goes_the_framework_way(client, monkeypatch):
    client.get("/api/v1/latest", params=LINE)
    app = client.app
    monkeypatch.setattr(app._native_telemetry, "enabled", lambda: True)
    app._telemetry_off_until = 0.0
    before = answered(client)
    assert client.get("/api/v1/latest", params=LINE).status_code == 200
    assert answered(client) == before


def test_display_principals_are_refused_by_the_app(client):
    from indunet.auth.model import Grant, Principal, PrincipalKind, Role

    client.get("/api/v1/latest", params=LINE)
    key = client.auth.key_for("demo")
    store = client.app.state.auth_store
    from indunet.auth import store as auth_store_module

    digest = auth_store_module._sha256(key)
    _, key_id, until = store._key_cache[digest]
    display = Principal(PrincipalKind.display, "wall", (Grant("demo", Role.viewer),), home="demo")
    store._key_cache[digest] = (display, key_id, until)
    before = answered(client)
    client.get("/api/v1/latest", params=LINE, headers={"Authorization": f"Bearer {key}"})
    assert answered(client) == before
