"""Anomaly detectors for tags and machines: pure code, samples in, scores out (no I/O).

Three detectors, each explainable (which tag, how far from normal, since when):

* `StreamDetector` / `stream_scores`: a streaming detector for one tag that needs no tuning
  per series. It quantises the value at three resolutions (range learnt over the first
  ``learn`` samples), counts how many of the (previous, current) level pairs were never seen
  before (contextual novelty, after CAD-OSE), turns the short-term novelty rate into an
  anomaly likelihood against its own history (after Numenta's anomaly likelihood), takes a
  new extreme beyond the range seen so far as anomalous too, and keeps quiet for a while after
  each alert. `StreamDetector` scores sample by sample; `stream_scores` is the vectorised
  batch path and gives the very same numbers (tests check equality).
* `fit_baseline` / `score_baseline`: a robust seasonal baseline, median and MAD per
  time-of-day bucket and machine state; a stopped machine is never anomalous; a bucket with too
  little history says so instead of scoring.
* `fit_multivariate` / `score_multivariate`: robust z-scores of a machine's tags combined by
  the Mahalanobis distance on a robust (winsorised) correlation; the explanation names the tag
  that contributes most.

`data_quality` finds gaps, flat lines, unit changes (level jumps by a factor such as 1000) and
restarts (counter resets, a restart after a gap); `guard` returns the values with unit changes
undone and the samples on which no anomaly may be raised, so those are reported as data
quality, never as anomalies.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_ndtr, ndtri
from scipy.stats import chi2

__all__ = [
    "STOPPED_STATES",
    "Anomaly",
    "BaselineModel",
    "DataQualityFinding",
    "GuardPoint",
    "GuardedSeries",
    "MultivariateModel",
    "StreamDetector",
    "StreamGuard",
    "StreamParams",
    "StreamPoint",
    "TagMonitor",
    "data_quality",
    "fit_baseline",
    "fit_multivariate",
    "guard",
    "robust_scale",
    "scan",
    "score_baseline",
    "score_multivariate",
    "stream_scores",
    "z_to_score",
]

_LN10 = math.log(10.0)
#: MAD to standard deviation for normal data
MAD_SIGMA = 1.4826
#: machine states in which no value is anomalous (the machine is not producing)
STOPPED_STATES = frozenset(
    {"stopped", "off", "down", "idle", "setup", "maintenance", "planned_stop"}
)


def z_to_score(z: np.ndarray | float) -> np.ndarray:
    """Map a one-sided z to [0, 1]: ``-log10(tail probability) / 10`` (z 4.3 → 0.5, 6 → 0.9).

    Zero for z <= 0 (not above normal); the tail is only computed where it matters.
    """
    zz = np.asarray(z, dtype=np.float64)
    out = np.zeros(zz.shape)
    pos = zz > 0
    out[pos] = np.clip(-log_ndtr(-zz[pos]) / _LN10 / 10.0, 0.0, 1.0)
    return out


def _score_of(z: float) -> float:
    """`z_to_score` of one value (the same arithmetic)."""
    if not z > 0:
        return 0.0
    return min(max(-float(log_ndtr(-z)) / _LN10 / 10.0, 0.0), 1.0)


# --------------------------------------------------------------------------- streaming detector


@dataclass(frozen=True, slots=True)
class StreamParams:
    """The one parameter set of the streaming detector (chosen on NAB, used for every series)."""

    learn: int = 300  # samples to learn the value range; no score before
    bins: tuple[int, ...] = (8, 12, 16)  # quantisation resolutions over the learnt range
    below: int = 4  # levels kept below the range, in ranges (lower values share one level)
    above: int = 5  # levels kept above the range, in ranges
    short: int = 10  # samples averaged for the short-term novelty rate
    history: int = 8640  # samples of novelty-rate history for the likelihood
    floor_abs: float = 0.03  # lowest standard deviation of the novelty rate …
    floor_rel: float = 0.05  # … plus this share of its mean
    tolerance: float = 0.02  # a new extreme counts when beyond the range seen by this share
    alert: float = 0.3  # score at which the detector alerts, then keeps quiet …
    quiet_min: int = 20  # … for at least this many samples …
    quiet_share: float = 0.05  # … or this share of the samples seen so far

    def __post_init__(self) -> None:
        if self.learn < 2 or self.short < 1 or self.history < 1 or not self.bins:
            raise ValueError("learn >= 2, short >= 1, history >= 1 and at least one bin count")
        if min(self.bins) < 1 or (self.below + self.above + 1) * max(self.bins) >= 181:
            raise ValueError("bins too fine: level pairs must fit in 16 bits")


@dataclass(frozen=True, slots=True)
class StreamPoint:
    """One scored sample. ``status``: ``learning`` (insufficient history), ``ok``, ``gap``."""

    score: float
    novelty: float  # share of resolutions at which this level pair is new
    likelihood_z: float  # how unusual the short-term novelty rate is, in standard deviations
    extreme: bool  # beyond every value seen so far
    status: str


def _levels(u: np.ndarray, b: int, p: StreamParams) -> np.ndarray:
    """Levels of ``u = (x - lo) / span`` at resolution ``b`` (int16, 0 = lowest kept)."""
    q = np.floor(np.clip(u * b, -p.below * b, p.above * b)).astype(np.int16)
    q += np.int16(p.below * b)
    return q


def _level(x: float, lo: float, span: float, b: int, p: StreamParams) -> int:
    q = min(max((x - lo) / span * b, -p.below * b), p.above * b)
    return math.floor(q) + p.below * b


def _range(first: np.ndarray) -> tuple[float, float]:
    lo, hi = float(first.min()), float(first.max())
    return lo, max(hi - lo, 1e-9 * max(1.0, abs(lo)))


def _quiet(i: int, p: StreamParams) -> int:
    return int(max(p.quiet_min, p.quiet_share * i))


def _likelihood_z(s: int, a: int, b: int, k: int, p: StreamParams) -> float:
    """z of the short novelty sum ``s`` against ``k`` past sums (sum ``a``, squares ``b``)."""
    d = p.short * len(p.bins)
    mu = a / (k * d)
    var = b / (k * (d * d)) - mu * mu
    sd = max(math.sqrt(max(var, 0.0)), p.floor_abs + p.floor_rel * abs(mu))
    return (s / d - mu) / sd


def _first_novel(x: np.ndarray, lo: float, span: float, p: StreamParams) -> np.ndarray:
    """Per sample, at how many resolutions its (previous, current) level pair is new (int8).

    The first occurrence of each 16-bit pair code is found with one scatter-minimum over the
    codes (no sort); the levels are computed in place in one float buffer.
    """
    n = len(x)
    counts = np.zeros(n, dtype=np.int8)
    u = np.subtract(x, lo)
    u /= span
    v = np.empty(n)
    q = np.empty(n, dtype=np.int16)
    where = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    for b in p.bins:
        np.multiply(u, b, out=v)
        np.clip(v, -p.below * b, p.above * b, out=v)
        np.floor(v, out=v)
        np.copyto(q, v, casting="unsafe")
        q += np.int16(p.below * b)
        width = (p.below + p.above) * b + 1
        code = q * np.int16(width)
        code[1:] += q[:-1]
        first = np.full(width * width, n, dtype=where.dtype)
        np.minimum.at(first, code, where)
        counts[first[first < n]] += 1
    return counts


def _window_sum(pos: np.ndarray, cum: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sum of a sparse series (values at sorted ``pos``, running sums ``cum``) over ``[0, end]``
    for each ``end`` (0 when ``end`` < 0)."""
    i = np.searchsorted(pos, end, side="right") - 1
    return np.where(i >= 0, cum[np.maximum(i, 0)], 0)


