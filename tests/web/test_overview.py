"""The overview at "/": site cards over TestClient (both backends), and one real Chromium run."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from indunet.auth.store import AuthStore
from indunet.plant.alarm_service import AlarmService
from indunet.plant.config import PlantConfig
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from indunet.plant.today import day_start_ms
from indunet.plant.watch import recompute_range
from indunet.sim.business import load_demo_business
from indunet.sim.live import build_plants
from indunet.sim.plant import SimMachine, simulate
from indunet.sim.plant_config import demo_plant_config
from indunet.web.overview import Overview, OverviewCache, alarm_site
from tests.conftest import PG_URL
from tests.web.conftest import LiveServer, sign_in

SHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"  # read before fixtures clear INDUNET_*
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HOSTILE = "<img src=x onerror=alert(1)>"  # a valid namespace segment
M1, M2, M3 = "s1/press/l1/m1", "s1/press/l1/m2", "s2/weld/l2/m3"
M9 = f"{HOSTILE}/a/l/m9"
RULES = [
    {"id": "temp-high", "kind": "high", "pattern": "+/+/+/+/temp_c", "limit": 80.0,
     "priority": "high"},
    {"id": "temp-very-high", "kind": "high", "pattern": "+/+/+/+/temp_c", "limit": 90.0,
     "priority": "urgent"},
]  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


def plant_config(**extra) -> PlantConfig:
    machine = {
        "power_tag": "power_kw",
        "thresholds": {"off_below": 1.0, "running_above": 5.0},
        "expected_interval_s": 1.0,
        "offline_after_intervals": 30,
        "total_counter": {"tag": "parts_total"},
        "ideal_cycle_s": {"p": 10.0},
        "default_product": "p",
    }
    return PlantConfig.model_validate(
        {"machines": [{"id": m, **machine} for m in (M1, M2, M3, M9)], **extra}
    )


def ingest(client, records) -> None:
    r = client.post("/api/v1/ingest", json=records)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def upload(client, kind: str, rows: list[dict]) -> None:
    r = client.post(f"/api/v1/business/{kind}", json=rows)
    assert r.status_code == 200 and not r.json()["refused"], r.text


def cards(html: str) -> dict[str, str]:
    """Return each site card's HTML by its (escaped) data-site."""
    parts = html.split('<article class="ov-site')[1:]
    return {re.search(r'data-site="([^"]*)"', p).group(1): p.split("</article>")[0] for p in parts}


def state(card: str, name: str) -> int:
    return int(re.search(rf'data-state="{name}">(?:<a [^>]*>)?<b>(\d+)</b>', card).group(1))


@pytest.fixture(params=["duckdb", "postgresql"])
def plant_client(request, make_client):
    """A client whose server knows four machines on three sites (one with a hostile name)."""
    if request.param == "postgresql":
        schema = request.getfixturevalue("pg_schema")
        return make_client(plant=plant_config(), db=PG_URL, pg_schema=schema)
    return make_client(plant=plant_config())


# ---------------------------------------------------------------------------- HTML (TestClient)
def test_empty_overview_says_how_to_connect_machines_and_upload_business_data(duck_client):
    r = duck_client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "No machines yet" in html and "indunet/v1/demo/SITE/AREA/LINE/MACHINE" in html
    assert "PUT /api/v1/machines/SITE/AREA/LINE/MACHINE" in html
    assert "No business data" in html and "POST /api/v1/business/{kind}" in html
    assert "indunet plant import" in html
    assert cards(html) == {}
    assert '<a href="/" class="here" aria-current="page">Overview</a>' in html
    # live: polled, and fetched again on the live stream's events
    assert 'hx-get="/parts/overview"' in html and "data-live" in html
    trigger = re.search(r'hx-get="/parts/overview"\s+hx-trigger="([^"]+)"', html).group(1)
    assert "every 10s" in trigger and "indunet:alarm from:body" in trigger
    assert "indunet:values from:body" in trigger
    part = duck_client.get("/parts/overview")
    assert part.status_code == 200 and "<html" not in part.text and "No machines yet" in part.text


