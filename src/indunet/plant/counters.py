"""Part counters → parts per sample, with resets, wrap-around and flagged anomalies.

A delta at row ``i`` is the parts made in ``(ts[i-1], ts[i]]``. Counting follows the counter's
high-water mark (its highest reading since the last reset or wrap); a reading below it is a
drop:

* with ``wrap_at`` and a drop of more than half the modulus: a wrap, ``v + wrap_at - mark``;
* otherwise, with ``resets = true`` and a drop to near zero (at most ``reset_below`` × the mark,
  or to 0 or 1): a reset, counting ``v`` parts since it;
* otherwise the counter went backwards (an old value re-sent, a second source, a glitch):
  nothing is counted until it passes the mark again, so nothing is counted twice. Each reading
  below the mark is reported with its row number and tag.

The result depends only on the stored readings in time order, not on the order they arrived
in, and is never negative. Missing (NaN) and negative readings are reported and skipped; jumps
above ``max_step`` are counted but reported. ``last_value`` is the high-water mark at the end,
to continue with the next chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from indunet.errors import DataError
from indunet.plant.config import CounterConfig

__all__ = ["CounterAnomaly", "CounterDeltas", "counter_deltas", "high_water_rise"]


@dataclass(frozen=True, slots=True)
class CounterAnomaly:
    """Something unusual in a counter series, naming the row and tag."""

    row: int
    ts_ms: int
    field: str
    kind: str  # reset | wrap | backwards | jump | missing | negative
    message: str

    @property
    def is_warning(self) -> bool:
        """Return True unless the anomaly is an expected reset or wrap."""
        return self.kind not in ("reset", "wrap")


@dataclass(frozen=True)
class CounterDeltas:
    """Parts counted at each sample time, plus the anomalies found on the way."""

    ts_ms: np.ndarray
    delta: np.ndarray
    anomalies: list[CounterAnomaly] = field(default_factory=list)
    last_value: float | None = None  # the high-water mark, to continue with the next chunk

    @property
    def total(self) -> float:
        """Return the sum of all deltas."""
        return float(self.delta.sum())

    def total_in(self, intervals: np.ndarray) -> float:
        """Return the parts counted inside intervals ``(start, end]``."""
        return float(self.delta[self.mask_in(intervals)].sum())

    def mask_in(self, intervals: np.ndarray) -> np.ndarray:
        """Return which deltas fall inside intervals ``(start, end]`` (sorted, disjoint)."""
        iv = np.asarray(intervals, dtype=np.int64).reshape(-1, 2)
        if not len(iv) or not len(self.ts_ms):
            return np.zeros(len(self.ts_ms), bool)
        idx = np.searchsorted(iv[:, 0], self.ts_ms, side="left") - 1
        ok = idx >= 0
        inside = np.zeros(len(self.ts_ms), bool)
        inside[ok] = self.ts_ms[ok] <= iv[idx[ok], 1]
        return inside


def counter_deltas(
    ts_ms: np.ndarray,
    values: np.ndarray,
    config: CounterConfig,
    *,
    machine: str = "machine",
    previous: float | None = None,
    row_offset: int = 0,
) -> CounterDeltas:
    """Return the parts counted at each sample of a counter tag.

    ``previous`` is the last good reading before this chunk (its first delta is 0 without it).
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if ts.shape != v.shape or ts.ndim != 1:
        raise DataError(f"{machine} {config.tag}: ts and value must be 1-D arrays of one length")
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if len(bad):
        i = int(bad[0]) + 1
        raise DataError(
            f"{machine} {config.tag}: row {row_offset + i} field ts: {ts[i]} is not after the "
            f"row before ({ts[i - 1]}); sort and de-duplicate the samples first"
        )
    tag = config.tag
    anomalies: list[CounterAnomaly] = []

    def flag(rows: np.ndarray, kind: str, text: str) -> None:
        for i in rows:
            anomalies.append(
                CounterAnomaly(
                    row_offset + int(i),
                    int(ts[i]),
                    tag,
                    kind,
                    f"{machine} {tag} row {row_offset + int(i)}: {text}",
                )
            )

    missing = ~np.isfinite(v)
    negative = ~missing & (v < 0)
    over = np.zeros(len(v), bool)
    if config.wrap_at is not None:
        over = ~missing & (v >= config.wrap_at)
    flag(np.flatnonzero(missing), "missing", "counter reading is missing (NaN); skipped")
    for i in np.flatnonzero(negative):
        flag(np.array([i]), "negative", f"counter reading {v[i]:g} is negative; skipped")
    for i in np.flatnonzero(over):
        flag(
            np.array([i]),
            "out_of_range",
            f"counter reading {v[i]:g} is not below wrap_at {config.wrap_at}; skipped",
        )
    good = ~(missing | negative | over)
    gi = np.flatnonzero(good)
    delta = np.zeros(len(v), dtype=np.float64)
    if not len(gi):
        anomalies.sort(key=lambda a: a.row)
        return CounterDeltas(ts, delta, anomalies, previous)
    gv = v[gi]
    d, hwm, events = high_water_rise(gv, previous, config)
    for j, kind, before in events:
        if kind == "wrap":
            text = (
                f"counter wrapped from {before:g} to {gv[j]:g} at {config.wrap_at}; "
                f"counted {d[j]:g}"
            )
        elif kind == "reset":
            text = f"counter reset from {before:g} to {gv[j]:g}"
        else:
            text = (
                f"counter went backwards from {before:g} to {gv[j]:g}; nothing counted until it "
                f"passes {before:g} again"
                + ("" if config.resets else " (set resets = true if it is reset on purpose)")
            )
        flag(gi[[j]], kind, text)
    if config.max_step is not None:
        for j in np.flatnonzero(d > config.max_step):
            flag(
                gi[[j]],
                "jump",
                f"counter jumped by {d[j]:g} (more than max_step {config.max_step}); counted",
            )
    delta[gi] = d
    anomalies.sort(key=lambda a: a.row)
    return CounterDeltas(ts, delta, anomalies, hwm)


