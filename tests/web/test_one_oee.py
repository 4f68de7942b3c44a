"""One OEE: the overview, the site/area/line pages, the API and the CLI show the same figures.

A simulated plant (the demo's config for 2 sites × 12 machines on several areas and lines, the
sim's power and part/scrap counters at 10 s steps, the stored state timelines) is read through
every view for the same range (local midnight to 09:30); every level's A/P/Q/OEE and time
elements must be equal, lie in [0, 1] unless flagged implausible, and the time elements must add
up to the planned busy time. One machine's ideal cycle time is set three times too slow: its
performance is above 100 %, which every view flags, naming the machine, never as good.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from typer.testing import CliRunner

from indunet.business.store import BusinessStore
from indunet.cli import app as cli_app
from indunet.plant.oee import OeeElements
from indunet.plant.store import PlantStore
from indunet.plant.today import day_start_ms
from indunet.plant.watch import recompute_range
from indunet.sim.live import build_plants
from indunet.sim.plant import SimMachine, simulate
from indunet.sim.plant_config import demo_plant_config
from indunet.store import open_historian
from indunet.web.overview import build_overview
from tests.plant.plant_data import T0

HOUR = 3_600_000
ZONE = "Asia/Shanghai"
START = day_start_ms(ZONE, T0)  # a local midnight
NOW = START + 9 * HOUR + 30 * 60_000  # 09:30: the early shift with its lunch break ahead
STEP_MS = 10_000
#: the machine whose ideal cycle time is set 3 × too slow (performance far above 100 %)
SLOW = 2
TIME_KEYS = ("pbt_ms", "apt_ms", "stop_ms", "reason_ms", "unplanned_running_ms")
COUNT_KEYS = ("produced", "good", "scrap", "ideal_ms", "produced_without_ideal")
RATIOS = ("availability", "performance", "quality", "oee")


def _toml(value: Any) -> str:
    """Return a TOML value (inline tables and arrays) for JSON-like data."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _plant_toml(doc: Mapping[str, Any]) -> str:
    lines = []
    for m in doc["machines"]:
        lines.append("[[plant.machines]]")
        lines += [f"{k} = {_toml(v)}" for k, v in m.items()]
    for name, site in doc["sites"].items():
        lines.append(f"[plant.sites.{json.dumps(name)}]")
        lines += [f"{k} = {_toml(v)}" for k, v in site.items()]
    lines.append("[plant.reasons]")
    lines += [f"{k} = {_toml(v)}" for k, v in doc["reasons"].items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def plant_dir(settings_factory, tmp_path):
    """A data dir with the simulated plant's history and states; indunet.toml configures it."""
    sims = build_plants(2, 12, 11)
    cfg = demo_plant_config(sims)
    doc = cfg.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    slow = doc["machines"][SLOW]
    slow["ideal_cycle_s"] = {k: v * 3 for k, v in slow["ideal_cycle_s"].items()}
    (tmp_path / "indunet.toml").write_text(_plant_toml(doc))
    settings = settings_factory()
    assert len(settings.plant.machines) == 12
    h = open_historian(settings)
    try:
        machines = tuple(SimMachine(m.path, m.rated_kw * 0.08, m.rated_kw, m.cycle_s) for m in sims)
        batch = simulate(machines, START - HOUR, NOW, STEP_MS, enterprise=settings.enterprise)
        h.write(batch, source="test")
        store = PlantStore(h, settings.plant)
        for m in settings.plant.machines:
            recompute_range(store, h, settings.enterprise, m, START - HOUR, NOW)
    finally:
        h.close()
    return settings, str(settings.plant.machines[SLOW].id)


def _same(a: Mapping[str, Any], b: Mapping[str, Any], where: str) -> None:
    """Assert two elements' dicts hold equal time elements, counts and ratios."""
    for k in TIME_KEYS:
        assert a[k] == b[k], (where, k, a[k], b[k])
    for k in (*COUNT_KEYS, *RATIOS):
        if a[k] is None or b[k] is None:
            assert a[k] is b[k], (where, k, a[k], b[k])
        else:
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9), (where, k, a[k], b[k])
    assert a["plausible"] == b["plausible"], where


def _invariants(e: Mapping[str, Any], where: str) -> None:
    """Time elements add up to the planned busy time; ratios in [0, 1] unless flagged."""
    assert e["apt_ms"] + sum(e["stop_ms"].values()) == e["pbt_ms"], where
    assert sum(e["reason_ms"].values()) == sum(e["stop_ms"].values()), where
    assert e["good"] + e["scrap"] == pytest.approx(e["produced"]) or e["scrap"] > e["produced"]
    out_of_range = [r for r in RATIOS if e[r] is not None and not 0 <= e[r] <= 1 + 1e-9]
    if out_of_range:
        assert not e["plausible"] and e["implausible"], (where, out_of_range)


