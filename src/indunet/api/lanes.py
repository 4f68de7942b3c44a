"""Worker-thread lanes: writes and key checks never queue behind reads for a thread.

FastAPI runs every plain ``def`` route (series, pages, reports) and every
``run_in_threadpool`` call in one pool of worker threads (anyio's default limiter, 40
threads). Under a heavy read load all of them hold a query, and an ingest post that needs a
thread (a big post, or the writer busy with MQTT ingest or compaction) or a key to verify waited
behind them, and every runnable thread took its turn at the GIL before the event loop got it
back (issue 22: 64 readers of ``/api/v1/series`` held ingest to 1,886 of 2,000 points/s).

`install` caps the read pool at ``http_read_threads`` (more threads than cores do not make
DuckDB or PostgreSQL reads faster, they only make the wait for the GIL longer) and gives the
writes and key checks their own lane (`run_first`), so they wait at most for another write or
key check, never for the reads. `ReadGate` does the same for the event loop's turns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FIRST_THREADS", "ReadGate", "install", "run_first"]

T = TypeVar("T")
HOLD_S = 1.0  # a read longer than this gives its slot up and goes on
UNGATED = frozenset({"/health", "/ready", "/metrics"})  # probes and scrapes never wait
FIRST_THREADS = 2  # the historian takes one write at a time; a key check may run beside it


def install(app: FastAPI, read_threads: int) -> None:
    """Cap this event loop's read pool and open the lane for writes and key checks (call inside
    the lifespan: the read pool is the running loop's)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = read_threads
    app.state.first_lane = CapacityLimiter(FIRST_THREADS)


async def run_first(app: FastAPI, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a worker thread of the lane for writes and key checks (the read pool
    when `install` was not called)."""
    lane = getattr(app.state, "first_lane", None)
    return await anyio.to_thread.run_sync(fn, *args, limiter=lane)


class ReadGate:
    """Let at most ``slots`` reads (GET, HEAD) be worked on at once; writes pass at once.

    The one event loop serves requests in turns, and every request in progress adds its steps to
    each turn: with 64 readers of a heavy page in progress, each step of an ingest post (read
    the body, check the key, store, answer) waited behind 64 readers' steps. Reads beyond
    ``slots`` wait here, before any work is done for them (a waiting read costs nothing per
    turn), so a write's steps wait behind at most ``slots`` reads'. A read leaves its slot when
    its answer is sent, when an event stream starts (its slot is not held while it streams), or
    after ``hold_s`` (a slow report does not hold the gate shut; it goes on without a slot).
    Probes (`UNGATED`) never wait.
    """

    def __init__(self, app: ASGIApp, slots: int, hold_s: float = HOLD_S) -> None:
        self.app = app
        self.slots = slots
        self.hold_s = hold_s
        self._free = asyncio.Semaphore(slots) if slots > 0 else None
        self.waited = 0  # reads that found every slot taken

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold a slot while a read is worked on; pass anything else on."""
        free = self._free
        if (
            free is None
            or scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"] in UNGATED
        ):
            await self.app(scope, receive, send)
            return
        if free.locked():
            self.waited += 1
        await free.acquire()
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                timer.cancel()
                free.release()

        timer = asyncio.get_running_loop().call_later(self.hold_s, leave)

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start" and _streams(message):
                leave()
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                leave()

        try:
            await self.app(scope, receive, sent)
        finally:
            leave()


def _streams(start: Message) -> bool:
    for key, value in start.get("headers", ()):
        if key.lower() == b"content-type" and value.startswith(b"text/event-stream"):
            return True
    return False
