"""The docking problem: requests, offers (stock, capacity, convertible lines) and lanes (pure).

Days are whole days counted from the problem's day 0. A request's ``deadline_day`` is the last day
a delivery may arrive and still count; an offer's quantity or production is available from its
``available_day`` (stock) or ``from_day`` (capacity).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from indunet.errors import DataError

__all__ = [
    "DEFAULT_PENALTY",
    "FAST_LANES",
    "DistanceModel",
    "Lane",
    "LaneColumns",
    "Location",
    "Offer",
    "OfferKind",
    "Problem",
    "Request",
    "load_problem",
]

DEFAULT_PENALTY = 10_000.0
"""Penalty per unmet unit when a request names none (per priority class 1; halved per class)."""

_ID = r"^[^\x00-\x1f]{1,128}$"
FAST_LANES = 20_000
"""From this many lanes on, lanes are checked as columns (same rules and messages)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Location(_Model):
    """A place on the map (WGS84 degrees)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Request(_Model):
    """A shortage: who needs how much of what, by when, and how much an unmet unit hurts."""

    id: str = Field(pattern=_ID)
    item: str = Field(pattern=_ID)
    quantity: float = Field(gt=0, allow_inf_nan=False)
    unmet_penalty: float | None = Field(None, ge=0, allow_inf_nan=False)
    priority: int = Field(1, ge=1, le=9, description="Priority class; 1 is served first.")
    deadline_day: int | None = Field(None, ge=0, description="Last day a delivery counts.")
    location: Location | None = None
    enterprise: str | None = None
    contact: str | None = Field(None, max_length=256)

    @property
    def penalty(self) -> float:
        """Penalty per unmet unit (the request's own, or the default for its class)."""
        if self.unmet_penalty is not None:
            return self.unmet_penalty
        return DEFAULT_PENALTY / 2 ** (self.priority - 1)


class OfferKind(StrEnum):
    """Stock on hand, production capacity, or a line that can convert to the item."""

    stock = "stock"
    capacity = "capacity"
    convertible = "convertible"


class Offer(_Model):
    """Supply: stock, capacity (rate per day after a ramp-up) or a convertible line."""

    id: str = Field(pattern=_ID)
    item: str = Field(pattern=_ID)
    kind: OfferKind = OfferKind.stock
    quantity: float | None = Field(None, ge=0, allow_inf_nan=False, description="Stock, or a cap.")
    available_day: int = Field(0, ge=0)
    rate_per_day: float | None = Field(None, gt=0, allow_inf_nan=False)
    from_day: int = Field(0, ge=0)
    ramp_days: int = Field(0, ge=0)
    min_order: float | None = Field(None, gt=0, allow_inf_nan=False)
    conversion_days: int = Field(0, ge=0)
    conversion_cost: float = Field(0, ge=0, allow_inf_nan=False)
    usual_item: str | None = None
    location: Location | None = None
    enterprise: str | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> Offer:
        if self.kind is OfferKind.stock and self.quantity is None:
            raise ValueError("a stock offer needs a quantity")
        if self.kind is not OfferKind.stock and self.rate_per_day is None:
            raise ValueError(f"a {self.kind.value} offer needs rate_per_day")
        return self

    def produced_by(self, day: int, start: int | None = None) -> float:
        """Return the cumulative quantity available by the end of ``day``.

        ``start`` is the day production starts (for a convertible line, its conversion day plus
        the conversion delay); output ramps linearly to the full rate over ``ramp_days``.
        """
        if self.kind is OfferKind.stock:
            return self.quantity if day >= self.available_day else 0.0  # type: ignore[return-value]
        first = self.from_day if start is None else start
        assert self.rate_per_day is not None
        total = 0.0
        for d in range(first, day + 1):
            ramp = 1.0 if self.ramp_days == 0 else min(1.0, (d - first + 1) / self.ramp_days)
            total += self.rate_per_day * ramp
        if self.quantity is not None:
            total = min(total, self.quantity)
        return total


class Lane(_Model):
    """A way from an offer to a request with its cost per unit and transit time."""

    source: str = Field(alias="from", pattern=_ID)
    target: str = Field(alias="to", pattern=_ID)
    cost_per_unit: float = Field(0, ge=0, allow_inf_nan=False)
    transit_days: int = Field(0, ge=0)


class LaneColumns(Sequence[Lane]):
    """Many lanes kept as columns (ids, cost, transit days); items are made on access."""

    def __init__(
        self, source: pa.StringArray, target: pa.StringArray, cost: np.ndarray, transit: np.ndarray
    ) -> None:
        self.source, self.target, self.cost, self.transit = source, target, cost, transit
        self.offer_index: np.ndarray | None = None  # positions in problem.offers, once checked
        self.request_index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source)

    @overload
    def __getitem__(self, i: int) -> Lane: ...
    @overload
    def __getitem__(self, i: slice) -> list[Lane]: ...
    def __getitem__(self, i: int | slice) -> Lane | list[Lane]:
        if isinstance(i, slice):
            return [self[n] for n in range(*i.indices(len(self)))]
        return Lane.model_construct(
            source=self.source[i].as_py(),
            target=self.target[i].as_py(),
            cost_per_unit=float(self.cost[i]),
            transit_days=int(self.transit[i]),
        )

    def __iter__(self) -> Iterator[Lane]:
        return (self[n] for n in range(len(self)))


