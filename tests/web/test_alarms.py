"""The Alarms page: list, filters, fragment, operator forms (CSRF), history, and a real browser."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.auth.web import SESSION_COOKIE
from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.plant.alarm_service import AlarmService, AlarmStore
from indunet.web.alarms import AlarmFilter, alarm_rows, history_page
from tests.conftest import PG_URL
from tests.web.conftest import LiveServer, sign_in

M1 = "s1/press/l1/m1"
M2 = "s1/press/l1/m2"
M3 = "s2/weld/l2/m3"
HOSTILE = "<img src=x onerror=alert(1)>"
EVIL = f"s1/press/l1/{HOSTILE}"
T1, T2, P3, TX = f"{M1}/temp_c", f"{M2}/temp_c", f"{M3}/pressure_bar", f"{EVIL}/temp_c"
EVIL_ID = "temp-high@s1/press/l1/&lt;img src=x onerror=alert(1)&gt;/temp_c"  # as the HTML has it
# long like the demo's derived alarms: the list must wrap it, never widen the phone page
LONG_MESSAGE = "Temperature high on this press for the whole shift; check the coolant pump first"
RULES = [
    {"id": "temp-high", "kind": "high", "pattern": "+/+/+/+/temp_c", "limit": 80.0,
     "priority": "high", "max_shelve_s": 3600, "message": LONG_MESSAGE},
    {"id": "press-low", "kind": "low", "pattern": "+/+/+/+/pressure_bar", "limit": 2.0,
     "priority": "urgent", "message": "Pressure low <check pump>"},
]  # fmt: skip
SHOTS = os.environ.get("INDUNET_SCREENSHOTS") == "1"  # read before fixtures clear INDUNET_*
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def now_ms() -> int:
    return int(time.time() * 1000)


def write(historian, rows: list[tuple[str, int, float]]) -> None:
    table = pa.table(
        {
            "tag": [r[0] for r in rows],
            "ts": pa.array([r[1] for r in rows], pa.int64()),
            "value": pa.array([r[2] for r in rows], pa.float64()),
            "text": pa.array([None] * len(rows), pa.string()),
            "quality": pa.array([0] * len(rows), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    historian.write(PointBatch("demo", table, {r[0]: DataType.NUMBER for r in rows}))


def raise_alarms(historian, settings, *, evil: bool = False) -> AlarmService:
    """Raise temp-high on m1 and m2 (m2 later) and press-low (urgent) on m3; m9 stays normal."""
    t = now_ms()
    tags = [T1, T2, P3] + ([TX] if evil else [])
    write(historian, [(tag, t - 9000, 3.0 if "pressure" in tag else 20.0) for tag in tags])
    service = AlarmService(historian, settings)
    service.run_once(t - 8000)
    write(historian, [(T1, t - 7000, 95.5), (P3, t - 7000, 1.25)])
    service.run_once(t - 6000)
    write(historian, [(T2, t - 5000, 81.0)] + ([(TX, t - 5000, 99.0)] if evil else []))
    service.run_once(t - 4000)
    return service


def alarm_ids(html: str) -> list[str]:
    return re.findall(r'<li class="alarm [^"]*" data-alarm="([^"]+)"', html)


def card(html: str, alarm_id: str) -> str:
    return html.split(f'data-alarm="{alarm_id}"', 1)[1].split("</li>", 1)[0]


@pytest.fixture(params=["duckdb", "postgresql"])
def alarm_client(request: pytest.FixtureRequest, make_client) -> TestClient:
    """A client (admin key) on each backend, with the rules and three raised alarms."""
    extra: dict = {}
    if request.param == "postgresql":
        extra = {"db": PG_URL, "pg_schema": request.getfixturevalue("pg_schema")}
    client = make_client(plant={"alarms": RULES}, **extra)
    raise_alarms(client.app.state.historian, client.app.state.settings)  # stored, no service
    return client


@pytest.fixture
def duck_alarms(make_client) -> TestClient:
    client = make_client(plant={"alarms": RULES})
    service = raise_alarms(client.app.state.historian, client.app.state.settings, evil=True)
    client.app.state.alarms = service  # as in `indunet serve`: the service runs in the app
    return client


# ---------------------------------------------------------------------------- the list
def test_open_alarms_most_urgent_first_with_state_machine_age_and_limit(alarm_client):
    r = alarm_client.get("/alarms")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    # urgent first, then the high ones newest first
    assert alarm_ids(html) == [f"press-low@{P3}", f"temp-high@{T2}", f"temp-high@{T1}"]
    m1 = card(html, f"temp-high@{T1}")
    assert '<span class="state">active, unacknowledged</span>' in m1
    assert '<a href="/machine/s1/press/l1/m1">s1/press/l1/m1</a>/temp_c' in m1
    assert '<b class="value">95.5</b>' in m1 and '<span class="limit">&gt; 80</span>' in m1
    assert re.search(r'<span class="age" title="raised [^"]+ UTC">\d+ s</span>', m1)
    press = card(html, f"press-low@{P3}")
    assert "Pressure low &lt;check pump&gt;" in press and "&lt; 2" in press
    assert 'class="alarm prio-urgent' in html
    # an admin (≥ operator) gets the three forms, each carrying the alarm and a CSRF field
    assert m1.count('<form class="alarm-act"') == 2  # acknowledge, shelve (not unshelve)
    assert 'action="/alarms/acknowledge?site=s1"' in m1
    assert f'name="alarm_id" value="temp-high@{T1}"' in m1
    assert '<option value="15">15 min</option>' in m1 and '<option value="60">1 h</option>' in m1
    assert '<option value="240">' not in m1  # beyond the rule's max_shelve_s (1 h)
    assert '<option value="480">8 h</option>' in press  # default max_shelve_s is 8 h
    # live: the list refreshes on the indunet:alarm DOM event and polls as a fallback
    assert "The alarm service is not running in this process" in html  # the stored state
    assert 'hx-get="/parts/alarms"' in html
    assert "indunet:alarm from:body" in html and "every 5s" in html
    # history (events of the last raises, newest first)
    history = html.split('class="alarm-history"', 1)[1]
    assert history.count('<tr class="ev-raised">') == 3


FILTERS = [
    ({"priority": "urgent"}, [f"press-low@{P3}"]),
    ({"priority": "low"}, []),
    ({"site": "s1"}, [EVIL_ID, f"temp-high@{T2}", f"temp-high@{T1}"]),
    ({"site": "s1", "priority": "urgent"}, []),
    ({"state": "unack"}, [f"press-low@{P3}", EVIL_ID, f"temp-high@{T2}", f"temp-high@{T1}"]),
    ({"state": "acked"}, []),
    ({"state": "shelved"}, []),
    ({"priority": "", "state": "", "site": ""}, [f"press-low@{P3}", EVIL_ID, f"temp-high@{T2}",
                                                 f"temp-high@{T1}"]),  # empty = any
]  # fmt: skip
BAD_QUERIES = [
    ("/alarms?priority=bogus", "priority 'bogus' is not one of urgent, high, medium, low"),
    ("/alarms?state=open", "state 'open' is not one of unack, acked, shelved, cleared"),
    ("/alarms?site=a/b", "site name 'a/b' contains"),
    ("/parts/alarms?machine=s1/press/l1", "must have 4 parts"),
    ("/alarms?hlimit=0", "hlimit"),
    ("/alarms?hlimit=-1", "hlimit"),
    ("/alarms?hlimit=100000", "hlimit"),
    ("/alarms?hoffset=-5", "hoffset"),
    ("/alarms?hoffset=x", "hoffset"),
]


def test_filters_and_bad_values(duck_alarms):
    for query, expected in FILTERS:
        r = duck_alarms.get("/alarms", params=query)
        assert r.status_code == 200
        assert alarm_ids(r.text) == expected, query
        if not expected:
            assert "No open alarms" in r.text, query
    for url, says in BAD_QUERIES:  # a clear 422 naming the parameter
        r = duck_alarms.get(url)
        assert r.status_code == 422 and says in r.text, (url, r.text)


def test_fragment_of_one_machine_or_all(duck_alarms):
    part = duck_alarms.get("/parts/alarms", params={"machine": M1})
    assert part.status_code == 200 and "<html" not in part.text
    assert part.text.lstrip().startswith('<div class="alarm-list"')
    assert alarm_ids(part.text) == [f"temp-high@{T1}"]
    assert 'name="back" value="machine=s1%2Fpress%2Fl1%2Fm1"' in part.text
    assert len(alarm_ids(duck_alarms.get("/parts/alarms").text)) == 4
    none = duck_alarms.get("/parts/alarms", params={"machine": "s2/weld/l2/m4"}).text
    assert alarm_ids(none) == [] and "No open alarms on s2/weld/l2/m4" in none


def test_hostile_machine_name_and_message_are_escaped(duck_alarms):
    html = duck_alarms.get("/alarms").text
    assert HOSTILE not in html and "<check pump>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    href = "/machine/s1/press/l1/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"
    assert f'<a href="{href}">' in html
    part = duck_alarms.get("/parts/alarms", params={"machine": EVIL})
    assert part.status_code == 200 and alarm_ids(part.text) == [f"temp-high@{TX}".replace(
        "<", "&lt;").replace(">", "&gt;")]  # fmt: skip


def test_rules_that_do_not_load_are_named_not_a_500(make_client):
    c = make_client(plant={"alarms": RULES})  # no data yet: the patterns match no tag
    r = c.get("/alarms")
    assert r.status_code == 200
    assert 'role="alert">The alarm rules cannot be loaded: alarm rule' in r.text
    assert "matches no known tag" in r.text
    post = c.post("/alarms/acknowledge", data={"alarm_id": f"temp-high@{T1}"})
    assert post.status_code == 409 and "cannot be loaded" in post.text


def test_no_rules_says_how_to_add_them(duck_client):
    html = duck_client.get("/alarms").text
    assert "No open alarms" in html and "No alarm rules yet" in html
    assert "/api/v1/alarm-rules" in html and "No alarm events yet" in html


# ---------------------------------------------------------------------------- the forms
def test_acknowledge_shelve_unshelve_from_the_page(duck_alarms):
    c = duck_alarms
    aid = f"temp-high@{T1}"
    hx = {"HX-Request": "true"}
    r = c.post("/alarms/acknowledge?site=s1", data={"alarm_id": aid, "back": f"machine={M1}"},
               headers=hx)  # fmt: skip
    assert r.status_code == 200 and "<html" not in r.text
    assert alarm_ids(r.text) == [aid]  # the list of the form's own view (one machine)
    assert '<span class="state">active, acknowledged</span>' in card(r.text, aid)
    assert 'class="ack"' not in card(r.text, aid)  # nothing left to acknowledge
    # the API sees the same: the same service call, by the caller (here an API key)
    api = {a["alarm_id"]: a for a in c.get("/api/v1/alarms").json()["alarms"]}
    assert api[aid]["state"] == "acked" and api[aid]["acked_by"].startswith("key ")
    assert f"acknowledged by {api[aid]['acked_by']}" in card(r.text, aid)
    # acknowledging twice is a notice, not an error page
    again = c.post("/alarms/acknowledge?site=s1", data={"alarm_id": aid}, headers=hx)
    assert again.status_code == 200 and 'role="alert">Could not acknowledge' in again.text
    # without htmx (a plain form): back to the page
    plain = c.post("/alarms/shelve?site=s1", data={"alarm_id": aid, "minutes": "15",
                   "back": "priority=high"}, follow_redirects=False)  # fmt: skip
    assert plain.status_code == 303 and plain.headers["location"] == "/alarms?priority=high"
    shelved = card(c.get("/alarms").text, aid)
    assert '<span class="state">shelved</span>' in shelved and "shelved until" in shelved
    assert 'action="/alarms/unshelve?site=s1"' in shelved and 'class="ack"' not in shelved
    r = c.post("/alarms/unshelve?site=s1", data={"alarm_id": aid}, headers=hx)
    assert r.status_code == 200
    # still above the limit: raised again, a new occurrence to acknowledge
    assert '<span class="state">active, unacknowledged</span>' in card(r.text, aid)
    kinds = [e["kind"] for e in AlarmStore(c.app.state.historian).events("demo", alarm_id=aid)]
    assert kinds == ["raised", "acknowledged", "shelved", "unshelved", "raised"]


BAD_POSTS = [
    ("/alarms/shelve?site=s1", {"alarm_id": f"temp-high@{T1}", "minutes": "0"}, 422, "minutes"),
    ("/alarms/shelve?site=s1", {"alarm_id": f"temp-high@{T1}", "minutes": "x"}, 422, "minutes"),
    ("/alarms/shelve?site=s1", {"alarm_id": f"temp-high@{T1}"}, 422, "minutes"),
    ("/alarms/shelve?site=s1", {"alarm_id": f"temp-high@{T1}", "minutes": "240"}, 409,
     "max_shelve_s"),
    ("/alarms/acknowledge?site=s1", {}, 422, "alarm_id"),
    ("/alarms/acknowledge?site=s1", {"alarm_id": "nope@s1/a/b/c/d"}, 404, "does not exist"),
    ("/alarms/acknowledge?site=s1", {"alarm_id": f"press-low@{P3}"}, 403, "not on site s1"),
    ("/alarms/unshelve?site=s1", {"alarm_id": f"temp-high@{T1}"}, 409, "Could not unshelve"),
]  # fmt: skip


def test_bad_form_posts_change_nothing(duck_alarms):
    for url, data, status, says in BAD_POSTS:
        r = duck_alarms.post(url, data=data, follow_redirects=False)
        assert r.status_code == status and says in r.text, (url, data, r.text)
    api = {a["alarm_id"]: a["state"] for a in duck_alarms.get("/api/v1/alarms").json()["alarms"]}
    assert api[f"temp-high@{T1}"] == "unack" and api[f"press-low@{P3}"] == "unack"


def _session(app, name: str, role: str, site: str | None = None) -> TestClient:
    """Return a browser-like client with ``name``'s session cookie (as after signing in)."""
    store = AuthStore(app.state.historian)
    store.add_user(name, "a long enough password", now_ms=now_ms())
    store.grant(name, "demo", role, site=site)
    session = store.start_session(name, now_ms=now_ms(), lifetime_ms=3_600_000)
    browser = TestClient(app)
    browser.cookies.set(SESSION_COOKIE, session.token)
    browser.csrf = session.csrf_token  # type: ignore[attr-defined]
    return browser


