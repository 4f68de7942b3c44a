"""The plant watcher: turns new power points in the historian into stored state timelines.

A thread owned by the ``serve``/``demo`` process. Every ``interval_s`` it reads, per configured
machine, the power (or current) points after the last one it processed, feeds the machine's
`StateTracker` and stores the segments that closed. The open segment stays in memory
(`PlantWatcher.current`). On start it resumes after the newest stored segment, feeding a few
minutes of look-back so hysteresis and dwell have their context.

Bad or stale points are passed as NaN (offline). When the power tag's latest value is marked
stale (a Sparkplug DEATH) and nothing newer came, the tracker is told `death`; a silent machine
goes offline through `StateTracker.tick`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from indunet.config import Settings
from indunet.errors import DataError
from indunet.model import Quality
from indunet.plant.config import MachineConfig, PlantConfig
from indunet.plant.shifts import planned_busy
from indunet.plant.states import STATE_NAMES, StateTimeline, StateTracker, detect_states
from indunet.plant.store import PlantStore
from indunet.store.base import Historian

__all__ = ["PlantWatcher", "StateChange", "power_points", "recompute_range", "usable_values"]

log = logging.getLogger(__name__)

#: a state-change listener: (machine, ts_ms, state, planned)
StateChange = Callable[[str, int, str, bool], None]

LOOKBACK_MS = 10 * 60_000
READ_LIMIT = 200_000


def power_points(
    historian: Historian, enterprise: str, machine: MachineConfig, start_ms: int, end_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return a machine's power samples in ``[start_ms, end_ms)`` as (ts, kW-or-A), NaN if bad."""
    if machine.power_tag is None:
        raise DataError(f"machine {machine.id} has no power_tag; states need power or current")
    tag = f"{machine.id}/{machine.power_tag}"
    parts: list[pa.Table] = []
    lo = start_ms
    while lo < end_ms:
        try:
            t = historian.series(enterprise, tag, lo, end_ms, limit=READ_LIMIT)
        except DataError:
            if historian_has_tag(historian, enterprise, tag):
                raise
            break  # no data yet: the tag does not exist
        parts.append(t)
        if t.num_rows < READ_LIMIT:
            break
        lo = int(t.column("ts")[-1].as_py()) + 1
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0)
    return usable_values(pa.concat_tables(parts))


