"""The Data page: tag browser, dead letters, MQTT ingest, edge devices, historian; a browser."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.auth.web import SESSION_COOKIE
from indunet.connect.mqtt import MqttIngestStats
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from indunet.web.data import Pager, paginate
from tests.plant.plant_data import plant, write
from tests.web.conftest import LiveServer, sign_in

M1 = "s1/press/l1/m1"
M2 = "s1/press/l1/m2"
HOSTILE = "<img src=x onerror=alert(1)>"
SHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"  # read before fixtures clear INDUNET_*
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def now_ms() -> int:
    return int(time.time() * 1000)


def ingest(client, records) -> None:
    r = client.post("/api/v1/ingest", json=records)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def tag_paths(html: str) -> list[str]:
    return re.findall(r'<tr class="q-\w+" data-tag="([^"]+)"', html)


def test_tag_browser_with_unit_type_value_age_and_machine_link(client):
    t = now_ms()
    client.post("/api/v1/tags", json=[{"tag": f"{M1}/power_kw", "unit": "kW",
                                       "description": "spindle power"}])  # fmt: skip
    ingest(client, [
        {"tag": f"{M1}/power_kw", "ts": t - 5000, "value": 35.25},
        {"tag": f"{M1}/mode", "ts": t - 5000, "value": "auto"},
        {"tag": f"{M2}/power_kw", "ts": t - 5000, "value": 2.5, "quality": "bad"},
    ])  # fmt: skip
    client.post("/api/v1/tags", json=[{"tag": f"{M2}/speed", "unit": "rpm"}])
    r = client.get("/data")
    assert r.status_code == 200
    html = r.text
    assert tag_paths(html) == [f"{M1}/mode", f"{M1}/power_kw", f"{M2}/power_kw", f"{M2}/speed"]
    power = html.split(f'data-tag="{M1}/power_kw"', 1)[1].split("</tr>", 1)[0]
    assert '<b class="tag-name">power_kw</b>' in power  # the name first, its machine under it
    link = 'href="/machine/s1/press/l1/m1" title="s1/press/l1/m1/power_kw">s1/press/l1/m1</a>'
    assert link in power
    assert '<td class="num value">35.25</td>' in power and "<td>kW</td>" in power
    assert '<td class="col-type">number</td>' in power and "spindle power" in power
    assert re.search(r'<td class="age">\d+ s</td>', power)
    mode = html.split(f'data-tag="{M1}/mode"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="col-type">string</td>' in mode
    bad = html.split(f'data-tag="{M2}/power_kw"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="flag">bad</span>' in bad
    speed = html.split(f'data-tag="{M2}/speed"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="age">no value yet</td>' in speed and "—" in speed
    # search by substring and by prefix
    assert tag_paths(client.get("/data", params={"q": "POWER"}).text) == [
        f"{M1}/power_kw", f"{M2}/power_kw",
    ]  # fmt: skip
    assert tag_paths(client.get("/data", params={"prefix": M2}).text) == [
        f"{M2}/power_kw", f"{M2}/speed",
    ]  # fmt: skip
    none = client.get("/data", params={"q": "nothing-like-this"}).text
    assert tag_paths(none) == [] and "No tag matches “nothing-like-this”" in none
    # the historian this server writes to
    backend = client.app.state.historian.backend
    assert f'<b class="backend">{backend}</b>' in html


def test_tags_page_through_and_bad_paging_is_a_clear_422(duck_client):
    t = now_ms()
    ingest(duck_client, [{"tag": f"{M1}/t{n}", "ts": t, "value": n} for n in range(5)])
    first = duck_client.get("/data", params={"limit": 2}).text
    assert tag_paths(first) == [f"{M1}/t0", f"{M1}/t1"]
    assert "tags 1–2" in first and 'rel="next"' in first
    nxt = re.search(r'href="(\?[^"]*offset=2[^"]*)" rel="next"', first).group(1)
    assert "limit=2" in nxt and "dl_offset=0" in nxt
    last = duck_client.get("/data", params={"limit": 2, "offset": 4}).text
    assert tag_paths(last) == [f"{M1}/t4"] and "tags 5–5" in last
    past = duck_client.get("/data", params={"limit": 2, "offset": 50}).text
    assert tag_paths(past) == [] and "No tags here: this page lies past the end" in past
    assert "No tags yet" not in past
    for query, says in [
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 10**9}, "offset"),
        ({"dl_limit": 0}, "dl_limit"),
        ({"prefix": "s1/+"}, "forbidden"),
        ({"prefix": "a/b/c/d/e/f"}, "more than 5 levels"),
        ({"q": "x" * 201}, "q"),
    ]:
        r = duck_client.get("/data", params=query)
        assert r.status_code == 422 and says in r.text, (query, r.text)


def test_dead_letters_newest_first_with_reason_paged(duck_client):
    for n in range(3):
        duck_client.post("/api/v1/ingest", content=f"not json {n} {HOSTILE}".encode())
    html = duck_client.get("/data", params={"dl_limit": 2}).text
    letters = html.split('id="dead-letters"', 1)[1].split("</section>", 1)[0]
    payloads = re.findall(r'<pre class="payload">([^<]*)</pre>', letters)
    assert payloads == [f"not json {n} &lt;img src=x onerror=alert(1)&gt;" for n in (2, 1)]
    assert letters.count('<b class="reason">body is not valid') == 2
    assert "http:ingest" in letters and "dead letters 1–2" in letters
    assert HOSTILE not in html
    older = duck_client.get("/data", params={"dl_limit": 2, "dl_offset": 2}).text
    letters = older.split('id="dead-letters"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r"not json (\d)", letters) == ["0"] and 'rel="next"' not in letters


def test_connectors_mqtt_and_edge_devices(duck_client):
    t = now_ms()
    ingest(duck_client, [
        {"tag": f"{M1}/edge_connected", "ts": t - 2000, "value": True},
        {"tag": f"{M1}/edge_errors", "ts": t - 2000, "value": 3},
        {"tag": f"{M1}/edge_latency_ms", "ts": t - 2000, "value": 12.5},
        {"tag": f"{M1}/edge_last_error", "ts": t - 2000, "value": f"timeout {HOSTILE}"},
        {"tag": f"{M1}/edge_last_good_ms", "ts": t - 2000, "value": t - 65_000},
        {"tag": f"{M2}/edge_connected", "ts": t - 2000, "value": False},
        {"tag": "s2/old/l9/m9/edge_connected", "ts": t - 3_600_000, "value": True},
        {"tag": f"{M2}/not_edge_connected", "ts": t, "value": 1},
    ])  # fmt: skip
    duck_client.app.state.mqtt = SimpleNamespace(
        stats=MqttIngestStats(received=1234, stored_points=5678, dead_letters=9, connected=True,
                              subscribed=True, last_error="broker <gone> once")
    )  # fmt: skip
    html = duck_client.get("/data").text
    edge = html.split('class="grid edge-table"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<tr data-machine="([^"]+)"', edge) == [M1, M2, "s2/old/l9/m9"]
    m1 = edge.split(f'data-machine="{M1}"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="ok">connected</span>' in m1 and '<td class="num">3</td>' in m1
    assert "12.5 ms" in m1 and "1 min ago" in m1 and "timeout &lt;img" in m1
    assert '<span class="bad">down</span>' in edge.split(f'data-machine="{M2}"', 1)[1]
    old = edge.split('data-machine="s2/old/l9/m9"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="flag">stale (1 h)</span>' in old
    mqtt = html.split("<h3>MQTT ingest</h3>", 1)[1].split("</div>", 1)[0]
    assert "connected" in mqtt and "<dd>1234</dd>" in mqtt and "<dd>5678</dd>" in mqtt
    assert "broker &lt;gone&gt; once" in mqtt
    assert HOSTILE not in html


def test_a_site_limited_viewer_sees_only_its_site(duck_client):
    t = now_ms()
    ingest(duck_client, [
        {"tag": f"{M1}/edge_connected", "ts": t, "value": True},
        {"tag": "s2/weld/l2/m3/edge_connected", "ts": t, "value": True},
        {"tag": "s2/weld/l2/m3/power_kw", "ts": t, "value": 1.0},
    ])  # fmt: skip
    duck_client.post("/api/v1/ingest", content=b"not json at all")
    store = AuthStore(duck_client.app.state.historian)
    store.add_user("sam", "a long enough password", now_ms=t)
    store.grant("sam", "demo", "viewer", site="s2")
    session = store.start_session("sam", now_ms=t, lifetime_ms=3_600_000)
    sam = TestClient(duck_client.app, cookies={SESSION_COOKIE: session.token})
    assert sam.get("/data").status_code == 403  # must name its site
    assert sam.get("/data", params={"prefix": "s1"}).status_code == 403
    html = sam.get("/data", params={"prefix": "s2"}).text
    assert tag_paths(html) == ["s2/weld/l2/m3/edge_connected", "s2/weld/l2/m3/power_kw"]
    assert re.findall(r'<tr data-machine="([^"]+)"', html) == ["s2/weld/l2/m3"]
    assert "not json at all" not in html and "shown to users who may see the whole" in html
    assert "not json at all" in duck_client.get("/data").text  # the enterprise admin sees it


def test_empty_page_says_how_to_get_data(duck_client):
    html = duck_client.get("/data").text
    assert "No tags yet in enterprise <b>demo</b>" in html and "/api/v1/ingest" in html
    assert "No dead letters" in html
    assert "No MQTT ingest runs in this process" in html and "--mqtt-url" in html
    assert "No edge agents report yet" in html and "indunet edge run" in html
    assert "DuckDB file indunet.duckdb" in html  # the file name, not the server's directories


def test_pager_links_keep_the_other_parameters():
    page, p = paginate(list(range(7)), 3, 2, params=(("q", "a b"), ("prefix", "")))
    assert page == [3, 4] and (p.first, p.last, p.more) == (4, 5, True)
    assert p.next_url == "?q=a+b&offset=5&limit=2" and p.prev_url == "?q=a+b&offset=1&limit=2"
    assert Pager(0, 2, 2, False).prev_url is None and Pager(4, 2, 0, False).past_end


def _two_hours_of_power(historian, settings) -> None:
    """m1 runs an hour at 8 kW then idles at 2 kW; m2 runs at 6 kW; both until a minute ago."""
    end = now_ms() - 60_000
    start = end - 2 * 3_600_000
    ts = np.arange(start, end, 2000, dtype=np.int64)  # within the machines' 5 s gap limit
    write(historian, f"{M1}/power_kw", ts, np.where(ts < start + 3_600_000, 8.0, 2.0))
    write(historian, f"{M2}/power_kw", ts, np.full(len(ts), 6.0))
    store = PlantStore(historian, settings.plant)
    mid = start + 3_600_000
    store.save_segments("demo", M1, StateTimeline(np.array([start, mid]), np.array([mid, end]),
                                                  np.array([2, 1], np.int8)))  # fmt: skip
    store.save_segments("demo", M2, StateTimeline(np.array([start]), np.array([end]),
                                                  np.array([2], np.int8)))  # fmt: skip


def test_browser_pages_fit_a_phone_and_a_wall(settings_factory, browser):
    """Energy, Business and Data at 390 px (no sideways scroll) and 1440 px, light and dark."""
    settings = settings_factory(plant=plant())
    with LiveServer(settings) as live:
        _two_hours_of_power(live.historian, settings)
        _pages_fit(live, browser)


def _utc_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def _pages_fit(live, browser) -> None:
    store = AuthStore(live.historian)
    store.add_user("ann", "plant-manager-pw", now_ms=now_ms())
    store.grant("ann", "demo", "admin")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, live.url + "/data", "ann", "plant-manager-pw")
    t = now_ms()
    me = page.evaluate("async () => (await (await fetch('/api/v1/auth/me')).json()).csrf_token")
    post = """async ([url, body, csrf]) => (await fetch(url, {method: 'POST',
        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
        body: JSON.stringify(body)})).status"""
    long_name = "a-very-long-machine-name-that-could-push-the-page-sideways-" * 2
    points = [
        {"tag": f"site-01/press-shop/line-01/{long_name[:120]}/power_kw", "ts": t, "value": 3.5}
    ] + [{"tag": f"{M1}/t{n}", "ts": t, "value": n} for n in range(8)]
    assert page.evaluate(post, ["/api/v1/ingest", points, me]) == 200
    rows = [{"item": f"item-{n}", "warehouse": "main", "quantity": n, "as_of": t, "daily_use": 2}
            for n in range(6)]  # fmt: skip
    assert page.evaluate(post, ["/api/v1/business/inventory", rows, me]) == 200
    orders = [{"order_id": f"P{n}", "item": "item-1", "quantity": 10, "done_quantity": n,
               "due_at": t + (n - 3) * 86_400_000} for n in range(5)]  # fmt: skip
    assert page.evaluate(post, ["/api/v1/business/production_orders", orders, me]) == 200
    # the two hours of power may start yesterday (a run just after midnight): ask for both days
    days = sorted({_utc_day(t - 3 * 3_600_000), _utc_day(t)})
    query = {"/energy": f"?start={days[0]}&end={days[-1]}"}
    for path in ("/data", "/business", "/energy"):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(live.url + path + query.get(path, ""))
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        if path == "/business":  # items below cover and late orders are highlighted
            assert page.locator("tr.attention").count() == 6 + 4  # due before now: P0–P3
        if path == "/energy":  # the bar chart is drawn from the rendered numbers
            page.wait_for_function("() => document.querySelector('#energy-chart canvas') !== null")
            assert page.locator(".energy-table tr.lvl-machine").count() == 2
            assert float(page.locator(".total-kwh").inner_text()) > 10  # 2 h of 8/2 + 6 kW
        page.evaluate("document.documentElement.dataset.theme = 'dark'")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        page.evaluate("document.documentElement.dataset.theme = 'light'")
        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(live.url + path + query.get(path, ""))  # charts drawn at the wall's width
        assert page.evaluate("document.documentElement.scrollWidth") <= 1440, path
        if SHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = {"/data": "data-wall", "/business": "business-wall", "/energy": "energy-wall"}
            page.screenshot(path=str(SCREENSHOTS / f"{name[path]}.png"))
    assert problems == []
