"""Drill-down pages site → area → line → machine: HTML over TestClient and a real Chromium.

The pages' clock is pinned (``NOW`` = 2026-06-01 12:00 UTC), so "today" is 00:00–12:00 UTC and
every figure is known: m1 ran 06–09 and 10–12 (idle 09–10), 1800 parts of which 90 scrap, at
10 s ideal cycle, so A = 5/12, P = 1, Q = 0.95; 8 kW for the hour 10–11 ≈ 8 kWh.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from indunet.auth.store import AuthStore
from indunet.plant.alarms import Alarm, AlarmState
from indunet.plant.config import PlantConfig
from indunet.plant.oee import OeeElements
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from indunet.uns import MachinePath
from indunet.web import drill, pages
from indunet.web.drill import MachineRow, alarm_counts, day_start_ms, scope_view
from tests.plant.plant_data import write
from tests.web.conftest import LiveServer, sign_in

H = 3_600_000
DAY0 = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)
NOW = DAY0 + 12 * H
M1 = "s1/press/l1/m1"
M2 = "s1/press/l1/m2"
M3 = "s1/press/l2/m3"
M4 = "s2/weld/w1/m4"
LOOSE = "s1/press/l1/m9"  # has data, not in the plant configuration
HOSTILE = "<img src=x onerror=alert(1)>"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: read at import: the settings fixture clears INDUNET_* variables before the test runs
SCREENSHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"


def at(hours: float) -> int:
    return DAY0 + round(hours * H)


def config(*extra: str) -> PlantConfig:
    """Four machines on two sites (UTC, no shifts: the whole day is planned), two reasons."""
    site = {"calendar": {"timezone": "UTC"}, "grid_kg_co2_per_kwh": 0.5}
    machine = {
        "power_tag": "power_kw",
        "thresholds": {"off_below": 1.0, "running_above": 5.0},
        "expected_interval_s": 1.0,
        "offline_after_intervals": 5,
        "total_counter": {"tag": "parts_total"},
        "scrap_counter": {"tag": "scrap_total"},
        "ideal_cycle_s": {"p": 10.0},
        "default_product": "p",
    }
    ids = (M1, M2, M3, M4, *extra)
    return PlantConfig.model_validate(
        {
            "machines": [{"id": m, **machine} for m in ids],
            "sites": {m.split("/")[0]: site for m in ids},
            "reasons": {
                "reasons": [
                    {"code": "mechanical", "label": "Mechanical fault"},
                    {"code": "waiting", "label": "Waiting for material"},
                ]
            },
        }
    )


def timeline(*rows: tuple[float, float, int]) -> StateTimeline:
    return StateTimeline(
        np.array([at(a) for a, _, _ in rows], np.int64),
        np.array([at(b) for _, b, _ in rows], np.int64),
        np.array([s for _, _, s in rows], np.int8),
    )


def fill(historian, settings, ts_now: int = NOW) -> None:
    """Stored states, counters and power of m1 and m2 (relative to ``ts_now``'s day)."""
    shift = ts_now - NOW
    store = PlantStore(historian, settings.plant)

    def tl(*rows):
        t = timeline(*rows)
        return StateTimeline(t.start_ms + shift, t.end_ms + shift, t.state)

    store.save_segments("demo", M1, tl((6, 9, 2), (9, 10, 1), (10, 12, 2)))
    store.save_segments("demo", M2, tl((0, 8, 0), (8, 11, 2)))
    write(historian, f"{M1}/parts_total", np.array([at(6), at(11.99)]) + shift, [0, 1800])
    write(historian, f"{M1}/scrap_total", np.array([at(6), at(11.99)]) + shift, [0, 90])
    secs = np.arange(0, H, 1000, dtype=np.int64)
    write(historian, f"{M1}/power_kw", at(10) + shift + secs, np.full(len(secs), 8.0))
    write(historian, f"{M2}/power_kw", [at(10.5) + shift], [20.0])
    write(historian, f"{LOOSE}/temp_c", [ts_now - 1000], [41.5])


@pytest.fixture
def pinned(monkeypatch):
    """Pin the pages' clock at NOW."""
    monkeypatch.setattr(drill, "_now_ms", lambda: NOW)
    monkeypatch.setattr(pages, "_now_ms", lambda: NOW)


@pytest.fixture
def plant_client(make_client, pinned):
    c = make_client(plant=config())
    fill(c.app.state.historian, c.app.state.settings)
    return c


def rows(html: str) -> dict[str, str]:
    """Return each machine row's HTML by machine path."""
    out = {}
    for m in re.finditer(r'<li class="machine-row [^"]+" data-machine="([^"]+)">', html):
        out[m.group(1)] = html[m.end() :].split("</li>", 1)[0]
    return out


def cards(html: str) -> dict[str, str]:
    """Return each part card's HTML by scope path."""
    out = {}
    for m in re.finditer(r'<li class="part-card" data-scope="([^"]+)">', html):
        out[m.group(1)] = html[m.end() :].split("</li>\n", 1)[0]
    return out


def summary(html: str) -> str:
    return html.split('<section class="scope-summary"', 1)[1].split("</section>", 1)[0]


def state_counts(html: str) -> dict[str, int]:
    return {s: int(n) for n, s in re.findall(r"<b>(\d+)</b> ([\w ]+)(?:</a>)?</li>", html)}


# ---------------------------------------------------------------------------- pure parts
def test_day_start_follows_the_site_time_zone():
    from zoneinfo import ZoneInfo

    assert day_start_ms(ZoneInfo("UTC"), NOW) == DAY0
    # 12:00 UTC is 20:00 in Shanghai, whose day began at 16:00 UTC the day before
    assert day_start_ms(ZoneInfo("Asia/Shanghai"), NOW) == DAY0 - 8 * H
    assert day_start_ms(ZoneInfo("America/New_York"), DAY0 + 2 * H) == DAY0 - 20 * H


def test_alarm_counts_cover_tags_states_and_derived_oee_under_each_scope():
    sources = [f"{M1}/temp_c", f"{M1}/state", "derived/oee/s1/press/l1", "derived/oee/s1", M4]
    counts = alarm_counts(sources, ["s1", "s1/press/l1", M1, M2, "s1/press/l10", "s2"])
    assert counts == {"s1": 4, "s1/press/l1": 3, M1: 2, M2: 0, "s1/press/l10": 0, "s2": 1}


def test_scope_view_sums_elements_and_nests_one_level():
    def row(path: str, state: str, oee: OeeElements | None, kwh: float | None) -> MachineRow:
        mp = MachinePath.parse(path)
        return MachineRow(mp, "", state, None, None, oee is not None, oee, kwh, 0, "live")

    a = OeeElements(pbt_ms=100, apt_ms=50, produced=10, good=9, ideal_ms=50)
    b = OeeElements(pbt_ms=300, apt_ms=300, produced=30, good=30, ideal_ms=150)
    view = scope_view(
        ("s1",),
        [row(M3, "idle", b, None), row(M1, "running", a, 2.5), row(M2, "unknown", None, None),
         row(M4, "off", a, 9.0)],
        [f"{M1}/x", "derived/oee/s1/press/l2"],
    )  # fmt: skip
    assert [str(m.path) for m in view.machines] == [M1, M2, M3]  # sorted, s2 left out
    assert view.states == {"running": 1, "idle": 1, "off": 0, "offline": 0, "unknown": 1}
    assert view.oee.availability == pytest.approx(350 / 400)  # summed, not averaged
    assert view.oee.quality == pytest.approx(39 / 40)
    assert view.kwh == 2.5 and view.alarms == 2
    assert [(c.level, c.path, len(c.machines), c.alarms) for c in view.children] == [
        ("area", "s1/press", 3, 2)
    ]
    line = scope_view(("s1", "press", "l1"), view.machines, [])
    assert line.level == "line" and line.children == [] and line.url == "/site/s1/press/l1"
    assert scope_view(("s1", "press", "l1"), [row(M2, "unknown", None, None)], []).oee is None


# ---------------------------------------------------------------------------- HTML (TestClient)
def test_line_page_shows_each_machine_state_oee_energy_and_alarms(plant_client, monkeypatch):
    c = plant_client
    alarms = [
        Alarm("a1", "hot", f"{M1}/temp_c", AlarmState.UNACK),
        Alarm("a2", "hot", f"{M1}/power_kw", AlarmState.ACKED),
        Alarm("a3", "hot", f"{M2}/power_kw", AlarmState.SHELVED),  # shelved: not open
        Alarm("a4", "low", "derived/oee/s1/press/l1", AlarmState.RTN_UNACK),
    ]
    monkeypatch.setattr(
        c.app.state, "alarms", SimpleNamespace(alarms=lambda include_normal=False: alarms)
    )
    r = c.get("/site/s1/press/l1")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    found = rows(html)
    assert list(found) == [M1, M2, LOOSE]
    m1, m2, loose = found[M1], found[M2], found[LOOSE]
    assert '<span class="state-badge state-running">running</span>' in m1
    assert "in this state since" in m1 and ">2 h</small>" in m1
    # A = 5 h running / 12 h planned, P = 1800 × 10 s / 5 h = 1, Q = 1710 / 1800
    assert "A 41.7&#8239;% · P 100.0&#8239;% · Q 95.0&#8239;%" in m1
    assert "OEE <b>39.6&#8239;%</b>" in m1
    assert '<span class="energy">8.0&#8239;kWh</span>' in m1
    assert '<a class="alarms open" href="/alarms?site=s1">2 open alarms</a>' in m1
    assert 'href="/machine/s1/press/l1/m1"' in m1
    # m2's newest segment ended at 11:00: no data since, so offline
    assert '<span class="state-badge state-offline">offline</span>' in m2
    assert '<a class="alarms" href="/alarms?site=s1">0 open alarms</a>' in m2
    assert "no state" in loose and "not in the plant configuration" in loose
    assert "oee-figures" not in loose and "data live" in loose
    top = summary(html)
    assert state_counts(top) == {"running": 1, "idle": 0, "off": 0, "offline": 1, "no state": 1}
    # line: m1 5 h + m2 3 h running in 24 h planned; the derived line alarm counts here
    assert "A 33.3&#8239;%" in top and "3 open alarms" in top
    # the figures are the API's: same calls, same numbers
    api = c.get("/api/v1/oee", params={"scope": "s1/press/l1", "start": DAY0, "end": NOW}).json()
    assert api["total"]["availability"] == pytest.approx(8 / 24)
    # crumbs link up: enterprise › site › area, the line is here
    crumbs = html.split('<nav class="crumbs"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'href="([^"]+)"', crumbs) == ["/", "/site/s1", "/site/s1/press"]
    assert '<span class="crumb here" aria-current="page">l1</span>' in crumbs
    assert "/static/style.css" in html


