"""The demo's business data: seeded, consistent with the machines, loaded like any import."""

from __future__ import annotations

from indunet.business.records import BusinessKind, validate_rows
from indunet.business.store import BusinessStore
from indunet.sim.business import MATERIALS, demo_business, load_demo_business
from indunet.sim.live import build_plants

NOW = 1_763_625_600_000
MACHINES = [m.path for m in build_plants(3, 30, 7)]


def test_same_machines_time_and_seed_give_the_same_records():
    a = demo_business(MACHINES, now_ms=NOW, seed=7)
    assert a == demo_business(MACHINES, now_ms=NOW, seed=7)
    assert a != demo_business(MACHINES, now_ms=NOW, seed=8)


def test_records_are_valid_and_match_the_plant():
    records = demo_business(MACHINES, now_ms=NOW)
    for kind, rows in records.items():
        out = validate_rows(kind, rows, source="demo")
        assert out.errors == [] and out.warnings == [], (kind, out.errors[:1], out.warnings[:1])
    lines = {f"{p.site}/{p.area}/{p.line}" for p in MACHINES}
    sites = {p.site for p in MACHINES}
    orders = records[BusinessKind.production_orders]
    assert {o["line"] for o in orders} == lines  # every line has orders, none elsewhere
    items = {i["item"] for i in records[BusinessKind.items]}
    for kind in (BusinessKind.inventory, BusinessKind.purchase_orders, BusinessKind.sales_orders):
        assert {r["item"] for r in records[kind]} <= items, kind
    assert {o["item"] for o in orders} <= items
    for kind in (BusinessKind.inventory, BusinessKind.purchase_orders,
                 BusinessKind.customer_equipment):  # fmt: skip
        assert {r["site"] for r in records[kind]} == sites, kind
    outbound = [s for s in records[BusinessKind.shipments] if s["direction"] == "outbound"]
    assert {s["origin"] for s in outbound} == sites
    assert {m[0] for m in MATERIALS} <= items


def test_loaded_data_gives_the_overview_something_to_say(historian):
    reports = load_demo_business(historian, "demo", MACHINES, now_ms=NOW)
    assert set(reports) == {k.value for k in BusinessKind}
    for kind, report in reports.items():
        assert report.refused == [] and report.warnings == [], kind
        assert report.stored > 0, kind
    store = BusinessStore(historian)
    inventory = store.view("demo", "inventory", now_ms=NOW)
    short = {r["site"] for r in inventory if r["below_cover"]}
    assert short == {p.site for p in MACHINES}  # each site has an item below cover
    assert sum(r["below_cover"] for r in inventory) < len(inventory) / 2  # but most are fine
    late = [r for r in store.view("demo", "purchase_orders", now_ms=NOW) if r["late"]]
    assert len(late) == 3  # one late delivery per site
    overview = store.overview("demo", now_ms=NOW)
    assert overview["shipments"]["on_road"] > 0 and overview["shipments"]["arrived"] == 3
    assert overview["late_shipments"] >= 3
    assert overview["late_production_orders"] > 0
    assert 0 < overview["production_progress"] < 1
    assert overview["equipment"]["offline"] == 3 and overview["equipment"]["fault"] == 3
    # loading again (a demo restart) replaces, it does not duplicate
    load_demo_business(historian, "demo", MACHINES, now_ms=NOW)
    assert len(store.view("demo", "customer_equipment", now_ms=NOW)) == 15


def test_no_machines_gives_only_the_material_list():
    records = demo_business([], now_ms=NOW)
    assert [i["item"] for i in records[BusinessKind.items]] == [m[0] for m in MATERIALS]
    assert all(not rows for kind, rows in records.items() if kind is not BusinessKind.items)
