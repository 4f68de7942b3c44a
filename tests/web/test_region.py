"""The regional resumption pages: HTML over TestClient, and the map drawn in a real Chromium."""

from __future__ import annotations

import html as html_lib
import json
import os
import re
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.region.simulate import days_between, simulate_nation
from indunet.region.store import open_region_store
from indunet.web import region as region_web
from indunet.web.pages import STATIC_DIR
from tests.region.conftest import CORRECTION, READINGS, REGISTRY, TODAY, write
from tests.web.conftest import LiveServer, sign_in

HOSTILE_NAME = "<script>alert(1)</script> Steel"
HOSTILE_CITY = '"><img src=x onerror=alert(2)>'
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: read at import: the settings fixture clears INDUNET_* variables
TAKE_SCREENSHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"
RULE = {"theta_by_industry": {"C31": 0.5}, "baseline_min_days": 2}


def _chain(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.auth.key_for('*')}"}


@pytest.fixture
def region_client(make_client, tmp_path: Path) -> TestClient:
    """The hand-checked fixture plus one hostile-named stopped enterprise in Guangdong."""
    client = make_client(region=RULE)
    settings = client.app.state.settings
    hostile = (
        REGISTRY + f'E7,"{HOSTILE_NAME}",Guangdong,"{HOSTILE_CITY.replace(chr(34), 2 * chr(34))}"'
        ",,C39,small,,,,,,\n"
    )
    readings = READINGS + "E7,2019-12-01,10\nE7,2019-12-02,10\nE7,2020-03-02,1\n"
    with open_region_store(settings.region, settings.data_dir) as store:
        report = store.import_registry(write(tmp_path / "reg.csv", hostile), effective=TODAY)
        assert report.errors == [], report.errors
        store.import_readings(write(tmp_path / "r.csv", readings), today=TODAY)
        store.import_readings(write(tmp_path / "c.csv", CORRECTION), today=TODAY)
    return client


def _page(client: TestClient, url: str, status: int = 200) -> str:
    r = client.get(url, headers=_chain(client))
    assert r.status_code == status, r.text
    if status == 200:
        assert r.headers["content-type"].startswith("text/html")
    return r.text


