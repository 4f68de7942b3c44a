"""Allocate offers to requests with HiGHS: least cost, or max-min fair fill then least cost.

The model, for arcs ``a`` (offer → request, same item), unmet ``u_r`` and, over days when the
problem is timed, stock ``s_{o,t}`` of capacity offers::

    min  Σ c_a x_a + Σ p_r u_r + Σ k_o z_{o,s}
    s.t. Σ_{a→r} x_a + u_r = d_r                          every request
         Σ_{o→a} x_a ≤ q_o                                 every stock offer
         s_{o,t} - s_{o,t-1} + Σ_{o→a} x_{a,t} = P_o(t) (- Σ_s P_{o,s}(t) z_{o,s} if convertible)
         Σ_s z_{o,s} ≤ 1,  z binary                        convertible lines convert at most once

Only shipments that arrive by the request's deadline get a variable, so late deliveries never
count. ``fair`` raises, class by class (priority 1 first), the smallest fill rate ``t_k`` via rows
``u_r + d_r t_k ≤ d_r``; each floor is then held, and (for every class but the last) so is the
most of the class that can be served (``Σ_{r∈k} u_r`` at its least), while the next class and
finally the cost are optimised, on the same HiGHS model (the last class's floor lazily, see
`_fair_last_class`). Every solution is checked for balance before it is returned.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from indunet.docking.problem import (
    LaneColumns,
    Offer,
    OfferKind,
    Problem,
    Request,
    haversine_km,
)
from indunet.errors import IndunetError

__all__ = ["Allocation", "Solution", "SolverError", "solve"]

INF = highspy.kHighsInf
TOL = 1e-6


class SolverError(IndunetError):
    """The solver failed or returned a solution that does not balance."""


@dataclass
class _Arcs:
    """Arcs as columns: offer index, request index, cost per unit, transit days."""

    offer: np.ndarray
    request: np.ndarray
    cost: np.ndarray
    transit: np.ndarray

    def __len__(self) -> int:
        return int(self.offer.size)


@dataclass
class Allocation:
    """Quantity from an offer to a request (shipped on ``ship_day``, arriving ``arrive_day``)."""

    offer: str
    request: str
    quantity: float
    cost: float
    ship_day: int | None = None
    arrive_day: int | None = None


@dataclass
class Solution:
    """The allocation, its cost, the fill of every request and why any part is unmet."""

    objective: str
    total_cost: float
    transport_cost: float
    penalty_cost: float
    conversion_cost: float
    min_fill_rate: float | None
    allocations: list[Allocation]
    unmet: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    conversions: list[dict[str, Any]] = field(default_factory=list)
    class_floors: dict[int, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the contract shape (plus details) as plain data."""
        return {
            "objective": self.objective,
            "total_cost": round(self.total_cost, 4),
            "transport_cost": round(self.transport_cost, 4),
            "penalty_cost": round(self.penalty_cost, 4),
            "conversion_cost": round(self.conversion_cost, 4),
            "min_fill_rate": None if self.min_fill_rate is None else round(self.min_fill_rate, 6),
            "allocations": [
                {k: v for k, v in a.__dict__.items() if v is not None} for a in self.allocations
            ],
            "unmet": self.unmet,
            "fills": self.fills,
            "conversions": self.conversions,
            "class_floors": {str(k): round(v, 6) for k, v in self.class_floors.items()},
            "warnings": self.warnings,
        }


