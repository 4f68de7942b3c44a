"""What a manager asks of business records: days of cover, what is late, what is on the road."""

from __future__ import annotations

from typing import Any

__all__ = [
    "DAY_MS",
    "EQUIPMENT_STALE_MS",
    "equipment_status",
    "inventory_status",
    "order_status",
    "shipment_status",
    "summary",
]

DAY_MS = 86_400_000
#: customer equipment not heard from for this long counts as offline
EQUIPMENT_STALE_MS = DAY_MS


def inventory_status(
    rows: list[dict[str, Any]], *, default_min_cover_days: float = 3.0
) -> list[dict[str, Any]]:
    """Add ``days_of_cover`` (stock ÷ planned daily use) and ``below_cover`` to stock rows.

    Without a planned daily use the cover is unknown (None), never infinite or zero.
    """
    out = []
    for row in rows:
        use = row.get("daily_use")
        cover = None if not use else row["quantity"] / use
        target = row.get("min_cover_days")
        target = default_min_cover_days if target is None else target
        out.append(
            {
                **row,
                "days_of_cover": None if cover is None else round(cover, 3),
                "below_cover": cover is not None and cover < target,
                "cover_target_days": target,
            }
        )
    return out


def order_status(rows: list[dict[str, Any]], kind: str, *, now_ms: int) -> list[dict[str, Any]]:
    """Add ``outstanding``, ``progress`` and ``late`` to purchase, sales or production orders.

    An order is late when its expected or due time has passed and it is neither done nor
    cancelled and still has quantity outstanding.
    """
    done_field, due_field = {
        "purchase_orders": ("received_quantity", "expected_at"),
        "sales_orders": ("shipped_quantity", "due_at"),
        "production_orders": ("done_quantity", "due_at"),
    }[kind]
    out = []
    for row in rows:
        done = row.get(done_field) or 0.0
        outstanding = max(row["quantity"] - done, 0.0)
        closed = row.get("status") in {"done", "cancelled"} or outstanding == 0
        due = row[due_field]
        late = not closed and due is not None and due < now_ms
        out.append(
            {
                **row,
                "outstanding": outstanding,
                "progress": round(min(done / row["quantity"], 1.0), 4),
                "late": late,
                "days_late": round((now_ms - due) / DAY_MS, 2) if late else 0.0,
            }
        )
    return out


def shipment_status(rows: list[dict[str, Any]], *, now_ms: int) -> list[dict[str, Any]]:
    """Add the derived ``state`` (planned / on_road / arrived / cancelled) and ``late``."""
    out = []
    for row in rows:
        if row.get("status") == "cancelled":
            state = "cancelled"
        elif row.get("arrived_at") is not None or row.get("status") == "arrived":
            state = "arrived"
        elif row.get("status") == "on_road" or (
            row.get("departed_at") is not None and row["departed_at"] <= now_ms
        ):
            state = "on_road"
        else:
            state = "planned"
        eta = row.get("eta")
        late = state in {"planned", "on_road"} and eta is not None and eta < now_ms
        out.append({**row, "state": state, "late": late})
    return out


def equipment_status(
    rows: list[dict[str, Any]], *, now_ms: int, stale_ms: int = EQUIPMENT_STALE_MS
) -> list[dict[str, Any]]:
    """Add the derived ``state`` and ``stale`` to equipment installed at customers.

    Retired equipment stays retired. Otherwise equipment not heard from for ``stale_ms`` (or
    never) is offline, whatever it reported last; else its reported status (running if none).
    """
    out = []
    for row in rows:
        seen = row.get("last_seen")
        stale = seen is None or now_ms - seen > stale_ms
        reported = row.get("status")
        if reported == "retired":
            state = "retired"
        elif stale:
            state = "offline"
        else:
            state = reported or "running"
        out.append({**row, "state": state, "stale": stale and reported != "retired"})
    return out


def summary(
    inventory: list[dict[str, Any]],
    orders: dict[str, list[dict[str, Any]]],
    shipments: list[dict[str, Any]],
    equipment: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Count what the overview shows: items below cover, late orders, shipments by state.

    With ``equipment`` (from `equipment_status`), also the customer equipment by state.
    """
    by_state: dict[str, int] = {}
    for s in shipments:
        by_state[s["state"]] = by_state.get(s["state"], 0) + 1
    gear: dict[str, int] = {}
    for e in equipment or []:
        gear[e["state"]] = gear.get(e["state"], 0) + 1
    return {
        "items_below_cover": sum(1 for r in inventory if r["below_cover"]),
        "late_incoming": sum(1 for r in orders.get("purchase_orders", []) if r["late"]),
        "late_sales_orders": sum(1 for r in orders.get("sales_orders", []) if r["late"]),
        "late_production_orders": sum(1 for r in orders.get("production_orders", []) if r["late"]),
        "production_progress": _progress(orders.get("production_orders", [])),
        "shipments": by_state,
        "late_shipments": sum(1 for s in shipments if s["late"]),
        "equipment": gear,
    }


def _progress(rows: list[dict[str, Any]]) -> float | None:
    """Return done ÷ planned quantity over open production orders (sums, not an average)."""
    live = [r for r in rows if r.get("status") != "cancelled"]
    planned = sum(r["quantity"] for r in live)
    if not planned:
        return None
    return round(sum(min(r.get("done_quantity") or 0.0, r["quantity"]) for r in live) / planned, 4)
