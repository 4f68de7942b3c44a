"""The docking page: HTML over TestClient (both backends), roles, hostile names; one browser run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.sim.docking_demo import load_docking_demo, mask_shortage
from indunet.web.docking import PAGE_SIZE, paginate, run_view
from tests.web.conftest import sign_in

HOSTILE = "<img src=x onerror=alert(1)>"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"  # read before fixtures clear INDUNET_*


def _load(client: TestClient, doc: dict) -> None:
    for kind in ("requests", "offers", "lanes"):
        r = client.post(f"/api/v1/dock/{kind}", json=doc[kind])
        assert r.status_code == 200 and r.json()["refused"] == [], r.text


def _run(client: TestClient, objective: str = "fair") -> dict:
    r = client.post(f"/api/v1/dock/runs?objective={objective}")
    assert r.status_code == 200, r.text
    return r.json()


def _fill(html: str, request_id: str) -> str:
    """Return the HTML of one request's result card."""
    return (
        html.split('class="dock-fill', 1)[1]
        .split(f'data-request="{request_id}"', 1)[1]
        .split("</li>\n  <li", 1)[0]
    )


# ---------------------------------------------------------------- pure helpers
def test_paginate_clamps_pages() -> None:
    rows = [{"id": str(i)} for i in range(PAGE_SIZE + 3)]
    assert paginate(rows, 1).rows == rows[:PAGE_SIZE] and paginate(rows, 1).pages == 2
    assert paginate(rows, 2).rows == rows[PAGE_SIZE:]
    assert paginate(rows, 99).page == 2 and paginate([], 5).page == 1
    assert paginate([], 1).pages == 1 and paginate([], 1).rows == []


def test_run_view_joins_suppliers_and_counts_unmet() -> None:
    run = {
        "allocations": [{"offer": "S", "request": "H", "quantity": 6.0, "ship_day": 0}],
        "fills": [
            {"request": "H", "requested": 10.0, "filled": 6.0, "fill_rate": 0.6,
             "reasons": ["short supply"], "item": "m", "priority": 1},
            {"request": "G", "requested": 5.0, "filled": 5.0, "fill_rate": 1.0,
             "reasons": [], "item": "m", "priority": 1},
        ],
        "conversions": [{"offer": "C", "day": 1, "producing_from_day": 3}],
    }  # fmt: skip
    view = run_view(
        run,
        [{"id": "H", "enterprise": "Hospital", "deadline_day": 4}],
        [{"id": "S", "enterprise": "Supplier"}, {"id": "C", "item": "m", "usual_item": "car"}],
    )
    h = view["fills"][0]
    assert h["enterprise"] == "Hospital" and h["deadline_day"] == 4 and h["unmet"] == 4.0
    assert h["deliveries"][0]["supplier"] == "Supplier"
    assert view["fills"][1]["deliveries"] == [] and view["fills"][1]["enterprise"] == ""
    assert view["unmet_total"] == 4.0 and [f["request"] for f in view["short"]] == ["H"]
    assert view["conversions"][0]["usual_item"] == "car"


# ---------------------------------------------------------------- HTML (TestClient)
def test_empty_page_says_how_to_get_data(duck_client: TestClient) -> None:
    r = duck_client.get("/docking")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "No requests yet" in html and "POST /api/v1/dock/requests" in html
    assert "No offers yet" in html and "indunet demo" in html
    assert "No allocation has been run yet" in html
    assert 'aria-current="page"' in html.split('href="/docking"', 1)[1][:40]
    assert duck_client.get("/parts/docking/run/nope").status_code == 404