class _Model:
    """Columns and COO entries of a HiGHS model, passed in one go (colwise CSC)."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[int] = []
        self.row_lower: list[float] = []
        self.row_upper: list[float] = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        empty = np.zeros(0, dtype=np.int64)
        self.rows_arr, self.cols_arr, self.vals_arr = empty, empty, np.zeros(0)
        self.sorted_arr = False  # True when the array entries come column by column

    def col(self, cost: float, lower: float = 0.0, upper: float = INF) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        return len(self.cost) - 1

    def row(self, lower: float, upper: float, entries: list[tuple[int, float]]) -> int:
        r = len(self.row_lower)
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        for c, v in entries:
            self.rows.append(r)
            self.cols.append(c)
            self.vals.append(v)
        return r

    def highs(self) -> highspy.Highs:
        n = len(self.cost)
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.asarray(self.cost, dtype=np.float64)
        lp.col_lower_ = np.asarray(self.lower, dtype=np.float64)
        lp.col_upper_ = np.asarray(self.upper, dtype=np.float64)
        lp.row_lower_ = np.asarray(self.row_lower, dtype=np.float64)
        lp.row_upper_ = np.asarray(self.row_upper, dtype=np.float64)
        if self.cols or not self.sorted_arr:
            cols = np.concatenate([np.asarray(self.cols, dtype=np.int64), self.cols_arr])
            rows = np.concatenate([np.asarray(self.rows, dtype=np.int64), self.rows_arr])
            vals = np.concatenate([np.asarray(self.vals, dtype=np.float64), self.vals_arr])
            order = np.argsort(cols, kind="stable")
            cols, rows, vals = cols[order], rows[order], vals[order]
        else:  # the array entries are already column by column
            cols, rows, vals = self.cols_arr, self.rows_arr, self.vals_arr
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.searchsorted(cols, np.arange(n + 1)).astype(np.int32)
        lp.a_matrix_.index_ = rows.astype(np.int32)
        lp.a_matrix_.value_ = vals
        if self.integer:
            kinds = [highspy.HighsVarType.kContinuous] * n
            for c in self.integer:
                kinds[c] = highspy.HighsVarType.kInteger
            lp.integrality_ = kinds
        # highspy.Highs() prints a banner on stdout from its callback set-up; the core class
        # does not, which keeps `--json` output clean.
        h = highspy._core._Highs()
        h.setOptionValue("output_flag", False)
        h.passModel(lp)
        return h


def _arcs(problem: Problem) -> _Arcs:
    """Explicit lanes, plus distance-model lanes for located pairs of the same item."""
    offers = {o.id: i for i, o in enumerate(problem.offers)}
    requests = {r.id: i for i, r in enumerate(problem.requests)}
    lanes = problem.lanes
    model = problem.distance
    if isinstance(lanes, LaneColumns) and model is None:
        if lanes.offer_index is None or lanes.request_index is None:
            raise SolverError("lanes were not checked: load the problem with load_problem")
        return _Arcs(lanes.offer_index, lanes.request_index, lanes.cost, lanes.transit)
    offer = [offers[lane.source] for lane in lanes]
    request = [requests[lane.target] for lane in lanes]
    cost = [lane.cost_per_unit for lane in lanes]
    transit = [lane.transit_days for lane in lanes]
    if model is not None:
        explicit = set(zip(offer, request, strict=True))
        by_item: dict[str, list[int]] = defaultdict(list)
        for j, r in enumerate(problem.requests):
            if r.location is not None:
                by_item[r.item].append(j)
        for i, o in enumerate(problem.offers):
            if o.location is None:
                continue
            for j in by_item.get(o.item, []):
                if (i, j) in explicit:
                    continue
                km = haversine_km(o.location, problem.requests[j].location)  # type: ignore[arg-type]
                if model.max_km is not None and km > model.max_km:
                    continue
                offer.append(i)
                request.append(j)
                cost.append(km * model.cost_per_unit_km)
                transit.append(int(km // model.km_per_day))
    return _Arcs(
        np.asarray(offer, dtype=np.int64),
        np.asarray(request, dtype=np.int64),
        np.asarray(cost, dtype=np.float64),
        np.asarray(transit, dtype=np.int64),
    )


def _deadline(r: Request, horizon: int) -> int:
    return horizon - 1 if r.deadline_day is None else r.deadline_day


@dataclass
class _Built:
    model: _Model
    x_arc: np.ndarray  # per shipment column: its arc
    x_day: np.ndarray  # ship day, -1 when days do not matter
    x_col: np.ndarray  # the column
    u: list[int]  # request → unmet column
    z: dict[int, list[tuple[int, int]]]  # offer → [(conversion day, column)]
    arcs: _Arcs
    late: np.ndarray  # bool per arc: cannot arrive in time


def _build(problem: Problem, arcs: _Arcs, timed: bool) -> _Built:
    if not timed:
        return _build_static(problem, arcs)
    m = _Model()
    horizon = problem.horizon
    x_arc: list[int] = []
    x_day: list[int] = []
    x_col: list[int] = []
    late = np.zeros(len(arcs), dtype=bool)
    into: dict[int, list[int]] = defaultdict(list)
    out_stock: dict[int, list[int]] = defaultdict(list)
    out_day: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for k in range(len(arcs)):
        i, j = int(arcs.offer[k]), int(arcs.request[k])
        cost, transit = float(arcs.cost[k]), int(arcs.transit[k])
        offer = problem.offers[i]
        deadline = _deadline(problem.requests[j], horizon)
        if offer.kind is OfferKind.stock:
            if offer.available_day + transit > deadline:
                late[k] = True
                continue
            c = m.col(cost)
            x_arc.append(k)
            x_day.append(offer.available_day)
            x_col.append(c)
            into[j].append(c)
            out_stock[i].append(c)
            continue
        first = offer.from_day + (
            offer.conversion_days if offer.kind is OfferKind.convertible else 0
        )
        last = deadline - transit
        if first > last:
            late[k] = True
            continue
        for day in range(first, last + 1):
            c = m.col(cost)
            x_arc.append(k)
            x_day.append(day)
            x_col.append(c)
            into[j].append(c)
            out_day[i][day].append(c)
    u = []
    for j, r in enumerate(problem.requests):
        u.append(m.col(r.penalty, 0.0, r.quantity))
        m.row(r.quantity, r.quantity, [(c, 1.0) for c in into[j]] + [(u[j], 1.0)])
    for i, cols in out_stock.items():
        m.row(-INF, problem.offers[i].quantity or 0.0, [(c, 1.0) for c in cols])
    z: dict[int, list[tuple[int, int]]] = {}
    for i, days in out_day.items():
        z[i] = _production_rows(m, problem.offers[i], days, horizon)
    return _Built(
        m,
        np.asarray(x_arc, dtype=np.int64),
        np.asarray(x_day, dtype=np.int64),
        np.asarray(x_col, dtype=np.int64),
        u,
        z,
        arcs,
        late,
    )


def _build_static(problem: Problem, arcs: _Arcs) -> _Built:
    """Stock only and no days: one column per arc, built with array operations."""
    n, n_req = len(arcs), len(problem.requests)
    m = _Model()
    quantities = np.array([r.quantity for r in problem.requests], dtype=np.float64)
    penalties = np.array([r.penalty for r in problem.requests], dtype=np.float64)
    stock = np.array([o.quantity or 0.0 for o in problem.offers], dtype=np.float64)
    m.cost = np.concatenate([arcs.cost, penalties])  # type: ignore[assignment]
    m.lower = np.zeros(n + n_req)  # type: ignore[assignment]
    m.upper = np.concatenate([np.full(n, INF), quantities])  # type: ignore[assignment]
    no_floor = np.full(len(problem.offers), -INF)
    m.row_lower = np.concatenate([quantities, no_floor])  # type: ignore[assignment]
    m.row_upper = np.concatenate([quantities, stock])  # type: ignore[assignment]
    arange = np.arange(n, dtype=np.int64)
    # column by column: each arc in its request's row and its offer's row, then the unmet columns
    pairs = np.empty(2 * n, dtype=np.int64)
    pairs[0::2], pairs[1::2] = arcs.request, n_req + arcs.offer
    m.rows_arr = np.concatenate([pairs, np.arange(n_req)])
    m.cols_arr = np.concatenate([np.repeat(arange, 2), n + np.arange(n_req)])
    m.vals_arr = np.ones(m.rows_arr.size)
    m.sorted_arr = True
    return _Built(
        m,
        arange,
        np.full(n, -1, dtype=np.int64),
        arange,
        list(range(n, n + n_req)),
        {},
        arcs,
        np.zeros(n, dtype=bool),
    )


def _daily(offer: Offer, start: int, horizon: int) -> np.ndarray:
    """Production per day from ``start`` with the ramp, capped by the offer's total quantity."""
    days = np.arange(horizon)
    since = days - start + 1
    ramp = np.ones(horizon) if offer.ramp_days == 0 else np.minimum(1.0, since / offer.ramp_days)
    out = np.where(days >= start, offer.rate_per_day * ramp, 0.0)  # type: ignore[operator]
    if offer.quantity is not None:
        cum = np.minimum(np.cumsum(out), offer.quantity)
        out = np.diff(cum, prepend=0.0)
    return out


