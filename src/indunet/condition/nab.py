"""The Numenta Anomaly Benchmark (NAB) score, written after NAB's published rules.

Pure code: anomaly scores and label windows come in, scores go out. The rules follow
numenta/NAB ``nab/sweeper.py``, ``scorer.py``, ``optimizer.py`` and ``runner.normalize``
(commit ea702d7), re-implemented with numpy:

* every row of a series gets a weight: inside a labelled window the scaled sigmoid of its
  relative position (earliest = ``tp`` weight, the window's right edge = 0), outside a window
  ``fp`` times the scaled sigmoid of its distance past the previous window (``-fp`` with no
  window before it);
* the first 15 % of each series (at most 750 rows) is probationary and not scored;
* a window scores the best weight among its detections, or ``-fn`` when it has none; false
  positives add up;
* one threshold for the whole corpus and profile, the one with the highest total score (NAB's
  optimiser: every distinct anomaly score is tried; a detection is ``score >= threshold``);
* the total is normalised: ``100 * (score - null) / (perfect - null)``, where null is the score
  with no detection and perfect ``tp`` times the number of windows.

Labels are read here only, never by a detector.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PROFILES",
    "CorpusScore",
    "Profile",
    "SeriesSweep",
    "load_series",
    "load_windows",
    "scaled_sigmoid",
    "score_corpus",
    "sweep_series",
]

#: NAB's own "no detection" threshold (above every score in [0, 1])
NO_DETECTION = 1.1
PROBATION_PERCENT = 0.15


@dataclass(frozen=True, slots=True)
class Profile:
    """A NAB cost matrix (``config/profiles.json``)."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """Return NAB's ``2 * sigmoid(-5 x) - 1`` (``-1`` beyond 3 window lengths)."""
    x = np.asarray(position, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, val)


_MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])


@dataclass(frozen=True, slots=True)
class SeriesSweep:
    """One series' rows as the scorer sees them (probationary rows already dropped).

    ``window`` is the row's window number within the series (``-1`` outside every window);
    ``tp_weight``/``fp_weight`` are the unweighted scaled-sigmoid values (multiply by the
    profile's ``tp / max`` or ``fp``).
    """

    name: str
    scores: np.ndarray
    window: np.ndarray
    unweighted: np.ndarray
    windows: int  # windows with at least one scored row
    labelled: int  # windows in the labels (the perfect detector finds them all)

    def weighted(self, profile: Profile) -> np.ndarray:
        """Return each row's weight under ``profile``."""
        inside = self.window >= 0
        return np.where(
            inside, self.unweighted * profile.tp / _MAX_TP, self.unweighted * profile.fp
        )


def _first_index(timestamps: Sequence[str]) -> dict[str, int]:
    first: dict[str, int] = {}
    for i, ts in enumerate(timestamps):
        first.setdefault(ts, i)
    return first


def _norm_ts(ts: str) -> str:
    """Return a timestamp as ``YYYY-MM-DD HH:MM:SS`` (windows carry ``.000000``)."""
    return ts.strip().split(".")[0]


def sweep_series(
    name: str,
    timestamps: Sequence[str],
    scores: Sequence[float] | np.ndarray,
    windows: Sequence[Sequence[str]],
    probation_percent: float = PROBATION_PERCENT,
) -> SeriesSweep:
    """Weigh every row of one series against its label windows (NAB ``calcSweepScore``)."""
    n = len(timestamps)
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != (n,):
        raise ValueError(f"{name}: {len(sc)} scores for {n} timestamps")
    if n and not (np.isfinite(sc).all() and sc.min() >= 0.0 and sc.max() <= 1.0):
        raise ValueError(f"{name}: anomaly scores must be finite and within [0, 1]")
    first = _first_index([_norm_ts(t) for t in timestamps])
    window = np.full(n, -1, dtype=np.int64)
    unweighted = np.full(n, -1.0)
    prev_right: int | None = None
    prev_width = 0.0
    cursor = 0
    idx = np.arange(n, dtype=np.float64)
    for w, (start, end) in enumerate(windows):
        try:
            left, right = first[_norm_ts(start)], first[_norm_ts(end)]
        except KeyError as exc:
            raise ValueError(f"{name}: window edge {exc.args[0]} is not a timestamp") from None
        if right < left or left < cursor:
            raise ValueError(f"{name}: window {start} .. {end} is out of order")
        # rows before this window: false positives relative to the previous window
        if prev_right is not None and left > cursor:
            with np.errstate(divide="ignore", invalid="ignore"):
                pos = np.abs(prev_right - idx[cursor:left]) / (prev_width - 1.0)
            unweighted[cursor:left] = scaled_sigmoid(pos)
        width = float(right - left + 1)
        unweighted[left : right + 1] = scaled_sigmoid(-(right - idx[left : right + 1] + 1) / width)
        window[left : right + 1] = w
        prev_right, prev_width, cursor = right, width, right + 1
    if prev_right is not None and cursor < n:
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = np.abs(prev_right - idx[cursor:]) / (prev_width - 1.0)
        unweighted[cursor:] = scaled_sigmoid(pos)
    probation = int(min(math.floor(probation_percent * n), probation_percent * 5000))
    probation = max(probation, 0)
    kept_windows = window[probation:]
    return SeriesSweep(
        name=name,
        scores=sc[probation:],
        window=kept_windows,
        unweighted=unweighted[probation:],
        windows=len(np.unique(kept_windows[kept_windows >= 0])),
        labelled=len(windows),
    )