def test_site_and_area_pages_link_down_with_summaries(plant_client):
    c = plant_client
    site = c.get("/site/s1")
    assert site.status_code == 200
    parts = cards(site.text)
    assert list(parts) == ["s1/press"]
    assert 'href="/site/s1/press"' in parts["s1/press"] and "4 machines" in parts["s1/press"]
    assert state_counts(summary(site.text))["no state"] == 2  # m3 (no states yet) and m9
    area = c.get("/site/s1/press")
    lines = cards(area.text)
    assert list(lines) == ["s1/press/l1", "s1/press/l2"]
    assert 'href="/site/s1/press/l2"' in lines["s1/press/l2"]
    assert "1 machine<" in lines["s1/press/l2"]
    crumbs = area.text.split('<nav class="crumbs"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'href="([^"]+)"', crumbs) == ["/", "/site/s1"]
    other = c.get("/site/s2")
    assert list(cards(other.text)) == ["s2/weld"]
    assert "s1/press" not in other.text
    # the plant tree links its sites, areas and lines here
    tree = c.get("/plant").text
    for href in ("/site/s1", "/site/s1/press", "/site/s1/press/l1"):
        assert f'href="{href}"' in tree, href


def test_views_are_reused_briefly_per_tenant_and_scope(plant_client, monkeypatch):
    c = plant_client
    first = c.get("/site/s1/press/l1").text
    assert 'hx-select="#drill"' in first
    assert 'hx-trigger="every 15s, indunet:values from:body throttle:10s' in first  # live
    write(c.app.state.historian, "s1/press/l1/m8/temp_c", [NOW - 1000], [20.0])
    assert "s1/press/l1/m8" not in c.get("/site/s1/press/l1").text  # the cached view
    assert list(c.app.state.drill_cache) == [("demo", ("s1", "press", "l1"))]
    monkeypatch.setattr(drill, "DRILL_CACHE_S", 0.0)
    assert "s1/press/l1/m8" in c.get("/site/s1/press/l1").text
    # a slow page polls less often: at least four times its compute time
    monkeypatch.setattr(drill, "_monotonic", iter([1e12, 1e12 + 9]).__next__)
    assert 'hx-trigger="every 36s,' in c.get("/site/s1/press/l1").text