def _production_rows(
    m: _Model, offer: Offer, days: dict[int, list[int]], horizon: int
) -> list[tuple[int, int]]:
    """Stock balance of a capacity or convertible offer per day; return its conversion columns."""
    conversions: list[tuple[int, int, np.ndarray]] = []
    fixed = np.zeros(horizon)
    if offer.kind is OfferKind.convertible:
        for s in range(offer.from_day, horizon - offer.conversion_days):
            col = m.col(offer.conversion_cost, 0.0, 1.0)
            m.integer.append(col)
            conversions.append((s, col, _daily(offer, s + offer.conversion_days, horizon)))
        m.row(-INF, 1.0, [(col, 1.0) for _, col, _ in conversions])
    else:
        fixed = _daily(offer, offer.from_day, horizon)
    shipped = [c for cols in days.values() for c in cols]
    if offer.min_order is not None and shipped:
        use = m.col(0.0, 0.0, 1.0)
        m.integer.append(use)
        rate_cap = (offer.rate_per_day or 0.0) * horizon
        most = min(rate_cap, offer.quantity) if offer.quantity is not None else rate_cap
        m.row(0.0, INF, [(c, 1.0) for c in shipped] + [(use, -offer.min_order)])
        m.row(-INF, 0.0, [(c, 1.0) for c in shipped] + [(use, -max(most, offer.min_order))])
    previous: int | None = None
    for t in range(min(days) if days else horizon, horizon):
        if t > max(days):
            break
        held = m.col(0.0)
        entries = [(held, 1.0)] + [(c, 1.0) for c in days.get(t, [])]
        if previous is not None:
            entries.append((previous, -1.0))
        made_before = float(fixed[: t + 1].sum()) if previous is None else float(fixed[t])
        for _day, col, daily in conversions:
            made = float(daily[: t + 1].sum()) if previous is None else float(daily[t])
            if made:
                entries.append((col, -made))
        m.row(made_before, made_before, entries)
        previous = held
    return [(s, col) for s, col, _ in conversions]


