"""GET /api/v1/series and /api/v1/latest: raw, bucketed and downsampled reads."""

from __future__ import annotations

import math
import time

import pytest

T0 = 1_700_000_000_000
A = "s1/press/l1/m1/power_kw"
B = "s1/press/l1/m1/mode"
C = "s1/weld/l2/m9/temp_c"
URL = "/api/v1/series"


def ingest(client, records):
    r = client.post("/api/v1/ingest", json=records)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    return r.json()


def get(client, expect=200, **params):
    r = client.get(URL, params=params)
    assert r.status_code == expect, r.text
    return r.json()


def wave(i: int) -> float:
    return round(10 * math.sin(i / 7) + (i % 13), 3)


def fill(client):
    """Store 100 points of A one second apart, and text on B."""
    ingest(
        client,
        [{"tag": A, "ts": T0 + i * 1000, "value": wave(i)} for i in range(100)]
        + [{"tag": B, "ts": T0, "value": "running"}],
    )
    return client


@pytest.fixture
def filled(client):
    """A filled client on each backend."""
    return fill(client)


@pytest.fixture
def duck_filled(duck_client):
    """A filled client on DuckDB, for checks of the HTTP layer only."""
    return fill(duck_client)


def test_raw_range_is_half_open(filled):
    out = get(filled, tag=A, start=T0 + 10_000, end=T0 + 20_000)
    assert [r["ts"] for r in out["rows"]] == [T0 + i * 1000 for i in range(10, 20)]
    assert [r["value"] for r in out["rows"]] == [wave(i) for i in range(10, 20)]
    assert (out["start_ms"], out["end_ms"], out["truncated"]) == (T0 + 10_000, T0 + 20_000, False)
    assert set(out["rows"][0]) == {"ts", "value", "text", "quality"}


def test_rfc3339_parameters(filled):
    out = get(filled, tag=A, start="2023-11-14T22:13:20Z", end="2023-11-15T06:13:25+08:00")
    assert [r["ts"] for r in out["rows"]] == [T0 + i * 1000 for i in range(5)]


def test_limit_and_truncated(filled):
    out = get(filled, tag=A, start=T0, end=T0 + 200_000, limit=7)
    assert len(out["rows"]) == 7 and out["truncated"] is True
    assert out["rows"][-1]["ts"] == T0 + 6000


def test_buckets(filled):
    out = get(filled, tag=A, start=T0, end=T0 + 100_000, buckets=10)
    assert out["buckets"] == 10
    rows = out["rows"]
    assert [r["start_ms"] for r in rows] == [T0 + k * 10_000 for k in range(10)]
    for k, r in enumerate(rows):
        vals = [wave(i) for i in range(10 * k, 10 * k + 10)]
        assert r["count"] == 10
        assert r["min"] == min(vals) and r["max"] == max(vals)
        assert r["first"] == vals[0] and r["last"] == vals[-1]
        assert r["avg"] == pytest.approx(sum(vals) / 10)


def test_buckets_with_chosen_aggregates_and_one_bucket(filled):
    out = get(filled, tag=A, start=T0, end=T0 + 100_000, buckets=1, agg=["count", "max"])
    assert out["rows"] == [{"start_ms": T0, "count": 100, "max": max(wave(i) for i in range(100))}]


def test_empty_buckets_are_left_out(filled):
    out = get(filled, tag=A, start=T0 - 100_000, end=T0 + 100_000, buckets=4)
    assert [r["start_ms"] for r in out["rows"]] == [T0, T0 + 50_000]


@pytest.mark.parametrize("method", ["m4", "lttb"])
def test_downsample(filled, method):
    out = get(filled, tag=A, start=T0, end=T0 + 100_000, downsample=method, points=20)
    rows = out["rows"]
    assert out["method"] == method
    assert 3 <= len(rows) <= 20
    raw = {T0 + i * 1000: wave(i) for i in range(100)}
    assert all(raw[r["ts"]] == r["value"] for r in rows)  # real points, not invented ones
    ts = [r["ts"] for r in rows]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert ts[0] == T0 and ts[-1] == T0 + 99_000  # the ends of the series are kept
    values = [r["value"] for r in rows]
    if method == "m4":  # M4 keeps the extremes of every column, hence of the whole range
        assert max(values) == max(raw.values()) and min(values) == min(raw.values())


