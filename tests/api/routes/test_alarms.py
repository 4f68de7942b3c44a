"""/api/v1/alarms and /alarm-rules on both backends, with and without a running service."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.plant.alarm_service import AlarmService
from tests.conftest import PG_URL

TEMP = "s1/press/l1/m1/temp_c"
OTHER = "s2/paint/l1/m9/temp_c"
AID = f"temp-high@{TEMP}"
RULES = [
    {
        "id": "temp-high",
        "kind": "high",
        "pattern": "+/+/+/+/temp_c",
        "limit": 80.0,
        "priority": "high",
        "max_shelve_s": 3600,
    },
]


@pytest.fixture(params=["duckdb", "postgresql"])
def client_factory(request: pytest.FixtureRequest, make_client):
    """Build a client on each backend with alarm rules in the plant config."""
    extra: dict = {}
    if request.param == "postgresql":
        extra = {"db": PG_URL, "pg_schema": request.getfixturevalue("pg_schema")}

    def make(alarms: list | None = None) -> TestClient:
        return make_client(plant={"alarms": RULES if alarms is None else alarms}, **extra)

    return make


def _write(client: TestClient, rows: list[tuple[str, int, float]]) -> None:
    table = pa.table(
        {
            "tag": [r[0] for r in rows],
            "ts": pa.array([r[1] for r in rows], pa.int64()),
            "value": pa.array([r[2] for r in rows], pa.float64()),
            "text": pa.array([None] * len(rows), pa.string()),
            "quality": pa.array([0] * len(rows), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    types = {r[0]: DataType.NUMBER for r in rows}
    client.app.state.historian.write(PointBatch("demo", table, types))


def _running(client: TestClient) -> tuple[AlarmService, int]:
    now = int(time.time() * 1000)
    _write(client, [(TEMP, now - 5000, 20.0), (OTHER, now - 5000, 20.0)])
    service = AlarmService(
        client.app.state.historian,
        client.app.state.settings,
        publish=client.app.state.events.publish_alarms,
    )
    client.app.state.alarms = service
    service.run_once(now - 4000)
    _write(client, [(TEMP, now - 3000, 95.0), (OTHER, now - 3000, 30.0)])
    service.run_once(now - 2000)
    return service, now


def test_alarms_list_filter_ack_shelve(client_factory) -> None:
    client = client_factory()
    service, now = _running(client)
    body = client.get("/api/v1/alarms").json()
    assert body["running"] is True and body["count"] == 1
    alarm = body["alarms"][0]
    assert (alarm["alarm_id"], alarm["state"], alarm["priority"], alarm["value"]) == (
        AID,
        "unack",
        "high",
        95.0,
    )
    assert client.get("/api/v1/alarms", params={"state": "acked"}).json()["count"] == 0
    assert client.get("/api/v1/alarms", params={"priority": "low"}).json()["count"] == 0
    assert client.get("/api/v1/alarms", params={"prefix": "s2"}).json()["count"] == 0
    assert client.get("/api/v1/alarms", params={"prefix": "s1/press"}).json()["count"] == 1
    assert client.get("/api/v1/alarms", params={"priority": "bogus"}).status_code == 422

    # bad input: empty name, unknown alarm, wrong state, shelve without until
    r = client.post(f"/api/v1/alarms/{AID}/acknowledge", json={"by": "  "})
    assert r.status_code == 422 and "by" in r.text
    r = client.post("/api/v1/alarms/nope@s1/press/l1/m1/temp_c/acknowledge", json={"by": "li"})
    assert r.status_code == 404 and "does not exist" in r.json()["detail"]
    r = client.post(f"/api/v1/alarms/temp-high@{OTHER}/acknowledge", json={"by": "li"})
    assert r.status_code == 409 and "normal" in r.json()["detail"]
    r = client.post(f"/api/v1/alarms/{AID}/shelve", json={"by": "li"})
    assert r.status_code == 422 and "until" in r.text

    r = client.post(f"/api/v1/alarms/{AID}/acknowledge", json={"by": "li", "comment": "seen"})
    assert r.status_code == 200, r.text
    assert [e["kind"] for e in r.json()["events"]] == ["acknowledged"]
    assert client.get("/api/v1/alarms").json()["alarms"][0]["acked_by"] == "li"
    r = client.post(f"/api/v1/alarms/{AID}/acknowledge", json={"by": "li"})
    assert r.status_code == 409 and "acked" in r.json()["detail"]

    too_far = now + 2 * 3600 * 1000
    r = client.post(f"/api/v1/alarms/{AID}/shelve", json={"by": "li", "until": too_far})
    assert r.status_code == 409 and "max_shelve_s" in r.json()["detail"]
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1000 + 600))
    r = client.post(
        f"/api/v1/alarms/{AID}/shelve", json={"by": "li", "until": until, "reason": "repair"}
    )
    assert r.status_code == 200, r.text
    assert client.get("/api/v1/alarms", params={"state": "shelved"}).json()["count"] == 1
    r = client.post(f"/api/v1/alarms/{AID}/unshelve", json={"by": "li"})
    kinds = [e["kind"] for e in r.json()["events"]]
    assert kinds == ["unshelved", "raised"]  # still above the limit: a new occurrence

    hist = client.get("/api/v1/alarms/history", params={"start": now - 60_000}).json()
    assert [e["kind"] for e in hist["events"]] == [
        "raised",
        "acknowledged",
        "shelved",
        "unshelved",
        "raised",
    ]
    assert [e["seq"] for e in hist["events"]] == [1, 2, 3, 4, 5]
    assert hist["events"][2]["comment"] == "repair"
    only = client.get("/api/v1/alarms/history", params={"alarm_id": "x@y", "start": 0}).json()
    assert only["count"] == 0
    bad = client.get("/api/v1/alarms/history", params={"start": now, "end": now - 1})
    assert bad.status_code == 422 and "'end'" in bad.json()["detail"]
    assert client.get("/api/v1/alarms/history", params={"start": "yesterday"}).status_code == 422

    status = client.get("/api/v1/alarms/status").json()
    assert status["running"] is True and status["service"]["rules"] == 1
    assert status["service"]["webhooks"]["pending"] == 0 and status["events"]["subscribers"] == 0

    # without a running service the routes use the stored snapshot
    service.stop()
    client.app.state.alarms = None
    body = client.get("/api/v1/alarms").json()
    assert body["running"] is False and body["alarms"][0]["state"] == "unack"
    r = client.post(f"/api/v1/alarms/{AID}/acknowledge", json={"by": "wang"})
    assert r.status_code == 200 and r.json()["events"][0]["seq"] == 6
    assert client.get("/api/v1/alarms").json()["alarms"][0]["acked_by"] == "wang"


def test_alarm_rules_crud(client_factory) -> None:
    client = client_factory()
    _write(client, [(TEMP, int(time.time() * 1000), 20.0)])
    rules = client.get("/api/v1/alarm-rules").json()["rules"]
    assert [(r["id"], r["source"], r["limit"]) for r in rules] == [("temp-high", "config", 80.0)]

    bad = [
        {"id": "typo", "kind": "high", "tag": "s1/press/l1/m1/tmp_c", "limit": 1},
        {"id": "k", "kind": "spike", "tag": TEMP},
    ]
    r = client.post("/api/v1/alarm-rules", json=bad)
    assert r.status_code == 422
    detail = r.json()["detail"]  # one error body everywhere: a sentence naming each problem
    assert "alarm rule 'k' field 'kind': unknown kind 'spike'" in detail
    assert "alarm rule 'typo' field 'tag': unknown tag" in detail
    r = client.post(
        "/api/v1/alarm-rules", json={"id": "temp-high", "kind": "low", "tag": TEMP, "limit": 3}
    )
    assert r.status_code == 422 and "indunet.toml" in r.text
    assert client.post("/api/v1/alarm-rules", json=[]).status_code == 422
    assert client.post("/api/v1/alarm-rules", content=b"{oops").status_code == 422

    r = client.post(
        "/api/v1/alarm-rules",
        json={"id": "cold", "kind": "low", "tag": TEMP, "limit": 5.0, "deadband": 1},
    )
    assert r.status_code == 201 and r.json() == {"stored": ["cold"]}
    listed = {r["id"]: r["source"] for r in client.get("/api/v1/alarm-rules").json()["rules"]}
    assert listed == {"temp-high": "config", "cold": "api"}
    assert client.delete("/api/v1/alarm-rules/temp-high").status_code == 422
    assert client.delete("/api/v1/alarm-rules/missing").status_code == 404
    assert client.delete("/api/v1/alarm-rules/cold").json() == {"deleted": "cold"}
    assert len(client.get("/api/v1/alarm-rules").json()["rules"]) == 1


def test_unknown_tag_in_config_rules_is_a_clear_error(client_factory) -> None:
    client = client_factory(
        alarms=[{"id": "ghost", "kind": "high", "tag": "s9/a/l/m/t", "limit": 1}]
    )
    r = client.get("/api/v1/alarms")
    assert r.status_code == 422
    assert "alarm rule 'ghost' field 'tag': unknown tag 's9/a/l/m/t'" in r.text


def test_anomaly_monitor_through_the_api_raise_to_acknowledge(client_factory) -> None:
    client = client_factory(alarms=[])
    now = int(time.time() * 1000) // 60_000 * 60_000
    n = 2160  # 36 h of 1-min history
    rng = np.random.default_rng(1)
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.5, n)
    _write(client, [(TEMP, now - (n - i) * 60_000, float(v)) for i, v in enumerate(values)])
    # bad input first: every problem names the monitor and field, nothing is stored
    r = client.post("/api/v1/monitors", json=[{"id": "t1", "tag": TEMP, "kind": "magic"}])
    assert r.status_code == 422 and "monitor 't1'" in r.json()["detail"]
    assert client.get("/api/v1/monitors").json()["count"] == 0
    r = client.post("/api/v1/monitors", json={"id": "t1", "tag": TEMP, "priority": "high"})
    assert r.status_code == 201 and r.json() == {"stored": ["t1"]}
    service = AlarmService(
        client.app.state.historian,
        client.app.state.settings,
        publish=client.app.state.events.publish_alarms,
    )
    client.app.state.alarms = service
    rules = {r["id"]: r["source"] for r in client.get("/api/v1/alarm-rules").json()["rules"]}
    assert rules == {"anomaly.t1": "monitor"}
    assert service.run_once(now + 1000) == []
    _write(client, [(TEMP, now + 30_000, 97.0)])
    assert [e["kind"] for e in service.run_once(now + 31_000)] == ["raised"]
    alarm_id = f"anomaly.t1@derived/anomaly/t1/{TEMP}"
    body = client.get("/api/v1/alarms").json()
    assert body["count"] == 1 and body["alarms"][0]["alarm_id"] == alarm_id
    assert body["alarms"][0]["priority"] == "high"
    listed = client.get("/api/v1/monitors").json()
    assert listed["monitors"][0]["origin"] == "api"
    evidence = listed["status"][0]["evidence"]
    assert evidence["tag"] == TEMP and evidence["value"] == 97.0 and evidence["z"] > 3
    r = client.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={"by": "li"})
    assert r.status_code == 200 and [e["kind"] for e in r.json()["events"]] == ["acknowledged"]
    assert client.get("/api/v1/alarms").json()["alarms"][0]["state"] == "acked"
    history = client.get(  # the spike is stamped up to 30 s ahead of the wall clock
        "/api/v1/alarms/history", params={"start": now - 60_000, "end": now + 120_000}
    ).json()
    raised = next(e for e in history["events"] if e["kind"] == "raised")
    assert "robust z" in raised["message"] and TEMP in raised["message"]
    # on demand over history: the same spike, no alarm raised by the scan
    scan = client.get(
        "/api/v1/monitors/t1/scan", params={"start": now - n * 60_000, "end": now + 60_000}
    )
    assert scan.status_code == 200, scan.text
    assert [a["ts_ms"] for a in scan.json()["results"][0]["anomalies"]] == [now + 30_000]
    assert client.get("/api/v1/monitors/nope/scan").status_code == 404
    r = client.get("/api/v1/monitors/t1/scan", params={"start": now, "end": now - 1})
    assert r.status_code == 422
    assert client.delete("/api/v1/monitors/t1").json() == {"deleted": "t1"}
    assert client.delete("/api/v1/monitors/t1").status_code == 404
