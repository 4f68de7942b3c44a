"""Machine states from power or current: hysteresis, minimum dwell and offline gaps.

Rules (one implementation, used both in batch and chunk by chunk):

* A sample at ``ts`` with a value holds until the next sample, unless the gap to it is longer
  than ``offline_after_ms``: then it holds for one ``interval_ms`` and the rest of the gap is
  ``offline``. A NaN value (bad quality, or a Sparkplug DEATH) starts ``offline`` at its ``ts``.
* Hysteresis: off → idle needs ``value >= off_below + h``; idle → off needs
  ``value < off_below - h``; idle → running needs ``value >= running_above + h``; running →
  idle needs ``value < running_above - h``. The first sample after offline uses the nominal
  levels.
* Minimum dwell: a run of one state shorter than ``min_dwell_s`` takes the state of the last
  run (since the machine came online) that lasted long enough; offline is never filtered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import pyarrow as pa

from indunet.errors import DataError
from indunet.plant.config import MachineConfig, Thresholds

__all__ = [
    "MachineState",
    "PlantWarning",
    "StateTimeline",
    "StateTracker",
    "ThresholdProposal",
    "check_power_unit",
    "current_to_kw",
    "detect_states",
    "learn_thresholds",
]


class MachineState(IntEnum):
    """The state of a machine; the codes are stored in timelines."""

    OFF = 0
    IDLE = 1
    RUNNING = 2
    OFFLINE = 3


STATE_NAMES = tuple(s.name.lower() for s in MachineState)
_ZONE_OF_STATE = np.array([0, 2, 4], dtype=np.int8)  # off, idle, running -> definite zones
_STATE_OF_ZONE = np.array([0, 1, 1, 1, 2], dtype=np.int8)  # zones 1 and 3 resolved apart


@dataclass(frozen=True, slots=True)
class PlantWarning:
    """A warning about input data, naming the machine, field and row it is about."""

    machine: str
    field: str
    row: int | None
    message: str

    def __str__(self) -> str:
        where = f" row {self.row}" if self.row is not None else ""
        return f"{self.machine} {self.field}{where}: {self.message}"


@dataclass(frozen=True)
class StateTimeline:
    """Contiguous or gapped state segments ``[start_ms, end_ms)``, sorted and not overlapping."""

    start_ms: np.ndarray
    end_ms: np.ndarray
    state: np.ndarray
    reason: np.ndarray | None = None  # object array of reason codes (None = unassigned)

    def __post_init__(self) -> None:
        s = np.asarray(self.start_ms, dtype=np.int64)
        e = np.asarray(self.end_ms, dtype=np.int64)
        st = np.asarray(self.state, dtype=np.int8)
        if not len(s) == len(e) == len(st):
            raise DataError("state timeline columns have different lengths")
        bad = np.flatnonzero(e <= s)
        if len(bad):
            raise DataError(f"state timeline row {bad[0]}: end_ms is not after start_ms")
        bad = np.flatnonzero(s[1:] < e[:-1])
        if len(bad):
            raise DataError(f"state timeline row {bad[0] + 1} overlaps the row before it")
        if len(st) and (st.min() < 0 or st.max() > 3):
            raise DataError("state timeline holds an unknown state code")
        object.__setattr__(self, "start_ms", s)
        object.__setattr__(self, "end_ms", e)
        object.__setattr__(self, "state", st)
        if self.reason is not None:
            r = np.asarray(self.reason, dtype=object)
            if len(r) != len(s):
                raise DataError("state timeline reason column has a different length")
            object.__setattr__(self, "reason", r)

    @classmethod
    def empty(cls) -> StateTimeline:
        """Return a timeline with no segments."""
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, np.zeros(0, dtype=np.int8))

    @classmethod
    def concat(cls, parts: Iterable[StateTimeline]) -> StateTimeline:
        """Join timelines in time order, merging equal neighbours that touch."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        reasons = None
        if any(p.reason is not None for p in parts):
            reasons = np.concatenate([p.reasons() for p in parts])
        joined = cls(
            np.concatenate([p.start_ms for p in parts]),
            np.concatenate([p.end_ms for p in parts]),
            np.concatenate([p.state for p in parts]),
            reasons,
        )
        return joined.merged()

    def __len__(self) -> int:
        return len(self.start_ms)

    @property
    def duration_ms(self) -> np.ndarray:
        """Return each segment's length in ms."""
        return self.end_ms - self.start_ms

    def reasons(self) -> np.ndarray:
        """Return the reason column (None where unassigned)."""
        if self.reason is None:
            return np.full(len(self), None, dtype=object)
        return self.reason

    def merged(self) -> StateTimeline:
        """Merge touching neighbours with the same state and reason."""
        if len(self) < 2:
            return self
        r = self.reasons()
        same = (
            (self.state[1:] == self.state[:-1])
            & (self.start_ms[1:] == self.end_ms[:-1])
            & (r[1:] == r[:-1])
        )
        if not same.any():
            return self
        keep = np.concatenate([[True], ~same])
        first = np.flatnonzero(keep)
        last = np.concatenate([first[1:] - 1, [len(self) - 1]])
        return StateTimeline(
            self.start_ms[first],
            self.end_ms[last],
            self.state[first],
            None if self.reason is None else r[first],
        )

    def clip(self, start_ms: int, end_ms: int) -> StateTimeline:
        """Return the part of the timeline inside ``[start_ms, end_ms)``."""
        keep = (self.end_ms > start_ms) & (self.start_ms < end_ms)
        return StateTimeline(
            np.maximum(self.start_ms[keep], start_ms),
            np.minimum(self.end_ms[keep], end_ms),
            self.state[keep],
            None if self.reason is None else self.reason[keep],
        )

    def ms_by_state(self) -> dict[str, int]:
        """Return the total time in each state."""
        totals = np.bincount(self.state, weights=self.duration_ms, minlength=4)
        return {name: int(totals[i]) for i, name in enumerate(STATE_NAMES)}

    def to_arrow(self) -> pa.Table:
        """Return the timeline as an Arrow table (start_ms, end_ms, state, reason)."""
        return pa.table(
            {
                "start_ms": pa.array(self.start_ms, pa.int64()),
                "end_ms": pa.array(self.end_ms, pa.int64()),
                "state": pa.array([STATE_NAMES[s] for s in self.state], pa.string()),
                "reason": pa.array(list(self.reasons()), pa.string()),
            }
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> StateTimeline:
        """Build a timeline from `to_arrow` output (e.g. read back from storage)."""
        codes = {name: i for i, name in enumerate(STATE_NAMES)}
        names = table.column("state").to_pylist()
        unknown = next((i for i, n in enumerate(names) if n not in codes), None)
        if unknown is not None:
            raise DataError(f"state timeline row {unknown}: unknown state {names[unknown]!r}")
        reason = None
        if "reason" in table.column_names:
            reason = np.array(table.column("reason").to_pylist(), dtype=object)
        return cls(
            table.column("start_ms").to_numpy(),
            table.column("end_ms").to_numpy(),
            np.array([codes[n] for n in names], dtype=np.int8),
            reason,
        )


@dataclass(slots=True)
class _Carry:
    """What a tracker remembers about the last sample it saw."""

    ts: int
    valid: bool
    raw: int  # raw hysteresis state of the last sample (OFFLINE if NaN)
    run_start: int  # start of the open run of that raw state
    long_state: int | None  # last long-enough run of the current session, before the open run
    pending: tuple[int, int, int] | None  # merged segment (state, start, end) not yet emitted


@dataclass
class StateTracker:
    """Incremental state engine: feed samples chunk by chunk, get closed segments back.

    Feeding all samples at once or in any chunks gives exactly the same timeline.
    """

    thresholds: Thresholds
    interval_ms: int = 1000
    offline_after_ms: int = 5000
    machine: str = "machine"
    _carry: _Carry | None = field(default=None, init=False, repr=False)
    _rows: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.interval_ms <= 0:
            raise DataError(f"{self.machine}: interval_ms must be > 0")
        if self.offline_after_ms < self.interval_ms:
            raise DataError(f"{self.machine}: offline_after_ms must be at least interval_ms")

    @classmethod
    def for_machine(
        cls, machine: MachineConfig, thresholds: Thresholds | None = None
    ) -> StateTracker:
        """Build a tracker from a machine's configuration."""
        th = thresholds or machine.thresholds
        if th is None:
            raise DataError(
                f"{machine.id}: no thresholds configured; set [plant.machines.thresholds] "
                "or run learn-thresholds"
            )
        return cls(
            th,
            interval_ms=round(machine.expected_interval_s * 1000),
            offline_after_ms=machine.offline_after_ms,
            machine=machine.id,
        )

    @property
    def current(self) -> tuple[MachineState, int] | None:
        """Return the raw state of the last sample and since when it holds (before dwell)."""
        if self._carry is None:
            return None
        return MachineState(self._carry.raw), self._carry.run_start

    @property
    def last_ts(self) -> int | None:
        """Return the timestamp of the last sample (or death/tick) processed."""
        return None if self._carry is None else self._carry.ts

    @property
    def pending_segment(self) -> tuple[int, int, int] | None:
        """Return the last closed-run segment not yet emitted, as (state, start_ms, end_ms)."""
        return None if self._carry is None else self._carry.pending

    @property
    def open_state(self) -> tuple[MachineState, int] | None:
        """Return the state now and since when, joining the open run to the pending segment."""
        c = self._carry
        if c is None:
            return None
        pending = c.pending
        if not c.valid:
            since = pending[1] if pending and pending[0] == MachineState.OFFLINE else c.ts
            return MachineState.OFFLINE, since
        if pending is not None and pending[0] == c.raw and pending[2] == c.run_start:
            return MachineState(c.raw), pending[1]
        return MachineState(c.raw), c.run_start

    def death(self, ts_ms: int) -> StateTimeline:
        """Mark the machine offline from ``ts_ms`` (e.g. a Sparkplug DEATH)."""
        return self._feed(np.array([ts_ms], np.int64), np.array([np.nan]), count_rows=False)

    def tick(self, now_ms: int) -> StateTimeline:
        """Declare the machine offline when no data came for ``offline_after_ms`` before now."""
        c = self._carry
        if c is None or not c.valid or now_ms - c.ts <= self.offline_after_ms:
            return StateTimeline.empty()
        return self._feed(
            np.array([c.ts + self.interval_ms], np.int64), np.array([np.nan]), count_rows=False
        )

    def feed(self, ts_ms: np.ndarray, values: np.ndarray) -> StateTimeline:
        """Add samples (ts ascending, after any fed before); return the segments now closed."""
        return self._feed(ts_ms, values, count_rows=True)

    def finish(self, end_ms: int | None = None) -> StateTimeline:
        """Close the timeline at ``end_ms`` (default: one interval after the last sample)."""
        c = self._carry
        if c is None:
            return StateTimeline.empty()
        stop = c.ts + self.interval_ms if end_ms is None or end_ms <= c.ts else end_ms
        out = self._feed(np.array([stop], np.int64), np.array([np.nan]), count_rows=False)
        tail = self._carry.pending if self._carry else None
        self._carry = None
        if tail is not None and tail[2] > tail[1]:
            out = StateTimeline.concat([out, _timeline([tail])])
        if end_ms is not None and len(out) and out.end_ms[-1] > end_ms:
            out = out.clip(int(out.start_ms[0]), end_ms)
        return out

    def _feed(self, ts_ms: np.ndarray, values: np.ndarray, *, count_rows: bool) -> StateTimeline:
        ts_new = np.asarray(ts_ms, dtype=np.int64)
        v_new = np.asarray(values, dtype=np.float64)
        if ts_new.shape != v_new.shape or ts_new.ndim != 1:
            raise DataError(f"{self.machine}: ts and value must be 1-D arrays of one length")
        n = len(ts_new)
        if n == 0:
            return StateTimeline.empty()
        row0 = self._rows
        self._check_input(ts_new, v_new, row0)
        if count_rows:
            self._rows += n

        c = self._carry
        th = self.thresholds
        if c is not None:
            ts = np.concatenate([[c.ts], ts_new])
            v = np.concatenate([[0.0 if c.valid else np.nan], v_new])
        else:
            ts, v = ts_new, v_new
        m = len(ts)
        pos = np.arange(m)
        invalid = np.isnan(v)
        if c is not None:
            invalid[0] = not c.valid
        valid = ~invalid
        any_invalid = bool(invalid.any())
        invalid_idx = np.flatnonzero(invalid) if any_invalid else np.zeros(0, np.int64)

        gap = np.empty(m, np.int64)
        gap[0] = 0
        gap[1:] = np.diff(ts)
        bridged = np.zeros(m, bool)
        bridged[1:] = valid[:-1] & valid[1:] & (gap[1:] <= self.offline_after_ms)
        session_start = valid & ~bridged
        if c is not None and c.valid:
            session_start[0] = False  # the carried sample's session began before this chunk

        # hysteresis: zones 0 (< a), 1 [a, b), 2 [b, c), 3 [c, d), 4 (>= d)
        h = th.hysteresis
        # NaN compares False everywhere (zone 0); invalid samples are overwritten below
        zone = (v >= th.off_below - h).view(np.int8).copy()
        zone += (v >= th.off_below + h).view(np.int8)
        zone += (v >= th.running_above - h).view(np.int8)
        zone += (v >= th.running_above + h).view(np.int8)
        starts1 = session_start & (zone == 1)
        zone[starts1] = np.where(v[starts1] < th.off_below, 0, 2)
        starts3 = session_start & (zone == 3)
        zone[starts3] = np.where(v[starts3] >= th.running_above, 4, 2)
        if c is not None:
            zone[0] = _ZONE_OF_STATE[c.raw] if c.valid else 2
        if any_invalid:
            zone[invalid_idx] = 2  # never looked up: invalid samples end every session
        raw = _STATE_OF_ZONE[zone]
        for amb, definite, hit, miss in ((1, 0, 0, 1), (3, 4, 2, 1)):
            sel = zone == amb
            if sel.any():
                last = np.maximum.accumulate(np.where(zone != amb, pos, 0))
                raw[sel] = np.where(zone[last[sel]] == definite, hit, miss)
        if any_invalid:
            raw[invalid_idx] = MachineState.OFFLINE

        # runs of one raw state among bridged valid samples
        run_first = valid & ~(bridged & np.concatenate([[False], raw[1:] == raw[:-1]]))
        first_idx = np.flatnonzero(run_first)
        # offline pieces: invalid samples, and gaps after a valid sample
        off_i = invalid_idx[invalid_idx < m - 1]
        gap_i = np.flatnonzero(gap[1:] > self.offline_after_ms)
        if any_invalid:
            gap_i = gap_i[valid[gap_i]]
        pieces_s = [ts[off_i], ts[gap_i] + self.interval_ms]
        pieces_e = [ts[off_i + 1], ts[gap_i + 1]]
        pieces_state = [np.full(len(off_i) + len(gap_i), MachineState.OFFLINE, np.int8)]

        open_run = None
        long_state = c.long_state if (c is not None and c.valid) else None
        if len(first_idx):
            last_idx = _run_last_index(first_idx, invalid_idx, m)
            run_start = ts[first_idx].copy()
            if c is not None and c.valid and first_idx[0] == 0:
                run_start[0] = c.run_start
            run_state = raw[first_idx]
            is_open = last_idx == m - 1
            # a sample holds until the next one, or one interval when the gap is too long
            nxt = np.minimum(last_idx + 1, m - 1)
            run_end = np.where(
                gap[nxt] <= self.offline_after_ms, ts[nxt], ts[last_idx] + self.interval_ms
            )
            run_end[is_open] = -1
            # 0 = the session carried over from the previous chunk
            run_session = np.searchsorted(np.flatnonzero(session_start), first_idx, side="right")
            n_closed = int((~is_open).sum())  # only the final run can be open
            closed = slice(0, n_closed)
            dur = run_end[closed] - run_start[closed]
            dwell = round(th.min_dwell_s * 1000)
            is_long = dur >= dwell
            filt = run_state[closed].copy()
            if n_closed:
                lpos = np.arange(n_closed)
                last_long = np.maximum.accumulate(np.where(is_long, lpos, -1))
                sess_first = _first_of_group(run_session[closed])
                has_prior = (last_long >= sess_first) & (last_long >= 0)
                short = ~is_long
                use = short & has_prior
                filt[use] = run_state[closed][last_long[use]]
                if long_state is not None:
                    carried = short & ~has_prior & (run_session[closed] == 0)
                    filt[carried] = long_state
            # the long state carried over to the open run's session
            if is_open[-1]:
                sess = run_session[-1]
                in_sess = np.flatnonzero((run_session[closed] == sess) & is_long)
                if len(in_sess):
                    long_state = int(run_state[in_sess[-1]])
                elif sess != 0:
                    long_state = None
                open_run = (int(run_state[-1]), int(run_start[-1]))
            pieces_s.append(run_start[closed])
            pieces_e.append(run_end[closed])
            pieces_state.append(filt.astype(np.int8))

        s_all = np.concatenate(pieces_s)
        e_all = np.concatenate(pieces_e)
        st_all = np.concatenate(pieces_state)
        order = np.argsort(s_all, kind="stable")
        s_all, e_all, st_all = s_all[order], e_all[order], st_all[order]
        keep = e_all > s_all
        s_all, e_all, st_all = s_all[keep], e_all[keep], st_all[keep]

        pending = c.pending if c is not None else None
        if pending is not None and pending[2] > pending[1]:
            s_all = np.concatenate([[pending[1]], s_all])
            e_all = np.concatenate([[pending[2]], e_all])
            st_all = np.concatenate([[pending[0]], st_all]).astype(np.int8)
        merged = StateTimeline(s_all, e_all, st_all).merged() if len(s_all) else None

        last_valid = bool(valid[-1])
        new_pending = None
        emitted = StateTimeline.empty()
        if merged is not None and len(merged):
            new_pending = (int(merged.state[-1]), int(merged.start_ms[-1]), int(merged.end_ms[-1]))
            emitted = StateTimeline(merged.start_ms[:-1], merged.end_ms[:-1], merged.state[:-1])
        if not last_valid and not (
            new_pending is not None
            and new_pending[0] == MachineState.OFFLINE
            and new_pending[2] == ts[-1]
        ):
            # an open offline stretch starts at the last sample
            if new_pending is not None:
                emitted = StateTimeline.concat([emitted, _timeline([new_pending])])
            new_pending = (int(MachineState.OFFLINE), int(ts[-1]), int(ts[-1]))
        self._carry = _Carry(
            ts=int(ts[-1]),
            valid=last_valid,
            raw=int(raw[-1]),
            run_start=open_run[1] if open_run else int(ts[-1]),
            long_state=long_state if last_valid else None,
            pending=new_pending,
        )
        return emitted

    def _check_input(self, ts: np.ndarray, v: np.ndarray, row0: int) -> None:
        if len(ts) > 1 and not (ts[1:] > ts[:-1]).all():
            i = int(np.flatnonzero(ts[1:] <= ts[:-1])[0]) + 1
            raise DataError(
                f"{self.machine}: row {row0 + i} field ts: {ts[i]} is not after the row before "
                f"({ts[i - 1]}); sort and de-duplicate the samples first"
            )
        if self._carry is not None and ts[0] <= self._carry.ts:
            raise DataError(
                f"{self.machine}: row {row0} field ts: {ts[0]} is not after the last sample "
                f"already processed ({self._carry.ts}); recompute the range instead"
            )
        if np.isinf(v).any():
            i = int(np.flatnonzero(np.isinf(v))[0])
            raise DataError(f"{self.machine}: row {row0 + i} field value is infinite")


def _run_last_index(first_idx: np.ndarray, invalid: np.ndarray, m: int) -> np.ndarray:
    """Return, for each run, the index of its last sample (before the next run or NaN)."""
    nxt = np.concatenate([first_idx[1:], [m]])
    if not len(invalid):
        return nxt - 1
    # the first invalid sample after the run start cuts the run
    pos = np.searchsorted(invalid, first_idx)
    cut = np.where(pos < len(invalid), invalid[np.minimum(pos, len(invalid) - 1)], m)
    return np.minimum(nxt, cut) - 1


def _first_of_group(group: np.ndarray) -> np.ndarray:
    """Return, for each position, the index where its (sorted, contiguous) group begins."""
    n = len(group)
    starts = np.ones(n, bool)
    starts[1:] = group[1:] != group[:-1]
    return np.maximum.accumulate(np.where(starts, np.arange(n), 0))


def _timeline(rows: list[tuple[int, int, int]]) -> StateTimeline:
    return StateTimeline(
        np.array([r[1] for r in rows], np.int64),
        np.array([r[2] for r in rows], np.int64),
        np.array([r[0] for r in rows], np.int8),
    )


def detect_states(
    ts_ms: np.ndarray,
    values: np.ndarray,
    thresholds: Thresholds,
    *,
    interval_ms: int = 1000,
    offline_after_ms: int = 5000,
    start_ms: int | None = None,
    end_ms: int | None = None,
    machine: str = "machine",
) -> StateTimeline:
    """Compute the state timeline of one machine from its power samples.

    Pass samples from a little before ``start_ms`` so hysteresis and dwell have context; the
    result is clipped to ``[start_ms, end_ms)`` and time there without data is ``offline``.
    """
    tracker = StateTracker(
        thresholds, interval_ms=interval_ms, offline_after_ms=offline_after_ms, machine=machine
    )
    ts = np.asarray(ts_ms, dtype=np.int64)
    body = tracker.feed(ts, values)
    tail = tracker.finish(end_ms)
    out = StateTimeline.concat([body, tail])
    lo = start_ms if start_ms is not None else (int(ts[0]) if len(ts) else None)
    hi = end_ms if end_ms is not None else (int(out.end_ms[-1]) if len(out) else None)
    if lo is None or hi is None:
        return out
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise DataError(f"{machine}: end_ms {end_ms} is not after start_ms {start_ms}")
    out = out.clip(lo, hi)
    # time in the range without any segment is offline (no data)
    return fill_offline(out, lo, hi)


def fill_offline(timeline: StateTimeline, start_ms: int, end_ms: int) -> StateTimeline:
    """Return the timeline with every uncovered part of ``[start_ms, end_ms)`` as offline."""
    bounds_s = np.concatenate([[start_ms], timeline.end_ms])
    bounds_e = np.concatenate([timeline.start_ms, [end_ms]])
    holes = bounds_e > bounds_s
    if not holes.any():
        return timeline
    fill = StateTimeline(
        bounds_s[holes],
        bounds_e[holes],
        np.full(int(holes.sum()), MachineState.OFFLINE, np.int8),
        None if timeline.reason is None else np.full(int(holes.sum()), None, dtype=object),
    )
    both = [timeline, fill]
    s = np.concatenate([t.start_ms for t in both])
    order = np.argsort(s, kind="stable")
    reason = None
    if timeline.reason is not None:
        reason = np.concatenate([t.reasons() for t in both])[order]
    return StateTimeline(
        s[order],
        np.concatenate([t.end_ms for t in both])[order],
        np.concatenate([t.state for t in both])[order],
        reason,
    ).merged()


@dataclass(frozen=True)
class ThresholdProposal:
    """Thresholds proposed from a power distribution, with the clusters behind them."""

    thresholds: Thresholds
    centres: tuple[float, ...]
    shares: tuple[float, ...]
    note: str


def learn_thresholds(
    values: np.ndarray, *, min_dwell_s: float = 0.0, machine: str = "machine"
) -> ThresholdProposal:
    """Propose off/idle/running levels from the power distribution (1-D k-means, k = 2 or 3)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 10:
        raise DataError(f"{machine}: need at least 10 power samples to learn thresholds")
    lo, hi = np.quantile(v, [0.001, 0.999])
    if not hi - lo > 1e-9 * max(abs(hi), 1.0):
        raise DataError(f"{machine}: power is constant at {hi:g}; configure the thresholds by hand")
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=1024, range=(lo, hi))
    mid = (edges[:-1] + edges[1:]) / 2

    def kmeans(init: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = np.array(init, dtype=np.float64)
        for _ in range(100):
            lab = np.argmin(np.abs(mid[:, None] - c[None, :]), axis=1)
            w = np.bincount(lab, weights=hist, minlength=len(c))
            s = np.bincount(lab, weights=hist * mid, minlength=len(c))
            new = np.where(w > 0, s / np.maximum(w, 1), c)
            if np.allclose(new, c):
                break
            c = new
        lab = np.argmin(np.abs(mid[:, None] - c[None, :]), axis=1)
        w = np.bincount(lab, weights=hist, minlength=len(c))
        sq = np.bincount(lab, weights=hist * (mid - c[lab]) ** 2, minlength=len(c))
        sd = np.sqrt(sq / np.maximum(w, 1))
        return c, w / w.sum(), sd

    span = hi - lo
    c3, w3, sd3 = kmeans([lo, (lo + hi) / 2, hi])
    order = np.argsort(c3)
    c3, w3, sd3 = c3[order], w3[order], sd3[order]
    separated = all(
        (c3[i + 1] - c3[i]) > max(2 * (sd3[i] + sd3[i + 1]), 0.05 * span)
        and min(w3[i], w3[i + 1]) >= 0.01
        for i in range(2)
    )
    if separated:
        gap = min(c3[1] - c3[0], c3[2] - c3[1])
        th = Thresholds(
            off_below=float((c3[0] + c3[1]) / 2),
            running_above=float((c3[1] + c3[2]) / 2),
            hysteresis=float(0.1 * gap),
            min_dwell_s=min_dwell_s,
        )
        return ThresholdProposal(
            th, tuple(map(float, c3)), tuple(map(float, w3)), "three levels: off, idle, running"
        )
    c2, w2, _ = kmeans([lo, hi])
    order = np.argsort(c2)
    c2, w2 = c2[order], w2[order]
    gap = c2[1] - c2[0]
    if gap <= 0.05 * span or min(w2) < 0.01:
        raise DataError(
            f"{machine}: the power values form one cluster around {np.median(v):g}; "
            "configure the thresholds by hand"
        )
    if c2[0] <= 0.1 * c2[1]:
        off_below = c2[0] + 0.25 * gap
        note = "two levels: off and running (idle band between them)"
    else:
        off_below = c2[0] / 2
        note = "two levels: idle and running (off below half the idle level)"
    running_above = c2[0] + 0.5 * gap
    th = Thresholds(
        off_below=float(max(off_below, 0.0)),
        running_above=float(running_above),
        hysteresis=float(min(0.05 * gap, (running_above - off_below) / 2)),
        min_dwell_s=min_dwell_s,
    )
    return ThresholdProposal(th, tuple(map(float, c2)), tuple(map(float, w2)), note)


def current_to_kw(amps: np.ndarray, volts: float, power_factor: float = 0.85) -> np.ndarray:
    """Convert a three-phase line current (A) to active power (kW)."""
    return np.asarray(amps, dtype=np.float64) * (np.sqrt(3) * volts * power_factor / 1000.0)


def check_power_unit(values: np.ndarray, machine: MachineConfig) -> list[PlantWarning]:
    """Warn when power values look like the wrong unit (W given as kW, or kW given as W)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    field_name = machine.power_tag or "power"
    if not len(finite):
        return []
    p99 = float(np.quantile(finite, 0.99))
    warnings = []
    if machine.power_unit == "kW":
        limit = 20 * machine.rated_kw if machine.rated_kw else 10_000.0
        if p99 > limit:
            row = int(np.flatnonzero(v > limit)[0])
            warnings.append(
                PlantWarning(
                    machine.id,
                    field_name,
                    row,
                    f"power {v[row]:g} kW is implausible (99th percentile {p99:g} kW, limit "
                    f"{limit:g} kW); the tag is probably in W: set power_unit = 'W'",
                )
            )
    elif machine.power_unit == "W" and machine.rated_kw and 0 < p99 < 5 * machine.rated_kw:
        warnings.append(
            PlantWarning(
                machine.id,
                field_name,
                None,
                f"power in W peaks at {p99:g} W, under 0.5 % of the rated "
                f"{machine.rated_kw:g} kW; the tag is probably in kW: set power_unit = 'kW'",
            )
        )
    negative = np.flatnonzero(v < -0.05 * max(p99, 1e-9))
    if len(negative):
        row = int(negative[0])
        warnings.append(
            PlantWarning(
                machine.id,
                field_name,
                row,
                f"power {v[row]:g} is clearly negative ({len(negative)} samples); "
                "check the meter's wiring or sign",
            )
        )
    return warnings
