"""Regional side of the federation: consume plants' uplinks into readings and a list of sites.

`FederationStore` keeps the records in the historian's database (``fed_records``: one row per
kind and idempotency key, a newer revision replaces; ``fed_states``: each site's newest machine
states). `UplinkConsumer` holds a persistent MQTT session on ``indunet/uplink/v1/#``, checks each
message (`contract.parse`; a refused one becomes a dead letter), stores it and only then
acknowledges it. A sync step turns complete (enterprise, day) kWh into the resumption monitor's
readings (`RegionStore.load_readings`, which replaces a day's reading): a day is complete when
every site the plant listed has arrived with enough meter coverage. A day without complete
records gets no reading, so the monitor shows the enterprise as unknown, never as stopped.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from indunet.docking.store import DockingStore
from indunet.errors import DataError
from indunet.federation import contract
from indunet.federation.contract import Uplink
from indunet.model import DeadLetter
from indunet.plant.oee import OeeElements
from indunet.store.base import Historian
from indunet.store.tables import SqlPort

__all__ = [
    "BATCH_MAX",
    "FederationStore",
    "UplinkConsumer",
    "cover_offers",
    "inventory_cover",
    "uplinked_enterprises",
]

#: most messages stored in one transaction
BATCH_MAX = 500

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fed_records (
  kind TEXT NOT NULL, rkey TEXT NOT NULL, enterprise TEXT NOT NULL, site TEXT NOT NULL,
  period TEXT NOT NULL, computed_ms BIGINT NOT NULL, rev BIGINT NOT NULL,
  received_ms BIGINT NOT NULL, data TEXT NOT NULL, synced BOOLEAN NOT NULL,
  PRIMARY KEY (kind, rkey)
);
CREATE TABLE IF NOT EXISTS fed_states (
  enterprise TEXT NOT NULL, site TEXT NOT NULL, period TEXT NOT NULL,
  computed_ms BIGINT NOT NULL, rev BIGINT NOT NULL, received_ms BIGINT NOT NULL,
  data TEXT NOT NULL, PRIMARY KEY (enterprise, site)
)
"""


def _where(record: Uplink) -> tuple[str, str, list[str]]:
    """Return the table, WHERE clause and parameters of a record's row."""
    if record.kind == "states":
        return "fed_states", "enterprise = $1 AND site = $2", [record.enterprise, record.site]
    return "fed_records", "kind = $1 AND rkey = $2", [record.kind, record.key]