def _positions(n: int, *where: np.ndarray) -> np.ndarray:
    """A mask of ``n`` samples, True at the given positions (those beyond ``n`` dropped)."""
    mark = np.zeros(n, dtype=bool)
    for w in where:
        mark[w[w < n]] = True
    return mark


def _likelihood(counts: np.ndarray, p: StreamParams) -> np.ndarray:
    """The likelihood z of every sample, computed where the novelty sums change only.

    The short novelty sum ``s`` is non-zero only just after a novel sample, and the history
    sums (sum and squares of ``s`` over the previous ``history`` samples) change only where
    ``s`` enters or leaves that window: z is computed once per stretch with the same history
    sums (the same float operations as the streaming path) and repeated over the stretch.
    """
    n = len(counts)
    h, d = p.history, p.short * len(p.bins)
    nz = np.flatnonzero(counts)
    ccum = np.cumsum(counts[nz], dtype=np.int64)
    # support of s (the short sums), and s there
    sup = np.flatnonzero(_positions(n, (nz[:, None] + np.arange(p.short)).ravel()))
    s = _window_sum(nz, ccum, sup) - _window_sum(nz, ccum, sup - p.short)
    scum, s2cum = np.cumsum(s), np.cumsum(s * s)
    # where the history sums may change: the first h+1 samples (k grows), and after s moves
    starts = _positions(n, sup + 1, sup + h + 1)
    starts[: min(h + 1, n)] = True
    starts = np.flatnonzero(starts)
    a = _window_sum(sup, scum, starts - 1) - _window_sum(sup, scum, starts - h - 1)
    b2 = _window_sum(sup, s2cum, starts - 1) - _window_sum(sup, s2cum, starts - h - 1)
    den = np.clip(starts, 1, h).astype(np.float64)  # k * d, exact in float64
    den *= d
    mu = a / den
    den *= d
    var = b2 / den
    var -= mu * mu
    np.maximum(var, 0.0, out=var)
    sd = np.sqrt(var, out=var)
    np.maximum(sd, p.floor_abs + p.floor_rel * np.abs(mu), out=sd)
    z0 = np.zeros(len(starts))  # s = 0: z = (0 - mu) / sd
    z0 -= mu
    z0 /= sd
    z = np.repeat(z0, np.diff(np.append(starts, n)))
    seg = np.searchsorted(starts, sup, side="right") - 1
    zs = s / d
    zs -= mu[seg]
    zs /= sd[seg]
    z[sup] = zs
    return z


