"""Run the alarm engine in the platform: read new points, evaluate, store, notify, publish.

`AlarmService` is owned by the serve/demo process (no globals). Every ``interval_s`` it reads the
points written since the last round (one batched query over ``points`` + ``tags``), feeds the
pure `AlarmEngine`, calls ``tick(now)``, stores lifecycle events in ``plant_alarm_events`` and the
engine snapshot in ``plant_alarm_state`` (one transaction, so a restart never raises an alarm
twice), hands events to the webhook outbox and to the live event stream. `AlarmStore` holds the
tables (DuckDB or PostgreSQL, through `SqlPort`) and is used alone when no service runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indunet.condition.monitors import (
    RULE_PREFIX,
    MonitorBank,
    MonitorConfig,
    MonitorError,
    load_monitors,
    monitor_tags,
)
from indunet.errors import DataError
from indunet.model import Quality
from indunet.plant.alarms import (
    Alarm,
    AlarmActionError,
    AlarmEngine,
    AlarmEvent,
    AlarmRule,
    AlarmRuleError,
    EventKind,
    StateChange,
    StateDurationRule,
    derived_samples,
    load_rules,
)
from indunet.plant.notify import WebhookSender
from indunet.plant.rounds import Rounds
from indunet.store.tables import SqlPort

if TYPE_CHECKING:
    from indunet.config import Settings
    from indunet.store.base import Historian

__all__ = [
    "DATA_QUALITY",
    "DATA_QUALITY_RULE",
    "AlarmNotFound",
    "AlarmService",
    "AlarmStore",
    "data_quality_rule",
    "data_quality_tags",
    "event_row",
]

log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS plant_alarm_rules (
  enterprise TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  doc TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, rule_id)
);
CREATE TABLE IF NOT EXISTS plant_alarm_events (
  enterprise TEXT NOT NULL,
  seq BIGINT NOT NULL,
  ts_ms BIGINT NOT NULL,
  kind TEXT NOT NULL,
  alarm_id TEXT NOT NULL,
  rule_id TEXT NOT NULL,
  source TEXT NOT NULL,
  state TEXT NOT NULL,
  priority TEXT NOT NULL,
  value DOUBLE PRECISION,
  message TEXT,
  by_name TEXT,
  comment TEXT,
  suppressed BIGINT NOT NULL,
  recorded_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, seq)
);
CREATE TABLE IF NOT EXISTS plant_monitors (
  enterprise TEXT NOT NULL,
  monitor_id TEXT NOT NULL,
  doc TEXT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (enterprise, monitor_id)
);
CREATE TABLE IF NOT EXISTS plant_alarm_state (
  enterprise TEXT NOT NULL PRIMARY KEY,
  snapshot TEXT NOT NULL,
  updated_ms BIGINT NOT NULL
)
"""
_EVENT_SCHEMA = pa.schema(
    [
        ("enterprise", pa.string()),
        ("seq", pa.int64()),
        ("ts_ms", pa.int64()),
        ("kind", pa.string()),
        ("alarm_id", pa.string()),
        ("rule_id", pa.string()),
        ("source", pa.string()),
        ("state", pa.string()),
        ("priority", pa.string()),
        ("value", pa.float64()),
        ("message", pa.string()),
        ("by_name", pa.string()),
        ("comment", pa.string()),
        ("suppressed", pa.int64()),
        ("recorded_ms", pa.int64()),
    ]
)
_EVENT_COLS = ", ".join(_EVENT_SCHEMA.names[1:])


class AlarmNotFound(DataError):
    """The alarm id names no rule, or a tag the rule does not watch (HTTP 404)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def event_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return a stored event row in the shape of `AlarmEvent.to_dict` plus its ``seq``."""
    out = {k: v for k, v in row.items() if k not in {"enterprise", "by_name", "recorded_ms"}}
    out["by"] = row.get("by_name")
    return out