def _status_words(h: highspy.Highs) -> str:
    status = h.getModelStatus()
    words = {
        highspy.HighsModelStatus.kInfeasible: "the constraints cannot all hold (infeasible)",
        highspy.HighsModelStatus.kUnbounded: "the cost can fall without limit (unbounded)",
        highspy.HighsModelStatus.kTimeLimit: "the solver ran out of time",
    }
    return words.get(status, h.modelStatusToString(status))


def _run(h: highspy.Highs) -> None:
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        # a warm start after bound changes can mislead HiGHS; confirm from scratch before failing
        h.clearSolver()
        h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"no allocation found: {_status_words(h)}")


class _Part:
    """One independent piece of the problem (one item): its own HiGHS model, warm-started."""

    def __init__(self, problem: Problem, arcs: _Arcs, timed: bool, time_limit_s: float) -> None:
        self.problem = problem
        self.timed = timed
        self.built = _build(problem, arcs, timed)
        self.h = self.built.model.highs()
        self.h.setOptionValue("time_limit", float(time_limit_s))
        if not self.built.model.integer:
            # these LPs are transportation problems: Devex pricing without presolve solves them
            # about 2× faster than the defaults (dual steepest edge after presolve)
            self.h.setOptionValue("simplex_dual_edge_weight_strategy", 1)
            self.h.setOptionValue("presolve", "off")
        self.costs = np.asarray(self.built.model.cost, dtype=np.float64)
        self.level: dict[int, int] = {}

    def add_levels(self) -> None:
        """Add one fill-level column per priority class and rows u_r + d_r t_k ≤ d_r."""
        n = len(self.costs)
        for k in sorted({r.priority for r in self.problem.requests}):
            self.h.addCol(0.0, 0.0, 0.0, 0, np.array([], dtype=np.int32), np.array([]))
            self.level[k] = n + len(self.level)
        requests = self.problem.requests
        if not requests:
            return
        quantity = np.array([r.quantity for r in requests], dtype=np.float64)
        index = np.empty(2 * len(requests), dtype=np.int32)
        index[0::2] = self.built.u
        index[1::2] = [self.level[r.priority] for r in requests]
        value = np.empty(2 * len(requests))
        value[0::2], value[1::2] = 1.0, quantity
        self.h.addRows(
            len(requests),
            np.full(len(requests), -INF),
            quantity,
            index.size,
            np.arange(0, index.size, 2, dtype=np.int32),
            index,
            value,
        )

    def _objective(self, costs: np.ndarray) -> None:
        everything = np.arange(costs.size, dtype=np.int32)
        self.h.changeColsCost(costs.size, everything, costs)

    def best_level(self, k: int) -> float:
        """Return the highest fill every class-``k`` request of this part can get."""
        costs = np.zeros(len(self.costs) + len(self.level))
        costs[self.level[k]] = -1.0
        self._objective(costs)
        self.h.changeColBounds(self.level[k], 0.0, 1.0)
        _run(self.h)
        return max(0.0, min(1.0, float(self.h.getSolution().col_value[self.level[k]])))

    def hold_most_served(self, k: int) -> None:
        """With the floors held, serve as much of class ``k`` as possible and keep that served."""
        costs = np.zeros(len(self.costs) + len(self.level))
        unmet = [self.built.u[j] for j, r in enumerate(self.problem.requests) if r.priority == k]
        costs[unmet] = 1.0
        self._objective(costs)
        _run(self.h)
        least = float(np.asarray(self.h.getSolution().col_value)[unmet].sum())
        self.h.addRow(
            -INF,
            least + 1e-7 * max(1.0, least) + 1e-6,
            len(unmet),
            np.asarray(unmet, dtype=np.int32),
            np.ones(len(unmet)),
        )

    def hold(self, k: int, floor: float) -> None:
        """Keep every class-``k`` request at or above ``floor`` from now on."""
        self.h.changeColBounds(self.level[k], max(0.0, floor - 1e-9), 1.0)

    def least_cost(self) -> np.ndarray:
        """Minimise cost (with any held floors) and return the column values."""
        values = self.try_least_cost()
        if values is None:
            raise SolverError(f"no allocation found: {_status_words(self.h)}")
        return values

    def try_least_cost(self) -> np.ndarray | None:
        """Like `least_cost`, but None when the held floors cannot all hold (infeasible)."""
        if self.level:
            self._objective(np.concatenate([self.costs, np.zeros(len(self.level))]))
            # from scratch: a warm start from the fill-level optimum is slower than none
            self.h.clearSolver()
        self.h.run()
        if self.h.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
            return None
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            _run(self.h)
        return np.asarray(self.h.getSolution().col_value)

    def supply_ratio(self, k: int) -> float:
        """Return a rough upper bound of class ``k``'s fill: what is offered over what it needs."""
        horizon = self.problem.horizon
        offered = sum(
            (o.quantity if o.kind is OfferKind.stock else (o.rate_per_day or 0.0) * horizon) or 0.0
            for o in self.problem.offers
        )
        needed = sum(r.quantity for r in self.problem.requests if r.priority == k)
        return offered / needed if needed else float("inf")