class DistanceModel(_Model):
    """Lanes for located offer/request pairs without an explicit lane: cost and days by distance."""

    cost_per_unit_km: float = Field(ge=0, allow_inf_nan=False)
    km_per_day: float = Field(500, gt=0, allow_inf_nan=False)
    max_km: float | None = Field(None, gt=0)


class Problem(_Model):
    """Requests, offers and lanes; with deadlines or capacity it is solved over ``horizon_days``."""

    requests: list[Request]
    offers: list[Offer]
    lanes: list[Lane] = Field(default_factory=list)
    distance: DistanceModel | None = None
    horizon_days: int | None = Field(None, ge=1, le=366)

    @property
    def timed(self) -> bool:
        """True when days matter: deadlines, late stock, capacity or convertible offers."""
        return (
            any(r.deadline_day is not None for r in self.requests)
            or any(o.kind is not OfferKind.stock or o.available_day for o in self.offers)
            or (
                bool(self.lanes.transit.any())
                if isinstance(self.lanes, LaneColumns)
                else any(lane.transit_days for lane in self.lanes)
            )
            or self.distance is not None
        )

    @property
    def horizon(self) -> int:
        """Days considered: the given horizon, or up to the last deadline (30 days if none)."""
        if self.horizon_days is not None:
            return self.horizon_days
        deadlines = [r.deadline_day for r in self.requests if r.deadline_day is not None]
        return max(deadlines) + 1 if deadlines else 30

    def warnings(self) -> list[str]:
        """Return what is allowed but probably a mistake (offers nobody asked for, …)."""
        wanted = {r.item for r in self.requests}
        out = [
            f"offer {o.id}: nobody requests item {o.item!r}"
            for o in self.offers
            if o.item not in wanted
        ]
        for o in self.offers:
            if o.kind is not OfferKind.stock and o.from_day >= self.horizon:
                out.append(f"offer {o.id}: from_day {o.from_day} is after the horizon")
        return out


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]


def load_problem(doc: Any) -> Problem:
    """Validate a problem document; errors name the entry (``requests[2].quantity``, ``lane 3``)."""
    if not isinstance(doc, dict):
        raise DataError("a docking problem is a JSON object with requests, offers and lanes")
    columns = _lane_columns(doc.get("lanes"))
    try:
        if columns is not None:  # requests, offers, … as models; the lanes as checked columns
            problem = Problem.model_validate({k: v for k, v in doc.items() if k != "lanes"})
            problem = problem.model_copy(update={"lanes": columns})
        else:
            problem = Problem.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in first["loc"]).replace(
            ".[", "["
        )
        entry = _entry_id(doc, first["loc"])
        raise DataError(f"{where}{entry}: {first['msg']}") from None
    requests = {r.id: r for r in problem.requests}
    offers = {o.id: o for o in problem.offers}
    for label, ids in (
        ("request", [r.id for r in problem.requests]),
        ("offer", [o.id for o in problem.offers]),
    ):
        dups = _duplicates(ids)
        if dups:
            raise DataError(f"duplicate {label} id(s): {', '.join(dups)}")
    both = sorted(set(requests) & set(offers))
    if both:
        raise DataError(f"id(s) used by both a request and an offer: {', '.join(both)}")
    if isinstance(problem.lanes, LaneColumns):
        _check_lane_columns(problem, problem.lanes)
    seen_lanes: set[tuple[str, str]] = set()
    for n, lane in enumerate(() if isinstance(problem.lanes, LaneColumns) else problem.lanes):
        if lane.source not in offers:
            raise DataError(f"lanes[{n}]: 'from' {lane.source!r} is not an offer id")
        if lane.target not in requests:
            raise DataError(f"lanes[{n}]: 'to' {lane.target!r} is not a request id")
        a, b = offers[lane.source].item, requests[lane.target].item
        if a != b:
            raise DataError(
                f"lanes[{n}]: offer {lane.source} ({a}) cannot serve request {lane.target} ({b})"
            )
        if (lane.source, lane.target) in seen_lanes:
            raise DataError(f"lanes[{n}]: a second lane from {lane.source} to {lane.target}")
        seen_lanes.add((lane.source, lane.target))
    if problem.timed:
        for r in problem.requests:
            if r.deadline_day is not None and r.deadline_day >= problem.horizon:
                raise DataError(
                    f"request {r.id}: deadline_day {r.deadline_day} is beyond horizon_days "
                    f"{problem.horizon}"
                )
    return problem


