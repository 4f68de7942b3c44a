"""What the app learns from the historian's writes: live ``values`` and ``state`` events.

`install` (called in the app's lifespan) adds write listeners to the app's historian, so every
write in this process — MQTT ingest in ``indunet serve``/``demo``, ``POST /api/v1/ingest`` —
feeds them:

- `ValueFeed` coalesces the newest value, time and quality per changed tag of the enterprise this
  server serves (never another tenant's) and publishes them as one ``values`` event at most every
  ``interval_s``: a burst of a million points over 200 tags becomes one event of 200 values;
- the `indunet.api.routes.series.LatestCache` drops the enterprise's cached ``/latest`` answers;
- machine state changes of the plant watcher (when one runs) become ``state`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Container
from typing import Any

import pyarrow as pa
from fastapi import FastAPI

from indunet.api.events import EventBus
from indunet.api.routes.series import LatestCache, latest_cache
from indunet.model import DataType

__all__ = ["ValueFeed", "install"]

log = logging.getLogger(__name__)

#: most values in one ``values`` event; a bigger change is split into several events
EVENT_VALUES = 5000


class ValueFeed:
    """Coalesce written points per tag and publish them as ``values`` events, ~1 per second.

    ``on_write`` runs on the writer's thread and only updates a dict (bounded by ``max_tags``);
    the `run` task on the event loop publishes. Points older than the last one published for their
    tag (late or back-filled data) are left out: the event shows what ``/latest`` shows.
    """

    def __init__(
        self,
        bus: EventBus,
        enterprise: str,
        *,
        interval_s: float = 1.0,
        max_tags: int = 200_000,
        booleans: Callable[[], Container[str]] = frozenset,
    ) -> None:
        self.bus = bus
        self.booleans = booleans  # tag paths holding booleans: their values say "type"
        self.enterprise = enterprise
        self.interval_s = interval_s
        self.max_tags = max_tags
        self._pending: dict[str, tuple[int, Any, int]] = {}
        self._sent_ts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.points = 0  # points seen
        self.overflow = 0  # new tags left out while max_tags were pending
        self.events = 0

    def on_write(self, enterprise: str, newest: pa.Table) -> None:
        """Take the newest point per tag of a write (the historian's write listener)."""
        if enterprise != self.enterprise or not self.bus.has_subscribers():
            return
        try:
            cols = [newest.column(c).to_pylist() for c in ("tag", "ts", "value", "text", "quality")]
            with self._lock:
                was_empty = not self._pending
                pending, sent = self._pending, self._sent_ts
                for tag, ts, value, text, quality in zip(*cols, strict=True):
                    old = pending.get(tag)
                    if (old is not None and old[0] > ts) or sent.get(tag, ts) > ts:
                        continue
                    if old is None and len(pending) >= self.max_tags:
                        self.overflow += 1
                        continue
                    if text is None and value is not None and not math.isfinite(value):
                        value = None
                    pending[tag] = (ts, text if text is not None else value, quality)
                self.points += len(cols[0])
                wake = was_empty and bool(pending)
            if wake and self._loop is not None and self._ready is not None:
                self._loop.call_soon_threadsafe(self._ready.set)
        except Exception:  # a listener must never fail the write that already committed
            log.exception("live values: could not take a write")

    def flush(self) -> int:
        """Publish what is pending now; return the number of values published."""
        with self._lock:
            pending, self._pending = self._pending, {}
            if len(self._sent_ts) > 2 * self.max_tags:
                self._sent_ts.clear()
            for tag, (ts, _, _) in pending.items():
                self._sent_ts[tag] = ts
        rows: list[dict[str, Any]] = [
            {"tag": tag, "ts": ts, "value": value, "quality": quality}
            for tag, (ts, value, quality) in sorted(pending.items())
        ]
        booleans = self.booleans()
        for row in rows:
            if row["tag"] in booleans:
                row["type"] = "boolean"
        at = int(time.time() * 1000)  # when published: a client can tell its delivery delay
        for i in range(0, len(rows), EVENT_VALUES):
            self.bus.publish_new(
                "values",
                {"enterprise": self.enterprise, "at": at, "values": rows[i : i + EVENT_VALUES]},
            )
            self.events += 1
        return len(rows)

    async def run(self) -> None:
        """Publish pending values at once, then at most every ``interval_s`` (until cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        while True:
            await self._ready.wait()
            self._ready.clear()
            try:
                self.flush()
            except Exception:
                log.exception("live values: could not publish")
            await asyncio.sleep(self.interval_s)

    def status(self) -> dict[str, int]:
        """Return counters: points seen, values events published, tags left out."""
        return {"points": self.points, "events": self.events, "overflow": self.overflow}


class _BooleanPaths:
    """``path in it``: whether the historian's tag cache knows ``path`` as a boolean tag."""

    def __init__(self, known: dict[str, tuple[int, DataType]]) -> None:
        self.known = known

    def __contains__(self, path: object) -> bool:
        found = self.known.get(path)  # type: ignore[call-overload]
        return found is not None and found[1] == DataType.BOOLEAN


def state_publisher(bus: EventBus) -> Callable[[str, int, str, bool], None]:
    """Return a plant-watcher listener publishing each machine state change as a ``state``."""

    def publish(machine: str, ts_ms: int, state: str, planned: bool) -> None:
        bus.publish_new(
            "state", {"machine": machine, "ts": int(ts_ms), "state": state, "planned": planned}
        )

    return publish


def install(app: FastAPI, bus: EventBus) -> Callable[[], None]:
    """Feed live events and the latest cache from the app's historian; return the undo."""
    historian = app.state.historian
    enterprise = app.state.settings.enterprise

    def booleans() -> Container[str]:
        known = historian._tags.of(enterprise)  # the historian's path -> (id, type) cache
        return _BooleanPaths(known)

    feed = ValueFeed(bus, enterprise, booleans=booleans)
    app.state.value_feed = feed
    cache: LatestCache = latest_cache(app)
    cache.indexed = cache.may_index and historian.backend == "duckdb"  # the only writer
    listeners = [feed.on_write, cache.on_write]
    historian.write_listeners.extend(listeners)
    task = asyncio.get_running_loop().create_task(feed.run(), name="live-values")
    watcher = getattr(app.state, "plant_watcher", None)
    on_state = state_publisher(bus)
    if watcher is not None:
        watcher.on_state_change.append(on_state)

    def undo() -> None:
        task.cancel()
        for listener in listeners:
            with contextlib.suppress(ValueError):
                historian.write_listeners.remove(listener)
        if watcher is not None:
            with contextlib.suppress(ValueError):
                watcher.on_state_change.remove(on_state)

    return undo
