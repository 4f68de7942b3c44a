"""Business records beside the machines: items, inventory, orders and shipments (pure).

Each kind is a pydantic model plus its table and key. `validate_rows` turns raw rows (dicts from a
CSV, Excel or JSON export, or the HTTP API) into typed records and per-row errors that name the row
and the field; nothing here touches a database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from indunet.errors import ConfigError, DataError
from indunet.ingest.values import zone
from indunet.uns import check_segment

__all__ = [
    "KINDS",
    "BusinessKind",
    "CustomerEquipment",
    "EquipmentStatus",
    "Inventory",
    "Item",
    "ProductionOrder",
    "PurchaseOrder",
    "RowError",
    "SalesOrder",
    "Shipment",
    "ValidatedRows",
    "to_ms",
    "validate_rows",
]

_ID = r"^[^\x00-\x1f]{1,128}$"


class BusinessKind(StrEnum):
    """The kinds of business record indunet keeps."""

    items = "items"
    inventory = "inventory"
    purchase_orders = "purchase_orders"
    sales_orders = "sales_orders"
    production_orders = "production_orders"
    shipments = "shipments"
    customer_equipment = "customer_equipment"


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip() == "":
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and "datetime" in str(cls.model_fields[info.field_name].annotation)
        ):
            # numbers in a time field are epoch milliseconds, like everywhere in indunet
            if not math.isfinite(value) or abs(value) > 10**15:
                raise ValueError(f"{value!r} is not a time in epoch milliseconds")
            return datetime.fromtimestamp(value / 1000, UTC)
        return value


class Item(_Record):
    """An item the enterprise makes, buys or sells."""

    item: str = Field(pattern=_ID)
    name: str | None = Field(None, max_length=256)
    unit: str | None = Field(None, max_length=32)


class Inventory(_Record):
    """Stock of an item in a warehouse at a time; ``daily_use`` is planned consumption per day."""

    item: str = Field(pattern=_ID)
    warehouse: str = Field(pattern=_ID)
    site: str | None = None
    quantity: float = Field(ge=0, allow_inf_nan=False)
    unit: str | None = Field(None, max_length=32)
    as_of: datetime
    daily_use: float | None = Field(None, ge=0, allow_inf_nan=False)
    min_cover_days: float | None = Field(None, ge=0, allow_inf_nan=False)


class OrderStatus(StrEnum):
    """Where an order stands."""

    open = "open"
    partial = "partial"
    done = "done"
    cancelled = "cancelled"


class PurchaseOrder(_Record):
    """Incoming material: an order to a supplier with its expected arrival."""

    order_id: str = Field(pattern=_ID)
    line_no: int = Field(1, ge=1)
    item: str = Field(pattern=_ID)
    quantity: float = Field(gt=0, allow_inf_nan=False)
    supplier: str | None = None
    site: str | None = None
    expected_at: datetime
    received_quantity: float = Field(0, ge=0, allow_inf_nan=False)
    received_at: datetime | None = None
    status: OrderStatus = OrderStatus.open


class SalesOrder(_Record):
    """A customer's order with its due date."""

    order_id: str = Field(pattern=_ID)
    line_no: int = Field(1, ge=1)
    item: str = Field(pattern=_ID)
    quantity: float = Field(gt=0, allow_inf_nan=False)
    customer: str | None = None
    due_at: datetime
    shipped_quantity: float = Field(0, ge=0, allow_inf_nan=False)
    shipped_at: datetime | None = None
    status: OrderStatus = OrderStatus.open


class ProductionOrder(_Record):
    """A production order on a line (``site/area/line`` of the namespace)."""

    order_id: str = Field(pattern=_ID)
    item: str = Field(pattern=_ID)
    quantity: float = Field(gt=0, allow_inf_nan=False)
    done_quantity: float = Field(0, ge=0, allow_inf_nan=False)
    scrap_quantity: float = Field(0, ge=0, allow_inf_nan=False)
    line: str | None = None
    start_at: datetime | None = None
    due_at: datetime
    status: OrderStatus = OrderStatus.open

    @field_validator("line")
    @classmethod
    def _line_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split("/")
        if len(parts) != 3:
            raise ValueError(f"line {value!r} is not site/area/line")
        try:
            for part in parts:
                check_segment(part, "line path segment")
        except DataError as exc:
            raise ValueError(str(exc)) from None
        return value


class ShipmentStatus(StrEnum):
    """Where a shipment or vehicle stands."""

    planned = "planned"
    on_road = "on_road"
    arrived = "arrived"
    cancelled = "cancelled"


class Shipment(_Record):
    """A shipment or vehicle trip: inbound (to us) or outbound (to a customer)."""

    shipment_id: str = Field(pattern=_ID)
    direction: str = Field("outbound", pattern="^(inbound|outbound)$")
    vehicle: str | None = None
    order_id: str | None = None
    origin: str | None = None
    destination: str | None = None
    departed_at: datetime | None = None
    eta: datetime | None = None
    arrived_at: datetime | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    status: ShipmentStatus | None = None


