"""The live link: which sites are down and by how much, which alerts, and the service.

Hand-checked on TWO_SOURCES (tests/chain/networks.py) with stock at A:
  A: cap 60, stock 100, TTR 4; B: cap 60, stock 120, TTR 2; P needs 100/week, split 50/50.
  A stops: P gets B's 50 + B's spare 10 = 60 of 100; A's stock covers its 50/week for
  100 / 50 = 2 weeks, P's market holds nothing: P runs short at 2 weeks = 14 days; A back
  after TTR 4 weeks > 2: hit. Down for 3 days: "runs out at P in 11 days".
  B stops: its stock 120 covers 50/week for 2.4 weeks >= TTR 2: bridged, nothing runs out.
  A at 90 %: 54 >= its normal 50/week: spare capacity covers, no propagation.
"""

from __future__ import annotations

import copy

import pytest

from indunet.chain.graph import build_supply_graph
from indunet.chain.live import (
    CHAIN_RULES,
    NOT_HIT_DAYS,
    ChainLive,
    SiteStatus,
    alarm_samples,
    capacity_overrides,
    chain_alarm_extras,
    chain_alerts,
    cover_alerts,
    plant_states_from_watcher,
    region_states_from_store,
    site_statuses,
)
from indunet.chain.network import parse_network
from indunet.chain.store import ChainStore
from indunet.plant.alarm_service import AlarmService, AlarmStore
from tests.chain.networks import TWO_SOURCES

DAY = 86_400_000
NOW = 1_700_000_000_000


def _doc() -> dict:
    doc = copy.deepcopy(TWO_SOURCES)
    doc["nodes"][0].update(inventory=100, plant_site="s1")
    doc["nodes"][1].update(enterprise="E0000001")
    return doc


@pytest.fixture
def net():
    return parse_network(_doc())


@pytest.fixture
def g(net):
    return build_supply_graph(net)


# ---------------------------------------------------------------- which sites are down
def test_statuses_from_machines_and_the_regional_monitor(net) -> None:
    plant = {
        "s1": {
            "s1/a/l/m1": ("off", NOW - 3 * DAY),
            "s1/a/l/m2": ("offline", NOW - 2 * DAY),
            "s1/a/l/m3": ("running", NOW - 9 * DAY),
            "s1/a/l/m4": ("idle", None),
        },
        "s9": {"s9/a/l/m": ("off", NOW)},  # no site of the network is there
    }
    (a,) = site_statuses(net, plant, {})
    assert a.id == "A" and a.factor == 0.5 and a.since_ms == NOW - 3 * DAY
    assert a.reason == "2 of 4 machines off or offline at plant site s1"
    # every machine off: down since the last one stopped
    plant["s1"] = {"m1": ("off", NOW - 3 * DAY), "m2": ("offline", NOW - 2 * DAY)}
    (a,) = site_statuses(net, plant, {})
    assert (a.factor, a.since_ms) == (0.0, NOW - 2 * DAY)
    # the regional monitor: stopped -> nothing left; unknown and resumed change nothing
    both = site_statuses(net, plant, {"E0000001": "stopped"}, region_day="2020-02-10")
    assert [(s.id, s.factor) for s in both] == [("A", 0.0), ("B", 0.0)]
    assert "enterprise E0000001 has not resumed on 2020-02-10" in both[1].reason
    for state in ("unknown", "resumed"):
        assert [s.id for s in site_statuses(net, {}, {"E0000001": state})] == []
    assert site_statuses(net, {"s1": {}}, {}) == []  # a plant site without machines
    assert capacity_overrides(net, both) == {"A": 0.0, "B": 0.0}


def test_states_from_the_plant_watcher() -> None:
    class Watcher:
        def __init__(self) -> None:  # stands in for a PlantWatcher and its PlantConfig
            machines = [type("M", (), {"id": "s1/a/l/m1"}), type("M", (), {"id": "s1/a/l/m2"})]
            self.plant = type("Plant", (), {"machines": machines})

        def current(self, machine):
            return ("running", 5) if machine.endswith("m1") else None

    read = plant_states_from_watcher(Watcher())
    assert read() == {"s1": {"s1/a/l/m1": ("running", 5)}}  # m2: no state yet, not down


