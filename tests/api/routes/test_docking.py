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
