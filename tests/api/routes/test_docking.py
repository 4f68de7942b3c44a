from __future__ import annotations

PROBLEM = {
    "requests": [{"id": "H1", "item": "mask", "quantity": 250, "unmet_penalty": 1000}],
    "offers": [{"id": "S1", "item": "mask", "quantity": 300}],
    "lanes": [{"from": "S1", "to": "H1", "cost_per_unit": 4}],
}


def test_solve_a_problem_document(duck_client):
    out = duck_client.post("/api/v1/dock/solve?objective=fair", json=PROBLEM).json()
    assert out["total_cost"] == 1000 and out["min_fill_rate"] == 1.0


def test_bad_documents_are_422_or_400_with_the_entry(duck_client):
    bad = {**PROBLEM, "lanes": [{"from": "S1", "to": "nobody"}]}
    r = duck_client.post("/api/v1/dock/solve", json=bad)
    assert r.status_code == 422 and "'to' 'nobody'" in r.json()["detail"]
    assert duck_client.post("/api/v1/dock/solve", content=b"[").status_code == 400
    assert duck_client.post("/api/v1/dock/solve?objective=cheap", json=PROBLEM).status_code == 422
    r = duck_client.post("/api/v1/dock/offers", json={"id": "x"})
    assert r.status_code == 400


def test_stored_entries_runs_and_ranking(client):
    client.post("/api/v1/dock/requests?enterprise=acme", json=PROBLEM["requests"])
    client.post("/api/v1/dock/offers?enterprise=acme", json=PROBLEM["offers"])
    client.post("/api/v1/dock/lanes?enterprise=acme", json=PROBLEM["lanes"])
    assert [o["id"] for o in client.get("/api/v1/dock/offers?enterprise=acme").json()["rows"]] == [
        "S1"
    ]
    run = client.post("/api/v1/dock/runs?objective=cost&enterprise=acme").json()
    assert run["total_cost"] == 1000
    again = client.get(f"/api/v1/dock/runs/{run['run_id']}?enterprise=acme").json()
    assert again["allocations"] == run["allocations"]
    assert client.get(f"/api/v1/dock/runs/{run['run_id']}?enterprise=other").status_code == 404
    ranked = client.get("/api/v1/dock/rank?request=H1&enterprise=acme").json()
    assert [r["offer"] for r in ranked["rows"]] == ["S1"]
    assert client.get("/api/v1/dock/rank?request=nope&enterprise=acme").status_code == 404
    assert client.delete("/api/v1/dock/lanes/S1->H1?enterprise=acme").status_code == 200
    assert client.delete("/api/v1/dock/lanes/S1->H1?enterprise=acme").status_code == 404


def test_dispatch_orders_through_the_api(client):
    client.post("/api/v1/dock/requests?enterprise=acme", json=PROBLEM["requests"])
    client.post("/api/v1/dock/offers?enterprise=acme", json=PROBLEM["offers"])
    client.post("/api/v1/dock/lanes?enterprise=acme", json=PROBLEM["lanes"])
    run = client.post("/api/v1/dock/runs?objective=cost&enterprise=acme").json()
    made = client.post(f"/api/v1/dock/runs/{run['run_id']}/dispatch?by=ops&enterprise=acme")
    [order] = made.json()["rows"]
    url = f"/api/v1/dock/dispatch/{order['order_id']}"
    early = client.post(f"{url}/ship?enterprise=acme", json={"side": "supplier", "by": "s"})
    assert early.status_code == 409 and "confirmed by both sides" in early.json()["detail"]
    for side in ("supplier", "requester"):
        r = client.post(f"{url}/confirm?enterprise=acme", json={"side": side, "by": side})
        assert r.status_code == 200, r.text
    assert client.get("/api/v1/dock/dispatch?enterprise=acme").json()["rows"][0]["status"] == (
        "confirmed"
    )
    trail = client.get(f"{url}/audit?enterprise=acme").json()["rows"]
    assert [t["to_status"] for t in trail] == ["proposed", "supplier_confirmed", "confirmed"]
    assert (
        client.post(
            "/api/v1/dock/dispatch/nope/confirm?enterprise=acme",
            json={"side": "supplier", "by": "x"},
        ).status_code
        == 404
    )
    assert client.post("/api/v1/dock/runs/nope/dispatch?by=ops&enterprise=acme").status_code == 404


def test_own_plant_status_reads_a_running_watcher(make_client):
    """Docking ranks offers with the plant's live status: read from the watcher's plant."""
    from types import SimpleNamespace

    from indunet.api.routes.docking import own_plant_status
    from indunet.plant.watch import PlantWatcher
    from tests.plant.plant_data import M1, M2, T0, plant, power_profile, write

    c = make_client(plant=plant(M1, M2))
    historian, settings = c.app.state.historian, c.app.state.settings
    ts, v = power_profile(T0, [(60, 8.0)])
    write(historian, f"{M1}/power_kw", ts, v)
    watcher = PlantWatcher(historian, settings)
    watcher.tick(int(ts[-1]) + 500)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(plant_watcher=watcher)))
    status = own_plant_status(request, "demo")  # type: ignore[arg-type]
    assert status["demo"].machines_running == 1 and status["demo"].machines_known == 1
    assert own_plant_status(request, "other") == {}  # type: ignore[arg-type]