def test_fair_run_shows_who_gets_what_by_when_and_why(client: TestClient) -> None:
    _load(client, mask_shortage())
    html = client.get("/docking").text
    assert '<b class="dock-count-requests">13</b>' in html
    assert "Wuhan Jinyintan Hospital" in html and "Liuzhou Car Works" in html
    assert "Run fair allocation" in html  # the admin key of the fixture may run
    run = _run(client)
    html = client.get("/docking").text  # the newest run is shown
    assert f'data-run="{run["run_id"]}"' in html and 'data-objective="fair"' in html
    assert '<dd class="dock-min-fill">0 %</dd>' in html
    # who gets what from whom, by when
    wuhan = _fill(html, "WH-FLD-suit")
    assert 'from <span class="dock-id">XT-NW-suit</span> (Xiantao Nonwovens)' in wuhan
    assert re.search(r"ships day \d+, arrives day \d+", wuhan)
    # why unmet: the three kinds of reasons
    assert "no lane" in _fill(html, "URC-CLN-suit")
    assert "no stock before the deadline" in _fill(html, "HRB-CLN-mask")
    assert "outranked" in _fill(html, "XG-CEN-mask")
    # fair: the class-2 mask hospitals get the same share
    assert '<b class="dock-fill-rate">60 %</b>' in _fill(html, "XG-CEN-mask")
    assert '<b class="dock-fill-rate">60 %</b>' in _fill(html, "WZ-CEN-mask")
    # production switching
    conversions = html.split('class="dock-conversions"', 1)[1].split("</ul>", 1)[0]
    assert "LZ-CAR-mask" in conversions and "switch from car to mask on day" in conversions
    # dispatch: the run becomes orders, shown with their status
    assert "Turn into dispatch orders" in html
    r = client.post(f"/api/v1/dock/runs/{run['run_id']}/dispatch?by=olga")
    assert r.status_code == 200
    part = client.get(f"/parts/docking/run/{run['run_id']}")
    assert part.status_code == 200
    assert part.text.count('class="dock-status status-proposed"') == len(run["allocations"])
    assert "Turn into dispatch orders" not in part.text


def test_least_cost_run_and_choosing_a_run(duck_client: TestClient) -> None:
    _load(duck_client, mask_shortage())
    fair, cost = _run(duck_client, "fair"), _run(duck_client, "cost")
    html = duck_client.get(f"/docking?run={fair['run_id']}").text
    assert 'data-objective="fair"' in html
    html = duck_client.get("/docking").text
    assert f'data-run="{cost["run_id"]}"' in html and "least cost" in html
    assert '<b class="dock-fill-rate">52 %</b>' in _fill(html, "XG-CEN-mask")  # unfair, cheaper
    html = duck_client.get("/docking?run=does-not-exist").text
    assert "There is no run" in html


def test_ranking_shows_scored_candidates(duck_client: TestClient) -> None:
    _load(duck_client, mask_shortage())
    html = duck_client.get("/docking?rank=WZ-CEN-mask").text
    ranking = html.split('class="dock-ranking"', 1)[1].split("</section>", 1)[0]
    offers = re.findall(r'class="dock-candidate" data-offer="([^"]+)"', ranking)
    assert "NB-MSK-mask" in offers and all(o.endswith("-mask") for o in offers)
    assert "0.4 · item match" in ranking
    html = duck_client.get("/docking?rank=nobody").text
    assert "no request &#39;nobody&#39;" in html


def test_dock_a_ranked_offer_with_one_click_through_the_api(duck_client: TestClient) -> None:
    _load(duck_client, mask_shortage())
    html = duck_client.get("/docking?rank=WZ-CEN-mask").text
    assert 'class="dock-btn dock-one" data-request="WZ-CEN-mask" data-offer="NB-MSK-mask"' in html
    assert "Docked by hand" not in html
    r = duck_client.post("/api/v1/dock/dispatch?request=WZ-CEN-mask&offer=NB-MSK-mask&by=olga")
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["status"] == "proposed" and order["run_id"] == "manual"
    html = duck_client.get("/docking").text
    manual = html.split('class="dock-manual"', 1)[1].split("</section>", 1)[0]
    assert f'data-order="{order["order_id"]}"' in manual and "NB-MSK-mask → WZ-CEN-mask" in manual
    wrong = duck_client.post("/api/v1/dock/dispatch?request=WZ-CEN-mask&offer=QD-HUB-n95&by=o")
    assert wrong.status_code == 409 and "cannot serve" in wrong.text
    missing = duck_client.post("/api/v1/dock/dispatch?request=nope&offer=NB-MSK-mask&by=o")
    assert missing.status_code == 404


def test_pagination_of_requests(duck_client: TestClient) -> None:
    requests = [{"id": f"R{i:03d}", "item": "m", "quantity": 1} for i in range(PAGE_SIZE + 5)]
    r = duck_client.post("/api/v1/dock/requests", json=requests)
    assert r.json()["stored"] == PAGE_SIZE + 5
    first = duck_client.get("/docking").text
    assert first.count('<tr data-request="') == PAGE_SIZE and "page 1 of 2" in first
    second = duck_client.get("/docking?rpage=2").text
    assert second.count('<tr data-request="') == 5 and 'data-request="R029"' in second
    assert duck_client.get("/docking?rpage=0").status_code == 422


def test_hostile_names_render_as_text(duck_client: TestClient) -> None:
    doc = {
        "requests": [{"id": HOSTILE, "item": "m", "quantity": 5, "enterprise": HOSTILE}],
        "offers": [{"id": "S'\"", "item": "m", "quantity": 2, "enterprise": HOSTILE}],
        "lanes": [{"from": "S'\"", "to": HOSTILE}],
    }
    _load(duck_client, doc)
    _run(duck_client)
    for url in ("/docking", f"/docking?rank={HOSTILE}"):
        html = duck_client.get(url).text
        assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "S'\"" not in html


