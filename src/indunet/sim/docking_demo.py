"""The demo's mask shortage (early 2020): hospitals across provinces short of masks, respirators
and protective suits; firms with stock, mask makers with spare capacity, car and electronics lines
that can convert to masks. Lanes come from great-circle distance (no lane beyond ``MAX_KM``).

The scenario is built so every kind of explanation shows up: requests served in priority order,
a far clinic that no offer can reach (no lane), a clinic whose deadline is too near for any
delivery (no stock before the deadline), and lower classes outranked by the hospitals of Hubei.
Days count from day 0 (the first day of the shortage).
"""

from __future__ import annotations

import math
from typing import Any

from indunet.docking.problem import Location, haversine_km

__all__ = ["MAX_KM", "load_docking_demo", "mask_shortage"]

MAX_KM = 2500.0
"""Lanes only join places at most this far apart (trucks, a day per ``KM_PER_DAY``)."""
KM_PER_DAY = 800.0
COST_PER_UNIT_KM = {"mask": 0.0004, "n95": 0.0006, "suit": 0.002}
HANDLING = {"mask": 0.05, "n95": 0.1, "suit": 0.5}

# (id, enterprise, province, lat, lon, item, quantity, priority, deadline_day)
_REQUESTS = [
    ("WH-JYT-mask", "Wuhan Jinyintan Hospital", "Hubei", 30.63, 114.27, "mask", 60_000, 1, 5),
    ("WH-JYT-n95", "Wuhan Jinyintan Hospital", "Hubei", 30.63, 114.27, "n95", 20_000, 1, 6),
    ("WH-JYT-suit", "Wuhan Jinyintan Hospital", "Hubei", 30.63, 114.27, "suit", 8_000, 1, 4),
    ("WH-FLD-mask", "Wuhan field hospital", "Hubei", 30.52, 114.08, "mask", 40_000, 1, 6),
    ("WH-FLD-suit", "Wuhan field hospital", "Hubei", 30.52, 114.08, "suit", 6_000, 1, 6),
    ("HG-CEN-mask", "Huanggang Central Hospital", "Hubei", 30.45, 114.87, "mask", 30_000, 1, 7),
    ("XG-CEN-mask", "Xiaogan Central Hospital", "Hubei", 30.92, 113.91, "mask", 25_000, 2, 8),
    ("WZ-CEN-mask", "Wenzhou Central Hospital", "Zhejiang", 28.00, 120.67, "mask", 30_000, 2, 8),
    ("WZ-CEN-n95", "Wenzhou Central Hospital", "Zhejiang", 28.00, 120.67, "n95", 5_000, 2, 8),
    ("BJ-DT-n95", "Beijing Ditan Hospital", "Beijing", 39.97, 116.41, "n95", 6_000, 1, 5),
    ("GZ-8TH-mask", "Guangzhou Eighth Hospital", "Guangdong", 23.13, 113.26, "mask", 20_000, 3, 10),
    ("URC-CLN-suit", "Urumqi community clinic", "Xinjiang", 43.83, 87.62, "suit", 2_000, 3, 10),
    ("HRB-CLN-mask", "Harbin community clinic", "Heilongjiang", 45.80, 126.53, "mask", 5_000, 3, 1),
]

# stock: (id, enterprise, province, lat, lon, item, quantity, available_day)
_STOCK = [
    ("XX-MED-mask", "Xinxiang Medical Supplies", "Henan", 35.30, 113.93, "mask", 40_000, 0),
    ("QD-HUB-mask", "Qingdao docking platform hub", "Shandong", 36.07, 120.38, "mask", 20_000, 1),
    ("QD-HUB-n95", "Qingdao docking platform hub", "Shandong", 36.07, 120.38, "n95", 12_000, 0),
    ("SZ-PPE-suit", "Suzhou PPE Works", "Jiangsu", 31.30, 120.62, "suit", 7_000, 0),
    ("DG-TEX-mask", "Dongguan Textile Co.", "Guangdong", 23.02, 113.75, "mask", 15_000, 0),
]