class AlarmStore:
    """Alarm rules added through the API, lifecycle events and the engine snapshot."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
        self.sql = SqlPort(historian)
        self.sql.script(_DDL)

    # rules -------------------------------------------------------------------------------
    def rule_docs(self, enterprise: str) -> list[dict[str, Any]]:
        """Return the rule documents stored through the API, by id."""
        rows = self.sql.rows(
            "SELECT doc FROM plant_alarm_rules WHERE enterprise = $1 ORDER BY rule_id",
            [enterprise],
        )
        return [json.loads(r["doc"]) for r in rows]

    def put_rules(self, enterprise: str, rules: Sequence[AlarmRule], now_ms: int) -> None:
        """Store (or replace) rules by id."""
        table = pa.table(
            {
                "enterprise": [enterprise] * len(rules),
                "rule_id": [r.id for r in rules],
                "doc": [r.model_dump_json(exclude_defaults=False) for r in rules],
                "updated_ms": pa.array([now_ms] * len(rules), pa.int64()),
            }
        )
        self.sql.upsert("plant_alarm_rules", table, ["enterprise", "rule_id"])

    def delete_rule(self, enterprise: str, rule_id: str) -> bool:
        """Delete a stored rule; return False when there was none."""
        found = self.sql.rows(
            "SELECT rule_id FROM plant_alarm_rules WHERE enterprise = $1 AND rule_id = $2",
            [enterprise, rule_id],
        )
        if found:
            self.sql.execute(
                "DELETE FROM plant_alarm_rules WHERE enterprise = $1 AND rule_id = $2",
                [enterprise, rule_id],
            )
        return bool(found)

    # events ------------------------------------------------------------------------------
    # monitors ----------------------------------------------------------------------------
    def monitor_docs(self, enterprise: str) -> list[dict[str, Any]]:
        """Return the monitor documents stored through the API, by id."""
        rows = self.sql.rows(
            "SELECT doc FROM plant_monitors WHERE enterprise = $1 ORDER BY monitor_id",
            [enterprise],
        )
        return [json.loads(r["doc"]) for r in rows]

    def put_monitors(self, enterprise: str, monitors: Sequence[MonitorConfig], now_ms: int) -> None:
        """Store (or replace) monitors by id."""
        table = pa.table(
            {
                "enterprise": [enterprise] * len(monitors),
                "monitor_id": [m.id for m in monitors],
                "doc": [m.model_dump_json(exclude_none=True) for m in monitors],
                "updated_ms": pa.array([now_ms] * len(monitors), pa.int64()),
            }
        )
        self.sql.upsert("plant_monitors", table, ["enterprise", "monitor_id"])

    def delete_monitor(self, enterprise: str, monitor_id: str) -> bool:
        """Delete a stored monitor; return whether it existed."""
        found = self.sql.rows(
            "SELECT monitor_id FROM plant_monitors WHERE enterprise = $1 AND monitor_id = $2",
            [enterprise, monitor_id],
        )
        if found:
            self.sql.execute(
                "DELETE FROM plant_monitors WHERE enterprise = $1 AND monitor_id = $2",
                [enterprise, monitor_id],
            )
        return bool(found)

    def last_seq(self, enterprise: str) -> int:
        """Return the sequence number of the newest stored event (0 when none)."""
        rows = self.sql.rows(
            "SELECT max(seq) AS seq FROM plant_alarm_events WHERE enterprise = $1", [enterprise]
        )
        return int(rows[0]["seq"] or 0) if rows else 0

    def _event_table(
        self, enterprise: str, first_seq: int, events: Sequence[AlarmEvent], now_ms: int
    ) -> pa.Table:
        dicts = [e.to_dict() for e in events]
        cols: dict[str, list[Any]] = {n: [] for n in _EVENT_SCHEMA.names}
        for i, d in enumerate(dicts):
            cols["enterprise"].append(enterprise)
            cols["seq"].append(first_seq + i)
            cols["recorded_ms"].append(now_ms)
            cols["by_name"].append(d["by"])
            for name in _EVENT_SCHEMA.names:
                if name in d and name != "by":
                    cols[name].append(d[name])
        return pa.table(cols, schema=_EVENT_SCHEMA)

    def save(
        self,
        enterprise: str,
        events: Sequence[AlarmEvent],
        snapshot: dict[str, Any] | None,
        *,
        first_seq: int,
        now_ms: int,
    ) -> list[dict[str, Any]]:
        """Store events (numbered from ``first_seq``) and the snapshot in one transaction.

        Return the stored event rows (with ``seq``) for the event stream and webhooks.
        """
        table = self._event_table(enterprise, first_seq, events, now_ms)
        with self.sql.transaction():
            if table.num_rows:
                self.sql.upsert("plant_alarm_events", table, ["enterprise", "seq"])
            if snapshot is not None:
                state = pa.table(
                    {
                        "enterprise": [enterprise],
                        "snapshot": [json.dumps(snapshot, allow_nan=False, default=_json_default)],
                        "updated_ms": pa.array([now_ms], pa.int64()),
                    }
                )
                self.sql.upsert("plant_alarm_state", state, ["enterprise"])
        return [event_row(r) for r in table.to_pylist()]

    def events(
        self,
        enterprise: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        after_seq: int | None = None,
        alarm_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Return stored events in order, by event time range and/or after a sequence number."""
        sql = (
            f"SELECT seq, {_EVENT_COLS} FROM plant_alarm_events WHERE enterprise = $1 "
            "AND ts_ms >= $2 AND ts_ms < $3 AND seq > $4 "
            "AND (CAST($5 AS TEXT) = '' OR alarm_id = $5) ORDER BY seq LIMIT $6"
        )
        rows = self.sql.rows(
            sql,
            [
                enterprise,
                -(2**62) if start_ms is None else int(start_ms),
                2**62 if end_ms is None else int(end_ms),
                -1 if after_seq is None else int(after_seq),
                alarm_id or "",
                int(limit),
            ],
        )
        return [event_row(r) for r in rows]

    # snapshot ----------------------------------------------------------------------------
    def snapshot(self, enterprise: str) -> dict[str, Any] | None:
        """Return the stored service snapshot (engine, read cursors, webhook outbox) or None."""
        rows = self.sql.rows(
            "SELECT snapshot FROM plant_alarm_state WHERE enterprise = $1", [enterprise]
        )
        return json.loads(rows[0]["snapshot"]) if rows else None


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the alarm snapshot")


