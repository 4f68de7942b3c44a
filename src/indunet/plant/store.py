"""Plant tables beside the historian's points: machine configs, state timelines, stop reasons.

Four tables, on the historian's own connection (`SqlPort`, DuckDB or PostgreSQL):

* ``plant_machines``: machine configs added or changed through the API, as JSON documents
  validated with `MachineConfig`. The effective config is ``indunet.toml`` ∪ stored; a stored
  document wins over the file for the same machine id.
* ``plant_sites``: site configs (calendar, grid factor, OEE target) set through the API, per
  enterprise, so a tenant other than the server's gets its shifts; a stored site wins over the
  file's table of the same name.
* ``plant_states``: closed state segments keyed ``(enterprise, machine, start_ms)``.
* ``plant_reasons``: operators' stop-reason assignments. They outlive a recompute: whenever
  segments are written, the assignments of that range are applied again.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from indunet.errors import DataError
from indunet.plant.config import MachineConfig, PlantConfig, SiteConfig
from indunet.plant.oee import StopAssignment, apply_reasons
from indunet.plant.states import STATE_NAMES, MachineState, StateTimeline
from indunet.store.base import Historian
from indunet.store.tables import SqlPort
from indunet.uns import check_segment

M = TypeVar("M", bound=BaseModel)

__all__ = ["PlantStore", "validate_machine_doc", "validate_site_doc"]

_DDL = """
CREATE TABLE IF NOT EXISTS plant_machines (
  enterprise TEXT NOT NULL,
  machine TEXT NOT NULL,
  doc TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, machine)
);
CREATE TABLE IF NOT EXISTS plant_sites (
  enterprise TEXT NOT NULL,
  site TEXT NOT NULL,
  doc TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, site)
);
CREATE TABLE IF NOT EXISTS plant_states (
  enterprise TEXT NOT NULL,
  machine TEXT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT,
  PRIMARY KEY (enterprise, machine, start_ms)
);
CREATE TABLE IF NOT EXISTS plant_reasons (
  enterprise TEXT NOT NULL,
  machine TEXT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  reason TEXT NOT NULL,
  assigned_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, machine, start_ms)
)
"""
_CODES = {name: i for i, name in enumerate(STATE_NAMES)}
_PREFIX_SQL = (
    "(CAST($2 AS TEXT) = '' OR machine = $2 OR starts_with(machine, CAST($2 AS TEXT) || '/'))"
)


def _validated(model: type[M], doc: Any, what: str) -> M:
    """Validate a config document with ``model``; `DataError` names the field that is wrong."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise DataError(f"{what} config field {where}: {first['msg']}") from exc


def validate_site_doc(doc: Any) -> SiteConfig:
    """Validate a site config document (``[plant.sites.<site>]``); `DataError` names the field."""
    if not isinstance(doc, dict):
        raise DataError("site config must be a JSON object")
    return _validated(SiteConfig, doc, "site")


def validate_machine_doc(doc: Any, path: str | None = None) -> MachineConfig:
    """Validate a machine config document; `DataError` names the field that is wrong."""
    if not isinstance(doc, dict):
        raise DataError("machine config must be a JSON object")
    doc = dict(doc)
    if path is not None:
        doc.setdefault("id", path)
    machine = _validated(MachineConfig, doc, "machine")
    if path is not None and machine.id != path.strip("/"):
        raise DataError(f"machine config field id: {machine.id!r} does not match the path {path!r}")
    if machine.power_tag is None and machine.meter_tag is None:
        raise DataError(
            "machine config: missing field power_tag or meter_tag (the tag the machine's state "
            "and energy come from)"
        )
    if machine.power_unit == "A" and machine.volts is None:
        raise DataError("machine config: missing field volts (power_unit is A)")
    return machine


