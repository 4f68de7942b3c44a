"""What a shift leaves behind: the report archive and the operators' handover notes.

Both live in the historian's database beside the plant tables (one backup holds everything):

* ``plant_reports``: one rendered report per (enterprise, scope, shift label). Making the report of
  a shift again (late data, a re-run) replaces it; its id stays the same.
* ``plant_handover``: notes per (enterprise, line, shift label), written by operators during a
  shift and shown to the next one and in the report.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from indunet.errors import DataError
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = ["HandoverNotes", "ReportArchive", "report_id"]

_DDL = """
CREATE TABLE IF NOT EXISTS plant_reports (
  enterprise TEXT NOT NULL,
  report_id TEXT NOT NULL,
  scope TEXT NOT NULL,
  label TEXT NOT NULL,
  kind TEXT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  doc TEXT NOT NULL,
  html TEXT NOT NULL,
  delivered TEXT NOT NULL,
  PRIMARY KEY (enterprise, report_id)
);
CREATE TABLE IF NOT EXISTS plant_handover (
  enterprise TEXT NOT NULL,
  note_id TEXT NOT NULL,
  line TEXT NOT NULL,
  shift TEXT NOT NULL,
  author TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  text TEXT NOT NULL,
  PRIMARY KEY (enterprise, note_id)
)
"""
MAX_NOTE_CHARS = 4000


def report_id(scope: str, label: str) -> str:
    """Return the stable id of the report of ``scope`` for the shift ``label``."""
    return hashlib.sha256(f"{scope}\n{label}".encode()).hexdigest()[:20]


class ReportArchive:
    """Rendered shift reports, newest first."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    def put(
        self, doc: dict[str, Any], html: str, *, now_ms: int, delivered: dict | None = None
    ) -> str:
        """Store (or replace) a report and return its id."""
        rid = report_id(doc["scope"], doc["label"])
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM plant_reports WHERE enterprise = $1 AND report_id = $2",
                [doc["enterprise"], rid],
            )
            self.sql.execute(
                "INSERT INTO plant_reports VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                [
                    doc["enterprise"], rid, doc["scope"], doc["label"], doc["kind"],
                    int(doc["start_ms"]), int(doc["end_ms"]), now_ms,
                    json.dumps(doc, allow_nan=False, default=str), html,
                    json.dumps(delivered or {}),
                ],
            )  # fmt: skip
        return rid

    def mark_delivered(self, enterprise: str, rid: str, delivered: dict[str, Any]) -> None:
        """Record where a report went (e-mail, webhooks) and what failed."""
        self.sql.execute(
            "UPDATE plant_reports SET delivered = $3 WHERE enterprise = $1 AND report_id = $2",
            [enterprise, rid, json.dumps(delivered)],
        )

    def has(self, enterprise: str, scope: str, label: str) -> bool:
        """Tell whether the report of a scope and shift is archived."""
        return self.get(enterprise, report_id(scope, label)) is not None

    def list(
        self, enterprise: str, *, scope: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Return archived reports' headlines (no bodies), newest shift first."""
        rows = self.sql.rows(
            "SELECT report_id, scope, label, kind, start_ms, end_ms, created_ms, doc, delivered "
            "FROM plant_reports WHERE enterprise = $1 AND (CAST($2 AS TEXT) = '' OR scope = $2) "
            "ORDER BY end_ms DESC, scope LIMIT $3",
            [enterprise, (scope or "").strip("/"), int(limit)],
        )
        out = []
        for r in rows:
            doc = json.loads(r.pop("doc"))
            r["delivered"] = json.loads(r["delivered"])
            r["oee"] = doc["oee"]["oee"]
            r["good"] = doc["oee"]["good"]
            out.append(r)
        return out

    def get(self, enterprise: str, rid: str) -> dict[str, Any] | None:
        """Return one archived report: its document, its HTML and where it went; or None."""
        rows = self.sql.rows(
            "SELECT doc, html, delivered, created_ms FROM plant_reports "
            "WHERE enterprise = $1 AND report_id = $2",
            [enterprise, rid],
        )
        if not rows:
            return None
        r = rows[0]
        return {
            "doc": json.loads(r["doc"]),
            "html": r["html"],
            "delivered": json.loads(r["delivered"]),
            "created_ms": r["created_ms"],
        }


class HandoverNotes:
    """Operators' notes per line and shift."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    def add(
        self, enterprise: str, line: str, shift: str, author: str, text: str, *, now_ms: int
    ) -> dict[str, Any]:
        """Store a note; refuse empty or overlong text."""
        text = text.strip()
        if not text:
            raise DataError("a handover note needs text")
        if len(text) > MAX_NOTE_CHARS:
            raise DataError(f"a handover note is at most {MAX_NOTE_CHARS} characters")
        row = {
            "note_id": uuid.uuid4().hex[:16],
            "line": line.strip("/"),
            "shift": shift,
            "author": author,
            "created_ms": now_ms,
            "text": text,
        }
        self.sql.execute(
            "INSERT INTO plant_handover VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [enterprise, *row.values()],
        )
        return row

    def notes(
        self,
        enterprise: str,
        scope: str,
        *,
        shift: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Return notes of lines under ``scope``, of one shift or written in a time range."""
        prefix = scope.strip("/").strip("*")
        rows = self.sql.rows(
            "SELECT note_id, line, shift, author, created_ms, text FROM plant_handover "
            "WHERE enterprise = $1 "
            "AND (CAST($2 AS TEXT) = '' OR line = $2 OR starts_with(line, $3)) "
            "AND (CAST($4 AS TEXT) = '' OR shift = $4) AND created_ms >= $5 AND created_ms < $6 "
            "ORDER BY created_ms, note_id LIMIT $7",
            [
                enterprise,
                prefix,
                prefix + "/",
                shift or "",
                -(2**62) if start_ms is None else int(start_ms),
                2**62 if end_ms is None else int(end_ms),
                int(limit),
            ],
        )
        return rows