def test_viewer_sees_no_buttons_and_a_forged_post_is_refused(duck_alarms):
    app = duck_alarms.app
    viewer = _session(app, "vera", "viewer")
    html = viewer.get("/alarms").text
    assert len(alarm_ids(html)) == 4
    assert '<form class="alarm-act"' not in html and "Acknowledge" not in html
    assert "csrf_token" not in html and ">Shelve<" not in html
    part = viewer.get("/parts/alarms", params={"machine": M1}).text
    assert alarm_ids(part) == [f"temp-high@{T1}"] and "<form" not in part
    aid = f"temp-high@{T1}"
    forged = viewer.post("/alarms/acknowledge?site=s1",
                         data={"alarm_id": aid, "csrf_token": viewer.csrf})  # fmt: skip
    assert forged.status_code == 403 and "operator role" in forged.text
    # an operator session must send its CSRF token; another site's page cannot post
    op = _session(app, "otto", "operator")
    page = op.get("/alarms").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert token == op.csrf
    assert op.post("/alarms/acknowledge?site=s1", data={"alarm_id": aid}).status_code == 403
    bad = op.post("/alarms/acknowledge?site=s1", data={"alarm_id": aid, "csrf_token": "x" * 20})
    assert bad.status_code == 403 and "CSRF" in bad.text
    evil = op.post("/alarms/acknowledge?site=s1", data={"alarm_id": aid, "csrf_token": token},
                   headers={"Origin": "https://evil.example"})  # fmt: skip
    assert evil.status_code == 403
    states = {a["alarm_id"]: a["state"] for a in duck_alarms.get("/api/v1/alarms").json()["alarms"]}
    assert states[aid] == "unack"
    ok = op.post("/alarms/acknowledge?site=s1", data={"alarm_id": aid, "csrf_token": token},
                 follow_redirects=False)  # fmt: skip
    assert ok.status_code == 303
    states = {a["alarm_id"]: a["state"] for a in duck_alarms.get("/api/v1/alarms").json()["alarms"]}
    assert states[aid] == "acked"
    # anonymous: sent to sign in, never acting
    anon = TestClient(app).post("/alarms/acknowledge?site=s1", data={"alarm_id": aid},
                                follow_redirects=False)  # fmt: skip
    assert anon.status_code in (303, 401)