def _extremes(x: np.ndarray, tolerance: float) -> np.ndarray:
    """Samples beyond every earlier value by ``tolerance`` of the range seen so far.

    Only a new running maximum (minimum) can be beyond it, so the test runs on those only.
    """
    mx = np.maximum.accumulate(x)
    mn = np.minimum.accumulate(x)
    extreme = np.zeros(len(x), dtype=bool)
    extreme[1:] = mx[1:] != mx[:-1]
    extreme[1:] |= mn[1:] != mn[:-1]
    cand = np.flatnonzero(extreme)
    prev = cand - 1
    tol = (mx[prev] - mn[prev]) * tolerance
    xc = x[cand]
    extreme[cand] = (xc > mx[prev] + tol) | (xc < mn[prev] - tol)
    return extreme


def stream_scores(values: Sequence[float] | np.ndarray, params: StreamParams | None = None) -> dict:
    """Score a whole series at once (the batch path of `StreamDetector`, same numbers).

    Returns arrays ``score``, ``novelty``, ``likelihood_z``, ``extreme`` (one per input value;
    NaN inputs are gaps: score 0) and ``learning`` (True while the range is being learnt).
    """
    p = params or StreamParams()
    x_all = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x_all)
    gaps = not finite.all()
    x = x_all[finite] if gaps else x_all
    n = len(x)

    def empty() -> dict:
        return {
            "score": np.zeros(len(x_all)),
            "novelty": np.zeros(len(x_all)),
            "likelihood_z": np.zeros(len(x_all)),
            "extreme": np.zeros(len(x_all), dtype=bool),
            "learning": np.ones(len(x_all), dtype=bool),
        }

    if n < p.learn:
        return empty()
    lo, span = _range(x[: p.learn])
    counts = _first_novel(x, lo, span, p)
    z = _likelihood(counts, p)
    extreme = _extremes(x, p.tolerance)
    score = z_to_score(z)
    score[extreme] = 1.0
    learning = np.zeros(n, dtype=bool)
    learning[: p.learn] = True
    score[: p.learn] = 0.0
    extreme[: p.learn] = False
    z[: p.learn] = 0.0
    until = -1
    for i in np.flatnonzero(score >= p.alert):  # keep quiet after each alert
        if i <= until:
            continue
        until = i + _quiet(int(i), p)
        score[i + 1 : until + 1] = 0.0
    got = {
        "score": score,
        "novelty": counts / len(p.bins),
        "likelihood_z": z,
        "extreme": extreme,
        "learning": learning,
    }
    if not gaps:  # no gaps: the arrays are the answer
        return got
    out = empty()
    for key, arr in got.items():
        out[key][finite] = arr
    return out


