from __future__ import annotations

import pytest

from indunet.docking.dispatch import Action, DispatchStatus, next_status
from indunet.errors import DataError

S = DispatchStatus


@pytest.mark.parametrize(
    ("status", "action", "side", "after"),
    [
        (S.proposed, Action.confirm, "supplier", S.supplier_confirmed),
        (S.proposed, Action.confirm, "requester", S.requester_confirmed),
        (S.supplier_confirmed, Action.confirm, "requester", S.confirmed),
        (S.requester_confirmed, Action.confirm, "supplier", S.confirmed),
        (S.confirmed, Action.ship, "supplier", S.shipped),
        (S.shipped, Action.deliver, "requester", S.delivered),
        (S.proposed, Action.cancel, "requester", S.cancelled),
        (S.confirmed, Action.cancel, "supplier", S.cancelled),
    ],
)
def test_allowed_transitions(status, action, side, after):
    assert next_status(status, action, side).status is after


@pytest.mark.parametrize(
    ("status", "action", "side", "message"),
    [
        (S.supplier_confirmed, Action.confirm, "supplier", "already confirmed"),
        (S.proposed, Action.ship, "supplier", "confirmed by both sides"),
        (S.confirmed, Action.ship, "requester", "only the supplier ships"),
        (S.confirmed, Action.deliver, "requester", "only a shipped order"),
        (S.shipped, Action.deliver, "supplier", "only the requester"),
        (S.shipped, Action.cancel, "supplier", "cannot be cancelled"),
        (S.delivered, Action.confirm, "supplier", "cannot be confirmed"),
        (S.proposed, Action.confirm, "broker", "must be supplier or requester"),
    ],
)
def test_refused_transitions(status, action, side, message):
    with pytest.raises(DataError, match=message):
        next_status(status, action, side)
