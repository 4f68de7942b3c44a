"""GET /api/v1/federation/sites: chain operators see every uplinked site; silent ones unknown."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from indunet.auth.store import AuthStore
from indunet.federation import contract
from indunet.federation.regional import FederationStore


def _chain_key(client: TestClient) -> dict[str, str]:
    store = AuthStore(client.app.state.historian)
    key = store.create_key("*", "chain", name="t", now_ms=int(time.time() * 1000))
    return {"Authorization": f"Bearer {key.secret}"}


def test_sites_for_a_chain_operator_only(client: TestClient) -> None:
    now = int(time.time() * 1000)
    store = FederationStore(client.app.state.historian)
    for ent, at in (("acme", now - 5_000), ("bolt", now - 3_600_000)):
        record = contract.build(
            ent, "states", "s1", contract.minute_period(at),
            {"machines": 2, "running": 1, "idle": 0, "off": 1, "offline": 0, "unknown": 0,
             "at_ms": at},
            computed_ms=at, rev=1,
        )  # fmt: skip
        store.apply(record, at)
    chain = _chain_key(client)
    r = client.get("/api/v1/federation/sites", headers=chain)
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(s["enterprise"], s["status"], s["states"]["running"]) for s in body["sites"]]
    assert got == [("acme", "reporting", 1), ("bolt", "unknown", 1)]
    # a plant's own admin (the fixture's default signing) is not a chain operator
    assert client.get("/api/v1/federation/sites").status_code == 403
    assert (
        client.get("/api/v1/federation/sites", headers={"Authorization": "Bearer x"}).status_code
        == 401
    )


def test_sites_empty_before_any_uplink(client: TestClient) -> None:
    r = client.get("/api/v1/federation/sites", headers=_chain_key(client))
    assert r.status_code == 200 and r.json()["sites"] == []
