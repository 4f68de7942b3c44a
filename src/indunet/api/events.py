"""The live event stream: a small in-process pub/sub owned by the app, served as SSE.

`EventBus` fans events out to subscribers, each with its own bounded queue: a slow client
loses its oldest events (counted in ``dropped`` and announced to it as a ``dropped`` event),
never blocks the publisher. Events have a kind, a per-kind sequence number and JSON data:

- ``alarm``: an alarm lifecycle event (raised, returned, acknowledged, …), SSE id ``alarm:SEQ``;
- ``values``: the newest value of every tag that changed since the last ``values`` event, at most
  about one per second (`indunet.api.live.ValueFeed` coalesces the historian's writes);
- ``state``: a machine's state changed (from the plant watcher);
- ``andon``: an Andon call was raised, taken, resolved or cancelled (call id, line, machine,
  state), so wall screens redraw their calls at once.

``GET /api/v1/events`` streams them. Only kinds with a replay source (``alarm``) carry an SSE
``id``, so a browser's ``Last-Event-ID`` always names the last alarm it saw, and a client
reconnecting with it first gets the alarms it missed from the alarm events table, then the live
events. ``values``, ``state`` and ``andon`` are not replayed: they describe the present (reload
the page's fragments after a reconnect). ``?prefix=site/area`` limits alarms, values, states and
calls to one part of the plant (which also lets a site-limited grant subscribe).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from indunet.errors import DataError
from indunet.uns import parse_prefix

__all__ = ["EventBus", "StreamEvent", "Subscription", "router", "sse_response"]

router = APIRouter(tags=["events"])

#: replay source of one kind: (after_seq, limit) -> events with seq > after_seq, in order
Replay = Callable[[int, int], list["StreamEvent"]]


def _under(path: object, prefix: str) -> bool:
    """Return whether a tag or machine path lies under ``prefix`` (whole segments)."""
    if not isinstance(path, str):
        return False
    path = path.removeprefix("derived/oee/")  # derived OEE alarms name their machine/line/site
    return path == prefix or path.startswith(prefix + "/")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event on the stream: its kind, per-kind sequence number and JSON-ready data."""

    kind: str
    seq: int
    data: dict[str, Any]
    _text: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def id(self) -> str:
        """Return the SSE id, ``KIND:SEQ``."""
        return f"{self.kind}:{self.seq}"

    def sse(self, with_id: bool = True) -> str:
        """Return the event in text/event-stream framing (encoded once, shared by all clients)."""
        if not self._text:
            body = orjson.dumps(self.data, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
            self._text.append(f"event: {self.kind}\ndata: {body}\n\n")
        return f"id: {self.id}\n{self._text[0]}" if with_id else self._text[0]

    def under(self, prefix: str) -> StreamEvent | None:
        """Return the part of this event under ``prefix`` (None when nothing is)."""
        data = self.data
        if self.kind == "values":
            rows = [r for r in data.get("values", ()) if _under(r.get("tag"), prefix)]
            if not rows:
                return None
            if len(rows) == len(data["values"]):
                return self
            return StreamEvent(self.kind, self.seq, {**data, "values": rows})
        if self.kind == "andon":  # a call for a line or one of its machines
            name = data.get("machine") or data.get("line")
        else:
            name = data.get("machine") if self.kind == "state" else data.get("source")
        return self if _under(name, prefix) else None


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue; filled from any thread, read by one async task."""

    kinds: frozenset[str] | None
    max_queue: int
    loop: asyncio.AbstractEventLoop
    prefix: str = ""
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
        if self.prefix:
            found = event.under(self.prefix)
            if found is None:
                return
            event = found
        with self.lock:
            if len(self.queue) >= self.max_queue:
                self.queue.popleft()
                self.dropped += 1
                self.unread_dropped += 1
            self.queue.append(event)
            if len(self.queue) > 1:
                return  # the reader was already woken for the first one
        self._wake()

    def _wake(self) -> None:
        try:
            if _running_loop() is self.loop:  # published on the loop itself: no self-pipe write
                self.wake.set()
            else:
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
        self._seq: dict[str, int] = {}
        self.published = 0
        self.closed = False

    def set_replay(self, kind: str, replay: Replay) -> None:
        """Register where missed events of ``kind`` are read from (for ``Last-Event-ID``)."""
        self._replay[kind] = replay

    def replayable(self, kind: str) -> bool:
        """Return whether events of ``kind`` can be replayed (and so carry an SSE id)."""
        return kind in self._replay

    def subscribe(self, kinds: frozenset[str] | None = None, prefix: str = "") -> Subscription:
        """Add a subscriber on the running event loop."""
        sub = Subscription(kinds, self.max_queue, asyncio.get_running_loop(), prefix)
        with self._lock:
            self._subs.add(sub)
        return sub

    def has_subscribers(self) -> bool:
        """Return whether anyone listens (publishers may skip work when nobody does)."""
        return bool(self._subs)

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

    def publish_new(self, kind: str, data: dict[str, Any]) -> StreamEvent:
        """Publish one event of a kind numbered by the bus (``values``, ``state``)."""
        with self._lock:
            seq = self._seq[kind] = self._seq.get(kind, 0) + 1
        event = StreamEvent(kind, seq, data)
        self.publish([event])
        return event

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
        self.end_streams()

    def end_streams(self) -> None:
        """End the open streams (their clients reconnect, and replay what they missed)."""
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
            if sub.prefix and event.under(sub.prefix) is None:
                continue
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
            chunk: list[str] = []
            if dropped:
                note = {"dropped": dropped, "total_dropped": sub.dropped}
                chunk.append(f"event: dropped\ndata: {orjson.dumps(note).decode()}\n\n")
            for event in events:
                if event.seq <= seen.get(event.kind, -1):
                    continue  # already sent from the backlog
                chunk.append(event.sse(bus.replayable(event.kind)))
            if chunk:
                yield "".join(chunk)
    finally:
        bus.unsubscribe(sub)


def get_bus(request: Request) -> EventBus:
    """Return the app's event bus, creating it on first use."""
    bus = getattr(request.app.state, "events", None)
    if bus is None:
        bus = EventBus()
        request.app.state.events = bus
    return bus


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(
    request: Request,
    kinds: Annotated[
        str | None,
        Query(description="Comma list of event kinds (default: all): alarm, values, state, andon"),
    ] = None,
    prefix: Annotated[
        str | None,
        Query(max_length=500, description="Only alarms, values and states under this path"),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Replay events after this id")
    ] = None,
    after: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=100,
            description="As the Last-Event-ID header, for a client opening a new stream",
        ),
    ] = None,
    replay_limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
    keepalive_s: Annotated[float, Query(gt=0, le=300)] = 15.0,
) -> StreamingResponse:
    """Stream live events as Server-Sent Events (``event: KIND``, JSON data; alarms have ids)."""
    bus = get_bus(request)
    wanted = None if not kinds else frozenset(k.strip() for k in kinds.split(",") if k.strip())
    try:
        where = parse_prefix(prefix or "")
    except DataError as exc:
        raise HTTPException(422, f"parameter 'prefix': {exc}") from exc
    sub = bus.subscribe(wanted, where)  # subscribe first: nothing falls between replay and live
    backlog: list[StreamEvent] = []
    last_event_id = last_event_id or after
    if last_event_id:
        try:
            backlog = await asyncio.to_thread(bus.replay, last_event_id, wanted, replay_limit)
        except ValueError as exc:
            bus.unsubscribe(sub)
            raise HTTPException(422, str(exc)) from exc
    return _response(_stream(request, bus, sub, backlog, keepalive_s))


def _response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def sse_response(
    request: Request, kinds: frozenset[str], prefix: str, keepalive_s: float = 15.0
) -> StreamingResponse:
    """Stream the live events of some kinds under ``prefix`` (no replay): another route's own
    view of the stream, e.g. a wall screen's (`indunet.web.wall`)."""
    bus = get_bus(request)
    sub = bus.subscribe(kinds, prefix)
    return _response(_stream(request, bus, sub, [], keepalive_s))
