"""Andon: an operator calls for help on a line or machine; someone takes the call and resolves it.

A call's life: ``open`` (raised, with a reason — material, maintenance, quality, help — and a
note) → ``taken`` (assigned to whoever took it) → ``resolved`` (with a cause), or ``cancelled``
by the caller while still open. Every step is timed (server clock) and written to an audit
table that is only ever appended to. Resolving may link the call to a stop of a machine: the
stop's reason (from the reason tree) is then filled in through `PlantStore.assign_reason`, so
the OEE's loss Pareto shows it.

MTTA (mean time to acknowledge) is the mean of taken − raised over calls taken in a range;
MTTR (mean time to resolve) the mean of resolved − raised over calls resolved. Both are per line
and reason (`andon_stats`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from indunet.errors import DataError
from indunet.plant.config import PlantConfig
from indunet.plant.delivery import ANDON_REASONS
from indunet.store.base import Historian
from indunet.store.tables import SqlPort
from indunet.uns import check_segment

__all__ = ["ANDON_REASONS", "AndonStore", "CallNotFound", "andon_stats"]

_DDL = """
CREATE TABLE IF NOT EXISTS plant_andon_calls (
  enterprise TEXT NOT NULL,
  call_id TEXT NOT NULL,
  site TEXT NOT NULL,
  line TEXT NOT NULL,
  machine TEXT,
  reason TEXT NOT NULL,
  note TEXT NOT NULL,
  state TEXT NOT NULL,
  raised_by TEXT NOT NULL,
  raised_ms BIGINT NOT NULL,
  taken_by TEXT,
  taken_ms BIGINT,
  resolved_by TEXT,
  resolved_ms BIGINT,
  cause TEXT,
  stop_machine TEXT,
  stop_start_ms BIGINT,
  stop_reason TEXT,
  PRIMARY KEY (enterprise, call_id)
);
CREATE TABLE IF NOT EXISTS plant_andon_audit (
  enterprise TEXT NOT NULL,
  call_id TEXT NOT NULL,
  ts_ms BIGINT NOT NULL,
  action TEXT NOT NULL,
  by_name TEXT NOT NULL,
  detail TEXT NOT NULL
)
"""
MAX_NOTE = 1000
STATES = ("open", "taken", "resolved", "cancelled")
_COLS = (
    "call_id, site, line, machine, reason, note, state, raised_by, raised_ms, taken_by, taken_ms, "
    "resolved_by, resolved_ms, cause, stop_machine, stop_start_ms, stop_reason"
)


class CallNotFound(DataError):
    """No Andon call with that id in this enterprise."""


def _text(value: str | None, name: str, *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise DataError(f"{name} is required")
    if len(text) > MAX_NOTE:
        raise DataError(f"{name} is at most {MAX_NOTE} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise DataError(f"{name} contains control characters")
    return text


def _where(plant: PlantConfig, target: str) -> tuple[str, str, str | None]:
    """Return (site, line, machine) of a call's target: a line ``s/a/l`` or a machine path."""
    parts = target.strip().strip("/").split("/")
    if len(parts) not in (3, 4):
        raise DataError(f"target {target!r} is not a line site/area/line or a machine path")
    for p in parts:
        check_segment(p, "target segment")
    path = "/".join(parts)
    if len(parts) == 4:
        m = plant.machine(path)
        return m.site, m.line, m.id
    if not plant.line_machines(path):
        raise DataError(f"line {path!r} has no configured machine")
    return parts[0], path, None


