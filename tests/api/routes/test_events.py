"""GET /api/v1/events (SSE) through a real uvicorn server and an httpx streaming client."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pyarrow as pa
import pytest
import uvicorn

from indunet.api.app import create_app
from indunet.api.events import EventBus, StreamEvent
from indunet.api.live import ValueFeed
from indunet.auth.store import AuthStore
from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.plant.alarm_service import AlarmService
from indunet.store import open_historian

TEMP = "s1/press/l1/m1/temp_c"
RULES = [{"id": "hot", "kind": "high", "tag": TEMP, "limit": 80.0, "deadband": 5.0}]


def _write(historian, rows: list[tuple[int, float]]) -> None:
    table = pa.table(
        {
            "tag": [TEMP] * len(rows),
            "ts": pa.array([r[0] for r in rows], pa.int64()),
            "value": pa.array([r[1] for r in rows], pa.float64()),
            "text": pa.array([None] * len(rows), pa.string()),
            "quality": pa.array([0] * len(rows), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    historian.write(PointBatch("demo", table, {TEMP: DataType.NUMBER}))


@pytest.fixture
def server(settings_factory) -> Iterator[tuple[str, AlarmService, EventBus, dict[str, str]]]:
    """Serve the app on a free port with an alarm service; also yield a viewer key's header."""
    settings = settings_factory(plant={"alarms": RULES})
    historian = open_historian(settings)
    now = int(time.time() * 1000)
    _write(historian, [(now - 10_000, 20.0)])
    key = AuthStore(historian).create_key("demo", "viewer", now_ms=now).secret
    app = create_app(settings, historian)
    service = AlarmService(
        historian, settings, publish=lambda rows: app.state.events.publish_alarms(rows)
    )
    app.state.alarms = service
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    yield f"http://127.0.0.1:{port}", service, app.state.events, {"Authorization": f"Bearer {key}"}
    srv.should_exit = True
    thread.join(10)
    historian.close()


def _read_events(response: httpx.Response, n: int) -> list[dict]:
    """Read ``n`` events (id, event, data) from an SSE response."""
    out: list[dict] = []
    current: dict = {}
    for line in response.iter_lines():
        if line == "":
            if "event" in current:
                out.append(current)
                if len(out) == n:
                    return out
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = value
    return out


def test_live_alarm_events_and_replay(server) -> None:
    base, service, bus, auth = server
    assert httpx.get(f"{base}/api/v1/events", timeout=5).status_code == 401  # anonymous
    now = int(time.time() * 1000)
    service.run_once(now - 9000)
    got: list[dict] = []

    def listen() -> None:
        with httpx.stream(
            "GET", f"{base}/api/v1/events", params={"kinds": "alarm"}, headers=auth, timeout=20
        ) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            got.extend(_read_events(r, 2))

    listener = threading.Thread(target=listen)
    listener.start()
    deadline = time.monotonic() + 10
    while bus.status()["subscribers"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)  # the stream has subscribed once the bus counts it
    assert bus.status()["subscribers"] == 1
    _write(service.historian, [(now - 8000, 90.0)])
    service.run_once(now - 7000)
    _write(service.historian, [(now - 6000, 70.0)])
    service.run_once(now - 5000)
    listener.join(15)
    assert [(e["id"], e["event"]) for e in got] == [("alarm:1", "alarm"), ("alarm:2", "alarm")]
    first = json.loads(got[0]["data"])
    assert (first["kind"], first["alarm_id"], first["value"]) == ("raised", f"hot@{TEMP}", 90.0)
    assert json.loads(got[1]["data"])["kind"] == "returned"

    # reconnecting with Last-Event-ID replays what came after it from the events table
    with httpx.stream(
        "GET", f"{base}/api/v1/events", headers={**auth, "Last-Event-ID": "alarm:1"}, timeout=20
    ) as r:
        replayed = _read_events(r, 1)
    assert [(e["id"], json.loads(e["data"])["kind"]) for e in replayed] == [("alarm:2", "returned")]

    bad = httpx.get(
        f"{base}/api/v1/events", headers={**auth, "Last-Event-ID": "garbage"}, timeout=5
    )
    assert bad.status_code == 422 and "KIND:SEQ" in bad.text


