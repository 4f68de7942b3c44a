"""The live event stream: a small in-process pub/sub owned by the app, served as SSE.

`EventBus` fans events out to subscribers, each with its own bounded queue: a slow client
loses its oldest events (counted in ``dropped`` and announced to it as a ``dropped`` event),
never blocks the publisher. Events have a kind (``alarm`` now; later issues add others), an id
``KIND:SEQ`` and JSON data. ``GET /api/v1/events`` streams them; a client reconnecting with
``Last-Event-ID`` first gets the events it missed from the kind's replay source (the alarm
events table), then the live ones.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

__all__ = ["EventBus", "StreamEvent", "Subscription", "router"]

router = APIRouter(tags=["events"])

#: replay source of one kind: (after_seq, limit) -> events with seq > after_seq, in order
Replay = Callable[[int, int], list["StreamEvent"]]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event on the stream: its kind, per-kind sequence number and JSON-ready data."""

    kind: str
    seq: int
    data: dict[str, Any]

    @property
    def id(self) -> str:
        """Return the SSE id, ``KIND:SEQ``."""
        return f"{self.kind}:{self.seq}"

    def sse(self) -> str:
        """Return the event in text/event-stream framing."""
        body = json.dumps(self.data, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n"


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue; filled from any thread, read by one async task."""

    kinds: frozenset[str] | None
    max_queue: int
    loop: asyncio.AbstractEventLoop
    queue: deque[StreamEvent] = field(default_factory=deque)
    dropped: int = 0
    unread_dropped: int = 0
    closed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def offer(self, event: StreamEvent) -> None:
        """Queue an event, dropping the oldest when full (counted)."""
        if self.kinds is not None and event.kind not in self.kinds:
            return
        with self.lock:
            if len(self.queue) >= self.max_queue:
                self.queue.popleft()
                self.dropped += 1
                self.unread_dropped += 1
            self.queue.append(event)
        self._wake()

    def _wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.wake.set)
        except RuntimeError:  # the loop is closed: the client is gone
            self.closed = True

    def take(self) -> tuple[list[StreamEvent], int]:
        """Return the queued events and the drops not yet announced."""
        with self.lock:
            events, self.queue = list(self.queue), deque()
            dropped, self.unread_dropped = self.unread_dropped, 0
            self.wake.clear()
        return events, dropped


class EventBus:
    """Fan events out to subscribers; thread-safe, never blocks the publisher."""

    def __init__(self, max_queue: int = 1000) -> None:
        self.max_queue = max_queue
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._replay: dict[str, Replay] = {}
        self.published = 0
        self.closed = False

    def set_replay(self, kind: str, replay: Replay) -> None:
        """Register where missed events of ``kind`` are read from (for ``Last-Event-ID``)."""
        self._replay[kind] = replay

    def subscribe(self, kinds: frozenset[str] | None = None) -> Subscription:
        """Add a subscriber on the running event loop."""
        sub = Subscription(kinds, self.max_queue, asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove a subscriber."""
        with self._lock:
            self._subs.discard(sub)

    def publish(self, events: list[StreamEvent]) -> None:
        """Offer events to every subscriber (from any thread)."""
        with self._lock:
            subs = list(self._subs)
            self.published += len(events)
        for sub in subs:
            for event in events:
                sub.offer(event)

    def publish_alarms(self, rows: list[dict[str, Any]]) -> None:
        """Publish stored alarm event rows (the `AlarmService` hook)."""
        self.publish([StreamEvent("alarm", int(r["seq"]), r) for r in rows])

    def replay(self, last_event_id: str, kinds: frozenset[str] | None, limit: int) -> list:
        """Return the events after ``last_event_id`` (``KIND:SEQ``) from its kind's source."""
        kind, sep, seq = last_event_id.partition(":")
        if not sep or not seq.strip().lstrip("-").isdigit():
            raise ValueError(f"Last-Event-ID {last_event_id!r} is not KIND:SEQ (e.g. alarm:42)")
        source = self._replay.get(kind)
        if source is None or (kinds is not None and kind not in kinds):
            return []
        return source(int(seq), limit)

    def close(self) -> None:
        """End every stream (at shutdown)."""
        self.closed = True
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.closed = True
            sub._wake()

    def status(self) -> dict[str, Any]:
        """Return subscriber count, published and dropped totals for /health."""
        with self._lock:
            subs = list(self._subs)
        return {
            "subscribers": len(subs),
            "published": self.published,
            "dropped": sum(s.dropped for s in subs),
        }


async def _stream(
    request: Request,
    bus: EventBus,
    sub: Subscription,
    backlog: list[StreamEvent],
    keepalive_s: float,
) -> AsyncIterator[str]:
    seen: dict[str, int] = {}
    idle_s = 0.0
    try:
        yield "retry: 3000\n\n"
        for event in backlog:
            seen[event.kind] = max(seen.get(event.kind, 0), event.seq)
            yield event.sse()
        while not (sub.closed or bus.closed):
            try:
                await asyncio.wait_for(sub.wake.wait(), timeout=min(keepalive_s, 1.0))
            except TimeoutError:
                if await request.is_disconnected():
                    return
                idle_s += 1.0
                if idle_s >= keepalive_s:
                    idle_s = 0.0
                    yield ": keepalive\n\n"
                continue
            idle_s = 0.0
            events, dropped = sub.take()
            if dropped:
                note = {"dropped": dropped, "total_dropped": sub.dropped}
                yield f"event: dropped\ndata: {json.dumps(note)}\n\n"
            for event in events:
                if event.seq <= seen.get(event.kind, -1):
                    continue  # already sent from the backlog
                yield event.sse()
    finally:
        bus.unsubscribe(sub)


def get_bus(request: Request) -> EventBus:
    """Return the app's event bus, creating it on first use."""
    bus = getattr(request.app.state, "events", None)
    if bus is None:
        bus = EventBus()
        request.app.state.events = bus
    return bus


@router.get("/events", response_class=StreamingResponse)
async def events(
    request: Request,
    kinds: Annotated[
        str | None, Query(description="Comma list of event kinds (default: all), e.g. alarm")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Replay events after this id")
    ] = None,
    replay_limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
    keepalive_s: Annotated[float, Query(gt=0, le=300)] = 15.0,
) -> StreamingResponse:
    """Stream live events as Server-Sent Events (``id: KIND:SEQ``, ``event: KIND``, JSON data)."""
    bus = get_bus(request)
    wanted = None if not kinds else frozenset(k.strip() for k in kinds.split(",") if k.strip())
    sub = bus.subscribe(wanted)  # subscribe first, so nothing falls between replay and live
    backlog: list[StreamEvent] = []
    if last_event_id:
        try:
            backlog = await asyncio.to_thread(bus.replay, last_event_id, wanted, replay_limit)
        except ValueError as exc:
            bus.unsubscribe(sub)
            raise HTTPException(422, str(exc)) from exc
    return StreamingResponse(
        _stream(request, bus, sub, backlog, keepalive_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