def test_site_limited_operator_acts_only_on_its_site(duck_alarms):
    op = _session(duck_alarms.app, "sia", "operator", site="s2")
    assert op.get("/alarms").status_code == 403  # must name its site
    html = op.get("/alarms", params={"site": "s2"}).text
    assert alarm_ids(html) == [f"press-low@{P3}"] and 'class="ack"' in html
    assert "temp-high" not in html  # neither in the list nor in the history
    assert re.findall(r'<option value="(s\d)"', html) == ["s2"]  # no other site's name
    assert op.get("/alarms", params={"site": "s1"}).status_code == 403
    s1_alarm = {"alarm_id": f"temp-high@{T1}", "csrf_token": op.csrf}
    assert op.post("/alarms/acknowledge?site=s1", data=s1_alarm).status_code == 403
    assert op.post("/alarms/acknowledge?site=s2", data=s1_alarm).status_code == 403
    # its own alarm; the list it gets back never shows another site, whatever `back` says
    own = {"alarm_id": f"press-low@{P3}", "csrf_token": op.csrf, "back": "site=s1"}
    r = op.post("/alarms/acknowledge?site=s2", data=own, headers={"HX-Request": "true"})
    assert r.status_code == 200 and alarm_ids(r.text) == [f"press-low@{P3}"]
    assert "active, acknowledged" in r.text and "temp-high" not in r.text
    assert 'name="back" value="site=s2"' in r.text


