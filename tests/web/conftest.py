"""Web page fixtures: the HTTP API's TestClients, a live uvicorn server and a real Chromium.

Browser tests drive Debian's Chromium (``/usr/bin/chromium``, installed by the Makefile) through
Playwright: ``live`` is the real app on a free port with a DuckDB historian, ``browser`` a headless
Chromium, ``sign_in`` goes through the real sign-in form.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from indunet.api.app import create_app
from indunet.connect.broker import free_port
from indunet.store import open_historian
from tests.api.conftest import client, duck_client, make_client  # noqa: F401

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


class LiveServer:
    """The real app under uvicorn in a thread, on a free port, with a DuckDB historian."""

    def __init__(self, settings) -> None:
        self.historian = open_historian(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, self.historian), host="127.0.0.1", port=self.port,
            log_level="warning",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.historian.close()


@pytest.fixture
def live(settings_factory) -> Iterator[LiveServer]:
    with LiveServer(settings_factory()) as server:
        yield server


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(page, url: str, name: str, password: str) -> None:
    """Open ``url``, get sent to the sign-in form, sign in, and land back on ``url``."""
    page.goto(url)
    page.wait_for_url("**/login?next=**")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(url)
