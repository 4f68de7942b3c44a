"""Plant side: a round's records equal the plant's own reports; an outage loses nothing."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import orjson
import pytest

from indunet.federation import contract
from indunet.federation.uplink import PlantUplink, compute_round, local_days
from indunet.plant.report import energy_report
from indunet.plant.store import PlantStore
from indunet.store import open_historian
from tests.edge.test_publish import MOSQUITTO, Listener, PrivateBroker, _until
from tests.federation.plants import D0, DAY, H, plant_config, simulate

NOW = D0 + 2 * DAY + 10 * H + 123  # 2026-06-03 10:00 UTC


@pytest.fixture
def plant_db(settings_factory):
    cfg = plant_config({"s1": "UTC", "s2": "Asia/Kolkata"})
    settings = settings_factory(enterprise="acme-plant", plant=cfg.model_dump(mode="json"))
    historian = open_historian(settings)
    simulate(historian, cfg, "acme-plant", D0 - DAY, NOW, seed=1)
    yield settings, historian, cfg
    historian.close()


def test_local_days_in_a_half_hour_zone() -> None:
    ended, today = local_days("Asia/Kolkata", NOW, 2)
    assert [d.day for d in ended] == ["2026-06-01", "2026-06-02"]
    assert today.day == "2026-06-03" and today.end_ms == NOW
    assert ended[1].start_ms == D0 + DAY - 5 * H - 30 * 60_000  # local midnight = 18:30 UTC
    assert ended[1].end_ms == today.start_ms


def test_a_round_carries_the_plants_own_daily_kwh_states_and_oee(plant_db) -> None:
    _, historian, cfg = plant_db
    store = PlantStore(historian, cfg)
    records = compute_round(
        store, historian, cfg, "acme-plant", NOW, uplink_enterprise="acme", days_back=2, rev=5
    )
    by = {(r.kind, r.site, r.period): r for r in records}
    assert {r.enterprise for r in records} == {"acme"} and {r.rev for r in records} == {5}
    for site, tz in (("s1", "UTC"), ("s2", "Asia/Kolkata")):
        ended, _ = local_days(tz, NOW, 2)
        for day in ended:
            own = energy_report(
                store, historian, cfg, "acme-plant", site, day.start_ms, day.end_ms, bucket="day"
            )
            daily = by[("kwh_daily", site, day.day)].data
            assert daily["kwh"] == pytest.approx(own["total"]["kwh"], rel=1e-9)
            assert daily["kwh"] > 100
            assert daily["coverage"] == 1.0 and daily["sites"] == ["s1", "s2"]
            hours = [
                r
                for r in records
                if r.kind == "kwh_hourly"
                and r.site == site
                and day.start_ms <= contract.period_start_ms(r.kind, r.period) < day.end_ms
            ]
            assert len(hours) == 24
            assert sum(h.data["kwh"] for h in hours) == pytest.approx(daily["kwh"], rel=1e-9)
        states = [r for r in records if r.kind == "states" and r.site == site]
        assert len(states) == 1 and states[0].data["machines"] == 2
        assert states[0].data["running"] == 2  # 10:00 UTC: both run (Kolkata 15:30 too)
        oee = [r for r in records if r.kind == "oee_daily" and r.site == site]
        assert [o.data["complete"] for o in oee] == [True, False]
    # no hour of today that has not ended, no day that has not ended
    assert all(contract.period_start_ms("kwh_hourly", r.period) + H <= NOW
               for r in records if r.kind == "kwh_hourly")  # fmt: skip
    assert not [r for r in records if r.kind == "kwh_daily" and r.period == "2026-06-03"]


def test_a_day_without_readings_has_zero_coverage(settings_factory) -> None:
    cfg = plant_config({"s1": "UTC"})
    settings = settings_factory(enterprise="p", plant=cfg.model_dump(mode="json"))
    historian = open_historian(settings)
    try:
        simulate(historian, cfg, "p", D0 + DAY, NOW, seed=2)  # nothing on 2026-06-01
        records = compute_round(PlantStore(historian, cfg), historian, cfg, "p", NOW, days_back=2)
        daily = {r.period: r.data for r in records if r.kind == "kwh_daily"}
        assert daily["2026-06-01"]["coverage"] == 0.0 and daily["2026-06-01"]["kwh"] == 0.0
        assert daily["2026-06-02"]["coverage"] == 1.0
    finally:
        historian.close()


@pytest.fixture
def broker(tmp_path: Path):
    if not shutil.which(MOSQUITTO):
        pytest.fail(f"{MOSQUITTO} is needed for the uplink outage test")
    b = PrivateBroker(tmp_path)
    b.start()
    yield b
    b.stop()


def test_broker_outage_loses_nothing_and_the_backlog_replays_in_order(
    plant_db, broker, tmp_path
) -> None:
    settings, historian, cfg = plant_db
    settings.uplink.url = f"mqtt://127.0.0.1:{broker.port}"
    settings.uplink.enterprise = "acme"
    settings.uplink.days_back = 2
    settings.uplink.reconnect_s = (0.1, 0.3)
    listener = Listener(broker.port, f"{contract.ROOT}/#", client_id=f"r-{uuid.uuid4().hex}")
    uplink = PlantUplink(historian, settings)
    try:
        first = uplink.tick(NOW)
        assert first > 100  # 2 sites × (48 hours + 2 days + 2 OEE + states)
        uplink.forwarder.start()
        _until(lambda: len(listener.messages) == first)
        # unchanged figures are not sent again; the states (heartbeat) and today's OEE so far are
        assert uplink.tick(NOW + 1000) == 4
        _until(lambda: len(listener.messages) == first + 4)
        broker.stop()  # the WAN is down for a while: three rounds, later data arrives meanwhile
        sent = []
        for i in range(1, 4):
            simulate(historian, cfg, "acme-plant", NOW, NOW + i * H, seed=10 + i)
            sent.append(uplink.tick(NOW + i * H + 5000))
        assert uplink.buffer.stats().rows >= sum(sent) > 3 * 4
        broker.start()
        _until(lambda: uplink.buffer.stats().rows == 0, timeout=30)
        total = first + 4 + sum(sent)
        _until(lambda: len(listener.messages) >= total, timeout=30)
        assert uplink.forwarder.stats.acked >= total and uplink.buffer.stats().dropped == 0
    finally:
        uplink.stop()
        listener.close()
    got = [contract.parse(t, p) for t, p in listener.messages]
    seen: set[tuple[str, str, int]] = set()
    new_revs = []  # after the outage what was acknowledged just before it comes again (the
    for r in got:  # forwarder's guard against a broker that lost it): duplicates, left out here
        if (r.kind, r.key, r.rev) not in seen:
            seen.add((r.kind, r.key, r.rev))
            new_revs.append(r.rev)
    assert new_revs == sorted(new_revs) and new_revs[-1] == 4  # the backlog, oldest first
    assert len({(r.kind, r.key, r.rev) for r in got}) == total  # every record of every round
    assert {orjson.loads(p)["kind"] for _, p in listener.messages} <= set(contract.KINDS)


def test_late_data_of_an_older_day_goes_out_at_the_next_full_round(plant_db) -> None:
    settings, historian, _ = plant_db
    settings.uplink.url = "mqtt://127.0.0.1:1"  # never started: rows stay in the buffer
    settings.uplink.days_back = 2
    settings.uplink.full_every_s = 900
    uplink = PlantUplink(historian, settings)
    try:
        uplink.tick(NOW)
        mark = uplink.buffer.max_id()
        # a late meter reading of a machine for 2026-06-01 (two days ago)
        from tests.plant.plant_data import write

        write(historian, "s1/press/l1/m1/power_kw", [D0 + 3 * H + 30_000], [500.0],
              enterprise="acme-plant")  # fmt: skip
        uplink.tick(NOW + 60_000)  # not a full round: only yesterday is recomputed

        def kinds_since(after: int) -> set[tuple[str, str]]:
            rows = uplink.buffer.read(after, 10_000)
            recs = [contract.parse(r.key, r.payload) for r in rows]
            return {(r.kind, r.period) for r in recs if r.kind.startswith("kwh")}

        assert ("kwh_daily", "2026-06-01") not in kinds_since(mark)
        mark = uplink.buffer.max_id()
        uplink.tick(NOW + 900_000)  # full: the corrected day and its hour go out again
        assert kinds_since(mark) == {
            ("kwh_daily", "2026-06-01"),
            ("kwh_hourly", "2026-06-01T03:00Z"),
        }
    finally:
        uplink.buffer.close()


def test_a_round_with_the_running_watchers_states(plant_db) -> None:
    from indunet.plant.watch import PlantWatcher

    settings, historian, _ = plant_db
    settings.uplink.url = "mqtt://127.0.0.1:1"
    watcher = PlantWatcher(historian, settings, clock=lambda: NOW / 1000)
    uplink = PlantUplink(historian, settings, watcher=watcher)
    try:
        assert uplink.plant() is watcher.plant
        assert uplink.tick(NOW) > 100
        rows = uplink.buffer.read(0, 10_000)
        states = [contract.parse(r.key, r.payload) for r in rows if r.key.endswith("/states")]
        assert sorted(s.site for s in states) == ["s1", "s2"]
    finally:
        uplink.buffer.close()


def test_a_restarted_plant_neither_resends_its_window_nor_skips_a_change(plant_db) -> None:
    settings, historian, _ = plant_db
    settings.uplink.url = "mqtt://127.0.0.1:1"  # never started: rows stay in the buffer
    settings.uplink.days_back = 2
    uplink = PlantUplink(historian, settings)
    first = uplink.tick(NOW)
    assert first > 100
    uplink.buffer.close()
    again = PlantUplink(historian, settings)  # the plant restarts (same uplink.sqlite)
    try:
        mark = again.buffer.max_id()
        # a full round (the first after a start): only the heartbeat and today's OEE so far
        assert again.tick(NOW + 60_000) == 4
        from tests.plant.plant_data import write

        write(historian, "s1/press/l1/m1/power_kw", [D0 + DAY + 3 * H + 30_000], [900.0],
              enterprise="acme-plant")  # fmt: skip
        mark = again.buffer.max_id()
        again.tick(NOW + 120_000)  # yesterday changed: its day and hour go out
        rows = again.buffer.read(mark, 10_000)
        sent = {(r.kind, r.period) for r in (contract.parse(x.key, x.payload) for x in rows)}
        assert {("kwh_daily", "2026-06-02"), ("kwh_hourly", "2026-06-02T03:00Z")} <= sent
        assert not any(k == "kwh_daily" and p == "2026-06-01" for k, p in sent)
    finally:
        again.buffer.close()


def test_a_buffer_overflow_resends_the_whole_window(plant_db) -> None:
    settings, historian, _ = plant_db
    settings.uplink.url = "mqtt://127.0.0.1:1"
    settings.uplink.days_back = 2
    settings.uplink.buffer_mb = 1
    uplink = PlantUplink(historian, settings)
    try:
        first = uplink.tick(NOW)
        uplink.buffer.max_bytes = uplink.buffer.stats().bytes + 400  # room for one row more
        uplink.tick(NOW + 60_000)  # drops the oldest rows to make room
        assert uplink.buffer.stats().dropped > 0
        assert uplink.tick(NOW + 120_000) >= first  # everything again: the region lost some
    finally:
        uplink.buffer.close()


def test_a_day_whose_raw_points_aged_out_is_not_sent_as_a_correction(plant_db) -> None:
    from indunet.config import RetentionRule

    settings, historian, _ = plant_db
    settings.uplink.url = "mqtt://127.0.0.1:1"
    settings.uplink.days_back = 2
    uplink = PlantUplink(historian, settings)
    try:
        uplink.tick(NOW)
        # two days later than the first round, the raw retention (2 days) has rolled up and
        # deleted what is older than 2026-06-03 10:00: part of the 2nd in UTC and in Kolkata
        settings.retention = [RetentionRule(raw_days=2, rollup_days=365)]
        later = NOW + 2 * DAY
        historian.apply_retention(settings.retention, now_ms=later)
        simulate(historian, uplink.plant(), "acme-plant", NOW, later, seed=3)
        mark = uplink.buffer.max_id()
        uplink.tick(later)
        sent = [contract.parse(r.key, r.payload) for r in uplink.buffer.read(mark, 10_000)]
        horizon = uplink.raw_horizon(later)
        daily = {(r.site, r.period) for r in sent if r.kind == "kwh_daily"}
        # only days that start after the horizon: the 4th (UTC) and the 4th (Kolkata), whole
        assert daily == {("s1", "2026-06-04"), ("s2", "2026-06-04")}
        hours = [contract.period_start_ms(r.kind, r.period) for r in sent if r.kind == "kwh_hourly"]
        assert hours and min(hours) >= horizon  # Kolkata's 4th starts 18:30 UTC on the 3rd
        assert [r for r in sent if r.kind == "states"]
        for r in sent:  # nothing that lost its raw points goes out as a smaller "correction"
            if r.kind == "kwh_daily":
                assert r.data["coverage"] == 1.0
    finally:
        uplink.buffer.close()


def test_lower_coverage_is_lost_readings_not_a_correction() -> None:
    from indunet.federation.uplink import _lost_points

    sent = {"kwh": 100.0, "coverage": 1.0}
    assert _lost_points(sent, {"kwh": 60.0, "coverage": 0.5})
    assert not _lost_points(sent, {"kwh": 120.0, "coverage": 1.0})  # late data: a correction
    assert not _lost_points({"kwh": 50.0, "coverage": 0.5}, {"kwh": 90.0, "coverage": 1.0})
    assert not _lost_points(None, {"kwh": 1.0, "coverage": 0.0})  # never sent: goes out
    assert not _lost_points({"running": 1}, {"running": 0})  # states have no coverage


def test_declared_items_cover_summed_over_warehouses() -> None:
    from indunet.federation.uplink import declared_cover

    rows = [
        {"item": "mask", "warehouse": "w1", "quantity": 100.0, "daily_use": 20.0,
         "cover_target_days": 3.0, "unit": "pcs", "as_of": D0},
        {"item": "mask", "warehouse": "w2", "quantity": 20.0, "daily_use": 20.0,
         "cover_target_days": 5.0, "unit": "pcs", "as_of": D0 + H},
        {"item": "gown", "warehouse": "w1", "quantity": 8.0, "daily_use": None,
         "cover_target_days": 3.0, "unit": None, "as_of": D0},
        {"item": "secret", "warehouse": "w1", "quantity": 1.0, "daily_use": 1.0,
         "cover_target_days": 3.0, "unit": None, "as_of": D0},
    ]  # fmt: skip
    got = {d["item"]: d for d in declared_cover(rows, ["mask", "gown", "absent"])}
    assert sorted(got) == ["gown", "mask"]  # undeclared items never go up; unknown ones absent
    mask = got["mask"]
    assert (mask["quantity"], mask["daily_use"], mask["days_of_cover"]) == (120.0, 40.0, 3.0)
    assert mask["cover_target_days"] == 5.0 and mask["below_cover"] is True
    assert mask["as_of_ms"] == D0 + H and mask["unit"] == "pcs"
    assert got["gown"]["days_of_cover"] is None and got["gown"]["below_cover"] is False


def _inventory(uplink: PlantUplink) -> list[dict]:
    rows = uplink.buffer.read(0, 100_000)
    return [orjson.loads(r.payload) for r in rows if r.key.endswith("/inventory")]


def test_a_round_sends_declared_inventory_once_and_again_when_it_changes(
    settings_factory, tmp_path: Path
) -> None:
    from indunet.business.store import BusinessStore

    cfg = plant_config({"s1": "UTC"})
    settings = settings_factory(
        enterprise="acme-plant", plant=cfg.model_dump(mode="json"),
        uplink={"url": "mqtt://127.0.0.1:1", "enterprise": "acme", "items": ["mask"]},
    )  # fmt: skip
    historian = open_historian(settings)
    try:
        biz = BusinessStore(historian)
        row = {"item": "mask", "warehouse": "w1", "quantity": 40, "daily_use": 20,
               "min_cover_days": 3, "as_of": "2026-06-03T08:00:00Z"}  # fmt: skip
        assert biz.load("acme-plant", "inventory", [row], source="t", now_ms=NOW).stored == 1
        uplink = PlantUplink(historian, settings)
        try:
            uplink.tick(NOW)
            sent = _inventory(uplink)
            assert len(sent) == 1
            (item,) = sent[0]["data"]["items"]
            assert (item["days_of_cover"], item["below_cover"]) == (2.0, True)
            uplink.tick(NOW + 60_000)  # unchanged: not sent again
            assert len(_inventory(uplink)) == 1
            biz.load("acme-plant", "inventory", [{**row, "quantity": 100,
                     "as_of": "2026-06-03T09:00:00Z"}], source="t", now_ms=NOW)  # fmt: skip
            uplink.tick(NOW + 120_000)
            last = _inventory(uplink)[-1]
            assert last["data"]["items"][0]["below_cover"] is False
        finally:
            uplink.buffer.close()
    finally:
        historian.close()


def test_cached_hours_are_not_recomputed_unless_their_points_changed(plant_db) -> None:
    from tests.plant.plant_data import write

    _, historian, cfg = plant_db
    store = PlantStore(historian, cfg)

    def run(now: int, cache: dict | None) -> dict:
        records = compute_round(store, historian, cfg, "acme-plant", now, days_back=2, rev=1,
                                kwh_cache=cache)  # fmt: skip
        return {(r.kind, r.key): r.data for r in records if r.kind.startswith("kwh")}

    cache: dict = {}

    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(
            a[k]["coverage"] == b[k]["coverage"] and a[k]["kwh"] == pytest.approx(b[k]["kwh"])
            for k in a
        )

    first = run(NOW, cache)
    assert same(first, run(NOW, None))  # the same figures as without a cache
    hours = len(cache)
    assert hours == sum(1 for kind, _ in first if kind == "kwh_hourly")
    # late data in an hour of yesterday: only the hours around it are recomputed
    late = D0 + DAY + 5 * H + 30 * 60_000 + 7_000
    write(historian, "s1/press/l1/m1/power_kw", [late], [500.0], enterprise="acme-plant")
    before = dict(cache)
    second = run(NOW + 60_000, cache)
    assert same(second, run(NOW + 60_000, None))
    changed = [k for k in cache if k in before and cache[k] is not before[k]]
    assert changed and all(k[0] == "s1" for k in changed) and len(changed) <= 3
    key = f"acme-plant/s1/{contract.hour_period(D0 + DAY + 5 * H)}"
    assert second[("kwh_hourly", key)]["kwh"] > first[("kwh_hourly", key)]["kwh"]


def test_cached_hours_compute_runs_of_changed_hours_only() -> None:
    from indunet.federation.uplink import _cached_hours

    hours = [(i * H, (i + 1) * H) for i in range(6)]
    prints = {i * H: (10, 1.0 * i, i * H + 59_000, i * H + 1_000) for i in range(7)}
    calls: list[tuple[int, int]] = []

    def compute(lo: int, hi: int) -> list[dict]:
        calls.append((lo, hi))
        return [{"start_ms": a, "end_ms": b, "kwh": float(a)} for a, b in hours if lo <= a < hi]

    cache: dict = {}
    got = _cached_hours(cache, hours, prints, compute, "s1")
    assert calls == [(0, 6 * H)] and [b["start_ms"] for b in got] == [h[0] for h in hours]
    calls.clear()
    assert _cached_hours(cache, hours, prints, compute, "s1") == got and calls == []
    prints[3 * H] = (11, 9.0, 3 * H + 59_500, 3 * H + 1_000)  # a late point inside hour 3
    _cached_hours(cache, hours, prints, compute, "s1")
    assert calls == [(3 * H, 5 * H)]  # hour 3, and hour 4 (the reading held into it changed)
    calls.clear()
    prints[5 * H] = (11, 9.0, 5 * H + 59_000, 5 * H + 10)  # a late point before hour 5's first
    _cached_hours(cache, hours, prints, compute, "s1")
    assert calls == [(4 * H, 6 * H)]  # hour 5 and hour 4 (the reading after it changed)