# ---------------------------------------------------------------------------- history
def test_history_pages_newest_first(duck_alarms):
    c = duck_alarms
    aid = f"temp-high@{T1}"
    for _ in range(3):
        c.post("/alarms/shelve?site=s1", data={"alarm_id": aid, "minutes": "15"})
        c.post("/alarms/unshelve?site=s1", data={"alarm_id": aid})
    # 4 raises, then 3 × (shelved, unshelved, raised): 13 events
    first = c.get("/alarms", params={"hlimit": 5}).text
    rows = re.findall(r'<tr class="ev-(\w+)">', first)
    assert rows == ["raised", "unshelved", "shelved", "raised", "unshelved"]
    assert "events 1–5" in first and 'href="?hoffset=5&amp;hlimit=5" rel="next"' in first
    last = c.get("/alarms", params={"hlimit": 5, "hoffset": 10}).text
    assert re.findall(r'<tr class="ev-(\w+)">', last) == ["raised", "raised", "raised"]
    assert "events 11–13" in last and 'rel="next"' not in last
    assert 'href="?hoffset=5&amp;hlimit=5" rel="prev"' in last
    past = c.get("/alarms", params={"hlimit": 5, "hoffset": 500}).text
    assert "this page lies past the end" in past and 'href="?hoffset=0&amp;hlimit=5"' in past
    # filters apply to the history too (a site-limited viewer sees only its site)
    s2 = c.get("/alarms", params={"site": "s2", "hlimit": 50}).text
    assert re.findall(r'<tr class="ev-(\w+)">', s2) == ["raised"]
    assert 'href="?site=s2&amp;hoffset=0' not in s2  # one page: no links