class AndonStore:
    """Andon calls and their audit trail in the historian's database."""

    def __init__(self, historian: Historian, *, on_change: Callable[[dict], None] | None = None):
        self.historian = historian
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)
        self.on_change = on_change

    def _audit(self, enterprise: str, call_id: str, ts: int, action: str, by: str, detail: str):
        self.sql.execute(
            "INSERT INTO plant_andon_audit VALUES ($1, $2, $3, $4, $5, $6)",
            [enterprise, call_id, ts, action, by, detail],
        )

    def _changed(self, call: dict[str, Any]) -> dict[str, Any]:
        if self.on_change is not None:
            self.on_change(call)
        return call

    def raise_call(
        self,
        plant: PlantConfig,
        enterprise: str,
        *,
        target: str,
        reason: str,
        note: str | None,
        by: str,
        now_ms: int,
    ) -> dict[str, Any]:
        """Open a call for a line or machine; return it."""
        if reason not in ANDON_REASONS:
            raise DataError(f"reason {reason!r} is not one of {', '.join(ANDON_REASONS)}")
        site, line, machine = _where(plant, target)
        note = _text(note, "note")
        call_id = uuid.uuid4().hex[:16]
        with self.sql.transaction():
            self.sql.execute(
                "INSERT INTO plant_andon_calls VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, "
                "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
                [enterprise, call_id, site, line, machine, reason, note, by, now_ms],
            )
            self._audit(enterprise, call_id, now_ms, "raised", by, f"{reason}: {note}")
        return self._changed(self.call(enterprise, call_id))

    def call(self, enterprise: str, call_id: str) -> dict[str, Any]:
        """Return one call, or raise `CallNotFound`."""
        rows = self.sql.rows(
            f"SELECT {_COLS} FROM plant_andon_calls WHERE enterprise = $1 AND call_id = $2",
            [enterprise, call_id],
        )
        if not rows:
            raise CallNotFound(f"no Andon call {call_id!r}")
        return _with_times(rows[0])

    def take(self, enterprise: str, call_id: str, *, by: str, now_ms: int) -> dict[str, Any]:
        """Assign an open call to ``by`` (409-worthy `DataError` when it is not open)."""
        with self.sql.transaction():
            call = self.call(enterprise, call_id)
            if call["state"] != "open":
                raise DataError(f"call {call_id} is {call['state']}; only an open call is taken")
            self.sql.execute(
                "UPDATE plant_andon_calls SET state = 'taken', taken_by = $3, taken_ms = $4 "
                "WHERE enterprise = $1 AND call_id = $2",
                [enterprise, call_id, by, max(now_ms, call["raised_ms"])],
            )
            self._audit(enterprise, call_id, now_ms, "taken", by, "")
        return self._changed(self.call(enterprise, call_id))

    def resolve(
        self,
        enterprise: str,
        call_id: str,
        *,
        by: str,
        cause: str,
        now_ms: int,
        stop: tuple[str, int, str] | None = None,
        assign: Callable[[str, int, str], Any] | None = None,
    ) -> dict[str, Any]:
        """Resolve a taken (or open) call with a cause; optionally fill in a stop's reason.

        ``stop`` is (machine, stop segment start ms, reason code); ``assign`` stores that reason
        (`PlantStore.assign_reason` bound to the enterprise) and raises when it does not fit.
        """
        cause = _text(cause, "cause", required=True)
        call = self.call(enterprise, call_id)
        if call["state"] not in ("open", "taken"):
            raise DataError(f"call {call_id} is {call['state']}; it cannot be resolved again")
        if stop is not None:
            if assign is None:
                raise DataError("linking a stop needs the plant store")
            machine, start_ms, reason = stop
            if call["machine"] is not None and machine != call["machine"]:
                raise DataError(f"the call is for {call['machine']}, not for {machine}")
            if not (machine == call["line"] or machine.startswith(call["line"] + "/")):
                raise DataError(f"machine {machine} is not on line {call['line']}")
            assign(machine, start_ms, reason)  # raises when the segment or reason is wrong
        taken_by = call["taken_by"] or by
        taken_ms = call["taken_ms"] if call["taken_ms"] is not None else now_ms
        with self.sql.transaction():
            self.sql.execute(
                "UPDATE plant_andon_calls SET state = 'resolved', taken_by = $3, taken_ms = $4, "
                "resolved_by = $5, resolved_ms = $6, cause = $7, stop_machine = $8, "
                "stop_start_ms = $9, stop_reason = $10 WHERE enterprise = $1 AND call_id = $2",
                [
                    enterprise, call_id, taken_by, taken_ms, by, max(now_ms, taken_ms), cause,
                    stop[0] if stop else None, stop[1] if stop else None, stop[2] if stop else None,
                ],
            )  # fmt: skip
            if call["taken_ms"] is None:
                self._audit(enterprise, call_id, now_ms, "taken", by, "taken when resolved")
            detail = cause + (f" (stop {stop[0]} at {stop[1]}: {stop[2]})" if stop else "")
            self._audit(enterprise, call_id, now_ms, "resolved", by, detail)
        return self._changed(self.call(enterprise, call_id))

    def cancel(self, enterprise: str, call_id: str, *, by: str, now_ms: int) -> dict[str, Any]:
        """Withdraw an open call (raised by mistake)."""
        with self.sql.transaction():
            call = self.call(enterprise, call_id)
            if call["state"] != "open":
                raise DataError(
                    f"call {call_id} is {call['state']}; only an open call is cancelled"
                )
            self.sql.execute(
                "UPDATE plant_andon_calls SET state = 'cancelled', resolved_by = $3, "
                "resolved_ms = $4 WHERE enterprise = $1 AND call_id = $2",
                [enterprise, call_id, by, now_ms],
            )
            self._audit(enterprise, call_id, now_ms, "cancelled", by, "")
        return self._changed(self.call(enterprise, call_id))

    def calls(
        self,
        enterprise: str,
        *,
        scope: str = "",
        state: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Return calls on lines under ``scope`` raised in a range (or open ones), newest first."""
        if state is not None and state not in (*STATES, "active"):
            raise DataError(f"state {state!r} is not one of {', '.join(STATES)} or active")
        prefix = scope.strip().strip("/")
        rows = self.sql.rows(
            f"SELECT {_COLS} FROM plant_andon_calls WHERE enterprise = $1 "
            "AND (CAST($2 AS TEXT) = '' OR line = $2 OR starts_with(line, $3) "
            "OR machine = $2) AND raised_ms >= $4 AND raised_ms < $5 "
            "AND (CAST($6 AS TEXT) = '' OR state = $6 OR ($6 = 'active' AND "
            "state IN ('open', 'taken'))) ORDER BY raised_ms DESC, call_id LIMIT $7",
            [
                enterprise, prefix, prefix + "/",
                -(2**62) if start_ms is None else int(start_ms),
                2**62 if end_ms is None else int(end_ms),
                state or "", int(limit),
            ],
        )  # fmt: skip
        return [_with_times(r) for r in rows]

    def audit(self, enterprise: str, call_id: str) -> list[dict[str, Any]]:
        """Return a call's audit trail, oldest first."""
        self.call(enterprise, call_id)
        return self.sql.rows(
            "SELECT ts_ms, action, by_name AS by, detail FROM plant_andon_audit "
            "WHERE enterprise = $1 AND call_id = $2 ORDER BY ts_ms, action",
            [enterprise, call_id],
        )


def _with_times(row: dict[str, Any]) -> dict[str, Any]:
    raised, taken, resolved = row["raised_ms"], row["taken_ms"], row["resolved_ms"]
    row["tta_ms"] = None if taken is None else taken - raised
    row["ttr_ms"] = None if resolved is None or row["state"] != "resolved" else resolved - raised
    return row


def andon_stats(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Return counts and MTTA/MTTR per (line, reason) and in total, from a list of calls."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        groups[(c["line"], c["reason"])].append(c)

    def figures(items: list[dict[str, Any]]) -> dict[str, Any]:
        tta = [c["tta_ms"] for c in items if c["tta_ms"] is not None]
        ttr = [c["ttr_ms"] for c in items if c["ttr_ms"] is not None]
        return {
            "calls": len(items),
            "open": sum(1 for c in items if c["state"] in ("open", "taken")),
            "taken": len(tta),
            "resolved": len(ttr),
            "mtta_ms": sum(tta) / len(tta) if tta else None,
            "mttr_ms": sum(ttr) / len(ttr) if ttr else None,
        }

    stats = [
        {"line": line, "reason": reason, **figures(items)}
        for (line, reason), items in sorted(groups.items())
    ]
    return {**figures(calls), "stats": stats}
