"""The app as a whole: lifespan, health, OpenAPI, the home page, error mapping."""

from __future__ import annotations

from collections import Counter

from fastapi.testclient import TestClient

from indunet.api.app import create_app
from indunet.store import open_historian
from tests.api.conftest import TenantAdminKeys

T0 = 1_700_000_000_000


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["historian"] in ("duckdb", "postgresql")


def test_openapi_loads_with_unique_operation_ids(duck_client):
    r = duck_client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "indunet"
    ops = [op for path in spec["paths"].values() for op in path.values()]
    ids = Counter(op["operationId"] for op in ops)
    assert ids and all(n == 1 for n in ids.values()), ids
    for path in (
        "/api/v1/ingest",
        "/api/v1/series",
        "/api/v1/latest",
        "/api/v1/tags",
        "/api/v1/deadletters",
        "/health",
    ):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/api/v1/ingest"]
    assert {"get", "post"} <= set(spec["paths"]["/api/v1/tags"])
    assert "/" not in spec["paths"]  # the HTML home page is not an API operation


def test_docs_page(duck_client):
    r = duck_client.get("/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]


def test_plant_page_is_mounted_with_escaped_values(duck_client):
    """The pages themselves are tested in tests/web/test_pages.py; here: the app mounts them."""
    duck_client.post(
        "/api/v1/ingest",
        json=[
            {"tag": "s1/a/l/m/power", "ts": T0, "value": 3.14159},
            {"tag": "s1/a/l/m/note", "ts": T0, "value": "<script>alert(1)</script>"},
        ],
    )
    assert duck_client.get("/").status_code == 200  # the overview
    r = duck_client.get("/plant")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'data-machine="s1/a/l/m"' in html and "3.142" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert duck_client.get("/static/style.css").status_code == 200


def test_unknown_route_is_404(duck_client):
    assert duck_client.get("/api/v1/nothing").status_code == 404


def test_lifespan_opens_and_closes_its_own_historian(settings_factory):
    settings = settings_factory()
    with TestClient(create_app(settings)) as c:
        c.auth = TenantAdminKeys(c.app)  # an admin key of the default enterprise
        c.post("/api/v1/ingest", json={"tag": "s1/a/l/m/x", "ts": T0, "value": 1})
    # the DuckDB file was closed on shutdown: another owner can open it now
    h = open_historian(settings)
    try:
        assert h.count(settings.enterprise) == 1
    finally:
        h.close()
    with TestClient(create_app(settings)) as c:  # and a new app sees the data
        c.auth = TenantAdminKeys(c.app)
        assert c.get("/api/v1/latest").json()["rows"][0]["value"] == 1.0


def test_a_given_historian_is_left_open(settings_factory):
    settings = settings_factory()
    h = open_historian(settings)
    try:
        with TestClient(create_app(settings, h)) as c:
            c.auth = TenantAdminKeys(c.app)
            c.post("/api/v1/ingest", json={"tag": "s1/a/l/m/x", "ts": T0, "value": 1})
        assert h.count(settings.enterprise) == 1  # still usable after the app stopped
    finally:
        h.close()


def test_settings_choose_the_default_enterprise(make_client):
    c = make_client(enterprise="acme")
    c.post("/api/v1/ingest", json={"tag": "s1/a/l/m/x", "ts": T0, "value": 1})
    assert [
        t["tag"] for t in c.get("/api/v1/tags", params={"enterprise": "acme"}).json()["tags"]
    ] == ["s1/a/l/m/x"]
    assert c.get("/api/v1/tags", params={"enterprise": "demo"}).json()["tags"] == []


# ---------------------------------------------------------------- request ids and error bodies
def _is_error_body(r, status: int) -> dict:
    """Assert ``r`` is the one error shape with ``status``; return its body."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"detail", "status", "request_id"}, body
    assert body["status"] == status and body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


def test_request_id_is_kept_when_valid_and_made_when_not(duck_client):
    made = duck_client.get("/health").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    assert duck_client.get("/health").headers["x-request-id"] != made  # one per request
    mine = "lb-7f3a.2026:11:23_x"
    assert duck_client.get("/health", headers={"X-Request-ID": mine}).headers["x-request-id"] == (
        mine
    )
    for bad in ("x" * 129, "<script>alert(1)</script>", "a b", "-starts-with-dash", "ünï".encode()):
        got = duck_client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert got != bad and len(got) == 32, bad
    r = duck_client.get("/api/v1/nothing", headers={"X-Request-ID": mine})
    assert _is_error_body(r, 404)["request_id"] == mine


def test_every_error_has_the_same_shape(duck_client):
    assert _is_error_body(duck_client.get("/api/v1/nothing"), 404)["detail"] == "Not Found"
    _is_error_body(duck_client.post("/health"), 405)
    invalid = _is_error_body(duck_client.get("/api/v1/tags", params={"limit": 0}), 422)
    assert invalid["detail"][0]["loc"] == ["query", "limit"]  # the validation list, as before
    bad_json = duck_client.post(
        "/api/v1/ingest", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in _is_error_body(bad_json, 400)["detail"]
    data_error = duck_client.get("/api/v1/series", params={"tag": "s1/a/l/m/none"})
    assert "does not exist" in _is_error_body(data_error, 422)["detail"]
    anonymous = duck_client.get("/api/v1/tags", auth=None)
    assert _is_error_body(anonymous, 401)["detail"].startswith("sign in")
    assert anonymous.headers["www-authenticate"] == "Bearer"  # error headers are kept


def test_crashes_and_outages_answer_the_error_shape_without_internals(settings_factory):
    from indunet.errors import StorageUnavailable

    app = create_app(settings_factory())

    @app.get("/boom")  # unguarded test routes on a throwaway app
    def boom() -> None:
        raise RuntimeError("secret-dsn=postgres://u:p@db/x")

    @app.get("/outage")
    def outage() -> None:
        raise StorageUnavailable("the historian is unreachable; retry", detail="dsn=secret")

    with TestClient(app, raise_server_exceptions=False) as c:
        crash = c.get("/boom", headers={"X-Request-ID": "crash-1"})
        body = _is_error_body(crash, 500)
        assert body["request_id"] == "crash-1" and "secret" not in crash.text
        down = c.get("/outage")
        assert _is_error_body(down, 503)["detail"] == "the historian is unreachable; retry"
        assert "secret" not in down.text and down.headers["retry-after"] == "5"


# ---------------------------------------------------------------- readiness
def test_ready_checks_the_historian_and_mqtt(duck_client, monkeypatch):
    from types import SimpleNamespace

    from indunet.connect.mqtt import MqttIngestStats

    r = duck_client.get("/ready", auth=None)  # public, like /health
    assert r.status_code == 200 and r.json() == {
        "ready": True,
        "checks": {"historian": {"ok": True, "reason": None}},
    }
    stats = MqttIngestStats(connected=False)
    duck_client.app.state.mqtt = SimpleNamespace(stats=stats)
    r = duck_client.get("/ready", auth=None)
    body = _is_error_body(r, 503)
    assert body["detail"] == "not ready: mqtt: MQTT ingest is not connected to the broker"
    stats.connected = stats.subscribed = True
    assert duck_client.get("/ready").json()["checks"]["mqtt"] == {"ok": True, "reason": None}

    def down(*args, **kwargs):
        raise OSError("connection to db.internal:5432 refused")

    monkeypatch.setattr(duck_client.app.state.historian, "tags", down)
    r = duck_client.get("/ready", auth=None)
    assert "historian did not answer (OSError)" in _is_error_body(r, 503)["detail"]
    assert "db.internal" not in r.text
    assert duck_client.get("/health").status_code == 200  # liveness is not readiness


# ---------------------------------------------------------------- pagination
def _all_pages(client, url: str, key: str, **params) -> tuple[list, int]:
    """Follow ``Link: rel=next`` from ``url``; return every row and the number of pages."""
    rows, pages, r = [], 0, client.get(url, params=params)
    while True:
        assert r.status_code == 200, r.text
        rows += r.json()[key]
        pages += 1
        link = r.headers.get("link")
        if link is None:
            assert "x-next-offset" not in r.headers
            return rows, pages
        assert link.endswith('>; rel="next"') and link.startswith(f"<{url}?")
        r = client.get(link[1 : link.index(">")])


def test_list_endpoints_page_with_a_next_link(duck_client):
    tags = [f"s1/a/l/m{i}/power" for i in range(5)]
    bad = [{"tag": f"bad tag {i}", "ts": T0, "value": 1} for i in range(3)]
    r = duck_client.post(
        "/api/v1/ingest", json=[{"tag": t, "ts": T0, "value": 1.0} for t in tags] + bad
    )
    assert r.json()["stored"] == 5
    rows, pages = _all_pages(duck_client, "/api/v1/tags", "tags", limit=2)
    assert [t["tag"] for t in rows] == tags and pages == 3
    first = duck_client.get("/api/v1/tags", params={"limit": 2, "search": "m"})
    assert first.headers["x-next-offset"] == "2" and "search=m" in first.headers["link"]
    letters, pages = _all_pages(duck_client, "/api/v1/deadletters", "rows", limit=2)
    assert len(letters) == len({d["id"] for d in letters}) == 3 and pages == 2
    assert [d["id"] for d in letters] == sorted((d["id"] for d in letters), reverse=True)
    for i in range(3):
        duck_client.post("/api/v1/keys", json={"name": f"meter {i}", "device": True})
    keys, pages = _all_pages(duck_client, "/api/v1/keys", "keys", limit=2)
    assert len({k["key_id"] for k in keys}) == len(keys) >= 4 and pages >= 2
    one_page = duck_client.get("/api/v1/tags")  # the defaults: one page, no header
    assert len(one_page.json()["tags"]) == 5 and "link" not in one_page.headers


def test_pagination_parameters_are_bounded(duck_client):
    duck_client.post("/api/v1/ingest", json={"tag": "s1/a/l/m/x", "ts": T0, "value": 1})
    for params in ({"offset": -1}, {"offset": 10**9}, {"limit": 0}, {"offset": "x"}):
        _is_error_body(duck_client.get("/api/v1/tags", params=params), 422)
    past = duck_client.get("/api/v1/tags", params={"offset": 50})
    assert past.json()["tags"] == [] and "link" not in past.headers
    for url in ("/api/v1/users", "/api/v1/inventory", "/api/v1/orders", "/api/v1/shipments"):
        assert duck_client.get(url, params={"limit": 1, "offset": 0}).status_code == 200, url
        _is_error_body(duck_client.get(url, params={"limit": 10**7}), 422)
    history = duck_client.get("/api/v1/alarms/history", params={"limit": 1, "offset": 3})
    assert history.status_code == 200 and history.json()["events"] == []