def test_history_page_walks_back_in_windows(duck_alarms):
    store = AlarmStore(duck_alarms.app.state.historian)
    everything, more = history_page(store, "demo", None, 0, 100)
    assert [e["seq"] for e in everything] == [4, 3, 2, 1] and not more
    only_s1 = lambda e: e["source"].startswith("s1/")  # noqa: E731
    page, more = history_page(store, "demo", only_s1, 1, 1, chunk=1)
    assert [e["seq"] for e in page] == [3] and more
    assert history_page(store, "demo", only_s1, 9, 5, chunk=2) == ([], False)


def test_rows_allow_actions_only_where_the_caller_may_act(duck_alarms):
    service = AlarmService(duck_alarms.app.state.historian, duck_alarms.app.state.settings)
    rules = {r.id: r for r in service.rules()}
    rows = alarm_rows(service.alarms(), rules, AlarmFilter(), now_ms(), lambda site: site == "s2")
    acts = {r.alarm_id: (r.can_ack, bool(r.shelve_minutes), r.can_unshelve) for r in rows}
    assert acts[f"press-low@{P3}"] == (True, True, False)
    assert acts[f"temp-high@{T1}"] == (False, False, False)


# ---------------------------------------------------------------------------- real browser
def test_browser_operator_acknowledges_and_viewer_cannot(settings_factory, browser):
    settings = settings_factory(plant={"alarms": RULES})
    with LiveServer(settings) as live:
        raise_alarms(live.historian, settings)
        store = AuthStore(live.historian)
        for name, role in (("otto", "operator"), ("vera", "viewer")):
            store.add_user(name, "a long enough password", now_ms=now_ms())
            store.grant(name, "demo", role)
        aid = f"temp-high@{T1}"
        page = browser.new_page(viewport={"width": 390, "height": 844})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        sign_in(page, live.url + "/alarms", "otto", "a long enough password")
        item = page.locator(f'li.alarm[data-alarm="{aid}"]')
        assert item.get_attribute("data-state") == "unack"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        if SHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "alarms-phone.png"), full_page=False)
        page.evaluate("window.__same_page = 7")
        item.locator("button.ack").click()
        page.locator(f'li.alarm[data-alarm="{aid}"][data-state="acked"]').wait_for(timeout=10_000)
        assert "acknowledged by otto" in page.locator(f'li.alarm[data-alarm="{aid}"]').inner_text()
        assert page.evaluate("window.__same_page") == 7  # swapped in place, no reload
        # a change made elsewhere shows up without a reload (poll / indunet:alarm event)
        AlarmService(live.historian, settings).acknowledge(f"press-low@{P3}", by="someone")
        page.evaluate("document.body.dispatchEvent(new CustomEvent('indunet:alarm'))")
        page.locator(f'li.alarm[data-alarm="press-low@{P3}"][data-state="acked"]').wait_for(
            timeout=10_000
        )
        assert page.evaluate("window.__same_page") == 7

        viewer = browser.new_page(viewport={"width": 390, "height": 844})
        sign_in(viewer, live.url + "/alarms", "vera", "a long enough password")
        assert viewer.locator("li.alarm").count() == 3
        assert viewer.locator("form.alarm-act, button.ack").count() == 0
        # the viewer forges the operator's form with its own session and CSRF token
        status = viewer.evaluate(
            """async (aid) => {
                const me = await (await fetch('/api/v1/auth/me')).json();
                const body = new URLSearchParams({alarm_id: aid, csrf_token: me.csrf_token});
                const r = await fetch('/alarms/acknowledge?site=s1', {method: 'POST', body});
                return r.status; }""",
            f"temp-high@{T2}",
        )
        assert status == 403
        left = {a.alarm_id: a.state for a in AlarmService(live.historian, settings).alarms()}
        assert left[f"temp-high@{T2}"] == "unack"
        assert problems == []