# capacity: (id, enterprise, province, lat, lon, item, rate_per_day, from_day, ramp_days)
_CAPACITY = [
    ("NB-MSK-mask", "Ningbo Mask Factory", "Zhejiang", 29.87, 121.54, "mask", 4_000, 1, 2),
    ("XT-NW-suit", "Xiantao Nonwovens", "Hubei", 30.36, 113.45, "suit", 1_200, 0, 1),
]

# convertible: (id, enterprise, province, lat, lon, item, rate, days, cost, usual_item)
_CONVERTIBLE = [
    ("LZ-CAR-mask", "Liuzhou Car Works", "Guangxi", 24.33, 109.41, "mask",
     8_000, 3, 200_000.0, "car"),
    ("SY-TRK-mask", "Shiyan Truck Plant", "Hubei", 32.63, 110.79, "mask",
     5_000, 2, 150_000.0, "truck"),
    ("SZ-ELC-n95", "Shenzhen Electronics Line 4", "Guangdong", 22.54, 114.06, "n95",
     3_000, 4, 120_000.0, "phone"),
]  # fmt: skip


def _place(lat: float, lon: float) -> dict[str, float]:
    return {"lat": lat, "lon": lon}


def mask_shortage() -> dict[str, list[dict[str, Any]]]:
    """Return the scenario as docking documents: requests, offers and lanes."""
    requests = [
        {
            "id": rid,
            "item": item,
            "quantity": float(qty),
            "priority": prio,
            "deadline_day": deadline,
            "location": _place(lat, lon),
            "enterprise": who,
            "contact": f"supplies desk, {who} ({prov})",
        }
        for rid, who, prov, lat, lon, item, qty, prio, deadline in _REQUESTS
    ]
    offers: list[dict[str, Any]] = [
        {
            "id": oid,
            "item": item,
            "kind": "stock",
            "quantity": float(qty),
            "available_day": day,
            "location": _place(lat, lon),
            "enterprise": who,
        }
        for oid, who, _prov, lat, lon, item, qty, day in _STOCK
    ]
    offers += [
        {
            "id": oid,
            "item": item,
            "kind": "capacity",
            "rate_per_day": float(rate),
            "from_day": start,
            "ramp_days": ramp,
            "location": _place(lat, lon),
            "enterprise": who,
        }
        for oid, who, _prov, lat, lon, item, rate, start, ramp in _CAPACITY
    ]
    offers += [
        {
            "id": oid,
            "item": item,
            "kind": "convertible",
            "rate_per_day": float(rate),
            "conversion_days": days,
            "conversion_cost": cost,
            "ramp_days": 1,
            "usual_item": usual,
            "location": _place(lat, lon),
            "enterprise": who,
        }
        for oid, who, _prov, lat, lon, item, rate, days, cost, usual in _CONVERTIBLE
    ]
    lanes = []
    for o in offers:
        for r in requests:
            if o["item"] != r["item"]:
                continue
            km = haversine_km(Location(**o["location"]), Location(**r["location"]))
            if km > MAX_KM:
                continue
            item = r["item"]
            lanes.append(
                {
                    "from": o["id"],
                    "to": r["id"],
                    "cost_per_unit": round(HANDLING[item] + COST_PER_UNIT_KM[item] * km, 3),
                    "transit_days": 1 + math.floor(km / KM_PER_DAY),
                }
            )
    return {"requests": requests, "offers": offers, "lanes": lanes}


def load_docking_demo(historian: Any, enterprise: str, *, now_ms: int) -> dict[str, int]:
    """Store the scenario for ``enterprise`` (replacing nothing else); return what was stored."""
    from indunet.docking.store import DockingStore

    store = DockingStore(historian)
    doc = mask_shortage()
    stored = {}
    for kind, key in (("request", "requests"), ("offer", "offers"), ("lane", "lanes")):
        report = store.save(enterprise, kind, doc[key], now_ms=now_ms)
        if report["refused"]:  # a bug in the scenario, not user input
            raise ValueError(f"docking demo {kind}s refused: {report['refused'][:3]}")
        stored[key] = report["stored"]
    return stored