@dataclass(slots=True)
class StreamDetector:
    """The streaming detector, sample by sample (`stream_scores` is its batch twin)."""

    params: StreamParams = field(default_factory=StreamParams)
    n: int = 0
    _pending: list[float] = field(default_factory=list)
    _lo: float = 0.0
    _span: float = 1.0
    _seen: list[set[int]] = field(default_factory=list)
    _prev: list[int] = field(default_factory=list)
    _counts: deque = field(default_factory=deque)
    _s_hist: deque = field(default_factory=deque)
    _a: int = 0
    _b: int = 0
    _max: float = -math.inf
    _min: float = math.inf
    _quiet_until: int = -1

    def update(self, value: float) -> StreamPoint:
        """Score one sample; NaN is a gap (no score, no learning)."""
        p = self.params
        if not math.isfinite(value):
            return StreamPoint(0.0, 0.0, 0.0, False, "gap")
        if self.n < p.learn:  # learn the range; the learnt samples are scored (as 0) at once
            self._pending.append(float(value))
            self.n += 1
            if self.n == p.learn:
                self._lo, self._span = _range(np.asarray(self._pending))
                self._seen = [set() for _ in p.bins]
                self._prev = [0 for _ in p.bins]
                self._counts = deque([0] * p.short, maxlen=p.short)
                for i, v in enumerate(self._pending):
                    self._step(i, v)
                self._pending = []
            return StreamPoint(0.0, 0.0, 0.0, False, "learning")
        point = self._step(self.n, float(value))
        self.n += 1
        return point

    def _step(self, i: int, x: float) -> StreamPoint:
        p = self.params
        count = 0
        for j, b in enumerate(p.bins):
            q = _level(x, self._lo, self._span, b, p)
            code = q * ((p.below + p.above) * b + 1) + self._prev[j]
            if code not in self._seen[j]:
                self._seen[j].add(code)
                count += 1
            self._prev[j] = q
        self._counts.append(count)
        s = sum(self._counts)
        k = len(self._s_hist)
        z = _likelihood_z(s, self._a, self._b, max(k, 1), p)
        self._s_hist.append(s)
        self._a += s
        self._b += s * s
        if len(self._s_hist) > p.history:
            old = self._s_hist.popleft()
            self._a -= old
            self._b -= old * old
        pmx = x if i == 0 else self._max
        pmn = x if i == 0 else self._min
        rng = pmx - pmn
        extreme = x > pmx + p.tolerance * rng or x < pmn - p.tolerance * rng
        self._max, self._min = max(self._max, x), min(self._min, x)
        if i < p.learn:
            return StreamPoint(0.0, count / len(p.bins), 0.0, False, "learning")
        score = max(_score_of(z), 1.0 if extreme else 0.0)
        if i <= self._quiet_until:
            score = 0.0
        elif score >= p.alert:
            self._quiet_until = i + _quiet(i, p)
        return StreamPoint(score, count / len(p.bins), float(z), bool(extreme), "ok")


