"""The Fleet page and the machine page's RUL section: ranking, band, anomaly column, browser."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.condition.rul_service import RulService, RulStore
from indunet.plant.alarm_service import AlarmService
from indunet.web.fleet import fleet_rows
from tests.condition import rul_plant as fleet
from tests.web.conftest import LiveServer, sign_in
from tests.web.test_accessibility import axe_violations

HOSTILE = "<img src=x onerror=alert(1)>"
SHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"  # read before fixtures clear INDUNET_*
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _estimate(historian, settings) -> None:
    batch, now = fleet.sensor_batch(settings.enterprise)
    historian.write(batch)
    alarms = AlarmService(historian, settings)  # the RUL rules are built in
    RulService(historian, settings, alarms=alarms).run_once(now)


@pytest.fixture
def fleet_client(make_client, tmp_path) -> TestClient:
    client = make_client(plant=fleet.plant(fleet.write_runs(tmp_path / "runs")))
    _estimate(client.app.state.historian, client.app.state.settings)
    return client


def cells(html: str, machine: str) -> list[str]:
    part = html.split(f'data-machine="{machine}"', 1)[1].split("</tr>", 1)[0]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", part)]


def test_fleet_ranks_by_rul_and_marks_the_alarm(fleet_client: TestClient) -> None:
    r = fleet_client.get("/fleet")
    assert r.status_code == 200
    html = r.text
    order = re.findall(r'<tr class="[^"]*" data-machine="([^"]+)"', html)
    assert order[:2] == [fleet.WORN, fleet.HEALTHY] and len(order) == 4
    worn = cells(html, fleet.WORN)
    assert "alarm" in worn[0] and worn[2] == "—" and worn[3] == fleet.CLASS and worn[4] == "30"
    low, high = (float(x) for x in worn[1].split(" – "))
    assert low <= float(worn[0].split()[0]) <= high
    assert cells(html, fleet.YOUNG)[0] == "too little history"
    assert 'class="rul-alarm"' in html and 'href="/machine/s1/hangar/l1/e20"' in html
    assert 'aria-current="page"' in html.split('href="/fleet"', 1)[1][:40]  # the nav entry


def test_machine_page_shows_rul_with_its_band(fleet_client: TestClient) -> None:
    html = fleet_client.get("/machine/s1/hangar/l1/e20").text
    section = html.split('class="machine-rul"', 1)[1].split("</section>", 1)[0]
    assert "cycles left" in section and "band " in section and "alarm below 30" in section
    assert "rul-alarm" in section
    # the RUL alarm in the machine's alarm list, in words, linked to the machine
    alarms = fleet_client.get("/parts/alarms", params={"machine": fleet.WORN}).text
    assert "Remaining useful life of s1/hangar/l1/e20" in alarms and "&lt; 30 cycles" in alarms
    assert 'href="/machine/s1/hangar/l1/e20"' in alarms
    assert (
        "Remaining useful life"
        not in fleet_client.get("/parts/alarms", params={"machine": fleet.HEALTHY}).text
    )
    young = fleet_client.get("/machine/s1/hangar/l1/e3").text
    assert "No estimate: too little history" in young and "insufficient history" in young


def test_fleet_rows_take_anomaly_scores() -> None:
    estimates = [
        {"machine": "s1/a/l1/m1", "asset_class": "p", "status": "ok", "rul": 80.0, "low": 60.0,
         "high": 100.0, "cap": 125, "horizon": 20.0, "message": None},
        {"machine": "s1/a/l1/m2", "asset_class": "p", "status": "ok", "rul": 125.0, "low": 90.0,
         "high": 125.0, "cap": 125, "horizon": 20.0, "message": HOSTILE},
        {"machine": "s1/a/l1/m3", "asset_class": "p", "status": "insufficient_history",
         "rul": None, "low": None, "high": None, "cap": 125, "horizon": 20.0, "message": "x"},
    ]  # fmt: skip
    rows = fleet_rows(estimates)
    assert [r.machine for r in rows] == ["s1/a/l1/m1", "s1/a/l1/m2", "s1/a/l1/m3"]
    assert [r.anomaly_text for r in rows] == ["—", "—", "—"]
    assert rows[1].rul_text == "≥ 125" and rows[0].band_text == "60 – 100"
    scores = {"s1/a/l1/m2": 0.91, "s1/a/l1/m3": 0.2, "s1/a/l1/m9": 0.5, "s1/a/l1/m1": float("nan")}
    by_score = fleet_rows(estimates, scores, by="anomaly")
    assert [r.machine for r in by_score] == ["s1/a/l1/m2", "s1/a/l1/m9", "s1/a/l1/m3", "s1/a/l1/m1"]
    assert [r.anomaly_text for r in by_score] == ["0.91", "0.50", "0.20", "—"]
    assert by_score[1].rul_text == "—" and by_score[1].asset_class is None


def test_fleet_page_fills_the_anomaly_column_and_escapes(fleet_client: TestClient) -> None:
    RulStore(fleet_client.app.state.historian).put(
        [
            {"enterprise": "demo", "machine": fleet.SILENT, "asset_class": fleet.CLASS,
             "ts_ms": fleet.T0, "status": "bad_data", "cap": 125, "horizon": 30.0,
             "message": HOSTILE},
        ]
    )  # fmt: skip
    fleet_client.app.state.anomaly_scores = lambda: {fleet.HEALTHY: 0.87}
    html = fleet_client.get("/fleet", params={"by": "anomaly"}).text
    order = re.findall(r'<tr class="[^"]*" data-machine="([^"]+)"', html)
    assert order[0] == fleet.HEALTHY and cells(html, fleet.HEALTHY)[2] == "0.87"
    assert HOSTILE not in html and "&lt;img src=x" in html


def test_empty_fleet_says_how_to_configure(make_client) -> None:
    html = make_client().get("/fleet").text
    assert "[[plant.rul]]" in html


# ---------------------------------------------------------------------------- real browser
def test_browser_fleet_to_machine_on_a_phone(settings_factory, tmp_path, browser) -> None:
    runs = fleet.write_runs(tmp_path / "runs")
    settings = settings_factory(plant=fleet.plant(runs))
    with LiveServer(settings) as live:
        _estimate(live.historian, settings)
        AuthStore(live.historian).add_user("vera", "a long enough password", now_ms=0)
        AuthStore(live.historian).grant("vera", "demo", "viewer")
        page = browser.new_page(viewport={"width": 390, "height": 844})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        sign_in(page, live.url + "/fleet", "vera", "a long enough password")
        rows = page.locator("table.fleet tbody tr")
        assert rows.count() == 4
        assert rows.first.get_attribute("data-machine") == fleet.WORN
        assert "alarm" in rows.first.locator("td.rul").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        if SHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "fleet-phone.png"), full_page=False)
        rows.first.locator("a").click()
        page.wait_for_url("**/machine/s1/hangar/l1/e20")
        section = page.locator("section.machine-rul")
        assert "cycles left" in section.inner_text()
        for theme in ("light", "dark"):  # axe-core: no violation on either page, either theme
            page.evaluate(f"localStorage.setItem('indunet-theme', '{theme}')")
            for url in ("/fleet", "/machine/s1/hangar/l1/e20"):
                page.goto(live.url + url)
                found = axe_violations(page)
                assert found == [], (theme, url, [n for v in found for n in v["nodes"]])
        box = section.locator(".rul-range").bounding_box()
        scale = section.locator(".rul-scale").bounding_box()
        assert box is not None and scale is not None and 0 < box["width"] <= scale["width"]
        if SHOTS:
            section.screenshot(path=str(SCREENSHOTS / "machine-rul-phone.png"))
        assert problems == []
        page.close()


def test_fleet_ranks_the_machine_with_an_anomalous_tag_first(duck_client) -> None:
    """The anomaly column is wired to the alarm service's monitors (no RUL configured)."""
    from tests.web.test_pages import ingest, now_ms

    t = now_ms() // 60_000 * 60_000
    n = 2160  # 36 h of 1-min history on two machines' temperature
    rng = np.random.default_rng(3)
    machines = ["s1/press/l1/m1", "s1/press/l1/m2", "s1/press/l1/m3"]
    records = []
    for m in machines:
        values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.5, n)
        records += [{"tag": f"{m}/temp_c", "ts": t - (n - i) * 60_000, "value": float(v)}
                    for i, v in enumerate(values)]  # fmt: skip
    ingest(duck_client, records)
    monitor = {"id": "temps", "pattern": "s1/press/l1/+/temp_c"}
    assert duck_client.post("/api/v1/monitors", json=monitor).status_code == 201
    service = AlarmService(duck_client.app.state.historian, duck_client.app.state.settings)
    duck_client.app.state.alarms = service
    service.run_once(t + 1000)
    assert service.anomaly_scores() == dict.fromkeys(machines, 0.0)
    spike = [{"tag": f"{m}/temp_c", "ts": t + 30_000, "value": v}
             for m, v in zip(machines, (50.0, 97.0, 49.0), strict=True)]  # fmt: skip
    ingest(duck_client, spike)
    service.run_once(t + 31_000)
    html = duck_client.get("/fleet", params={"by": "anomaly"}).text
    order = re.findall(r'<tr class="[^"]*" data-machine="([^"]+)"', html)
    assert order[0] == machines[1] and set(order) == set(machines)
    assert float(cells(html, machines[1])[2]) >= 0.3
    assert [cells(html, m)[2] for m in (machines[0], machines[2])] == ["0.00", "0.00"]


def test_serve_wires_the_fleet_page_to_the_alarm_service(make_client) -> None:
    from indunet.api.routes.alarms import start_alarm_service

    client = make_client()
    app = client.app
    service = start_alarm_service(app, app.state.historian, app.state.settings, interval_s=3600)
    try:
        assert app.state.anomaly_scores == service.anomaly_scores
    finally:
        service.stop()