def _parts(problem: Problem, time_limit_s: float) -> list[_Part]:
    """Split by item: no lane joins two items, so each item is solved on its own, exactly."""
    arcs = _arcs(problem)
    timed, horizon = problem.timed, problem.horizon
    requests_of: dict[str, list[int]] = defaultdict(list)
    offers_of: dict[str, list[int]] = defaultdict(list)
    for j, r in enumerate(problem.requests):
        requests_of[r.item].append(j)
    for i, o in enumerate(problem.offers):
        offers_of[o.item].append(i)
    items = sorted(requests_of)
    # positions within the item's part, and the arcs grouped by item (one stable sort)
    req_pos = np.zeros(len(problem.requests), dtype=np.int64)
    req_item = np.zeros(len(problem.requests), dtype=np.int64)
    off_pos = np.zeros(max(len(problem.offers), 1), dtype=np.int64)
    for code, item in enumerate(items):
        req_pos[requests_of[item]] = np.arange(len(requests_of[item]))
        req_item[requests_of[item]] = code
        off_pos[offers_of[item]] = np.arange(len(offers_of[item]))
    arc_item = req_item[arcs.request]
    order = np.argsort(arc_item, kind="stable")
    bounds = np.searchsorted(arc_item[order], np.arange(len(items) + 1))
    parts = []
    for code, item in enumerate(items):
        req, off = requests_of[item], offers_of[item]
        mine = order[bounds[code] : bounds[code + 1]]
        sub_arcs = _Arcs(
            off_pos[arcs.offer[mine]],
            req_pos[arcs.request[mine]],
            arcs.cost[mine],
            arcs.transit[mine],
        )
        sub = Problem.model_construct(
            requests=[problem.requests[j] for j in req],
            offers=[problem.offers[i] for i in off],
            lanes=[],
            distance=None,
            horizon_days=horizon,
        )
        parts.append(_Part(sub, sub_arcs, timed, time_limit_s))
    return parts


