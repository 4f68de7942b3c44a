"""Industrial transfer matching: enterprises that want to move or add capacity × regions' offers.

Every (enterprise, region) pair gets a transparent score, each component in [0, 1] and shown::

    score = 0.25 · land + 0.25 · labour + 0.20 · energy + 0.20 · cluster + 0.10 · cost

- land, labour, energy: the share of the need the region can cover, ``min(1, offered / needed)``
  (1 when the enterprise needs none);
- cluster: 1 when the region lists the enterprise's industry among its clusters, 0.5 when it lists
  one of the enterprise's supplier or customer industries, else 0;
- cost: the mean over the prices the enterprise caps (land, wage, energy) of
  ``min(1, cap / price)`` (1 when it caps none).

Shortfalls (less land than needed, a price above the cap, …) are listed in words beside the score;
a region that covers every need and every cap is ``fits``. Pure code: no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from indunet.errors import DataError

__all__ = ["WEIGHTS", "TransferEnterprise", "TransferRegion", "load_transfer", "match_transfer"]

WEIGHTS = {"land": 0.25, "labour": 0.25, "energy": 0.2, "cluster": 0.2, "cost": 0.1}
_ID = r"^[^\x00-\x1f]{1,128}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransferEnterprise(_Model):
    """An enterprise that wants to move (``move``) or add (``add``) capacity, and what it needs."""

    id: str = Field(pattern=_ID)
    name: str | None = Field(None, max_length=256)
    industry: str = Field(min_length=1, max_length=128)
    wants: Literal["move", "add"] = "add"
    from_region: str | None = Field(None, max_length=128)
    land_ha: float = Field(0, ge=0, allow_inf_nan=False)
    workers: int = Field(0, ge=0)
    energy_mwh_per_year: float = Field(0, ge=0, allow_inf_nan=False)
    max_land_price: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_wage: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_energy_price: float | None = Field(None, gt=0, allow_inf_nan=False)
    related_industries: list[str] = Field(default_factory=list, max_length=50)


class TransferRegion(_Model):
    """What a region offers: land, labour, energy, prices and its industry clusters."""

    id: str = Field(pattern=_ID)
    name: str | None = Field(None, max_length=256)
    province: str | None = Field(None, max_length=128)
    land_ha: float = Field(0, ge=0, allow_inf_nan=False)
    land_price: float | None = Field(None, gt=0, allow_inf_nan=False)
    labour: int = Field(0, ge=0)
    wage: float | None = Field(None, gt=0, allow_inf_nan=False)
    energy_mwh_per_year: float = Field(0, ge=0, allow_inf_nan=False)
    energy_price: float | None = Field(None, gt=0, allow_inf_nan=False)
    clusters: list[str] = Field(default_factory=list, max_length=50)


def _where(section: str, n: int, doc: Any, loc: tuple) -> str:
    entry_id = doc.get("id") if isinstance(doc, dict) else None
    named = f" (id {entry_id[:40]!r})" if isinstance(entry_id, str) else ""
    field = ".".join(str(p) for p in loc)
    return f"{section}[{n}]{named}" + (f".{field}" if field else "")


def load_transfer(doc: Any) -> tuple[list[TransferEnterprise], list[TransferRegion]]:
    """Validate a transfer document; every bad entry is named in one error (all of them)."""
    if not isinstance(doc, dict):
        raise DataError("a transfer document is a JSON object with enterprises and regions")
    unknown = sorted(set(doc) - {"enterprises", "regions"})
    errors = [f"unknown key {k!r} (expected enterprises and regions)" for k in unknown]
    parsed: dict[str, list] = {"enterprises": [], "regions": []}
    for section, model in (("enterprises", TransferEnterprise), ("regions", TransferRegion)):
        entries = doc.get(section)
        if not isinstance(entries, list):
            errors.append(f"{section}: must be a JSON array")
            continue
        seen: set[str] = set()
        for n, entry in enumerate(entries):
            try:
                item = model.model_validate(entry)
            except ValidationError as exc:
                errors.extend(
                    f"{_where(section, n, entry, e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                continue
            if item.id in seen:
                errors.append(f"{section}[{n}]: duplicate id {item.id!r}")
                continue
            seen.add(item.id)
            parsed[section].append(item)
    if errors:
        shown = errors[:50]
        more = f" (and {len(errors) - 50} more)" if len(errors) > 50 else ""
        raise DataError("; ".join(shown) + more)
    return parsed["enterprises"], parsed["regions"]


def _cover(offered: float, needed: float) -> float:
    return 1.0 if needed <= 0 else min(1.0, offered / needed)


def _pair(e: TransferEnterprise, r: TransferRegion) -> dict[str, Any]:
    clusters = {c.casefold() for c in r.clusters}
    related = {c.casefold() for c in e.related_industries}
    components = {
        "land": _cover(r.land_ha, e.land_ha),
        "labour": _cover(r.labour, e.workers),
        "energy": _cover(r.energy_mwh_per_year, e.energy_mwh_per_year),
        "cluster": 1.0
        if e.industry.casefold() in clusters
        else (0.5 if related & clusters else 0.0),
    }
    shortfalls = []
    for key, offered, needed, unit in (
        ("land", r.land_ha, e.land_ha, "ha"),
        ("labour", r.labour, e.workers, "workers"),
        ("energy", r.energy_mwh_per_year, e.energy_mwh_per_year, "MWh/year"),
    ):
        if components[key] < 1.0:
            shortfalls.append(f"{key}: {offered:g} {unit} offered < {needed:g} needed")
    prices = []
    for key, cap, price in (
        ("land price", e.max_land_price, r.land_price),
        ("wage", e.max_wage, r.wage),
        ("energy price", e.max_energy_price, r.energy_price),
    ):
        if cap is None:
            continue
        if price is None:
            prices.append(0.5)  # the region does not say: neither fits nor fails
            shortfalls.append(f"{key}: not stated by the region")
            continue
        prices.append(min(1.0, cap / price))
        if price > cap:
            shortfalls.append(f"{key}: {price:g} > the cap {cap:g}")
    components["cost"] = sum(prices) / len(prices) if prices else 1.0
    if components["cluster"] == 0.0:
        shortfalls.append(f"cluster: no {e.industry} or related industry in the region")
    score = sum(WEIGHTS[k] * v for k, v in components.items())
    return {
        "region": r.id,
        "name": r.name,
        "province": r.province,
        "score": round(score, 4),
        "components": {k: round(v, 4) for k, v in components.items()},
        "fits": not shortfalls,
        "shortfalls": shortfalls,
    }


def match_transfer(
    enterprises: list[TransferEnterprise], regions: list[TransferRegion], *, top: int = 5
) -> list[dict[str, Any]]:
    """Return, per enterprise, the ``top`` regions by score (ties: fitting first, then id)."""
    out = []
    for e in enterprises:
        pairs = [
            _pair(e, r)
            for r in regions
            if not (e.wants == "move" and e.from_region is not None and r.id == e.from_region)
        ]
        pairs.sort(key=lambda p: (-p["score"], not p["fits"], p["region"]))
        out.append(
            {
                "enterprise": e.id,
                "name": e.name,
                "industry": e.industry,
                "wants": e.wants,
                "candidates": pairs[:top],
            }
        )
    return out
