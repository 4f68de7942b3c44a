"""Keep networks and scenario results per enterprise (tenant) in the historian's database.

This is the package's only I/O module: JSON documents in two tables via `SqlPort`, so the
embedded DuckDB file and PostgreSQL both work.
"""

from __future__ import annotations

import json
from typing import Any

from indunet.chain.network import Network, parse_network
from indunet.errors import DataError
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = ["ChainNotFound", "ChainStore"]


class ChainNotFound(DataError):
    """No network or scenario by that name for the enterprise."""


_DDL = """
CREATE TABLE IF NOT EXISTS chain_networks (
  enterprise TEXT NOT NULL,
  name TEXT NOT NULL,
  doc TEXT NOT NULL,
  sites BIGINT NOT NULL,
  products BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, name)
);
CREATE TABLE IF NOT EXISTS chain_scenarios (
  enterprise TEXT NOT NULL,
  network TEXT NOT NULL,
  name TEXT NOT NULL,
  scenario TEXT NOT NULL,
  result TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, network, name)
);
CREATE TABLE IF NOT EXISTS chain_resilience (
  enterprise TEXT NOT NULL,
  network TEXT NOT NULL,
  result TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, network)
)
"""


class ChainStore:
    """Networks and scenario results beside the historian's points."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    def save_network(self, enterprise: str, name: str, network: Network, *, now_ms: int) -> None:
        """Store (or replace) a validated network under ``name``."""
        doc = network.model_dump_json(exclude_none=True)
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM chain_networks WHERE enterprise = $1 AND name = $2", [enterprise, name]
            )
            self.sql.execute(
                "INSERT INTO chain_networks (enterprise, name, doc, sites, products, updated_ms) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                [enterprise, name, doc, len(network.nodes), len(network.products), now_ms],
            )
            self.sql.execute(  # the stored TTS/TTR table was of the old version
                "DELETE FROM chain_resilience WHERE enterprise = $1 AND network = $2",
                [enterprise, name],
            )

    def networks(self, enterprise: str) -> list[dict[str, Any]]:
        """List the enterprise's networks (name, sizes, update time)."""
        return self.sql.rows(
            "SELECT name, sites, products, updated_ms FROM chain_networks "
            "WHERE enterprise = $1 ORDER BY name",
            [enterprise],
        )

    def network(self, enterprise: str, name: str) -> Network:
        """Return a stored network; `DataError` when there is none by that name."""
        rows = self.sql.rows(
            "SELECT doc FROM chain_networks WHERE enterprise = $1 AND name = $2", [enterprise, name]
        )
        if not rows:
            raise ChainNotFound(f"no network named {name!r} for enterprise {enterprise!r}")
        return parse_network(json.loads(rows[0]["doc"]))

    def save_scenario(
        self, enterprise: str, network: str, result: dict[str, Any], *, now_ms: int
    ) -> str:
        """Store a scenario result under its name (or its label); return the name."""
        name = result["scenario"].get("name") or result["label"]
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM chain_scenarios WHERE enterprise = $1 AND network = $2 AND name = $3",
                [enterprise, network, name],
            )
            self.sql.execute(
                "INSERT INTO chain_scenarios (enterprise, network, name, scenario, result, "
                "updated_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    enterprise,
                    network,
                    name,
                    json.dumps(result["scenario"]),
                    json.dumps(result),
                    now_ms,
                ],
            )
        return name

    def scenarios(self, enterprise: str, network: str) -> list[dict[str, Any]]:
        """List saved scenarios of a network with their headline figures."""
        rows = self.sql.rows(
            "SELECT name, result, updated_ms FROM chain_scenarios "
            "WHERE enterprise = $1 AND network = $2 ORDER BY name",
            [enterprise, network],
        )
        out = []
        for row in rows:
            result = json.loads(row["result"])
            out.append(
                {
                    "name": row["name"],
                    "label": result["label"],
                    "products_hit": result["products_hit"],
                    "lost_demand": result["lost_demand"],
                    "lost_margin": result["lost_margin"],
                    "updated_ms": row["updated_ms"],
                }
            )
        return out

    def scenario(self, enterprise: str, network: str, name: str) -> dict[str, Any]:
        """Return one saved scenario result; `DataError` when unknown."""
        rows = self.sql.rows(
            "SELECT result FROM chain_scenarios WHERE enterprise = $1 AND network = $2 "
            "AND name = $3",
            [enterprise, network, name],
        )
        if not rows:
            raise ChainNotFound(f"no scenario named {name!r} for network {network!r}")
        return json.loads(rows[0]["result"])

    def save_resilience(
        self, enterprise: str, network: str, table: dict[str, Any], *, now_ms: int
    ) -> None:
        """Keep the TTS/TTR table of the stored network (dropped when the network changes)."""
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM chain_resilience WHERE enterprise = $1 AND network = $2",
                [enterprise, network],
            )
            self.sql.execute(
                "INSERT INTO chain_resilience (enterprise, network, result, updated_ms) "
                "VALUES ($1, $2, $3, $4)",
                [enterprise, network, json.dumps(table), now_ms],
            )

    def resilience(self, enterprise: str, network: str) -> dict[str, Any] | None:
        """Return the kept TTS/TTR table of the network as stored now, or None."""
        rows = self.sql.rows(
            "SELECT result FROM chain_resilience WHERE enterprise = $1 AND network = $2",
            [enterprise, network],
        )
        return json.loads(rows[0]["result"]) if rows else None