def test_text_tag_reads_raw_but_does_not_aggregate(filled):
    out = get(filled, tag=B, start=T0, end=T0 + 1000)
    assert out["rows"] == [{"ts": T0, "value": None, "text": "running", "quality": 0}]
    r = get(filled, 422, tag=B, start=T0, end=T0 + 1000, buckets=2)
    assert "text" in r["detail"]
    get(filled, 422, tag=B, start=T0, end=T0 + 1000, downsample="m4")


def test_bad_time_parameters_are_422_naming_the_parameter(duck_filled):
    cases = [
        ({"start": "yesterday"}, "start"),
        ({"end": "2023-13-01T00:00:00Z"}, "end"),
        ({"start": "1700000000"}, "start"),  # epoch seconds
        ({"start": "-5"}, "start"),
        ({"end": "9999-01-01T00:00:00Z"}, "end"),
        ({"start": "nan"}, "start"),
        ({"start": "yesterday", "end": "tomorrow"}, "end"),
    ]
    for params, name in cases:
        r = get(duck_filled, 422, tag=A, **{"start": T0, "end": T0 + 1000, **params})
        assert r["detail"].startswith(f"parameter '{name}': timestamp"), (params, r)


def test_end_before_start_is_422(duck_filled):
    r = get(duck_filled, 422, tag=A, start=T0 + 1000, end=T0)
    assert "must be after start" in r["detail"]


def test_unknown_and_malformed_tags_are_422(filled):
    r = get(filled, 422, tag="s1/press/l1/m1/nope", start=T0, end=T0 + 1)
    assert "does not exist" in r["detail"]
    r = get(filled, 422, tag="s1/press", start=T0, end=T0 + 1)
    assert "5 parts" in r["detail"]
    r = filled.get(URL)  # the tag is required
    assert r.status_code == 422 and "tag" in r.text


def test_out_of_range_options_are_422(duck_filled):
    for params in [
        {"buckets": 0},
        {"buckets": 100_001},
        {"agg": "median", "buckets": 2},
        {"downsample": "average"},
        {"points": 2, "downsample": "m4"},
        {"limit": 0},
    ]:
        r = get(duck_filled, 422, tag=A, start=T0, end=T0 + 1000, **params)
        assert any(next(iter(params)) in e["loc"] for e in r["detail"]), r


def test_default_window_is_the_last_day(duck_client):
    now = int(time.time() * 1000)
    ingest(
        duck_client,
        [
            {"tag": C, "ts": now - 3_600_000, "value": 1},
            {"tag": C, "ts": now - 2 * 86_400_000, "value": 2},
        ],
    )
    out = get(duck_client, tag=C)
    assert [r["value"] for r in out["rows"]] == [1.0]
    assert out["end_ms"] - out["start_ms"] == 86_400_000
    out = get(duck_client, tag=C, start=now - 3 * 86_400_000)
    assert [r["value"] for r in out["rows"]] == [2.0, 1.0]


def test_latest_with_prefix(client):
    ingest(
        client,
        [
            {"tag": A, "ts": T0, "value": 1},
            {"tag": A, "ts": T0 + 5000, "value": 2},
            {"tag": A, "ts": T0 + 1000, "value": 3},  # out of order: not the latest
            {"tag": C, "ts": T0, "value": 40},
        ],
    )
    rows = client.get("/api/v1/latest").json()["rows"]
    assert [(r["tag"], r["value"], r["ts"]) for r in rows] == [(A, 2.0, T0 + 5000), (C, 40.0, T0)]
    out = client.get("/api/v1/latest", params={"prefix": "s1/weld"}).json()
    assert [r["tag"] for r in out["rows"]] == [C]
    # whole segments only: "s1/pre" is not a prefix of "s1/press"
    assert client.get("/api/v1/latest", params={"prefix": "s1/pre"}).json()["rows"] == []
    r = client.get("/api/v1/latest", params={"prefix": "s1/#"})
    assert r.status_code == 422 and "forbidden" in r.json()["detail"]


