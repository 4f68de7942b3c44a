"""Keep requests, offers, lanes and solved runs per enterprise beside the historian."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from indunet.docking.problem import Lane, Offer, Problem, Request, load_problem
from indunet.docking.solver import Solution
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = ["DockingStore"]

_DDL = """
CREATE TABLE IF NOT EXISTS dock_entries (
  enterprise TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, item TEXT,
  doc TEXT NOT NULL, updated_ms BIGINT NOT NULL, PRIMARY KEY (enterprise, kind, id)
);
CREATE TABLE IF NOT EXISTS dock_runs (
  enterprise TEXT NOT NULL, run_id TEXT NOT NULL, objective TEXT NOT NULL,
  created_ms BIGINT NOT NULL, result TEXT NOT NULL, PRIMARY KEY (enterprise, run_id)
)
"""
_MODELS: dict[str, type] = {"request": Request, "offer": Offer, "lane": Lane}


class DockingStore:
    """Requests, offers and lanes as validated JSON documents; runs as their solutions."""

    def __init__(self, historian: Historian) -> None:
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    def save(self, enterprise: str, kind: str, docs: list[Any], *, now_ms: int) -> dict[str, Any]:
        """Validate and upsert entries of ``kind`` (request, offer, lane); report refused ones."""
        model = _MODELS[kind]
        rows: dict[str, list] = {"enterprise": [], "kind": [], "id": [], "item": [], "doc": []}
        refused = []
        for n, doc in enumerate(docs):
            try:
                entry = model.model_validate(doc)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(p) for p in first["loc"]) or "(entry)"
                refused.append({"index": n, "field": field, "reason": first["msg"]})
                continue
            key = f"{entry.source}->{entry.target}" if kind == "lane" else entry.id
            rows["enterprise"].append(enterprise)
            rows["kind"].append(kind)
            rows["id"].append(key)
            rows["item"].append(getattr(entry, "item", None))
            rows["doc"].append(entry.model_dump_json(by_alias=True, exclude_none=True))
        table = pa.table({**rows, "updated_ms": [now_ms] * len(rows["id"])})
        table = table.cast(
            pa.schema(
                [(c, pa.int64() if c == "updated_ms" else pa.string()) for c in table.column_names]
            )
        )
        stored = self.sql.upsert("dock_entries", table, ("enterprise", "kind", "id"))
        return {"kind": kind, "stored": stored, "refused": refused}

    def delete(self, enterprise: str, kind: str, entry_id: str) -> bool:
        """Remove one entry; return whether it existed."""
        found = self.sql.rows(
            "SELECT id FROM dock_entries WHERE enterprise = $1 AND kind = $2 AND id = $3",
            [enterprise, kind, entry_id],
        )
        self.sql.execute(
            "DELETE FROM dock_entries WHERE enterprise = $1 AND kind = $2 AND id = $3",
            [enterprise, kind, entry_id],
        )
        return bool(found)

    def entries(self, enterprise: str, kind: str) -> list[dict[str, Any]]:
        """Return the stored entries of ``kind`` as documents."""
        rows = self.sql.rows(
            "SELECT doc FROM dock_entries WHERE enterprise = $1 AND kind = $2 ORDER BY id",
            [enterprise, kind],
        )
        return [json.loads(r["doc"]) for r in rows]

    def problem(self, enterprise: str) -> Problem:
        """Assemble the stored requests, offers and lanes into a problem (validated)."""
        return load_problem(
            {
                "requests": self.entries(enterprise, "request"),
                "offers": self.entries(enterprise, "offer"),
                "lanes": self.entries(enterprise, "lane"),
            }
        )

    def save_run(self, enterprise: str, solution: Solution, *, now_ms: int) -> str:
        """Keep a solved run; return its id."""
        run_id = uuid.uuid4().hex[:12]
        self.sql.execute(
            "INSERT INTO dock_runs VALUES ($1, $2, $3, $4, $5)",
            [enterprise, run_id, solution.objective, now_ms, json.dumps(solution.as_dict())],
        )
        return run_id

    def run(self, enterprise: str, run_id: str) -> dict[str, Any] | None:
        """Return a kept run, or None."""
        rows = self.sql.rows(
            "SELECT run_id, objective, created_ms, result FROM dock_runs "
            "WHERE enterprise = $1 AND run_id = $2",
            [enterprise, run_id],
        )
        if not rows:
            return None
        row = rows[0]
        return {
            **{k: row[k] for k in ("run_id", "objective", "created_ms")},
            **json.loads(row["result"]),
        }