# --------------------------------------------------------------------------- seasonal baseline


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """Return (median, MAD * 1.4826) of the finite values (NaN, NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan, math.nan
    med = float(np.median(v))
    return med, MAD_SIGMA * float(np.median(np.abs(v - med)))


@dataclass(frozen=True, slots=True)
class BaselineModel:
    """Median and robust scale per (machine state, time-of-day bucket), learnt from history."""

    bucket_s: int
    day_offset_s: int
    min_samples: int
    states: tuple[str, ...]  # index -> state ("" = no state series)
    median: np.ndarray  # [state, bucket]
    scale: np.ndarray  # [state, bucket], already floored
    count: np.ndarray  # [state, bucket] samples learnt


def _buckets(ts_ms: np.ndarray, bucket_s: int, day_offset_s: int) -> np.ndarray:
    sec = (np.asarray(ts_ms, dtype=np.int64) // 1000 + day_offset_s) % 86_400
    return (sec // bucket_s).astype(np.int64)


def _state_index(states: Sequence[str | None] | None, n: int, known: list[str]) -> np.ndarray:
    if states is None:
        return np.zeros(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    pos = {s: i for i, s in enumerate(known)}
    for i, s in enumerate(states):
        key = "" if s is None else str(s)
        if key not in pos:
            pos[key] = len(known)
            known.append(key)
        out[i] = pos[key]
    return out


def fit_baseline(
    ts_ms: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    states: Sequence[str | None] | None = None,
    *,
    bucket_s: int = 3600,
    day_offset_s: int = 0,
    min_samples: int = 30,
) -> BaselineModel:
    """Learn median/MAD per state and time-of-day bucket from history (no labels needed).

    ``day_offset_s`` shifts UTC to the plant's local day. A bucket's scale is floored at a
    quarter of the typical bucket's scale, so a very steady bucket does not alarm on noise.
    """
    if bucket_s <= 0 or 86_400 % bucket_s:
        raise ValueError("bucket_s must divide a day (e.g. 900, 3600)")
    t = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"{len(t)} timestamps for {len(v)} values")
    known: list[str] = [""] if states is None else []
    st = _state_index(states, len(v), known)
    nb = 86_400 // bucket_s
    ok = np.isfinite(v)
    key = st[ok] * nb + _buckets(t[ok], bucket_s, day_offset_s)
    vv = v[ok]
    size = max(len(known), 1) * nb
    median = np.full(size, np.nan)
    scale = np.full(size, np.nan)
    count = np.bincount(key, minlength=size)
    if len(vv):
        order = np.lexsort((vv, key))
        k_s, v_s = key[order], vv[order]
        starts = np.flatnonzero(np.r_[True, k_s[1:] != k_s[:-1]])
        ends = np.r_[starts[1:], len(k_s)]
        med = (v_s[starts + (ends - starts - 1) // 2] + v_s[starts + (ends - starts) // 2]) / 2
        median[k_s[starts]] = med
        dev = np.abs(vv - median[key])
        order = np.lexsort((dev, key))
        d_s = dev[order]
        mad = (d_s[starts + (ends - starts - 1) // 2] + d_s[starts + (ends - starts) // 2]) / 2
        scale[k_s[starts]] = MAD_SIGMA * mad
        typical = float(np.nanmedian(scale)) if np.isfinite(scale).any() else 0.0
        floor = max(0.25 * typical, 1e-9, 1e-6 * float(np.nanmax(np.abs(median))))
        scale = np.where(np.isfinite(scale), np.maximum(scale, floor), np.nan)
    shape = (max(len(known), 1), nb)
    return BaselineModel(
        bucket_s=bucket_s,
        day_offset_s=day_offset_s,
        min_samples=min_samples,
        states=tuple(known) or ("",),
        median=median.reshape(shape),
        scale=scale.reshape(shape),
        count=count.reshape(shape),
    )


def score_baseline(
    model: BaselineModel,
    ts_ms: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    states: Sequence[str | None] | None = None,
    *,
    stopped: frozenset[str] = STOPPED_STATES,
) -> dict:
    """Score samples against a baseline: robust z, score in [0, 1] and a status per sample.

    Status: ``ok``, ``stopped`` (machine not running: never anomalous), ``insufficient_history``
    (the bucket learnt fewer than ``min_samples``), ``unknown_state`` or ``gap`` (NaN value).
    """
    t = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if t.shape != v.shape:
        raise ValueError(f"{len(t)} timestamps for {len(v)} values")
    b = _buckets(t, model.bucket_s, model.day_offset_s)
    status = np.full(n, "ok", dtype=object)
    if states is None:
        s = np.zeros(n, dtype=np.int64)
        stop = np.zeros(n, dtype=bool)
    else:
        pos = {name: i for i, name in enumerate(model.states)}
        names = ["" if x is None else str(x) for x in states]
        s = np.array([pos.get(x, -1) for x in names], dtype=np.int64)
        stop = np.array([x.lower() in stopped for x in names], dtype=bool)
    known = s >= 0
    si = np.where(known, s, 0)
    med = np.where(known, model.median[si, b], np.nan)
    sc = np.where(known, model.scale[si, b], np.nan)
    cnt = np.where(known, model.count[si, b], 0)
    with np.errstate(invalid="ignore"):
        z = (v - med) / sc
    status[~known] = "unknown_state"
    status[known & (cnt < model.min_samples)] = "insufficient_history"
    status[~np.isfinite(v)] = "gap"
    status[stop] = "stopped"
    usable = status == "ok"
    z = np.where(usable, z, 0.0)
    return {
        "z": z,
        "score": np.where(usable, z_to_score(np.abs(z)), 0.0),
        "status": status,
        "median": med,
        "scale": sc,
    }


# --------------------------------------------------------------------------- multivariate


@dataclass(frozen=True, slots=True)
class MultivariateModel:
    """Robust centre, scale and inverse correlation of a machine's tags."""

    tags: tuple[str, ...]
    median: np.ndarray
    scale: np.ndarray
    precision: np.ndarray  # inverse of the winsorised correlation
    samples: int