NOT_FOUND = [
    ("/site/s9", "site s9 is not known"),
    ("/site/s1/nope", "area s1/nope is not known"),
    ("/site/s1/press/nope", "line s1/press/nope is not known"),
    ("/site/s1/press/l1%2Bx", "line name &#39;l1+x&#39; contains the forbidden"),
    ("/site/%20", "site name is empty"),
    ("/site/s1/press/l", "line s1/press/l is not known"),  # a prefix, not a whole segment
    ("/site/s1/pre", "area s1/pre is not known"),
]


def test_unknown_or_invalid_scope_is_a_clear_404(plant_client):
    for url, says in NOT_FOUND:
        r = plant_client.get(url)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), url
        assert says in r.text and "enterprise <b>demo</b>" in r.text, url


def test_empty_scope_without_configuration_says_how_to_get_states(duck_client):
    write(
        duck_client.app.state.historian,
        f"s1/a/l/{HOSTILE}/temp_c",
        [int(time.time() * 1000)],
        [1.0],
    )
    html = duck_client.get("/site/s1/a/l").text
    assert "No machine here is in the plant configuration" in html
    assert "[[plant.machines]]" in html and "PUT /api/v1/machines/s1/a/l/MACHINE" in html
    assert "—" in summary(html)  # no OEE, no energy


