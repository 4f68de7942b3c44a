"""Keep requests, offers, lanes and solved runs per enterprise beside the historian."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from indunet.docking.dispatch import Action, DispatchStatus, next_status
from indunet.docking.problem import Lane, Offer, Problem, Request, load_problem
from indunet.docking.solver import Solution
from indunet.errors import DataError
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
);
CREATE TABLE IF NOT EXISTS dock_dispatch (
  enterprise TEXT NOT NULL, order_id TEXT NOT NULL, run_id TEXT NOT NULL, offer TEXT NOT NULL,
  request TEXT NOT NULL, item TEXT NOT NULL, quantity DOUBLE PRECISION NOT NULL,
  supplier TEXT, requester TEXT, status TEXT NOT NULL, ship_day BIGINT, arrive_day BIGINT,
  lat DOUBLE PRECISION, lon DOUBLE PRECISION, updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, order_id)
);
CREATE TABLE IF NOT EXISTS dock_audit (
  enterprise TEXT NOT NULL, event_id TEXT NOT NULL, order_id TEXT NOT NULL, at_ms BIGINT NOT NULL,
  by_user TEXT NOT NULL, side TEXT NOT NULL, action TEXT NOT NULL, from_status TEXT,
  to_status TEXT NOT NULL, detail TEXT, PRIMARY KEY (enterprise, event_id)
)
"""
_MODELS: dict[str, type] = {"request": Request, "offer": Offer, "lane": Lane}


