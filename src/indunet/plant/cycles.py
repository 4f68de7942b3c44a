"""Propose a machine's ideal cycle time from its history (``indunet plant learn-cycle``).

ISO 22400-2's performance needs the ideal (best demonstrated) cycle time. Set too slow, it
drives performance above 100 %; set too fast, it hides real speed losses. Like
`learn_thresholds` for power, this looks at what the machine did:

1. the parts counted (counter deltas, resets handled by `counter_deltas`) and the running time
   of its state timeline;
2. windows of a fixed length (about thirty typical cycles, at least a minute, at most an hour)
   that lie wholly inside running time — so start-ups, stops and partial windows do not count;
3. the parts per window at a high percentile (95 % by default): the fastest rate the machine
   *sustained* for a whole window, not a single burst; its inverse is the proposed cycle.

Pure: arrays in, a `CycleProposal` out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indunet.errors import DataError

__all__ = ["CycleProposal", "learn_cycle"]

MIN_WINDOW_MS = 60_000
MAX_WINDOW_MS = 3_600_000
CYCLES_PER_WINDOW = 30  # ±1 part of counter sampling is ~3 %


@dataclass(frozen=True, slots=True)
class CycleProposal:
    """A proposed ideal cycle time and what it was learned from."""

    machine: str
    ideal_cycle_s: float  # the fastest sustained cycle (the percentile's rate)
    median_cycle_s: float  # running time ÷ parts over the windows used
    window_s: float
    windows: int
    parts: float
    running_s: float
    percentile: float
    note: str

    def as_dict(self) -> dict[str, object]:
        """Return the proposal as plain values (for JSON)."""
        return {
            "machine": self.machine,
            "ideal_cycle_s": self.ideal_cycle_s,
            "median_cycle_s": self.median_cycle_s,
            "window_s": self.window_s,
            "windows": self.windows,
            "parts": self.parts,
            "running_s": self.running_s,
            "percentile": self.percentile,
            "note": self.note,
        }


def learn_cycle(
    part_ts_ms: np.ndarray,
    parts: np.ndarray,
    running: np.ndarray,
    *,
    percentile: float = 95.0,
    min_windows: int = 10,
    machine: str = "machine",
) -> CycleProposal:
    """Propose the ideal cycle time (s) from counted parts and running intervals.

    ``part_ts_ms``/``parts`` are counter deltas (parts counted at each sample time, ≥ 0);
    ``running`` is an ``(n, 2)`` array of the running segments ``[start, end)`` in ms.
    Raises `DataError` naming the machine when there is too little running production.
    """
    if not 50 <= percentile < 100:
        raise DataError(f"percentile must be in [50, 100), got {percentile}")
    ts = np.asarray(part_ts_ms, np.int64)
    dq = np.asarray(parts, np.float64)
    if ts.shape != dq.shape:
        raise DataError(f"{machine}: {len(ts)} counter times but {len(dq)} deltas")
    ok = np.isfinite(dq) & (dq > 0)
    ts, dq = ts[ok], dq[ok]
    iv = np.asarray(running, np.int64).reshape(-1, 2)
    iv = iv[iv[:, 1] > iv[:, 0]]
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    run_ms = float((iv[:, 1] - iv[:, 0]).sum())
    if not len(iv) or run_ms <= 0:
        raise DataError(f"{machine}: no running time in the range; compute states first")
    # parts counted inside running time, in (start, end] as OEE counts them
    k = np.searchsorted(iv[:, 0], ts, side="left") - 1
    inside = (k >= 0) & (ts <= iv[np.maximum(k, 0), 1])
    made = float(dq[inside].sum())
    if made <= 0:
        raise DataError(f"{machine}: no parts counted while running; check total_counter")
    typical_ms = run_ms / made
    window = int(np.clip(CYCLES_PER_WINDOW * typical_ms, MIN_WINDOW_MS, MAX_WINDOW_MS))
    # whole windows inside each running segment, parts per window by counter timestamp
    starts = [np.arange(a, b - window + 1, window, dtype=np.int64) for a, b in iv]
    lo = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    if len(lo) < min_windows:
        raise DataError(
            f"{machine}: only {len(lo)} running stretches of {window / 1000:g} s "
            f"(need {min_windows}); widen --start/--end"
        )
    csum = np.concatenate([[0.0], np.cumsum(dq)])
    a = np.searchsorted(ts, lo, side="right")  # parts in (lo, lo + window]
    b = np.searchsorted(ts, lo + window, side="right")
    per_window = csum[b] - csum[a]
    used = per_window > 0
    if used.sum() < min_windows:
        raise DataError(
            f"{machine}: only {int(used.sum())} running windows with parts (need {min_windows})"
        )
    rate = float(np.percentile(per_window[used], percentile))  # parts per window
    ideal = window / 1000 / rate
    median = window / 1000 / float(np.median(per_window[used]))
    return CycleProposal(
        machine=machine,
        ideal_cycle_s=round(ideal, 3),
        median_cycle_s=round(median, 3),
        window_s=window / 1000,
        windows=int(used.sum()),
        parts=float(per_window[used].sum()),
        running_s=run_ms / 1000,
        percentile=percentile,
        note=(
            f"fastest sustained rate: {rate:g} parts per {window / 1000:g} s of running "
            f"(p{percentile:g} of {int(used.sum())} windows); typical cycle {median:.3g} s"
        ),
    )