def test_hostile_names_are_escaped_on_every_level(make_client, pinned):
    machine = f"{HOSTILE}/{HOSTILE}/{HOSTILE}/{HOSTILE}"
    c = make_client(plant=config(machine))
    fill(c.app.state.historian, c.app.state.settings)
    write(c.app.state.historian, f"{machine}/power_kw", [NOW - 1000], [3.0])
    enc = "%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"
    for depth in (1, 2, 3):
        url = "/site/" + "/".join([enc] * depth)
        r = c.get(url)
        assert r.status_code == 200, url
        assert HOSTILE not in r.text, url
        assert "&lt;img src=x onerror=alert(1)&gt;" in r.text
        assert f'href="/site/{enc}' in r.text  # crumbs or links down
    line = c.get("/site/" + "/".join([enc] * 3)).text
    assert f'href="/machine/{enc}/{enc}/{enc}/{enc}"' in line
    page = c.get(f"/machine/{enc}/{enc}/{enc}/{enc}")
    assert page.status_code == 200 and HOSTILE not in page.text
    assert f'href="/site/{enc}/{enc}/{enc}"' in page.text


def test_both_backends_render_the_line(make_client, pinned, request):
    from tests.conftest import PG_URL

    c = make_client(plant=config(), db=PG_URL, pg_schema=request.getfixturevalue("pg_schema"))
    fill(c.app.state.historian, c.app.state.settings)
    m1 = rows(c.get("/site/s1/press/l1").text)[M1]
    assert "A 41.7&#8239;% · P 100.0&#8239;% · Q 95.0&#8239;%" in m1
    assert '<span class="energy">8.0&#8239;kWh</span>' in m1


