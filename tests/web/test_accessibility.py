"""axe-core on every page of a demo-like server, in light and dark mode (real Chromium).

axe-core runs from the vendored copy in ``tests/web/vendor`` (see VENDORED.md); it is evaluated
in the page through the DevTools protocol, so the pages' Content-Security-Policy stays as it is.
A page counts as clean with 0 violations of any impact (WCAG 2.x A/AA and best-practice rules).
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import httpx

from indunet.auth.store import AuthStore
from indunet.plant.store import PlantStore
from indunet.plant.today import day_start_ms
from indunet.plant.watch import recompute_range
from indunet.sim.business import load_demo_business
from indunet.sim.chain_demo import DEMO_NETWORK, load_demo_chain
from indunet.sim.docking_demo import load_docking_demo
from indunet.sim.live import build_plants
from indunet.sim.plant import SimMachine, simulate
from indunet.sim.plant_config import demo_plant_config
from tests.web.conftest import LiveServer, sign_in
from tests.web.test_region import _small_nation

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
THEMES = ("light", "dark")
SHOTS = os.environ.get("INDUNET_A11Y_SHOTS", "")  # a folder: full-page phone shots to look at
SHOT_DIR = Path(SHOTS) if SHOTS else Path()


def axe_violations(page) -> list[dict]:
    """Run axe-core on the page; return its violations (rule id, impact, nodes' targets)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    return page.evaluate(
        """async () => {
             const r = await axe.run(document, {resultTypes: ["violations"]});
             return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " +
                                               (n.failureSummary || "").slice(0, 160))}));
           }"""
    )


def pages_of(plants) -> list[str]:
    m = plants[0].path
    return [
        "/",
        "/attention",
        "/losses",
        "/plant",
        f"/site/{m.site}",
        f"/site/{m.site}/{m.area}",
        f"/site/{m.site}/{m.area}/{m.line}",
        f"/machine/{m.site}/{m.area}/{m.line}/{m.machine}",
        "/alarms",
        "/alarms?kind=chain",
        "/energy",
        "/business",
        "/data",
        "/region?date=2020-03-05",
        "/chain",
        f"/chain/{DEMO_NETWORK}",
        "/docking",
        "/andon",
        f"/andon?scope={m.site}/{m.area}/{m.line}",
        "/reports",
        f"/wall/{m.site}/{m.area}/{m.line}",
    ]


def test_axe_core_finds_no_violations_in_light_and_dark(settings_factory, browser, tmp_path):
    plants = build_plants(2, 5, 7)
    settings = settings_factory(plant=demo_plant_config(plants))
    _small_nation(settings.data_dir, tmp_path / "nation", 300, date(2020, 3, 6))
    with LiveServer(settings) as live:
        t = int(time.time() * 1000)
        store = AuthStore(live.historian)
        store.add_user("ann", "accessible to all", now_ms=t)
        store.grant("ann", "demo", "admin")
        store.grant("ann", "*", "chain")
        zone = settings.plant.site("site-01").calendar.timezone
        start = max(day_start_ms(zone, t), t - 3_600_000)
        sim = tuple(SimMachine(m.path, m.rated_kw * 0.08, m.rated_kw, m.cycle_s) for m in plants)
        live.historian.write(simulate(sim, start - 60_000, t - 2000, 10_000), source="test")
        plant_store = PlantStore(live.historian, settings.plant)
        for m in settings.plant.machines:
            recompute_range(plant_store, live.historian, "demo", m, start, t - 2000)
        load_demo_business(live.historian, "demo", [m.path for m in plants], now_ms=t)
        load_demo_chain(live.historian, "demo", now_ms=t)
        load_docking_demo(live.historian, "demo", now_ms=t)
        # an edge machine: its agent's status tags, a long error text among them
        edge = "site-01/press-shop/line-01/old-press"
        edge_tags = {"power_w": 3500.0, "edge_connected": True, "edge_errors": 3,
                     "edge_latency_ms": 12, "edge_last_good_ms": t - 5000,
                     "edge_last_error": "connection refused by 127.0.0.1:50200 (Modbus TCP) "
                                        "after 3 retries; next try in 30 s"}  # fmt: skip
        key = store.create_key("demo", "admin", name="loader", now_ms=t).secret
        r = httpx.post(
            live.url + "/api/v1/ingest",
            json=[{"tag": f"{edge}/{k}", "ts": t - 1000, "value": v} for k, v in edge_tags.items()],
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text

        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        found: dict[str, list[dict]] = {}
        page.goto(live.url + "/login")  # the one page before signing in
        for theme in THEMES:
            page.evaluate(f"localStorage.setItem('indunet-theme', '{theme}')")
            page.reload()
            found[f"{theme} /login"] = axe_violations(page)
        sign_in(page, live.url + "/", "ann", "accessible to all")
        for theme in THEMES:
            page.evaluate(f"localStorage.setItem('indunet-theme', '{theme}')")
            for path in pages_of(plants):
                page.goto(live.url + path)
                page.wait_for_load_state("networkidle")
                if not path.startswith("/wall/"):  # the kiosk has one look of its own
                    assert page.evaluate("document.documentElement.dataset.theme") == theme
                found[f"{theme} {path}"] = axe_violations(page)
        # on a phone: nothing wider than the screen (tables scroll inside their own box)
        page.set_viewport_size({"width": 390, "height": 844})
        wide = {}
        for path in pages_of(plants):
            if path.startswith("/wall/"):
                continue  # a wall screen is 1080p or 4K, never a phone
            page.goto(live.url + path)
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                wide[path] = page.evaluate(
                    """() => [...document.querySelectorAll('body *')]
                       .filter(e => e.getBoundingClientRect().right > 391)
                       .slice(0, 4).map(e => e.tagName + '.' + e.className + ' ' +
                                        Math.round(e.getBoundingClientRect().right))"""
                )
            if path == "/plant":  # names keep their width; long values wrap under them
                narrow = page.evaluate(
                    """() => [...document.querySelectorAll('.reading dt')]
                       .filter(d => d.getBoundingClientRect().width < 48).map(d => d.textContent)"""
                )
                assert narrow == [], f"reading names squeezed on a phone: {narrow}"
            if SHOTS:
                name = path.strip("/").split("?")[0].replace("/", "-") or "overview"
                page.screenshot(path=str(SHOT_DIR / f"a11y-{name}.png"), full_page=True)
        assert not wide, f"wider than a 390 px phone: {wide}"
        report = "\n".join(
            f"{where}: {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
            for where, vs in found.items()
            for v in vs
        )
        assert not report, "axe-core violations:\n" + report