class PlantStore:
    """Machine configs, state segments and stop reasons in the historian's database."""

    def __init__(self, historian: Historian, config: PlantConfig, owner: str | None = None) -> None:
        """``config`` is the file's ``[plant]``; with ``owner`` it belongs to that enterprise
        only (every other tenant starts from an empty plant and sees nothing of it)."""
        self.historian = historian
        self.config = config
        self.owner = owner
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    # ------------------------------------------------------------------ machine configs
    def put_machine(
        self, enterprise: str, doc: Any, *, now_ms: int, path: str | None = None
    ) -> MachineConfig:
        """Validate and store a machine config document (it replaces the file's entry)."""
        machine = validate_machine_doc(doc, path)
        stored = {m.id: m for m in self._stored_machines(enterprise)}
        stored[machine.id] = machine
        self._merge(stored, enterprise)  # the whole plant must still validate (site tables, ids)
        self._put_doc("plant_machines", "machine", enterprise, machine.id, machine, now_ms)
        return machine

    def _stored_machines(self, enterprise: str) -> list[MachineConfig]:
        stored = self._stored_docs("plant_machines", "machine", MachineConfig, enterprise)
        return list(stored.values())

    def _put_doc(
        self, table: str, key: str, enterprise: str, name: str, config: Any, now_ms: int
    ) -> None:
        """Store a validated config document as JSON under (enterprise, name)."""
        self.sql.upsert(
            table,
            pa.table(
                {
                    "enterprise": [enterprise],
                    key: [name],
                    "doc": [config.model_dump_json()],
                    "updated_ms": pa.array([now_ms], pa.int64()),
                }
            ),
            ("enterprise", key),
        )

    def _stored_docs(self, table: str, key: str, model: type[M], enterprise: str) -> dict[str, M]:
        """Return an enterprise's stored config documents by name, validated again."""
        rows = self.sql.rows(
            f"SELECT {key} AS name, doc FROM {table} WHERE enterprise = $1 ORDER BY {key}",
            [enterprise],
        )
        out = {}
        for r in rows:
            try:
                out[r["name"]] = model.model_validate(json.loads(r["doc"]))
            except (ValidationError, ValueError) as exc:
                raise DataError(
                    f"stored config of {key} {r['name']} is invalid: {exc}; PUT it again"
                ) from exc
        return out

    # ------------------------------------------------------------------ site configs
    def put_site(self, enterprise: str, site: str, doc: Any, *, now_ms: int) -> SiteConfig:
        """Validate and store a site's calendar, grid factor and OEE target (it replaces the
        file's ``[plant.sites.<site>]`` for this enterprise)."""
        site = check_segment(site, "site")
        config = validate_site_doc(doc)
        stored = self._stored_sites(enterprise)
        stored[site] = config
        self._merge({m.id: m for m in self._stored_machines(enterprise)}, enterprise, stored)
        self._put_doc("plant_sites", "site", enterprise, site, config, now_ms)
        return config

    def delete_site(self, enterprise: str, site: str) -> bool:
        """Forget a site stored through the API (the file's table, if any, applies again)."""
        site = check_segment(site, "site")
        found = self.sql.rows(
            "SELECT site FROM plant_sites WHERE enterprise = $1 AND site = $2", [enterprise, site]
        )
        if found:
            self.sql.execute(
                "DELETE FROM plant_sites WHERE enterprise = $1 AND site = $2", [enterprise, site]
            )
        return bool(found)

    def _stored_sites(self, enterprise: str) -> dict[str, SiteConfig]:
        return self._stored_docs("plant_sites", "site", SiteConfig, enterprise)

    def site_sources(self, enterprise: str) -> dict[str, str]:
        """Return where each declared site's config comes from: ``file`` or ``api``."""
        out = {name: "file" for name in self.file_config(enterprise).sites}
        out.update({name: "api" for name in self._stored_sites(enterprise)})
        return out

    def file_config(self, enterprise: str) -> PlantConfig:
        """Return the file's plant config if ``enterprise`` owns it, else an empty one."""
        if self.owner is None or enterprise == self.owner:
            return self.config
        return PlantConfig()

    def _merge(
        self,
        stored: dict[str, MachineConfig],
        enterprise: str,
        sites: dict[str, SiteConfig] | None = None,
    ) -> PlantConfig:
        base = self.file_config(enterprise)
        machines = [stored.pop(m.id, m) for m in base.machines]
        machines.extend(stored.values())
        if sites is None:
            sites = self._stored_sites(enterprise)
        merged = dict(base.sites)
        if sites:  # sites set through the API: the others keep UTC and no shifts, as undeclared
            merged.update(sites)
            for m in machines:
                merged.setdefault(m.site, SiteConfig())
        try:
            return PlantConfig(machines=machines, sites=merged, reasons=base.reasons)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise DataError(f"plant config: {first['msg']}") from exc

    def effective(self, enterprise: str) -> PlantConfig:
        """Return the plant config in effect: the file's machines, replaced or extended by API."""
        return self._merge({m.id: m for m in self._stored_machines(enterprise)}, enterprise)

    def machine_sources(self, enterprise: str) -> dict[str, str]:
        """Return where each machine's config comes from: ``file`` or ``api``."""
        out = {m.id: "file" for m in self.file_config(enterprise).machines}
        out.update({m.id: "api" for m in self._stored_machines(enterprise)})
        return out

    # ------------------------------------------------------------------ state segments
    def save_segments(self, enterprise: str, machine: str, timeline: StateTimeline) -> int:
        """Store closed segments; they replace whatever was stored over their span.

        So a stored timeline can never hold overlapping rows, whoever wrote before (a watcher
        resuming after a restart, a recompute, a CLI repair). Stored stop reasons of the range
        are applied.
        """
        if not len(timeline):
            return 0
        return self.replace_segments(
            enterprise, machine, int(timeline.start_ms[0]), int(timeline.end_ms[-1]), timeline
        )

    def replace_segments(
        self, enterprise: str, machine: str, start_ms: int, end_ms: int, timeline: StateTimeline
    ) -> int:
        """Replace the stored timeline inside ``[start_ms, end_ms)`` with ``timeline``.

        Segments crossing the range edges keep their part outside the range.
        """
        if end_ms <= start_ms:
            raise DataError(f"end {end_ms} is not after start {start_ms}")
        timeline = timeline.clip(start_ms, end_ms)
        old = self._segments(enterprise, machine, start_ms, end_ms)
        keep = [
            old.clip(int(old.start_ms[0]), start_ms) if len(old) else old,
            old.clip(end_ms, int(old.end_ms[-1])) if len(old) else old,
        ]
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM plant_states WHERE enterprise = $1 AND machine = $2 "
                "AND end_ms > $3 AND start_ms < $4",
                [enterprise, machine, start_ms, end_ms],
            )
            n = 0
            for part in (keep[0], timeline, keep[1]):
                if len(part):
                    part = self._with_reasons(enterprise, machine, part)
                    n += self.sql.upsert("plant_states", _rows(enterprise, machine, part), _KEY)
        return n

    def _segments(self, enterprise: str, machine: str, start_ms: int, end_ms: int) -> StateTimeline:
        table = self.sql.query(
            "SELECT start_ms, end_ms, state, reason FROM plant_states WHERE enterprise = $1 "
            "AND machine = $2 AND end_ms > $3 AND start_ms < $4 ORDER BY start_ms",
            [enterprise, machine, start_ms, end_ms],
        )
        return _from_table(table)

    def timeline(self, enterprise: str, machine: str, start_ms: int, end_ms: int) -> StateTimeline:
        """Return the stored segments overlapping ``[start_ms, end_ms)``, clipped to it."""
        return self._segments(enterprise, machine, start_ms, end_ms).clip(start_ms, end_ms).merged()

    def timelines(
        self, enterprise: str, prefix: str, start_ms: int, end_ms: int
    ) -> dict[str, StateTimeline]:
        """Return the stored timelines of every machine under ``prefix``, in one query."""
        table = self.sql.query(
            "SELECT machine, start_ms, end_ms, state, reason FROM plant_states WHERE "
            f"enterprise = $1 AND {_PREFIX_SQL} AND end_ms > $3 AND start_ms < $4 "
            "ORDER BY machine, start_ms",
            [enterprise, prefix.strip("/"), start_ms, end_ms],
        )
        if not table.num_rows:
            return {}
        machines = table.column("machine").to_numpy(zero_copy_only=False)
        cut = np.flatnonzero(machines[1:] != machines[:-1]) + 1
        bounds = np.concatenate([[0], cut, [len(machines)]])
        out = {}
        for a, b in itertools.pairwise(bounds):
            part = table.slice(int(a), int(b - a))
            out[str(machines[a])] = _from_table(part).clip(start_ms, end_ms).merged()
        return out

    def last_segment(self, enterprise: str, machine: str) -> tuple[int, int, str] | None:
        """Return the newest stored segment (start_ms, end_ms, state), or None."""
        rows = self.sql.rows(
            "SELECT start_ms, end_ms, state FROM plant_states WHERE enterprise = $1 AND "
            "machine = $2 ORDER BY start_ms DESC LIMIT 1",
            [enterprise, machine],
        )
        if not rows:
            return None
        r = rows[0]
        return int(r["start_ms"]), int(r["end_ms"]), str(r["state"])

    # ------------------------------------------------------------------ stop reasons
    def assign_reason(
        self, enterprise: str, machine: str, start_ms: int, reason: str, *, now_ms: int
    ) -> dict[str, Any]:
        """Give the stop segment starting at ``start_ms`` a reason from the reason tree."""
        tree = self.file_config(enterprise).reasons
        if reason not in tree:
            known = ", ".join(r.code for r in tree.reasons) or "none configured"
            raise DataError(f"reason {reason!r} is not in the reason tree (known: {known})")
        rows = self.sql.rows(
            "SELECT start_ms, end_ms, state FROM plant_states WHERE enterprise = $1 AND "
            "machine = $2 AND start_ms = $3",
            [enterprise, machine, start_ms],
        )
        if not rows:
            raise DataError(
                f"machine {machine} has no stored state segment starting at {start_ms}; "
                "list them with GET /states"
            )
        seg = rows[0]
        if seg["state"] == "running":
            raise DataError(
                f"machine {machine} segment at {start_ms} is running; only stops take a reason"
            )
        with self.sql.transaction():
            self.sql.execute(
                "DELETE FROM plant_reasons WHERE enterprise = $1 AND machine = $2 "
                "AND end_ms > $3 AND start_ms < $4",
                [enterprise, machine, start_ms, seg["end_ms"]],
            )
            self.sql.execute(
                "INSERT INTO plant_reasons VALUES ($1, $2, $3, $4, $5, $6)",
                [enterprise, machine, start_ms, seg["end_ms"], reason, now_ms],
            )
            self.sql.execute(
                "UPDATE plant_states SET reason = $4 WHERE enterprise = $1 AND machine = $2 "
                "AND start_ms = $3",
                [enterprise, machine, start_ms, reason],
            )
        return {
            "machine": machine,
            "start_ms": int(seg["start_ms"]),
            "end_ms": int(seg["end_ms"]),
            "state": seg["state"],
            "reason": reason,
        }

    def assignments(
        self, enterprise: str, machine: str, start_ms: int, end_ms: int
    ) -> list[StopAssignment]:
        """Return the stored reason assignments overlapping a range."""
        rows = self.sql.rows(
            "SELECT start_ms, end_ms, reason FROM plant_reasons WHERE enterprise = $1 AND "
            "machine = $2 AND end_ms > $3 AND start_ms < $4 ORDER BY start_ms",
            [enterprise, machine, start_ms, end_ms],
        )
        return [StopAssignment(int(r["start_ms"]), int(r["end_ms"]), r["reason"]) for r in rows]

    def _with_reasons(self, enterprise: str, machine: str, tl: StateTimeline) -> StateTimeline:
        found = self.assignments(enterprise, machine, int(tl.start_ms[0]), int(tl.end_ms[-1]))
        tree = self.file_config(enterprise).reasons
        known = [a for a in found if a.reason in tree]
        return apply_reasons(tl, known, tree) if known else tl


