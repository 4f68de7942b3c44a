"""/attention, /parts/attention and /losses over TestClient: stopped now, rankings, links."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from indunet.web.attention import duration_text
from tests.plant.plant_data import M1, M2, write
from tests.plant.test_attention import M3, cfg

H = 3_600_000


@pytest.fixture
def att_client(make_client):
    """Three machines: m1 idle 40 min reporting setup, m2 off 2 h (mechanical), m3 silent."""
    c = make_client(plant=cfg())
    h = c.app.state.historian
    now = int(time.time() * 1000)
    store = PlantStore(h, c.app.state.settings.plant)

    def seg(*rows):
        return StateTimeline(
            np.array([now - a for a, _, _ in rows], np.int64),
            np.array([now - b for _, b, _ in rows], np.int64),
            np.array([s for _, _, s in rows], np.int8),
        )

    store.save_segments("demo", M1, seg((3 * H, 40 * 60_000, 2), (40 * 60_000, 1000, 1)))
    store.save_segments("demo", M2, seg((3 * H, 2 * H, 2), (2 * H, 1000, 0)))
    store.assign_reason("demo", M2, now - 2 * H, "mechanical", now_ms=now)
    write(h, f"{M1}/power_kw", [now - 1000], [3.0])
    write(h, f"{M2}/power_kw", [now - 1000], [0.1])
    write(h, f"{M3}/power_kw", [now - 5 * H], [9.0])
    r = c.post(
        "/api/v1/ingest", json=[{"tag": f"{M1}/state", "ts": now - 1000, "value": "setup"}]
    )
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    return c


def test_attention_lists_stops_longest_first_with_reasons(att_client):
    html = att_client.get("/parts/attention", params={"scope": "s1"}).text
    order = re.findall(r'<tr data-machine="([^"]+)"', html)
    assert order[:3] == [M3, M2, M1]  # offline 5 h, off 2 h, idle 40 min
    row = lambda m: html.split(f'data-machine="{m}"')[1].split("</tr>")[0]  # noqa: E731
    assert "Mechanical failure" in row(M2) and "mechanical<" not in row(M2)
    assert "Changeover / setup" in row(M1) and "(machine)" in row(M1)
    assert "Unexplained — explain" in row(M3) and "#stops" in row(M3)
    assert "2 h" in row(M2) and "40 min" in row(M1)
    assert 'data-count="stopped">3 stopped' in html


def test_every_link_on_attention_and_losses_resolves(att_client):
    c = att_client
    seen: set[str] = set()
    for start in ("/attention?scope=s1", "/attention", "/losses?scope=s1", "/losses?by=machine"):
        page = c.get(start)
        assert page.status_code == 200, start
        main = page.text.split('id="main"', 1)[1]  # the page's own links, not the menu
        for href in re.findall(r'href="([^"#]+)', main):
            href = href.replace("&amp;", "&")
            if href.startswith(("/static", "http")) or href in seen:
                continue
            seen.add(href)
            assert c.get(href).status_code == 200, (start, href)
    assert any(h.startswith("/machine/") for h in seen)
    assert any("state=offline" in h for h in seen) and any("period=yesterday" in h for h in seen)


def test_overview_and_site_pages_lead_with_attention_and_link_counts(att_client):
    ov = att_client.get("/").text
    assert 'hx-get="/parts/attention"' in ov
    assert ov.index('id="attention"') < ov.index('class="ov-sites-grid"')
    assert "/attention?scope=s1&amp;state=offline" in att_client.get("/parts/overview").text
    site = att_client.get("/site/s1").text
    assert 'hx-get="/parts/attention?scope=s1"' in site
    assert "/attention?scope=s1&amp;state=off" in site


def test_filters_and_hostile_input(att_client):
    c = att_client
    only_off = c.get("/attention", params={"scope": "s1", "state": "off"}).text
    assert re.findall(r'<tr data-machine="([^"]+)"', only_off) == [M2]
    for bad in ({"state": "asleep"}, {"period": "week"}, {"sort": "name"}, {"scope": "x" * 500}):
        assert c.get("/attention", params=bad).status_code == 422, bad
    assert c.get("/losses", params={"by": "colour"}).status_code == 422
    hostile = c.get("/attention", params={"scope": "<script>alert(1)</script>"})
    assert hostile.status_code == 200 and "<script>alert(1)" not in hostile.text
    assert "no configured machine" in hostile.text
    losses = c.get("/losses", params={"scope": "s1", "by": "reason"}).text
    assert "TEEP" in losses and "Mechanical failure" in losses


def test_durations_in_plain_words():
    assert [duration_text(x) for x in (None, 999, 61_000, 3 * H, 3 * H + 20 * 60_000)] == [
        "—", "0 s", "1 min", "3 h", "3 h 20 min",
    ]  # fmt: skip
    assert duration_text(26 * H) == "1 d 2 h"