def test_sites_show_machine_states_and_business(plant_client):
    c = plant_client
    t = now_ms()
    ingest(c, [
        {"tag": f"{M1}/power_kw", "ts": t - 1000, "value": 12.5},  # running
        {"tag": f"{M2}/power_kw", "ts": t - 1000, "value": 2.0},  # idle
        {"tag": f"{M3}/power_kw", "ts": t - 3_600_000, "value": 12.0},  # an hour old: offline
        {"tag": "s3/x/y/unconfigured/power_kw", "ts": t - 1000, "value": 1.0},
    ])  # fmt: skip
    upload(c, "inventory", [
        {"item": "steel", "warehouse": "w1", "site": "s1", "quantity": 10, "as_of": t,
         "daily_use": 10, "min_cover_days": 3},
        {"item": "bolts", "warehouse": "w1", "site": "s1", "quantity": 500, "as_of": t,
         "daily_use": 10},
        {"item": "paint", "warehouse": "central", "quantity": 1, "as_of": t, "daily_use": 5},
    ])  # fmt: skip
    upload(c, "purchase_orders", [
        {"order_id": "P1", "item": "steel", "quantity": 5, "site": "s1", "expected_at": t - 9e6},
        {"order_id": "P2", "item": "bolts", "quantity": 5, "site": "s1", "expected_at": t + 9e6},
    ])  # fmt: skip
    upload(c, "production_orders", [
        {"order_id": "O1", "item": "bracket", "quantity": 100, "done_quantity": 50,
         "line": "s1/press/l1", "due_at": t - 1000},
        {"order_id": "O2", "item": "bracket", "quantity": 100, "done_quantity": 0,
         "line": "s1/press/l1", "due_at": t + 9e6},
    ])  # fmt: skip
    upload(c, "shipments", [
        {"shipment_id": "T1", "origin": "s1", "departed_at": t - 1000, "eta": t + 9e6},
        {"shipment_id": "T2", "origin": "s1", "departed_at": t - 9e6, "arrived_at": t - 1000},
        {"shipment_id": "T3", "direction": "inbound", "destination": "s2", "status": "on_road",
         "eta": t - 1000},
        {"shipment_id": "T4", "origin": "Port of Ningbo", "status": "on_road"},
    ])  # fmt: skip
    upload(c, "customer_equipment", [
        {"serial": "SN1", "customer": "Haier", "site": "s2", "status": "fault", "last_seen": t},
        {"serial": "SN2", "customer": "Midea", "site": "s2", "last_seen": t - 9e8},
    ])  # fmt: skip
    html = c.get("/").text
    assert "No machines yet" not in html and "No business data" not in html
    found = cards(html)
    assert list(found) == ["&lt;img src=x onerror=alert(1)&gt;", "s1", "s2", "s3", ""]
    s1, s2, s3, wide = found["s1"], found["s2"], found["s3"], found[""]
    assert '<a href="/site/s1">s1</a>' in s1 and "<small>2 machines</small>" in s1
    assert (state(s1, "running"), state(s1, "idle"), state(s1, "off")) == (1, 1, 0)
    assert state(s2, "offline") == 1 and state(s3, "unknown") == 1
    assert "machines not configured" in s3
    assert "target 65 %" in s1 and "no state history yet" in s1
    # business: production progress from quantities, cover, late deliveries, fleet, equipment
    assert "<b>25 %</b> done of 2" in s1 and "1 late" in s1
    assert re.search(r'ov-cover.*?<b class="warn">1</b> steel', s1, re.S)
    assert re.search(r'ov-incoming.*?<b class="bad">1</b> steel \(P1\)', s1, re.S)
    assert "<b>1</b> on the road · <b>1</b> arrived" in s1
    assert '<b>1</b> on the road · <b>0</b> arrived · <span class="bad">1 late</span>' in s2
    assert 'data-equipment="fault"><b>1</b> fault' in s2
    assert 'data-equipment="offline"><b>1</b> offline' in s2
    assert "Enterprise-wide" in wide and "paint" in wide and "<b>1</b> on the road" in wide
    assert '<b class="ov-running">1</b>/<b class="ov-machines">5</b>' in html
    # the site link of the hostile name is escaped in the URL and the text
    assert HOSTILE not in html and "/site/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E" in html