def test_latest_cache_follows_writes_and_marks(client):
    """The cached /latest answer is dropped by every write and stale mark in this process."""
    c = client
    backend = c.app.state.historian.backend
    assert c.app.state.latest_cache.indexed == (backend == "duckdb")  # PostgreSQL: queries
    tag = "s1/a/l1/m1/power_kw"
    t0 = int(time.time() * 1000) - 10_000
    c.post("/api/v1/ingest", json=[{"tag": tag, "ts": t0, "value": 1.5}])
    first = c.get("/api/v1/latest", params={"prefix": "s1/a/l1"})
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert [(r["tag"], r["value"]) for r in first.json()["rows"]] == [(tag, 1.5)]
    cache = c.app.state.latest_cache
    hits = cache.hits
    assert c.get("/api/v1/latest", params={"prefix": "s1/a/l1"}).json() == first.json()
    assert cache.hits == hits + 1  # served from the cache
    c.post("/api/v1/ingest", json=[{"tag": tag, "ts": t0 + 1000, "value": 2.5}])
    second = c.get("/api/v1/latest", params={"prefix": "s1/a/l1"}).json()["rows"][0]
    assert (second["ts"], second["value"]) == (t0 + 1000, 2.5)
    c.app.state.historian.mark_stale("demo", "s1/a/l1/m1")
    assert c.get("/api/v1/latest", params={"prefix": "s1/a/l1"}).json()["rows"][0]["quality"] == 3
    # another enterprise has its own answers; a bad prefix is still a 422
    other = c.get("/api/v1/latest", params={"prefix": "s1/a/l1", "enterprise": "acme"})
    assert other.status_code == 200 and other.json()["rows"] == []
    assert c.get("/api/v1/latest", params={"prefix": "a/b/c/d/e/f"}).status_code == 422


def test_latest_from_memory_matches_the_database(duck_client):
    """DuckDB answers come from the in-memory index: the same rows as the query, for any prefix."""
    c = duck_client
    t0 = int(time.time() * 1000) - 60_000
    tags = ["s1/a/l1/m1/p", "s1/a/l1-x/m1/p", "s1/a/l10/m2/q", "s2/b/l1/m1/p"]
    c.post("/api/v1/ingest", json=[{"tag": t, "ts": t0, "value": i} for i, t in enumerate(tags)])
    assert c.get("/api/v1/latest").status_code == 200  # seeds the index
    c.post(
        "/api/v1/ingest",
        json=[
            {"tag": "s1/a/l1/m1/p", "ts": t0 + 10, "value": 10.5},
            {"tag": "s1/a/l1/m1/p", "ts": t0 - 10, "value": -1},  # older: ignored
            {"tag": "s1/a/l1/m1/new", "ts": t0, "value": "text"},
        ],
    )
    c.app.state.historian.mark_stale("demo", "s1/a/l1-x")
    cache = c.app.state.latest_cache
    assert cache.indexed
    historian = c.app.state.historian
    for prefix in ("", "s1", "s1/a/l1", "s1/a/l1-x", "s1/a/l1/m1", "s1/a/l1/m1/p", "s3", "s1/a/l"):
        got = c.get("/api/v1/latest", params={"prefix": prefix}).json()
        want = historian.latest("demo", prefix).to_pylist()
        assert [(r["tag"], r["ts"], r["value"], r["text"], r["quality"]) for r in got["rows"]] == [
            (r["tag"], r["ts"], r["value"], r["text"], r["quality"]) for r in want
        ], prefix
        assert got["prefix"] == prefix
    rows = c.get("/api/v1/latest", params={"prefix": "s1/a/l1"}).json()["rows"]
    assert [r["tag"] for r in rows] == ["s1/a/l1/m1/new", "s1/a/l1/m1/p"]  # not l1-x, l10
    assert rows[1]["value"] == 10.5 and rows[0]["text"] == "text"