def solve(problem: Problem, objective: str = "cost", *, time_limit_s: float = 300.0) -> Solution:
    """Allocate offers to requests; ``objective`` is ``cost`` or ``fair`` (see module docs)."""
    if objective not in {"cost", "fair"}:
        raise SolverError(f"unknown objective {objective!r}; use cost or fair")
    parts = _parts(problem, time_limit_s)
    floors: dict[int, float] = {}
    if objective == "fair":
        for part in parts:
            part.add_levels()
        classes = sorted({r.priority for r in problem.requests})
        for k in classes[:-1]:
            having = [p for p in parts if k in p.level]
            floors[k] = min(p.best_level(k) for p in having)
            for p in having:
                p.hold(k, floors[k])
                p.hold_most_served(k)  # class k is served as fully as it can be first
        values = _fair_last_class(parts, classes[-1], floors) if classes else {}
    else:
        values = {}
    pieces = [
        _solution(
            p.problem,
            p.built,
            values[n] if n in values else p.least_cost(),
            objective,
            floors,
            p.timed,
        )
        for n, p in enumerate(parts)
    ]
    return _merge(problem, pieces, objective, floors)


def _fair_last_class(parts: list[_Part], k: int, floors: dict[int, float]) -> dict[int, np.ndarray]:
    """Hold the last class's max-min floor and minimise cost; return each part's column values.

    The floor is the lowest of the parts' best levels. Instead of raising every part's level
    (an LP each) and then minimising its cost (another), the part with the least supply per
    demand sets a first floor; every other part minimises its cost with that floor held, and only
    a part that cannot hold it (infeasible) has its level raised, lowering the floor. Parts
    solved under a floor that later fell are solved again. The result is the same.
    """
    having = sorted(
        (n for n, p in enumerate(parts) if k in p.level), key=lambda n: parts[n].supply_ratio(k)
    )
    values: dict[int, np.ndarray] = {}
    held_at: dict[int, float] = {}
    floor: float | None = None
    for n in having:
        part = parts[n]
        if floor is None:
            floor = part.best_level(k)
        part.hold(k, floor)
        found = part.try_least_cost()
        if found is None:  # this part cannot reach the floor: its best level is the new floor
            part.h.clearSolver()
            floor = part.best_level(k)
            part.hold(k, floor)
            found = part.least_cost()
        values[n], held_at[n] = found, floor
    for n, at in held_at.items():
        if floor is not None and at > floor:
            parts[n].hold(k, floor)
            values[n] = parts[n].least_cost()
    if floor is not None:
        floors[k] = floor
    return values