def test_viewer_sees_results_but_cannot_run(duck_client: TestClient) -> None:
    _load(duck_client, mask_shortage())
    run = _run(duck_client)
    store = AuthStore(duck_client.app.state.historian)
    viewer = {
        "Authorization": f"Bearer {store.create_key('demo', 'viewer', name='v', now_ms=0).secret}"
    }
    html = duck_client.get("/docking", headers=viewer).text
    assert f'data-run="{run["run_id"]}"' in html and "no lane" in html
    assert "Run fair allocation" not in html and "dock-run-form" not in html
    assert "needs the operator role" in html and "Turn into dispatch orders" not in html
    r = duck_client.post("/api/v1/dock/runs?objective=fair", headers=viewer)
    assert r.status_code == 403
    r = duck_client.post(f"/api/v1/dock/runs/{run['run_id']}/dispatch?by=v", headers=viewer)
    assert r.status_code == 403
    html = duck_client.get("/docking?rank=WZ-CEN-mask", headers=viewer).text
    assert "dock-one" not in html and 'data-offer="NB-MSK-mask"' in html
    r = duck_client.post(
        "/api/v1/dock/dispatch?request=WZ-CEN-mask&offer=NB-MSK-mask&by=v", headers=viewer
    )
    assert r.status_code == 403


def test_signed_out_goes_to_login(duck_client: TestClient) -> None:
    r = duck_client.get("/docking", auth=None, follow_redirects=False, headers={"Cookie": ""})
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fdocking")
    r = duck_client.get("/parts/docking/run/x", auth=None, headers={"hx-request": "true"})
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/login?next=")


# ---------------------------------------------------------------- browser
def test_browser_operator_runs_the_fair_allocation(live, browser) -> None:
    shots = SHOTS
    store = AuthStore(live.historian)
    store.add_user("olga", "chain-operator-pw", now_ms=0)
    store.grant("olga", "demo", "operator")
    load_docking_demo(live.historian, "demo", now_ms=0)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    sign_in(page, f"{live.url}/docking", "olga", "chain-operator-pw")
    assert page.locator(".dock-no-run").count() == 1
    with page.expect_response(lambda r: "/api/v1/dock/runs" in r.url) as posted:
        page.click("button[data-objective=fair]")
    assert posted.value.status == 200
    page.locator(".dock-run[data-objective=fair]").wait_for(timeout=15_000)
    assert "run=" in page.url  # a reload shows the same run
    fills = page.locator("li.dock-fill")
    assert fills.count() == len(mask_shortage()["requests"])
    unmet = page.locator('li.dock-fill[data-request="URC-CLN-suit"] .dock-reason')
    assert unmet.inner_text().startswith("no lane")
    late = page.locator('li.dock-fill[data-request="HRB-CLN-mask"] .dock-reason')
    assert late.inner_text().startswith("no stock before the deadline")
    got = page.locator('li.dock-fill[data-request="WH-JYT-suit"] .dock-deliveries li')
    assert got.count() >= 1 and "arrives day" in got.first.inner_text()
    assert page.locator(".dock-conversions li").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    # the run becomes dispatch orders
    page.click("button.dock-dispatch")
    page.locator(".dock-orders .status-proposed").first.wait_for(timeout=15_000)
    # rank offers for a request and dock the best one with one click
    page.goto(f"{live.url}/docking?rank=WZ-CEN-mask")
    page.locator("button.dock-one").first.click()
    page.locator(".dock-one-status", has_text="proposed order manual-").wait_for(timeout=15_000)
    if shots:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        wall = browser.new_page(viewport={"width": 1440, "height": 900})
        sign_in(wall, page.url, "olga", "chain-operator-pw")
        wall.screenshot(path=str(SCREENSHOTS / "docking-wall.png"))
    assert problems == []


@pytest.mark.parametrize("objective", ["fair"])
def test_demo_loader_matches_the_api(duck_client: TestClient, objective: str) -> None:
    counts = load_docking_demo(duck_client.app.state.historian, "demo", now_ms=0)
    doc = mask_shortage()
    assert counts == {k: len(doc[k]) for k in ("requests", "offers", "lanes")}
    html = duck_client.get("/docking").text
    assert f'<b class="dock-count-offers">{len(doc["offers"])}</b>' in html
    assert _run(duck_client, objective)["objective"] == objective