# ---------------------------------------------------------------------------- machine page
def test_machine_page_has_timeline_waterfall_stops_and_alarms(plant_client):
    c = plant_client
    html = c.get(f"/machine/{M1}", params={"range": "6h"}).text
    assert (
        f'id="timeline" class="chart timeline" data-machine="{M1}" data-range-ms="21600000"' in html
    )
    assert f'data-scope="{M1}" data-start-ms="{DAY0}"' in html
    assert f'hx-get="/parts/alarms?machine={M1}"' in html
    assert 'indunet:alarm from:body"' in html
    assert "every 5s[!(document.activeElement" in html  # no refresh while a shelve is picked
    stops = re.findall(r'<li class="stop state-(\w+)" data-start-ms="(\d+)">', html)
    assert stops == [("idle", str(at(9)))]  # running takes no reason; m1's only stop
    assert '<option value="waiting">Waiting for material</option>' in html
    assert 'class="reason-form"' in html
    # crumbs link up to the line, area, site and enterprise
    crumbs = html.split('<nav class="crumbs"', 1)[1].split("</nav>", 1)[0]
    assert re.findall(r'href="([^"]+)"', crumbs) == [
        "/", "/site/s1", "/site/s1/press", "/site/s1/press/l1",
    ]  # fmt: skip
    # values carry their full tag path for the live stream
    assert f'data-live-tag="{M1}/power_kw"' in html


def test_unconfigured_machine_page_says_how_to_configure_it(plant_client):
    html = plant_client.get(f"/machine/{LOOSE}").text
    assert 'id="timeline"' not in html and 'class="reason-form"' not in html
    assert "is not in the plant configuration" in html
    assert f"PUT /api/v1/machines/{LOOSE}" in html


def test_configured_machine_without_data_has_a_page(plant_client):
    r = plant_client.get(f"/machine/{M4}")
    assert r.status_code == 200 and 'id="timeline"' in r.text
    assert "No stored stops in the last 24 h" in r.text


def test_epoch_ms_tags_read_as_clock_time_and_age(plant_client):
    write(plant_client.app.state.historian, f"{M1}/edge_last_good_ms", [NOW - 1000], [NOW - 65_000])
    html = plant_client.get(f"/machine/{M1}").text
    value = html.split('data-live-tag="s1/press/l1/m1/edge_last_good_ms"', 1)[1].split("</span>")[0]
    assert value == ' data-kind="epoch_ms">11:58:55 UTC (1 min ago)'
    assert (
        'data-name="edge_last_good_ms" data-unit=""' in html and 'data-kind="epoch_ms" role' in html
    )


def _session(client, name: str, role: str):
    """Sign ``name`` in with a password session (no API key): a browser's cookie jar."""
    from fastapi.testclient import TestClient

    store = AuthStore(client.app.state.historian)
    store.add_user(name, "a long enough password", now_ms=int(time.time() * 1000))
    store.grant(name, "demo", role)
    browser = TestClient(client.app)
    login = {"name": name, "password": "a long enough password"}
    r = browser.post("/api/v1/auth/login", json=login)
    assert r.status_code == 200, r.text
    return browser, r.json()["csrf_token"]