_LANE_KEYS = {"from", "to", "cost_per_unit", "transit_days"}


def _lane_columns(lanes: Any) -> LaneColumns | None:
    """Return many lanes as columns when every one is plainly valid, else None.

    None sends the document through the pydantic models, so anything unusual (a missing or
    unknown key, a string where a number belongs, a negative cost) gets exactly their message.
    """
    if not isinstance(lanes, list) or len(lanes) < FAST_LANES:
        return None
    if set(map(type, lanes)) != {dict}:
        return None
    try:
        table = pa.array(lanes)  # one struct column per key, converted in C++
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    fields = {table.type.field(n).name: table.field(n) for n in range(table.type.num_fields)}
    if not set(fields) <= _LANE_KEYS or "from" not in fields or "to" not in fields:
        return None
    for ids in (fields["from"], fields["to"]):
        if ids.type != pa.string() or ids.null_count:
            return None
        length = pc.utf8_length(ids)
        if pc.min(length).as_py() < 1 or pc.max(length).as_py() > 128:
            return None
        if pc.any(pc.match_substring_regex(ids, "[\\x00-\\x1f]")).as_py():
            return None
    numbers = {}
    for key, kinds in (
        ("cost_per_unit", (pa.float64(), pa.int64())),
        ("transit_days", (pa.int64(),)),
    ):
        column = fields.get(key)
        if column is None:
            numbers[key] = np.zeros(len(lanes))
            continue
        if column.type not in kinds:
            return None
        if column.null_count:  # left out (the default) is fine; an explicit null is not
            missing = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
            if any(key in lanes[int(n)] for n in missing):
                return None
            column = column.fill_null(0)
        numbers[key] = column.to_numpy(zero_copy_only=False)
    costs = numbers["cost_per_unit"].astype(np.float64)
    days = numbers["transit_days"].astype(np.int64)
    if not np.isfinite(costs).all() or (costs < 0).any() or (days < 0).any():
        return None
    return LaneColumns(fields["from"], fields["to"], costs, days)


def _check_lane_columns(problem: Problem, lanes: LaneColumns) -> None:
    """The lane rules of `load_problem` over columns: the first bad lane, the same message."""
    offer_ids = pa.array([o.id for o in problem.offers], type=pa.string())
    request_ids = pa.array([r.id for r in problem.requests], type=pa.string())
    off = pc.index_in(lanes.source, value_set=offer_ids).fill_null(-1).to_numpy()
    req = pc.index_in(lanes.target, value_set=request_ids).fill_null(-1).to_numpy()
    off, req = off.astype(np.int64), req.astype(np.int64)
    items: dict[str, int] = {}
    offer_item = np.array([items.setdefault(o.item, len(items)) for o in problem.offers] + [-1])
    request_item = np.array([items.setdefault(r.item, len(items)) for r in problem.requests] + [-2])
    bad = (off < 0) | (req < 0) | (offer_item[off] != request_item[req])
    key = off * max(1, len(problem.requests)) + req
    _, first = np.unique(key, return_index=True)
    repeated = np.ones(len(lanes), dtype=bool)
    repeated[first] = False
    flagged = np.flatnonzero(bad | repeated)
    if flagged.size:
        n = int(flagged[0])
        source, target = lanes.source[n].as_py(), lanes.target[n].as_py()
        if off[n] < 0:
            raise DataError(f"lanes[{n}]: 'from' {source!r} is not an offer id")
        if req[n] < 0:
            raise DataError(f"lanes[{n}]: 'to' {target!r} is not a request id")
        a, b = problem.offers[off[n]].item, problem.requests[req[n]].item
        if a != b:
            raise DataError(f"lanes[{n}]: offer {source} ({a}) cannot serve request {target} ({b})")
        raise DataError(f"lanes[{n}]: a second lane from {source} to {target}")
    lanes.offer_index, lanes.request_index = off, req


def _entry_id(doc: dict, loc: tuple) -> str:
    if len(loc) >= 2 and isinstance(loc[1], int):
        try:
            entry = doc[loc[0]][loc[1]]
        except (KeyError, IndexError, TypeError):
            return ""
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            return f" (id {entry['id'][:40]!r})"
    return ""


def haversine_km(a: Location, b: Location) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))