def test_every_view_shows_the_same_oee_for_every_level(plant_dir, make_client, monkeypatch):
    settings, slow = plant_dir
    ent = settings.enterprise
    machines = [m.id for m in settings.plant.machines]
    lines = sorted({m.rsplit("/", 1)[0] for m in machines})
    areas = sorted({m.rsplit("/", 2)[0] for m in machines})
    sites = sorted({m.split("/", 1)[0] for m in machines})
    assert len(sites) == 2 and len(areas) >= 4 and len(lines) >= 4
    scopes = ["", *sites, *areas, *lines, *machines]

    # the CLI (its own historian on the data dir, closed after each command)
    runner = CliRunner()
    cli: dict[str, dict] = {}
    for scope in scopes:
        argv = ["plant", "oee", scope, "--start", str(START), "--end", str(NOW), "--json"]
        argv += ["--data-dir", str(settings.data_dir)]
        result = runner.invoke(cli_app, argv, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        cli[scope] = json.loads(result.stdout)["total"]

    client = make_client()
    # the API (the machine page's OEE waterfall reads it with the machine as scope)
    api: dict[str, dict] = {}
    for scope in scopes:
        r = client.get("/api/v1/oee", params={"scope": scope, "start": START, "end": NOW})
        assert r.status_code == 200, r.text
        api[scope] = r.json()["total"]
        if scope == "":
            whole = r.json()
    for site in sites:  # real figures, not an empty plant's zeros
        assert 0.3 < api[site]["availability"] < 1 and api[site]["produced"] > 100
        assert api[site]["pbt_ms"] == 6 * (NOW - START)  # 6 machines, night + early shift
    for scope in scopes:
        _same(api[scope], cli[scope], f"api vs cli {scope!r}")
        _invariants(api[scope], scope)
    # the report's own roll-ups per line and site are the same sums
    for line in lines:
        _same(whole["lines"][line], api[line], f"report line {line}")
    for site in sites:
        _same(whole["sites"][site], api[site], f"report site {site}")

    # the site, area and line pages (their view models, as the request computed them)
    import indunet.web.drill as drill

    monkeypatch.setattr(drill, "_now_ms", lambda: NOW)
    pages: dict[str, dict] = {}
    for scope in [*sites, *areas, *lines]:
        r = client.get("/site/" + scope)
        assert r.status_code == 200, r.text[:300]
        view = client.app.state.drill_cache[(ent, tuple(scope.split("/")))][1]
        pages[scope] = view.oee.as_dict()
        for child in view.children:
            pages.setdefault(child.path, child.oee.as_dict())
        for row in view.machines:
            pages.setdefault(str(row.path), row.oee.as_dict())
        plausible = view.oee.plausible
        assert ("⚠ implausible" in r.text) == (not plausible or slow.startswith(scope + "/"))
    for scope in [*sites, *areas, *lines, *machines]:
        _same(pages[scope], api[scope], f"page vs api {scope!r}")

    # the overview (its view model for the same instant)
    h = client.app.state.historian
    overview = build_overview(
        h, PlantStore(h, settings.plant), BusinessStore(h), settings.plant, ent, NOW
    )
    cards = {c.name: c for c in overview.sites}
    for site in sites:
        card = cards[site]
        assert card.oee_elements is not None and card.oee_until_ms == NOW
        _same(card.oee_elements.as_dict(), api[site], f"overview vs api {site!r}")
        assert (card.oee, card.availability) == (api[site]["oee"], api[site]["availability"])
        assert (card.performance, card.quality) == (api[site]["performance"], api[site]["quality"])

    # the too-slow ideal cycle: flagged on every level above it, named, never "good"
    slow_site, slow_area, slow_line = (slow.split("/", 1)[0], slow.rsplit("/", 2)[0],
                                       slow.rsplit("/", 1)[0])  # fmt: skip
    assert api[slow]["performance"] > 1 and not api[slow]["plausible"]
    for scope in ("", slow_site, slow_area, slow_line, slow):
        e = api[scope]
        assert not e["plausible"], scope
        assert [f["machine"] for f in e["implausible"]] == [slow], scope
        assert any(w.startswith(f"{slow}: performance") for w in e["warnings"]), scope
        assert "learn-cycle" in e["implausible"][0]["cause"]
    for scope in scopes:
        if scope not in ("", slow_site, slow_area, slow_line, slow):
            assert api[scope]["plausible"] and not api[scope]["implausible"], scope
    assert cards[slow_site].oee_status == "implausible"
    other = next(s for s in sites if s != slow_site)
    assert cards[other].oee_status != "implausible"
    env = client.app.state.templates.env  # the overview's card, rendered for that instant
    slow_card = env.get_template("_overview_site.html").render(s=cards[slow_site], ov=overview)
    assert 'class="ov-site oee-implausible"' in slow_card
    assert "⚠ implausible" in slow_card and re.search(
        r"title=\"[^\"]*" + re.escape(slow), slow_card
    )


def test_implausible_elements_survive_the_json_round_trip():
    from indunet.plant.oee import plausibility

    found = plausibility("s/a/l/m", apt_ms=3_600_000, produced=200, scrap=0, ideal_ms=7_200_000)
    e = OeeElements(pbt_ms=4_000_000, apt_ms=3_600_000, produced=200, good=200,
                    ideal_ms=7_200_000, stop_ms={"idle": 400_000}, implausible=found)  # fmt: skip
    assert e.performance == 2.0 and not e.plausible
    back = OeeElements.from_dict(e.as_dict())
    assert back == e and back.implausible[0].figure == "performance"
    # parts without running time lift the line's performance: flagged on the machine
    [f] = plausibility("s/a/l/m", apt_ms=0, produced=10, scrap=0, ideal_ms=100_000)
    assert f.value is None and "without any running time" in f.cause
    # scrap above produced
    [f] = plausibility("s/a/l/m", apt_ms=1000, produced=10, scrap=12, ideal_ms=500)
    assert f.figure == "quality" and f.value == pytest.approx(-0.2)
    assert plausibility("s/a/l/m", apt_ms=1000, produced=10, scrap=1, ideal_ms=1000) == ()
