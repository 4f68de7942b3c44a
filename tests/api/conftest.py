"""HTTP API fixtures: TestClient on a real DuckDB file or a fresh PostgreSQL schema.

Every client signs its requests like a real program: with an admin API key **of the enterprise
the request targets** (its ``?enterprise=`` parameter, else the settings' default enterprise),
and with a chain-operator key for the cross-enterprise ``/api/v1/region`` routes. Keys are
single-tenant, so the tenant rule stays fully active in these tests; a key is issued (through
the app's own account store) the first time a test talks to an enterprise. Tests about
authorisation itself build their own principals (``tests/api/test_security_matrix.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from indunet.api.app import create_app
from indunet.auth.store import AuthStore
from tests.conftest import PG_URL


class TenantAdminKeys(httpx.Auth):
    """Sign each request with an admin key of its enterprise (a chain key for /region)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.keys: dict[str, str] = {}

    def key_for(self, enterprise: str) -> str:
        """Return (issuing on first use) the admin key of ``enterprise``, or the chain key."""
        if enterprise not in self.keys:
            store = AuthStore(self.app.state.historian)
            role = "chain" if enterprise == "*" else "admin"
            issued = store.create_key(
                enterprise, role, name="test fixture", now_ms=int(time.time() * 1000)
            )
            self.keys[enterprise] = issued.secret
        return self.keys[enterprise]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add ``Authorization: Bearer`` unless the test set its own credentials."""
        if "authorization" not in request.headers and "x-device-key" not in request.headers:
            if request.url.path.startswith("/api/v1/region"):
                enterprise = "*"
            else:
                enterprise = (
                    request.url.params.get("enterprise") or self.app.state.settings.enterprise
                )
            request.headers["Authorization"] = f"Bearer {self.key_for(enterprise)}"
        yield request


def signed_client(app: FastAPI, stack: ExitStack) -> TestClient:
    """Start ``app`` in a TestClient whose requests carry tenant admin keys."""
    client = stack.enter_context(TestClient(app))
    client.auth = TenantAdminKeys(app)
    return client


@pytest.fixture
def make_client(settings_factory) -> Iterator[Callable[..., TestClient]]:
    """Build clients whose lifespan runs (the app opens and closes its own historian)."""
    with ExitStack() as stack:

        def make(**overrides: object) -> TestClient:
            return signed_client(create_app(settings_factory(**overrides)), stack)

        yield make


@pytest.fixture
def duck_client(make_client) -> TestClient:
    """A client on the embedded DuckDB historian."""
    return make_client()


@pytest.fixture(params=["duckdb", "postgresql"])
def client(request: pytest.FixtureRequest, make_client) -> TestClient:
    """A client on each backend."""
    if request.param == "postgresql":
        return make_client(db=PG_URL, pg_schema=request.getfixturevalue("pg_schema"))
    return make_client()
