"""Andon calls, handover notes and display keys over HTTP: roles, tenants, hostile input, audit."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indunet.api.app import create_app
from indunet.auth.store import AuthStore
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore

LINE, M1 = "s1/press/l1", "s1/press/l1/m1"
TOML = """
[[plant.machines]]
id = "s1/press/l1/m1"
power_tag = "power_kw"
thresholds = { off_below = 1.0, running_above = 5.0 }
[[plant.machines]]
id = "s1/press/l2/m9"
power_tag = "power_kw"
thresholds = { off_below = 1.0, running_above = 5.0 }
[plant.sites.s1.calendar]
timezone = "UTC"
[plant.reasons]
reasons = [{ code = "material" }, { code = "mechanical" }]
"""


@pytest.fixture
def world(settings_factory, tmp_path):
    (tmp_path / "indunet.toml").write_text(TOML)
    settings = settings_factory(enterprise="acme")
    app = create_app(settings)
    with TestClient(app) as client:
        store = AuthStore(app.state.historian)
        now = int(time.time() * 1000)
        keys = {r: store.create_key("acme", r, now_ms=now).secret for r in ("viewer", "operator")}
        keys["admin"] = store.create_key("acme", "admin", now_ms=now).secret
        keys["globex"] = store.create_key("globex", "admin", now_ms=now).secret
        heads = {k: {"Authorization": f"Bearer {v}"} for k, v in keys.items()}
        yield client, heads, app


def test_raise_take_resolve_with_audit_and_times(world):
    client, h, app = world
    op, viewer = h["operator"], h["viewer"]
    body = {"reason": "material", "note": "coil empty"}
    r = client.post("/api/v1/andon/calls", params={"scope": M1}, json=body, headers=viewer)
    assert r.status_code == 403  # a viewer only looks
    r = client.post("/api/v1/andon/calls", params={"scope": M1}, json=body, headers=op)
    assert r.status_code == 201, r.text
    call = r.json()
    assert (call["state"], call["line"], call["machine"], call["site"]) == ("open", LINE, M1, "s1")
    cid = call["call_id"]
    act = f"/api/v1/andon/calls/{cid}"
    assert client.post(f"{act}/take", params={"scope": LINE}, headers=op).json()["state"] == "taken"
    r = client.post(f"{act}/take", params={"scope": LINE}, headers=op)
    assert r.status_code == 409  # taken already
    r = client.post(f"{act}/take", params={"scope": "s1/press/l2"}, headers=op)
    assert r.status_code == 404  # not a call of that line
    r = client.post(f"{act}/resolve", params={"scope": LINE}, json={"cause": " "}, headers=op)
    assert r.status_code == 422
    r = client.post(
        f"{act}/resolve", params={"scope": LINE}, json={"cause": "refilled"}, headers=op
    )
    done = r.json()
    assert done["state"] == "resolved" and done["cause"] == "refilled"
    assert done["tta_ms"] >= 0 and done["ttr_ms"] >= done["tta_ms"]
    r = client.post(f"{act}/resolve", params={"scope": LINE}, json={"cause": "x"}, headers=op)
    assert r.status_code == 409  # resolved already
    trail = client.get(f"{act}/audit", params={"scope": LINE}, headers=viewer).json()["audit"]
    assert [a["action"] for a in trail] == ["raised", "taken", "resolved"]
    keys = AuthStore(app.state.historian).keys("acme")
    assert {a["by"] for a in trail} == {k["key_id"] for k in keys if k["role"] == "operator"}
    stats = client.get("/api/v1/andon/stats", params={"scope": "s1"}, headers=viewer).json()
    assert stats["calls"] == 1 and stats["stats"][0]["reason"] == "material"
    assert stats["stats"][0]["mttr_ms"] == done["ttr_ms"]
    # another tenant sees none of it, even naming the call
    other = h["globex"]
    assert client.get("/api/v1/andon/calls", headers=other).json()["calls"] == []
    r = client.get(f"{act}/audit", params={"scope": LINE}, headers=other)
    assert r.status_code == 404
    r = client.get("/api/v1/andon/calls", params={"enterprise": "acme"}, headers=other)
    assert r.status_code == 403


def test_a_call_fills_in_the_reason_of_its_stop(world):
    client, h, app = world
    t0 = int(time.time() * 1000) - 3_600_000
    store = PlantStore(app.state.historian, app.state.settings.plant)
    tl = StateTimeline(
        np.array([t0, t0 + 600_000], np.int64),
        np.array([t0 + 600_000, t0 + 1_200_000], np.int64),
        np.array([2, 1], np.int8),
    )
    store.save_segments("acme", M1, tl)
    op = h["operator"]
    cid = client.post(
        "/api/v1/andon/calls", params={"scope": LINE}, json={"reason": "material"}, headers=op
    ).json()["call_id"]
    act = f"/api/v1/andon/calls/{cid}/resolve"
    bad = {"cause": "coil", "stop_machine": M1, "stop_start_ms": t0, "stop_reason": "material"}
    r = client.post(act, params={"scope": LINE}, json=bad, headers=op)
    assert r.status_code == 422  # that segment is running time, not a stop
    r = client.post(act, params={"scope": LINE}, json={**bad, "stop_start_ms": t0 + 600_000,
                    "stop_reason": "nonsense"}, headers=op)  # fmt: skip
    assert r.status_code == 422  # not in the reason tree
    good = {**bad, "stop_start_ms": t0 + 600_000}
    r = client.post(act, params={"scope": LINE}, json=good, headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["stop_reason"] == "material"
    stops = client.get("/api/v1/stops", params={"scope": M1}, headers=op).json()["rows"]
    assert [s["reason"] for s in stops] == ["material"]


@pytest.mark.parametrize(
    ("scope", "body", "status"),
    [
        (M1, {"reason": "coffee"}, 422),
        (M1, {"reason": "help", "note": "x" * 1001}, 422),
        (M1, {"reason": "help", "note": "bell\x07"}, 422),
        ("s1/press/l1/nope", {"reason": "help"}, 422),
        ("s1/press", {"reason": "help"}, 422),
        ("../../etc", {"reason": "help"}, 422),
        (M1, ["not", "an", "object"], 422),
    ],
)
def test_hostile_calls_are_refused(world, scope, body, status):
    client, h, _ = world
    r = client.post(
        "/api/v1/andon/calls", params={"scope": scope}, json=body, headers=h["operator"]
    )
    assert r.status_code == status, r.text
    assert client.get("/api/v1/andon/calls", headers=h["viewer"]).json()["calls"] == []


def test_handover_notes_by_line(world):
    client, h, _ = world
    op = h["operator"]
    r = client.post(
        "/api/v1/handover", params={"scope": LINE}, json={"text": "die 4 worn"}, headers=op
    )
    assert r.status_code == 201, r.text
    assert r.json()["shift"].endswith(" day")  # no shifts configured: the day is the shift
    for scope, text in ((LINE, ""), ("s1/press", "x"), (LINE, "y" * 4001), ("s1/no/line", "x")):
        r = client.post(
            "/api/v1/handover", params={"scope": scope}, json={"text": text}, headers=op
        )
        assert r.status_code == 422, (scope, r.text)
    got = client.get("/api/v1/handover", params={"scope": "s1"}, headers=h["viewer"]).json()
    assert [n["text"] for n in got["notes"]] == ["die 4 worn"]
    r = client.get(
        "/api/v1/handover", params={"scope": "s1", "enterprise": "acme"}, headers=h["globex"]
    )
    assert r.status_code == 403


def test_display_key_is_view_only_one_scope_wall_only_and_revocable(world):
    client, h, _ = world
    made = client.post("/api/v1/display-keys", json={"scope": LINE}, headers=h["admin"])
    assert made.status_code == 201
    key = made.json()
    assert (
        client.post(
            "/api/v1/display-keys", json={"scope": "a/b/c/d"}, headers=h["admin"]
        ).status_code
        == 422
    )
    assert (
        client.post("/api/v1/display-keys", json={"scope": LINE}, headers=h["operator"]).status_code
        == 403
    )
    screen = TestClient(client.app, base_url=str(client.base_url))
    r = screen.get(f"/wall/{LINE}", params={"display_key": key["secret"], "views": "andon"},
                   follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/wall/{LINE}?views=andon"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert screen.get(f"/wall/{LINE}").status_code == 200  # the cookie signs it in
    assert screen.get(f"/api/v1/wall/{LINE}").json()["scope"] == LINE
    # one scope: not the neighbouring line, not the whole site
    assert screen.get("/api/v1/wall/s1/press/l2").status_code == 403
    assert screen.get("/api/v1/wall/s1").status_code == 403
    # wall routes only, view-only
    for path in ("/api/v1/machines", "/api/v1/andon/calls", "/api/v1/reports", f"/site/{LINE}"):
        assert screen.get(path, follow_redirects=False).status_code == 403, path
    r = screen.post("/api/v1/andon/calls", params={"scope": M1}, json={"reason": "help"})
    assert r.status_code == 403
    listed = client.get("/api/v1/display-keys", headers=h["admin"]).json()["keys"]
    assert [k["scope"] for k in listed] == [LINE] and "secret" not in listed[0]
    r = client.delete(f"/api/v1/display-keys/{key['key_id']}", headers=h["admin"])
    assert r.status_code == 200
    assert screen.get(f"/api/v1/wall/{LINE}").status_code == 401  # revoked: at once
    r = client.delete(f"/api/v1/display-keys/{key['key_id']}", headers=h["admin"])
    assert r.status_code == 404


def test_call_changes_go_on_the_event_stream_for_this_plant_only(world):
    client, h, app = world
    sent: list[tuple[str, dict]] = []
    bus = app.state.events
    bus.publish_new = lambda kind, data: sent.append((kind, data))  # record, do not fan out
    op = h["operator"]
    body = {"reason": "material", "note": "<script>x</script>"}
    call = client.post("/api/v1/andon/calls", params={"scope": M1}, json=body, headers=op).json()
    act = f"/api/v1/andon/calls/{call['call_id']}"
    client.post(f"{act}/take", params={"scope": LINE}, headers=op)
    assert client.post(f"{act}/take", params={"scope": LINE}, headers=op).status_code == 409
    r = client.post("/api/v1/andon/calls", params={"scope": "s9/x/y"}, json=body, headers=op)
    assert r.status_code in (404, 422)  # refused: nothing announced
    assert [(k, d["state"]) for k, d in sent] == [("andon", "open"), ("andon", "taken")]
    assert sent[0][1] == {
        "call_id": call["call_id"], "line": LINE, "machine": M1, "reason": "material",
        "state": "open", "taken_by": None,
    }  # fmt: skip
    assert "note" not in sent[0][1]  # what a wall needs to redraw, not the free text
    # another tenant's call (served from this server, not its plant) is not on this stream
    from types import SimpleNamespace

    from indunet.api.routes.shift import publish_call

    request = SimpleNamespace(app=app)
    publish_call(request, "globex", {**call, "state": "cancelled"})
    assert len(sent) == 2
    publish_call(request, "acme", {**call, "state": "cancelled"})
    assert sent[-1][1]["state"] == "cancelled"