def usable_values(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Return a series' (ts, value) arrays with NaN where the quality is bad."""
    ts = table.column("ts").to_numpy().astype(np.int64)
    v = table.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
    q = table.column("quality").to_numpy(zero_copy_only=False)
    return ts, np.where(q >= Quality.BAD, np.nan, v)


def historian_has_tag(historian: Historian, enterprise: str, tag: str) -> bool:
    """Return whether the tag exists in the enterprise."""
    try:
        historian.tag(enterprise, tag)
    except DataError:
        return False
    return True


def recompute_range(
    store: PlantStore,
    historian: Historian,
    enterprise: str,
    machine: MachineConfig,
    start_ms: int,
    end_ms: int,
) -> StateTimeline:
    """Recompute and store a machine's timeline for ``[start_ms, end_ms)`` from the historian."""
    if end_ms <= start_ms:
        raise DataError(f"end {end_ms} is not after start {start_ms}")
    if machine.thresholds is None:
        raise DataError(
            f"machine {machine.id} has no thresholds; propose some with "
            "`indunet plant learn-thresholds` and configure them"
        )
    ts, v = power_points(historian, enterprise, machine, start_ms - LOOKBACK_MS, end_ms)
    timeline = detect_states(
        ts,
        v,
        machine.thresholds,
        interval_ms=round(machine.expected_interval_s * 1000),
        offline_after_ms=machine.offline_after_ms,
        start_ms=start_ms,
        end_ms=end_ms,
        machine=machine.id,
    )
    store.replace_segments(enterprise, machine.id, start_ms, end_ms, timeline)
    return store.timeline(enterprise, machine.id, start_ms, end_ms)


@dataclass
class _Machine:
    """What the watcher holds for one machine between ticks."""

    config: MachineConfig
    tracker: StateTracker
    announced: str | None = None
    announced_ts: int = -(2**62)


class PlantWatcher:
    """Keep every configured machine's state timeline up to date from the historian."""

    def __init__(
        self,
        historian: Historian,
        settings: Settings,
        *,
        interval_s: float = 2.0,
        history_ms: int = 7 * 86_400_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.historian = historian
        self.enterprise = settings.enterprise
        self.store = PlantStore(historian, settings.plant, owner=settings.enterprise)
        self.interval_s = interval_s
        self.history_ms = history_ms
        self.clock = clock
        #: called for each state change: (machine, ts_ms, state, planned)
        self.on_state_change: list[StateChange] = []
        self.errors = 0
        self._machines: dict[str, _Machine] = {}
        self._plant: PlantConfig = self.store.effective(self.enterprise)
        self._follow()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the background thread (resumes from the stored timelines)."""
        if self._thread is not None:
            return
        from indunet.plant.follow import repair_overlaps

        mended = repair_overlaps(
            self.store,
            self.historian,
            self.enterprise,
            self._plant.machines,
            now_ms=int(self.clock() * 1000),
        )
        if mended.recomputed:
            log.warning(
                "plant watcher: overlapping stored states rebuilt from raw data for %s",
                ", ".join(mended.recomputed),
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="plant-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current tick."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep watching; the next tick retries
                self.errors += 1
                log.exception("plant watcher tick failed")
            self._stop.wait(self.interval_s)

    # ------------------------------------------------------------------ work
    @property
    def plant(self) -> PlantConfig:
        """Return the plant config in effect (file ∪ API)."""
        return self._plant

    def reload(self) -> None:
        """Re-read the machine configs (after one was added or changed through the API)."""
        with self._lock:
            self._plant = self.store.effective(self.enterprise)
            self._follow()
            for machine_id, watched in list(self._machines.items()):
                try:
                    now = self._plant.machine(machine_id)
                except DataError:
                    del self._machines[machine_id]
                    continue
                if now != watched.config:
                    del self._machines[machine_id]  # resumes from the store on the next tick

    def tick(self, now_ms: int | None = None) -> int:
        """Process new points of every machine once; return how many segments were stored."""
        now = int(self.clock() * 1000) if now_ms is None else now_ms
        with self._lock:
            stored = 0
            read_from: dict[str, int | None] = {}
            taken: list[pa.Table] = []
            for machine in self._plant.machines:
                if machine.thresholds is None or machine.power_tag is None:
                    continue
                # the journal of this machine's power writes, then where its tracker stands,
                # then the read: every row taken was written before the read
                taken.append(
                    self.historian.raw_changes(
                        self.enterprise, [f"{machine.id}/{machine.power_tag}"]
                    )
                )
                read_from[machine.id] = self._read_before(machine, now)
                try:
                    stored += self._tick_machine(machine, now)
                except DataError as exc:
                    self.errors += 1
                    log.warning("plant watcher: %s", exc)
            journal = pa.concat_tables(taken) if taken else None
            self.follow(now, read_from, journal)
            return stored

    def _read_before(self, machine: MachineConfig, now: int) -> int | None:
        """Return the newest timestamp a machine's tracker has read (or resumes after)."""
        watched = self._machines.get(machine.id)
        if watched is not None and watched.tracker.last_ts is not None:
            return watched.tracker.last_ts
        last = self.store.last_segment(self.enterprise, machine.id)
        return last[1] - 1 if last is not None else now - self.history_ms - 1

    def _follow(self) -> None:
        """Have the historian journal every write of the machines' power tags."""
        self.historian.follow_tags(
            self.enterprise,
            [f"{m.id}/{m.power_tag}" for m in self._plant.machines if m.power_tag is not None],
        )

    def follow(
        self, now: int, read_from: dict[str, int | None], journal: pa.Table | None = None
    ) -> None:
        """Recompute stored timelines for late, re-sent or imported data (the change journal).

        ``journal`` holds the rows taken just before each tracker read: a change newer than
        where the tracker stood then was read by it; an older one is late, and its range is
        recomputed (a tracker whose open part it touches starts over from the stored timeline
        on the next tick). Rows written after a read stay for the next tick.
        """
        from indunet.plant.follow import follow_raw_changes

        done = follow_raw_changes(
            self.store,
            self.historian,
            self.enterprise,
            self._plant.machines,
            now_ms=now,
            read_up_to=lambda m: read_from.get(m),
            journal=journal,
        )
        for machine in done.restarted:
            self._machines.pop(machine, None)
        for problem in done.errors:
            self.errors += 1
            log.warning("plant watcher: %s", problem)
        if done.recomputed:
            log.info("plant watcher: late data recomputed for %s", ", ".join(done.recomputed))

    def _watched(self, machine: MachineConfig, now: int) -> tuple[_Machine, int]:
        """Return the machine's tracker and the time to read from (resuming if new)."""
        watched = self._machines.get(machine.id)
        if watched is not None:
            last = watched.tracker.last_ts
            return watched, (last + 1 if last is not None else now - self.history_ms)
        watched = _Machine(machine, StateTracker.for_machine(machine))
        self._machines[machine.id] = watched
        last = self.store.last_segment(self.enterprise, machine.id)
        if last is None:
            return watched, now - self.history_ms
        watched.announced, watched.announced_ts = last[2], last[0]
        # feed some look-back for context; segments before the resume point are dropped
        return watched, last[1] - LOOKBACK_MS

    def _tick_machine(self, machine: MachineConfig, now: int) -> int:
        watched, read_from = self._watched(machine, now)
        resume_at = None
        if watched.tracker.last_ts is None:
            last = self.store.last_segment(self.enterprise, machine.id)
            resume_at = last[1] if last else None
        ts, v = power_points(self.historian, self.enterprise, machine, read_from, now + 1)
        tracker = watched.tracker
        closed = [tracker.feed(ts, v)] if len(ts) else []
        if tracker.open_state is not None:
            closed.append(self._death(machine, tracker, now))
        closed.append(tracker.tick(now))
        timeline = StateTimeline.concat(closed)
        if resume_at is not None and len(timeline):
            timeline = timeline.clip(resume_at, int(timeline.end_ms[-1]))
        n = self.store.save_segments(self.enterprise, machine.id, timeline)
        self._announce(watched, timeline)
        return n

    def _death(self, machine: MachineConfig, tracker: StateTracker, now: int) -> StateTimeline:
        """Tell the tracker about a Sparkplug DEATH: the latest value is stale, nothing newer."""
        latest = self.historian.latest(self.enterprise, f"{machine.id}/{machine.power_tag}")
        if not latest.num_rows:
            return StateTimeline.empty()
        row = latest.slice(latest.num_rows - 1).to_pylist()[0]
        last = tracker.last_ts
        state = tracker.open_state
        if (
            row["quality"] == Quality.STALE
            and last is not None
            and row["ts"] <= last
            and state is not None
            and state[0] != 3
        ):
            interval = round(machine.expected_interval_s * 1000)
            return tracker.death(max(last + 1, min(now, last + interval)))
        return StateTimeline.empty()

    def _announce(self, watched: _Machine, closed: StateTimeline) -> None:
        seen: list[tuple[int, int]] = [
            (int(a), int(b)) for a, b in zip(closed.start_ms, closed.state, strict=True)
        ]
        pending = watched.tracker.pending_segment
        if pending is not None:
            seen.append((pending[1], pending[0]))
        current = watched.tracker.open_state
        if current is not None:
            seen.append((current[1], int(current[0])))
        changes: list[tuple[int, str]] = []
        prev, after = watched.announced, watched.announced_ts
        for ts, code in seen:
            name = STATE_NAMES[code]
            if ts > after and name != prev:
                changes.append((ts, name))
                prev, after = name, ts
        if not changes:
            return
        watched.announced, watched.announced_ts = changes[-1][1], changes[-1][0]
        if not self.on_state_change:
            return
        cfg = watched.config
        calendar = self._plant.site(cfg.site).calendar
        for ts, name in changes:
            planned = len(planned_busy(calendar, ts, ts + 1, machine=cfg.id)) > 0
            for listener in list(self.on_state_change):
                try:
                    listener(cfg.id, ts, name, planned)
                except Exception:
                    log.exception("plant state-change listener failed")

    # ------------------------------------------------------------------ reads
    def current(self, machine: str) -> tuple[str, int] | None:
        """Return a machine's state now and since when (None before any data)."""
        with self._lock:
            watched = self._machines.get(machine)
            if watched is None or watched.tracker.open_state is None:
                return None
            state, since = watched.tracker.open_state
            return STATE_NAMES[state], since

    def open_segment(self, machine: str, now_ms: int | None = None) -> StateTimeline:
        """Return the not yet stored part of a machine's timeline, up to now."""
        now = int(self.clock() * 1000) if now_ms is None else now_ms
        with self._lock:
            watched = self._machines.get(machine)
            if watched is None:
                return StateTimeline.empty()
            last = self.store.last_segment(self.enterprise, machine)
            start = last[1] if last else None
            tracker = watched.tracker
            c = tracker.open_state
            if c is None or tracker.last_ts is None:
                return StateTimeline.empty()
            # pending segments, then the open run up to now (recomputed, never stored here)
            pending = tracker.pending_segment
            rows = []
            if pending is not None and pending[2] > pending[1] and pending[1] != c[1]:
                rows.append((pending[1], pending[2], pending[0]))
            end = max(now, tracker.last_ts)
            if end > c[1]:
                rows.append((c[1], end, int(c[0])))
            if not rows:
                return StateTimeline.empty()
            tl = StateTimeline(
                np.array([r[0] for r in rows], np.int64),
                np.array([r[1] for r in rows], np.int64),
                np.array([r[2] for r in rows], np.int8),
            )
            if start is not None and start < int(tl.end_ms[-1]):
                tl = tl.clip(max(start, int(tl.start_ms[0])), int(tl.end_ms[-1]))
            return tl

    def recompute(self, machine: str, start_ms: int, end_ms: int) -> StateTimeline:
        """Replace the stored segments of a range from historian data (late data, new config).

        The range stops at the newest stored segment: the live part belongs to the tracker.
        """
        with self._lock:
            cfg = self._plant.machine(machine)
            last = self.store.last_segment(self.enterprise, machine)
            if last is not None and machine in self._machines:
                end_ms = min(end_ms, last[1])
            if end_ms <= start_ms:
                raise DataError(
                    f"machine {machine}: nothing stored to recompute in the range (the newest "
                    "stored segment ends before its start)"
                )
            return recompute_range(
                self.store, self.historian, self.enterprise, cfg, start_ms, end_ms
            )
