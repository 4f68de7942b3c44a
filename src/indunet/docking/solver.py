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
``u_r + d_r t_k ≤ d_r``; each floor is then held while the next class and finally the cost are
optimised, on the same HiGHS model (warm start). Every solution is checked for balance before it
is returned.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from indunet.docking.problem import Offer, OfferKind, Problem, Request, haversine_km
from indunet.errors import IndunetError

__all__ = ["Allocation", "Solution", "SolverError", "solve"]

INF = highspy.kHighsInf
TOL = 1e-6


class SolverError(IndunetError):
    """The solver failed or returned a solution that does not balance."""


@dataclass(frozen=True)
class _Arc:
    offer: int
    request: int
    cost: float
    transit: int


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
        cols = np.asarray(self.cols, dtype=np.int64)
        order = np.argsort(cols, kind="stable")
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.searchsorted(cols[order], np.arange(n + 1)).astype(np.int32)
        lp.a_matrix_.index_ = np.asarray(self.rows, dtype=np.int32)[order]
        lp.a_matrix_.value_ = np.asarray(self.vals, dtype=np.float64)[order]
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


def _arcs(problem: Problem) -> list[_Arc]:
    """Explicit lanes, plus distance-model lanes for located pairs of the same item."""
    offers = {o.id: i for i, o in enumerate(problem.offers)}
    requests = {r.id: i for i, r in enumerate(problem.requests)}
    arcs = [
        _Arc(offers[lane.source], requests[lane.target], lane.cost_per_unit, lane.transit_days)
        for lane in problem.lanes
    ]
    model = problem.distance
    if model is not None:
        explicit = {(a.offer, a.request) for a in arcs}
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
                arcs.append(_Arc(i, j, km * model.cost_per_unit_km, int(km // model.km_per_day)))
    return arcs


def _deadline(r: Request, horizon: int) -> int:
    return horizon - 1 if r.deadline_day is None else r.deadline_day


@dataclass
class _Built:
    model: _Model
    x: list[tuple[int, int, int | None]]  # column → (arc index, ship day or None, column)
    u: list[int]  # request → unmet column
    z: dict[int, list[tuple[int, int]]]  # offer → [(conversion day, column)]
    arcs: list[_Arc]
    late: set[int]  # arcs that cannot arrive in time


def _build(problem: Problem) -> _Built:
    m = _Model()
    arcs = _arcs(problem)
    timed = problem.timed
    horizon = problem.horizon
    x: list[tuple[int, int, int | None]] = []
    late: set[int] = set()
    into: dict[int, list[int]] = defaultdict(list)
    out_stock: dict[int, list[int]] = defaultdict(list)
    out_day: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for k, arc in enumerate(arcs):
        offer = problem.offers[arc.offer]
        deadline = _deadline(problem.requests[arc.request], horizon) if timed else 0
        if offer.kind is OfferKind.stock:
            if timed and offer.available_day + arc.transit > deadline:
                late.add(k)
                continue
            c = m.col(arc.cost)
            x.append((k, offer.available_day if timed else None, c))
            into[arc.request].append(c)
            out_stock[arc.offer].append(c)
            continue
        first = offer.from_day + (
            offer.conversion_days if offer.kind is OfferKind.convertible else 0
        )
        last = deadline - arc.transit
        if first > last:
            late.add(k)
            continue
        for day in range(first, last + 1):
            c = m.col(arc.cost)
            x.append((k, day, c))
            into[arc.request].append(c)
            out_day[arc.offer][day].append(c)
    u = []
    for j, r in enumerate(problem.requests):
        u.append(m.col(r.penalty, 0.0, r.quantity))
        m.row(r.quantity, r.quantity, [(c, 1.0) for c in into[j]] + [(u[j], 1.0)])
    for i, cols in out_stock.items():
        m.row(-INF, problem.offers[i].quantity or 0.0, [(c, 1.0) for c in cols])
    z: dict[int, list[tuple[int, int]]] = {}
    for i, days in out_day.items():
        offer = problem.offers[i]
        z[i] = _production_rows(m, offer, days, horizon)
    return _Built(m, x, u, z, arcs, late)


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
        raise SolverError(f"no allocation found: {_status_words(h)}")


def solve(problem: Problem, objective: str = "cost", *, time_limit_s: float = 300.0) -> Solution:
    """Allocate offers to requests; ``objective`` is ``cost`` or ``fair`` (see module docs)."""
    if objective not in {"cost", "fair"}:
        raise SolverError(f"unknown objective {objective!r}; use cost or fair")
    built = _build(problem)
    h = built.model.highs()
    h.setOptionValue("time_limit", float(time_limit_s))
    floors: dict[int, float] = {}
    if objective == "fair":
        costs = np.asarray(built.model.cost, dtype=np.float64)
        n = len(costs)
        classes = sorted({r.priority for r in problem.requests})
        level: dict[int, int] = {}
        for k in classes:
            h.addCol(0.0, 0.0, 0.0, 0, np.array([], dtype=np.int32), np.array([]))
            level[k] = n + len(level)
        for j, r in enumerate(problem.requests):
            h.addRow(
                -INF,
                r.quantity,
                2,
                np.array([built.u[j], level[r.priority]], dtype=np.int32),
                np.array([1.0, r.quantity]),
            )
        everything = np.arange(n + len(level), dtype=np.int32)
        for k in classes:
            objective_k = np.zeros(n + len(level))
            objective_k[level[k]] = -1.0
            h.changeColsCost(len(everything), everything, objective_k)
            h.changeColBounds(level[k], 0.0, 1.0)
            _run(h)
            best = float(h.getSolution().col_value[level[k]])
            floors[k] = max(0.0, min(1.0, best))
            h.changeColBounds(level[k], max(0.0, floors[k] - 1e-9), 1.0)
        h.changeColsCost(len(everything), everything, np.concatenate([costs, np.zeros(len(level))]))
    _run(h)
    values = np.asarray(h.getSolution().col_value)
    return _solution(problem, built, values, objective, floors)


def _solution(
    problem: Problem, built: _Built, values: np.ndarray, objective: str, floors: dict[int, float]
) -> Solution:
    allocations: dict[tuple[int, int, int | None], float] = defaultdict(float)
    for k, day, col in built.x:
        q = float(values[col])
        if q > TOL:
            arc = built.arcs[k]
            allocations[(k, arc.request, day)] += q
    allocs: list[Allocation] = []
    for (k, _, day), q in sorted(allocations.items(), key=lambda kv: (kv[0][0], kv[0][2] or 0)):
        arc = built.arcs[k]
        allocs.append(
            Allocation(
                offer=problem.offers[arc.offer].id,
                request=problem.requests[arc.request].id,
                quantity=round(q, 6),
                cost=round(q * arc.cost, 6),
                ship_day=day,
                arrive_day=None if day is None else day + arc.transit,
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
    _check(problem, built, allocs, conversions)
    return _explain(problem, built, allocs, conversions, objective, floors)


def _check(
    problem: Problem, built: _Built, allocs: list[Allocation], conversions: list[dict]
) -> None:
    """Refuse to return an allocation that does not balance (the solver is not trusted blindly)."""
    by_offer: dict[str, list[Allocation]] = defaultdict(list)
    into: dict[str, float] = defaultdict(float)
    for a in allocs:
        by_offer[a.offer].append(a)
        into[a.request] += a.quantity
        if a.quantity < -TOL:
            raise SolverError(f"negative allocation {a}")
    for r in problem.requests:
        deadline = _deadline(r, problem.horizon) if problem.timed else None
        if into[r.id] > r.quantity * (1 + 1e-7) + TOL:
            raise SolverError(f"request {r.id} would get {into[r.id]} > {r.quantity}")
        for a in allocs:
            if (
                a.request == r.id
                and deadline is not None
                and a.arrive_day is not None
                and a.arrive_day > deadline
            ):
                raise SolverError(f"allocation {a} arrives after the deadline of {r.id}")
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
    reachable: dict[int, list[int]] = defaultdict(list)
    in_time: dict[int, list[int]] = defaultdict(list)
    for k, arc in enumerate(built.arcs):
        reachable[arc.request].append(arc.offer)
        if k not in built.late:
            in_time[arc.request].append(arc.offer)
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
            if not reachable[j]:
                reasons.append("no lane: no offer of this item can reach it")
            elif not in_time[j]:
                reasons.append("no stock before the deadline: every offer would arrive too late")
            else:
                offers = [problem.offers[i] for i in set(in_time[j])]
                higher = [o.id for o in offers if any(c < r.priority for c in served_class[o.id])]
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
