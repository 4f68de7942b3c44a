"""Dispatch orders: a solved allocation becomes orders both sides confirm, ship and receive.

Lifecycle (pure rules in `next_status`; the store applies them and audits every change):

    proposed ─┬─ supplier confirms ──┐
              └─ requester confirms ─┴─► confirmed (both) ─► shipped ─► delivered
    any state before shipped ─► cancelled (by either side, with a reason)

A delivery is recorded as stock in the requester's warehouse (business inventory) and as an
arrived shipment, so the docking loop feeds back into what the plant manager sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from indunet.errors import DataError

__all__ = ["Action", "DispatchStatus", "Transition", "next_status"]


class DispatchStatus(StrEnum):
    """Where a dispatch order stands."""

    proposed = "proposed"
    supplier_confirmed = "supplier_confirmed"
    requester_confirmed = "requester_confirmed"
    confirmed = "confirmed"
    shipped = "shipped"
    delivered = "delivered"
    cancelled = "cancelled"


class Action(StrEnum):
    """What a side does to an order."""

    confirm = "confirm"
    ship = "ship"
    deliver = "deliver"
    cancel = "cancel"


@dataclass(frozen=True)
class Transition:
    """The result of an action: the new status."""

    status: DispatchStatus


_OPEN = {
    DispatchStatus.proposed,
    DispatchStatus.supplier_confirmed,
    DispatchStatus.requester_confirmed,
    DispatchStatus.confirmed,
}


def next_status(status: DispatchStatus, action: Action, side: str) -> Transition:
    """Return the status after ``side`` (supplier or requester) takes ``action``, or refuse."""
    if side not in {"supplier", "requester"}:
        raise DataError(f"side {side!r} must be supplier or requester")
    if action is Action.cancel:
        if status not in _OPEN:
            raise DataError(f"an order that is {status.value} cannot be cancelled")
        return Transition(DispatchStatus.cancelled)
    if action is Action.confirm:
        mine = (
            DispatchStatus.supplier_confirmed
            if side == "supplier"
            else DispatchStatus.requester_confirmed
        )
        other = (
            DispatchStatus.requester_confirmed
            if side == "supplier"
            else DispatchStatus.supplier_confirmed
        )
        if status is DispatchStatus.proposed:
            return Transition(mine)
        if status is other:
            return Transition(DispatchStatus.confirmed)
        if status in {mine, DispatchStatus.confirmed}:
            raise DataError(f"the {side} has already confirmed this order")
        raise DataError(f"an order that is {status.value} cannot be confirmed")
    if action is Action.ship:
        if side != "supplier":
            raise DataError("only the supplier ships an order")
        if status is not DispatchStatus.confirmed:
            raise DataError(
                f"an order must be confirmed by both sides to ship (it is {status.value})"
            )
        return Transition(DispatchStatus.shipped)
    if side != "requester":
        raise DataError("only the requester records a delivery")
    if status is not DispatchStatus.shipped:
        raise DataError(f"only a shipped order can be delivered (it is {status.value})")
    return Transition(DispatchStatus.delivered)