_KEY = ("enterprise", "machine", "start_ms")


def _rows(enterprise: str, machine: str, tl: StateTimeline) -> pa.Table:
    n = len(tl)
    return pa.table(
        {
            "enterprise": pa.array([enterprise] * n, pa.string()),
            "machine": pa.array([machine] * n, pa.string()),
            "start_ms": pa.array(tl.start_ms, pa.int64()),
            "end_ms": pa.array(tl.end_ms, pa.int64()),
            "state": pa.array([STATE_NAMES[s] for s in tl.state], pa.string()),
            "reason": pa.array(list(tl.reasons()), pa.string()),
        }
    )


def _from_table(table: pa.Table) -> StateTimeline:
    if not table.num_rows:
        return StateTimeline.empty()
    names = table.column("state").to_numpy(zero_copy_only=False)
    uniq, inverse = np.unique(names.astype(str), return_inverse=True)
    unknown = [u for u in uniq if u not in _CODES]
    if unknown:
        raise DataError(f"plant_states holds an unknown state {unknown[0]!r}")
    codes = np.array([_CODES[u] for u in uniq], np.int8)[inverse]
    reason = table.column("reason").to_numpy(zero_copy_only=False).astype(object)
    has_reason = any(r is not None for r in reason)
    return StateTimeline(
        table.column("start_ms").to_numpy(),
        table.column("end_ms").to_numpy(),
        codes,
        reason if has_reason else None,
    )


def state_code(name: str) -> MachineState:
    """Return the state of a stored name."""
    return MachineState(_CODES[name])