def test_latest_without_the_answer_cache_follows_every_write(duck_client):
    """With answers never cached (``ttl_s < 0``) each one is built from the index's encoded rows:
    every write, a new tag under an asked prefix and a stale mark show at once, with big exact
    integers and non-finite floats encoded as the query path encodes them."""
    c = duck_client
    cache = c.app.state.latest_cache
    cache.ttl_s = -1.0  # no answer cache: as `bench/web_load.py`'s uncached server
    t0 = int(time.time() * 1000) - 60_000
    p, q = "s1/a/l1/m1/p", "s1/a/l1/m2/q"
    ingest(c, [{"tag": p, "ts": t0, "value": 1.5}])
    asked = {"prefix": "s1/a/l1"}
    first = c.get("/api/v1/latest", params=asked).json()["rows"]
    assert [(r["tag"], r["value"]) for r in first] == [(p, 1.5)]
    hits = cache.hits
    for i in range(3):  # each answer sees the write before it
        ingest(c, [{"tag": p, "ts": t0 + 1 + i, "value": 2.5 + i}])
        row = c.get("/api/v1/latest", params=asked).json()["rows"][0]
        assert (row["ts"], row["value"]) == (t0 + 1 + i, 2.5 + i)
    from indunet.ingest.batch import BatchBuilder
    from indunet.ingest.values import Value
    from indunet.model import DataType

    big = 2**63 + 12345  # a UInt64 id, kept exact in `text`
    builder = BatchBuilder("demo")
    builder.add(q, t0, Value(float(big), str(big), DataType.NUMBER), "test")
    c.app.state.historian.write(builder.take(), source="test")  # a new tag under the prefix
    rows = c.get("/api/v1/latest", params=asked).json()["rows"]
    assert [r["tag"] for r in rows] == [p, q]
    assert rows[1]["value"] == big and rows[1]["text"] is None
    c.app.state.historian.mark_stale("demo", "s1/a/l1/m1")
    rows = c.get("/api/v1/latest", params=asked).json()["rows"]
    assert [r["quality"] for r in rows] == [3, 0]
    assert cache.hits == hits  # never served a kept answer
    # the same bytes as the query path's encoding, for every prefix
    from indunet.api.routes.series import _encode

    for prefix in ("", "s1", "s1/a/l1/m2", "s1/a/l1/m1/p", "s2"):
        got = c.get("/api/v1/latest", params={"prefix": prefix}).content
        want = _encode(prefix, c.app.state.historian.latest("demo", prefix).to_pylist())
        assert got == want, prefix


def test_latest_index_encodes_rows_once_and_drops_them_on_change():
    """`LatestIndex.encoded_under` keeps each row's JSON until that tag changes."""
    import orjson
    import pyarrow as pa

    from indunet.api.routes.series import LatestIndex

    def points(rows):
        tags, ts, values = zip(*rows, strict=True)
        return pa.table(
            {
                "tag": list(tags),
                "ts": pa.array(ts, pa.int64()),
                "value": pa.array(values, pa.float64()),
                "text": pa.array([None] * len(rows), pa.string()),
                "quality": pa.array([0] * len(rows), pa.uint8()),
            }
        )

    index = LatestIndex()
    index.apply(points([("a/b/c", 10, 1.0), ("a/b/d", 10, float("nan")), ("a/bc/x", 5, 2.0)]))
    rows = orjson.loads(b"[" + index.encoded_under("a/b") + b"]")
    assert [(r["tag"], r["value"], r["time"]) for r in rows] == [
        ("a/b/c", 1.0, "1970-01-01T00:00:00.010Z"),
        ("a/b/d", None, "1970-01-01T00:00:00.010Z"),
    ]
    kept_c, kept_d = index._encoded["a/b/c"], index._encoded["a/b/d"]
    index.apply(points([("a/b/d", 11, 3.0), ("a/b/c", 9, 9.0)]))  # c: older, ignored
    index.encoded_under("a/b")
    assert index._encoded["a/b/c"] is kept_c  # unchanged: not encoded again
    assert index._encoded["a/b/d"] is not kept_d  # changed: encoded again
    index.apply(points([("a/b/e", 1, 4.0)]))  # a new tag under an asked prefix
    rows = orjson.loads(b"[" + index.encoded_under("a/b") + b"]")
    want = [("a/b/c", 1.0), ("a/b/d", 3.0), ("a/b/e", 4.0)]
    assert [(r["tag"], r["value"]) for r in rows] == want
    assert index.encoded_under("a/b/zz") == b""
    assert [r["tag"] for r in index.under("")] == ["a/b/c", "a/b/d", "a/b/e", "a/bc/x"]


