"""Time-to-survive / time-to-recover (Simchi-Levi et al.) as linear programs solved by HiGHS.

Variables: the window ``t`` (weeks), production ``y`` of each site and market, flow ``x`` on each
supply relation, lost demand ``l`` per product. Rows:

* capacity    y_j - cap_j·t <= 0                      (each site)
* stock       Σ_out x - y_j <= inventory_j            (each site; stock of its own item)
* inputs      Σ_group x - qty·y_customer >= 0         (each customer and item it needs)
* demand      y_m + l_m - demand_m·t >= 0             (each product's market)

TTS of site n: max t with y_n = 0 and l = 0, t <= horizon. PI of site n: min Σ margin·l with
y_n = 0 and t = TTR_n. One model each is built once; per site only column bounds change, and
HiGHS restarts from the previous basis. A site that makes nothing in the optimal plan without a
disruption cannot change the optimum, so its LP is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from functools import cache
from typing import Any

import highspy
import numpy as np

from indunet.chain.graph import EPS, SupplyGraph
from indunet.errors import IndunetError

__all__ = ["ChainSolveError", "resilience_table"]


class ChainSolveError(IndunetError):
    """The resilience linear program has no answer; the message says why in words."""


@cache
def _silence_banner() -> bool:
    """Create the first HiGHS object with stdout closed: HiGHS prints a banner once per process."""
    fd = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(fd, 1)
        os.close(fd)
    return True


def _new_highs() -> highspy.Highs:
    _silence_banner()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("log_to_console", False)
    return h


class _Model:
    """Column layout of the TTS/PI model of one graph."""

    def __init__(self, g: SupplyGraph, down: np.ndarray) -> None:
        self.g = g
        n, e, p = g.n, len(g.src), g.n_markets
        self.t = 0
        self.y0 = 1
        self.x0 = 1 + n
        self.l0 = 1 + n + e
        self.ncols = 1 + n + e + p
        inf = highspy.kHighsInf
        self.lower = np.zeros(self.ncols)
        self.upper = np.full(self.ncols, inf)
        self.upper[self.y0 : self.y0 + n][down] = 0.0
        rows_lo, rows_hi, starts, index, value = [], [], [], [], []

        def row(lo: float, hi: float, cols: list[int], vals: list[float]) -> None:
            starts.append(len(index))
            rows_lo.append(lo)
            rows_hi.append(hi)
            index.extend(cols)
            value.extend(vals)

        out_edges: list[list[int]] = [[] for _ in range(n)]
        for k, s in enumerate(g.src.tolist()):
            out_edges[s].append(k)
        for j in range(g.n_sites):
            cap = float(g.capacity[j])
            row(-inf, 0.0, [self.y0 + j, self.t], [1.0, -cap])
            outs = out_edges[j]
            row(
                -inf,
                float(g.inventory[j]),
                [self.x0 + k for k in outs] + [self.y0 + j],
                [1.0] * len(outs) + [-1.0],
            )
        for gi in range(len(g.grp_dst)):
            a, b = int(g.grp_start[gi]), int(g.grp_start[gi + 1])
            d = int(g.grp_dst[gi])
            row(
                0.0,
                inf,
                [self.x0 + k for k in range(a, b)] + [self.y0 + d],
                [1.0] * (b - a) + [-float(g.grp_qty[gi])],
            )
        for q, m in enumerate(range(g.n_sites, n)):
            row(0.0, inf, [self.y0 + m, self.l0 + q, self.t], [1.0, 1.0, -float(g.demand[m])])
        self.rows = (
            np.array(rows_lo),
            np.array(rows_hi),
            np.array(starts, dtype=np.int32),
            np.array(index, dtype=np.int32),
            np.array(value, dtype=np.float64),
        )

    def highs(self, cost: np.ndarray, sense: highspy.ObjSense) -> highspy.Highs:
        """Return a HiGHS instance holding this model with the given objective."""
        h = _new_highs()
        h.addVars(self.ncols, self.lower, self.upper)
        h.changeColsCost(self.ncols, np.arange(self.ncols, dtype=np.int32), cost)
        lo, hi, starts, index, value = self.rows
        h.addRows(len(lo), lo, hi, len(index), starts, index, value)
        h.changeObjectiveSense(sense)
        return h


def _solve(h: highspy.Highs, what: str) -> np.ndarray:
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return np.asarray(h.getSolution().col_value)
    if status == highspy.HighsModelStatus.kInfeasible:
        raise ChainSolveError(
            f"{what}: no production plan satisfies the network's limits; check for negative "
            "stock or capacity and for products whose demand cannot be reached at all"
        )
    if status in (
        highspy.HighsModelStatus.kUnbounded,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        raise ChainSolveError(
            f"{what}: the answer has no limit; a horizon or a capacity is missing (infinite)"
        )
    raise ChainSolveError(
        f"{what}: the solver stopped without an answer ({h.modelStatusToString(status)}); "
        "the network may be too large or badly scaled (mixing very large and very small numbers)"
    )


def resilience_table(
    g: SupplyGraph,
    *,
    capacity: Mapping[str, float] | None = None,
    down: Collection[str] = (),
) -> dict[str, Any]:
    """Return TTS, TTR, PI, REI and at-risk per site, plus warnings, for the whole network.

    ``capacity`` and ``down`` override sites' capacity and status (e.g. from live data) for every
    run; a site already down gets TTS and PI of the network as it is.
    """
    g = g.with_capacity(capacity or {})
    down_mask = g.down_mask(down)
    model = _Model(g, down_mask)
    s = g.n_sites
    horizon = g.horizon
    warnings: list[str] = []

    # time-to-survive: max t, no lost demand
    cost = np.zeros(model.ncols)
    cost[model.t] = 1.0
    tts_h = model.highs(cost, highspy.ObjSense.kMaximize)
    tts_h.changeColBounds(model.t, 0.0, horizon)
    lost_cols = np.arange(model.l0, model.ncols, dtype=np.int32)
    if len(lost_cols):
        tts_h.changeColsBounds(
            len(lost_cols), lost_cols, np.zeros(len(lost_cols)), np.zeros(len(lost_cols))
        )
    base = _solve(tts_h, "time-to-survive with every site up")
    base_t = float(base[model.t])
    if base_t < horizon - 1e-6:
        warnings.append(
            f"even with every site up, demand is met for only {base_t:.4g} of "
            f"{horizon:g} weeks (capacity or stock is short)"
        )
    tts = np.full(s, base_t)
    for j in range(s):
        col = model.y0 + j
        if down_mask[j] or base[col] <= EPS:
            continue
        tts_h.changeColBounds(col, 0.0, 0.0)
        sol = _solve(tts_h, f"time-to-survive of site {g.ids[j]}")
        tts[j] = float(sol[model.t])
        tts_h.changeColBounds(col, 0.0, highspy.kHighsInf)

    # performance impact: min lost margin while the site is down for its TTR
    cost = np.zeros(model.ncols)
    cost[model.l0 :] = g.margin[s:]
    pi_h = model.highs(cost, highspy.ObjSense.kMinimize)
    pi = np.zeros(s)
    ttr = g.ttr[:s]
    for value in np.unique(ttr).tolist():
        pi_h.changeColBounds(model.t, value, value)
        base = _solve(pi_h, f"lost margin over {value:g} weeks with every site up")
        base_loss = float(np.dot(base[model.l0 :], g.margin[s:]))
        for j in np.flatnonzero(ttr == value).tolist():
            col = model.y0 + j
            if down_mask[j] or base[col] <= EPS:
                pi[j] = base_loss
                continue
            pi_h.changeColBounds(col, 0.0, 0.0)
            sol = _solve(pi_h, f"performance impact of site {g.ids[j]}")
            pi[j] = float(np.dot(sol[model.l0 :], g.margin[s:]))
            pi_h.changeColBounds(col, 0.0, highspy.kHighsInf)
    pi = np.where(np.abs(pi) < 1e-7, 0.0, pi)
    top = float(pi.max()) if s else 0.0
    rei = pi / top if top > 0 else np.zeros(s)
    nodes = [
        {
            "id": g.ids[j],
            "tts_weeks": round(float(tts[j]), 6),
            "ttr_weeks": float(ttr[j]),
            "performance_impact": round(float(pi[j]), 6),
            "rei": round(float(rei[j]), 6),
            "at_risk": bool(tts[j] < ttr[j] - 1e-9),
        }
        for j in range(s)
    ]
    return {"nodes": nodes, "warnings": warnings}