def _embedded(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="region-data">(.*?)</script>', html, re.S)
    assert m, "no embedded region data"
    return json.loads(m.group(1))


def _row(html: str, table: str, key: str) -> str:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return body.split(key, 1)[1].split("</tr>", 1)[0]


def test_nation_page_headline_table_map_and_trend(region_client: TestClient) -> None:
    html = _page(region_client, "/region?date=2020-03-02")
    # 7 enterprises: on 2 Mar E2, E3, E5 (corrected) resumed; E1, E7 stopped -> 3 of 5 = 60 %
    headline = re.search(r'<p class="region-headline" id="headline">(.*?)</p>', html, re.S)
    assert headline and headline.group(1).startswith("2020-03-02: Resumption 60.0 %, +26.7 points")
    hubei = _row(html, "province-table", 'data-province="Hubei"')
    assert 'href="/region/Hubei?date=2020-03-02&amp;theta=0.3"' in hubei
    assert re.findall(r'<td class="num rate">([^<]*)</td>', hubei) == ["100.0"]
    guangdong = _row(html, "province-table", 'data-province="Guangdong"')
    assert re.findall(r'<td class="num rate">([^<]*)</td>', guangdong) == ["33.3"]
    assert "/api/v1/region/rate.csv?date=2020-03-02&amp;by=province&amp;theta=0.3" in html
    data = _embedded(html)
    rows = {r["name"]: r for r in data["map"]["rows"]}
    assert set(rows) == {"Guangdong", "Hubei"}
    assert rows["Hubei"]["value"] == 100.0 and rows["Guangdong"]["value"] == 33.3
    assert rows["Guangdong"]["change"] == pytest.approx(33.3 - 50.0, abs=0.1)
    assert data["map"]["file"] == "/static/china-provinces.json"
    assert [t["day"] for t in data["trend"]][:2] == ["2019-12-01", "2019-12-02"]
    assert data["trend"][-1]["day"] == "2020-03-02" and data["trend"][-1]["rate"] == 60.0
    # lowest province first; lagging industries named
    lowest = html.split('id="lowest-provinces"', 1)[1].split("</ol>", 1)[0]
    assert lowest.index("Guangdong") < lowest.index("Hubei")
    assert "C39" in html.split('id="lagging-industries"', 1)[1].split("</ol>", 1)[0]


def test_csv_link_gives_the_table(region_client: TestClient) -> None:
    html = _page(region_client, "/region?date=2020-03-02")
    href = html_lib.unescape(re.search(r'href="(/api/v1/region/rate\.csv[^"]*)"', html).group(1))
    r = region_client.get(href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("day,province_code,province") and len(lines) == 3


def test_default_day_is_the_last_with_readings(region_client: TestClient) -> None:
    html = _page(region_client, "/region")
    assert "2020-03-02: Resumption" in html
    assert 'value="2020-03-02"' in html and 'max="2020-03-02"' in html


def test_theta_choice_is_computed_live(region_client: TestClient) -> None:
    html = _page(region_client, "/region?date=2020-03-02&theta=0.05")
    assert "Computed live from the readings" in html
    assert '<option value="0.05" selected>' in html
    # θ 0.05: E1 (20 > 5) is back too, E7 (1 > 0.5) as well -> 5 of 5
    assert "Resumption 100.0 %" in html
    _page(region_client, "/region?theta=9", 422)
    _page(region_client, "/region?date=2020-02-31", 422)


def test_map_names_match_the_vendored_map_file() -> None:
    geo = json.loads((STATIC_DIR / "china-provinces.json").read_text(encoding="utf-8"))
    features = {f["properties"]["name"] for f in geo["features"]}
    assert len(region_web.MAP_NAMES) == 31
    assert set(region_web.MAP_NAMES) <= features  # every mainland province has a shape
    assert features - set(region_web.MAP_NAMES) == {"台湾", "香港", "澳门"}
    assert region_web.MAP_NAMES["内蒙古"] == "Inner Mongolia"
    assert region_web.MAP_NAMES["广西"] == "Guangxi" and region_web.MAP_NAMES["新疆"] == "Xinjiang"
    assert (STATIC_DIR / "china-provinces.json").stat().st_size < 1_000_000


def test_drill_down_cities_industries_sizes_and_call_list(region_client: TestClient) -> None:
    html = _page(region_client, "/region/%E5%B9%BF%E4%B8%9C?date=2020-03-02")  # 广东
    assert "<h1>Guangdong <small>2020-03-02</small></h1>" in html
    assert "Resumption 33.3 %" in html
    shenzhen = _row(html, "city-table", "Shenzhen")
    assert re.findall(r'<td class="num rate">([^<]*)</td>', shenzhen) == ["50.0"]
    assert "C31" in html.split('id="industry-table"', 1)[1].split("</table>", 1)[0]
    assert "small" in html.split('id="size-table"', 1)[1].split("</table>", 1)[0]
    calls = html.split('id="enterprise-table"', 1)[1].split("</table>", 1)[0]
    # not resumed: E1 stopped, E7 stopped, E6 unknown (no baseline); E2 resumed is not listed
    listed = re.findall(r'data-enterprise="([^"]+)"', calls)
    assert sorted(listed) == ["E1", "E6", "E7"]
    assert "3 enterprises" in html
    stopped = _page(region_client, "/region/Guangdong?date=2020-03-02&state=stopped")
    calls = stopped.split('id="enterprise-table"', 1)[1].split("</table>", 1)[0]
    assert sorted(re.findall(r'data-enterprise="([^"]+)"', calls)) == ["E1", "E7"]
    assert "state=stopped&amp;theta=0.3&amp;format=csv" in stopped


def test_drill_down_pages(region_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(region_web, "PAGE_SIZE", 2)
    first = _page(region_client, "/region/Guangdong?date=2020-03-02")
    assert "page 1 of 2" in first and 'rel="next"' in first and 'rel="prev"' not in first
    second = _page(region_client, "/region/Guangdong?date=2020-03-02&page=2")
    calls = second.split('id="enterprise-table"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"data-enterprise=", calls)) == 1 and 'rel="prev"' in second


def test_unknown_province_and_bad_input(region_client: TestClient) -> None:
    html = _page(region_client, "/region/Atlantis", 422)
    assert "&#39;Atlantis&#39; is not a mainland province" in html
    html = _page(region_client, "/region/%3Cb%20onclick=x%3Ey", 422)
    assert "<b onclick=x>" not in html and "&lt;b onclick=x&gt;y" in html
    _page(region_client, "/region/Hubei?state=everything", 422)
    _page(region_client, "/region/Hubei?page=0", 422)


def test_hostile_names_render_as_text(region_client: TestClient) -> None:
    html = _page(region_client, "/region/Guangdong?date=2020-03-02")
    assert HOSTILE_NAME not in html and "<img src=x" not in html
    assert html_lib.escape(HOSTILE_NAME, quote=False) in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html  # the city, in the city table
    nation = _page(region_client, "/region?date=2020-03-02")
    assert "<script>alert" not in nation


def test_watchlist_page(region_client: TestClient) -> None:
    html = _page(region_client, "/region/watchlist?date=2020-03-02")
    # E3 Wuhan Motors is key; E1, E2, E4 supply it: E1 stopped, E4 unknown
    assert 'data-enterprise="E3"' in html
    assert (
        "Wuhan Motors is back but 2 of its 3 suppliers are not back (1 stopped, 1 unknown)" in html
    )
    assert "Pearl Electronics" in html


def test_empty_state_and_loading(make_client) -> None:
    client = make_client()
    html = _page(client, "/region")
    assert 'data-state="empty"' in html and "indunet region simulate" in html
    assert "indunet region import-readings" in html
    assert 'data-state="empty"' in _page(client, "/region/Hubei")
    assert 'data-state="empty"' in _page(client, "/region/watchlist")
    client.app.state.region_loading = True
    assert "still loading the simulated nation" in _page(client, "/region")


def test_plant_viewer_gets_403_and_signed_out_goes_to_login(region_client: TestClient) -> None:
    store = AuthStore(region_client.app.state.historian)
    viewer = store.create_key("demo", "viewer", name="plant viewer", now_ms=0).secret
    admin = store.create_key("demo", "admin", name="plant admin", now_ms=0).secret
    for url in ("/region", "/region/Hubei", "/region/watchlist"):
        for key in (viewer, admin):
            r = region_client.get(url, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 403, (url, r.status_code)
            assert "Hubei" not in r.text
    r = region_client.get("/region", headers={"Cookie": ""}, auth=None, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fregion")


# ---------------------------------------------------------------- browser


def _small_nation(data_dir: Path, work: Path, enterprises: int, end: date) -> None:
    """Simulate a small nation from December 2019 and load it (one readings file)."""
    from indunet.region.settings import RegionSettings

    nation = simulate_nation(enterprises, seed=7)
    work.mkdir(parents=True, exist_ok=True)
    nation.registry.write_parquet(work / "registry.parquet")
    frames = [
        nation.readings(d).with_columns(pl.lit(d).alias("date"))
        for d in days_between(date(2019, 12, 1), end)
    ]
    pl.concat(frames).write_parquet(work / "readings.parquet")
    with open_region_store(RegionSettings(), data_dir) as store:
        store.import_registry(work / "registry.parquet", effective=date(2019, 12, 1))
        store.import_readings(work / "readings.parquet", today=end)


def test_browser_map_draws_provinces(settings_factory, browser, tmp_path: Path) -> None:
    shots = TAKE_SCREENSHOTS
    settings = settings_factory()
    end = date(2020, 4, 30) if shots else date(2020, 3, 6)
    _small_nation(settings.data_dir, tmp_path / "nation", 6000 if shots else 800, end)
    with LiveServer(settings) as live:
        store = AuthStore(live.historian)
        store.add_user("cora", "chain-operator-pw", now_ms=0)
        store.grant("cora", "*", "chain")
        page = browser.new_page(viewport={"width": 390, "height": 844})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        url = f"{live.url}/region?date=2020-03-05"
        sign_in(page, url, "cora", "chain-operator-pw")
        page.wait_for_function(
            """() => { const el = document.getElementById("region-map");
                       const c = window.echarts && echarts.getInstanceByDom(el);
                       return c && c.getOption().series[0].data.length > 0; }""",
            timeout=20_000,
        )
        series = page.evaluate(
            """() => { const c = echarts.getInstanceByDom(document.getElementById("region-map"));
                       const s = c.getOption().series[0];
                       return {type: s.type, map: s.map, data: s.data,
                               named: Object.values(s.nameMap)}; }"""
        )
        assert series["type"] == "map" and series["map"] == "china-provinces"
        names = {d["name"] for d in series["data"]}
        assert {"Guangdong", "Hubei", "Inner Mongolia"} <= names and len(names) >= 25
        rated = {d["name"]: d["value"] for d in series["data"] if d.get("value") is not None}
        assert len(rated) >= 25 and all(0 <= v <= 100 for v in rated.values())
        assert set(rated) <= set(series["named"])  # every figure sits on a named shape
        trend_days = page.get_attribute("#region-trend", "data-days")
        assert trend_days == str((end - date(2019, 12, 1)).days + 1)
        assert page.locator("#region-map canvas").count() >= 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        # clicking a province's link drills down
        page.locator('#province-table a:text-is("Hubei")').click()
        page.wait_for_url("**/region/Hubei?**")
        assert page.locator("#enterprise-table").count() == 1
        page.wait_for_function(
            """() => { const c = echarts.getInstanceByDom(document.getElementById("region-trend"));
                       return c && c.getOption().series[0].data.length > 0; }""",
            timeout=20_000,
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        if shots:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.goto(url)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(SCREENSHOTS / "region-phone.png"), full_page=False)
            wall = browser.new_page(viewport={"width": 1440, "height": 900})
            sign_in(wall, url, "cora", "chain-operator-pw")
            wall.wait_for_timeout(1500)
            wall.screenshot(path=str(SCREENSHOTS / "region-wall.png"))
        assert problems == []


def test_trend_covers_at_most_the_page_limit() -> None:
    assert region_web.TREND_DAYS >= 366
    assert timedelta(days=region_web.TREND_DAYS) > timedelta(days=150)


def _uplink(consumer, ent: str, day: str, kwh: float, now: int) -> None:
    from indunet.federation import contract

    for r in (
        contract.build(ent, "kwh_daily", "s1", day,
                       {"kwh": kwh, "coverage": 1.0, "sites": ["s1"], "timezone": "UTC"},
                       computed_ms=now, rev=1),
        contract.build(ent, "states", "s1", contract.minute_period(now),
                       {"machines": 2, "running": 2, "idle": 0, "off": 0, "offline": 0,
                        "unknown": 0, "at_ms": now}, computed_ms=now, rev=1),
    ):  # fmt: skip
        assert consumer.handle(r.topic, r.payload()) == "stored"


def test_live_uplinks_beside_the_nation_and_registering_a_waiting_one(
    make_client, tmp_path: Path
) -> None:
    """Registered uplinks show live with the monitor's state; an unregistered one waits, listed."""
    import time as time_mod

    from indunet.api.routes.region import region_store_of
    from indunet.federation.regional import UplinkConsumer

    client = make_client(region=RULE)
    settings = client.app.state.settings
    with open_region_store(settings.region, settings.data_dir) as store:
        store.import_registry(write(tmp_path / "reg.csv", REGISTRY), effective=TODAY)
        store.import_readings(write(tmp_path / "r.csv", READINGS), today=TODAY)
    app = client.app
    consumer = UplinkConsumer(app.state.historian, settings, lambda: region_store_of(app))
    app.state.uplink_consumer = consumer  # not started: messages are handed over directly
    now = int(time_mod.time() * 1000)
    day = str(date.today() - timedelta(days=1))
    _uplink(consumer, "acme", day, 900.0, now)
    _uplink(consumer, "bolt", day, 50.0, now)
    consumer.sync()  # neither is in the registry: their readings wait in the quarantine
    quarantined, _ = region_store_of(app).quarantine(source="uplink")
    assert {q["enterprise_id"] for q in quarantined} == {"acme", "bolt"}

    html = _page(client, "/region")
    assert "Live from plant uplinks" in html
    waiting = html.split('id="unregistered-uplinks"', 1)[1].split("</table>", 1)[0]
    assert 'data-enterprise="acme"' in waiting and 'data-enterprise="bolt"' in waiting
    assert 'action="/region/uplinks/register"' in waiting

    row = {"enterprise_id": "acme", "name": "Acme Presses", "province": "Hubei",
           "city": "Wuhan", "industry": "C34", "size": "medium", "baseline_kwh": 1000}  # fmt: skip
    # bad input: every refused field named, nothing stored
    bad = [{**row, "province": "Atlantis"}, {**row, "enterprise_id": "bolt", "baseline_kwh": -5}]
    r = client.post("/api/v1/region/registry", json={"enterprises": bad}, headers=_chain(client))
    assert r.status_code == 422, r.text
    assert "province" in r.text and "baseline_kwh" in r.text
    assert region_store_of(app).registered(["acme", "bolt"]) == set()
    r = client.post("/api/v1/region/registry", json={"enterprises": [row]}, headers=_chain(client))
    assert r.status_code == 200 and r.json()["new"] == 1, r.text
    # a plant's admin may not register enterprises in the region, by API or by form
    admin = AuthStore(app.state.historian).create_key("demo", "admin", name="a", now_ms=0).secret
    plant_admin = {"Authorization": f"Bearer {admin}"}
    r = client.post("/api/v1/region/registry", json={"enterprises": [row]}, headers=plant_admin)
    assert r.status_code == 403
    assert client.post("/region/uplinks/register", data={}, headers=plant_admin).status_code == 403
    # the form on the page registers the waiting bolt
    form = {"enterprise_id": "bolt", "name": "Bolt Works", "province": "Guangdong",
            "city": "Shenzhen", "industry": "C33", "size": "small",
            "baseline_kwh": "1000"}  # fmt: skip
    r = client.post("/region/uplinks/register", data=form, headers=_chain(client),
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    consumer.sync()  # the resent days become readings

    html = _page(client, "/region")
    # the default day stays the nation's last full day, not the uplinks' lone day
    assert re.search(r'id="headline">2020-03-02:', html), html[:2000]
    assert [p["day"] for p in _embedded(html)["trend"]][-1] == "2020-03-02"
    live = html.split('id="uplink-table"', 1)[1].split("</table>", 1)[0]
    acme = live.split('data-enterprise="acme"', 1)[1].split("</tr>", 1)[0]
    bolt = live.split('data-enterprise="bolt"', 1)[1].split("</tr>", 1)[0]
    # 900 > 0.3 × 1000 resumed, 50 is not: the monitor's rule on the uplinked kWh
    assert "resumed" in acme and '<span class="badge live"' in acme and "900" in acme
    assert "stopped" in bolt and "Bolt Works" in bolt and day in bolt
    assert 'id="unregistered-uplinks"' not in html
    # the monitor itself has them now: readings from the uplinks, no longer waiting
    states = region_store_of(app).states_of([("acme", date.fromisoformat(day))])
    assert states[0]["kwh"] == 900.0 and states[0]["baseline_kwh"] == 1000.0