def test_latest_index_keeps_a_prefix_join_until_a_row_changes():
    """Reads between two writes share the join; any change (or a new tag) makes a new one."""
    import orjson
    import pyarrow as pa

    from indunet.api.routes.series import LatestIndex

    def points(rows):
        tags, ts, values = zip(*rows, strict=True)
        return pa.table(
            {
                "tag": list(tags),
                "ts": pa.array(ts, pa.int64()),
                "value": pa.array(values, pa.float64()),
                "text": pa.array([None] * len(rows), pa.string()),
                "quality": pa.array([0] * len(rows), pa.uint8()),
            }
        )

    def values(raw):
        return [(r["tag"], r["value"]) for r in orjson.loads(b"[" + raw + b"]")]

    index = LatestIndex()
    index.apply(points([("a/b/c", 10, 1.0), ("x/y/z", 10, 2.0)]))
    first = index.encoded_under("a/b")
    assert index.encoded_under("a/b") is first  # nothing changed: the same bytes
    index.apply(points([("a/b/c", 9, 5.0)]))  # older: no row changes
    assert index.encoded_under("a/b") is first
    index.apply(points([("a/b/c", 10, 7.0)]), seed=True)  # a seed never replaces an equal ts
    assert index.encoded_under("a/b") is first
    index.apply(points([("x/y/z", 11, 3.0)]))  # a change elsewhere: joined again, same content
    kept_at = index._joined["a/b"][0]
    assert index.encoded_under("a/b") == first
    assert index._joined["a/b"][0] == kept_at + 1  # joined again, at the new change
    index.apply(points([("a/b/c", 12, 8.0)]))
    assert values(index.encoded_under("a/b")) == [("a/b/c", 8.0)]
    index.apply(points([("a/b/d", 1, 9.0)]))  # a new tag under the prefix
    assert values(index.encoded_under("a/b")) == [("a/b/c", 8.0), ("a/b/d", 9.0)]
    for i in range(5000):  # many prefixes: the kept joins stay bounded
        index.encoded_under(f"p{i}")
    assert len(index._joined) <= 4096


def test_latest_index_readers_beside_a_writer_thread_see_whole_rows_never_older():
    """Readers take no lock: each answer is whole JSON, every tag is there once added, and a
    tag's ``ts`` never goes back between two answers; the last answer is the last write."""
    import threading

    import orjson
    import pyarrow as pa

    from indunet.api.routes.series import LatestIndex

    tags = [f"s/a/l/m{i:02d}/t" for i in range(50)]

    def points(ts: int, names: list[str]) -> pa.Table:
        n = len(names)
        return pa.table(
            {
                "tag": names,
                "ts": pa.array([ts] * n, pa.int64()),
                "value": pa.array([float(ts)] * n, pa.float64()),
                "text": pa.array([None] * n, pa.string()),
                "quality": pa.array([0] * n, pa.uint8()),
            }
        )

    index = LatestIndex()
    index.apply(points(0, tags[:10]))
    done = threading.Event()

    def writer() -> None:
        for ts in range(1, 400):
            index.apply(points(ts, tags[: 10 + ts // 10]))  # more tags as it goes
        done.set()

    seen: dict[str, int] = {}
    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        rows = orjson.loads(b"[" + index.encoded_under("s/a") + b"]")
        assert len(rows) >= 10 and [r["tag"] for r in rows] == sorted(r["tag"] for r in rows)
        for r in rows:
            assert r["ts"] >= seen.get(r["tag"], 0) and r["value"] == float(r["ts"])
            seen[r["tag"]] = r["ts"]
    thread.join()
    rows = orjson.loads(b"[" + index.encoded_under("s/a") + b"]")
    assert [(r["tag"], r["ts"]) for r in rows] == [(t, 399) for t in tags[:49]]
