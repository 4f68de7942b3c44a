"""The web pages: HTML over TestClient, a real Chromium on a live server, and `indunet demo`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from indunet.auth.store import AuthStore
from indunet.connect.broker import free_port
from indunet.plant.alarm_service import AlarmService
from indunet.web.pages import STATIC_DIR
from tests.web.conftest import sign_in

M1 = "s1/press/l1/m1"
M2 = "s1/press/l1/m2"
M3 = "s2/weld/l2/m3"
HOSTILE = "<img src=x onerror=alert(1)>"  # a valid segment: no '/', '#', '+' or control chars
HOSTILE_TAG = '"onmouseover="alert(2)'


def now_ms() -> int:
    return int(time.time() * 1000)


def ingest(client, records) -> None:
    r = client.post("/api/v1/ingest", json=records)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def plant(client, t: int | None = None) -> None:
    """Two sites, three machines, numeric, boolean and text tags."""
    t = t or now_ms()
    ingest(client, [
        {"tag": f"{M1}/power_kw", "ts": t - 1000, "value": 35.25},
        {"tag": f"{M1}/running", "ts": t - 1000, "value": True},
        {"tag": f"{M1}/mode", "ts": t - 1000, "value": "auto"},
        {"tag": f"{M2}/power_kw", "ts": t - 1000, "value": 2.5},
        {"tag": f"{M3}/temp_c", "ts": t - 1000, "value": 41.5},
    ])  # fmt: skip


def cards(html: str) -> list[str]:
    return re.findall(r'data-machine="([^"]+)"', html)


def value(reading_html: str) -> str:
    """Return the shown value of one reading."""
    return re.search(r'<span class="value[^"]*"[^>]*>([^<]*)</span>', reading_html).group(1)


def reading(html: str, machine: str, tag: str) -> str:
    """Return the HTML of one reading of one machine card."""
    card = html.split(f'data-machine="{machine}"', 1)[1].split("</li>", 1)[0]
    return card.split(f'data-tag="{tag}"', 1)[1].split("</div>", 1)[0]


# ---------------------------------------------------------------------------- HTML (TestClient)
def test_plant_page_lists_sites_lines_and_machines_with_values(client):
    plant(client)
    r = client.get("/plant")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert cards(html) == [M1, M2, M3]
    assert html.index('data-site="s1"') < html.index('data-site="s2"')
    for name, href in (
        ("s1", "/site/s1"), ("press", "/site/s1/press"), ("l1", "/site/s1/press/l1"),
        ("weld", "/site/s2/weld"), ("l2", "/site/s2/weld/l2"),
    ):  # fmt: skip
        assert f'<a class="scope-link" href="{href}">{name}</a>' in html
    assert '<b class="machine-count">3</b>' in html and '<b class="live-count">3</b>' in html
    assert value(reading(html, M1, "power_kw")) == "35.25"
    assert value(reading(html, M1, "running")) == "on"
    assert value(reading(html, M1, "mode")) == "auto"
    assert 'href="/machine/s1/press/l1/m1"' in html
    # live via htmx polling of the fragment; vendored scripts and the stylesheet
    assert 'hx-get="/parts/plant"' in html and 'hx-trigger="every 2s"' in html
    for asset in ("htmx.min.js", "style.css", "live.js"):
        assert f"/static/{asset}" in html


def test_fragment_is_the_tree_alone_and_follows_new_values(duck_client):
    plant(duck_client)
    part = duck_client.get("/parts/plant")
    assert part.status_code == 200
    assert "<html" not in part.text and "<head" not in part.text
    assert cards(part.text) == [M1, M2, M3]
    ingest(duck_client, [{"tag": f"{M2}/power_kw", "ts": now_ms(), "value": 777.5}])
    again = duck_client.get("/parts/plant").text
    assert value(reading(again, M2, "power_kw")) == "777.5"


def test_empty_plant_says_how_to_add_machines(duck_client):
    html = duck_client.get("/plant").text
    assert cards(html) == []
    assert "No machines yet" in html and "indunet/v1/demo/" in html


def test_stale_bad_and_undeclared_values_are_marked(duck_client):
    t = now_ms()
    duck_client.post("/api/v1/tags", json=[{"tag": f"{M1}/speed", "unit": "rpm"}])
    ingest(duck_client, [
        {"tag": f"{M1}/power_kw", "ts": t - 3_600_000, "value": 1.0},
        {"tag": f"{M1}/temp_c", "ts": t, "value": 20.0, "quality": "bad"},
        {"tag": f"{M2}/power_kw", "ts": t, "value": 2.0},
    ])  # fmt: skip
    html = duck_client.get("/plant").text
    stale = reading(html, M1, "power_kw")
    assert "q-stale" in html.split('data-tag="power_kw"')[0][-80:]
    assert '<span class="flag" title="no new value for 1 h">stale</span>' in stale
    assert '<span class="flag" title="bad quality reported by the source">bad</span>' in reading(
        html, M1, "temp_c"
    )
    speed = reading(html, M1, "speed")
    assert f'<span class="value none" data-live-tag="{M1}/speed">—</span>' in speed
    assert '—</span> <span class="unit">rpm</span>' in speed
    assert '<li class="machine status-stale" data-machine="s1/press/l1/m1">' in html
    assert '<li class="machine status-live" data-machine="s1/press/l1/m2">' in html
    # a source that went away (Sparkplug DEATH) marks its values stale at once
    duck_client.app.state.historian.mark_stale("demo", M2)
    html = duck_client.get("/parts/plant").text
    assert 'title="the source went offline">stale</span>' in reading(html, M2, "power_kw")


def test_hostile_unit_and_description_are_escaped(duck_client):
    r = duck_client.post("/api/v1/tags", json=[{
        "tag": f"{M1}/power_kw", "unit": "<script>alert(1)</script>",
        "description": '"><script>alert(2)</script><b x="',
    }])  # fmt: skip
    assert r.status_code == 200, r.text
    ingest(duck_client, [{"tag": f"{M1}/power_kw", "ts": now_ms(), "value": 1.5}])
    for url in ("/plant", "/parts/plant", f"/machine/{M1}", f"/parts/machine/{M1}"):
        html = duck_client.get(url).text
        assert "<script>alert" not in html, url
        assert '"><script' not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
    html = duck_client.get("/plant").text
    assert 'title="&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;&lt;b x=&#34;"' in html


def test_hostile_machine_and_tag_names_are_escaped_and_linked(duck_client):
    machine = f"s1/press/l1/{HOSTILE}"
    ingest(duck_client, [{"tag": f"{machine}/{HOSTILE_TAG}", "ts": now_ms(), "value": 1.0}])
    html = duck_client.get("/plant").text
    assert HOSTILE not in html and HOSTILE_TAG not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'data-tag="&#34;onmouseover=&#34;alert(2)"' in html
    href = "/machine/s1/press/l1/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"
    assert f'href="{href}"' in html
    page = duck_client.get(href)
    assert page.status_code == 200
    assert HOSTILE not in page.text and HOSTILE_TAG not in page.text
    assert '<h1 class="machine-title">&lt;img src=x onerror=alert(1)&gt;</h1>' in page.text
    assert 'data-tag="s1/press/l1/&lt;img src=x onerror=alert(1)&gt;/&#34;onmouseover' in page.text


def test_machine_page_has_a_chart_per_numeric_tag_and_a_range_selector(duck_client):
    plant(duck_client)
    r = duck_client.get(f"/machine/{M1}")
    assert r.status_code == 200
    html = r.text
    charts = re.findall(r'class="chart" data-tag="([^"]+)"', html)
    assert charts == [f"{M1}/power_kw", f"{M1}/running"]  # not the text tag "mode"
    assert 'data-type="boolean"' in html
    assert 'data-range-ms="3600000"' in html
    assert re.findall(r'<a href="\?range=(\w+)"', html) == ["15m", "1h", "6h", "24h"]
    assert 'href="?range=1h" class="current"' in html
    assert f'hx-get="/parts/machine/{M1}"' in html
    assert "/static/echarts.min.js" in html and "/static/machine.js" in html
    for crumb, href in (("demo", "/"), ("s1", "/site/s1"), ("press", "/site/s1/press"),
                        ("l1", "/site/s1/press/l1")):  # fmt: skip
        assert f'<a class="crumb" href="{href}">{crumb}</a>' in html
    assert '<span class="crumb here" aria-current="page">m1</span>' in html
    # values carry their full tag path for the live stream (static/live.js)
    assert f'<span class="value" data-live-tag="{M1}/power_kw">35.25</span>' in html
    six = duck_client.get(f"/machine/{M1}", params={"range": "6h"}).text
    assert 'data-range-ms="21600000"' in six and 'href="?range=6h" class="current"' in six
    bad = duck_client.get(f"/machine/{M1}", params={"range": "2d"})
    assert bad.status_code == 422 and "range" in bad.text


def test_machine_fragment(duck_client):
    plant(duck_client)
    part = duck_client.get(f"/parts/machine/{M1}")
    assert part.status_code == 200 and "<html" not in part.text
    assert re.findall(r'class="reading q-\w+" data-tag="(\w+)"', part.text) == [
        "mode", "power_kw", "running",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("/machine/s1/press/l1/nope", "machine s1/press/l1/nope is not known"),
        ("/machine/s9/press/l1/m1", "machine s9/press/l1/m1 is not known"),
        ("/parts/machine/s1/press/l1/nope", "machine s1/press/l1/nope is not known"),
        ("/machine/s1/press/l1/m+1", "machine name &#39;m+1&#39; contains the forbidden"),
        ("/machine/s1/press/l1/%20", "machine name is empty"),
    ],
)
def test_unknown_or_invalid_machine_is_a_clear_404(duck_client, url, says):
    plant(duck_client)
    r = duck_client.get(url)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert says in r.text and "enterprise <b>demo</b>" in r.text
    assert 'href="/"' in r.text


def test_pages_need_a_session_and_the_sign_in_form_brings_you_back(duck_client):
    from fastapi.testclient import TestClient

    plant(duck_client)
    store = AuthStore(duck_client.app.state.historian)
    store.add_user("ann", "plant-manager-pw", now_ms=now_ms())
    store.grant("ann", "demo", "viewer")
    browser = TestClient(duck_client.app)  # no key: a browser with an empty cookie jar
    r = browser.get(f"/machine/{M1}", params={"range": "6h"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fmachine%2Fs1%2Fpress%2Fl1%2Fm1%3Frange%3D6h"
    part = browser.get("/parts/plant", headers={"HX-Request": "true"}, follow_redirects=False)
    assert part.status_code == 401 and part.headers["HX-Redirect"].startswith("/login?next=")
    form = browser.get(r.headers["location"])
    assert form.status_code == 200 and 'name="csrf_token"' in form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    next_ = re.search(r'name="next" value="([^"]+)"', form.text).group(1)
    assert next_ == "/machine/s1/press/l1/m1?range=6h"
    wrong = browser.post(
        "/api/v1/auth/login/form",
        data={"name": "ann", "password": "not-her-password", "csrf_token": token, "next": next_},
        follow_redirects=False,
    )
    assert wrong.headers["location"].startswith("/login?error=wrong")
    assert "Wrong user name or password" in browser.get(wrong.headers["location"]).text
    ok = browser.post(
        "/api/v1/auth/login/form",
        data={"name": "ann", "password": "plant-manager-pw", "csrf_token": token, "next": next_},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == next_
    page = browser.get(next_)
    assert page.status_code == 200 and 'class="chart' in page.text
    assert browser.get("/api/v1/series", params={"tag": f"{M1}/power_kw"}).status_code == 200


def test_pages_are_not_in_the_openapi_schema(duck_client):
    paths = duck_client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith(("/machine", "/parts", "/static"))]


def test_series_width_gives_about_one_point_per_pixel(duck_client):
    t0 = now_ms() - 3_600_000
    ingest(duck_client, [
        {"tag": f"{M1}/power_kw", "ts": t0 + i * 1000, "value": (i * 7919) % 101}
        for i in range(3000)
    ])  # fmt: skip
    params = {"tag": f"{M1}/power_kw", "start": t0, "end": t0 + 3_000_000}
    out = duck_client.get("/api/v1/series", params={**params, "width": 400}).json()
    assert out["method"] == "m4" and out["points"] == 400
    assert 200 <= len(out["rows"]) <= 400
    values = [r["value"] for r in out["rows"]]
    assert min(values) == 0 and max(values) == 100  # M4 keeps the extremes
    lttb = duck_client.get("/api/v1/series", params={**params, "width": 50, "downsample": "lttb"})
    assert lttb.json()["method"] == "lttb" and len(lttb.json()["rows"]) == 50
    raw = duck_client.get("/api/v1/series", params=params).json()
    assert len(raw["rows"]) == 3000 and "method" not in raw
    assert duck_client.get("/api/v1/series", params={**params, "width": 2}).status_code == 422


# ---------------------------------------------------------------------------- static files
def test_vendored_files_are_served_and_match_their_record():
    record = (STATIC_DIR / "VENDORED.md").read_text()
    for name, version, licence in (
        ("echarts.min.js", "6.1.0", "Apache-2.0"),
        ("htmx.min.js", "4.0.1", "0BSD"),
    ):
        digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()
        line = next(ln for ln in record.splitlines() if ln.startswith(f"| `{name}`"))
        assert digest in line and version in line and licence in line
    for kept in ("echarts-LICENSE", "echarts-NOTICE", "echarts-LICENSE-d3", "htmx-LICENSE"):
        assert (STATIC_DIR / "licenses" / kept).stat().st_size > 100
    assert "Apache License" in (STATIC_DIR / "licenses" / "echarts-LICENSE").read_text()
    assert "Zero-Clause BSD" in (STATIC_DIR / "licenses" / "htmx-LICENSE").read_text()


def test_static_files_are_served(duck_client):
    for name, kind in (
        ("echarts.min.js", "javascript"),
        ("htmx.min.js", "javascript"),
        ("machine.js", "javascript"),
        ("style.css", "text/css"),
    ):
        r = duck_client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
        assert r.content == (STATIC_DIR / name).read_bytes()
    assert duck_client.get("/static/../pages.py").status_code == 404
    assert duck_client.get("/static/nothing.js").status_code == 404


# ---------------------------------------------------------------------------- real browser
def test_browser_live_cards_and_charts(live, browser):
    store = AuthStore(live.historian)
    store.add_user("ann", "plant-manager-pw", now_ms=now_ms())
    store.grant("ann", "demo", "viewer")
    key = store.create_key("demo", "admin", name="test loader", now_ms=now_ms()).secret
    http = httpx.Client(base_url=live.url, timeout=10, headers={"Authorization": f"Bearer {key}"})
    t = now_ms()
    history = [{"tag": f"{M1}/power_kw", "ts": t - 3_500_000 + i * 5000, "value": i % 37}
               for i in range(700)]  # fmt: skip
    plant(http, t)
    ingest(http, history)
    http.post(
        "/api/v1/tags",
        json=[
            {"tag": f"{M1}/power_kw", "unit": "kW", "description": '"><img src=x onerror=alert(3)>'}
        ],
    )
    ingest(http, [{"tag": f"s1/press/l1/{HOSTILE}/{HOSTILE_TAG}", "ts": t, "value": 1}])

    page = browser.new_page(viewport={"width": 360, "height": 740})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    sign_in(page, live.url + "/plant", "ann", "plant-manager-pw")
    for m in (M1, M2, M3, f"s1/press/l1/{HOSTILE}"):
        assert page.locator(f'li.machine[data-machine="{m}"]').count() == 1, m
    value = page.locator(f'li[data-machine="{M2}"] .reading[data-tag="power_kw"] .value')
    assert value.inner_text() == "2.5"
    # fits a 360 px phone without sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    # a new value shows up without a reload (htmx polls the fragment every 2 s)
    page.evaluate("window.__same_page = 42")
    ingest(http, [{"tag": f"{M2}/power_kw", "ts": now_ms(), "value": 777.5}])
    value.filter(has_text="777.5").wait_for(timeout=15_000)
    assert page.evaluate("window.__same_page") == 42

    # the machine page: an ECharts canvas per numeric tag, drawn with data from the API
    with page.expect_response(lambda r: "/api/v1/series" in r.url and "power_kw" in r.url) as first:
        page.locator(f'li[data-machine="{M1}"] a.machine-name').click()
    assert first.value.ok
    assert page.url == f"{live.url}/machine/{M1}"
    charts = page.locator(".chart[data-tag]")
    assert charts.count() == 2
    page.wait_for_function(
        """tag => { const el = document.querySelector(`.chart[data-tag="${tag}"]`);
                    const c = window.echarts && echarts.getInstanceByDom(el);
                    return c && c.getOption().series[0].data.length > 0; }""",
        arg=f"{M1}/power_kw",
        timeout=15_000,
    )
    power = charts.first
    assert power.locator("canvas").count() >= 1
    n = int(power.get_attribute("data-points"))
    width = power.evaluate("el => el.clientWidth")
    assert 0 < n <= width  # downsampled on the server to about the chart's width
    # zooming refetches the visible window only
    with page.expect_request(lambda r: "/api/v1/series" in r.url and "power_kw" in r.url) as req:
        power.evaluate(
            "el => echarts.getInstanceByDom(el).dispatchAction("
            "{type: 'dataZoom', dataZoomIndex: 0, start: 50, end: 60})"
        )
    params = httpx.URL(req.value.url).params
    span = int(params["end"]) - int(params["start"])
    assert 0.05 * 3_600_000 < span < 0.15 * 3_600_000
    page.locator('.ranges a[href="?range=15m"]').click()
    page.wait_for_url("**/machine/**?range=15m")
    assert page.locator(".ranges a.current").inner_text() == "15m"
    # a wall screen: charts side by side
    page.set_viewport_size({"width": 1920, "height": 1080})
    boxes = [charts.nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["x"] < boxes[1]["x"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 1920

    # hostile names render as text, link correctly and run nothing
    page.goto(live.url + "/plant")
    page.locator("a.machine-name", has_text="<img src=x onerror=alert(1)>").click()
    page.wait_for_url("**/machine/s1/press/l1/**")
    assert page.locator("h1.machine-title").inner_text() == HOSTILE
    assert problems == []
    http.close()


def test_browser_machine_chart_shades_the_anomaly_window_and_shows_evidence(live, browser):
    """A real Chromium: the anomaly's window is an ECharts markArea on its tag's chart, inside
    the visible range, and the evidence is listed beside the charts."""
    store = AuthStore(live.historian)
    store.add_user("ann", "plant-manager-pw", now_ms=now_ms())
    store.grant("ann", "demo", "viewer")
    key = store.create_key("demo", "admin", name="test loader", now_ms=now_ms()).secret
    http = httpx.Client(base_url=live.url, timeout=30, headers={"Authorization": f"Bearer {key}"})
    t = now_ms() // 60_000 * 60_000
    n = 2160  # 36 h of 1-min history, then a spike half a minute ago
    rng = np.random.default_rng(11)
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.5, n)
    tag = f"{M1}/temp_c"
    ingest(http, [{"tag": tag, "ts": t - (n - i) * 60_000, "value": float(v)}
                  for i, v in enumerate(values)])  # fmt: skip
    ingest(http, [{"tag": f"{M1}/power_kw", "ts": t - 60_000, "value": 12.0}])
    assert http.post("/api/v1/monitors", json={"id": "m1-temp", "tag": tag}).status_code == 201
    app = live.server.config.app
    service = AlarmService(live.historian, app.state.settings)
    app.state.alarms = service
    service.run_once(t)
    ingest(http, [{"tag": tag, "ts": t - 30_000, "value": 97.0}])
    service.run_once(t + 1000)
    [anomaly] = service.machine_anomalies(M1)
    assert anomaly["ts_ms"] == t - 30_000 and anomaly["since_ms"] <= anomaly["ts_ms"]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    sign_in(page, f"{live.url}/machine/{M1}", "ann", "plant-manager-pw")
    page.wait_for_function(
        """tag => { const el = document.querySelector(`.chart[data-tag="${tag}"]`);
                    const c = window.echarts && echarts.getInstanceByDom(el);
                    return c && c.getOption().series[0].data.length > 0; }""",
        arg=tag,
        timeout=15_000,
    )
    chart = page.locator(f'.chart[data-tag="{tag}"]')
    areas = chart.evaluate("el => echarts.getInstanceByDom(el).getOption().series[0].markArea.data")
    assert [[a[0]["xAxis"], a[1]["xAxis"]] for a in areas] == [
        [anomaly["since_ms"], anomaly["ts_ms"] + 60_000]
    ]
    assert areas[0][0]["name"] == "anomaly 1.00"
    # drawn inside the plot: the window's edges map to pixels within the chart's width
    left, right = chart.evaluate(
        """(el, span) => { const c = echarts.getInstanceByDom(el);
                           return span.map(v => c.convertToPixel({xAxisIndex: 0}, v)); }""",
        [anomaly["since_ms"], anomaly["ts_ms"] + 60_000],
    )
    width = chart.evaluate("el => el.clientWidth")
    assert 0 < left < right <= width
    assert chart.get_attribute("data-anomalies") == "1"
    power = page.locator(f'.chart[data-tag="{M1}/power_kw"]')  # no anomaly there: no shading
    assert power.get_attribute("data-anomalies") == "0"
    # the evidence beside the charts
    evidence = page.locator(f'section.machine-anomalies li[data-anomaly-tag="{tag}"]')
    assert evidence.count() == 1
    text = evidence.inner_text()
    assert "score 1.00" in text and "new extreme" in text and "robust z" in text and "97" in text
    assert problems == []
    http.close()


# ---------------------------------------------------------------------------- indunet demo
def _indunet() -> str:
    exe = Path(sys.executable).with_name("indunet")
    assert exe.exists(), f"{exe}: install the package (make test does)"
    return str(exe)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INDUNET_")}


def _drain(stream, into: list[str]) -> threading.Thread:
    """Read a pipe line by line in a thread (so the child never blocks on a full pipe)."""
    thread = threading.Thread(target=lambda: into.extend(iter(stream.readline, "")), daemon=True)
    thread.start()
    return thread


def _connack(port: int, user: str | None, password: str | None) -> int:
    """Return the CONNACK code (0: accepted) the broker gives an MQTT 3.1.1 client."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if user is not None:
        client.username_pw_set(user, password)
    codes: list[int] = []
    answered = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: (codes.append(rc.value), answered.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
        return codes[0]
    finally:
        client.loop_stop()
        client.disconnect()


def test_demo_serves_live_machines_and_stops_cleanly_on_ctrl_c(tmp_path, browser):
    port = free_port()
    cmd = [_indunet(), "demo", "--port", str(port), "--data-dir", str(tmp_path / "data"),
           "--machines", "6", "--sites", "2", "--hours", "1", "--nation", "500"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    out_lines: list[str] = []
    err_lines: list[str] = []
    readers = [_drain(proc.stdout, out_lines), _drain(proc.stderr, err_lines)]
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base, timeout=5)
    try:
        deadline = time.monotonic() + 30  # the promise: live machines within 30 s
        live: list[str] = []
        signed_in = False
        while time.monotonic() < deadline and proc.poll() is None:
            if not signed_in:  # the demo prints its user's random password once it serves
                m = re.search(r"sign in as user (\S+) with password (\S+)", "".join(out_lines))
                if m:
                    anonymous = httpx.get(f"{base}/", timeout=5, follow_redirects=False)
                    assert anonymous.status_code == 303  # the pages need a session
                    login = {"name": m.group(1), "password": m.group(2)}
                    signed_in = http.post("/api/v1/auth/login", json=login).status_code == 200
                    assert signed_in
            try:
                html = http.get("/plant").text if signed_in else ""
            except httpx.TransportError:
                html = ""
            live = re.findall(r'class="machine status-live" data-machine="([^"]+)"', html)
            # 6 simulated machines, plus the old press (clip-on meter) and the servo press (PLC)
            # that come in through the edge agent; temperature is live data only
            if len(live) == 8 and 'data-tag="temp_c"' in html:
                break
            time.sleep(0.5)
        assert proc.poll() is None, (out_lines, err_lines)
        assert len(live) == 8, f"live machines after 30 s: {live}"
        assert "site-01/press-shop/line-01/m-001" in live
        assert {
            "site-01/press-shop/line-01/old-press",
            "site-01/press-shop/line-01/servo-press",
        } <= set(live)
        for tag in ("power_kw", "temp_c"):
            assert f'data-tag="{tag}"' in html
        # the history of the same machines is there for the charts
        params = {
            "tag": "site-01/press-shop/line-01/m-001/power_kw",
            "start": now_ms() - 3_600_000,
            "width": 300,
        }
        assert httpx.get(f"{base}/api/v1/series", params=params).status_code == 401
        series = http.get("/api/v1/series", params=params).json()
        assert len(series["rows"]) > 100
        # the printed device key sends data over HTTP
        key = re.search(r"X-Device-Key: (\S+)", "".join(out_lines)).group(1)
        point = {"tag": "site-01/press-shop/line-01/m-001/probe", "ts": now_ms(), "value": 1}
        sent = httpx.post(f"{base}/api/v1/ingest", json=point, headers={"X-Device-Key": key})
        assert sent.status_code == 200, sent.text
        # condition monitoring without any config: anomaly monitors, spindles' RUL, the Fleet
        monitors = http.get("/api/v1/monitors").json()
        assert {m["id"] for m in monitors["monitors"]} == {
            "power-surge", "spindle-vibration", "spindle-temperature",
        }  # fmt: skip
        spindles = {"site-01/machining/line-01/m-003", "site-02/machining/line-01/m-004"}
        deadline = time.monotonic() + 60  # the first estimate follows the model's fit
        rul: list[dict] = []
        while time.monotonic() < deadline and len(rul) < 2:
            found = http.get("/api/v1/condition/rul").json()["estimates"]
            rul = [r for r in found if r["status"] == "ok"]
            time.sleep(0.5)
        assert {r["machine"] for r in rul} == spindles, rul
        for r in rul:  # cycles of an operating hour: the worn spindle near its end, one healthy
            assert r["asset_class"] == "spindle" and r["low"] <= r["rul"] <= r["high"]
        assert min(r["rul"] for r in rul) < 24 <= max(r["rul"] for r in rul)
        assert len(list((tmp_path / "data" / "rul-runs").glob("*.csv"))) == 30
        fleet = http.get("/fleet").text
        ranked = re.findall(r'<tr class="[^"]*" data-machine="([^"]+)"', fleet)
        assert len(ranked) >= 6 and ranked[0] in spindles, ranked  # the worn spindle first
        page = browser.new_page()
        page.context.add_cookies(
            [{"name": k, "value": v, "url": base} for k, v in http.cookies.items()]
        )
        page.goto(f"{base}/fleet")
        rows = page.locator("table.fleet tbody tr")
        assert rows.count() >= 6
        assert rows.first.locator("td.rul .badge").inner_text() == "alarm"
        page.close()
        # the embedded broker has tenants: its logins kept private, no anonymous client
        kept = tmp_path / "data" / "demo-broker.json"
        assert oct(kept.stat().st_mode)[-3:] == "600"
        logins = json.loads(kept.read_text())
        assert not any(p in "".join(out_lines) for p in logins.values())
        shown = re.search(r"MQTT broker mqtt://127\.0\.0\.1:(\d+) ", "".join(out_lines))
        broker_port = int(shown.group(1))
        sim = next(u for u in logins if u.endswith("-sim"))
        assert _connack(broker_port, None, None) != 0
        assert _connack(broker_port, sim, "wrong") != 0
        assert _connack(broker_port, sim, logins[sim]) == 0
    finally:
        http.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"demo did not stop within 60 s of Ctrl+C:\n{out_lines}\n{err_lines}")
        for reader in readers:
            reader.join(10)
    out, err = "".join(out_lines), "".join(err_lines)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err, err
    assert f"open http://127.0.0.1:{port}/" in out
    assert "Ctrl+C stops everything" in out and out.rstrip().endswith("indunet demo stopped.")


