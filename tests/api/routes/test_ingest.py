"""POST /api/v1/ingest: JSON array and NDJSON in, counts and reasons out, dead letters kept."""

from __future__ import annotations

import json

T0 = 1_700_000_000_000
A = "s1/press/l1/m1/power_kw"
B = "s1/press/l1/m1/mode"
URL = "/api/v1/ingest"


def series(client, tag, start=T0, end=T0 + 3_600_000, **params):
    r = client.get("/api/v1/series", params={"tag": tag, "start": start, "end": end, **params})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def test_json_array_round_trip(client):
    records = [{"tag": A, "ts": T0 + i * 1000, "value": i * 1.5} for i in range(5)]
    records.append({"tag": B, "timestamp_ms": T0, "value": "running"})
    records.append({"tag": B, "ts": "2023-11-14T22:13:25Z", "value": "idle", "quality": "bad"})
    r = client.post(URL, json=records)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 7, "rejected": 0, "errors": []}
    rows = series(client, A)
    assert [row["ts"] for row in rows] == [T0 + i * 1000 for i in range(5)]
    assert [row["value"] for row in rows] == [i * 1.5 for i in range(5)]
    rows = series(client, B)
    assert [(row["ts"], row["text"], row["quality"]) for row in rows] == [
        (T0, "running", 0),
        (T0 + 5000, "idle", 2),
    ]
    latest = client.get("/api/v1/latest").json()["rows"]
    by_tag = {row["tag"]: row for row in latest}
    assert by_tag[A]["value"] == 6.0 and by_tag[A]["ts"] == T0 + 4000
    assert by_tag[A]["time"] == "2023-11-14T22:13:24.000Z"
    assert by_tag[B]["text"] == "idle"


def test_single_object(client):
    r = client.post(URL, json={"tag": A, "ts": T0, "value": 2})
    assert r.json() == {"stored": 1, "rejected": 0, "errors": []}
    assert [row["value"] for row in series(client, A)] == [2.0]


def test_ndjson_by_content_type_and_by_format(client):
    lines = [json.dumps({"tag": A, "ts": T0 + i * 1000, "value": i}) for i in range(3)]
    body = "\n".join(lines) + "\n"
    r = client.post(URL, content=body, headers={"content-type": "application/x-ndjson"})
    assert r.json() == {"stored": 3, "rejected": 0, "errors": []}
    body2 = json.dumps({"tag": A, "ts": T0 + 10_000, "value": 10}) + "\n"
    r = client.post(
        URL, params={"format": "ndjson"}, content=body2, headers={"content-type": "text/plain"}
    )
    assert r.json()["stored"] == 1
    assert [row["value"] for row in series(client, A)] == [0.0, 1.0, 2.0, 10.0]


def test_partially_bad_body_stores_the_good_records(client):
    body = "\n".join(
        [
            json.dumps({"tag": A, "ts": T0, "value": 1}),
            "{broken",
            json.dumps({"tag": A, "ts": "tomorrow-ish", "value": 2}),
            json.dumps({"tag": A, "ts": T0 + 1000, "value": "text in a number tag"}),
            json.dumps({"tag": A, "ts": T0 + 2000, "value": 3}),
            json.dumps({"tag": "bad/tag", "ts": T0, "value": 3}),
        ]
    )
    r = client.post(URL, content=body, params={"format": "ndjson"})
    assert r.status_code == 200
    result = r.json()
    assert result["stored"] == 2
    assert result["rejected"] == 4
    errors = result["errors"]
    assert len(errors) == 4
    assert any(e.startswith("line 2: not valid JSON") for e in errors)
    assert any(e.startswith("line 3: field 'ts'") for e in errors)
    assert any(e.startswith("line 4: tag ") and "holds number values" in e for e in errors)
    assert any(e.startswith("line 6: field 'tag'") for e in errors)
    assert [row["value"] for row in series(client, A)] == [1.0, 3.0]
    letters = client.get("/api/v1/deadletters").json()["rows"]
    assert sorted(d["ref"] for d in letters) == ["line 2", "line 3", "line 4", "line 6"]
    assert all(d["source"] == "http:ingest" for d in letters)