def _merge(
    problem: Problem, pieces: list[Solution], objective: str, floors: dict[int, float]
) -> Solution:
    order = {r.id: n for n, r in enumerate(problem.requests)}
    fills = sorted((f for p in pieces for f in p.fills), key=lambda f: order[f["request"]])
    return Solution(
        objective=objective,
        total_cost=sum(p.total_cost for p in pieces),
        transport_cost=sum(p.transport_cost for p in pieces),
        penalty_cost=sum(p.penalty_cost for p in pieces),
        conversion_cost=sum(p.conversion_cost for p in pieces),
        min_fill_rate=min((f["fill_rate"] for f in fills), default=None),
        allocations=[a for p in pieces for a in p.allocations],
        unmet=sorted((u for p in pieces for u in p.unmet), key=lambda u: order[u["request"]]),
        fills=fills,
        conversions=[c for p in pieces for c in p.conversions],
        class_floors=floors,
        warnings=problem.warnings(),
    )


def _solution(
    problem: Problem,
    built: _Built,
    values: np.ndarray,
    objective: str,
    floors: dict[int, float],
    timed: bool,
) -> Solution:
    arcs = built.arcs
    q = values[built.x_col] if built.x_col.size else np.zeros(0)
    # solver noise (a few units in the 7th digit of the request) is not a shipment
    demand = np.array([r.quantity for r in problem.requests] + [1.0])
    scale = np.maximum(1.0, demand[arcs.request[built.x_arc]]) if q.size else np.zeros(0)
    used = np.flatnonzero(q > np.maximum(TOL, 1e-7 * scale))
    allocs: list[Allocation] = []
    for n in used[np.lexsort((built.x_day[used], built.x_arc[used]))]:
        k, day = int(built.x_arc[n]), int(built.x_day[n])
        qty = float(q[n])
        allocs.append(
            Allocation(
                offer=problem.offers[int(arcs.offer[k])].id,
                request=problem.requests[int(arcs.request[k])].id,
                quantity=round(qty, 6),
                cost=round(qty * float(arcs.cost[k]), 6),
                ship_day=None if day < 0 else day,
                arrive_day=None if day < 0 else day + int(arcs.transit[k]),
            )
        )
    conversions = [
        {
            "offer": problem.offers[i].id,
            "day": s,
            "producing_from_day": s + problem.offers[i].conversion_days,
        }
        for i, cols in built.z.items()
        for s, col in cols
        if values[col] > 0.5
    ]
    _check(problem, allocs, conversions, timed)
    return _explain(problem, built, allocs, conversions, objective, floors)


def _check(
    problem: Problem, allocs: list[Allocation], conversions: list[dict], timed: bool
) -> None:
    """Refuse to return an allocation that does not balance (the solver is not trusted blindly)."""
    by_offer: dict[str, list[Allocation]] = defaultdict(list)
    into: dict[str, float] = defaultdict(float)
    for a in allocs:
        by_offer[a.offer].append(a)
        into[a.request] += a.quantity
        if a.quantity < -TOL:
            raise SolverError(f"negative allocation {a}")
    horizon = problem.horizon
    latest: dict[str, int] = {}
    for a in allocs:
        if a.arrive_day is not None:
            latest[a.request] = max(latest.get(a.request, -1), a.arrive_day)
    for r in problem.requests:
        if into[r.id] > r.quantity * (1 + 1e-7) + TOL:
            raise SolverError(f"request {r.id} would get {into[r.id]} > {r.quantity}")
        if timed and latest.get(r.id, -1) > _deadline(r, horizon):
            raise SolverError(f"an allocation to {r.id} arrives after its deadline")
    started = {c["offer"]: c["producing_from_day"] for c in conversions}
    for o in problem.offers:
        sent = by_offer.get(o.id, [])
        if o.kind is OfferKind.stock:
            total = sum(a.quantity for a in sent)
            if total > (o.quantity or 0) * (1 + 1e-7) + TOL:
                raise SolverError(f"offer {o.id} would ship {total} > its stock {o.quantity}")
            continue
        if o.kind is OfferKind.convertible and o.id not in started:
            if sent:
                raise SolverError(f"offer {o.id} ships without converting")
            continue
        start = started.get(o.id, o.from_day)
        daily = _daily(o, start, problem.horizon)
        shipped = np.zeros(problem.horizon)
        for a in sent:
            shipped[a.ship_day] += a.quantity
        if np.any(np.cumsum(shipped) > np.cumsum(daily) * (1 + 1e-7) + 1e-5):
            raise SolverError(f"offer {o.id} would ship more than it has made by some day")


