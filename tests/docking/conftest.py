"""Docking test fixtures: the HTTP API clients for the route tests."""

from tests.api.conftest import duck_client, make_client  # noqa: F401
