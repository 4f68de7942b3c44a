"""Chain API on both historian backends: upload, stuck points, scenarios, resilience, carbon."""

from __future__ import annotations

from tests.chain.networks import MIXED, TWO_LEVELS, doc

BASE = "/api/v1/chain/networks"


def test_chain_workflow(client) -> None:
    r = client.put(f"{BASE}/auto", json=doc(TWO_LEVELS))
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "auto", "sites": 3, "items": 3, "products": 1, "warnings": []}
    assert [n["name"] for n in client.get(BASE).json()["networks"]] == ["auto"]
    assert client.get(f"{BASE}/auto").json()["nodes"][0]["id"] == "R1"

    points = client.get(f"{BASE}/auto/stuck-points").json()["stuck_points"]
    assert points[0]["rank"] == 1 and points[0]["reason"]
    items = {i["item"]: i for i in client.get(f"{BASE}/auto/items").json()["items"]}
    assert items["s"]["single_source"] is True

    rows = {n["id"]: n for n in client.get(f"{BASE}/auto/resilience").json()["nodes"]}
    assert rows["R1"]["tts_weeks"] == 1.125 and rows["R1"]["performance_impact"] == 975.0
    carbon = client.get(f"{BASE}/auto/carbon").json()
    assert round(carbon["products"][0]["kg_co2_per_unit"], 6) == 11.6

    r = client.post(f"{BASE}/auto/scenarios", json={"name": "r4", "item": "r", "weeks": 4})
    assert r.status_code == 200, r.text
    assert r.json()["products"][0]["lost_demand"] == 115.0
    client.post(f"{BASE}/auto/scenarios", json={"name": "y2", "region": "Y", "weeks": 2})
    listed = client.get(f"{BASE}/auto/scenarios").json()["scenarios"]
    assert [(s["name"], s["lost_demand"]) for s in listed] == [("r4", 115.0), ("y2", 100.0)]
    table = client.get(f"{BASE}/auto/scenarios/compare", params={"names": ["r4", "y2"]}).json()
    assert table["products"][0]["y2"]["lost_demand"] == 100.0
    assert client.get(f"{BASE}/auto/scenarios/r4").json()["label"] == "item r stops for 4 weeks"


def test_tenants_do_not_see_each_other(duck_client) -> None:
    duck_client.put(f"{BASE}/mixed", params={"enterprise": "acme"}, json=doc(MIXED))
    assert duck_client.get(BASE, params={"enterprise": "other"}).json() == {"networks": []}
    r = duck_client.get(f"{BASE}/mixed/stuck-points", params={"enterprise": "other"})
    assert r.status_code == 404 and "no network named 'mixed'" in r.json()["detail"]


def test_bad_input(duck_client) -> None:
    bad = doc(MIXED)
    bad["bom"].append({"parent": "a", "child": "P", "qty": 1})
    r = duck_client.put(f"{BASE}/bad", json=bad)
    assert r.status_code == 422 and "cyclic BOM" in r.json()["detail"]
    r = duck_client.put(f"{BASE}/bad", content=b"{nope")
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = duck_client.put(f"{BASE}/bad name!", json=doc(MIXED))
    assert r.status_code == 422
    duck_client.put(f"{BASE}/m", json=doc(MIXED))
    r = duck_client.post(f"{BASE}/m/scenarios", json={"region": "Mars", "weeks": 1})
    assert r.status_code == 422 and "no site is in that region" in r.json()["detail"]
    r = duck_client.post(f"{BASE}/m/scenarios", json={"weeks": 1})
    assert r.status_code == 422 and "say what stops" in r.json()["detail"]
    r = duck_client.get(f"{BASE}/m/resilience", params={"down": ["nope"]})
    assert r.status_code == 422 and "'nope' is not in the network" in r.json()["detail"]
    r = duck_client.get(f"{BASE}/m/scenarios/compare", params={"names": ["missing"]})
    assert r.status_code == 404
