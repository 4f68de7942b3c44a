"""GET/POST /api/v1/tags: list, tree, search and declare."""

from __future__ import annotations

T0 = 1_700_000_000_000
URL = "/api/v1/tags"
PATHS = [
    "s1/press/l1/m1/power_kw",
    "s1/press/l1/m1/mode",
    "s1/press/l1/m2/power_kw",
    "s1/weld/l2/m9/Temp_C",
    "s2/paint/l1/booth/humidity",
]


def fill(client):
    records = [{"tag": p, "ts": T0, "value": "on" if p.endswith("mode") else 1.0} for p in PATHS]
    r = client.post("/api/v1/ingest", json=records)
    assert r.json()["stored"] == len(PATHS)


def tags(client, **params):
    r = client.get(URL, params=params)
    assert r.status_code == 200, r.text
    return r.json()["tags"]


def test_list_all_and_by_prefix(client):
    fill(client)
    everything = tags(client)
    assert [t["tag"] for t in everything] == sorted(PATHS)
    kinds = {t["tag"]: t["data_type"] for t in everything}
    assert kinds["s1/press/l1/m1/mode"] == "string"
    assert kinds["s1/press/l1/m1/power_kw"] == "number"
    assert all(t["source"] == "auto" for t in everything)
    assert [t["tag"] for t in tags(client, prefix="s1/press")] == [
        "s1/press/l1/m1/mode",
        "s1/press/l1/m1/power_kw",
        "s1/press/l1/m2/power_kw",
    ]
    assert [t["tag"] for t in tags(client, prefix="s1/press/l1/m2/")] == ["s1/press/l1/m2/power_kw"]
    assert tags(client, prefix="s1/pres") == []  # whole segments only
    assert [t["tag"] for t in tags(client, prefix="s1/press/l1/m1/mode")] == ["s1/press/l1/m1/mode"]
    assert len(tags(client, limit=2)) == 2


def test_search_is_case_insensitive_substring(client):
    fill(client)
    assert [t["tag"] for t in tags(client, search="POWER")] == [
        "s1/press/l1/m1/power_kw",
        "s1/press/l1/m2/power_kw",
    ]
    assert [t["tag"] for t in tags(client, search="temp_c")] == ["s1/weld/l2/m9/Temp_C"]
    assert [t["tag"] for t in tags(client, prefix="s1/press/l1/m2", search="power")] == [
        "s1/press/l1/m2/power_kw"
    ]
    assert tags(client, search="%") == []  # no SQL wildcards
    assert tags(client, search="_kw") != []


def test_tree(duck_client):
    fill(duck_client)
    r = duck_client.get(URL, params={"tree": True})
    assert r.status_code == 200
    assert r.json()["tree"] == {
        "s1": {
            "press": {"l1": {"m1": ["mode", "power_kw"], "m2": ["power_kw"]}},
            "weld": {"l2": {"m9": ["Temp_C"]}},
        },
        "s2": {"paint": {"l1": {"booth": ["humidity"]}}},
    }
    sub = duck_client.get(URL, params={"tree": True, "prefix": "s2"}).json()["tree"]
    assert sub == {"s2": {"paint": {"l1": {"booth": ["humidity"]}}}}


def test_declare_then_list_and_update(duck_client):
    body = [
        {
            "tag": "s1/press/l1/m1/power_kw",
            "unit": "kW",
            "description": "spindle power",
            "expected_interval_ms": 1000,
        },
        {"tag": "s1/press/l1/m1/mode", "data_type": "string"},
    ]
    r = duck_client.post(URL, json=body)
    assert r.status_code == 200 and r.json() == {"declared": 2}
    listed = {t["tag"]: t for t in tags(duck_client)}
    power = listed["s1/press/l1/m1/power_kw"]
    assert (power["unit"], power["description"], power["expected_interval_ms"]) == (
        "kW",
        "spindle power",
        1000,
    )
    assert power["data_type"] == "number"
    assert listed["s1/press/l1/m1/mode"]["data_type"] == "string"
    # metadata can be updated; the type cannot change
    r = duck_client.post(URL, json=[{"tag": "s1/press/l1/m1/power_kw", "unit": "W"}])
    assert r.status_code == 200
    assert tags(duck_client, prefix="s1/press/l1/m1/power_kw")[0]["unit"] == "W"
    r = duck_client.post(URL, json=[{"tag": "s1/press/l1/m1/power_kw", "data_type": "string"}])
    assert r.status_code == 422 and "cannot become string" in r.json()["detail"]


def test_declared_type_is_enforced_at_ingest(duck_client):
    duck_client.post(URL, json=[{"tag": "s1/a/l/m/state", "data_type": "string"}])
    r = duck_client.post(
        "/api/v1/ingest",
        json=[
            {"tag": "s1/a/l/m/state", "ts": T0, "value": 3},
            {"tag": "s1/a/l/m/state", "ts": T0 + 1, "value": "ok"},
        ],
    )
    assert r.json()["stored"] == 1 and r.json()["rejected"] == 1
    assert "holds string values" in r.json()["errors"][0]


def test_declare_rejects_bad_input(duck_client):
    r = duck_client.post(URL, json=[{"tag": "s1/press/l1"}])
    assert r.status_code == 422 and "5 parts" in r.json()["detail"]
    r = duck_client.post(URL, json=[{"tag": "s1/a/l/m/x", "data_type": "complex"}])
    assert r.status_code == 422
    r = duck_client.post(URL, json=[{"tag": "s1/a/l/m/x", "unit": "u" * 33}])
    assert r.status_code == 422
    r = duck_client.post(URL, json=[{"tag": "s1/a/l/m/x", "expected_interval_ms": 0}])
    assert r.status_code == 422
    r = duck_client.post(URL, json={"tag": "s1/a/l/m/x"})  # must be a list
    assert r.status_code == 422
    assert tags(duck_client) == []  # nothing half-declared


def test_bad_prefix_is_422(duck_client):
    for prefix in ("a/#", "a//b", "a/b/c/d/e/f"):
        r = duck_client.get(URL, params={"prefix": prefix})
        assert r.status_code == 422, prefix
        r = duck_client.get(URL, params={"prefix": prefix, "tree": True})
        assert r.status_code == 422, prefix


def test_enterprises_see_only_their_tags(duck_client):
    duck_client.post(
        "/api/v1/ingest",
        params={"enterprise": "acme"},
        json={"tag": "s1/a/l/m/x", "ts": T0, "value": 1},
    )
    duck_client.post(URL, params={"enterprise": "globex"}, json=[{"tag": "s9/a/l/m/y"}])
    assert [t["tag"] for t in tags(duck_client, enterprise="acme")] == ["s1/a/l/m/x"]
    assert [t["tag"] for t in tags(duck_client, enterprise="globex")] == ["s9/a/l/m/y"]
    assert tags(duck_client) == []