DERIVED_OEE = "derived/oee/"


def derived_oee_tags(plant: Any) -> dict[str, str]:
    """Return the derived OEE tags rules may watch, each mapped to its scope.

    ``derived/oee/<machine id>``, ``derived/oee/<site>/<area>/<line>`` and ``derived/oee/<site>``:
    the OEE of that scope over the last ``DERIVED_WINDOW_MS`` (a shift).
    """
    scopes: set[str] = set()
    for m in plant.machines:
        scopes |= {m.id, m.line, m.site}
    return {f"{DERIVED_OEE}{scope}": scope for scope in scopes}


DERIVED_WINDOW_MS = 8 * 3_600_000
DERIVED_EVERY_MS = 60_000

DATA_QUALITY = "derived/data_quality/"
#: the built-in rule raising a data-quality alarm for a machine with implausible OEE figures
DATA_QUALITY_RULE = "data_quality"


def data_quality_tags(plant: Any) -> dict[str, str]:
    """Return ``derived/data_quality/<machine id>`` of every machine with a part counter.

    Its value, once a minute, is how many of the machine's OEE figures over the last
    ``DERIVED_WINDOW_MS`` cannot be true (`indunet.plant.oee.plausibility`): 0 when plausible.
    """
    return {f"{DATA_QUALITY}{m.id}": m.id for m in plant.machines if m.total_counter is not None}


def data_quality_rule() -> AlarmRule:
    """Return the built-in data-quality rule: an alarm per machine with implausible OEE."""
    return load_rules(
        [
            {
                "id": DATA_QUALITY_RULE,
                "kind": "high",
                "pattern": f"{DATA_QUALITY}+/+/+/+",
                "limit": 0.5,
                "priority": "medium",
                "message": (
                    "data quality: this machine's OEE figures cannot be true (a figure outside "
                    "0-100 %): its ideal cycle time is set too slow (propose one with indunet "
                    "plant learn-cycle), parts are counted twice, parts were counted without "
                    "running time, or scrap exceeds produced; the cause is in the warnings of "
                    "GET /api/v1/oee for the machine"
                ),
            }
        ]
    )[0]


def rul_tags(plant: Any) -> list[str]:
    """Return ``derived/rul/<asset class>/<machine id>`` of every machine of ``[[plant.rul]]``."""
    return [c.tag(m) for c in getattr(plant, "rul", ()) for m in c.machines]


def rul_rules(plant: Any) -> list[AlarmRule]:
    """Return the built-in RUL rules: per asset class, RUL below its horizon (docs/condition.md).

    The RUL service (`indunet.condition.rul_service`) feeds the estimates with `evaluate`.
    """
    classes = getattr(plant, "rul", ())
    return load_rules(
        [
            {
                "id": c.rule_id(),
                "kind": "low",
                "pattern": f"derived/rul/{c.asset_class}/#",
                "limit": c.horizon,
                "priority": c.priority.value,
                "message": (
                    f"remaining useful life below {c.horizon:g} cycles ({c.asset_class}): plan "
                    "the maintenance; the estimate and its band are on the machine page and at "
                    "GET /api/v1/condition/rul"
                ),
            }
            for c in classes
        ]
    )