def test_viewer_sees_no_form_and_a_forged_post_is_refused(plant_client):
    viewer, token = _session(plant_client, "vic", "viewer")
    html = viewer.get(f"/machine/{M1}").text
    assert 'class="stop state-idle"' in html and 'class="reason-form"' not in html
    body = {"machine": M1, "start_ms": at(9), "reason": "waiting"}
    r = viewer.post("/api/v1/states/reasons", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    operator, op_token = _session(plant_client, "olga", "operator")
    page = operator.get(f"/machine/{M1}").text
    assert 'class="reason-form"' in page and f'data-csrf="{op_token}"' in page
    # without the CSRF token a cookie session cannot post, even as operator
    r = operator.post("/api/v1/states/reasons", json=body)
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = operator.post("/api/v1/states/reasons", json=body, headers={"X-CSRF-Token": op_token})
    assert r.status_code == 200 and r.json()["reason"] == "waiting"
    page = operator.get(f"/machine/{M1}").text
    assert '<span class="reason">Waiting for material</span>' in page  # the label, not the code


def test_drill_pages_need_a_session(plant_client):
    from fastapi.testclient import TestClient

    anonymous = TestClient(plant_client.app)
    r = anonymous.get("/site/s1/press", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fsite%2Fs1%2Fpress"


# ---------------------------------------------------------------------------- real browser
@pytest.fixture
def live_plant(settings_factory):
    """The real app under uvicorn with the four-machine plant configured."""
    with LiveServer(settings_factory(plant=config())) as server:
        yield server


def test_browser_drill_down_gantt_waterfall_and_stop_reason(live_plant, browser):
    """Operator: overview → site → line → machine by clicking; Gantt, waterfall, a reason."""
    live = live_plant
    now = int(time.time() * 1000)
    store = AuthStore(live.historian)
    store.add_user("olga", "plant-operator-pw", now_ms=now)
    store.grant("olga", "demo", "operator")
    store.add_user("vic", "plant-viewer-pw", now_ms=now)
    store.grant("vic", "demo", "viewer")
    key = store.create_key("demo", "admin", name="test loader", now_ms=now).secret
    http = httpx.Client(base_url=live.url, timeout=10, headers={"Authorization": f"Bearer {key}"})
    fill(live.historian, SimpleNamespace(plant=config()), ts_now=now)

    page = browser.new_page(viewport={"width": 390, "height": 844})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    sign_in(page, live.url + "/", "olga", "plant-operator-pw")
    page.locator('a[href="/site/s1"]').first.click()
    page.wait_for_url("**/site/s1")
    page.locator('a[href="/site/s1/press"]').first.click()
    page.wait_for_url("**/site/s1/press")
    page.locator('a[href="/site/s1/press/l1"]').first.click()
    page.wait_for_url("**/site/s1/press/l1")
    assert page.locator("li.machine-row").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    if SCREENSHOTS:
        page.set_viewport_size({"width": 1440, "height": 900})
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "line-wall.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
    page.locator(f'li.machine-row[data-machine="{M1}"] a.machine-name').click()
    page.wait_for_url(f"**/machine/{M1}")

    drawn = """sel => { const el = document.querySelector(sel);
                        const c = el && window.echarts && echarts.getInstanceByDom(el);
                        return !!c && c.getOption().series.length > 0
                               && c.getOption().series.some(s => (s.data || []).length > 0); }"""
    page.wait_for_function(drawn, arg="#timeline", timeout=15_000)
    page.wait_for_function(drawn, arg="#waterfall", timeout=15_000)
    assert int(page.locator("#timeline").get_attribute("data-segments")) >= 1
    assert page.locator("#waterfall").get_attribute("data-bars") == "5"
    assert "OEE" in page.locator("#oee-line").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    if SCREENSHOTS:
        page.screenshot(path=str(SHOTS / "machine-phone.png"), full_page=True)

    stop = page.locator("li.stop").first
    stop.locator("select").select_option("mechanical")
    with page.expect_response(lambda r: "/api/v1/states/reasons" in r.url) as sent:
        stop.locator("button[type=submit]").click()
    assert sent.value.status == 200
    page.wait_for_function(
        "() => document.querySelector('li.stop').dataset.saved === 'mechanical'", timeout=10_000
    )
    assert stop.locator(".reason").inner_text() == "Mechanical fault"  # the label, not the code
    start_ms = int(stop.get_attribute("data-start-ms"))
    stored = http.get("/api/v1/stops", params={"scope": M1}).json()["rows"]
    assert [(s["start_ms"], s["reason"]) for s in stored if s["start_ms"] == start_ms] == [
        (start_ms, "mechanical")
    ]

    # a viewer sees the stops but no form, and a POST from the viewer's page is refused
    viewer = browser.new_page(viewport={"width": 390, "height": 844})
    sign_in(viewer, live.url + f"/machine/{M1}", "vic", "plant-viewer-pw")
    assert viewer.locator("li.stop").count() >= 1
    assert viewer.locator(".reason-form").count() == 0
    status = viewer.evaluate(
        """([m, s]) => fetch('/api/v1/states/reasons', {method: 'POST',
              headers: {'Content-Type': 'application/json',
                        'X-CSRF-Token': (document.cookie.match(/indunet_csrf=([^;]*)/) || [])[1]},
              body: JSON.stringify({machine: m, start_ms: s, reason: 'waiting'})})
            .then(r => r.status)""",
        [M1, start_ms],
    )
    assert status == 403
    assert problems == []
    http.close()
