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


def test_home_page_is_the_plant_page_with_escaped_values(duck_client):
    """The pages themselves are tested in tests/web/test_pages.py; here: the app mounts them."""
    duck_client.post(
        "/api/v1/ingest",
        json=[
            {"tag": "s1/a/l/m/power", "ts": T0, "value": 3.14159},
            {"tag": "s1/a/l/m/note", "ts": T0, "value": "<script>alert(1)</script>"},
        ],
    )
    r = duck_client.get("/")
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
