"""GET /api/v1/condition/rul on both backends: estimates, one machine, tenancy, and the RUL
alarm acknowledged over HTTP through the running alarm service."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from indunet.condition.rul_service import RulService, RulStore
from indunet.plant.alarm_service import AlarmService
from tests.condition import rul_plant as fleet
from tests.conftest import PG_URL

E = "demo"
ALARM = f"rul:{fleet.CLASS}@derived/rul/{fleet.CLASS}/{fleet.WORN}"
THEIRS = "s9/yard/l1/crane7"  # a machine of tenant globex


@pytest.fixture(params=["duckdb", "postgresql"])
def client(request: pytest.FixtureRequest, make_client, tmp_path) -> TestClient:
    extra: dict = {}
    if request.param == "postgresql":
        extra = {"db": PG_URL, "pg_schema": request.getfixturevalue("pg_schema")}
    runs = fleet.write_runs(tmp_path / "runs")
    return make_client(enterprise=E, plant=fleet.plant(runs), **extra)


def _estimate(client: TestClient) -> None:
    app = client.app
    historian, settings = app.state.historian, app.state.settings
    batch, now = fleet.sensor_batch(E)
    historian.write(batch)
    alarms = AlarmService(historian, settings)
    app.state.alarms = alarms
    RulService(historian, settings, alarms=alarms).run_once(now)
    RulStore(historian).put(  # another tenant's machine, worn out
        [
            {
                "enterprise": "globex",
                "machine": THEIRS,
                "asset_class": "cranes",
                "ts_ms": now,
                "status": "ok",
                "rul": 3.0,
                "low": 1.0,
                "high": 9.0,
                "cap": 125,
                "horizon": 20.0,
            }
        ]
    )


def test_rul_estimates_and_one_machine(client: TestClient) -> None:
    _estimate(client)
    body = client.get("/api/v1/condition/rul").json()
    assert body["enterprise"] == E
    machines = [r["machine"] for r in body["estimates"]]
    assert machines[:2] == [fleet.WORN, fleet.HEALTHY] and len(machines) == 4
    worn = body["estimates"][0]
    assert worn["status"] == "ok" and worn["alarm"] is True
    assert worn["low"] <= worn["rul"] <= worn["high"] and worn["band_low"] == 0.05
    one = client.get("/api/v1/condition/rul", params={"machine": fleet.YOUNG}).json()
    assert [r["status"] for r in one["estimates"]] == ["insufficient_history"]
    assert one["estimates"][0]["alarm"] is False
    r = client.get("/api/v1/condition/rul", params={"machine": "s1/hangar/l1/none"})
    assert r.status_code == 404 and "no RUL estimate" in r.json()["detail"]


def test_a_tenant_sees_only_its_own_machines(client: TestClient) -> None:
    _estimate(client)
    # demo asking for globex's machine: the answer for a machine that does not exist
    theirs = client.get("/api/v1/condition/rul", params={"machine": THEIRS})
    nobody = client.get("/api/v1/condition/rul", params={"machine": "s9/yard/l1/nobody"})
    assert theirs.status_code == nobody.status_code == 404
    assert theirs.json()["detail"].replace(THEIRS, "?") == nobody.json()["detail"].replace(
        "s9/yard/l1/nobody", "?"
    )
    assert THEIRS not in client.get("/api/v1/condition/rul").text
    # globex's key: its own machine only; demo's estimates are refused
    globex = {"Authorization": f"Bearer {client.auth.key_for('globex')}"}
    own = client.get("/api/v1/condition/rul", params={"enterprise": "globex"}, headers=globex)
    assert [r["machine"] for r in own.json()["estimates"]] == [THEIRS]
    r = client.get("/api/v1/condition/rul", params={"enterprise": E}, headers=globex)
    assert r.status_code == 403
    assert fleet.WORN not in r.text


def test_rul_alarm_acknowledged_over_http(client: TestClient) -> None:
    _estimate(client)
    alarms = client.get("/api/v1/alarms").json()["alarms"]
    assert [(a["alarm_id"], a["state"]) for a in alarms] == [(ALARM, "unack")]
    r = client.post(f"/api/v1/alarms/{ALARM}/acknowledge", json={"by": "planner"})
    assert r.status_code == 200, r.text
    assert [e["kind"] for e in r.json()["events"]] == ["acknowledged"]
    assert client.get("/api/v1/alarms").json()["alarms"][0]["state"] == "acked"
