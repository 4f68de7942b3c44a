"""Reads never starve writes: the read gate on the event loop and the writes' thread lane."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anyio.to_thread
import httpx
import pytest

from indunet.api.app import create_app
from indunet.api.lanes import ReadGate, TurnGate, run_first
from indunet.auth.store import AuthStore

WAIT_S = 5.0  # for events that must come; never a fixed sleep


class HeldApp:
    """An ASGI app whose requests are held until their path's event is set."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        self.entered.append(path)
        self.arrived.set()
        if path.startswith("/stream"):
            start = {"type": "http.response.start", "status": 200}
            start["headers"] = [(b"content-type", b"text/event-stream")]
            await send(start)
        if path.startswith("/fail"):
            raise RuntimeError("the app failed")
        await self.release.setdefault(path, asyncio.Event()).wait()
        if not path.startswith("/stream"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(gate: ReadGate, method: str, path: str) -> asyncio.Task[None]:
    scope = {"type": "http", "method": method, "path": path, "headers": []}

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        return None

    return asyncio.ensure_future(gate(scope, receive, send))


async def entered(app: HeldApp, path: str) -> None:
    async def seen() -> None:
        while path not in app.entered:
            app.arrived.clear()
            await app.arrived.wait()

    await asyncio.wait_for(seen(), WAIT_S)


async def settle() -> None:
    for _ in range(20):  # let every ready task run its steps (no wall-clock wait)
        await asyncio.sleep(0)


def release(app: HeldApp, path: str) -> None:
    app.release.setdefault(path, asyncio.Event()).set()


def test_reads_beyond_the_slots_wait_while_writes_pass():
    async def run() -> None:
        app = HeldApp()
        gate = ReadGate(app, slots=2)
        reads = [call(gate, "GET", f"/r{i}") for i in range(3)]
        await entered(app, "/r1")
        await settle()
        assert app.entered == ["/r0", "/r1"]  # the third read waits for a slot
        write = call(gate, "POST", "/w")
        head = call(gate, "HEAD", "/h")
        await entered(app, "/w")  # a write goes in at once
        assert "/h" not in app.entered and gate.waited == 2  # HEAD is a read
        release(app, "/w")
        await asyncio.wait_for(write, WAIT_S)
        release(app, "/r0")
        await entered(app, "/r2")  # r0's slot went to the first waiting read
        for path in ("/r1", "/r2", "/h"):
            release(app, path)
        await asyncio.wait_for(asyncio.gather(*reads, head), WAIT_S)
        assert app.entered[-1] == "/h"

    asyncio.run(run())


def test_a_stream_gives_its_slot_up_when_it_starts_and_a_failure_frees_it():
    async def run() -> None:
        app = HeldApp()
        gate = ReadGate(app, slots=1)
        stream = call(gate, "GET", "/stream")
        await entered(app, "/stream")
        failed = call(gate, "GET", "/fail")  # the stream no longer holds the slot
        await entered(app, "/fail")
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(failed, WAIT_S)
        after = call(gate, "GET", "/after")  # the failed read let its slot go
        await entered(app, "/after")
        release(app, "/after")
        release(app, "/stream")
        await asyncio.wait_for(asyncio.gather(after, stream), WAIT_S)

    asyncio.run(run())


def test_a_slow_read_gives_its_slot_up_after_hold_s_and_probes_never_wait():
    async def run() -> None:
        app = HeldApp()
        gate = ReadGate(app, slots=1, hold_s=0.05)
        slow = call(gate, "GET", "/report")
        await entered(app, "/report")
        probe = call(gate, "GET", "/health")
        await entered(app, "/health")  # while the slot is taken
        nxt = call(gate, "GET", "/next")
        await entered(app, "/next")  # let in once the slow read's hold ran out
        assert "/report" not in app.release or not app.release["/report"].is_set()
        for path in ("/report", "/health", "/next"):
            release(app, path)
        await asyncio.wait_for(asyncio.gather(slow, probe, nxt), WAIT_S)

    asyncio.run(run())


def test_no_slots_means_no_gate():
    async def run() -> None:
        app = HeldApp()
        gate = ReadGate(app, slots=0)
        reads = [call(gate, "GET", f"/r{i}") for i in range(5)]
        await entered(app, "/r4")
        assert gate.waited == 0
        for i in range(5):
            release(app, f"/r{i}")
        await asyncio.wait_for(asyncio.gather(*reads), WAIT_S)

    asyncio.run(run())


def test_a_post_is_stored_and_read_back_while_reads_fill_every_slot(settings_factory):
    """The real app: two held reads fill the slots; a third read waits, an ingest post does not,
    and once the reads go on, the waiting read sees the post (read-your-writes)."""
    app = create_app(settings_factory(http_read_slots=2))
    tag, line = "s1/a/l1/m1/power_kw", {"prefix": "s1/a/l1"}

    async def run() -> None:
        go_on = asyncio.Event()
        inside = asyncio.Semaphore(0)

        async def slow() -> dict:
            inside.release()
            await go_on.wait()
            return {"ok": True}

        app.add_api_route("/test-slow", slow, methods=["GET"])
        async with app.router.lifespan_context(app):
            key = AuthStore(app.state.historian).create_key(
                "demo", "admin", name="t", now_ms=int(time.time() * 1000)
            )
            auth = {"Authorization": f"Bearer {key.secret}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                slows = [asyncio.ensure_future(c.get("/test-slow")) for _ in range(2)]
                for _ in slows:
                    await asyncio.wait_for(inside.acquire(), WAIT_S)
                waiting = asyncio.ensure_future(c.get("/api/v1/latest", params=line, headers=auth))
                await settle()
                assert not waiting.done()
                ts = int(time.time() * 1000)
                posted = await asyncio.wait_for(
                    c.post(
                        "/api/v1/ingest", json=[{"tag": tag, "ts": ts, "value": 4.5}], headers=auth
                    ),
                    WAIT_S,
                )
                assert posted.status_code == 200 and posted.json()["stored"] == 1
                assert not waiting.done()  # still behind the held reads
                go_on.set()
                got = await asyncio.wait_for(waiting, WAIT_S)
                assert got.status_code == 200, got.text
                assert [(r["tag"], r["ts"], r["value"]) for r in got.json()["rows"]] == [
                    (tag, ts, 4.5)
                ]
                assert [r.status_code for r in await asyncio.gather(*slows)] == [200, 200]

    asyncio.run(run())


def test_writes_and_key_checks_have_their_own_thread_lane(settings_factory):
    """With every read thread busy, `run_first` still runs at once; a read waits its turn."""
    app = create_app(settings_factory(http_read_threads=1))

    async def run() -> None:
        async with app.router.lifespan_context(app):
            assert anyio.to_thread.current_default_thread_limiter().total_tokens == 1
            busy, done = threading.Event(), threading.Event()

            def block() -> None:
                busy.set()
                done.wait(WAIT_S)

            reading = asyncio.ensure_future(anyio.to_thread.run_sync(block))
            while not busy.is_set():
                await asyncio.sleep(0.001)
            another = asyncio.ensure_future(anyio.to_thread.run_sync(lambda: "read"))
            first = await asyncio.wait_for(run_first(app, lambda x: x * 2, 21), WAIT_S)
            assert first == 42
            await settle()
            assert not another.done()  # the read pool's one thread is still taken
            done.set()
            assert await asyncio.wait_for(another, WAIT_S) == "read"
            await reading

    asyncio.run(run())


# --- TurnGate: a write in progress gets turns of the loop with few fast reads in them ---


class _Write:
    """A write held in progress until ``done`` is set (or failing when ``fail``)."""

    def __init__(self, fail: bool = False) -> None:
        self.done = asyncio.Event()
        self.fail = fail

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.done.wait()
        if self.fail:
            raise RuntimeError("the write failed")


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def _readers(gate: TurnGate, n: int, passed: list[int]) -> list[asyncio.Task[None]]:
    async def reader(i: int) -> None:
        await gate.read()
        passed.append(i)

    return [asyncio.ensure_future(reader(i)) for i in range(n)]


def test_turn_gate_lets_reads_through_at_once_without_a_write():
    async def main() -> None:
        gate = TurnGate(2)
        passed: list[int] = []
        tasks = _readers(gate, 10, passed)
        await _turns(1)
        assert passed == list(range(10)) and gate.waited == 0
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_turn_gate_spreads_reads_over_turns_while_a_write_runs_first_come_first_served():
    async def main() -> None:
        gate = TurnGate(3)
        write = _Write()
        writing = asyncio.ensure_future(gate.write(write, {}, None, None))
        await _turns(1)
        assert gate.writes == 1
        passed: list[int] = []
        tasks = _readers(gate, 12, passed)
        await _turns(1)
        assert 0 < len(passed) <= 3  # one turn's allowance, not all twelve
        seen = len(passed)
        for _ in range(40):
            await _turns(1)
            assert len(passed) - seen <= 3  # at most the allowance per turn
            seen = len(passed)
        assert passed == list(range(12))  # all answered while the write runs, in order
        assert gate.waited >= 9
        write.done.set()
        await writing
        assert gate.writes == 0
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_turn_gate_releases_every_waiting_read_when_the_write_ends():
    async def main() -> None:
        gate = TurnGate(1)
        write = _Write(fail=True)
        writing = asyncio.ensure_future(gate.write(write, {}, None, None))
        await _turns(1)
        passed: list[int] = []
        tasks = _readers(gate, 20, passed)
        await _turns(1)
        assert len(passed) <= 1
        write.done.set()  # the write ends (failing): its count is given back all the same
        with pytest.raises(RuntimeError):
            await writing
        assert gate.writes == 0
        await _turns(3)
        assert sorted(passed) == list(range(20))
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_turn_gate_skips_readers_gone_and_zero_means_no_limit():
    async def main() -> None:
        gate = TurnGate(1)
        write = _Write()
        writing = asyncio.ensure_future(gate.write(write, {}, None, None))
        await _turns(1)
        passed: list[int] = []
        tasks = _readers(gate, 6, passed)
        await _turns(1)
        for t in tasks[1:4]:
            t.cancel()  # clients gone while waiting
        for _ in range(20):
            await _turns(1)
        assert passed == [0, 4, 5]
        write.done.set()
        await writing

        free = TurnGate(0)
        other = _Write()
        writing = asyncio.ensure_future(free.write(other, {}, None, None))
        await _turns(1)
        passed.clear()
        more = _readers(free, 10, passed)
        await _turns(1)
        assert passed == list(range(10)) and free.waited == 0
        other.done.set()
        await asyncio.gather(writing, *more)

    asyncio.run(main())


def test_the_app_counts_its_writes_on_the_turn_gate(duck_client):
    gate = duck_client.app.turn_gate
    assert (
        gate is not None
        and gate.per_turn == duck_client.app.state.settings.http_fast_reads_per_turn
    )
    assert (
        duck_client.post(
            "/api/v1/ingest", json=[{"tag": "s/a/l/m/t", "ts": 1, "value": 1}]
        ).status_code
        == 200
    )
    assert gate.writes == 0  # counted in, and out again