@dataclass(frozen=True, slots=True)
class CorpusScore:
    """A profile's result over a corpus: raw and normalised score at the optimal threshold."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int  # rows, as NAB counts them
    windows_detected: int
    windows: int

    @property
    def normalised(self) -> float:
        """Return ``100 * (raw - null) / (perfect - null)``: 0 = null detector, 100 = perfect."""
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def _threshold_scores(
    sweeps: Sequence[SeriesSweep], profile: Profile
) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (thresholds, scores) over the corpus, highest threshold first, and the null score."""
    scores = np.concatenate([s.scores for s in sweeps]) if sweeps else np.zeros(0)
    weights = np.concatenate([s.weighted(profile) for s in sweeps]) if sweeps else np.zeros(0)
    offset = 0
    wins = []
    for s in sweeps:
        wins.append(np.where(s.window >= 0, s.window + offset, -1))
        offset += int(s.window.max()) + 1 if len(s.window) and s.window.max() >= 0 else 0
    win = np.concatenate(wins) if wins else np.zeros(0, dtype=np.int64)
    n_windows = len(np.unique(win[win >= 0]))
    null = -profile.fn * n_windows
    order = np.argsort(-scores, kind="stable")
    s_sorted, w_sorted, win_sorted = scores[order], weights[order], win[order]
    delta = np.where(win_sorted < 0, w_sorted, 0.0)
    # a window's part is its best detection so far (starting at -fn): add each improvement
    inside = np.flatnonzero(win_sorted >= 0)
    if len(inside):
        grp = win_sorted[inside]
        by_grp = np.argsort(grp, kind="stable")  # within a window, still in sweep order
        pos = inside[by_grp]
        g = grp[by_grp]
        vals = w_sorted[pos]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        run = np.empty_like(vals)
        for a, b in zip(starts, np.r_[starts[1:], len(g)], strict=True):
            run[a:b] = np.maximum.accumulate(np.maximum(vals[a:b], -profile.fn))
        prev = np.empty_like(run)
        prev[1:] = run[:-1]
        prev[starts] = -profile.fn
        delta[pos] = run - prev
    total = null + np.cumsum(delta)
    # a threshold's score counts every row with score >= threshold: the last row of each run
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) if len(s_sorted) else []
    thresholds = np.r_[NO_DETECTION, s_sorted[last]]
    totals = np.r_[null, total[last]]
    return thresholds, totals, null


def score_corpus(
    sweeps: Sequence[SeriesSweep], profile_name: str, threshold: float | None = None
) -> CorpusScore:
    """Score a corpus for a profile at ``threshold``, by default the optimal one.

    The optimum is NAB's: every distinct anomaly score is tried as threshold over the whole
    corpus and the best total wins (ties: the highest threshold). NAB's published board used
    the thresholds of ``config/thresholds.json``, found by an older optimiser; give them here
    to reproduce the board's figures exactly.
    """
    if profile_name not in PROFILES:
        raise ValueError(f"unknown NAB profile {profile_name!r}; use one of {list(PROFILES)}")
    profile = PROFILES[profile_name]
    thresholds, totals, null = _threshold_scores(sweeps, profile)
    if threshold is None:
        best = int(np.argmax(totals))  # ties: the highest threshold, as NAB's stable sort
    else:  # the lowest tried threshold at or above the given one counts the same rows
        at_or_above = np.flatnonzero(thresholds >= threshold)
        best = int(at_or_above[-1]) if len(at_or_above) else 0
    threshold = float(thresholds[best]) if threshold is None else float(threshold)
    tp = fp = fn = detected = windows = 0
    for s in sweeps:
        hit = s.scores >= threshold
        inside = s.window >= 0
        tp += int((hit & inside).sum())
        fp += int((hit & ~inside).sum())
        fn += int((~hit & inside).sum())
        detected += len(np.unique(s.window[hit & inside]))
        windows += s.windows
    return CorpusScore(
        profile=profile_name,
        threshold=threshold,
        raw=float(totals[best]),
        null=null,
        perfect=profile.tp * sum(s.labelled for s in sweeps),
        tp=tp,
        fp=fp,
        fn=fn,
        windows_detected=detected,
        windows=windows,
    )


def load_windows(path: Path) -> dict[str, list[list[str]]]:
    """Read NAB's ``combined_windows.json``: series path -> [[start, end], ...]."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, Mapping):
        raise ValueError(f"{path}: expected an object of series -> windows")
    return {str(k): [[str(a), str(b)] for a, b in v] for k, v in doc.items()}


def load_series(path: Path) -> tuple[list[str], np.ndarray]:
    """Read one NAB data file (``timestamp,value``): timestamps as text and values."""
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[0].startswith("timestamp"):
        raise ValueError(f"{path}: expected a 'timestamp,value' header")
    ts: list[str] = []
    values = np.empty(len(lines) - 1)
    for i, line in enumerate(lines[1:]):
        a, _, b = line.partition(",")
        ts.append(a)
        values[i] = float(b.split(",")[0])
    return ts, values