def high_water_rise(
    values: np.ndarray, previous: float | None, config: CounterConfig
) -> tuple[np.ndarray, float, list[tuple[int, str, float]]]:
    """Return parts per reading, the high-water mark at the end, and (row, kind, from) events.

    Between resets and wraps the count is the rise of the running maximum (the high-water
    mark), so a reading below it — a re-sent old value, a second source, a glitch — counts
    nothing and the parts are not counted twice when the counter climbs back. Each segment
    costs one vectorised pass; only resets and wraps start a new one.
    """
    n = len(values)
    d = np.zeros(n)
    events: list[tuple[int, str, float]] = []
    high = float(values[0]) if previous is None else float(previous)
    s = 0
    while s < n:
        seg = values[s:]
        run = np.maximum.accumulate(np.concatenate([[high], seg]))
        before = run[:-1]  # the high-water mark before each reading
        below = np.flatnonzero(seg < before)
        cut = None
        if len(below):
            hv, vv = before[below], seg[below]
            wrap = np.zeros(len(below), bool)
            if config.wrap_at is not None:
                wrap = hv - vv > config.wrap_at / 2
            reset = config.resets & (vv <= np.maximum(config.reset_below * hv, 1.0))
            stop = np.flatnonzero(wrap | reset)
            if len(stop):
                cut = int(below[stop[0]])
            dips = below if cut is None else below[below < cut]
            events += [(s + int(k), "backwards", float(before[k])) for k in dips]
        stop_at = n - s if cut is None else cut
        d[s : s + stop_at] = np.diff(run[: stop_at + 1])
        if cut is None:
            high = float(run[-1])
            break
        j = s + cut
        h, v = float(before[cut]), float(values[j])
        if config.wrap_at is not None and h - v > config.wrap_at / 2:
            d[j] = v + config.wrap_at - h
            events.append((j, "wrap", h))
        else:
            d[j] = v
            events.append((j, "reset", h))
        high, s = v, j + 1
    events.sort()
    return d, high, events