class FederationStore:
    """The uplink records of every enterprise, beside the historian's points."""

    def __init__(self, historian: Historian) -> None:
        self.historian = historian
        self.sql = SqlPort(historian)
        self.sql.script(_SCHEMA)

    def apply(self, record: Uplink, received_ms: int) -> str:
        """Store a record unless a newer revision of it is stored; return what happened.

        ``stored`` (new or newer), ``duplicate`` (the same revision again) or ``older``.
        """
        return self.apply_many([record], received_ms)[0]

    def apply_many(self, records: list[Uplink], received_ms: int) -> list[str]:
        """`apply` each record in order, all in one transaction; return their outcomes.

        One commit for a batch of messages instead of one per message: the consumer stores
        what arrived together (a record later in the batch sees the ones before it).
        """
        outcomes: list[str] = []
        with self.sql.transaction():
            current: dict[tuple[str, ...], tuple[int, int] | None] = {}
            winners: dict[tuple[str, ...], Uplink] = {}
            existed: dict[tuple[str, ...], bool] = {}
            for r in records:
                table, where, params = _where(r)
                key = (table, *params)
                if key not in current:
                    row = self.sql.rows(
                        f"SELECT computed_ms, rev FROM {table} WHERE {where}", params
                    )
                    current[key] = (int(row[0]["computed_ms"]), int(row[0]["rev"])) if row else None
                    existed[key] = bool(row)
                stored = current[key]
                if stored is not None and stored == (r.computed_ms, r.rev):
                    outcomes.append("duplicate")
                elif stored is not None and not r.newer_than(*stored):
                    outcomes.append("older")
                else:
                    current[key], winners[key] = (r.computed_ms, r.rev), r
                    outcomes.append("stored")
            # one write per key, its newest record: DuckDB refuses to change a row twice in one
            # transaction (a batch may hold several revisions of one record)
            for key, r in winners.items():
                self._write(r, received_ms, update=existed[key])
        return outcomes

    def _write(self, record: Uplink, received_ms: int, *, update: bool) -> None:
        table, where, params = _where(record)
        data = orjson.dumps(record.data).decode()
        if update:  # the non-key columns
            n = len(params)
            self.sql.execute(
                f"UPDATE {table} SET period = ${n + 1}, computed_ms = ${n + 2}, rev = ${n + 3}, "
                f"received_ms = ${n + 4}, data = ${n + 5}"
                + ("" if table == "fed_states" else ", synced = FALSE")
                + f" WHERE {where}",
                [*params, record.period, record.computed_ms, record.rev, received_ms, data],
            )
        elif table == "fed_states":
            self.sql.execute(
                "INSERT INTO fed_states VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [record.enterprise, record.site, record.period, record.computed_ms,
                 record.rev, received_ms, data],
            )  # fmt: skip
        else:
            self.sql.execute(
                "INSERT INTO fed_records VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [record.kind, record.key, record.enterprise, record.site, record.period,
                 record.computed_ms, record.rev, received_ms, data, False],
            )  # fmt: skip

    def unsynced_days(self) -> list[tuple[str, str]]:
        """Return the (enterprise, day) pairs whose daily kWh changed since the last sync."""
        rows = self.sql.rows(
            "SELECT DISTINCT enterprise, period FROM fed_records WHERE kind = 'kwh_daily' "
            "AND NOT synced ORDER BY enterprise, period"
        )
        return [(r["enterprise"], r["period"]) for r in rows]

    def day_total(self, enterprise: str, day: str, min_coverage: float) -> float | None:
        """Return an enterprise's kWh of a day summed over its sites, or None when incomplete.

        Complete: every site named by the newest record's ``sites`` has a record, each with
        ``coverage >= min_coverage``.
        """
        rows = self.sql.rows(
            "SELECT site, computed_ms, rev, data FROM fed_records WHERE kind = 'kwh_daily' "
            "AND enterprise = $1 AND period = $2",
            [enterprise, day],
        )
        if not rows:
            return None
        docs = {r["site"]: orjson.loads(r["data"]) for r in rows}
        newest = max(rows, key=lambda r: (r["computed_ms"], r["rev"]))
        expected = docs[newest["site"]]["sites"]
        if any(s not in docs or docs[s]["coverage"] < min_coverage for s in expected):
            return None
        return float(sum(docs[s]["kwh"] for s in expected))

    def mark_synced(self, pairs: list[tuple[str, str]]) -> None:
        """Note that these (enterprise, day) pairs went to the monitor."""
        with self.sql.transaction():
            for enterprise, day in pairs:
                self.sql.execute(
                    "UPDATE fed_records SET synced = TRUE WHERE kind = 'kwh_daily' "
                    "AND enterprise = $1 AND period = $2",
                    [enterprise, day],
                )

    def resync(self, enterprises: list[str]) -> None:
        """Send these enterprises' daily kWh to the monitor again (after they were registered)."""
        with self.sql.transaction():
            for enterprise in enterprises:
                self.sql.execute(
                    "UPDATE fed_records SET synced = FALSE WHERE kind = 'kwh_daily' "
                    "AND enterprise = $1",
                    [enterprise],
                )

    def enterprises(self) -> dict[str, dict[str, Any]]:
        """Return each uplinking enterprise's newest complete-or-not daily kWh day and sites."""
        rows = self.sql.rows(
            "SELECT enterprise, max(period) AS day, count(DISTINCT site) AS sites, "
            "max(received_ms) AS received_ms FROM fed_records WHERE kind = 'kwh_daily' "
            "GROUP BY enterprise ORDER BY enterprise"
        )
        out = {
            r["enterprise"]: {"day": r["day"], "sites": int(r["sites"]),
                              "received_ms": int(r["received_ms"])}
            for r in rows
        }  # fmt: skip
        for r in self.sql.rows(
            "SELECT enterprise, count(*) AS sites, max(received_ms) AS received_ms "
            "FROM fed_states GROUP BY enterprise"
        ):
            e = out.setdefault(r["enterprise"], {"day": None, "sites": int(r["sites"])})
            e["received_ms"] = max(int(r["received_ms"]), int(e.get("received_ms") or 0))
        return out

    def records(self, kind: str, enterprise: str | None = None) -> list[dict[str, Any]]:
        """Return stored records of a kind (data decoded), by enterprise, site and period."""
        where, params = "kind = $1", [kind]
        if enterprise is not None:
            where, params = "kind = $1 AND enterprise = $2", [kind, enterprise]
        rows = self.sql.rows(
            "SELECT enterprise, site, period, computed_ms, rev, received_ms, data FROM "
            f"fed_records WHERE {where} ORDER BY enterprise, site, period",
            params,
        )
        for r in rows:
            r["data"] = orjson.loads(r["data"])
        return rows

    def sites(self, now_ms: int, stale_ms: int) -> list[dict[str, Any]]:
        """Return every uplinked site: newest states, newest OEE and daily kWh, and its status.

        A site whose newest states are older than ``stale_ms`` (or that never sent any) is
        ``unknown``: a plant that stops reporting is never shown as stopped.
        """
        out: dict[tuple[str, str], dict[str, Any]] = {}

        def site(enterprise: str, name: str) -> dict[str, Any]:
            return out.setdefault(
                (enterprise, name),
                {"enterprise": enterprise, "site": name, "status": "unknown",
                 "last_seen_ms": None, "states": None, "oee": None, "kwh_daily": None},
            )  # fmt: skip

        for r in self.sql.rows("SELECT * FROM fed_states"):
            s = site(r["enterprise"], r["site"])
            s["states"] = orjson.loads(r["data"])
            s["last_seen_ms"] = int(r["received_ms"])
            fresh = now_ms - int(s["states"]["at_ms"]) <= stale_ms
            s["status"] = "reporting" if fresh else "unknown"
        for kind, slot in (("oee_daily", "oee"), ("kwh_daily", "kwh_daily")):
            newest = self.sql.rows(
                "SELECT f.enterprise, f.site, f.period, f.data FROM fed_records f JOIN ("
                "SELECT enterprise, site, max(period) AS period FROM fed_records WHERE kind = $1 "
                "GROUP BY enterprise, site) n ON n.enterprise = f.enterprise AND n.site = f.site "
                "AND n.period = f.period WHERE f.kind = $1",
                [kind],
            )
            for r in newest:  # each site's newest day only
                s = site(r["enterprise"], r["site"])
                d = orjson.loads(r["data"])
                if kind == "oee_daily":
                    e = OeeElements(
                        pbt_ms=d["pbt_ms"], apt_ms=d["apt_ms"], ideal_ms=d["ideal_ms"],
                        produced=d["produced"], good=d["good"], scrap=d["scrap"],
                        produced_without_ideal=d["produced_without_ideal"],
                        machines=d["machines"],
                    )  # fmt: skip
                    s[slot] = {
                        "day": r["period"],
                        **d,
                        "availability": e.availability,
                        "performance": e.performance,
                        "quality": e.quality,
                        "oee": e.oee,
                    }
                else:
                    s[slot] = {"day": r["period"], "kwh": d["kwh"], "coverage": d["coverage"]}
        return [out[k] for k in sorted(out)]


