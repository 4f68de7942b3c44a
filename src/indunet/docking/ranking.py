"""Rank candidate offers for one request by a transparent score (vectorised over all offers).

score = 0.4 · item match + 0.25 · e^(−km / 500) + 0.2 · e^(−lead days / 7) + 0.15 · live status

Item match is 1 for the same item, 0.8 for a synonym (same synonym group) and excludes the offer
otherwise. Live status comes from the platform (`live_status`: machines running from the plant's
states, resumed from the regional monitor): 1 running, 0.8 resumed, 0.5 unknown, 0 stopped.
Every component is returned so an operator sees why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from indunet.docking.problem import Offer, OfferKind, Request

__all__ = ["STATUS_SCORE", "WEIGHTS", "LiveStatus", "OfferIndex", "live_status"]

WEIGHTS = {"item": 0.4, "distance": 0.25, "lead": 0.2, "status": 0.15}
STATUS_SCORE = {"running": 1.0, "resumed": 0.8, "unknown": 0.5, "stopped": 0.0}
_EARTH_KM = 6371.0


@dataclass(frozen=True)
class LiveStatus:
    """What the platform knows about an enterprise now.

    ``resumed`` comes from the regional monitor (resumed on its latest day; None when the monitor
    has no data, which is unknown, not stopped); ``machines_running`` and ``machines_known`` from
    the plant's machine states (how many run now, out of how many have a known state).
    """

    resumed: bool | None = None
    machines_running: int = 0
    machines_known: int = 0


def live_status(status: LiveStatus | None) -> str:
    """Return ``running``, ``resumed``, ``stopped`` or ``unknown`` (see ``STATUS_SCORE``).

    Machines running now outrank the monitor's daily verdict (they are newer); machines all known
    and none running, or a monitor that says not resumed, mean stopped; no data means unknown.
    """
    if status is None:
        return "unknown"
    if status.machines_running > 0:
        return "running"
    if status.resumed is True:
        return "resumed"
    if status.resumed is False or status.machines_known > 0:
        return "stopped"
    return "unknown"


@dataclass
class OfferIndex:
    """Offers as columns, built once and ranked against many requests."""

    ids: np.ndarray
    item: np.ndarray  # int codes
    group: np.ndarray  # synonym group codes
    lat: np.ndarray  # radians, NaN when unknown
    lon: np.ndarray
    ready_day: np.ndarray
    quantity: np.ndarray  # stock, or rate per day for capacity
    enterprise: np.ndarray
    codes: dict[str, int]
    groups: dict[str, int]
    synonyms: dict[str, str]

    @classmethod
    def build(cls, offers: list[Offer], synonyms: Mapping[str, str] | None = None) -> OfferIndex:
        """Index ``offers``; ``synonyms`` maps an item to its canonical item (e.g. FFP2 → mask)."""
        synonyms = dict(synonyms or {})
        codes: dict[str, int] = {}
        groups: dict[str, int] = {}
        item = np.fromiter((codes.setdefault(o.item, len(codes)) for o in offers), np.int64)
        group = np.fromiter(
            (groups.setdefault(synonyms.get(o.item, o.item), len(groups)) for o in offers),
            np.int64,
        )
        lat = np.radians([o.location.lat if o.location else np.nan for o in offers])
        lon = np.radians([o.location.lon if o.location else np.nan for o in offers])
        ready = np.fromiter(
            (
                o.available_day
                if o.kind is OfferKind.stock
                else o.from_day + o.conversion_days + o.ramp_days // 2
                for o in offers
            ),
            np.float64,
        )
        qty = np.fromiter(
            ((o.quantity if o.kind is OfferKind.stock else o.rate_per_day) or 0.0 for o in offers),
            np.float64,
        )
        index = cls(
            ids=np.array([o.id for o in offers], dtype=object),
            item=item,
            group=group,
            lat=lat,
            lon=lon,
            ready_day=ready,
            quantity=qty,
            enterprise=np.array([o.enterprise or "" for o in offers], dtype=object),
            codes=codes,
            groups=groups,
            synonyms=synonyms,
        )
        return index

    def live_scores(self, statuses: Mapping[str, LiveStatus]) -> np.ndarray:
        """Return each offer's live-status score from its enterprise's status (0.5 if unknown)."""
        by_enterprise = {e: STATUS_SCORE[live_status(st)] for e, st in statuses.items()}
        if not by_enterprise:
            return np.full(self.ids.size, STATUS_SCORE["unknown"])
        names = np.unique(self.enterprise)
        score = np.array([by_enterprise.get(n, STATUS_SCORE["unknown"]) for n in names])
        return score[np.searchsorted(names, self.enterprise)]

    def rank(
        self,
        request: Request,
        *,
        top: int = 10,
        km_per_day: float = 500.0,
        status: np.ndarray | None = None,
    ) -> list[dict]:
        """Return the ``top`` offers for ``request`` with their score and its components.

        ``status`` holds a live-status score per offer (same order as the index), 0.5 if absent.
        """
        code = self.codes.get(request.item, -1)
        group = self.groups.get(self.synonyms.get(request.item, request.item), -1)
        exact = self.item == code
        match = np.where(exact, 1.0, np.where(self.group == group, 0.8, 0.0))
        candidates = np.flatnonzero(match > 0)
        if candidates.size == 0:
            return []
        if request.location is not None:
            lat0, lon0 = np.radians(request.location.lat), np.radians(request.location.lon)
            lat, lon = self.lat[candidates], self.lon[candidates]
            h = (
                np.sin((lat - lat0) / 2) ** 2
                + np.cos(lat0) * np.cos(lat) * np.sin((lon - lon0) / 2) ** 2
            )
            km = 2 * _EARTH_KM * np.arcsin(np.sqrt(np.minimum(1.0, h)))
        else:
            km = np.full(candidates.size, np.nan)
        known = ~np.isnan(km)
        distance = np.where(known, np.exp(-np.nan_to_num(km) / 500.0), 0.5)
        lead = self.ready_day[candidates] + np.where(known, np.nan_to_num(km) / km_per_day, 0.0)
        lead_score = np.exp(-lead / 7.0)
        live = np.full(candidates.size, 0.5) if status is None else status[candidates]
        score = (
            WEIGHTS["item"] * match[candidates]
            + WEIGHTS["distance"] * distance
            + WEIGHTS["lead"] * lead_score
            + WEIGHTS["status"] * live
        )
        k = min(top, candidates.size)
        best = np.argpartition(-score, k - 1)[:k]
        best = best[np.argsort(-score[best], kind="stable")]
        return [
            {
                "offer": self.ids[candidates[i]],
                "enterprise": self.enterprise[candidates[i]] or None,
                "score": round(float(score[i]), 4),
                "item_match": float(match[candidates[i]]),
                "km": None if np.isnan(km[i]) else round(float(km[i]), 1),
                "lead_days": round(float(lead[i]), 2),
                "live_status": float(live[i]),
                "quantity": float(self.quantity[candidates[i]]),
            }
            for i in best
        ]