def _explain(
    problem: Problem,
    built: _Built,
    allocs: list[Allocation],
    conversions: list[dict],
    objective: str,
    floors: dict[int, float],
) -> Solution:
    got: dict[str, float] = defaultdict(float)
    offer_out: dict[str, float] = defaultdict(float)
    served_class: dict[str, set[int]] = defaultdict(set)
    priority = {r.id: r.priority for r in problem.requests}
    for a in allocs:
        got[a.request] += a.quantity
        offer_out[a.offer] += a.quantity
        served_class[a.offer].add(priority[a.request])
    arcs = built.arcs
    reachable = set(arcs.request.tolist())
    # offers that can reach each request in time, grouped by request (one sort, not a scan each)
    timely_req, timely_off = arcs.request[~built.late], arcs.offer[~built.late]
    by_req = np.argsort(timely_req, kind="stable")
    starts = np.searchsorted(timely_req[by_req], np.arange(len(problem.requests) + 1))
    top_class = min((r.priority for r in problem.requests), default=1)
    transport = sum(a.cost for a in allocs)
    penalty = 0.0
    unmet, fills = [], []
    for j, r in enumerate(problem.requests):
        short = max(0.0, r.quantity - got[r.id])
        short = 0.0 if short < TOL * max(1.0, r.quantity) else short
        penalty += short * r.penalty
        fill = min(1.0, got[r.id] / r.quantity)
        reasons: list[str] = []
        if short:
            timely = np.unique(timely_off[by_req[starts[j] : starts[j + 1]]])
            if j not in reachable:
                reasons.append("no lane: no offer of this item can reach it")
            elif timely.size == 0:
                reasons.append("no stock before the deadline: every offer would arrive too late")
            else:
                offers = [problem.offers[int(i)] for i in timely]
                higher = (
                    []
                    if r.priority == top_class  # nobody outranks the first class
                    else [o.id for o in offers if any(c < r.priority for c in served_class[o.id])]
                )
                if higher:
                    reasons.append(
                        f"outranked: {', '.join(sorted(higher))} went to higher-priority requests"
                    )
                else:
                    reasons.append(
                        "short supply: what can reach it in time is used by other requests"
                        if objective == "fair" or all(_used_up(o, offer_out) for o in offers)
                        else "unmet penalty is lower than the cost of delivering"
                    )
            unmet.append({"request": r.id, "quantity": round(short, 6), "reasons": reasons})
        fills.append(
            {
                "request": r.id,
                "item": r.item,
                "priority": r.priority,
                "requested": r.quantity,
                "filled": round(got[r.id], 6),
                "fill_rate": round(fill, 6),
                "reasons": reasons,
            }
        )
    conversion_cost = sum(
        next(o.conversion_cost for o in problem.offers if o.id == c["offer"]) for c in conversions
    )
    return Solution(
        objective=objective,
        total_cost=transport + penalty + conversion_cost,
        transport_cost=transport,
        penalty_cost=penalty,
        conversion_cost=conversion_cost,
        min_fill_rate=min((f["fill_rate"] for f in fills), default=None),
        allocations=allocs,
        unmet=unmet,
        fills=fills,
        conversions=conversions,
        class_floors=floors,
        warnings=problem.warnings(),
    )


def _used_up(offer: Offer, out: dict[str, float]) -> bool:
    if offer.kind is OfferKind.stock:
        return out[offer.id] >= (offer.quantity or 0.0) - TOL
    return True