def cover_offers(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the stock offers an ``inventory`` record's items make: stock above their cover.

    An item with a planned daily use offers what it holds beyond its cover target
    (quantity − target × daily use), as a ``stock`` offer with id ``cover-{item}``; an item
    without a planned use offers nothing (its spare is unknown).
    """
    out = []
    for it in items:
        use = it.get("daily_use")
        if not use:
            continue
        spare = it["quantity"] - it["cover_target_days"] * use
        if spare > 0:
            out.append({"id": f"cover-{it['item']}", "item": it["item"], "kind": "stock",
                        "quantity": round(spare, 6)})  # fmt: skip
    return out


def inventory_cover(store: FederationStore) -> dict[str, dict[str, dict[str, Any]]]:
    """Return each uplinking enterprise's newest declared items by item (``inventory``)."""
    return {
        r["enterprise"]: {it["item"]: it for it in r["data"]["items"]}
        for r in store.records("inventory")
    }


def uplinked_enterprises(
    fed: FederationStore,
    region: Any,
    *,
    min_coverage: float,
    now_ms: int,
    stale_ms: int,
    rule: Any = None,
) -> dict[str, list[dict[str, Any]]]:
    """Return the enterprises that uplink, split into ``registered`` and ``unregistered``.

    A registered one carries the monitor's verdict (`RegionStore.states_of`: registry row,
    kWh, baseline, state by the rule) on its newest **complete** uplinked day — every site
    arrived with enough meter coverage; without one its state is ``unknown``. An unregistered
    one (its readings wait: the monitor cannot place it) carries its sites, newest day and kWh
    so the operator can register it. ``reporting`` is false when every site's newest states are
    older than ``stale_ms``: unknown, never stopped.
    """
    sites = fed.sites(now_ms, stale_ms)
    reporting = {s["enterprise"] for s in sites if s["status"] == "reporting"}
    names = {s["enterprise"]: [] for s in sites}
    for s in sites:
        names[s["enterprise"]].append(s["site"])
    seen = fed.enterprises()
    known = region.registered(seen) if region is not None else set()
    registered: list[dict[str, Any]] = []
    unregistered: list[dict[str, Any]] = []
    for ent, info in sorted(seen.items()):
        days = sorted({r["period"] for r in fed.records("kwh_daily", ent)}, reverse=True)
        day, kwh = None, None
        for d in days:
            kwh = fed.day_total(ent, d, min_coverage)
            if kwh is not None:
                day = d
                break
        base = {
            "enterprise_id": ent,
            "sites": names.get(ent, []),
            "reporting": ent in reporting,
            "last_seen_ms": info.get("received_ms"),
            "day": day,
            "kwh": kwh,
            "source": "uplink",
        }
        if ent not in known:
            unregistered.append(base)
            continue
        state = {"state": "unknown", "unknown_because": "no complete uplinked day"}
        if day is not None:
            found = region.states_of([(ent, datetime.strptime(day, "%Y-%m-%d").date())], rule)
            if found:
                state = found[0]
                state.pop("day", None)
        registered.append({**state, **base})
    return {"registered": registered, "unregistered": unregistered}


class UplinkConsumer:
    """Receive uplinks from the broker into a `FederationStore` and the resumption monitor."""

    def __init__(
        self,
        historian: Historian,
        settings: Any,
        region_store: Callable[[], Any] | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.historian = historian
        self.settings = settings
        self.cfg = settings.federation
        self.store = FederationStore(historian)
        self.region_store = region_store
        self.clock = clock
        self.counts = dict.fromkeys(("stored", "duplicate", "older", "refused"), 0)
        self.synced_days = 0
        self.docking = DockingStore(historian)
        #: the docking offers of uplinked enterprises go to this enterprise's docking problem
        self.docking_enterprise: str = settings.enterprise
        self._offers_dirty = True  # the first sync compares what is stored
        #: called (with the enterprise) when a site's count of down machines changes: the
        #: chain live link recomputes at once instead of at its next round
        self.on_site_change: Callable[[str], None] | None = None
        self._down: dict[tuple[str, str], tuple[int, int]] = {}
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._client: Any = None
        self._sync_thread: threading.Thread | None = None
        self._store_thread: threading.Thread | None = None
        # messages received and not yet stored (acknowledged only once stored), in order
        self._inbox: deque[tuple[str, bytes, int, int]] = deque()
        self._inbox_lock = threading.Lock()
        self._work = threading.Event()
        self.batches = 0
        group = self.cfg.shared_group
        self.topic = f"$share/{group}/{contract.ROOT}/#" if group else f"{contract.ROOT}/#"

    # ------------------------------------------------------------------ messages
    def handle(self, topic: str, payload: bytes) -> str:
        """Check and store one message; a refused one becomes a dead letter. Return the outcome."""
        return self.handle_many([(topic, payload)])[0]

    def handle_many(self, messages: list[tuple[str, bytes]]) -> list[str]:
        """Check and store messages in order, the valid ones in one transaction; return outcomes.

        A refused message becomes a dead letter. Raises when the database fails: then nothing
        of the batch may be taken as stored (the caller keeps the messages and tries again;
        stored ones come back as duplicates).
        """
        now = int(self.clock() * 1000)
        parsed: list[tuple[int, Uplink]] = []
        refused: list[tuple[str, bytes, str]] = []
        outcomes = ["refused"] * len(messages)
        for i, (topic, payload) in enumerate(messages):
            try:
                parsed.append((i, contract.parse(topic, payload)))
            except DataError as exc:
                refused.append((topic, payload, str(exc)))
        if parsed:
            with self._lock:
                results = self.store.apply_many([r for _, r in parsed], now)
            for (i, record), outcome in zip(parsed, results, strict=True):
                outcomes[i] = outcome
                self.counts[outcome] += 1
                if outcome == "stored":
                    self._stored(record)
        for topic, payload, reason in refused:
            self._dead_letter(topic, payload, reason)
            self.counts["refused"] += 1
        return outcomes

    def _stored(self, record: Uplink) -> None:
        """Note what a newly stored record changes: days to sync, offers, a site's state."""
        if record.kind == "kwh_daily":
            self._dirty.set()
        elif record.kind in ("offers", "inventory"):
            self._offers_dirty = True
            self._dirty.set()
            if record.kind == "inventory" and self.on_site_change is not None:
                self.on_site_change(record.enterprise)  # the chain's cover alerts
        elif record.kind == "states":
            d = record.data
            down = (d["off"] + d["offline"], d["machines"])
            site = (record.enterprise, record.site)
            if self._down.get(site) != down:
                self._down[site] = down
                if self.on_site_change is not None:
                    self.on_site_change(record.enterprise)

    def _dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        try:
            enterprise, _ = contract.parse_topic(topic)
        except DataError:
            enterprise = None
        text = payload[:4096].decode("utf-8", "replace")
        letter = DeadLetter("uplink", reason, ref=topic[:300], payload=text)
        self.historian.add_dead_letters([letter], enterprise)

    def sync_offers(self) -> int:
        """Put every uplinked enterprise's newest offers into the docking problem; return how many.

        They are stored in ``docking_enterprise``'s docking entries as ``{enterprise}:{id}`` with
        ``enterprise`` set to the uplink's (a plant cannot speak for another); an offer a plant
        no longer lists is removed.
        """
        if not self._offers_dirty:
            return 0
        self._offers_dirty = False
        with self._lock:
            newest = {r["enterprise"]: r["data"]["offers"] for r in self.store.records("offers")}
            for r in self.store.records("inventory"):
                newest.setdefault(r["enterprise"], [])
                newest[r["enterprise"]] = newest[r["enterprise"]] + cover_offers(r["data"]["items"])
        target = self.docking_enterprise
        docs = []
        for enterprise, offers in sorted(newest.items()):
            for o in offers:
                docs.append({**o, "id": f"{enterprise}:{o['id']}", "enterprise": enterprise})
        now = int(self.clock() * 1000)
        if docs:
            self.docking.save(target, "offer", docs, now_ms=now)
        keep = {d["id"] for d in docs}
        for entry in self.docking.entries(target, "offer"):
            owner = entry["id"].split(":", 1)[0]
            if ":" in entry["id"] and owner in newest and entry["id"] not in keep:
                self.docking.delete(target, "offer", entry["id"])
        return len(docs)

    def sync(self) -> int:
        """Turn changed complete days into the monitor's readings; return how many were written."""
        self.sync_offers()
        region = self.region_store() if self.region_store is not None else None
        if region is None:  # no monitor (yet): the days stay unsynced until there is one
            return 0
        with self._lock:
            pairs = self.store.unsynced_days()
            if not pairs:
                return 0
            rows = []
            for enterprise, day in pairs:
                total = self.store.day_total(enterprise, day, self.cfg.min_coverage)
                if total is not None:
                    rows.append((enterprise, day, total))
            if rows:
                table = pa.table(
                    {
                        "enterprise_id": [r[0] for r in rows],
                        "date": [r[1] for r in rows],
                        "kwh": [r[2] for r in rows],
                    }
                )
                today = (datetime.now(UTC) + timedelta(days=1)).date()  # zones ahead of UTC
                region.load_readings(table, source="uplink", today=today)
            self.store.mark_synced(pairs)
        self.synced_days += len(rows)
        return len(rows)

    def resync(self, enterprises: list[str]) -> None:
        """Send these enterprises' stored daily kWh to the monitor again, now (just registered)."""
        with self._lock:
            self.store.resync(enterprises)
        self._dirty.set()

    # ------------------------------------------------------------------ MQTT
    def start(self) -> None:
        """Connect (a persistent session, QoS 1, manual acknowledgement) and start syncing."""
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        from indunet.connect.mqtt import parse_mqtt_url

        if not self.cfg.url:
            raise DataError("no federation URL: set --federation-url or [federation] url")
        host, port, tls, user, password = parse_mqtt_url(self.cfg.url)
        shared = bool(self.cfg.shared_group)
        # a shared group is an MQTT 5 shared subscription: each message goes to one member
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id or f"indunet-region-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if shared else paho.MQTTv311,
            clean_session=None if shared else False,
            manual_ack=True,
        )
        if user:
            client.username_pw_set(user, password)
        if tls:
            client.tls_set()
        client.reconnect_delay_set(0.2, 10)

        def on_connect(c, _u, _f, reason, _p) -> None:
            if reason.is_failure:
                log.warning("federation: broker refused the connection: %s", reason)
                return
            c.subscribe(self.topic, qos=1)
            self.connected.set()
            log.info("federation: consuming %s from %s:%s", self.topic, host, port)

        def on_disconnect(*_a) -> None:
            self.connected.clear()

        def on_message(_c, _u, message) -> None:  # stored (and acknowledged) by _store_loop
            with self._inbox_lock:
                self._inbox.append((message.topic, message.payload, message.mid, message.qos))
            self._work.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        self._client = client
        if shared:  # a persistent session (MQTT 5: clean start off, a day's session expiry)
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 86_400
            client.connect_async(host, port, keepalive=30, clean_start=False, properties=props)
        else:
            client.connect_async(host, port, keepalive=30)
        client.loop_start()
        self._store_thread = threading.Thread(
            target=self._store_loop, name="fed-store", daemon=True
        )
        self._store_thread.start()
        self._sync_thread = threading.Thread(target=self._sync_loop, name="fed-sync", daemon=True)
        self._sync_thread.start()

    def _store_loop(self) -> None:
        """Store what arrived, up to `BATCH_MAX` messages a transaction; acknowledge after commit.

        While one batch is written the next gathers, so under load batches grow and commits get
        fewer; a lone message is stored at once. When the database fails the batch stays at the
        head, unacknowledged, and is tried again every second, in order; killed meanwhile, the
        broker delivers it again to the next session.
        """
        failing = False
        while not self._stop.is_set():
            self._work.wait(0.5)
            self._work.clear()
            while not self._stop.is_set():
                with self._inbox_lock:
                    batch = list(itertools.islice(self._inbox, BATCH_MAX))
                if not batch:
                    break
                try:
                    self.handle_many([(t, p) for t, p, _, _ in batch])
                except Exception as exc:
                    if not failing:
                        log.warning("federation: could not store %d messages (%s); retrying",
                                    len(batch), exc)  # fmt: skip
                        failing = True
                    self._stop.wait(1.0)
                    continue
                if failing:
                    log.info("federation: storing works again")
                    failing = False
                with self._inbox_lock:
                    for _ in batch:
                        self._inbox.popleft()
                self.batches += 1
                if self._client is not None:
                    for _, _, mid, qos in batch:
                        self._client.ack(mid, qos)

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(1.0)
            if self._stop.is_set():
                break
            self._dirty.clear()
            try:
                self.sync()
            except Exception:
                log.exception("federation: readings not synced; trying again")
                self._dirty.set()
                self._stop.wait(5)

    def stop(self, *, leave: bool = False) -> None:
        """Disconnect and sync what is left.

        ``leave``: a worker of a shared group leaving for good (scaling down). It unsubscribes
        first and ends its session, so the broker stops setting its share aside for it: a
        stopped worker's persistent session otherwise keeps getting its share (Mosquitto 2.0,
        measured), held until the worker returns or the session expires (a day).
        """
        if leave and self._client is not None:
            self._client.unsubscribe(self.topic)
        self._stop.set()
        self._dirty.set()
        self._work.set()
        if self._store_thread is not None:  # what is not stored stays unacknowledged
            self._store_thread.join(30)
        if self._sync_thread is not None:
            self._sync_thread.join(30)
        if self._client is not None:
            if leave and self.cfg.shared_group:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0  # the session ends with this connection
                self._client.disconnect(properties=props)
            else:
                self._client.disconnect()
            self._client.loop_stop()
        try:
            self.sync()
        except Exception:
            log.exception("federation: readings not synced at stop")