class AlarmService(Rounds):
    """Evaluate alarm rules on the historian's new points, once per ``interval_s``, in a thread.

    Rules are the config rules (``settings.plant.alarms``) plus those stored through the API.
    Webhook targets come from ``settings.plant.webhooks``. ``publish`` receives every stored
    event row (the app's event bus). Operator actions (`acknowledge`, `shelve`, …) may come from
    any thread; the engine is guarded by one lock.
    """

    thread_name = "indunet-alarms"
    work = "alarm evaluation"

    def __init__(
        self,
        historian: Historian,
        settings: Settings,
        *,
        extra_rules: Iterable[Any] = (),
        known_tags: Iterable[str] = (),
        publish: Callable[[list[dict[str, Any]]], None] | None = None,
        interval_s: float = 1.0,
        lookback_s: float = 60.0,
        late_window_s: float = 300.0,
        max_rows: int = 500_000,
        snapshot_every_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.historian = historian
        self.settings = settings
        self.enterprise = settings.enterprise
        self.store = AlarmStore(historian)
        self.publish = publish
        self.interval_s = interval_s
        self.lookback_ms = int(lookback_s * 1000)
        self.late_window_ms = int(late_window_s * 1000)
        self.max_rows = max_rows
        self.snapshot_every_ms = int(snapshot_every_s * 1000)
        self._clock = clock
        self._extra_rules = list(extra_rules)
        self._extra_tags = set(known_tags)
        self._lock = threading.RLock()
        self._states: deque[StateChange] = deque(maxlen=100_000)
        self.state_feed_dropped = 0
        self.state_feed_collapsed = 0
        self._last_tick_ms = -(2**62)
        self._watcher_attached = False
        self._watcher: Any = None
        self._derived_due_ms = -(2**62)
        self._plant_store: Any = None
        self.derived_errors = 0
        self._init_rounds()
        self._last_saved_ms = 0
        self._unsaved: list[AlarmEvent] = []
        self.sender = WebhookSender(settings.plant.webhooks)
        self.rule_sources: dict[str, str] = {}
        self.monitor_sources: dict[str, str] = {}
        self._tag_names: set[str] = set()
        self.bank = MonitorBank(self._load_monitors())
        rules = self._load_all_rules()
        self.engine = AlarmEngine(rules)
        self._cursor_ms: int | None = None
        self._marks: dict[str, int] = {}
        self._seq = self.store.last_seq(self.enterprise)
        self.skipped_on_restore: list[str] = []
        stored = self.store.snapshot(self.enterprise)
        if stored is not None:
            self._restore(stored)

    # rules -------------------------------------------------------------------------------
    def known_tags(self) -> set[str]:
        """Return the tags rules may name: the historian's tags, machines' state tags, extras."""
        tags = {t.path for t in self.historian.tags(self.enterprise, limit=10_000_000)}
        self._tag_names = set(tags)
        tags |= monitor_tags(self.bank.monitors, tags)
        tags |= {f"{m.id}/state" for m in self.settings.plant.machines}
        tags |= set(derived_oee_tags(self.settings.plant))
        tags |= set(data_quality_tags(self.settings.plant))
        tags |= set(rul_tags(self.settings.plant))
        return tags | self._extra_tags

    def _load_all_rules(self, api_docs: list[dict[str, Any]] | None = None) -> list[AlarmRule]:
        config = list(self.settings.plant.alarms) + list(self._extra_rules)
        docs = self.store.rule_docs(self.enterprise) if api_docs is None else api_docs
        rules = load_rules([*config, *docs], known_tags=self.known_tags())
        config_ids = {r.id for r in rules[: len(config)]}
        self.rule_sources = {r.id: "config" if r.id in config_ids else "api" for r in rules}
        if data_quality_tags(self.settings.plant) and DATA_QUALITY_RULE not in self.rule_sources:
            rules.append(data_quality_rule())  # built in; a rule of that id replaces it
            self.rule_sources[DATA_QUALITY_RULE] = "builtin"
        for rule in rul_rules(self.settings.plant):  # RUL below each asset class's horizon
            if rule.id not in self.rule_sources:
                rules.append(rule)
                self.rule_sources[rule.id] = "builtin"
        for m in self.bank.monitors:  # each monitor raises through its own rule
            if m.rule_id not in self.rule_sources:
                rules.append(m.rule())
                self.rule_sources[m.rule_id] = "monitor"
        return rules

    # monitors ----------------------------------------------------------------------------
    def _load_monitors(self, api_docs: list[dict[str, Any]] | None = None) -> list[MonitorConfig]:
        config = list(self.settings.plant.monitors)
        docs = self.store.monitor_docs(self.enterprise) if api_docs is None else api_docs
        monitors = load_monitors([*config, *docs])
        config_ids = {m.id for m in monitors[: len(config)]}
        self.monitor_sources = {m.id: "config" if m.id in config_ids else "api" for m in monitors}
        return monitors

    def monitors(self) -> list[MonitorConfig]:
        """Return the monitors in force."""
        with self._lock:
            return list(self.bank.monitors)

    def add_monitors(self, docs: Sequence[Any]) -> list[MonitorConfig]:
        """Validate, store and apply monitors (by id; the id of a config monitor is refused)."""
        if not isinstance(docs, list) or not docs:
            raise MonitorError(["monitors must be a monitor object or a non-empty list of them"])
        new = load_monitors(docs)
        with self._lock:
            clash = [m.id for m in new if self.monitor_sources.get(m.id) == "config"]
            if clash:
                raise MonitorError(
                    [
                        f"monitor {mid!r} field 'id': the id belongs to a monitor in indunet.toml"
                        for mid in clash
                    ]
                )
            stored = {d["id"]: d for d in self.store.monitor_docs(self.enterprise)}
            for m in new:
                stored[m.id] = json.loads(m.model_dump_json(exclude_none=True))
            monitors = self._load_monitors(list(stored.values()))
            self._apply_monitors(monitors)  # checks the rules before storing
            self.store.put_monitors(self.enterprise, new, _now_ms())
        return new

    def delete_monitor(self, monitor_id: str) -> None:
        """Delete a monitor added through the API (config monitors are refused)."""
        with self._lock:
            if self.monitor_sources.get(monitor_id) == "config":
                raise DataError(
                    f"monitor {monitor_id!r} is defined in indunet.toml; remove it there"
                )
            if not self.store.delete_monitor(self.enterprise, monitor_id):
                raise AlarmNotFound(f"monitor {monitor_id!r} does not exist")
            self._apply_monitors(self._load_monitors())

    def _apply_monitors(self, monitors: list[MonitorConfig]) -> None:
        old = self.bank
        self.bank = MonitorBank(monitors)
        self.bank.restore(old.snapshot())  # the other monitors' active anomalies stay held
        try:
            rules = self._load_all_rules()
        except Exception:
            self.bank = old
            raise
        self._swap(rules)

    def _history(self, tags: list[str], start_ms: int, end_ms: int) -> dict[str, tuple]:
        """Read history for the monitors: tag -> (ts, values, texts)."""
        if end_ms <= start_ms:
            return {}
        known = [t for t in tags if t.count("/") >= 4]
        try:
            tables = self.historian.series_many(self.enterprise, known, start_ms, end_ms)
        except DataError:
            return {}
        out = {}
        for tag, table in tables.items():
            ts = table.column("ts").to_numpy()
            values = table.column("value").to_numpy(zero_copy_only=False).astype(float)
            q = table.column("quality").to_numpy(zero_copy_only=False)
            values = np.where((q == Quality.BAD) | (q == Quality.STALE), np.nan, values)
            out[tag] = (ts, values, table.column("text").to_pylist())
        return out

    def scan_monitor(self, monitor_id: str, start_ms: int, end_ms: int) -> dict[str, Any]:
        """Score a monitor over history ``[start_ms, end_ms)`` (on demand, no alarms)."""
        from indunet.condition.monitors import scan_history

        with self._lock:
            found = [m for m in self.bank.monitors if m.id == monitor_id]
            tags = set(self._tag_names) or self.known_tags()
        if not found:
            raise AlarmNotFound(f"monitor {monitor_id!r} does not exist")
        try:
            return scan_history(found[0], self._history, start_ms, end_ms, tags)
        except ValueError as exc:
            raise DataError(str(exc)) from exc

    def monitor_status(self) -> list[dict[str, Any]]:
        """Each monitor source's model status, latest evidence and data-quality findings."""
        with self._lock:
            rows = self.bank.status()
            for r in rows:
                r["origin"] = self.monitor_sources.get(r["monitor"], "config")
            return rows

    def anomaly_scores(self) -> dict[str, float]:
        """Machine → current anomaly score from the monitors (the Fleet page's column)."""
        with self._lock:
            return self.bank.machine_scores()

    def machine_anomalies(self, machine: str, since_ms: int = 0) -> list[dict[str, Any]]:
        """Recent anomalies of a machine's tags, each with its evidence line (oldest first)."""
        with self._lock:
            found = self.bank.anomalies_under(machine, since_ms)
        return [{**a.to_dict(), "text": a.explain()} for a in found]

    def _with_evidence(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        """Put the anomaly's evidence into the message of raised monitor alarms."""
        out = []
        for e in events:
            if e.kind == EventKind.RAISED and e.rule_id.startswith(RULE_PREFIX):
                evidence = self.bank.explain(e.source)
                if evidence:
                    e = dataclasses.replace(e, message=f"{e.message}: {evidence}")
            out.append(e)
        return out

    def rules(self) -> list[AlarmRule]:
        """Return the rules in force."""
        with self._lock:
            return self.engine.rules

    def add_rules(self, docs: Sequence[Any]) -> list[AlarmRule]:
        """Validate rule docs against the known tags and the rules in force, store and apply them.

        A rule with the id of an API rule replaces it; the id of a config rule is refused.
        """
        if not isinstance(docs, list) or not docs:
            raise AlarmRuleError(["alarm rules must be a rule object or a non-empty list of them"])
        new = load_rules(docs, known_tags=self.known_tags())  # every problem at once
        with self._lock:
            config = [i for i, s in self.rule_sources.items() if s in ("config", "builtin")]
            clash = [r.id for r in new if r.id in config]
            if clash:
                raise AlarmRuleError(
                    [
                        f"alarm rule {rid!r} field 'id': the id belongs to a rule in indunet.toml; "
                        "change it there or choose another id"
                        for rid in clash
                    ]
                )
            stored = {d["id"]: d for d in self.store.rule_docs(self.enterprise)}
            for r in new:
                stored[r.id] = json.loads(r.model_dump_json())
            rules = self._load_all_rules(list(stored.values()))  # checks tags and duplicates
            self.store.put_rules(self.enterprise, new, _now_ms())
            self._swap(rules)
        return new

    def delete_rule(self, rule_id: str) -> None:
        """Delete a rule added through the API (config rules are refused)."""
        with self._lock:
            if self.rule_sources.get(rule_id) == "config":
                raise DataError(
                    f"alarm rule {rule_id!r} is defined in indunet.toml; remove it there"
                )
            if self.rule_sources.get(rule_id) == "builtin":
                raise DataError(f"alarm rule {rule_id!r} is built in; shelve its alarms instead")
            if not self.store.delete_rule(self.enterprise, rule_id):
                raise AlarmNotFound(f"alarm rule {rule_id!r} does not exist")
            self._swap(self._load_all_rules())

    def _swap(self, rules: list[AlarmRule]) -> None:
        snap = self.engine.snapshot()
        engine = AlarmEngine(rules)
        report = engine.restore(snap)
        self.skipped_on_restore = report.skipped
        self.engine = engine
        self._save([], force=True)

    # persistence -------------------------------------------------------------------------
    def _service_snapshot(self) -> dict[str, Any]:
        return {
            "version": 1,
            "engine": self.engine.snapshot(),
            "cursor_ms": self._cursor_ms,
            "marks": self._marks,
            "outbox": self.sender.outbox.snapshot(),
            "monitors": self.bank.snapshot(),
        }

    def _restore(self, stored: dict[str, Any]) -> None:
        report = self.engine.restore(stored["engine"])
        self.skipped_on_restore = report.skipped
        if report.skipped:
            log.warning("alarm state of removed rules not restored: %s", report.skipped[:20])
        self._cursor_ms = stored.get("cursor_ms")
        self._marks = {str(k): int(v) for k, v in (stored.get("marks") or {}).items()}
        if stored.get("outbox"):
            self.sender.outbox.restore(stored["outbox"])
        try:  # held anomaly scores: an active anomaly alarm does not "return" after a restart
            self.bank.restore(stored.get("monitors"))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("anomaly monitors' state not restored: %s", exc)

    def _save(self, events: list[AlarmEvent], *, force: bool = False) -> list[dict[str, Any]]:
        """Queue webhooks, then store events and snapshot together; publish the stored rows.

        When the database fails, the events stay queued and are stored with the next round's.
        """
        if events:
            self.sender.submit(events)  # before the snapshot, so it holds their deliveries
        self._unsaved.extend(events)
        events = self._unsaved
        now = int(self._clock() * 1000)
        due = force or bool(events) or now - self._last_saved_ms >= self.snapshot_every_ms
        if not due:
            return []
        rows = self.store.save(
            self.enterprise,
            events,
            self._service_snapshot(),
            first_seq=self._seq + 1,
            now_ms=now,
        )
        self._seq += len(events)
        self._unsaved = []
        self._last_saved_ms = now
        if rows and self.publish is not None:
            try:
                self.publish(rows)
            except Exception:  # the stream must never stop evaluation
                log.exception("publishing alarm events failed")
        return rows

    # evaluation --------------------------------------------------------------------------
    def on_state_change(self, machine: str, ts_ms: int, state: str, planned: bool) -> None:
        """Queue a machine state change (the plant watcher's hook; any thread)."""
        if len(self._states) == self._states.maxlen:
            self.state_feed_dropped += 1
        self._states.append(StateChange(f"{machine}/state", int(ts_ms), str(state), planned))

    def attach(self, watcher: Any) -> None:
        """Take machine states from a `PlantWatcher` instead of the ``…/state`` text tags."""
        watcher.on_state_change.append(self.on_state_change)
        self._watcher_attached = True
        self._watcher = watcher

    def _read(self, now_ms: int) -> tuple[pa.Table, list[StateChange]]:
        if self._cursor_ms is None:
            self._cursor_ms = now_ms - self.lookback_ms
        low = self._cursor_ms - self.late_window_ms
        table = self.historian._query(
            "SELECT t.path AS tag, p.ts, p.value, p.text, p.quality FROM points p "
            "JOIN tags t ON t.id = p.tag_id WHERE t.enterprise = $1 AND p.ts > $2 "
            "ORDER BY p.ts LIMIT $3",
            [self.enterprise, low, self.max_rows],
        )
        if table.num_rows == self.max_rows:  # a full page: keep the last instant for next round
            last = table.column("ts")[-1]
            keep = pc.less(table.column("ts"), last)
            if pc.any(keep).as_py():
                table = table.filter(keep)
        if table.num_rows == 0:
            return table, []
        marks = self._marks
        start = self._cursor_ms - self.lookback_ms  # a tag first seen: start just before cursor
        tags = table.column("tag").to_pylist()
        ts = table.column("ts").to_pylist()
        keep_rows = [
            i for i, (tag, t) in enumerate(zip(tags, ts, strict=True)) if t > marks.get(tag, start)
        ]
        table = table.take(pa.array(keep_rows, pa.int64()))
        for tag, t in zip(
            table.column("tag").to_pylist(), table.column("ts").to_pylist(), strict=True
        ):
            if t > marks.get(tag, start):
                marks[tag] = t
        if table.num_rows:
            self._cursor_ms = max(self._cursor_ms, pc.max(table.column("ts")).as_py())
        changes: list[StateChange] = []
        if not self._watcher_attached:
            texts = table.filter(pc.is_valid(table.column("text")))
            state_tags = self._state_tags(texts.column("tag").to_pylist())
            for row in texts.to_pylist():
                if row["tag"] in state_tags:
                    changes.append(StateChange(row["tag"], row["ts"], row["text"], True))
        return table.filter(pc.is_null(table.column("text"))), changes

    def _state_tags(self, tags: list[str]) -> set[str]:
        rules = [r for r in self.engine.rules if isinstance(r, StateDurationRule)]
        wanted = self.bank.state_tags()
        return {t for t in set(tags) if t in wanted or any(r.watches(t) for r in rules)}

    def _collapse_old(self, changes: list[StateChange]) -> list[StateChange]:
        """Keep, of the changes older than the last tick, only the newest per tag.

        A watcher replaying its history announces hours of changes after the engine has
        ticked; only each machine's state at the end of that history matters now.
        """
        changes.sort(key=lambda c: c.ts_ms)
        old = [c for c in changes if c.ts_ms < self._last_tick_ms]
        if not old:
            return changes
        newest = {c.tag: c for c in old}
        self.state_feed_collapsed += len(old) - len(newest)
        kept = sorted(newest.values(), key=lambda c: c.ts_ms)
        return kept + [c for c in changes if c.ts_ms >= self._last_tick_ms]

    def _derived(self, now_ms: int) -> pa.Table | None:
        """Every minute, the OEE of each scope a rule watches, over the last shift's length."""
        if now_ms < self._derived_due_ms:
            return None
        self._derived_due_ms = now_ms + DERIVED_EVERY_MS
        from indunet.plant.report import oee_report
        from indunet.plant.store import PlantStore

        if self._plant_store is None:
            self._plant_store = PlantStore(
                self.historian, self.settings.plant, owner=self.settings.enterprise
            )
        plant = self._plant_store.effective(self.enterprise)
        tags = derived_oee_tags(plant)
        watched = [t for t in tags if any(r.watches(t) for r in self.engine.rules)]
        quality = data_quality_tags(plant)
        checked = [t for t in quality if any(r.watches(t) for r in self.engine.rules)]
        if not watched and not checked:
            return None
        try:  # one report: machines, their lines and sites come from the same sums
            report = oee_report(
                self._plant_store,
                self.historian,
                plant,
                self.enterprise,
                "",
                now_ms - DERIVED_WINDOW_MS,
                now_ms,
                open_part=getattr(self._watcher, "open_segment", None),
            )
        except Exception as exc:  # the derived values must not stop the alarms
            self.derived_errors += 1
            self.last_error = f"derived OEE: {exc}"
            return None
        by_scope = {**report["machines"], **report["lines"], **report["sites"]}
        names, values = [], []
        for tag in watched:
            oee = by_scope.get(tags[tag], {}).get("oee")
            if oee is not None:  # no planned time: no OEE, nothing to judge
                names.append(tag)
                values.append(float(oee))
        for tag in checked:  # how many of the machine's figures cannot be true (0: plausible)
            doc = report["machines"].get(quality[tag])
            if doc is not None:
                names.append(tag)
                values.append(float(len(doc.get("implausible", ()))))
        if not names:
            return None
        return derived_samples(names, [now_ms] * len(names), values)

    def run_once(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Read, evaluate, tick, store and notify once; return the stored event rows."""
        now = int(self._clock() * 1000) if now_ms is None else int(now_ms)
        with self._lock:
            points, changes = self._read(now)
            while self._states:
                changes.append(self._states.popleft())
            changes = self._collapse_old(changes)
            events: list[AlarmEvent] = []
            if points.num_rows:
                events += self.engine.update(points.select(["tag", "ts", "value", "quality"]))
            if changes:
                events += self.engine.update_states(changes)
            derived = self._derived(now)
            if derived is not None:
                events += self.engine.update(derived)
            if self.bank.monitors:
                for c in changes:
                    self.bank.on_state(c.tag.rsplit("/", 1)[0], c.state, c.ts_ms)
                try:
                    scores = self.bank.feed(points, now, tags=self._tag_names, reader=self._history)
                except Exception as exc:  # the monitors must not stop the alarms
                    self.derived_errors += 1
                    self.last_error = f"anomaly monitors: {exc}"
                    log.exception("anomaly monitors failed")
                    scores = None
                if scores is not None:
                    events += self.engine.update(scores)
            events += self.engine.tick(now)
            events = self._with_evidence(events)
            self._last_tick_ms = max(self._last_tick_ms, now)
            self.rounds += 1
            return self._save(events)

    def evaluate(self, points: pa.Table) -> list[dict[str, Any]]:
        """Evaluate values computed elsewhere now (columns tag, ts, value, quality), e.g. the
        RUL estimates of `indunet.condition.rul_service`; return the stored event rows."""
        with self._lock:
            events = self.engine.update(points.select(["tag", "ts", "value", "quality"]))
            return self._save(events, force=bool(events))

    # operator actions --------------------------------------------------------------------
    def _act(self, action: Callable[[], list[AlarmEvent]]) -> list[dict[str, Any]]:
        with self._lock:
            try:
                events = action()
            except AlarmActionError as exc:
                text = str(exc)
                if "does not exist" in text or "does not watch" in text:
                    raise AlarmNotFound(text) from exc
                raise
            return self._save(events, force=True)

    def acknowledge(self, alarm_id: str, *, by: str, comment: str | None = None) -> list[dict]:
        """Acknowledge an alarm; return the stored events."""
        now = int(self._clock() * 1000)
        return self._act(
            lambda: self.engine.acknowledge(alarm_id, by=by, now_ms=now, comment=comment)
        )

    def shelve(
        self, alarm_id: str, *, until_ms: int, by: str, comment: str | None = None
    ) -> list[dict]:
        """Shelve an alarm until ``until_ms``; return the stored events."""
        now = int(self._clock() * 1000)
        return self._act(
            lambda: self.engine.shelve(
                alarm_id, until_ms=until_ms, by=by, now_ms=now, comment=comment
            )
        )

    def unshelve(self, alarm_id: str, *, by: str) -> list[dict]:
        """Unshelve an alarm; return the stored events."""
        now = int(self._clock() * 1000)
        return self._act(lambda: self.engine.unshelve(alarm_id, by=by, now_ms=now))

    def alarms(self, *, include_normal: bool = False) -> list[Alarm]:
        """Return the alarms (copies), by default those not normal."""
        with self._lock:
            return self.engine.alarms(include_normal=include_normal)

    # thread ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start evaluating in a background thread, and the webhook sender."""
        if self._thread is not None:
            return
        self.sender.start()
        super().start()

    def stop(self) -> None:
        """Stop the thread, save the snapshot (with pending webhooks) and stop the sender."""
        super().stop()
        self.sender.stop()
        with self._lock:
            try:
                self._save([], force=True)
            except Exception:
                log.exception("saving the alarm snapshot at stop failed")

    def status(self) -> dict[str, Any]:
        """Return counters for /health: rounds, errors, engine stats, webhook outbox."""
        with self._lock:
            return {
                "rules": len(self.engine.rules),
                "monitors": len(self.bank.monitors),
                "rounds": self.rounds,
                "errors": self.errors,
                "last_error": self.last_error,
                "running": self.running,
                "engine": dict(self.engine.stats),
                "state_feed_dropped": self.state_feed_dropped,
                "state_feed_collapsed": self.state_feed_collapsed,
                "webhooks": self.sender.status(),
            }
