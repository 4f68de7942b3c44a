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