def test_malformed_body_is_400_and_dead_lettered(client):
    r = client.post(URL, content=b'[{"tag": ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("body is not valid JSON")
    [letter] = client.get("/api/v1/deadletters").json()["rows"]
    assert letter["ref"] == "body"
    assert letter["payload"] == '[{"tag": '
    assert letter["reason"] == r.json()["detail"]


def test_invalid_utf8_and_empty_bodies_are_400(client):
    r = client.post(URL, content=b'[{"tag": "\xff"}]')
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    r = client.post(URL, content=b"")
    assert r.status_code == 400 and r.json()["detail"] == "body is empty"
    r = client.post(URL, content=b"[" * 50_000)
    assert r.status_code == 400
    assert len(client.get("/api/v1/deadletters").json()["rows"]) == 3


def test_deeply_nested_ndjson_line_is_one_rejected_record(duck_client):
    body = "[" * 50_000 + "\n" + json.dumps({"tag": A, "ts": T0, "value": 1})
    r = duck_client.post(URL, content=body, params={"format": "ndjson"})
    assert r.status_code == 200
    assert r.json()["stored"] == 1 and r.json()["rejected"] == 1


def test_oversized_body_is_413(make_client):
    client = make_client(ingest_max_bytes=200)
    records = [{"tag": A, "ts": T0 + i, "value": i} for i in range(10)]
    r = client.post(URL, json=records)
    assert r.status_code == 413
    assert "200" in r.json()["detail"]

    def chunks():  # no content-length: the limit is enforced while streaming
        for _ in range(10):
            yield b" " * 50

    r = client.post(URL, content=chunks())
    assert r.status_code == 413
    small = client.post(URL, json={"tag": A, "ts": T0, "value": 1})
    assert small.status_code == 200 and small.json()["stored"] == 1


def test_bad_format_parameter_is_422(duck_client):
    r = duck_client.post(URL, params={"format": "csv"}, content=b"{}")
    assert r.status_code == 422
    assert "format" in r.text


def test_enterprise_parameter_keeps_tenants_apart(duck_client):
    r = duck_client.post(URL, params={"enterprise": "other"}, json={"tag": A, "ts": T0, "value": 1})
    assert r.json()["stored"] == 1
    r = duck_client.get("/api/v1/series", params={"tag": A, "start": T0, "end": T0 + 1})
    assert r.status_code == 422  # not a tag of the default enterprise
    r = duck_client.get(
        "/api/v1/series", params={"tag": A, "start": T0, "end": T0 + 1, "enterprise": "other"}
    )
    assert [row["value"] for row in r.json()["rows"]] == [1.0]


def test_duplicates_are_idempotent(client):
    body = [{"tag": A, "ts": T0, "value": 1}, {"tag": A, "ts": T0 + 1000, "value": 2}]
    for _ in range(3):
        assert client.post(URL, json=body).status_code == 200
    client.post(URL, json={"tag": A, "ts": T0, "value": 5})  # a correction replaces the value
    assert [row["value"] for row in series(client, A)] == [5.0, 2.0]
    [bucket] = client.get(
        "/api/v1/series",
        params={"tag": A, "start": T0, "end": T0 + 10_000, "buckets": 1, "agg": "count"},
    ).json()["rows"]
    assert bucket["count"] == 2


def test_errors_list_is_capped(duck_client):
    records = [{"tag": A, "ts": "x", "value": 1}] * 150
    result = duck_client.post(URL, json=records).json()
    assert result["rejected"] == 150
    assert len(result["errors"]) == 100
    assert len(duck_client.get("/api/v1/deadletters", params={"limit": 1000}).json()["rows"]) == 150


def test_a_post_while_another_writer_holds_the_historian_waits_and_is_stored(duck_client):
    """Small posts are stored on the event loop only when the writer's lock is free."""
    import threading

    historian = duck_client.app.state.historian
    duck_client.post("/api/v1/ingest", json=[{"tag": "s1/a/l/m/u", "ts": T0, "value": 1}])  # key
    holding, release, done = threading.Event(), threading.Event(), threading.Event()
    entered = threading.Event()
    answers: list[int] = []
    write = historian.write

    def noted_write(*args, **kwargs):
        entered.set()  # reached while the lock is held: a worker thread, not the loop
        return write(*args, **kwargs)

    historian.write = noted_write

    def other_writer() -> None:  # e.g. MQTT ingest or compaction in the middle of a transaction
        with historian._lock:
            holding.set()
            release.wait(30)

    def post() -> None:
        r = duck_client.post("/api/v1/ingest", json=[{"tag": "s1/a/l/m/t", "ts": T0, "value": 4}])
        answers.append(r.status_code)
        done.set()

    holder = threading.Thread(target=other_writer)
    holder.start()
    assert holding.wait(30)
    poster = threading.Thread(target=post)
    poster.start()
    assert entered.wait(30)  # the post went to a worker thread; the event loop is free
    assert not done.is_set()
    assert duck_client.get("/health").status_code == 200  # the app answers meanwhile
    release.set()  # the worker thread gets the lock now
    assert done.wait(30)
    holder.join()
    poster.join()
    assert answers == [200]
    assert series(duck_client, "s1/a/l/m/t")[0]["value"] == 4


def test_a_small_post_waits_for_another_writers_batch_on_the_loop(duck_client, monkeypatch):
    """While another writer holds the historian a small post waits without blocking the loop,
    then is stored on the loop itself (no worker thread: it would queue for the GIL)."""
    import threading

    from indunet.api.routes import ingest as ingest_route

    monkeypatch.setattr(ingest_route, "INLINE_WAIT_S", 30.0)  # never gives up in this test
    historian = duck_client.app.state.historian
    duck_client.post("/api/v1/ingest", json=[{"tag": "s1/a/l/m/u", "ts": T0, "value": 1}])  # key
    writers: list[str] = []
    write = historian.write

    def noted_write(*args, **kwargs):
        writers.append(threading.current_thread().name)
        return write(*args, **kwargs)

    historian.write = noted_write
    holding, release, done = threading.Event(), threading.Event(), threading.Event()
    answers: list[int] = []

    def other_writer() -> None:
        with historian._lock:
            holding.set()
            release.wait(30)

    def post() -> None:
        r = duck_client.post("/api/v1/ingest", json=[{"tag": "s1/a/l/m/t", "ts": T0, "value": 5}])
        answers.append(r.status_code)
        done.set()

    holder = threading.Thread(target=other_writer)
    holder.start()
    assert holding.wait(30)
    poster = threading.Thread(target=post)
    poster.start()
    assert duck_client.get("/health").status_code == 200  # the loop is free while it waits
    assert not done.is_set() and writers == []
    release.set()
    assert done.wait(30)
    holder.join()
    poster.join()
    assert answers == [200]
    assert len(writers) == 1 and "worker" not in writers[0].lower()  # stored on the loop
    assert series(duck_client, "s1/a/l/m/t")[0]["value"] == 5
