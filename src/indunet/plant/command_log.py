"""The platform's record of writes to machines: the edge agents' audit records, kept per tenant.

An edge agent publishes one audit record per command on
``indunet/audit/v1/{enterprise}/{site}/{area}/{line}/{machine}`` (JSON: ts, command_id, user,
role, device, machine, tag, old, new, result, detail). The MQTT ingest stores them here in the
same commit as the points it acknowledges; a redelivered record replaces itself (key: enterprise,
command id, tag, ts), so at-least-once delivery keeps one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from indunet.errors import DataError
from indunet.store.base import Historian
from indunet.store.tables import SqlPort
from indunet.uns import check_segment

__all__ = ["AUDIT_ROOT", "CommandLog", "CommandResult", "parse_audit_message"]

AUDIT_ROOT = "indunet/audit/v1"
RESULTS = ("written", "rejected", "failed")
_TEXT_LIMIT = 1000
_COLUMNS = (
    "enterprise", "command_id", "tag", "ts", "machine", "device", "user_name", "role",
    "old", "new", "result", "detail",
)  # fmt: skip
_DDL = """
CREATE TABLE IF NOT EXISTS command_audit (
    enterprise TEXT NOT NULL, command_id TEXT NOT NULL, tag TEXT NOT NULL, ts BIGINT NOT NULL,
    machine TEXT NOT NULL, device TEXT, user_name TEXT NOT NULL, role TEXT, old TEXT, new TEXT,
    result TEXT NOT NULL, detail TEXT,
    PRIMARY KEY (enterprise, command_id, tag, ts)
)
"""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One write to a machine as its edge agent reported it."""

    enterprise: str
    command_id: str
    tag: str
    ts: int
    machine: str
    device: str
    user_name: str
    role: str
    old: str | None
    new: str | None
    result: str
    detail: str


def _text(record: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise DataError(f"audit record: {key!r} must be {'non-empty ' if required else ''}text")
    return value[:_TEXT_LIMIT]


def parse_audit_message(topic: str, payload: bytes) -> CommandResult:
    """Return the audit record of one message, or raise DataError saying what is wrong."""
    parts = topic.split("/")
    if parts[:3] != AUDIT_ROOT.split("/") or len(parts) != 8:
        raise DataError(f"audit topic must be {AUDIT_ROOT}/ENTERPRISE/SITE/AREA/LINE/MACHINE")
    enterprise = check_segment(parts[3], "enterprise")
    machine = "/".join(check_segment(p, "machine path segment") for p in parts[4:])
    try:
        record = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"audit record is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise DataError("audit record must be a JSON object")
    ts = record.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < 2**62:
        raise DataError("audit record: 'ts' must be epoch milliseconds")
    result = _text(record, "result")
    if result not in RESULTS:
        raise DataError(f"audit record: 'result' must be one of {', '.join(RESULTS)}")
    if record.get("machine") not in (None, "", machine):
        raise DataError(f"audit record names machine {record['machine']!r} on {machine!r}'s topic")
    return CommandResult(
        enterprise=enterprise,
        command_id=str(_text(record, "command_id")),
        tag=str(_text(record, "tag")),
        ts=ts,
        machine=machine,
        device=_text(record, "device", required=False) or "",
        user_name=str(_text(record, "user")),
        role=_text(record, "role", required=False) or "",
        old=_text(record, "old", required=False),
        new=_text(record, "new", required=False),
        result=result,
        detail=_text(record, "detail", required=False) or "",
    )


class CommandLog:
    """Stored results of writes to machines, per enterprise."""

    def __init__(self, historian: Historian) -> None:
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    def add(self, results: list[CommandResult]) -> int:
        """Store results (a repeated one replaces itself); return how many were given."""
        if not results:
            return 0
        schema = pa.schema([(c, pa.int64() if c == "ts" else pa.string()) for c in _COLUMNS])
        rows = pa.table({c: [getattr(r, c) for r in results] for c in _COLUMNS}, schema=schema)
        return self.sql.upsert("command_audit", rows, ("enterprise", "command_id", "tag", "ts"))

    def recent(
        self, enterprise: str, machine: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Return the newest results of an enterprise (of one machine), newest first."""
        where, params = "enterprise = $1", [enterprise]
        if machine:
            where += " AND machine = $2"
            params.append(machine)
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM command_audit WHERE {where} "
            f"ORDER BY ts DESC, command_id, tag LIMIT {int(limit)}"
        )
        return self.sql.rows(sql, params)