# ---------------------------------------------------------------- which alerts
def test_a_stopped_site_runs_a_product_out(g) -> None:
    alerts = chain_alerts(g, [SiteStatus("A", 0.0, "all machines off", NOW - 3 * DAY)], NOW)
    runs, down = alerts
    assert runs.kind == "runs_out" and runs.product == "P" and runs.item == "a"
    assert runs.days_left == pytest.approx(11.0)
    assert runs.text == "supplier A down 3 days; item a runs out at P in 11 days"
    assert runs.priority == "high"
    assert down.kind == "site_down" and down.text == "supplier A down 3 days: all machines off"


def test_a_product_that_has_already_run_out(g) -> None:
    (runs, _) = chain_alerts(g, [SiteStatus("A", 0.0, "off", NOW - 20 * DAY)], NOW)
    assert runs.days_left == 0.0
    assert runs.text == "supplier A down 20 days; P has run out for want of item a"


def test_stock_that_bridges_the_recovery_raises_no_run_out(g) -> None:
    (down,) = chain_alerts(g, [SiteStatus("B", 0.0, "enterprise stopped")], NOW)
    assert down.kind == "site_down" and down.text == "supplier B down: enterprise stopped"


def test_spare_capacity_covers_a_small_loss(g) -> None:
    (down,) = chain_alerts(g, [SiteStatus("A", 0.9, "1 of 10 machines off", NOW - DAY)], NOW)
    assert down.priority == "low"
    assert alarm_samples("two", g, ["A"], [down])["derived/chain/two/site/A"] == 0.0  # no alarm
    assert down.text == (
        "supplier A down 1 day (at 90% capacity): 1 of 10 machines off; "
        "spare capacity covers its customers"
    )
    assert chain_alerts(g, [], NOW) == []


def test_alarm_samples_clear_and_raise(g) -> None:
    quiet = alarm_samples("two", g, ["A", "B"], [])
    assert quiet == {
        "derived/chain/two/site/A": 0.0,
        "derived/chain/two/site/B": 0.0,
        "derived/chain/two/cover/A": 0.0,
        "derived/chain/two/cover/B": 0.0,
        "derived/chain/two/runout/P": NOT_HIT_DAYS,
    }
    alerts = chain_alerts(g, [SiteStatus("A", 0.0, "off", NOW - 3 * DAY)], NOW)
    hot = alarm_samples("two", g, ["A", "B"], alerts)
    assert hot["derived/chain/two/site/A"] == pytest.approx(3.0)
    assert hot["derived/chain/two/runout/P"] == pytest.approx(11.0)
    # hostile names become one namespace level each
    odd = alarm_samples("a/b", g, ["x/+#y z"], [])
    assert "derived/chain/a_b/site/x___y_z" in odd


# ---------------------------------------------------------------- the service
def _store(historian, doc=None) -> None:
    ChainStore(historian).save_network("demo", "two", parse_network(doc or _doc()), now_ms=1)


def _alarms(service: AlarmService) -> dict[str, str]:
    return {a.alarm_id: str(a.state) for a in service.alarms(include_normal=True)}


