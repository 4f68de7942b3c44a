"""A plain row-by-row implementation of the state rules, to check the vectorised engine."""

from __future__ import annotations

import math

OFF, IDLE, RUNNING, OFFLINE = 0, 1, 2, 3


def reference_states(ts, values, th, interval_ms, offline_after_ms, end_ms=None):
    """Return [(start, end, state)] following the documented rules one sample at a time."""
    h = th.hysteresis
    n = len(ts)
    pieces = []  # (start, end, raw state, session id)
    raw = None
    session = 0
    for i in range(n):
        t, v = int(ts[i]), float(values[i])
        nxt = int(ts[i + 1]) if i + 1 < n else None
        if math.isnan(v):
            raw = None
            stop = (
                nxt
                if nxt is not None
                else (end_ms if end_ms is not None and end_ms > t else t + interval_ms)
            )
            pieces.append((t, stop, OFFLINE, None))
            continue
        if raw is None:
            session += 1
            raw = OFF if v < th.off_below else RUNNING if v >= th.running_above else IDLE
        elif raw == OFF:
            raw = RUNNING if v >= th.running_above + h else IDLE if v >= th.off_below + h else OFF
        elif raw == IDLE:
            raw = RUNNING if v >= th.running_above + h else OFF if v < th.off_below - h else IDLE
        else:
            raw = OFF if v < th.off_below - h else IDLE if v < th.running_above - h else RUNNING
        if nxt is None:
            gap = (end_ms - t) if end_ms is not None and end_ms > t else interval_ms
            nxt_t = t + gap
        else:
            gap = nxt - t
            nxt_t = nxt
        if gap <= offline_after_ms:
            pieces.append((t, nxt_t, raw, session))
        else:
            pieces.append((t, t + interval_ms, raw, session))
            pieces.append((t + interval_ms, nxt_t, OFFLINE, None))
            raw = None
    # runs of one raw state inside a session
    runs = []
    for p in pieces:
        if runs and p[3] is not None and runs[-1][3] == p[3] and runs[-1][2] == p[2]:
            runs[-1] = (runs[-1][0], p[1], p[2], p[3])
        else:
            runs.append(p)
    dwell = round(th.min_dwell_s * 1000)
    out = []
    long_state, long_session = None, None
    for s, e, st, sess in runs:
        if sess is None:
            out.append((s, e, OFFLINE))
            continue
        if e - s >= dwell:
            long_state, long_session = st, sess
            out.append((s, e, st))
        elif long_session == sess:
            out.append((s, e, long_state))
        else:
            out.append((s, e, st))
    merged = []
    for s, e, st in out:
        if e <= s:
            continue
        if merged and merged[-1][2] == st and merged[-1][1] == s:
            merged[-1] = (merged[-1][0], e, st)
        else:
            merged.append((s, e, st))
    return merged
