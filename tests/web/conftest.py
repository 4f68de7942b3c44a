"""Web page fixtures: the same TestClients as the HTTP API tests."""

from tests.api.conftest import client, duck_client, make_client  # noqa: F401
