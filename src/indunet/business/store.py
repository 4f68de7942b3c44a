"""Keep business records in the historian's database, per enterprise (tenant)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from indunet.business import status
from indunet.business.records import KINDS, BusinessKind, ValidatedRows, validate_rows
from indunet.model import DeadLetter
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = ["BusinessStore", "ImportReport"]

_SQL_TYPES = {
    "item": "TEXT",
    "name": "TEXT",
    "unit": "TEXT",
    "warehouse": "TEXT",
    "site": "TEXT",
    "supplier": "TEXT",
    "customer": "TEXT",
    "order_id": "TEXT",
    "line": "TEXT",
    "status": "TEXT",
    "shipment_id": "TEXT",
    "direction": "TEXT",
    "vehicle": "TEXT",
    "origin": "TEXT",
    "destination": "TEXT",
    "line_no": "INTEGER",
    "serial": "TEXT",
    "product": "TEXT",
    "location": "TEXT",
    "last_seen": "BIGINT",
}
_ARROW_TYPES = {"TEXT": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64()}


def _sql_type(column: str) -> str:
    if column in _SQL_TYPES:
        return _SQL_TYPES[column]
    if column.endswith("_at") or column in {"as_of", "eta"}:
        return "BIGINT"  # epoch ms, like the historian's points
    return "DOUBLE PRECISION"


def _columns(kind: BusinessKind) -> list[str]:
    return list(KINDS[kind].model.model_fields)


def _ddl() -> str:
    statements = []
    for kind, spec in KINDS.items():
        cols = ",\n  ".join(f"{c} {_sql_type(c)}" for c in _columns(kind))
        key = ", ".join(("enterprise", *spec.key))
        statements.append(
            f"CREATE TABLE IF NOT EXISTS biz_{kind.value} (\n  enterprise TEXT NOT NULL,\n  "
            f"{cols},\n  updated_ms BIGINT NOT NULL,\n  PRIMARY KEY ({key})\n)"
        )
    return ";\n".join(statements)


@dataclass
class ImportReport:
    """What an import stored, refused (as dead letters) and warned about."""

    kind: str
    stored: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain data."""
        return {
            "kind": self.kind,
            "stored": self.stored,
            "refused": self.refused,
            "warnings": self.warnings,
        }


class BusinessStore:
    """Business tables beside the historian's points (same DuckDB file or PostgreSQL schema)."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
        self.sql = SqlPort(historian)
        self.sql.script(_ddl())

    def save(self, enterprise: str, rows: ValidatedRows, *, now_ms: int) -> ImportReport:
        """Upsert the valid records and dead-letter the refused ones; return what happened."""
        kind = rows.kind
        report = ImportReport(kind.value, warnings=list(rows.warnings))
        if rows.errors:
            self.historian.add_dead_letters(
                [
                    DeadLetter(
                        source=f"business:{kind.value}",
                        reason=e.reason,
                        ref=e.ref,
                        payload=json.dumps(e.row, default=str)[:4096],
                    )
                    for e in rows.errors
                ],
                enterprise,
            )
            report.refused = [
                {"ref": e.ref, "field": e.field, "reason": e.reason} for e in rows.errors
            ]
        if rows.records:
            cols = _columns(kind)
            data: dict[str, pa.Array] = {
                "enterprise": pa.array([enterprise] * len(rows.records), pa.string())
            }
            for c in cols:
                data[c] = pa.array(
                    [r.get(c) for r in rows.records],
                    _ARROW_TYPES.get(_sql_type(c), pa.float64()),
                )
            data["updated_ms"] = pa.array([now_ms] * len(rows.records), pa.int64())
            report.stored = self.sql.upsert(
                f"biz_{kind.value}", pa.table(data), ("enterprise", *KINDS[kind].key)
            )
        return report

    def signature(self, enterprise: str) -> tuple[int, int]:
        """Return (records, newest update ms) over every kind: it changes with every save."""
        union = " UNION ALL ".join(
            f"SELECT updated_ms FROM biz_{kind.value} WHERE enterprise = $1" for kind in KINDS
        )
        row = self.sql.rows(
            f"SELECT count(*) AS n, max(updated_ms) AS m FROM ({union}) u", [enterprise]
        )[0]
        return int(row["n"]), int(row["m"] or 0)

    def items(self, enterprise: str) -> set[str]:
        """Return the item ids in the enterprise's item list."""
        return {
            r["item"]
            for r in self.sql.rows("SELECT item FROM biz_items WHERE enterprise = $1", [enterprise])
        }

    def records(self, enterprise: str, kind: BusinessKind | str) -> list[dict[str, Any]]:
        """Return all records of ``kind`` for the enterprise, in key order."""
        kind = BusinessKind(kind)
        cols = ", ".join(_columns(kind))
        order = ", ".join(KINDS[kind].key)
        return self.sql.rows(
            f"SELECT {cols} FROM biz_{kind.value} WHERE enterprise = $1 ORDER BY {order}",
            [enterprise],
        )

    def current_inventory(self, enterprise: str) -> list[dict[str, Any]]:
        """Return the newest stock level per item and warehouse."""
        cols = ", ".join(f"i.{c}" for c in _columns(BusinessKind.inventory))
        return self.sql.rows(
            f"SELECT {cols} FROM biz_inventory i JOIN (SELECT item, warehouse, max(as_of) AS "
            "as_of FROM biz_inventory WHERE enterprise = $1 GROUP BY item, warehouse) n "
            "ON i.item = n.item AND i.warehouse = n.warehouse AND i.as_of = n.as_of "
            "WHERE i.enterprise = $1 ORDER BY i.item, i.warehouse",
            [enterprise],
        )

    def load(
        self,
        enterprise: str,
        kind: BusinessKind | str,
        rows: list[Any],
        *,
        source: str,
        now_ms: int,
        tz: str | None = None,
        warnings: list[str] | None = None,
        first_row: int = 1,
    ) -> ImportReport:
        """Validate raw rows of ``kind`` and save them; the report says what was kept or not."""
        kind = BusinessKind(kind)
        checked = validate_rows(
            kind,
            rows,
            source=source,
            tz=tz,
            known_items=self.items(enterprise),
            first_row=first_row,
        )
        checked.warnings[:0] = warnings or []
        return self.save(enterprise, checked, now_ms=now_ms)

    def view(self, enterprise: str, kind: BusinessKind | str, *, now_ms: int) -> list[dict]:
        """Return the records of ``kind`` with what is derived from them (cover, late, state)."""
        kind = BusinessKind(kind)
        if kind is BusinessKind.inventory:
            return status.inventory_status(self.current_inventory(enterprise))
        rows = self.records(enterprise, kind)
        if kind is BusinessKind.shipments:
            return status.shipment_status(rows, now_ms=now_ms)
        if kind is BusinessKind.customer_equipment:
            return status.equipment_status(rows, now_ms=now_ms)
        if kind is BusinessKind.items:
            return rows
        return status.order_status(rows, kind.value, now_ms=now_ms)

    def overview(self, enterprise: str, *, now_ms: int) -> dict[str, Any]:
        """Return the counts the manager's overview shows."""
        orders = {
            k.value: self.view(enterprise, k, now_ms=now_ms)
            for k in (
                BusinessKind.purchase_orders,
                BusinessKind.sales_orders,
                BusinessKind.production_orders,
            )
        }
        return status.summary(
            self.view(enterprise, BusinessKind.inventory, now_ms=now_ms),
            orders,
            self.view(enterprise, BusinessKind.shipments, now_ms=now_ms),
            self.view(enterprise, BusinessKind.customer_equipment, now_ms=now_ms),
        )
