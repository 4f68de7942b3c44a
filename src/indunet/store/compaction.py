"""Background compaction of closed hours: `serve` keeps queries fast without a manual step.

Live ingest appends small batches in arrival order, so one tag's points of an hour are spread
over the whole hour's storage. `HourCompactor` watches the historian's writes (a change
listener: which hours each batch touched) and, once an hour is closed (its end plus a grace
period for late data has passed), rewrites it sorted by (tag, time) and recomputes its hourly
roll-ups — in chunks, each one short transaction, yielding to the writer between chunks (see
`DuckDBHistorian.compact_hour`). A later write into a compacted hour marks it again.

Once a whole day (UTC) is closed and its hours are compacted, the day is merged into one run
per tag (`DuckDBHistorian.compact_day`), so a day's query reads one or two row groups per tag
instead of 24 — what a manual ``compact()`` gives, without the manual step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from indunet.store.base import DAY_MS, HOUR_MS

__all__ = ["CompactionSettings", "HourCompactor"]

log = logging.getLogger(__name__)
_MAX_MARKED = 10_000  # hours one write may mark; more and the database is asked instead


class CompactionSettings(BaseModel):
    """``[compaction]``: how `serve` compacts closed hours in the background (DuckDB)."""

    enabled: bool = True
    grace_s: float = Field(120.0, ge=0, description="Wait this long after an hour's end.")
    lookback_hours: int = Field(
        48, ge=0, description="At start-up, look this far back for hours not compacted yet."
    )
    chunk_rows: int = Field(200_000, gt=0, description="Points per chunk (one transaction).")
    pause_s: float = Field(0.005, ge=0, description="The writer's turn between chunks.")
    interval_s: float = Field(5.0, gt=0, description="How often to look for closed hours.")
    days: bool = Field(True, description="Merge each closed day's hours into one run per tag.")


def _wall_ms() -> int:
    return int(time.time() * 1000)


class HourCompactor:
    """Compact the historian's closed hours in a thread of its own.

    ``clock`` (epoch ms) decides which hours are closed; tests give their own.
    """

    def __init__(
        self,
        historian: Any,
        settings: CompactionSettings | None = None,
        *,
        clock: Callable[[], int] = _wall_ms,
    ) -> None:
        self.historian = historian
        self.settings = settings or CompactionSettings()
        self.clock = clock
        self.dirty: set[int] = set()  # hour starts (ms) written since their last compaction
        self.dirty_days: set[int] = set()  # days (ms) whose hours were compacted since
        self.compacted_days = 0
        #: the hour and the day being compacted now: still pending until done
        self._working_hours: set[int] = set()
        self._working_days: set[int] = set()
        self.compacted = 0  # hours compacted
        self.points = 0  # points rewritten
        self.failures = 0
        self.last_error: str | None = None
        self._guard = threading.Lock()
        self._rescan = False  # a write spanned too many hours to mark one by one
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: told the hour start after each hour compacted (on the compactor's thread)
        self.compacted_listeners: list[Callable[[int], None]] = []
        historian.change_listeners.append(self.on_change)

    def on_change(self, enterprise: str, lo_ms: int, hi_ms: int) -> None:
        """Mark the hours a stored batch touched (a historian change listener: quick)."""
        first, last = lo_ms // HOUR_MS, hi_ms // HOUR_MS
        with self._guard:
            if last - first > _MAX_MARKED:  # a long backfill: the compactor's thread scans
                self._rescan = True
                self._wake.set()
            else:
                self.dirty.update(h * HOUR_MS for h in range(first, last + 1))

    def seed(self) -> int:
        """Mark the hours of the lookback window that changed since their last compaction."""
        since = self.clock() - self.settings.lookback_hours * HOUR_MS
        hours = self.historian.hours_to_compact(since)
        days = self.historian.days_to_compact(since) if self.settings.days else []
        with self._guard:
            self.dirty.update(hours)
            self.dirty_days.update(days)
        return len(hours)

    def closed(self) -> list[int]:
        """Return the marked hours that are closed now, oldest first."""
        limit = self.clock() - int(self.settings.grace_s * 1000)
        with self._guard:
            rescan, self._rescan = self._rescan, False
        if rescan:
            found = self.historian.hours_to_compact(0)
            with self._guard:
                self.dirty.update(found)
        with self._guard:
            return sorted(h for h in self.dirty if h + HOUR_MS <= limit)

    def run_once(self) -> int:
        """Compact every closed marked hour (then merge closed days); return the hours done."""
        done = self._compact_each(
            self.closed(), self.dirty, self._working_hours, self.historian.compact_hour, "hour"
        )
        if self.settings.days and not self._stop.is_set():
            self.merge_days()
        return done

    def closed_days(self) -> list[int]:
        """Return the marked days that are closed and have no hour left to compact."""
        limit = self.clock() - int(self.settings.grace_s * 1000)
        with self._guard:
            hours = {h // DAY_MS * DAY_MS for h in self.dirty}
            return sorted(d for d in self.dirty_days if d + DAY_MS <= limit and d not in hours)

    def merge_days(self) -> int:
        """Merge every closed marked day into one sorted run per tag; return how many."""
        return self._compact_each(
            self.closed_days(), self.dirty_days, self._working_days, self.historian.compact_day,
            "day",
        )  # fmt: skip

    def _compact_each(
        self,
        starts: list[int],
        dirty: set[int],
        working: set[int],
        compact: Callable[..., int],
        what: str,
    ) -> int:
        """Compact each hour or day of ``starts`` in turn; a failure keeps it marked and stops
        the round (ingest goes on; it is tried again later). Return how many were done."""
        done = 0
        for start in starts:
            if self._stop.is_set():
                break
            with self._guard:
                dirty.discard(start)  # a write from now on marks it again
                working.add(start)  # ... and it stays pending until done
            try:
                self.points += compact(
                    start, chunk_rows=self.settings.chunk_rows, pause_s=self.settings.pause_s
                )
            except Exception as exc:
                with self._guard:
                    dirty.add(start)
                    working.discard(start)
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("compaction of %s %d failed: %s", what, start, self.last_error)
                break
            done += 1
            with self._guard:
                working.discard(start)
                if what == "hour" and self.settings.days:
                    self.dirty_days.add(start // DAY_MS * DAY_MS)
            if what == "hour":
                self.compacted += 1
                for listener in list(self.compacted_listeners):
                    listener(start)
            else:
                self.compacted_days += 1
        return done

    def wake(self) -> None:
        """Look for closed hours now instead of at the next interval."""
        self._wake.set()

    def start(self) -> None:
        """Seed from the database, then compact in a daemon thread until `stop`."""
        self.seed()
        self._thread = threading.Thread(target=self._loop, name="hour-compactor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # e.g. the historian closed under us
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("compaction stopped a round: %s", self.last_error)
            self._wake.wait(self.settings.interval_s)
            self._wake.clear()

    def stop(self) -> None:
        """Stop the thread (a chunk under way finishes first) and stop watching writes."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.on_change in self.historian.change_listeners:
            self.historian.change_listeners.remove(self.on_change)

    def status(self) -> dict[str, Any]:
        """Counters for /health and the benches."""
        with self._guard:  # what is being compacted now is still pending
            pending = len(self.dirty | self._working_hours)
            pending_days = len(self.dirty_days | self._working_days)
        return {
            "compacted_hours": self.compacted,
            "compacted_days": self.compacted_days,
            "pending_days": pending_days,
            "points": self.points,
            "pending_hours": pending,
            "failures": self.failures,
            "last_error": self.last_error,
        }
