"""Part counters → parts per sample, with resets, wrap-around and flagged anomalies.

A delta at row ``i`` is the parts made in ``(ts[i-1], ts[i]]``. Rules for a drop:

* with ``wrap_at`` and a drop of more than half the modulus: a wrap, ``v + wrap_at - prev``;
* otherwise, with ``resets = true``: a reset to zero, counting ``v`` parts since;
* otherwise: the counter went backwards; nothing is counted for that row and counting goes
  on from the new value. Every such row is reported with its row number and tag.

Missing (NaN) and negative readings are reported and skipped; jumps above ``max_step`` are
counted but reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from indunet.errors import DataError
from indunet.plant.config import CounterConfig

__all__ = ["CounterAnomaly", "CounterDeltas", "counter_deltas"]


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
    last_value: float | None = None  # to continue with the next chunk

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
    prev = np.empty(len(gi))
    prev[1:] = gv[:-1]
    prev[0] = gv[0] if previous is None else previous
    d = gv - prev
    drop = d < 0
    if drop.any():
        is_wrap = np.zeros(len(gi), bool)
        if config.wrap_at is not None:
            is_wrap = drop & (prev - gv > config.wrap_at / 2)
            d[is_wrap] = gv[is_wrap] + config.wrap_at - prev[is_wrap]
        rest = drop & ~is_wrap
        if config.resets:
            d[rest] = gv[rest]
        else:
            d[rest] = 0.0
        for j in np.flatnonzero(is_wrap):
            flag(
                gi[[j]],
                "wrap",
                f"counter wrapped from {prev[j]:g} to {gv[j]:g} at {config.wrap_at}; "
                f"counted {d[j]:g}",
            )
        for j in np.flatnonzero(rest):
            if config.resets:
                flag(gi[[j]], "reset", f"counter reset from {prev[j]:g} to {gv[j]:g}")
            else:
                flag(
                    gi[[j]],
                    "backwards",
                    f"counter went backwards from {prev[j]:g} to {gv[j]:g}; nothing counted "
                    "(set resets = true if it is reset on purpose)",
                )
    if config.max_step is not None:
        for j in np.flatnonzero(d > config.max_step):
            flag(
                gi[[j]],
                "jump",
                f"counter jumped by {d[j]:g} (more than max_step {config.max_step}); counted",
            )
    delta[gi] = d
    anomalies.sort(key=lambda a: a.row)
    return CounterDeltas(ts, delta, anomalies, float(gv[-1]))
