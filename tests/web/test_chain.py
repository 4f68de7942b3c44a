"""Supply-chain pages: HTML over TestClient (both backends), pure views, and a real Chromium."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.chain.graph import build_supply_graph
from indunet.chain.live import ChainLive
from indunet.sim.chain_demo import DEMO_NETWORK, HUBEI_SCENARIO, demo_network, load_demo_chain
from indunet.web.chain import graph_view, resilience_rows
from tests.chain.networks import TWO_SOURCES
from tests.web.conftest import sign_in

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"  # read before fixtures clear INDUNET_*
HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def _hostile_network() -> dict:
    """TWO_SOURCES with a hostile site id, region and product name."""
    doc = copy.deepcopy(TWO_SOURCES)
    doc["nodes"][0]["id"] = HOSTILE
    doc["nodes"][0]["region"] = f"R'\"{HOSTILE}"
    doc["grid_factors"] = {f"R'\"{HOSTILE}": 0.9, "R2": 0.3}
    return doc


def _key(client: TestClient, enterprise: str, role: str) -> dict[str, str]:
    store = AuthStore(client.app.state.historian)
    secret = store.create_key(enterprise, role, name=f"{role} test", now_ms=0).secret
    return {"Authorization": f"Bearer {secret}"}


def _put(client: TestClient, name: str, doc: dict, enterprise: str = "") -> None:
    q = f"?enterprise={enterprise}" if enterprise else ""
    r = client.put(f"/api/v1/chain/networks/{name}{q}", json=doc)
    assert r.status_code == 200, r.text


def _scenario(client: TestClient, name: str, doc: dict) -> dict:
    r = client.post(f"/api/v1/chain/networks/{name}/scenarios", json=doc)
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------- pure views
@pytest.fixture(scope="module")
def demo():
    net = demo_network()
    return net, build_supply_graph(net)


def test_large_graph_is_summarised_by_region_and_tier(demo) -> None:
    net, g = demo
    view = graph_view(net, g, max_nodes=100)
    assert view["summarised"] and view["sites"] == len(net.nodes)
    groups = [n for n in view["nodes"] if not n["id"].startswith("market:")]
    assert sum(n["value"] for n in groups) == len(net.nodes)
    assert "Hubei · tier 0" in {n["id"] for n in groups}
    assert len(groups) < 100
    ids = {n["id"] for n in view["nodes"]}
    assert all(link["source"] in ids and link["target"] in ids for link in view["links"])
    assert view["categories"][-1] == "products"
    small = graph_view(net, g, max_nodes=1000)
    assert not small["summarised"] and len(small["nodes"]) == len(net.nodes) + len(net.products)


def test_graph_filters(demo) -> None:
    net, g = demo
    hubei = graph_view(net, g, region="Hubei")
    sites = [n for n in hubei["nodes"] if not n["id"].startswith("market:")]
    assert sites and {n["region"] for n in sites} == {"Hubei"}
    ecu = graph_view(net, g, item="ECU")
    items = {n["item"] for n in ecu["nodes"] if "item" in n}
    # the makers of ECUs, their suppliers (chips, boards) and their customers (cars)
    assert {"ECU", "MCU chip", "PCB", "sedan", "EV"} <= items
    assert "N95 mask" not in items
    none = graph_view(net, g, region="Hubei", industry="no such industry")
    assert none["nodes"] == [] and none["links"] == []
    flagged = graph_view(net, g, region="Jiangsu", flagged=frozenset({"JS-FS-01"}))
    assert next(n for n in flagged["nodes"] if n["id"] == "JS-FS-01")["flagged"] == 1


def test_resilience_rows_put_at_risk_first() -> None:
    table = {
        "nodes": [
            {"id": "a", "tts_weeks": 9, "ttr_weeks": 2, "rei": 1.0, "at_risk": False},
            {"id": "b", "tts_weeks": 1, "ttr_weeks": 2, "rei": 0.1, "at_risk": True},
            {"id": "c", "tts_weeks": 9, "ttr_weeks": 2, "rei": 0.5, "at_risk": False},
        ],
        "warnings": ["w"],
    }
    rows = resilience_rows(table, limit=2)
    assert [r["id"] for r in rows["rows"]] == ["b", "a"]
    assert (rows["total"], rows["at_risk"], rows["warnings"]) == (3, 1, ["w"])


# ---------------------------------------------------------------- HTML
def test_empty_state_says_how_to_get_data(duck_client: TestClient) -> None:
    r = duck_client.get("/chain")
    assert r.status_code == 200
    assert "No supply network is stored" in r.text and "indunet demo" in r.text
    assert 'aria-current="page"' in r.text  # the Chain section is highlighted
    r = duck_client.get("/chain/missing")
    assert r.status_code == 404 and "no supply network named" in r.text


def test_network_page_shows_analyses_and_scenarios(client: TestClient) -> None:
    _put(client, "two", TWO_SOURCES)
    html = client.get("/chain").text
    assert 'data-network="two"' in html and "2 sites" in html
    page = client.get("/chain/two")
    assert page.status_code == 200
    html = page.text
    assert 'id="chain-graph-data"' in html
    data = json.loads(re.search(r'id="chain-graph-data">(.*?)</script>', html, re.S).group(1))
    assert {n["id"] for n in data["nodes"]} >= {"A", "B", "market:P"}
    # TTS/TTR: A is at risk (TTS 3 < TTR 4), B is not (hand-checked in tests/chain/networks.py)
    assert re.search(r'class="chain-at-risk" data-site="A"', html)
    assert 'class="" data-site="B"' in html
    assert "1 of 2 sites at risk" in html
    assert "No scenario saved yet" in html and "chain-run-form" in html
    assert "kg CO2 / unit" in html
    first = _scenario(client, "two", {"name": "A out", "sites": ["A"], "weeks": 4})
    assert first["products_hit"] == 1
    _scenario(client, "two", {"name": "R2 out", "region": "R2", "weeks": 1})
    html = client.get("/chain/two").text
    assert "Saved scenarios compared" in html and ">A out</th>" in html and ">R2 out</th>" in html
    part = client.get("/parts/chain/two/scenario", params={"scenario": "A out"})
    assert part.status_code == 200
    assert (
        'data-scenario="A out"' in part.text and 'class="chain-hit" data-product="P"' in part.text
    )
    assert client.get("/parts/chain/two/scenario", params={"scenario": "nope"}).status_code == 404
    assert client.get("/parts/chain/two/scenario").status_code == 422


def test_hostile_names_render_as_text(duck_client: TestClient) -> None:
    _put(duck_client, "hostile", _hostile_network())
    _scenario(duck_client, "hostile", {"name": HOSTILE, "sites": [HOSTILE], "weeks": 4})
    for url in ("/chain", "/chain/hostile", f"/chain/hostile?region=R'\"{HOSTILE}"):
        html = duck_client.get(url).text
        assert HOSTILE not in html.replace(ESCAPED, ""), url
    html = duck_client.get("/chain/hostile").text
    assert ESCAPED in html
    # the graph data is JSON inside <script>: no raw '<' that could close the element
    blob = re.search(r'id="chain-graph-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in blob and HOSTILE in json.loads(blob)["nodes"][0]["id"]
    part = duck_client.get("/parts/chain/hostile/scenario", params={"scenario": HOSTILE}).text
    assert HOSTILE not in part and ESCAPED in part


def test_bad_filters_and_names(duck_client: TestClient) -> None:
    _put(duck_client, "two", TWO_SOURCES)
    r = duck_client.get("/chain/two", params={"region": "x" * 500})
    assert r.status_code == 422
    r = duck_client.get("/chain/two", params={"region": "nowhere"})
    assert r.status_code == 200 and "No site matches the filters" in r.text


def test_another_tenant_is_403(duck_client: TestClient) -> None:
    _put(duck_client, "two", TWO_SOURCES)
    _put(duck_client, "theirs", TWO_SOURCES, enterprise="other")
    mine = _key(duck_client, "demo", "viewer")
    assert duck_client.get("/chain", headers=mine).status_code == 200
    for url in ("/chain?enterprise=other", "/chain/theirs?enterprise=other",
                "/parts/chain/theirs/scenario?scenario=x&enterprise=other"):  # fmt: skip
        assert duck_client.get(url, headers=mine).status_code == 403, url
    # the other tenant's network is not visible under mine either
    assert duck_client.get("/chain/theirs", headers=mine).status_code == 404
    assert 'data-network="theirs"' in duck_client.get("/chain?enterprise=other").text


def test_viewer_sees_results_but_cannot_run(duck_client: TestClient) -> None:
    _put(duck_client, "two", TWO_SOURCES)
    _scenario(duck_client, "two", {"name": "A out", "sites": ["A"], "weeks": 4})
    viewer = _key(duck_client, "demo", "viewer")
    html = duck_client.get("/chain/two", headers=viewer).text
    assert 'data-scenario="A out"' in html
    assert "chain-run-form" not in html and "needs the operator role" in html
    r = duck_client.post(
        "/api/v1/chain/networks/two/scenarios", json={"sites": ["A"], "weeks": 1}, headers=viewer
    )
    assert r.status_code == 403
    operator = _key(duck_client, "demo", "operator")
    assert "chain-run-form" in duck_client.get("/chain/two", headers=operator).text


def test_demo_chain_page(duck_client: TestClient) -> None:
    load_demo_chain(duck_client.app.state.historian, "demo", now_ms=0)
    html = duck_client.get(f"/chain/{DEMO_NETWORK}").text
    assert f'data-scenario="{HUBEI_SCENARIO["name"]}"' in html
    assert 'class="chain-hit" data-product="sedan"' in html
    assert "airbag inflator" in html  # a stuck point with its reason
    data = json.loads(re.search(r'id="chain-graph-data">(.*?)</script>', html, re.S).group(1))
    assert data["summarised"]  # 320 sites > 300: one node per region x tier
    assert "chain-at-risk" in html and "The live link is not running" in html


def test_live_alerts_on_the_page(duck_client: TestClient) -> None:
    doc = copy.deepcopy(TWO_SOURCES)
    doc["nodes"][0].update(id=HOSTILE, inventory=100, plant_site="s1")
    _put(duck_client, "two", doc)
    now = 1_700_000_000_000
    live = ChainLive(
        duck_client.app.state.historian,
        "demo",
        plant_states=lambda: {"s1": {"s1/a/l/m1": ("off", now - 3 * 86_400_000)}},
    )
    live.run_once(now)
    duck_client.app.state.chain_live = live
    try:
        html = duck_client.get("/chain/two").text
    finally:
        duck_client.app.state.chain_live = None
    assert f"supplier {ESCAPED} down 3 days; item a runs out at P in 11 days" in html
    assert "1 of 1 machines off or offline at plant site s1" in html
    assert "with live capacities" in html  # the TTS/TTR table of the live view
    assert HOSTILE not in html.replace(ESCAPED, "").split("chain-graph-data")[0]


# ---------------------------------------------------------------- browser
def test_browser_operator_runs_a_scenario(live, browser) -> None:
    store = AuthStore(live.historian)
    store.add_user("olga", "chain-operator-pw", now_ms=0)
    store.grant("olga", "demo", "operator")
    load_demo_chain(live.historian, "demo", now_ms=0)
    url = f"{live.url}/chain/{DEMO_NETWORK}"
    page = browser.new_page(viewport={"width": 390, "height": 844})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    sign_in(page, url, "olga", "chain-operator-pw")
    page.wait_for_function(
        """() => { const el = document.getElementById("chain-graph");
                   const c = window.echarts && echarts.getInstanceByDom(el);
                   return c && c.getOption().series[0].data.length > 0; }""",
        timeout=15_000,
    )
    assert page.locator("#chain-graph canvas").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    form = page.locator(".chain-run-form")
    form.locator("input[name=name]").fill("Guangdong 2 weeks")
    form.locator("select[name=region]").select_option("Guangdong")
    form.locator("input[name=weeks]").fill("2")
    with page.expect_response(lambda r: "/scenarios" in r.url and r.request.method == "POST") as p:
        form.locator("button").click()
    assert p.value.status == 200
    result = page.locator('.chain-result[data-scenario="Guangdong 2 weeks"]')
    result.wait_for(timeout=15_000)
    assert "region Guangdong stops for 2 weeks" in result.inner_text()
    assert result.locator("tr[data-product]").count() == 6
    assert "done:" in page.locator(".chain-run-status").inner_text()
    if SHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.reload()
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / "chain-phone.png"), full_page=False)
        wall = browser.new_page(viewport={"width": 1440, "height": 900})
        sign_in(wall, url, "olga", "chain-operator-pw")
        wall.wait_for_timeout(800)
        wall.screenshot(path=str(SCREENSHOTS / "chain-wall.png"))
    assert problems == []
