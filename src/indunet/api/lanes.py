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
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FIRST_THREADS", "ReadGate", "TurnGate", "install", "run_first"]

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


class TurnGate:
    """While a write (any method but GET and HEAD) is in progress, answer at most ``per_turn``
    fast reads per turn of the event loop; the rest wait their turn, first come first served.

    Fast reads (`indunet.api.fastpath`) skip `ReadGate`: each is answered in one step. But 64 of
    them in every turn of the loop still make each turn long, and a write needs several turns
    (read the body, check the key, store, answer): beside uncached ``/latest`` and MQTT ingest,
    HTTP ingest fell to 72-86 % of its rate (issue 22). With a write in progress each turn
    holds at most ``per_turn`` fast reads, so the write's steps come round quickly; readers
    keep being answered meanwhile (never held for a whole write) and all waiting readers go on
    when the last write ends. ``per_turn = 0``: no limit.
    """

    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn
        self.writes = 0  # writes in progress
        self.waited = 0  # reads that waited for a later turn
        self._this_turn = 0
        self._turning = False  # a call at the next turn is scheduled
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def write(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a write, counted as in progress until it ends."""
        self.writes += 1
        try:
            await app(scope, receive, send)
        finally:
            self.writes -= 1
            if not self.writes:
                self._release(len(self._waiting))

    async def read(self) -> None:
        """Return when this fast read may be answered (at once when no write is in progress)."""
        if not self.writes or self.per_turn <= 0:
            return
        if self._this_turn < self.per_turn and not self._waiting:
            self._count()
            return
        self.waited += 1
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._schedule()
        await waiter

    def _count(self) -> None:
        self._this_turn += 1
        self._schedule()

    def _schedule(self) -> None:
        if not self._turning:
            self._turning = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """A new turn: its allowance goes to the readers waiting longest."""
        self._turning = False
        self._this_turn = 0
        self._release(self.per_turn if self.writes else len(self._waiting))
        if self._waiting or self._this_turn:
            self._schedule()

    def _release(self, n: int) -> None:
        while n > 0 and self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():  # a reader gone meanwhile (cancelled) takes no allowance
                waiter.set_result(None)
                self._this_turn += 1
                n -= 1
