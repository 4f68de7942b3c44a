"""static/live.js in a real Chromium: values arrive over the event stream, the banner on loss."""

from __future__ import annotations

import httpx

from indunet.auth.store import AuthStore
from tests.web.conftest import sign_in
from tests.web.test_pages import M1, M2, ingest, now_ms, plant


def test_values_update_live_without_reload_or_polling(live, browser) -> None:
    store = AuthStore(live.historian)
    store.add_user("ann", "plant-manager-pw", now_ms=now_ms())
    store.grant("ann", "demo", "viewer")
    key = store.create_key("demo", "operator", name="test loader", now_ms=now_ms()).secret
    http = httpx.Client(base_url=live.url, timeout=10, headers={"Authorization": f"Bearer {key}"})
    plant(http)
    page = browser.new_page(viewport={"width": 390, "height": 844})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    fragments: list[str] = []

    def no_fragment(route) -> None:  # htmx polls /parts/…: answer 204 (no swap), and count
        fragments.append(route.request.url)
        route.fulfill(status=204, body="")

    page.route("**/parts/**", no_fragment)
    sign_in(page, live.url + "/plant", "ann", "plant-manager-pw")
    page.wait_for_function(
        "() => window.indunetLive && window.indunetLive.connected", timeout=15_000
    )
    assert page.evaluate("document.querySelectorAll('[data-live-tag]').length") >= 5
    value = page.locator(f'[data-live-tag="{M2}/power_kw"]')
    assert value.inner_text() == "2.5"
    page.evaluate(
        """() => {
        window.__seen = [];
        document.body.addEventListener('indunet:values', e => window.__seen.push(e.detail));
        document.querySelector('[data-live-tag$="m2/power_kw"]').__same = 42;
    }"""
    )
    polled = len(fragments)
    ingest(
        http,
        [
            {"tag": f"{M2}/power_kw", "ts": now_ms(), "value": 777.5},
            {"tag": f"{M1}/running", "ts": now_ms(), "value": False},
        ],
    )
    value.filter(has_text="777.5").wait_for(timeout=10_000)
    assert page.locator(f'[data-live-tag="{M1}/running"]').inner_text() == "off"
    assert value.evaluate("el => el.__same") == 42  # the same element: no swap, no reload
    assert value.evaluate("el => el.dataset.quality") == "good"
    assert value.evaluate("el => el.classList.contains('value')")  # its classes are kept
    # every fragment request was answered empty: the value came through the event stream
    assert all("/parts/" in u for u in fragments[polled:])
    seen = page.evaluate("window.__seen")
    assert any(
        r["tag"] == f"{M2}/power_kw" and r["value"] == 777.5 for e in seen for r in e["values"]
    )
    assert not page.locator("p.link-lost").is_visible()

    # the stream breaks and cannot come back: the banner shows; it comes back: the banner goes
    page.route("**/api/v1/events**", lambda route: route.abort())
    live.server.config.app.state.events.end_streams()  # the app's bus ends its streams
    page.locator("p.link-lost").wait_for(state="visible", timeout=10_000)
    assert value.is_visible()  # the page stays readable under the banner
    assert page.evaluate("window.indunetLive.connected") is False
    page.unroute("**/api/v1/events**")
    page.wait_for_function("() => window.indunetLive.connected", timeout=20_000)
    page.locator("p.link-lost").wait_for(state="hidden", timeout=5_000)
    ingest(http, [{"tag": f"{M2}/power_kw", "ts": now_ms(), "value": 12.25}])
    value.filter(has_text="12.25").wait_for(timeout=10_000)
    assert problems == []


def test_pages_without_live_elements_open_no_stream(live, browser) -> None:
    store = AuthStore(live.historian)
    store.add_user("bob", "plant-manager-pw", now_ms=now_ms())
    store.grant("bob", "demo", "viewer")
    page = browser.new_page()
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/api/v1/events" in r.url else None)
    sign_in(page, live.url + "/plant", "bob", "plant-manager-pw")  # no machines yet: empty
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.querySelector('[data-live-tag], [data-live]')") is None
    assert streams == [] and page.evaluate("window.indunetLive.source") is None