def test_service_raises_and_clears_chain_alarms(historian, settings_factory) -> None:
    _store(historian)
    published: list[dict] = []
    alarms = AlarmService(historian, settings_factory(), publish=published.extend)
    plant = {"s1": {"s1/a/l/m1": ("off", NOW - 3 * DAY)}}
    live = ChainLive(historian, "demo", plant_states=lambda: plant, alarms=alarms)
    views = live.run_once(NOW)
    view = live.view("demo", "two")
    assert view is views["two"] and live.view("other", "two") is None
    assert [s["id"] for s in view["statuses"]] == ["A"]
    assert view["alerts"][0]["text"] == "supplier A down 3 days; item a runs out at P in 11 days"
    assert view["resilience"] is not None  # recomputed with A at zero capacity
    a_row = next(n for n in view["resilience"]["nodes"] if n["id"] == "B")
    assert a_row["tts_weeks"] < 52  # B alone cannot carry P for the horizon
    state = _alarms(alarms)
    assert state["chain-site-down@derived/chain/two/site/A"] == "unack"
    assert state["chain-runs-out@derived/chain/two/runout/P"] == "unack"
    assert "chain-site-down@derived/chain/two/site/B" not in {
        k for k, v in state.items() if v != "normal"
    }
    raised = [e for e in AlarmStore(historian).events("demo") if e["kind"] == "raised"]
    assert {e["rule_id"] for e in raised} == {"chain-site-down", "chain-runs-out"}
    assert {e["rule_id"] for e in published} == {"chain-site-down", "chain-runs-out"}
    # the same state a minute later raises nothing new
    live.run_once(NOW + 60_000)
    again = [e for e in AlarmStore(historian).events("demo") if e["kind"] == "raised"]
    assert len(again) == 2
    # machines back on: the alarms return to normal, the view is quiet
    plant["s1"] = {"s1/a/l/m1": ("running", NOW + 100_000)}
    live.run_once(NOW + 120_000)
    assert live.view("demo", "two")["alerts"] == []
    assert live.view("demo", "two")["resilience"] is None
    state = _alarms(alarms)
    assert state["chain-site-down@derived/chain/two/site/A"] == "rtn_unack"
    assert state["chain-runs-out@derived/chain/two/runout/P"] == "rtn_unack"


def test_chain_alarms_survive_a_restart(historian, settings_factory) -> None:
    _store(historian)
    settings = settings_factory()
    extras = chain_alarm_extras(historian, "demo")
    assert extras["extra_rules"] == CHAIN_RULES
    assert "derived/chain/two/site/A" in extras["known_tags"]
    plant = {"s1": {"s1/a/l/m1": ("off", NOW - 3 * DAY)}}
    first = AlarmService(historian, settings, **extras)
    ChainLive(historian, "demo", plant_states=lambda: plant, alarms=first).run_once(NOW)
    first.stop()
    second = AlarmService(historian, settings, **chain_alarm_extras(historian, "demo"))
    assert _alarms(second)["chain-site-down@derived/chain/two/site/A"] == "unack"
    ChainLive(historian, "demo", plant_states=lambda: plant, alarms=second).run_once(NOW + 1)
    raised = [e for e in AlarmStore(historian).events("demo") if e["kind"] == "raised"]
    assert len(raised) == 2  # not raised a second time


def test_service_with_the_regional_monitor_and_no_alarm_service(historian) -> None:
    _store(historian)
    asked: list[list[str]] = []

    def region(ids):
        asked.append(ids)
        return {"E0000001": "stopped"}, "2020-02-10"

    live = ChainLive(historian, "demo", region_states=region)
    view = live.run_once(NOW)["two"]
    assert asked == [["E0000001"]]
    kept = ChainStore(historian).resilience("demo", "two")  # the page's table, solved once
    assert [n["id"] for n in kept["nodes"]] == ["A", "B"]
    assert kept["nodes"][0]["tts_weeks"] == pytest.approx(5.5)  # 60 t + 120 + 100 >= 100 t
    assert [s["id"] for s in view["statuses"]] == ["B"]
    assert view["alerts"][0]["text"].startswith("supplier B down: enterprise E0000001")
    assert region_states_from_store(lambda: None)(["E0000001"]) == ({}, "")
    assert ChainLive(historian, "nobody").run_once(NOW) == {}


def test_service_thread_recovers_from_a_failing_round(historian) -> None:
    _store(historian)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("watcher gone")
        return {}

    live = ChainLive(historian, "demo", plant_states=flaky, interval_s=0.01)
    live.start()
    try:
        for _ in range(500):
            if live.rounds:
                break
            live._stop.wait(0.01)
    finally:
        live.stop()
    assert live.errors >= 1 and "watcher gone" in (live.last_error or "")
    assert live.rounds >= 1 and live.view("demo", "two") is not None


# ---------------------------------------------------------------- uplinked suppliers (federation)
def _counts(machines: int, off: int = 0, offline: int = 0) -> dict[str, int]:
    running = machines - off - offline
    return {"machines": machines, "running": running, "idle": 0, "off": off,
            "offline": offline, "unknown": 0}  # fmt: skip


