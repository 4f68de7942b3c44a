"""The Energy page: kWh, idle energy, kWh per good part, CO2 and its factor, days and ranges."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.auth.web import SESSION_COOKIE
from indunet.plant.store import PlantStore
from indunet.web.energy import day_range, energy_rows
from tests.conftest import PG_URL
from tests.plant.plant_data import M1, M2, plant, write
from tests.plant.test_report import at, tl

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(params=["duckdb", "postgresql"])
def energy_client(request: pytest.FixtureRequest, make_client) -> TestClient:
    """2026-06-01: m1 runs 06–07 at 8 kW then idles 07–08 at 2 kW; m2 runs 06–07 at 6 kW."""
    extra: dict = {}
    if request.param == "postgresql":
        extra = {"db": PG_URL, "pg_schema": request.getfixturevalue("pg_schema")}
    c = make_client(plant=plant(), **extra)
    h = c.app.state.historian
    store = PlantStore(h, c.app.state.settings.plant)
    store.save_segments("demo", M1, tl((6, 7, 2), (7, 8, 1)))
    store.save_segments("demo", M2, tl((6, 7, 2)))
    second = np.arange(0, 3_600_000, 1000)
    write(h, f"{M1}/power_kw", np.concatenate([at(6) + second, at(7) + second]),
          np.concatenate([np.full(3600, 8.0), np.full(3600, 2.0)]))  # fmt: skip
    write(h, f"{M2}/power_kw", at(6) + second, np.full(3600, 6.0))
    write(h, f"{M1}/parts_total", [at(6), at(7)], [0, 40])
    return c


def row(html: str, level: str, name: str) -> list[str]:
    """Return the cells of one table row."""
    part = html.split(f'data-{level}="{name}"', 1)[1].split("</tr>", 1)[0]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", part)]


def test_a_day_per_site_line_and_machine_with_idle_energy_co2_and_its_factor(energy_client):
    r = energy_client.get("/energy", params={"day": "2026-06-01"})
    assert r.status_code == 200
    html = r.text
    # m1: 8 kWh running (06–07) + 2 kWh idle (07–08); the last second of each hour has no
    # following sample, so a few Wh less; 40 good parts
    m1 = row(html, "machine", M1)
    assert m1[0] == "m1" and m1[1] == "10.0"  # 9.997: one decimal from 10 kWh up
    # kWh per good part comes right after kWh: the key columns first, on a phone too
    assert m1[3] == "2.00" and m1[4] == "0.00"
    assert m1[2] == f"{(8.0 * 3599 / 3600 + 2.0 * 3599 / 3600) / 40:.3f}"
    assert m1[5] == f"{(8.0 + 2.0) * 3599 / 3600 * 0.5:.1f}"
    m2 = row(html, "machine", M2)
    assert m2[1] == "6.00" and m2[3] == "0.00" and m2[2] == "—"  # m2 counts no parts
    assert row(html, "line", "s1/press/l1")[1] == "16.0"
    assert row(html, "site", "s1")[1] == "16.0"
    assert html.index('data-site="s1"') < html.index('data-line="s1/press/l1"')
    assert html.index('data-line="s1/press/l1"') < html.index(f'data-machine="{M1}"')
    assert '<b class="tile-value total-kwh">16.0</b>' in html
    assert '<b class="tile-value idle-kwh">2.00</b>' in html and "kWh · 12 %" in html
    # CO2 with the site's factor, and the page says which factor
    assert '<b class="tile-value co2">8.0</b>' in html
    assert '<li data-site="s1">s1: <b>0.5</b> kg CO₂/kWh' in html
    assert "[plant.sites.s1]" in html
    # the chart: 24 hourly stacked bars from the rendered numbers (no extra request)
    data = json.loads(re.search(r"data-chart='([^']+)'", html).group(1))
    assert len(data["labels"]) == 24 and data["labels"][6] == "06:00"
    assert data["running"][6] == pytest.approx(14.0, abs=0.01)
    assert data["idle"][7] == pytest.approx(2.0, abs=0.01) and sum(data["idle"]) < 2.01
    assert "/static/echarts.min.js" in html and "/static/energy.js" in html
    # day picker: the day before and after, links to each machine of the same day
    assert 'href="?day=2026-05-31"' in html and 'href="?day=2026-06-02"' in html
    assert 'value="2026-06-01"' in html
    assert 'href="/energy?scope=s1%2Fpress%2Fl1%2Fm1&amp;day=2026-06-01"' in html


def test_scope_and_ranges(energy_client):
    one = energy_client.get("/energy", params={"day": "2026-06-01", "scope": M2}).text
    assert f'data-machine="{M2}"' in one and f'data-machine="{M1}"' not in one
    assert "<h1>Energy · s1/press/l1/m2</h1>" in one
    days = energy_client.get("/energy", params={"start": "2026-05-31", "end": "2026-06-02"}).text
    data = json.loads(re.search(r"data-chart='([^']+)'", days).group(1))
    assert data["labels"] == ["05-31", "06-01", "06-02"]
    assert data["running"][1] == pytest.approx(14.0, abs=0.01)
    assert "kWh per day" in days and "2026-05-31 – 2026-06-02" in days
    assert row(days, "site", "s1")[1] == "16.0"
    empty_day = energy_client.get("/energy", params={"day": "2026-01-01"}).text
    assert row(empty_day, "site", "s1")[1] == "0.00"
    nowhere = energy_client.get("/energy", params={"scope": "s7"})
    assert nowhere.status_code == 200 and "No configured machine under s7" in nowhere.text


BAD = [
    ({"day": "yesterday"}, "day 'yesterday' is not a day like"),
    ({"day": "2026-02-30"}, "day '2026-02-30' is not a day"),
    ({"start": "2026-06-02", "end": "2026-06-01"}, "end 2026-06-01 is before start"),
    ({"start": "2025-01-01", "end": "2026-01-01"}, "366 days is more than the page shows"),
    ({"day": "2026-06-01x"}, "day"),
    ({"day": "9" * 11}, "day"),
    ({"scope": "s1/+/l1"}, "forbidden"),
]


def test_bad_days_are_a_clear_422(duck_client):
    for query, says in BAD:
        r = duck_client.get("/energy", params=query)
        assert r.status_code == 422 and says in r.text, (query, r.text)


@pytest.mark.parametrize("energy_client", ["duckdb"], indirect=True)
def test_a_site_limited_viewer_sees_its_site_only(energy_client):
    store = AuthStore(energy_client.app.state.historian)
    store.add_user("sam", "a long enough password", now_ms=at(0))
    store.grant("sam", "demo", "viewer", site="s1")
    session = store.start_session("sam", now_ms=int(time.time() * 1000), lifetime_ms=3_600_000)
    sam = TestClient(energy_client.app, cookies={SESSION_COOKIE: session.token})
    assert sam.get("/energy", params={"site": "s1"}).status_code == 403  # no scope: all sites
    assert sam.get("/energy", params={"scope": "s2"}).status_code == 403
    r = sam.get("/energy", params={"scope": "s1", "day": "2026-06-01"})
    assert r.status_code == 200 and row(r.text, "site", "s1")[1] == "16.0"


def test_no_machines_says_how_to_set_them_up(duck_client):
    html = duck_client.get("/energy").text
    assert "No machines are set up for energy yet" in html
    assert "power_tag" in html and "/api/v1/machines/" in html
    assert "[plant.sites.SITE] grid_kg_co2_per_kwh" in html


def test_hostile_machine_name_is_escaped_and_a_missing_factor_is_named(make_client):
    bad = f"s9/area/line/{HOSTILE}"
    c = make_client(plant={"machines": [{"id": bad, "power_tag": "power_kw"}]})
    write(c.app.state.historian, f"{bad}/power_kw", at(6) + np.arange(0, 60_000, 1000),
          np.full(60, 1.0))  # fmt: skip
    html = c.get("/energy", params={"day": "2026-06-01"}).text
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "site not configured: set <code>[plant.sites.s9] grid_kg_co2_per_kwh</code>" in html


def test_day_range_counts_days_in_the_zone():
    now = at(23.5)  # 2026-06-01 23:30 UTC = 2026-06-02 01:30 in Berlin
    first, last, lo, hi = day_range("", "", "", "Europe/Berlin", now)
    assert (str(first), str(last)) == ("2026-06-02", "2026-06-02")
    assert lo == at(22) and hi == at(46)
    assert day_range("", "", "", "UTC", now)[2:] == (at(0), at(24))
    rows = energy_rows({
        "sites": {"s1": _s(3)}, "lines": {"s1/a/l": _s(3)},
        "machines": {"s1/a/l/m2": _s(1), "s1/a/l/m1": _s(2)},
    })  # fmt: skip
    assert [(r.level, r.name) for r in rows] == [
        ("site", "s1"), ("line", "s1/a/l"), ("machine", "s1/a/l/m1"), ("machine", "s1/a/l/m2"),
    ]  # fmt: skip


def _s(kwh: float) -> dict:
    return {"kwh": kwh, "running_kwh": kwh, "idle_kwh": 0.0, "off_kwh": 0.0, "good_parts": 0.0,
            "kwh_per_good_part": None, "co2_kg": 0.0}  # fmt: skip