# -------------------------------------------------------- plant alarms apart from chain alerts
@pytest.fixture
def plant_and_chain(make_client) -> TestClient:
    """The demo's national chain with two chain alerts beside the three plant alarms."""
    from indunet.chain.live import _AlarmFeed, chain_alarm_extras
    from indunet.sim.chain_demo import DEMO_NETWORK, load_demo_chain
    from indunet.store.base import TagSpec

    client = make_client(plant={"alarms": RULES})
    h = client.app.state.historian
    h.declare_tags("demo", [TagSpec(T1, unit="°C"), TagSpec(P3, unit="bar")])
    load_demo_chain(h, "demo")
    settings = client.app.state.settings
    service = AlarmService(h, settings, **chain_alarm_extras(h, "demo"))
    t = now_ms()
    write(h, [(T1, t - 9000, 20.0), (T2, t - 9000, 20.0), (P3, t - 9000, 3.0)])
    service.run_once(t - 8000)
    write(h, [(T1, t - 7000, 95.5), (T2, t - 7000, 81.0), (P3, t - 7000, 1.25)])
    service.run_once(t - 6000)
    feed = _AlarmFeed(service)
    net = DEMO_NETWORK
    feed.feed({f"derived/chain/{net}/site/wuhan-1": 1.4,
               f"derived/chain/{net}/runout/ventilator": 6.0}, t - 5000)  # fmt: skip
    client.app.state.alarms = service
    return client


