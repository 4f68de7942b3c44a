"""Regional side: records idempotent by revision; complete days become the monitor's readings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from indunet.federation import contract
from indunet.federation.regional import FederationStore, UplinkConsumer
from indunet.region.settings import RegionSettings
from indunet.region.store import RegionStore

MS = 1_780_000_000_000
REGISTRY = (
    "enterprise_id,name,province,city,industry,size\n"
    "acme,Acme Presses,Hubei,Wuhan,C34,medium\n"
    "bolt,Bolt Works,Guangdong,Shenzhen,C34,small\n"
)


def daily(
    ent: str,
    site: str,
    day: str,
    kwh: float,
    *,
    at: int = MS,
    rev: int = 1,
    coverage: float = 1.0,
    sites: tuple[str, ...] = ("s1", "s2"),
) -> contract.Uplink:
    return contract.build(
        ent, "kwh_daily", site, day,
        {"kwh": kwh, "coverage": coverage, "sites": list(sites), "timezone": "UTC"},
        computed_ms=at, rev=rev,
    )  # fmt: skip


def states(ent: str, site: str, at: int, running: int = 2) -> contract.Uplink:
    return contract.build(
        ent, "states", site, contract.minute_period(at),
        {"machines": 3, "running": running, "idle": 3 - running, "off": 0, "offline": 0,
         "unknown": 0, "at_ms": at},
        computed_ms=at, rev=at // 1000,
    )  # fmt: skip


def test_a_newer_revision_replaces_a_duplicate_or_older_one_changes_nothing(historian) -> None:
    store = FederationStore(historian)
    first = daily("acme", "s1", "2026-06-01", 100.0)
    assert store.apply(first, MS) == "stored"
    assert store.apply(first, MS + 5) == "duplicate"
    assert store.apply(daily("acme", "s1", "2026-06-01", 120.0, rev=2), MS) == "stored"
    assert store.apply(daily("acme", "s1", "2026-06-01", 90.0, rev=1), MS) == "older"
    older = daily("acme", "s1", "2026-06-01", 80.0, at=MS - 1, rev=9)
    assert store.apply(older, MS) == "older"
    rows = store.records("kwh_daily")
    assert len(rows) == 1 and rows[0]["data"]["kwh"] == 120.0 and rows[0]["rev"] == 2
    assert FederationStore(historian).records("kwh_daily", "acme") == rows  # schema is idempotent


def test_a_day_is_complete_only_with_every_site_and_enough_coverage(historian) -> None:
    store = FederationStore(historian)
    store.apply(daily("acme", "s1", "2026-06-01", 100.0), MS)
    assert store.day_total("acme", "2026-06-01", 0.9) is None  # s2 is missing
    store.apply(daily("acme", "s2", "2026-06-01", 50.0, coverage=0.5), MS)
    assert store.day_total("acme", "2026-06-01", 0.9) is None  # s2's meters mostly silent
    assert store.day_total("acme", "2026-06-01", 0.5) == 150.0
    store.apply(daily("acme", "s2", "2026-06-01", 60.0, coverage=1.0, rev=2), MS)
    assert store.day_total("acme", "2026-06-01", 0.9) == 160.0
    assert store.day_total("acme", "2026-06-02", 0.9) is None
    assert store.unsynced_days() == [("acme", "2026-06-01")]
    store.mark_synced([("acme", "2026-06-01")])
    assert store.unsynced_days() == []


def test_sites_show_newest_states_and_oee_and_go_unknown_when_silent(historian) -> None:
    store = FederationStore(historian)
    store.apply(states("acme", "s1", MS), MS)
    store.apply(states("acme", "s1", MS - 60_000, running=0), MS)  # late, older: ignored
    store.apply(states("bolt", "s1", MS - 3_600_000), MS)
    oee = {"pbt_ms": 1000, "apt_ms": 800, "ideal_ms": 400.0, "produced": 10.0, "good": 9.0,
           "scrap": 1.0, "produced_without_ideal": 0.0, "machines": 3, "complete": False,
           "end_ms": MS}  # fmt: skip
    for day in ("2026-05-31", "2026-06-01"):
        store.apply(contract.build("acme", "oee_daily", "s1", day, oee, computed_ms=MS, rev=1), MS)
    sites = store.sites(MS + 1000, stale_ms=300_000)
    assert [(s["enterprise"], s["site"], s["status"]) for s in sites] == [
        ("acme", "s1", "reporting"),
        ("bolt", "s1", "unknown"),  # an hour without news: unknown, never stopped
    ]
    acme = sites[0]
    assert acme["states"]["running"] == 2
    assert acme["oee"]["day"] == "2026-06-01"
    assert acme["oee"]["availability"] == pytest.approx(0.8)
    assert acme["oee"]["oee"] == pytest.approx(0.8 * 0.5 * 0.9)


class _Settings:
    def __init__(self, min_coverage: float = 0.9) -> None:
        from indunet.federation.settings import FederationSettings

        self.federation = FederationSettings(min_coverage=min_coverage)
        self.enterprise = "region"


@pytest.fixture
def region(tmp_path: Path):
    settings = RegionSettings(
        baseline_start=date(2026, 5, 1), baseline_end=date(2026, 5, 31), baseline_min_days=2
    )
    store = RegionStore(settings, tmp_path / "region.duckdb")
    (tmp_path / "registry.csv").write_text(REGISTRY)
    store.import_registry(tmp_path / "registry.csv", effective=date(2026, 1, 1))
    (tmp_path / "base.csv").write_text(
        "enterprise_id,date,kwh\n"
        "acme,2026-05-20,1000\nacme,2026-05-21,1000\nbolt,2026-05-20,50\nbolt,2026-05-21,50\n"
    )
    store.import_readings(tmp_path / "base.csv", today=date(2026, 6, 30))
    yield store
    store.close()


def _state(region: RegionStore, day: date, ent: str) -> str:
    for state in ("resumed", "stopped", "unknown"):
        frame, _ = region.enterprises(day, state=state)
        if ent in frame.get_column("enterprise_id").to_list():
            return state
    raise AssertionError(f"{ent} is in no state on {day}")


def test_consumer_turns_complete_days_into_readings_idempotently(historian, region) -> None:
    consumer = UplinkConsumer(historian, _Settings(), lambda: region)
    for site, kwh in (("s1", 300.0), ("s2", 200.0)):
        r = daily("acme", site, "2026-06-01", kwh)
        assert consumer.handle(r.topic, r.payload()) == "stored"
        assert consumer.handle(r.topic, r.payload()) == "duplicate"  # QoS 1 redelivery
    r = daily("acme", "s1", "2026-06-02", 100.0)  # s2 never arrives for the 2nd
    consumer.handle(r.topic, r.payload())
    r = daily("bolt", "s1", "2026-06-01", 5.0, sites=("s1",))
    consumer.handle(r.topic, r.payload())
    assert consumer.sync() == 2
    assert consumer.sync() == 0  # nothing changed since
    assert _state(region, date(2026, 6, 1), "acme") == "resumed"  # 500 > 0.3 × 1000
    assert _state(region, date(2026, 6, 1), "bolt") == "stopped"  # 5 < 0.3 × 50
    assert _state(region, date(2026, 6, 2), "acme") == "unknown"  # incomplete: not stopped
    assert _state(region, date(2026, 6, 3), "bolt") == "unknown"  # stopped reporting
    # a late correction replaces the day's reading, never adds to it
    r = daily("acme", "s2", "2026-06-01", 0.0, rev=2)
    consumer.handle(r.topic, r.payload())
    r = daily("acme", "s1", "2026-06-01", 250.0, rev=2)
    consumer.handle(r.topic, r.payload())
    assert consumer.sync() == 1
    assert _state(region, date(2026, 6, 1), "acme") == "stopped"  # 250 < 300
    kwh = region._sql(
        "SELECT r.kwh FROM readings r JOIN enterprise_keys k USING (eid) "
        "WHERE k.enterprise_id = 'acme' AND r.day = DATE '2026-06-01'"
    ).fetchall()
    assert kwh == [(250.0,)]


def test_malformed_uplinks_become_dead_letters_and_unregistered_ones_are_quarantined(
    historian, region
) -> None:
    consumer = UplinkConsumer(historian, _Settings(), lambda: region)
    assert consumer.handle("indunet/uplink/v1/acme/kwh_daily", b"{not json") == "refused"
    good = daily("acme", "s1", "2026-06-01", 1.0, sites=("s1",))
    spoofed = good.payload().replace(b'"enterprise":"acme"', b'"enterprise":"bolt"')
    assert consumer.handle("indunet/uplink/v1/acme/kwh_daily", spoofed) == "refused"
    assert consumer.handle("indunet/uplink/v1/+/x", b"{}") == "refused"
    letters = historian.dead_letters(limit=10)
    assert len(letters) == 3
    assert all(d["source"] == "uplink" for d in letters)
    assert any("does not match the topic" in d["reason"] for d in letters)
    ghost = daily("ghost", "s1", "2026-06-01", 1.0, sites=("s1",))
    assert consumer.handle(ghost.topic, ghost.payload()) == "stored"
    consumer.sync()
    rows, total = region.quarantine()
    assert total == 1 and "not in the registry" in rows[0]["reason"]
    assert consumer.counts == {"stored": 1, "duplicate": 0, "older": 0, "refused": 3}


def test_a_database_failure_keeps_messages_unacknowledged_until_stored(
    historian, tmp_path: Path, monkeypatch
) -> None:
    import shutil
    import time
    import uuid

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from indunet.errors import StorageUnavailable
    from indunet.federation.settings import FederationSettings
    from tests.edge.test_publish import MOSQUITTO, PrivateBroker, _until

    if not shutil.which(MOSQUITTO):
        pytest.fail(f"{MOSQUITTO} is needed for the consumer test")
    broker = PrivateBroker(tmp_path)
    broker.start()
    settings = _Settings()
    settings.federation = FederationSettings(
        url=f"mqtt://127.0.0.1:{broker.port}", client_id=f"reg-{uuid.uuid4().hex[:8]}"
    )
    consumer = UplinkConsumer(historian, settings, None)
    real_apply, failures = consumer.store.apply_many, [3]

    def flaky(records, received_ms):  # the database is away for the first three writes
        if failures[0] > 0:
            failures[0] -= 1
            raise StorageUnavailable("database restarting")
        return real_apply(records, received_ms)

    monkeypatch.setattr(consumer.store, "apply_many", flaky)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:6]}")
    try:
        consumer.start()
        assert consumer.connected.wait(10)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        days = [f"2026-06-0{i}" for i in range(1, 6)]
        for day in days:
            r = daily("acme", "s1", day, 10.0, sites=("s1",))
            pub.publish(r.topic, r.payload(), qos=1).wait_for_publish(5)
        _until(lambda: consumer.counts["stored"] == 5, timeout=20)
        assert failures == [0]  # it did fail three times on the way
        assert [r["period"] for r in consumer.store.records("kwh_daily")] == days
        consumer.stop()
        # everything was acknowledged: the same session gets nothing again
        again = UplinkConsumer(historian, settings, None)
        again.start()
        assert again.connected.wait(10)
        time.sleep(1.0)
        assert sum(again.counts.values()) == 0
        again.stop()
    finally:
        pub.loop_stop()
        pub.disconnect()
        broker.stop()


def offers(ent: str, docs: list[dict], at: int = MS, rev: int = 1) -> contract.Uplink:
    return contract.build(ent, "offers", "*", "current", {"offers": docs}, computed_ms=at, rev=rev)


def test_offers_become_the_regions_docking_offers_newest_only(historian) -> None:
    from indunet.docking.store import DockingStore

    consumer = UplinkConsumer(historian, _Settings(), None)
    docking = DockingStore(historian)
    docking.save("region", "offer", [{"id": "own", "item": "mask", "quantity": 9.0}], now_ms=1)
    cap = {"id": "l1", "item": "mask", "kind": "capacity", "rate_per_day": 100.0}
    stock = {"id": "s", "item": "gown", "quantity": 40.0, "enterprise": "bolt"}  # spoofed owner
    first = offers("acme", [cap, stock])
    assert consumer.handle(first.topic, first.payload()) == "stored"
    assert consumer.handle(first.topic, first.payload()) == "duplicate"
    b = offers("bolt", [{"id": "s", "item": "mask", "quantity": 7.0}])
    consumer.handle(b.topic, b.payload())
    assert consumer.sync_offers() == 3
    got = {o["id"]: o for o in docking.entries("region", "offer")}
    assert sorted(got) == ["acme:l1", "acme:s", "bolt:s", "own"]
    assert got["acme:s"]["enterprise"] == "acme" and got["acme:s"]["quantity"] == 40.0
    assert got["acme:l1"]["rate_per_day"] == 100.0
    assert consumer.sync_offers() == 0  # nothing new
    # acme withdraws its stock; an older revision arriving late changes nothing
    consumer.handle(*_tp(offers("acme", [cap], rev=2)))
    consumer.handle(*_tp(offers("acme", [cap, stock, {**cap, "id": "l9"}], rev=1)))
    consumer.sync_offers()
    got = {o["id"] for o in docking.entries("region", "offer")}
    assert got == {"acme:l1", "bolt:s", "own"}
    docking.problem("region")  # the docking problem takes them


def _tp(r: contract.Uplink) -> tuple[str, bytes]:
    return r.topic, r.payload()


def test_a_changed_down_count_wakes_the_chain_and_silent_sites_are_none(historian) -> None:
    from indunet.chain.live import uplink_states_from_store

    consumer = UplinkConsumer(historian, _Settings(), None)
    woken: list[str] = []
    consumer.on_site_change = woken.append
    consumer.handle(*_tp(states("acme", "s1", MS)))
    consumer.handle(*_tp(states("acme", "s1", MS + 60_000)))  # the same counts: no wake
    down = contract.build(
        "acme", "states", "s1", contract.minute_period(MS + 120_000),
        {"machines": 3, "running": 0, "idle": 0, "off": 2, "offline": 1, "unknown": 0,
         "at_ms": MS + 120_000},
        computed_ms=MS + 120_000, rev=3,
    )  # fmt: skip
    consumer.handle(*_tp(down))
    assert woken == ["acme", "acme"]
    consumer.handle(*_tp(states("bolt", "s1", MS - 3_600_000)))
    read = uplink_states_from_store(lambda: consumer.store, 300_000, lambda: (MS + 130_000) / 1000)
    got = read()
    assert got["acme"]["s1"]["off"] == 2 and got["bolt"] == {"s1": None}  # silent: unknown
    assert uplink_states_from_store(lambda: None, 1)() == {}


def test_a_batch_is_stored_in_order_with_its_refused_messages_as_dead_letters(historian) -> None:
    consumer = UplinkConsumer(historian, _Settings(), None)
    first = daily("acme", "s1", "2026-06-01", 100.0)
    newer = daily("acme", "s1", "2026-06-01", 120.0, rev=2)
    older = daily("acme", "s1", "2026-06-01", 90.0, rev=1, at=MS - 1)
    out = consumer.handle_many(
        [_tp(first), (first.topic, b"{not json"), _tp(newer), _tp(first), _tp(older), _tp(newer)]
    )
    assert out == ["stored", "refused", "stored", "older", "older", "duplicate"]
    (row,) = consumer.store.records("kwh_daily")
    assert row["data"]["kwh"] == 120.0 and row["rev"] == 2
    assert consumer.counts == {"stored": 2, "duplicate": 1, "older": 2, "refused": 1}
    (letter,) = historian.dead_letters("acme", source="uplink")
    assert "not JSON" in letter["reason"]


def inventory(ent: str, items: list[dict], at: int = MS, rev: int = 1) -> contract.Uplink:
    return contract.build(ent, "inventory", "*", "current", {"items": items}, computed_ms=at,
                          rev=rev)  # fmt: skip


def _item(item: str, quantity: float, use: float | None, target: float = 3.0) -> dict:
    cover = None if not use else quantity / use
    return {"item": item, "quantity": quantity, "daily_use": use, "days_of_cover": cover,
            "cover_target_days": target, "below_cover": cover is not None and cover < target,
            "unit": None, "as_of_ms": MS}  # fmt: skip


def test_inventory_cover_becomes_stock_offers_and_wakes_the_chain(historian) -> None:
    from indunet.docking.store import DockingStore
    from indunet.federation.regional import inventory_cover

    consumer = UplinkConsumer(historian, _Settings(), None)
    woken: list[str] = []
    consumer.on_site_change = woken.append
    docking = DockingStore(historian)
    # mask: 500 held, 50 a day, 3 days' target -> 350 spare; gown below cover; cap: no use known
    items = [_item("mask", 500.0, 50.0), _item("gown", 20.0, 10.0), _item("cap", 90.0, None)]
    acme_own = offers("acme", [{"id": "l1", "item": "mask", "kind": "capacity",
                                "rate_per_day": 10.0}])  # fmt: skip
    for r in (inventory("acme", items), acme_own):
        assert consumer.handle(*_tp(r)) == "stored"
    assert consumer.handle(*_tp(inventory("acme", items))) == "duplicate"
    assert woken == ["acme"]  # the duplicate changes nothing
    consumer.sync_offers()
    got = {o["id"]: o for o in docking.entries("region", "offer")}
    assert sorted(got) == ["acme:cover-mask", "acme:l1"]
    assert got["acme:cover-mask"]["quantity"] == 350.0 and got["acme:cover-mask"]["kind"] == "stock"
    cover = inventory_cover(consumer.store)
    assert cover["acme"]["gown"]["below_cover"] and not cover["acme"]["mask"]["below_cover"]
    # the mask stock falls below its cover: its offer is withdrawn; an older revision is ignored
    consumer.handle(*_tp(inventory("acme", [_item("mask", 100.0, 50.0)], rev=2)))
    consumer.handle(*_tp(inventory("acme", items, rev=1, at=MS - 1)))
    consumer.sync_offers()
    assert {o["id"] for o in docking.entries("region", "offer")} == {"acme:l1"}
    assert inventory_cover(consumer.store)["acme"]["mask"]["days_of_cover"] == 2.0
    docking.problem("region")


def test_two_consumers_on_a_shared_subscription_split_the_uplinks_without_loss_or_double(
    settings_factory, pg_schema: str, tmp_path: Path
) -> None:
    """Two regional workers (MQTT 5 shared subscription, one PostgreSQL) take every record once."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from indunet.store import open_historian
    from tests.conftest import PG_URL
    from tests.edge.test_publish import PrivateBroker, _until

    broker = PrivateBroker(tmp_path)
    broker.start()
    historians, consumers = [], []
    try:
        url = f"mqtt://127.0.0.1:{broker.port}"
        for worker in ("a", "b"):
            settings = settings_factory(
                db=PG_URL, pg_schema=pg_schema, enterprise="region",
                federation={"url": url, "shared_group": "region", "client_id": f"w-{worker}"},
            )  # fmt: skip
            historians.append(open_historian(settings))
            consumers.append(UplinkConsumer(historians[-1], settings, None))
        for c in consumers:
            c.start()
            assert c.connected.wait(10)
        assert consumers[0].topic == "$share/region/indunet/uplink/v1/#"
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="t-plants",
                          protocol=paho.MQTTv5)  # fmt: skip
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        n = 400
        infos = []
        for i in range(n):
            hour = contract.hour_period(MS - MS % 3_600_000 - i * 3_600_000)
            data = {"kwh": float(i), "coverage": 1.0}
            r = contract.build(f"e{i % 7}", "kwh_hourly", "s1", hour, data, computed_ms=MS, rev=1)
            infos.append(pub.publish(r.topic, r.payload(), qos=1))
        for info in infos:
            info.wait_for_publish(10)
        _until(lambda: sum(c.counts["stored"] for c in consumers) >= n, 30)
        pub.loop_stop()
        pub.disconnect()
        stored = [c.counts["stored"] for c in consumers]
        assert sum(stored) == n and min(stored) > 0, stored  # both worked, nothing twice
        assert all(c.counts["duplicate"] == 0 and c.counts["refused"] == 0 for c in consumers)
        rows = FederationStore(historians[0]).records("kwh_hourly")
        assert len(rows) == n
        assert sorted(r["data"]["kwh"] for r in rows) == [float(i) for i in range(n)]
    finally:
        for c in consumers:
            c.stop()
        for h in historians:
            h.close()
        broker.stop()