def test_demo_refuses_a_busy_port(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [_indunet(), "demo", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == 2
    assert f"error: port {port} on 127.0.0.1 is in use" in r.stderr and "--port" in r.stderr
    assert not (tmp_path / "d").exists()  # nothing started, nothing written


def test_demo_help_names_its_options():
    r = subprocess.run([_indunet(), "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for option in ("--port", "--mqtt-url", "--data-dir", "--machines", "--hours"):
        assert option in r.stdout


def test_machine_page_shades_anomalies_with_their_evidence(duck_client):
    t = now_ms() // 60_000 * 60_000
    n = 2160  # 36 h of 1-min history, then a spike
    rng = np.random.default_rng(1)
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.5, n)
    tag = f"{M1}/temp_c"
    ingest(duck_client, [{"tag": tag, "ts": t - (n - i) * 60_000, "value": float(v)}
                         for i, v in enumerate(values)])  # fmt: skip
    assert (
        duck_client.post("/api/v1/monitors", json={"id": "m1-temp", "tag": tag}).status_code == 201
    )
    service = AlarmService(duck_client.app.state.historian, duck_client.app.state.settings)
    duck_client.app.state.alarms = service
    service.run_once(t + 1000)
    assert "data-anomalies='[]'" in duck_client.get(f"/machine/{M1}").text
    ingest(duck_client, [{"tag": tag, "ts": t + 30_000, "value": 97.0}])
    service.run_once(t + 31_000)
    html = duck_client.get(f"/machine/{M1}").text
    shaded = json.loads(re.search(r"data-anomalies='([^']*)'", html).group(1))
    assert [(a["tag"], a["ts_ms"], a["value"]) for a in shaded] == [(tag, t + 30_000, 97.0)]
    assert f'data-anomaly-tag="{tag}"' in html and "robust z" in html and "new extreme" in html
    # the anomaly alarm belongs to the machine (its source names the tag): listed on its page
    part = duck_client.get("/parts/alarms", params={"machine": M1}).text
    assert "temp_c: anomaly (score 1.00)" in part and "robust z" in part
    assert '<a href="/machine/s1/press/l1/m1">s1/press/l1/m1</a>/temp_c</div>' in part
    assert "anomaly" not in duck_client.get("/parts/alarms", params={"machine": M2}).text
