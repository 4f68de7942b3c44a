"""Visually faithful downsampling for charts: M4 and LTTB over NumPy arrays (pure)."""

from __future__ import annotations

import numpy as np

__all__ = ["lttb", "m4"]


def m4(ts: np.ndarray, values: np.ndarray, start: int, end: int, buckets: int) -> np.ndarray:
    """Return indices of the first, last, min and max point of each time bucket (M4, Jugel 2014).

    Drawing only these points as a line gives the same picture as drawing all points on a
    chart ``buckets`` pixels wide. ``ts`` must be sorted; the result is sorted and unique.
    """
    n = len(ts)
    if n == 0 or buckets <= 0:
        return np.empty(0, dtype=np.int64)
    if n <= 4 * buckets:
        return np.arange(n, dtype=np.int64)
    span = max(end - start, 1)
    bucket = np.minimum(((ts - start) * buckets) // span, buckets - 1).astype(np.int64)
    edges = np.flatnonzero(np.diff(bucket)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [n])) - 1
    # min and max per bucket via reduceat; locate their first positions within each bucket
    vmin = np.minimum.reduceat(values, starts)
    vmax = np.maximum.reduceat(values, starts)
    seg = np.repeat(np.arange(len(starts)), np.diff(np.concatenate((starts, [n]))))
    is_min = values == vmin[seg]
    is_max = values == vmax[seg]
    pos = np.arange(n)
    big = n + 1
    imin = np.minimum.reduceat(np.where(is_min, pos, big), starts)
    imax = np.minimum.reduceat(np.where(is_max, pos, big), starts)
    picked = np.concatenate((starts, ends, imin, imax))
    return np.unique(picked[picked < n])


def lttb(ts: np.ndarray, values: np.ndarray, threshold: int) -> np.ndarray:
    """Return indices chosen by Largest-Triangle-Three-Buckets (Steinarsson 2013)."""
    n = len(ts)
    if threshold >= n or threshold < 3:
        return np.arange(n, dtype=np.int64)
    x = ts.astype(np.float64)
    y = values.astype(np.float64)
    out = np.empty(threshold, dtype=np.int64)
    out[0] = 0
    out[-1] = n - 1
    every = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        lo = int(i * every) + 1
        hi = int((i + 1) * every) + 1
        nlo, nhi = hi, min(int((i + 2) * every) + 1, n)
        if nlo >= nhi:
            nlo, nhi = n - 1, n
        ax, ay = x[a], y[a]
        cx, cy = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        area = np.abs((ax - cx) * (y[lo:hi] - ay) - (ax - x[lo:hi]) * (cy - ay))
        a = lo + int(np.argmax(area))
        out[i + 1] = a
    return out
