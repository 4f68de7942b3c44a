"""GET /metrics: Prometheus text format, bounded labels, ingest/MQTT/SSE figures, who may read."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from indunet import __version__
from indunet.auth.store import AuthStore
from indunet.connect.mqtt import MqttIngestStats

T0 = 1_700_000_000_000


def scrape(client) -> dict[str, list]:
    """Return the samples of /metrics by sample name."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    """Return the one sample of ``name`` whose labels include ``labels``."""
    found = [s.value for s in samples.get(name, []) if labels.items() <= s.labels.items()]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def test_build_info_and_http_requests_per_route_template(duck_client):
    duck_client.get("/api/v1/tags", params={"prefix": "s1"})
    duck_client.get("/api/v1/machines/s1/a/l/m")  # a path parameter: the template is the label
    for i in range(20):
        assert duck_client.get(f"/api/v1/no-such-thing-{i}").status_code == 404
    m = scrape(duck_client)
    assert value(m, "indunet_build_info", version=__version__) == 1
    assert value(m, "indunet_historian_info", backend="duckdb") == 1
    tags = value(m, "indunet_http_requests_total", method="GET", route="/api/v1/tags", status="200")
    assert tags == 1
    unmatched = value(m, "indunet_http_requests_total", route="unmatched", status="404")
    assert unmatched == 20  # one label set for every unknown path
    for i in range(5):  # any method token reaches the app; each is not a new label value
        duck_client.request(f"BREW{i}", "/api/v1/tags")
    m = scrape(duck_client)
    methods = {s.labels["method"] for s in m["indunet_http_requests_total"]}
    assert methods == {"GET", "other"}, methods
    routes = {s.labels["route"] for s in m["indunet_http_requests_total"]}
    assert not any("no-such-thing" in r for r in routes)
    assert not any("s1/a/l/m" in r for r in routes), routes
    tags_get = {"method": "GET", "route": "/api/v1/tags"}
    count = value(m, "indunet_http_request_duration_seconds_count", **tags_get)
    inf = value(m, "indunet_http_request_duration_seconds_bucket", **tags_get, le="+Inf")
    assert count == inf == 1


def test_ingest_counters_and_dead_letters(duck_client):
    before = scrape(duck_client)
    assert value(before, "indunet_dead_letters") == 0
    r = duck_client.post(
        "/api/v1/ingest",
        json=[
            {"tag": "s1/a/l/m/power", "ts": T0, "value": 1.5},
            {"tag": "s1/a/l/m/power", "ts": T0 + 1000, "value": 2.5},
            {"tag": "not a tag", "ts": T0, "value": 1},
        ],
    )
    assert r.status_code == 200 and r.json()["rejected"] == 1, r.text
    m = scrape(duck_client)
    assert value(m, "indunet_ingest_points_stored_total", source="http") == 2
    assert value(m, "indunet_ingest_points_rejected_total", source="http") == 1
    assert value(m, "indunet_dead_letters") == 1
    assert "indunet_mqtt_received_total" not in m  # no MQTT ingest in this process


def test_mqtt_lag_queue_depth_unacked_and_sse_subscribers(duck_client):
    stats = MqttIngestStats(
        received=120, stored_points=300, dead_letters=4, acked=100, connected=True, subscribed=True
    )
    pending = SimpleNamespace(count=20, since=time.monotonic() - 3.0)
    duck_client.app.state.mqtt = SimpleNamespace(stats=stats, _pending=pending)
    duck_client.app.state.events = SimpleNamespace(
        status=lambda: {"subscribers": 7, "published": 42, "dropped": 3}
    )
    m = scrape(duck_client)
    assert value(m, "indunet_ingest_points_stored_total", source="mqtt") == 300
    assert value(m, "indunet_ingest_points_rejected_total", source="mqtt") == 4
    assert value(m, "indunet_mqtt_received_total") == 120
    assert value(m, "indunet_mqtt_unacked_messages") == 20
    assert value(m, "indunet_mqtt_queue_depth_messages") == 20
    assert value(m, "indunet_mqtt_ingest_lag_seconds") >= 3.0
    assert value(m, "indunet_mqtt_connected") == 1
    assert value(m, "indunet_sse_subscribers") == 7
    assert value(m, "indunet_sse_events_published_total") == 42
    pending.count = 0  # nothing waits: no lag
    stats.connected = False
    m = scrape(duck_client)
    assert value(m, "indunet_mqtt_ingest_lag_seconds") == 0
    assert value(m, "indunet_mqtt_connected") == 0


@pytest.mark.parametrize(("who", "status"), [("viewer", 403), ("operator", 403), ("other", 403)])
def test_only_an_admin_of_this_server_reads_metrics(duck_client, who: str, status: int):
    store = AuthStore(duck_client.app.state.historian)
    now = int(time.time() * 1000)
    enterprise = duck_client.app.state.settings.enterprise
    tenant, role = ("globex", "admin") if who == "other" else (enterprise, who)
    secret = store.create_key(tenant, role, now_ms=now).secret
    r = duck_client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == status
    assert "indunet_" not in r.text and r.json()["status"] == status


def test_anonymous_metrics_is_refused(duck_client):
    """A scraper without a key gets 401 with a Bearer challenge (not the sign-in page's 303)."""
    r = duck_client.get("/metrics", auth=None, follow_redirects=False)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "indunet_" not in r.text
    page = duck_client.get("/alarms", auth=None, follow_redirects=False)
    assert page.status_code == 303  # pages still send people to sign in