def test_bus_bounds_each_subscriber_and_counts_drops() -> None:
    async def run() -> tuple[list[int], int, int, dict]:
        bus = EventBus(max_queue=3)
        slow = bus.subscribe()
        other = bus.subscribe(frozenset({"state"}))
        bus.publish([StreamEvent("alarm", i, {"n": i}) for i in range(1, 6)])
        events, dropped = slow.take()
        other_events, _ = other.take()
        status = bus.status()
        bus.unsubscribe(slow)
        return [e.seq for e in events], dropped, len(other_events), status

    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the main thread's loop
    try:
        seqs, dropped, other, status = loop.run_until_complete(run())
    finally:
        loop.close()
    assert seqs == [3, 4, 5] and dropped == 2  # the oldest are dropped, and counted
    assert other == 0  # a subscriber to other kinds gets none
    assert status == {"subscribers": 2, "published": 5, "dropped": 2}


# ---------------------------------------------------------------------------- values and states
def _points(enterprise: str, rows: list[tuple[str, int, object]]) -> PointBatch:
    """A batch of (tag, ts, value) rows; text values make text points."""
    return PointBatch(
        enterprise,
        pa.table(
            {
                "tag": [r[0] for r in rows],
                "ts": pa.array([r[1] for r in rows], pa.int64()),
                "value": pa.array(
                    [None if isinstance(r[2], str) else float(r[2]) for r in rows], pa.float64()
                ),
                "text": pa.array([r[2] if isinstance(r[2], str) else None for r in rows]),
                "quality": pa.array([0] * len(rows), pa.uint8()),
            },
            schema=POINT_SCHEMA,
        ),
    )


def _in_loop(coro_fn):
    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the main thread's loop
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def test_values_coalesce_per_tag_and_stay_in_the_served_enterprise(settings_factory) -> None:
    historian = open_historian(settings_factory())
    try:

        async def run():
            bus = EventBus()
            feed = ValueFeed(bus, "demo")
            historian.write_listeners.append(feed.on_write)
            nobody = feed.flush()  # nothing pending
            historian.write(_points("demo", [(TEMP, 1000, 1.0)]))  # nobody listens yet: skipped
            skipped = feed.points
            sub = bus.subscribe(frozenset({"values"}))
            # a burst: 100,000 points over 200 tags, in 4 writes, plus another tenant's points
            tags = [f"s1/press/l1/m{i % 20}/t{i // 20}" for i in range(200)]
            for part in range(4):
                rows = [
                    (tags[i % 200], 10_000 + part * 25_000 + i, float(part * 25_000 + i))
                    for i in range(25_000)
                ]
                historian.write(_points("demo", rows))
                historian.write(_points("acme", [("s1/press/l1/m1/secret", 5000 + part, 99.0)]))
            historian.write(_points("demo", [(TEMP, 2000, "late text"), (TEMP, 3000, 7.0)]))
            historian.write(_points("demo", [(TEMP, 2500, 6.0)]))  # older than the pending one
            published = feed.flush()
            events, dropped = sub.take()
            historian.write(_points("demo", [(tags[0], 5, 1.0)]))  # older than the one sent
            historian.write(_points("demo", [(tags[1], 10**9, 2.0)]))
            feed.flush()
            later, _ = sub.take()
            return nobody, skipped, published, events, dropped, later, feed.status()

        nobody, skipped, published, events, dropped, later, status = _in_loop(run)
    finally:
        historian.close()
    assert nobody == 0 and skipped == 0
    assert published == 201 and dropped == 0
    assert len(events) == 1  # 100,001 points became one event
    event = events[0]
    assert event.kind == "values" and event.data["enterprise"] == "demo"
    rows = {r["tag"]: r for r in event.data["values"]}
    assert len(rows) == 201 and not any("secret" in t for t in rows)  # never another tenant's
    last = rows["s1/press/l1/m19/t9"]  # i = 199 + 200k in the last part: the newest
    assert (last["ts"], last["value"], last["quality"]) == (
        10_000 + 75_000 + 24_999,
        99_999.0,
        0,
    )
    assert (rows[TEMP]["ts"], rows[TEMP]["value"]) == (3000, 7.0)
    assert "id:" not in event.sse(with_id=False) and event.sse().startswith("id: values:1\n")
    # the late point of tags[0] is left out; the new one of tags[1] is the next event
    assert [(e.seq, [r["tag"] for r in e.data["values"]]) for e in later] == [
        (2, ["s1/press/l1/m1/t0"])
    ]
    assert status["overflow"] == 0 and status["events"] == 2


def test_values_pending_are_bounded_by_tag_count() -> None:
    async def run():
        bus = EventBus()
        feed = ValueFeed(bus, "demo", max_tags=3)
        bus.subscribe()
        table = _points("demo", [(f"s/a/l/m/t{i}", 1, float(i)) for i in range(10)]).table
        newest = table.select(["tag", "ts", "value", "text", "quality"])
        feed.on_write("demo", newest)
        feed.on_write("demo", newest)  # the same tags again: replaced, not added
        return feed.flush(), feed.status()

    published, status = _in_loop(run)
    assert published == 3 and status["overflow"] == 14


