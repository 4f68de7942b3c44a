from __future__ import annotations

import time

DAY = 86_400_000


def _now() -> int:
    return int(time.time() * 1000)


def test_load_and_read_back_business_views(client):
    now = _now()
    r = client.post(
        "/api/v1/business/inventory?enterprise=acme",
        json=[
            {"item": "steel", "warehouse": "W1", "quantity": 20, "as_of": now, "daily_use": 10},
            {"item": "bolts", "warehouse": "W1", "quantity": "lots", "as_of": now},
        ],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == 1
    assert body["refused"][0]["ref"] == "http:inventory row 2"
    assert body["refused"][0]["field"] == "quantity"
    inv = client.get("/api/v1/inventory?enterprise=acme&below_cover=true").json()["rows"]
    assert [(i["item"], i["days_of_cover"]) for i in inv] == [("steel", 2.0)]

    client.post(
        "/api/v1/business/purchase_orders?enterprise=acme",
        json={
            "records": [
                {"order_id": "PO1", "item": "steel", "quantity": 5, "expected_at": now - DAY},
                {"order_id": "PO2", "item": "steel", "quantity": 5, "expected_at": now + DAY},
            ]
        },
    )
    late = client.get("/api/v1/orders?kind=purchase&late=true&enterprise=acme").json()
    assert [o["order_id"] for o in late["rows"]] == ["PO1"]
    client.post(
        "/api/v1/business/shipments?enterprise=acme",
        json=[{"shipment_id": "T1", "vehicle": "truck 3", "departed_at": now - 1000}],
    )
    assert (
        client.get("/api/v1/shipments?state=on_road&enterprise=acme").json()["rows"][0]["vehicle"]
        == "truck 3"
    )
    overview = client.get("/api/v1/business/overview?enterprise=acme").json()
    assert overview["items_below_cover"] == 1
    assert overview["late_incoming"] == 1
    assert overview["shipments"] == {"on_road": 1}
    # another tenant sees nothing of acme's
    assert client.get("/api/v1/inventory?enterprise=globex").json()["rows"] == []


def test_bad_bodies_are_refused_with_a_reason(client):
    assert client.post("/api/v1/business/inventory", content=b"{nope").status_code == 400
    r = client.post("/api/v1/business/inventory", json={"item": "a"})
    assert r.status_code == 400 and "JSON array" in r.json()["detail"]
    assert client.post("/api/v1/business/stock", json=[]).status_code == 422
    assert client.get("/api/v1/orders?kind=returns").status_code == 422
    r = client.post("/api/v1/business/inventory?timezone=Mars/Base", json=[])
    assert r.status_code == 422 and "unknown time zone" in r.json()["detail"]


def test_body_over_the_limit_is_413(make_client):
    client = make_client(ingest_max_bytes=100)
    r = client.post("/api/v1/business/items", json=[{"item": "x" * 50}] * 5)
    assert r.status_code == 413