def fit_multivariate(
    tags: Sequence[str], matrix: np.ndarray, *, min_samples: int = 100, clip: float = 4.0
) -> MultivariateModel:
    """Learn a machine's normal operation: rows are instants, columns ``tags`` (NaN rows skipped).

    Raises ``ValueError`` with too little history (fewer than ``min_samples`` complete rows).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != len(tags) or not len(tags):
        raise ValueError(f"expected a matrix with one column per tag ({len(tags)})")
    rows = m[np.isfinite(m).all(axis=1)]
    if len(rows) < max(min_samples, 2 * len(tags)):
        raise ValueError(
            f"insufficient history: {len(rows)} complete rows, at least "
            f"{max(min_samples, 2 * len(tags))} needed"
        )
    med = np.median(rows, axis=0)
    scale = MAD_SIGMA * np.median(np.abs(rows - med), axis=0)
    spread = rows.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(spread > 0, spread, 1.0))
    z = np.clip((rows - med) / scale, -clip, clip)
    corr = np.corrcoef(z, rowvar=False) if len(tags) > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    corr = (1 - 1e-3) * corr + 1e-3 * np.eye(len(tags))  # shrink a little: invertible
    return MultivariateModel(tuple(tags), med, scale, np.linalg.inv(corr), len(rows))


def score_multivariate(model: MultivariateModel, matrix: np.ndarray) -> dict:
    """Score rows: Mahalanobis distance², score in [0, 1], per-tag z and the main tag per row."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != len(model.tags):
        raise ValueError(f"expected {len(model.tags)} columns ({', '.join(model.tags)})")
    z = (m - model.median) / model.scale
    ok = np.isfinite(z).all(axis=1)
    zf = np.where(ok[:, None], z, 0.0)
    w = zf @ model.precision
    d2 = np.einsum("ij,ij->i", zf, w)
    contrib = zf * w
    p_tail = chi2.sf(d2, df=len(model.tags))
    zeq = -_ndtri_tail(p_tail)
    score = np.where(ok, z_to_score(zeq), 0.0)
    main = np.argmax(contrib, axis=1)
    return {"d2": np.where(ok, d2, np.nan), "score": score, "z": z, "main": main, "ok": ok}


def _ndtri_tail(p: np.ndarray) -> np.ndarray:
    """Return the z whose lower tail is ``p`` (``-z`` is the equivalent one-sided z)."""
    return ndtri(np.clip(p, 1e-300, 1.0))


# --------------------------------------------------------------------------- data quality


@dataclass(frozen=True, slots=True)
class DataQualityFinding:
    """A data-quality finding on a tag: ``gap``, ``flat_line``, ``unit_change`` or ``restart``."""

    kind: str
    start_ms: int
    end_ms: int
    detail: str
    factor: float | None = None  # unit change: new level / old level

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {
            "kind": self.kind,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "detail": self.detail,
            "factor": self.factor,
        }


_UNIT_FACTORS = (1000.0, 100.0, 3600.0, 60.0, 1e6)


def _unit_factor(ratio: float, tolerance: float = 0.15) -> float | None:
    """Return the unit factor ``ratio`` is (within 15 %), or None."""
    if not math.isfinite(ratio) or ratio <= 0:
        return None
    for f in _UNIT_FACTORS:
        for cand in (f, 1.0 / f):
            if abs(ratio / cand - 1.0) <= tolerance:
                return cand
    return None


@dataclass(frozen=True, slots=True)
class GuardPoint:
    """A sample after the guard: the value to score (unit changes undone, NaN in a gap),
    whether an anomaly may be raised on it, and the findings it completed."""

    value: float
    quiet: bool
    findings: tuple[DataQualityFinding, ...] = ()