def test_prefix_filter_keeps_only_what_lies_under_it() -> None:
    values = StreamEvent(
        "values",
        1,
        {"values": [{"tag": "s1/a/l/m/t"}, {"tag": "s10/a/l/m/t"}, {"tag": "s1/b/l/m/t"}]},
    )
    part = values.under("s1/a")
    assert part is not None and [r["tag"] for r in part.data["values"]] == ["s1/a/l/m/t"]
    assert values.under("s1") is not None and len(values.under("s1").data["values"]) == 2
    assert values.under("s2") is None
    state = StreamEvent("state", 1, {"machine": "s1/a/l/m", "state": "running"})
    assert state.under("s1") is state and state.under("s10") is None
    alarm = StreamEvent("alarm", 3, {"source": "derived/oee/s1/a/l/m", "kind": "raised"})
    assert alarm.under("s1/a") is alarm and alarm.under("s1/b") is None
    assert StreamEvent("alarm", 4, {"source": None}).under("s1") is None


def test_live_values_and_states_over_sse(server) -> None:
    base, service, bus, auth = server
    historian = service.historian
    now = int(time.time() * 1000)
    store = AuthStore(historian)
    operator = store.create_key("demo", "operator", now_ms=now).secret
    other = store.create_key("acme", "operator", now_ms=now).secret
    got: list[dict] = []

    def listen() -> None:
        with httpx.stream(
            "GET",
            f"{base}/api/v1/events",
            params={"kinds": "values,state", "prefix": "s1/press"},
            headers=auth,
            timeout=20,
        ) as r:
            assert r.status_code == 200
            got.extend(_read_events(r, 2))

    listener = threading.Thread(target=listen)
    listener.start()
    deadline = time.monotonic() + 10
    while bus.status()["subscribers"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    r = httpx.post(  # another tenant writes a tag of the same name into its own enterprise
        f"{base}/api/v1/ingest",
        params={"enterprise": "acme"},
        json=[{"tag": TEMP, "ts": now, "value": 666}],
        headers={"Authorization": f"Bearer {other}"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["stored"] == 1
    records = [{"tag": TEMP, "ts": now - 1000 + i, "value": i} for i in range(500)]
    records.append({"tag": "s2/weld/l1/m1/temp_c", "ts": now, "value": 5})  # not under prefix
    r = httpx.post(
        f"{base}/api/v1/ingest",
        json=records,
        headers={"Authorization": f"Bearer {operator}"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["stored"] == 501
    app_feed = bus  # the state event comes from the plant watcher's listener
    from indunet.api.live import state_publisher

    state_publisher(app_feed)("s1/press/l1/m1", now, "running", True)
    state_publisher(app_feed)("s9/x/l/m", now, "off", False)  # not under the prefix
    listener.join(15)
    # values are sent in coalesced batches, a state change at once: either may come first
    assert sorted(e["event"] for e in got) == ["state", "values"]
    assert all("id" not in e for e in got)  # only alarms carry SSE ids (Last-Event-ID)
    got.sort(key=lambda e: e["event"] != "values")
    values = json.loads(got[0]["data"])
    assert values["enterprise"] == "demo"
    assert values["values"] == [{"tag": TEMP, "ts": now - 501, "value": 499.0, "quality": 0}]
    state = json.loads(got[1]["data"])
    assert (state["machine"], state["state"], state["planned"]) == (
        "s1/press/l1/m1",
        "running",
        True,
    )

    # another tenant's key cannot open this server's stream; a bad prefix is a 422
    r = httpx.get(f"{base}/api/v1/events", headers={"Authorization": f"Bearer {other}"}, timeout=5)
    assert r.status_code == 403
    r = httpx.get(
        f"{base}/api/v1/events", params={"prefix": "a/b/c/d/e/f"}, headers=auth, timeout=5
    )
    assert r.status_code == 422


def test_andon_events_are_under_their_machine_or_line():
    for_machine = StreamEvent("andon", 1, {"line": "s1/a/l1", "machine": "s1/a/l1/m1"})
    for_line = StreamEvent("andon", 2, {"line": "s1/a/l1", "machine": None})
    assert for_machine.under("s1/a/l1") is for_machine and for_machine.under("s1") is for_machine
    assert for_machine.under("s1/a/l1/m1") is for_machine
    assert for_machine.under("s1/a/l2") is None and for_machine.under("s1/a/l") is None
    assert for_line.under("s1/a") is for_line and for_line.under("s1/a/l1/m1") is None
    assert StreamEvent("andon", 3, {"line": 7}).under("s1") is None  # hostile: not a path