class DockingStore:
    """Requests, offers and lanes as validated JSON documents; runs as their solutions."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
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

    def runs(self, enterprise: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Return the newest kept runs (id, objective, when), newest first."""
        return self.sql.rows(
            "SELECT run_id, objective, created_ms FROM dock_runs WHERE enterprise = $1 "
            f"ORDER BY created_ms DESC, run_id LIMIT {int(limit)}",
            [enterprise],
        )

    # ------------------------------------------------------------------ dispatch
    _ORDER_COLS = (
        "order_id, run_id, offer, request, item, quantity, supplier, requester, status, "
        "ship_day, arrive_day, lat, lon, updated_ms"
    )

    def propose(self, enterprise: str, run_id: str, *, by: str, now_ms: int) -> list[dict]:
        """Turn a kept run's allocations into proposed dispatch orders (once per run)."""
        existing = self.dispatch_orders(enterprise, run_id=run_id)
        if existing:
            return existing
        run = self.run(enterprise, run_id)
        if run is None:
            raise DataError(f"no run {run_id!r}")
        offers = {o["id"]: o for o in self.entries(enterprise, "offer")}
        requests = {r["id"]: r for r in self.entries(enterprise, "request")}
        with self.sql.transaction():
            for n, a in enumerate(run["allocations"]):
                order_id = f"{run_id}-{n + 1}"
                offer, request = offers.get(a["offer"], {}), requests.get(a["request"], {})
                self.sql.execute(
                    f"INSERT INTO dock_dispatch (enterprise, {self._ORDER_COLS}) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    [
                        enterprise,
                        order_id,
                        run_id,
                        a["offer"],
                        a["request"],
                        request.get("item") or offer.get("item") or "",
                        float(a["quantity"]),
                        offer.get("enterprise"),
                        request.get("enterprise"),
                        DispatchStatus.proposed.value,
                        a.get("ship_day"),
                        a.get("arrive_day"),
                        None,
                        None,
                        now_ms,
                    ],
                )
                self._audit(
                    enterprise, order_id, by, "operator", "propose", None, "proposed", now_ms
                )
        return self.dispatch_orders(enterprise, run_id=run_id)

    def dock(
        self,
        enterprise: str,
        request_id: str,
        offer_id: str,
        *,
        by: str,
        now_ms: int,
        quantity: float | None = None,
    ) -> dict[str, Any]:
        """Dock one request with one offer by hand (run ``manual``): a proposed dispatch order.

        ``quantity`` defaults to what the request needs, capped by the offer's stock (or a day
        of its rate); the order then goes through the same confirm → ship → deliver workflow.
        """
        if not by or not by.strip():
            raise DataError("'by' must name who docks")
        requests = {r["id"]: r for r in self.entries(enterprise, "request")}
        offers = {o["id"]: o for o in self.entries(enterprise, "offer")}
        if request_id not in requests:
            raise LookupError(f"no request {request_id!r}")
        if offer_id not in offers:
            raise LookupError(f"no offer {offer_id!r}")
        request, offer = requests[request_id], offers[offer_id]
        if request["item"] != offer["item"]:
            raise DataError(
                f"offer {offer_id} ({offer['item']}) cannot serve request {request_id} "
                f"({request['item']})"
            )
        most = offer.get("quantity") or offer.get("rate_per_day") or request["quantity"]
        amount = min(request["quantity"], most) if quantity is None else quantity
        if not amount > 0:
            raise DataError(f"quantity must be greater than 0 (got {amount})")
        order_id = f"manual-{uuid.uuid4().hex[:10]}"
        with self.sql.transaction():
            self.sql.execute(
                f"INSERT INTO dock_dispatch (enterprise, {self._ORDER_COLS}) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                [
                    enterprise,
                    order_id,
                    "manual",
                    offer_id,
                    request_id,
                    request["item"],
                    float(amount),
                    offer.get("enterprise"),
                    request.get("enterprise"),
                    DispatchStatus.proposed.value,
                    None,
                    None,
                    None,
                    None,
                    now_ms,
                ],
            )
            self._audit(enterprise, order_id, by, "operator", "dock", None, "proposed", now_ms)
        return self.sql.rows(
            f"SELECT {self._ORDER_COLS} FROM dock_dispatch WHERE enterprise = $1 AND order_id = $2",
            [enterprise, order_id],
        )[0]

    def dispatch_orders(self, enterprise: str, *, run_id: str | None = None) -> list[dict]:
        """Return dispatch orders, optionally of one run."""
        sql = f"SELECT {self._ORDER_COLS} FROM dock_dispatch WHERE enterprise = $1"
        params: list[Any] = [enterprise]
        if run_id is not None:
            sql += " AND run_id = $2"
            params.append(run_id)
        return self.sql.rows(sql + " ORDER BY order_id", params)

    def act(
        self,
        enterprise: str,
        order_id: str,
        action: str,
        *,
        side: str,
        by: str,
        now_ms: int,
        reason: str | None = None,
        warehouse: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
    ) -> dict[str, Any]:
        """Apply a side's action to an order, audit it, and feed deliveries into business data."""
        if not by or not by.strip():
            raise DataError("'by' must name who acts")
        try:
            act = Action(action)
        except ValueError:
            raise DataError(f"unknown action {action!r}; use {', '.join(Action)}") from None
        rows = self.sql.rows(
            f"SELECT {self._ORDER_COLS} FROM dock_dispatch WHERE enterprise = $1 AND order_id = $2",
            [enterprise, order_id],
        )
        if not rows:
            raise LookupError(f"no dispatch order {order_id!r}")
        order = rows[0]
        if act is Action.cancel and not (reason and reason.strip()):
            raise DataError("a cancellation needs a reason")
        new = next_status(DispatchStatus(order["status"]), act, side).status
        detail = {k: v for k, v in (("reason", reason), ("warehouse", warehouse)) if v}
        with self.sql.transaction():
            self.sql.execute(
                "UPDATE dock_dispatch SET status = $1, updated_ms = $2, lat = COALESCE($3, lat), "
                "lon = COALESCE($4, lon) WHERE enterprise = $5 AND order_id = $6",
                [new.value, now_ms, lat, lon, enterprise, order_id],
            )
            self._audit(
                enterprise,
                order_id,
                by,
                side,
                act.value,
                order["status"],
                new.value,
                now_ms,
                json.dumps(detail) if detail else None,
            )
        if act in {Action.ship, Action.deliver}:
            self._feed_business(enterprise, order, act, now_ms, warehouse, lat, lon)
        return {**order, "status": new.value, "updated_ms": now_ms}

    def audit(self, enterprise: str, order_id: str) -> list[dict]:
        """Return every change of an order, oldest first."""
        return self.sql.rows(
            "SELECT at_ms, by_user, side, action, from_status, to_status, detail FROM dock_audit "
            "WHERE enterprise = $1 AND order_id = $2 ORDER BY at_ms, event_id",
            [enterprise, order_id],
        )

    def _audit(
        self,
        enterprise: str,
        order_id: str,
        by: str,
        side: str,
        action: str,
        before: str | None,
        after: str,
        now_ms: int,
        detail: str | None = None,
    ) -> None:
        self.sql.execute(
            "INSERT INTO dock_audit VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                enterprise,
                uuid.uuid4().hex,
                order_id,
                now_ms,
                by,
                side,
                action,
                before,
                after,
                detail,
            ],
        )

    def _feed_business(
        self,
        enterprise: str,
        order: dict,
        act: Action,
        now_ms: int,
        warehouse: str | None,
        lat: float | None,
        lon: float | None,
    ) -> None:
        """Track the shipment, and on delivery add the quantity to the requester's stock."""
        from indunet.business.store import BusinessStore

        business = BusinessStore(self.historian)
        owner = order["requester"] or enterprise
        trip = {
            "shipment_id": order["order_id"],
            "direction": "inbound",
            "order_id": order["order_id"],
            "origin": order["offer"],
            "destination": order["request"],
            "lat": lat,
            "lon": lon,
        }
        if act is Action.ship:
            trip |= {"departed_at": now_ms, "status": "on_road"}
        else:
            known = [
                s
                for s in business.records(owner, "shipments")
                if s["shipment_id"] == trip["shipment_id"]
            ]
            trip |= {
                "departed_at": known[0]["departed_at"] if known else None,
                "arrived_at": now_ms,
                "status": "arrived",
            }
            place = warehouse or "docking"
            stock = [
                r
                for r in business.current_inventory(owner)
                if r["item"] == order["item"] and r["warehouse"] == place
            ]
            before = stock[0]["quantity"] if stock else 0.0
            business.load(
                owner,
                "inventory",
                [
                    {
                        "item": order["item"],
                        "warehouse": place,
                        "quantity": before + order["quantity"],
                        "as_of": now_ms,
                    }
                ],
                source=f"dock:{order['order_id']}",
                now_ms=now_ms,
            )
        business.load(
            owner,
            "shipments",
            [{k: v for k, v in trip.items() if v is not None}],
            source=f"dock:{order['order_id']}",
            now_ms=now_ms,
        )