@dataclass(slots=True)
class StreamGuard:
    """Data-quality guard in front of a detector, sample by sample (one tag, sorted by time).

    * gap: a step longer than ``gap_factor`` times the typical (median) step, or NaN values;
    * flat line: ``flat_min`` identical values in a row on a tag that moved before;
    * unit change: a value ``x1000``, ``x100``, ``x3600``, ``x60``, ``x1e6`` (or the inverse) of
      the recent level (within 15 %) on a steady tag: later values are divided back;
    * restart: a counter that kept rising falls to (near) zero, or a 0 right after a gap.

    After each, ``settle`` samples are quiet: the process (or the detector's context) settles.
    A genuine jump by exactly a unit factor is taken for a unit change; that is the price.
    """

    gap_factor: float = 5.0
    flat_min: int = 30
    level_window: int = 10
    settle: int = 20
    _steps: deque = field(default_factory=lambda: deque(maxlen=51))
    _recent: deque = field(default_factory=lambda: deque(maxlen=10))
    _last_ts: int | None = None
    _last_raw: float = math.nan
    _factor: float = 1.0
    _flat: int = 0
    _flat_start: int = 0
    _moved: bool = False
    _rising: int = 0
    _quiet_left: int = 0
    _nan_since: int | None = None

    def update(self, ts_ms: int, value: float) -> GuardPoint:
        """Guard one sample."""
        found: list[DataQualityFinding] = []
        ts = int(ts_ms)
        if not math.isfinite(value):
            if self._nan_since is None:
                self._nan_since = ts
            return GuardPoint(math.nan, True)
        after_nan = self._nan_since is not None
        if after_nan:
            found.append(DataQualityFinding("gap", self._nan_since, ts, "values missing (NaN)"))
            self._nan_since = None
            self._quiet_left = self.settle
        raw = float(value)
        if self._last_ts is not None:
            step = ts - self._last_ts
            if after_nan:
                pass
            elif len(self._steps) >= 5:
                typical = sorted(self._steps)[len(self._steps) // 2]
                if step > self.gap_factor * max(typical, 1):
                    found.append(
                        DataQualityFinding(
                            "gap", self._last_ts, ts, f"no sample for {step / 1000:g} s"
                        )
                    )
                    self._quiet_left = self.settle
                    if raw == 0 and any(v != 0 for v in self._recent):
                        found.append(
                            DataQualityFinding("restart", self._last_ts, ts, "restart after a gap")
                        )
                else:
                    self._steps.append(step)
            elif step > 0:
                self._steps.append(step)
            # counter reset
            reset = raw < self._last_raw and abs(raw) <= 0.05 * abs(self._last_raw)
            if reset and self._rising >= self.level_window:
                found.append(DataQualityFinding("restart", self._last_ts, ts, "counter reset"))
                self._quiet_left = self.settle
            self._rising = (
                self._rising + 1
                if raw > self._last_raw
                else (self._rising if raw == self._last_raw else 0)
            )
            # flat line
            if raw == self._last_raw:
                self._flat += 1
                if self._flat + 1 == self.flat_min and self._moved:
                    found.append(
                        DataQualityFinding(
                            "flat_line",
                            self._flat_start,
                            ts,
                            f"{self.flat_min} identical values {raw:g}",
                        )
                    )
            else:
                if self._flat + 1 >= self.flat_min and self._moved:
                    self._quiet_left = self.settle
                self._flat = 0
                self._flat_start = ts
                self._moved = True
        else:
            self._flat_start = ts
        # unit change against the recent level (in the first unit)
        scaled = raw / self._factor
        if len(self._recent) >= 3:
            recent = sorted(self._recent)
            level = recent[len(recent) // 2]
            spread = recent[-1] - recent[0]
            steady = level != 0 and spread <= 0.5 * abs(level)
            ratio = scaled / level if level else math.nan
            f = _unit_factor(ratio) if steady and (ratio > 30 or ratio < 1 / 30) else None
            if f is not None:
                self._factor *= f
                scaled = raw / self._factor
                found.append(
                    DataQualityFinding(
                        "unit_change",
                        int(self._last_ts or ts),
                        ts,
                        f"level x{f:g} (from about {level * self._factor / f:g} to {raw:g})",
                        f,
                    )
                )
                self._quiet_left = self.settle
        self._recent.append(scaled)
        self._last_ts, self._last_raw = ts, raw
        quiet = self._quiet_left > 0 or (self._flat + 1 >= self.flat_min and self._moved)
        if self._quiet_left > 0:
            self._quiet_left -= 1
        return GuardPoint(scaled, quiet, tuple(found))


@dataclass(frozen=True, slots=True)
class GuardedSeries:
    """A tag's values made fit for anomaly scoring, and where no anomaly may be raised."""

    values: np.ndarray  # unit changes undone (in the first samples' unit); NaN in gaps
    quiet: np.ndarray  # True where a data-quality finding forbids an anomaly
    findings: list[DataQualityFinding]


def guard(
    ts_ms: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray, **kwargs: float
) -> GuardedSeries:
    """Run `StreamGuard` over a whole series (sorted by time)."""
    t = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"{len(t)} timestamps for {len(v)} values")
    g = StreamGuard(**kwargs)  # type: ignore[arg-type]
    out = np.empty(len(v))
    quiet = np.zeros(len(v), dtype=bool)
    findings: list[DataQualityFinding] = []
    for i, (ts, x) in enumerate(zip(t.tolist(), v.tolist(), strict=True)):
        p = g.update(ts, x)
        out[i], quiet[i] = p.value, p.quiet
        findings.extend(p.findings)
    return GuardedSeries(out, quiet, findings)


def data_quality(
    ts_ms: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray, **kwargs: float
) -> list[DataQualityFinding]:
    """Return the data-quality findings of one tag's samples (see `StreamGuard`)."""
    return guard(ts_ms, values, **kwargs).findings


# --------------------------------------------------------------------------- tag monitor


@dataclass(frozen=True, slots=True)
class Anomaly:
    """An explained anomaly: which tag, how far from normal, since when."""

    tag: str
    ts_ms: int  # when the detector alerted
    since_ms: int  # when the unusual behaviour began
    score: float  # 0..1
    value: float
    median: float  # normal level (recent samples)
    z: float  # robust z of the value against the recent samples
    reason: str  # "new extreme", "unusual pattern", "far from its baseline", …

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (NaN and infinities become None)."""
        out = {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()
        }

    def explain(self) -> str:
        """Return one line of evidence for the alarm."""
        return (
            f"{self.tag}: {self.reason}, value {self.value:.4g} vs normal {self.median:.4g} "
            f"(robust z {self.z:+.1f}, score {self.score:.2f}) since {_iso(self.since_ms)}"
        )


def _iso(ts_ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class TagMonitor:
    """Guard + streaming detector + explanation for one tag, sample by sample.

    `update` returns an `Anomaly` when the detector alerts on a sample the guard lets through;
    data-quality findings collect in ``findings``; ``status`` is ``insufficient_history``
    until the detector has learnt its range and the tag has ``min_history_s`` of history (a
    day by default: the first daily cycle sets the normal range, no alarm meanwhile).
    """

    tag: str
    min_history_s: float = 86_400.0
    params: StreamParams = field(default_factory=StreamParams)
    guard: StreamGuard = field(default_factory=StreamGuard)
    detector: StreamDetector | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=500))
    findings: list[DataQualityFinding] = field(default_factory=list)
    last_ts_ms: int | None = None
    first_ts_ms: int | None = None
    _short: deque = field(default_factory=lambda: deque(maxlen=10))

    def __post_init__(self) -> None:
        if self.detector is None:
            self.detector = StreamDetector(self.params)
        self._short = deque(maxlen=self.params.short)

    @property
    def status(self) -> str:
        """``insufficient_history`` while learning (samples seen / needed), else ``ok``."""
        assert self.detector is not None
        learnt = self.detector.n >= self.params.learn
        span_ms = 0 if self.first_ts_ms is None else (self.last_ts_ms or 0) - self.first_ts_ms
        ok = learnt and span_ms >= self.min_history_s * 1000
        return "ok" if ok else "insufficient_history"

    def update(self, ts_ms: int, value: float) -> Anomaly | None:
        """Take one sample (sorted by time; older samples are ignored)."""
        assert self.detector is not None
        if self.last_ts_ms is not None and ts_ms <= self.last_ts_ms:
            return None
        self.last_ts_ms = int(ts_ms)
        if self.first_ts_ms is None:
            self.first_ts_ms = int(ts_ms)
        g = self.guard.update(ts_ms, value)
        self.findings.extend(g.findings)
        point = self.detector.update(g.value)
        if not math.isfinite(g.value):
            return None
        self._short.append((int(ts_ms), point.novelty))
        self.recent.append(g.value)
        if g.quiet or point.score < self.params.alert or self.status != "ok":
            return None
        return self._explain(int(ts_ms), g.value, point)

    def _explain(self, ts_ms: int, value: float, point: StreamPoint) -> Anomaly:
        hist = np.fromiter(self.recent, dtype=np.float64)[:-1]
        med, scale = robust_scale(hist)
        if not scale > 0:
            scale = float(np.std(hist)) or 1e-9
        z = (value - med) / scale
        since = ts_ms
        for ts, nov in self._short:  # oldest first: the start of the unusual run
            if nov > 0:
                since = ts
                break
        reason = "new extreme" if point.extreme else "unusual pattern"
        return Anomaly(self.tag, ts_ms, since, point.score, value, med, float(z), reason)


def scan(
    tag: str,
    ts_ms: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    min_history_s: float = 86_400.0,
) -> tuple[list[Anomaly], list[DataQualityFinding], str]:
    """Score a tag's history: anomalies, data-quality findings and the model's status."""
    t = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape:
        raise ValueError(f"{len(t)} timestamps for {len(v)} values")
    mon = TagMonitor(tag, min_history_s=min_history_s)
    out = [a for ts, x in zip(t.tolist(), v.tolist(), strict=True) if (a := mon.update(ts, x))]
    return out, mon.findings, mon.status