def test_hostile_business_names_render_as_text(duck_client):
    evil = "<script>alert(1)</script>"
    upload(duck_client, "inventory", [
        {"item": evil, "warehouse": "w", "site": evil, "quantity": 0, "as_of": now_ms(),
         "daily_use": 1},
    ])  # fmt: skip
    upload(duck_client, "purchase_orders", [
        {"order_id": '"><b>x', "item": evil, "quantity": 1, "site": evil, "expected_at": 1},
    ])  # fmt: skip
    html = duck_client.get("/").text
    assert evil not in html and '"><b>x' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (&#34;&gt;&lt;b&gt;x)" in html
    assert 'href="/site/%3Cscript%3Ealert%281%29%3C%2Fscript%3E"' in html


def test_oee_today_against_the_target(make_client):
    c = make_client(plant=plant_config())  # no site sets an OEE target: 65 % applies
    t = now_ms()
    start = day_start_ms("UTC", t)
    historian = c.app.state.historian
    store = PlantStore(historian, c.app.state.settings.plant)
    # m1 ran all day so far; m2 has no state history (offline for availability)
    running = StateTimeline(np.array([start]), np.array([t - 1]), np.array([2], np.int8))
    store.save_segments("demo", M1, running)
    parts = 0.8 * (t - 1 - start) / 10_000  # 80 % performance at a 10 s ideal cycle
    ingest(c, [
        {"tag": f"{M1}/parts_total", "ts": start + 1, "value": 0.0},
        {"tag": f"{M1}/parts_total", "ts": t - 2, "value": parts},
    ])  # fmt: skip
    s1 = cards(c.get("/").text)["s1"]
    assert s1.startswith(' oee-bad"')  # 40 % is more than 10 points under the target
    assert '<b class="kpi">40.0 %</b> <span class="muted">target 65 %</span>' in s1
    assert "A 50.0 · P 80.0 · Q 100.0 %" in s1


def test_open_alarms_by_priority_and_not_for_another_tenant(make_client):
    c = make_client(plant=plant_config(alarms=RULES))
    historian, settings = c.app.state.historian, c.app.state.settings
    t = now_ms()
    ingest(c, [{"tag": f"{m}/temp_c", "ts": t - 9000, "value": 20.0} for m in (M1, M2, M3)])
    service = AlarmService(historian, settings)
    service.run_once(t - 8000)
    ingest(c, [
        {"tag": f"{M1}/temp_c", "ts": t - 7000, "value": 95.0},  # high and urgent
        {"tag": f"{M2}/temp_c", "ts": t - 7000, "value": 85.0},  # high
        {"tag": f"{M3}/temp_c", "ts": t - 7000, "value": 85.0},  # high, then shelved
    ])  # fmt: skip
    service.run_once(t - 6000)
    service.shelve(f"temp-high@{M3}/temp_c", until_ms=t + 3_600_000, by="otto")
    found = cards(c.get("/").text)
    s1, s2 = found["s1"], found["s2"]
    assert 'data-priority="urgent">1 urgent' in s1 and 'data-priority="high">2 high' in s1
    assert "No open alarms" in s2  # the shelved one is set aside
    assert '<b class="ov-alarms">3</b> open alarms' in c.get("/").text
    # a user of another tenant sees their own (empty) overview, not this server's alarms
    other = c.get("/", params={"enterprise": "other"}).text
    assert "open alarms" not in other and "ov-alarm-line" not in other
    assert "s1" not in cards(other)  # nor this server's machine configs (issue 15, F2)


def test_business_figures_follow_uploads_and_are_kept_until_then(duck_client):
    def below_cover() -> str:
        cache = getattr(duck_client.app.state, "overview_cache", None)
        if cache is not None:
            cache.clear()  # the 2 s overview cache is not what this test is about
        card = cards(duck_client.get("/").text)["s1"]
        return re.search(r"ov-cover.*?<dd>(.*?)</dd>", card, re.S).group(1)

    row = {"warehouse": "w", "site": "s1", "quantity": 1, "as_of": now_ms(), "daily_use": 1}
    upload(duck_client, "inventory", [{"item": "steel", **row}])
    assert '<b class="warn">1</b> steel' in below_cover()
    memo = duck_client.app.state.overview_cache.business["demo"]
    below_cover()  # nothing saved since: the business figures are reused
    assert duck_client.app.state.overview_cache.business["demo"] is memo
    upload(duck_client, "inventory", [{"item": "bolts", **row}])
    assert '<b class="warn">2</b> bolts, steel' in below_cover()


def test_alarms_belong_to_the_site_of_their_source():
    assert alarm_site("s1/press/l1/m1/temp_c") == "s1"
    assert alarm_site("derived/oee/s2/weld/l2") == "s2"
    assert alarm_site("derived/oee/s3") == "s3"
    assert alarm_site("derived/chain/national/site/X-1") == ""  # enterprise-wide


def test_a_burst_of_requests_computes_once(duck_client):
    first = duck_client.get("/")
    assert "desc=computed" in first.headers["server-timing"]
    again = duck_client.get("/parts/overview")
    assert "desc=cached" in again.headers["server-timing"]
    cache = duck_client.app.state.overview_cache
    assert (cache.misses, cache.hits) == (1, 1)
    cache.clear()
    assert "desc=computed" in duck_client.get("/").headers["server-timing"]


def test_stale_figures_are_served_while_one_refresh_runs():
    cache = OverviewCache(ttl_ms=0)  # every overview is stale at once
    made: list[int] = []

    def compute(hourly) -> Overview:
        made.append(len(made) + 1)
        return Overview("demo", made[-1], [], False, False, False)

    first, cached = cache.get("demo", compute)
    assert (first.now_ms, cached) == (1, False)
    second, cached = cache.get("demo", compute)  # stale: served, one refresh behind it
    assert (second.now_ms, cached) == (1, True)
    cache.drain()
    third, cached = cache.get("demo", compute)
    assert (third.now_ms, cached) == (2, True)
    cache.drain()
    assert made == [1, 2, 3] and cache.refreshes == 2

    def broken(hourly) -> Overview:
        raise RuntimeError("database gone")

    kept, _ = cache.get("demo", broken)  # a failed refresh keeps the figures
    cache.drain()
    assert kept.now_ms == 3 and cache.get("demo", compute)[0].now_ms == 3
    cache.drain()
    old = OverviewCache(ttl_ms=0, max_age_ms=0)  # too old to show: computed while waiting
    a, _ = old.get("demo", compute)
    b, cached = old.get("demo", compute)
    assert b.now_ms == a.now_ms + 1 and not cached


def test_pages_need_a_session(duck_client):
    for path in ("/", "/parts/overview"):
        r = duck_client.get(path, headers={"Authorization": "Bearer nope"}, follow_redirects=False)
        assert r.status_code in (303, 401, 403), (path, r.status_code)


# ---------------------------------------------------------------------------- real browser
def test_browser_overview_on_a_phone_and_a_wall_screen(settings_factory, browser):
    plants = build_plants(3, 9, 7)
    settings = settings_factory(plant=demo_plant_config(plants))
    with LiveServer(settings) as live:
        t = now_ms()
        store = AuthStore(live.historian)
        store.add_user("ceo", "in the car again", now_ms=t)
        store.grant("ceo", "demo", "viewer")
        key = store.create_key("demo", "admin", name="loader", now_ms=t).secret
        http = httpx.Client(
            base_url=live.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
        )
        # today so far (at most 1 h): power and counters at 10 s, and the stored states
        zone = settings.plant.site("site-01").calendar.timezone
        start = max(day_start_ms(zone, t), t - 3_600_000)
        some = [m for k, m in enumerate(plants) if k != 4]  # m-005 stays silent: offline
        sim = tuple(SimMachine(m.path, m.rated_kw * 0.08, m.rated_kw, m.cycle_s) for m in some)
        batch = simulate(sim, start - 60_000, t - 2000, 10_000, enterprise="demo")
        live.historian.write(batch, source="test")
        store = PlantStore(live.historian, settings.plant)
        for m in settings.plant.machines:
            if any(str(x.path) == m.id for x in some):
                recompute_range(store, live.historian, "demo", m, start, t - 2000)
        load_demo_business(live.historian, "demo", [m.path for m in plants], now_ms=t)
        levels = [0.9, 0.08, 0.5, 0.95, 0.0]  # of rated power: running, idle, idle, running
        silent = plants[4]  # last heard from 4 h ago: offline
        ingest(http, [{"tag": f"{silent.path}/power_kw", "ts": t - 4 * 3_600_000, "value": 1.0}])

        def readings_now() -> None:
            """Fresh power readings (machines publish every second), then a fresh overview."""
            t = now_ms()
            ingest(http, [
                {"tag": f"{m.path}/power_kw", "ts": t - 500, "value": m.rated_kw * levels[k % 5]}
                for k, m in enumerate(plants) if k != 4
            ])  # fmt: skip
            cache = getattr(live.server.config.app.state, "overview_cache", None)
            if cache is not None:
                cache.clear()

        page = browser.new_page(viewport={"width": 390, "height": 844})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        sign_in(page, live.url + "/", "ceo", "in the car again")
        readings_now()
        page.reload()
        sites = page.locator("article.ov-site")
        assert sites.count() == 3
        site1 = page.locator('article[data-site="site-01"]')
        assert site1.locator('[data-state="running"] b').inner_text() == "2"
        assert site1.locator(".ov-oee .kpi").inner_text().endswith("%")  # today's history
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        boxes = [sites.nth(i).bounding_box() for i in range(3)]
        assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]  # stacked on a phone
        assert page.locator('article[data-site="site-01"] a[href="/site/site-01"]').count() == 1
        if SHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "overview-phone.png"), full_page=False)
        # a live event fetches the cards again, in place
        page.evaluate("window.__same_page = 7")
        with page.expect_response(lambda r: r.url.endswith("/parts/overview")) as part:
            page.evaluate("document.body.dispatchEvent(new CustomEvent('indunet:alarm'))")
        assert part.value.ok
        assert page.evaluate("window.__same_page") == 7

        page.set_viewport_size({"width": 1440, "height": 900})
        readings_now()
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1440
        # side by side on a wall screen, once the live cards have settled (a live refresh may
        # swap them while the page lays out; it failed 2 in 7 runs measured at once)
        page.wait_for_function(
            """() => {
                const s = [...document.querySelectorAll('article.ov-site')];
                const tops = s.map(e => Math.round(e.getBoundingClientRect().top));
                return s.length === 3 && new Set(tops).size === 1;
            }""",
            timeout=10_000,
        )
        boxes = [sites.nth(i).bounding_box() for i in range(3)]
        assert len({round(b["y"]) for b in boxes}) == 1
        assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]
        if SHOTS:
            page.screenshot(path=str(SCREENSHOTS / "overview-wall.png"), full_page=False)
        assert problems == []
