"""GET /api/v1/deadletters: what could not be stored, newest first, per enterprise."""

from __future__ import annotations

import json

T0 = 1_700_000_000_000
A = "s1/press/l1/m1/power_kw"
URL = "/api/v1/deadletters"


def test_empty_at_first(duck_client):
    r = duck_client.get(URL)
    assert r.status_code == 200 and r.json() == {"rows": []}


def test_rejected_records_are_listed_newest_first(duck_client):
    duck_client.post("/api/v1/ingest", json=[{"tag": A, "ts": "first", "value": 1}])
    duck_client.post("/api/v1/ingest", content=b"not json")
    duck_client.post("/api/v1/ingest", json=[{"tag": A, "ts": T0, "value": 1, "color": "red"}])
    rows = duck_client.get(URL).json()["rows"]
    assert [r["ref"] for r in rows] == ["record 0", "body", "record 0"]
    newest, middle, oldest = rows
    assert "unknown field(s) 'color'" in newest["reason"]
    assert json.loads(newest["payload"]) == {"tag": A, "ts": T0, "value": 1, "color": "red"}
    assert middle["payload"] == "not json" and middle["reason"].startswith("body is not valid")
    assert oldest["reason"].startswith("record 0: field 'ts'")
    assert all(r["source"] == "http:ingest" and r["enterprise"] == "demo" for r in rows)
    assert newest["received_ms"] >= oldest["received_ms"]
    assert [r["ref"] for r in duck_client.get(URL, params={"limit": 1}).json()["rows"]] == [
        "record 0"
    ]


def test_filter_by_source_and_enterprise(duck_client):
    duck_client.post("/api/v1/ingest", params={"enterprise": "acme"}, content=b"[")
    duck_client.post("/api/v1/ingest", content=b"]")
    assert len(duck_client.get(URL, params={"enterprise": "acme"}).json()["rows"]) == 1
    assert len(duck_client.get(URL).json()["rows"]) == 1  # the default enterprise's own
    assert duck_client.get(URL, params={"source": "import:x.csv"}).json()["rows"] == []
    assert len(duck_client.get(URL, params={"source": "http:ingest"}).json()["rows"]) == 1


def test_payload_is_cut_to_the_setting(make_client):
    client = make_client(deadletter_payload_bytes=16)
    client.post("/api/v1/ingest", content=b"x" * 1000)
    [row] = client.get(URL).json()["rows"]
    assert row["payload"] == "x" * 16


def test_bad_limit_is_422(duck_client):
    for limit in (0, -1, 10_001, "many"):
        assert duck_client.get(URL, params={"limit": limit}).status_code == 422
