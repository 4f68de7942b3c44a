"""Business tests may also call the HTTP API (the TestClient fixtures of tests/api)."""

from tests.api.conftest import client, duck_client, make_client  # noqa: F401
