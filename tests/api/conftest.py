"""HTTP API fixtures: TestClient on a real DuckDB file or a fresh PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from indunet.api.app import create_app
from tests.conftest import PG_URL


@pytest.fixture
def make_client(settings_factory) -> Iterator[Callable[..., TestClient]]:
    """Build clients whose lifespan runs (the app opens and closes its own historian)."""
    with ExitStack() as stack:

        def make(**overrides: object) -> TestClient:
            app = create_app(settings_factory(**overrides))
            return stack.enter_context(TestClient(app))

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