def test_statuses_from_uplinked_sites(net) -> None:
    up = {"E0000001": {"p1": _counts(4, off=1, offline=2), "p2": _counts(4)}}
    (b,) = site_statuses(net, {}, {}, uplinks=up)
    assert b.id == "B" and b.factor == pytest.approx(1 - 3 / 8)
    assert b.reason == "3 of 8 machines off or offline at E0000001 its sites (uplink)"
    doc = _doc()
    doc["nodes"][1].update(uplink_site="p1")
    (b,) = site_statuses(parse_network(doc), {}, {}, uplinks=up)
    assert b.factor == pytest.approx(0.25) and "E0000001 p1 (uplink)" in b.reason
    # a silent site (None) or a site of another enterprise changes nothing: unknown is not down
    assert site_statuses(net, {}, {}, uplinks={"E0000001": {"p1": None}}) == []
    assert site_statuses(net, {}, {}, uplinks={"E0000009": {"p1": _counts(2, off=2)}}) == []
    # the regional monitor's stop still wins
    both = site_statuses(net, {}, {"E0000001": "stopped"}, uplinks=up)
    assert both[0].factor == 0.0


def test_an_uplinked_site_going_down_wakes_the_link_at_once(historian) -> None:
    _store(historian)
    current: dict = {"E0000001": {"p1": _counts(2)}}
    live = ChainLive(historian, "demo", uplink_states=lambda: current, interval_s=3600)
    live.start()
    try:
        for _ in range(500):
            if live.rounds:
                break
            live._stop.wait(0.01)
        assert live.view("demo", "two")["statuses"] == []
        current = {"E0000001": {"p1": _counts(2, off=2)}}  # the supplier's plant stops
        live.wake()  # what the UplinkConsumer does on a changed down count
        for _ in range(500):
            if live.rounds >= 2:
                break
            live._stop.wait(0.01)
        view = live.view("demo", "two")
        assert [(s["id"], s["factor"]) for s in view["statuses"]] == [("B", 0.0)]
        assert view["alerts"][0]["text"].startswith("supplier B down")
    finally:
        live.stop()


def _item(net, g) -> str:
    return g.items[int(g.item_of[g.index("B")])]


def test_low_cover_of_an_uplinked_supplier_alerts(net, g, historian) -> None:
    item = _item(net, g)
    low = {"item": item, "quantity": 30.0, "daily_use": 20.0, "days_of_cover": 1.5,
           "cover_target_days": 4.0, "below_cover": True}  # fmt: skip
    (a,) = cover_alerts(net, g, {"E0000001": {item: low}})
    assert (a.kind, a.site, a.item, a.days_left, a.target_days) == (
        "low_cover",
        "B",
        item,
        1.5,
        4.0,
    )
    assert a.text == (f"supplier B (E0000001) holds 1.5 days of {item}, below its 4-day cover "
                      "target (uplink)")  # fmt: skip
    samples = alarm_samples("two", g, ["A", "B"], [a])
    assert samples["derived/chain/two/cover/B"] == pytest.approx(2.5)  # days short
    assert samples["derived/chain/two/cover/A"] == 0.0
    # covered, no planned use, another item or another enterprise: nothing
    ok = {**low, "quantity": 100.0, "days_of_cover": 5.0, "below_cover": False}
    unknown = {**low, "daily_use": None, "days_of_cover": None, "below_cover": False}
    for cover in ({"E0000001": {item: ok}}, {"E0000001": {item: unknown}},
                  {"E0000001": {"other": low}}, {"E0000009": {item: low}}):  # fmt: skip
        assert cover_alerts(net, g, cover) == []
    # the live link shows it on the chain page's alerts
    _store(historian)
    live = ChainLive(historian, "demo", uplink_cover=lambda: {"E0000001": {item: low}})
    view = live.run_once(NOW)["two"]
    assert [x["kind"] for x in view["alerts"]] == ["low_cover"]
    assert view["statuses"] == []  # short of stock is not down