def test_plant_alarms_by_default_chain_alerts_apart_in_plain_words(plant_and_chain):
    c = plant_and_chain
    page = c.get("/alarms").text
    shown = alarm_ids(page)
    assert len(shown) == 3 and not any("derived/chain" in a for a in shown)
    assert "Plant alarms <b>3</b>" in page and "Chain alerts <b>2</b>" in page
    assert "temp_c 95.5 °C &gt; 80 °C" in card(page, f"temp-high@{T1}")
    assert "pressure_bar 1.25 bar &lt; 2 bar" in card(page, f"press-low@{P3}")
    chain = c.get("/alarms", params={"kind": "chain"}).text
    ids = alarm_ids(chain)
    assert len(ids) == 2 and all("derived/chain/national" in a for a in ids)
    assert "Supplier site wuhan-1 of chain national is down 1.4 days" in chain
    assert "ventilator runs out in 6.0 days (alert under 28 days)" in chain
    assert len(alarm_ids(c.get("/alarms", params={"kind": "all"}).text)) == 5
    assert c.get("/alarms", params={"kind": "weather"}).status_code == 422
    assert len(alarm_ids(c.get("/parts/alarms", params={"kind": "chain"}).text)) == 2


def test_every_alarm_source_link_resolves(plant_and_chain):
    c = plant_and_chain
    links = set()
    for kind in ("plant", "chain"):
        html = c.get("/alarms", params={"kind": kind}).text
        for alarm in alarm_ids(html):
            links |= set(re.findall(r'<div class="alarm-src"><a href="([^"]+)"', card(html, alarm)))
    assert "/chain/national" in links and f"/machine/{M1}" in links
    for href in links:
        assert c.get(href).status_code == 200, href


def test_overview_counts_chain_alerts_apart_and_links_both(plant_and_chain):
    html = plant_and_chain.get("/parts/overview").text
    assert '<a href="/alarms"><b class="ov-alarms">3</b> open alarms</a>' in html
    assert '<a href="/alarms?kind=chain"><b class="ov-chain-alerts">2</b> chain alerts</a>' in html
    assert 'data-site=""' not in html  # chain alerts make no "enterprise-wide" plant card
