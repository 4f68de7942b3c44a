"""The demo's business data: items, stock, orders, shipments and equipment at customers (seeded).

Built for the demo's machines: each line makes one finished part and has a production order
running on it; each site keeps raw materials in its warehouse, buys them from suppliers, ships
parts to customers and looks after machines it sold. Some stock is below its cover, some
deliveries are late, some trucks are on the road and one machine at a customer is silent, so
the overview has something to say. Records go through `BusinessStore.load`, the same validation
as ``POST /api/v1/business/{kind}`` and ``indunet plant import``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from indunet.business.records import BusinessKind
from indunet.business.store import BusinessStore, ImportReport
from indunet.store.base import Historian
from indunet.uns import MachinePath

__all__ = ["MATERIALS", "demo_business", "load_demo_business"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: raw materials every site buys: (item, name, unit, daily use per line, supplier)
MATERIALS = (
    ("steel-coil-1.5", "Cold-rolled steel coil 1.5 mm", "t", 1.2, "Baosteel Shanghai"),
    ("bearing-6204", "Deep-groove ball bearing 6204", "pcs", 400.0, "Harbin Bearing"),
    ("fastener-m8", "Hex bolt M8x25", "pcs", 2500.0, "Ningbo Fasteners"),
    ("paint-grey", "Powder coating RAL 7035", "kg", 35.0, "Guangzhou Coatings"),
    ("carton-40", "Shipping carton 40 cm", "pcs", 300.0, "Dongguan Packaging"),
)
_PARTS = ("bracket", "housing", "flange", "cover", "shaft", "hub", "frame", "panel")
_CUSTOMERS = (
    ("Haier Qingdao", "Qingdao, CN"),
    ("Midea Foshan", "Foshan, CN"),
    ("SAIC Anting", "Shanghai, CN"),
    ("Vinfast Hai Phong", "Hai Phong, VN"),
    ("Tata Pune", "Pune, IN"),
    ("Bosch Stuttgart", "Stuttgart, DE"),
)
_PRODUCTS = ("servo press SP-200", "CNC lathe CL-40", "welding cell WC-2", "paint line PL-1")


def _lines(machines: Iterable[str | MachinePath]) -> dict[str, list[str]]:
    """Return site → its lines (``site/area/line``), in order."""
    out: dict[str, list[str]] = {}
    for m in machines:
        p = m if isinstance(m, MachinePath) else MachinePath.parse(str(m))
        line = f"{p.site}/{p.area}/{p.line}"
        lines = out.setdefault(p.site, [])
        if line not in lines:
            lines.append(line)
    return {site: out[site] for site in sorted(out)}


def demo_business(
    machines: Iterable[str | MachinePath], *, now_ms: int, seed: int = 7
) -> dict[BusinessKind, list[dict[str, Any]]]:
    """Return the demo's business records per kind for the sites and lines of ``machines``.

    The same machines, time and seed give the same records. Times are epoch ms.
    """
    rng = np.random.default_rng(seed)
    by_site = _lines(machines)
    today = now_ms - now_ms % DAY_MS
    items: list[dict[str, Any]] = [
        {"item": item, "name": name, "unit": unit} for item, name, unit, _, _ in MATERIALS
    ]
    inventory: list[dict[str, Any]] = []
    purchases: list[dict[str, Any]] = []
    production: list[dict[str, Any]] = []
    sales: list[dict[str, Any]] = []
    shipments: list[dict[str, Any]] = []
    equipment: list[dict[str, Any]] = []
    for s_no, (site, lines) in enumerate(by_site.items(), 1):
        warehouse = f"{site}-wh"
        for l_no, line in enumerate(lines):
            part = f"{_PARTS[(s_no + l_no) % len(_PARTS)]}-{site}-{line.rsplit('/', 1)[1]}"
            items.append({"item": part, "name": f"{part} (made on {line})", "unit": "pcs"})
            planned = float(rng.integers(20, 60) * 100)
            running_done = float(round(planned * rng.uniform(0.2, 0.9)))
            late = l_no % 3 == 1  # every third line is behind its due date
            production.append(
                {
                    "order_id": f"PO-{site}-{l_no + 1:02d}-A",
                    "item": part,
                    "quantity": planned,
                    "done_quantity": running_done,
                    "scrap_quantity": float(round(running_done * 0.02)),
                    "line": line,
                    "start_at": today - DAY_MS,
                    "due_at": now_ms - 3 * HOUR_MS if late else today + 2 * DAY_MS,
                    "status": "partial",
                }
            )
            production.append(
                {
                    "order_id": f"PO-{site}-{l_no + 1:02d}-B",
                    "item": part,
                    "quantity": float(rng.integers(10, 40) * 100),
                    "line": line,
                    "start_at": today + 2 * DAY_MS,
                    "due_at": today + 5 * DAY_MS,
                    "status": "open",
                }
            )
            inventory.append(
                {
                    "item": part,
                    "warehouse": warehouse,
                    "site": site,
                    "quantity": float(rng.integers(5, 50) * 100),
                    "unit": "pcs",
                    "as_of": now_ms - HOUR_MS,
                }
            )
            customer = _CUSTOMERS[(s_no + l_no) % len(_CUSTOMERS)][0]
            sales.append(
                {
                    "order_id": f"SO-{site}-{l_no + 1:02d}",
                    "item": part,
                    "quantity": float(rng.integers(5, 30) * 100),
                    "customer": customer,
                    "due_at": today + int(rng.integers(1, 10)) * DAY_MS,
                }
            )
        n_lines = len(lines)
        for m_no, (item, _, unit, per_line, supplier) in enumerate(MATERIALS):
            use = round(per_line * n_lines, 3)
            # materials 1 and 3 (of five) run short at the first site, one of them at the others
            short = m_no == (s_no % len(MATERIALS)) or (s_no == 1 and m_no == 3)
            cover_days = rng.uniform(0.5, 2.5) if short else rng.uniform(5, 20)
            inventory.append(
                {
                    "item": item,
                    "warehouse": warehouse,
                    "site": site,
                    "quantity": round(use * cover_days, 1),
                    "unit": unit,
                    "as_of": now_ms - 2 * HOUR_MS,
                    "daily_use": use,
                    "min_cover_days": 3.0,
                }
            )
            overdue = m_no == (s_no + 1) % len(MATERIALS)  # one late delivery per site
            received = m_no == (s_no + 2) % len(MATERIALS)
            expected = now_ms - DAY_MS if overdue or received else today + (m_no + 1) * DAY_MS
            quantity = round(use * 10, 1)
            purchases.append(
                {
                    "order_id": f"PUR-{site}-{m_no + 1:02d}",
                    "item": item,
                    "quantity": quantity,
                    "supplier": supplier,
                    "site": site,
                    "expected_at": expected,
                    "received_quantity": quantity if received else 0.0,
                    "received_at": expected if received else None,
                    "status": "done" if received else "open",
                }
            )
            if not overdue and not received and m_no % 2 == 0:  # on its way to the site
                shipments.append(
                    {
                        "shipment_id": f"IN-{site}-{m_no + 1:02d}",
                        "direction": "inbound",
                        "vehicle": f"truck {supplier.split()[0]} {m_no + 1}",
                        "order_id": f"PUR-{site}-{m_no + 1:02d}",
                        "origin": supplier,
                        "destination": site,
                        "departed_at": now_ms - 6 * HOUR_MS,
                        "eta": expected,
                        "status": "on_road",
                    }
                )
        for k in range(4):  # outbound trucks: two on the road (one late), one arrived, one planned
            customer, city = _CUSTOMERS[(s_no * 2 + k) % len(_CUSTOMERS)]
            departed = now_ms - (k + 1) * 5 * HOUR_MS
            row: dict[str, Any] = {
                "shipment_id": f"OUT-{site}-{k + 1:02d}",
                "direction": "outbound",
                "vehicle": f"{site} truck {k + 1}",
                "order_id": f"SO-{site}-{k % max(n_lines, 1) + 1:02d}",
                "origin": site,
                "destination": f"{customer}, {city}",
            }
            if k == 0:
                row |= {"departed_at": departed, "eta": now_ms + 4 * HOUR_MS, "status": "on_road"}
            elif k == 1:
                row |= {"departed_at": departed, "eta": now_ms - HOUR_MS, "status": "on_road"}
            elif k == 2:
                row |= {
                    "departed_at": departed,
                    "eta": departed + 8 * HOUR_MS,
                    "arrived_at": departed + 7 * HOUR_MS,
                    "status": "arrived",
                }
            else:
                row |= {"departed_at": now_ms + 6 * HOUR_MS, "status": "planned"}
            shipments.append(row)
        for k in range(5):  # machines this site sold, watched remotely
            customer, city = _CUSTOMERS[(s_no + k) % len(_CUSTOMERS)]
            status = "fault" if k == 3 else "idle" if k == 2 else "running"
            seen = now_ms - 3 * DAY_MS if k == 4 else now_ms - int(rng.integers(1, 600)) * 1000
            equipment.append(
                {
                    "serial": f"SN-{site.upper()}-{1000 + k}",
                    "customer": customer,
                    "product": _PRODUCTS[(s_no + k) % len(_PRODUCTS)],
                    "location": city,
                    "site": site,
                    "installed_at": today - int(rng.integers(30, 900)) * DAY_MS,
                    "status": status,
                    "last_seen": seen,
                }
            )
    return {
        BusinessKind.items: items,
        BusinessKind.inventory: inventory,
        BusinessKind.purchase_orders: purchases,
        BusinessKind.production_orders: production,
        BusinessKind.sales_orders: sales,
        BusinessKind.shipments: shipments,
        BusinessKind.customer_equipment: equipment,
    }


def load_demo_business(
    historian: Historian,
    enterprise: str,
    machines: Iterable[str | MachinePath],
    *,
    now_ms: int,
    seed: int = 7,
) -> dict[str, ImportReport]:
    """Validate and store the demo's business records; return each kind's import report."""
    store = BusinessStore(historian)
    records = demo_business(machines, now_ms=now_ms, seed=seed)
    return {
        kind.value: store.load(enterprise, kind, rows, source=f"demo:{kind.value}", now_ms=now_ms)
        for kind, rows in records.items()  # items first, so the other kinds know them
    }