class EquipmentStatus(StrEnum):
    """What equipment installed at a customer last reported."""

    running = "running"
    idle = "idle"
    fault = "fault"
    maintenance = "maintenance"
    offline = "offline"
    retired = "retired"


class CustomerEquipment(_Record):
    """Equipment sold and installed at a customer, watched remotely (operation & maintenance)."""

    serial: str = Field(pattern=_ID)
    customer: str = Field(pattern=_ID)
    product: str | None = Field(None, max_length=128)
    location: str | None = Field(None, max_length=256)
    site: str | None = Field(None, description="Our site that made or serves it.")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    installed_at: datetime | None = None
    status: EquipmentStatus | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True)
class _KindSpec:
    model: type[_Record]
    key: tuple[str, ...]


KINDS: dict[BusinessKind, _KindSpec] = {
    BusinessKind.items: _KindSpec(Item, ("item",)),
    BusinessKind.inventory: _KindSpec(Inventory, ("item", "warehouse", "as_of")),
    BusinessKind.purchase_orders: _KindSpec(PurchaseOrder, ("order_id", "line_no")),
    BusinessKind.sales_orders: _KindSpec(SalesOrder, ("order_id", "line_no")),
    BusinessKind.production_orders: _KindSpec(ProductionOrder, ("order_id",)),
    BusinessKind.shipments: _KindSpec(Shipment, ("shipment_id",)),
    BusinessKind.customer_equipment: _KindSpec(CustomerEquipment, ("serial",)),
}


def required_columns(kind: BusinessKind) -> list[str]:
    """Return the columns a file of ``kind`` must have."""
    return [n for n, f in KINDS[kind].model.model_fields.items() if f.is_required()]


@dataclass(frozen=True)
class RowError:
    """A row that was refused: where it was, which field, and why."""

    ref: str
    field: str
    reason: str
    row: dict[str, Any]


@dataclass
class ValidatedRows:
    """Typed records (as plain dicts with epoch-ms times), refused rows and warnings."""

    kind: BusinessKind
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def to_ms(value: datetime | date | None, tz: str | None = None) -> int | None:
    """Return a date or time as epoch ms; naive values are read in ``tz`` (UTC by default)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    return int(value.timestamp() * 1000)


def _normalise_keys(raw: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).strip().lower().replace(" ", "_").replace("-", "_"): v for k, v in raw.items()}


def validate_rows(
    kind: BusinessKind | str,
    rows: list[dict[str, Any]],
    *,
    source: str = "api",
    first_row: int = 1,
    tz: str | None = None,
    known_items: set[str] | None = None,
) -> ValidatedRows:
    """Validate raw rows of ``kind``; refused rows name ``source``, the row number and the field.

    A later row repeating an earlier row's key replaces it (last wins) with a warning naming both
    rows. Items unknown to a non-empty ``known_items`` are kept with a warning.
    """
    try:
        kind = BusinessKind(kind)
    except ValueError as exc:
        raise DataError(
            f"unknown business record kind {kind!r}; use one of {', '.join(BusinessKind)}"
        ) from exc
    try:
        zone(tz)  # fail early on an unknown time zone
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    spec = KINDS[kind]
    out = ValidatedRows(kind)
    seen: dict[tuple, tuple[int, int]] = {}
    unknown_items: dict[str, int] = {}
    for offset, raw in enumerate(rows):
        number = first_row + offset
        ref = f"{source} row {number}"
        if not isinstance(raw, dict):
            out.errors.append(RowError(ref, "", "a record must be an object", {"raw": raw}))
            continue
        if "__error__" in raw:
            out.errors.append(RowError(ref, "", str(raw["__error__"]), {}))
            continue
        if not raw:
            out.errors.append(RowError(ref, "", "empty row", {}))
            continue
        raw = _normalise_keys(raw)
        try:
            record = spec.model.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(record)"
            value = raw.get(str(first["loc"][0])) if first["loc"] else None
            reason = f"field {where}: {first['msg']}" + (
                f" (got {str(value)[:60]!r})" if value is not None else ""
            )
            out.errors.append(RowError(ref, where, reason, raw))
            continue
        record_dict = record.model_dump(mode="python")
        for name, value in record_dict.items():
            if isinstance(value, datetime | date):
                record_dict[name] = to_ms(value, tz)
            elif isinstance(value, StrEnum):
                record_dict[name] = value.value
        key = tuple(record_dict[k] for k in spec.key)
        if key in seen:
            earlier_number, earlier_index = seen[key]
            out.warnings.append(
                f"{source} row {number} repeats the key {dict(zip(spec.key, key, strict=True))} "
                f"of row {earlier_number}; the later row wins"
            )
            out.records[earlier_index] = record_dict
            seen[key] = (number, earlier_index)
        else:
            seen[key] = (number, len(out.records))
            out.records.append(record_dict)
        item = record_dict.get("item")
        named = item is not None and kind is not BusinessKind.items  # shipments have none
        if known_items and named and item not in known_items:
            unknown_items.setdefault(item, number)
    for item, number in unknown_items.items():
        out.warnings.append(
            f"{source} row {number}: item {item!r} is not in the item list (kept; import it "
            "with the items kind to name it)"
        )
    return out
