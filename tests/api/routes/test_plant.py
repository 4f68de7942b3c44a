"""/api/v1 plant routes: machines, states, stop reasons, stops, OEE and energy."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from indunet.plant.store import PlantStore
from tests.plant.plant_data import M1, M2, plant, write
from tests.plant.test_report import at, tl

H = 3_600_000


@pytest.fixture
def plant_client(make_client):
    """A client on the two-machine line; m1 and m2 have stored timelines, m1 counts and power."""
    c = make_client(plant=plant(shifts=True))
    h = c.app.state.historian
    store = PlantStore(h, c.app.state.settings.plant)
    store.save_segments("demo", M1, tl((6, 9, 2), (9, 10, 1), (10, 16, 2)))
    store.save_segments("demo", M2, tl((6, 8, 0), (8, 14, 2)))
    write(h, f"{M1}/parts_total", [at(6), at(9), at(14), at(16)], [0, 1000, 2300, 3000])
    write(h, f"{M1}/power_kw", at(6) + np.arange(0, 3600_000, 1000), np.full(3600, 8.0))
    return c


def test_machines_list_and_put(plant_client):
    c = plant_client
    r = c.get("/api/v1/machines")
    assert r.status_code == 200
    ms = {m["id"]: m for m in r.json()["machines"]}
    assert set(ms) == {M1, M2}
    assert ms[M1]["source"] == "file" and ms[M1]["state"] == "running"
    assert ms[M1]["since_ms"] == at(10) and ms[M1]["live"] is False
    doc = {"power_tag": "power_kw", "thresholds": {"off_below": 0.5, "running_above": 2.0}}
    r = c.put("/api/v1/machines/s1/press/l2/m9", json=doc)
    assert r.status_code == 200, r.text
    assert r.json()["machine"]["id"] == "s1/press/l2/m9"
    listed = c.get("/api/v1/machines", params={"prefix": "s1/press/l2"}).json()["machines"]
    assert [(m["id"], m["source"]) for m in listed] == [("s1/press/l2/m9", "api")]
    # replace a file machine through the API: the stored doc wins
    r = c.put(f"/api/v1/machines/{M1}", json={**doc, "power_tag": "spindle_kw"})
    assert r.status_code == 200
    ms = {m["id"]: m for m in c.get("/api/v1/machines").json()["machines"]}
    assert ms[M1]["config"]["power_tag"] == "spindle_kw" and ms[M1]["source"] == "api"


@pytest.mark.parametrize(
    ("path", "body", "status", "text"),
    [
        (
            "s1/press/l1/m3",
            {"thresholds": {"off_below": 5, "running_above": 1}},
            422,
            "off_below (5.0) must be below running_above",
        ),
        ("s1/press/l1/m3", {"power_unit": "MW"}, 422, "field power_unit"),
        ("s1/press/l1/m3", {"id": "s1/press/l1/m4"}, 422, "does not match the path"),
        ("s1/press/l1/m3", {"colour": "red"}, 422, "field colour"),
        ("s9/press/l1/m3", {"power_tag": "p"}, 422, "site 's9' has no [plant.sites.s9] table"),
        ("s1/press/l1/m3", {}, 422, "missing field power_tag or meter_tag"),
        ("s1/press/l1/m3", {"power_tag": "i", "power_unit": "A"}, 422, "missing field volts"),
        ("s1/press/m3", {}, 422, "field id"),
        ("s1/press/l1/m3", [1, 2], 422, "must be a JSON object"),
    ],
)
def test_bad_machine_docs_are_refused(plant_client, path, body, status, text):
    r = plant_client.put(f"/api/v1/machines/{path}", json=body)
    assert r.status_code == status
    assert text in r.json()["detail"]


def test_put_machine_refuses_broken_json(plant_client):
    r = plant_client.put("/api/v1/machines/s1/press/l1/m3", content=b"{nope")
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


def test_put_machine_refuses_a_body_over_the_limit(make_client):
    c = make_client(ingest_max_bytes=200)
    r = c.put("/api/v1/machines/s1/press/l1/m3", json={"id": "s1/press/l1/m3", "x": "y" * 400})
    assert r.status_code == 413


def test_states_reasons_and_stops(plant_client):
    c = plant_client
    r = c.get("/api/v1/states", params={"machine": M1, "start": at(6), "end": at(22)})
    assert r.status_code == 200
    assert [(x["state"], x["end_ms"] - x["start_ms"]) for x in r.json()["rows"]] == [
        ("running", 3 * H),
        ("idle", H),
        ("running", 6 * H),
    ]
    assert c.get("/api/v1/states", params={"machine": "s1/x/y/z"}).status_code == 404
    bad = c.get("/api/v1/states", params={"machine": M1, "start": at(9), "end": at(8)})
    assert bad.status_code == 422 and "must be after" in bad.json()["detail"]
    bad = c.get("/api/v1/states", params={"machine": M1, "start": "yesterday"})
    assert bad.status_code == 422 and "'start'" in bad.json()["detail"]

    stops = c.get("/api/v1/stops", params={"unassigned": True, "start": at(0), "end": at(23)})
    assert [(s["machine"], s["state"]) for s in stops.json()["rows"]] == [(M1, "idle"), (M2, "off")]
    body = {"machine": M1, "start_ms": at(9), "reason": "waiting"}
    r = c.post("/api/v1/states/reasons", json=body)
    assert r.status_code == 200 and r.json()["reason"] == "waiting"
    stops = c.get("/api/v1/stops", params={"unassigned": True, "start": at(0), "end": at(23)})
    assert [s["machine"] for s in stops.json()["rows"]] == [M2]

    r = c.post("/api/v1/states/reasons", json={**body, "reason": "gremlins"})
    assert r.status_code == 422 and "not in the reason tree" in r.json()["detail"]
    r = c.post("/api/v1/states/reasons", json={**body, "start_ms": at(6)})
    assert r.status_code == 422 and "is running" in r.json()["detail"]
    r = c.post("/api/v1/states/reasons", json={**body, "start_ms": at(9) + 1})
    assert r.status_code == 422 and "no stored state segment" in r.json()["detail"]
    r = c.post("/api/v1/states/reasons", json={**body, "machine": "s1/x/y/z"})
    assert r.status_code == 404
    r = c.post("/api/v1/states/reasons", json={"machine": M1})
    assert r.status_code == 422


def test_oee_and_energy(plant_client):
    c = plant_client
    r = c.get(
        "/api/v1/oee", params={"scope": "s1/press", "start": at(6), "end": at(22), "by": "shift"}
    )
    assert r.status_code == 200
    body = r.json()
    assert [g["label"] for g in body["groups"]] == ["2026-06-01 early", "2026-06-01 late"]
    assert body["total"]["pbt_ms"] == sum(g["pbt_ms"] for g in body["groups"])
    assert body["total"]["apt_ms"] == 6.5 * H + 5.5 * H + 2 * H
    assert c.get("/api/v1/oee", params={"scope": "s2"}).status_code == 422
    assert c.get("/api/v1/oee", params={"by": "week"}).status_code == 422
    e = c.get(
        "/api/v1/energy", params={"scope": M1, "start": at(6), "end": at(8), "bucket": "hour"}
    )
    assert e.status_code == 200
    buckets = e.json()["buckets"]
    assert [round(b["kwh"], 6) for b in buckets] == [round(8.0 * 3599 / 3600, 6), 0.0]
    assert e.json()["total"]["co2_kg"] == pytest.approx(8.0 * 3599 / 3600 * 0.5)


def test_commands_are_signed_with_the_caller_and_sent_to_the_edge(make_client):
    import threading
    import uuid

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from indunet.connect.mqtt import MqttIngest, parse_mqtt_url
    from indunet.edge.commands import sign_command
    from tests.connect.test_mqtt import BROKER, _require_broker

    off = make_client()
    cmd = {"machine": "s1/press/l1/press-7", "tag": "setpoint", "value": 42.0}
    r = off.post("/api/v1/commands", json=cmd)
    assert r.status_code == 409 and "command_secret" in r.json()["detail"]

    _require_broker()
    secret = uuid.uuid4().hex
    enterprise = f"e{uuid.uuid4().hex[:8]}"
    client = make_client(plant={"command_secret": secret}, enterprise=enterprise)
    assert client.post("/api/v1/commands", json=cmd).status_code == 409  # no broker yet
    got: list[bytes] = []
    arrived = threading.Event()
    host, port, *_ = parse_mqtt_url(BROKER)
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{enterprise}")
    sub.on_message = lambda c, u, m: (got.append(m.payload), arrived.set())
    sub.connect(host, port)
    sub.subscribe(f"indunet/cmd/v1/{enterprise}/#", 1)
    sub.loop_start()
    ingest = MqttIngest(
        client.app.state.historian,
        BROKER,
        client_id=f"api-{enterprise}",
        session_expiry_s=60,
        sparkplug_groups=[],
    )
    ingest.start()
    try:
        deadline = time.monotonic() + 10
        while not ingest.stats.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        client.app.state.mqtt = ingest
        time.sleep(0.3)  # the subscriber's SUBACK
        bad = client.post("/api/v1/commands", json={**cmd, "machine": "no-machine"})
        assert bad.status_code == 422
        r = client.post("/api/v1/commands", json=cmd)
        assert r.status_code == 202, r.text
        sent = r.json()
        assert sent["topic"] == f"indunet/cmd/v1/{enterprise}/s1/press/l1/press-7"
        assert arrived.wait(10)
        claim = json.loads(got[0])
        assert claim["id"] == sent["id"] and claim["value"] == 42.0
        assert claim["role"] == "admin" and claim["user"] == sent["user"]
        unsigned = {k: v for k, v in claim.items() if k != "sig"}
        assert sign_command(secret, unsigned)["sig"] == claim["sig"]
    finally:
        ingest.stop()
        sub.loop_stop()
        sub.disconnect()


def test_command_results_are_listed_per_tenant_and_machine(client):
    import orjson

    from indunet.plant.command_log import CommandLog, parse_audit_message

    base = {"ts": 1_700_000_000_000, "command_id": "c1", "user": "alice", "role": "operator",
            "tag": "setpoint", "old": "1", "new": "2", "result": "written"}  # fmt: skip

    def audit(enterprise: str, machine: str, command_id: str):
        payload = orjson.dumps({**base, "command_id": command_id})
        return parse_audit_message(f"indunet/audit/v1/{enterprise}/{machine}", payload)

    log = CommandLog(client.app.state.historian)
    log.add([audit("demo", M1, "c1"), audit("demo", M2, "c2"), audit("other", M1, "x")])
    r = client.get("/api/v1/commands")
    assert r.status_code == 200 and {c["command_id"] for c in r.json()} == {"c1", "c2"}
    r = client.get("/api/v1/commands", params={"machine": M2})
    assert [c["command_id"] for c in r.json()] == ["c2"]
    assert client.get("/api/v1/commands", params={"machine": "a/b"}).status_code == 422
    assert client.get("/api/v1/commands", params={"limit": 0}).status_code == 422


def test_check_finds_an_implausible_machine_and_an_overlap(plant_client):
    """GET /check: the stored timelines of the fixture plus one overlapping row written by hand."""
    c = plant_client
    r = c.get("/api/v1/check", params={"start": at(6), "end": at(22)})
    assert r.status_code == 200
    before = {f["check"] for f in r.json()["findings"]}
    assert "timeline_overlap" not in before
    PlantStore(c.app.state.historian, c.app.state.settings.plant).sql.execute(
        "INSERT INTO plant_states VALUES ('demo', $1, $2, $3, 'idle', NULL)",
        [M1, at(7), at(8)],
    )
    body = c.get("/api/v1/check", params={"start": at(6), "end": at(22)}).json()
    assert body["clean"] is False
    overlap = [f for f in body["findings"] if f["check"] == "timeline_overlap"]
    assert overlap and overlap[0]["subject"] == M1 and "plant repair" in overlap[0]["message"]
    assert c.get("/api/v1/check", params={"start": at(9), "end": at(8)}).status_code == 422


def test_losses_pareto_adds_up_to_the_oee_stop_time(plant_client):
    c = plant_client
    params = {"scope": "s1/press", "start": at(6), "end": at(22)}
    c.post("/api/v1/states/reasons", json={"machine": M1, "start_ms": at(9), "reason": "waiting"})
    oee = c.get("/api/v1/oee", params=params).json()["total"]
    r = c.get("/api/v1/losses", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {row["key"]: row["stop_ms"] for row in body["rows"]} == {
        k: v for k, v in oee["reason_ms"].items() if v
    }
    assert body["stop_ms"] == oee["pbt_ms"] - oee["apt_ms"] and body["teep"] == oee["teep"]
    assert body["short_stops"]["count"] == 0  # every stop of the fixture is an hour or more
    run = body["running"]  # m2 has no counter data: left out, and named
    assert run["skipped"] == ["s1/press/l1/m2"] and run["total"]["running_ms"] > 0
    m1 = run["machines"]["s1/press/l1/m1"]  # its counter is read every few hours: few windows
    assert m1["windows"] == m1["running_ms"] // 100_000 and m1["no_parts_ms"] > 0
    assert c.get("/api/v1/losses", params={**params, "slow_factor": 0.9}).status_code == 422
    by_machine = c.get("/api/v1/losses", params={**params, "by": "machine"}).json()
    assert sum(row["stop_ms"] for row in by_machine["rows"]) == body["stop_ms"]
    assert c.get("/api/v1/losses", params={**params, "by": "colour"}).status_code == 422
    assert c.get("/api/v1/losses", params={**params, "micro_stop_s": -1}).status_code == 422
    assert c.get("/api/v1/losses", params={**params, "micro_stop_s": "nan"}).status_code == 422
    assert c.get("/api/v1/losses", params={"scope": "s9"}).status_code == 422
    assert c.get("/api/v1/losses", params={**params, "start": "x"}).status_code == 422


def test_states_show_the_reasons_the_machine_reported(make_client):
    from tests.plant.test_losses import state_plant, write_text

    c = make_client(plant=state_plant())
    h = c.app.state.historian
    store = PlantStore(h, c.app.state.settings.plant)
    store.save_segments("demo", M1, tl((6, 9, 2), (9, 10, 1), (10, 11, 2)))
    write_text(h, f"{M1}/state", [at(6), at(9), at(10)], ["running", "setup", "running"])
    rows = c.get("/api/v1/states", params={"machine": M1, "start": at(6), "end": at(11)}).json()
    idle = [r for r in rows["rows"] if r["state"] == "idle"]
    assert [(r["reason"], r["reason_label"], r["proposed"]) for r in idle] == [
        ("changeover", "Changeover / setup", True)
    ]
    # an operator's reason wins and is not marked as the machine's
    body = {"machine": M1, "start_ms": at(9), "reason": "waiting"}
    assert c.post("/api/v1/states/reasons", json=body).status_code == 200
    rows = c.get("/api/v1/states", params={"machine": M1, "start": at(6), "end": at(11)}).json()
    idle = [r for r in rows["rows"] if r["state"] == "idle"]
    assert [(r["reason"], r["proposed"]) for r in idle] == [("waiting", False)]


def test_a_tenant_admin_sets_its_own_site_calendar(client):
    """globex (not the server's enterprise) puts a machine and its site's shifts; OEE by shift
    then uses them. demo's key cannot touch globex's sites, and globex's cannot touch demo's."""
    globex = {"Authorization": f"Bearer {client.auth.key_for('globex')}"}
    demo = {"Authorization": f"Bearer {client.auth.key_for('demo')}"}
    q = {"enterprise": "globex"}
    machine = {"power_tag": "power_kw", "thresholds": {"off_below": 0.5, "running_above": 2.0}}
    r = client.put("/api/v1/machines/gsite/a/l/m1", json=machine, params=q, headers=globex)
    assert r.status_code == 200, r.text
    listed = client.get("/api/v1/sites", params=q, headers=globex).json()["sites"]
    assert [(s["site"], s["source"], s["machines"]) for s in listed] == [("gsite", "default", 1)]
    cal = {
        "timezone": "UTC",
        "shifts": [
            {"name": "early", "start": "06:00", "end": "14:00"},
            {"name": "late", "start": "14:00", "end": "22:00"},
        ],
    }
    r = client.put("/api/v1/sites/gsite", json={"calendar": cal}, params=q, headers=demo)
    assert r.status_code == 403  # another tenant's admin
    r = client.put("/api/v1/sites/gsite", json={"calendar": cal}, params=q, headers=globex)
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["config"]["calendar"]["shifts"]] == ["early", "late"]
    listed = client.get("/api/v1/sites", params=q, headers=globex).json()["sites"]
    assert [(s["site"], s["source"]) for s in listed] == [("gsite", "api")]
    # the shifts are in effect: a day's OEE by shift has the two shifts, 8 h planned each
    store = PlantStore(client.app.state.historian, client.app.state.settings.plant)
    store.save_segments("globex", "gsite/a/l/m1", tl((6, 22, 2)))
    params = {**q, "start": at(0), "end": at(24), "by": "shift"}
    body = client.get("/api/v1/oee", params=params, headers=globex).json()
    assert [g["label"] for g in body["groups"]] == ["2026-06-01 early", "2026-06-01 late"]
    assert [g["pbt_ms"] for g in body["groups"]] == [8 * H, 8 * H]
    # globex's admin cannot set demo's sites; demo's own sites are not globex's
    r = client.put("/api/v1/sites/s1", json={}, params={"enterprise": "demo"}, headers=globex)
    assert r.status_code == 403
    assert client.get("/api/v1/sites").json()["sites"] == []
    # forget it: planned time is the whole day again (no shifts)
    r = client.delete("/api/v1/sites/gsite", params=q, headers=globex)
    assert r.status_code == 200
    assert client.delete("/api/v1/sites/gsite", params=q, headers=globex).status_code == 404
    listed = client.get("/api/v1/sites", params=q, headers=globex).json()["sites"]
    assert [(s["site"], s["source"]) for s in listed] == [("gsite", "default")]


@pytest.mark.parametrize(
    ("site", "body", "status", "text"),
    [
        ("s1", {"calendar": {"timezone": "Nowhere/Land"}}, 422, "field calendar.timezone"),
        ("s1", {"oee_target": 2}, 422, "field oee_target"),
        ("s1", {"extra": 1}, 422, "field extra"),
        ("s1", [1, 2], 422, "must be a JSON object"),
        ("s1+x", {}, 422, "site name 's1+x' contains the forbidden character '+'"),
    ],
)
def test_bad_site_docs_are_refused(plant_client, site, body, status, text):
    before = plant_client.get("/api/v1/sites").json()
    r = plant_client.put(f"/api/v1/sites/{site}", json=body)
    assert r.status_code == status, r.text
    assert text in r.json()["detail"]
    assert plant_client.get("/api/v1/sites").json() == before


def test_put_site_refuses_broken_json_and_big_bodies(make_client):
    c = make_client(ingest_max_bytes=200)
    assert c.put("/api/v1/sites/s1", content=b"{nope").status_code == 400
    r = c.put("/api/v1/sites/s1", json={"calendar": {"timezone": "UTC"}, "x": "y" * 400})
    assert r.status_code == 413
