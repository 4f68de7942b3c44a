"""schemathesis against ``/openapi.json``: no 5xx, and every answer matches the documented schema.

Every operation gets a bounded number of generated requests (deterministic: the same examples on
every run, so CI is stable), sent as an admin of ``acme`` (a chain operator for ``/region``) so
they get past authorisation and reach the route code. ``INDUNET_SCHEMA_EXAMPLES=200`` digs deeper
locally. Besides: the spec itself documents each operation's errors and success.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from indunet.api.app import create_app
from indunet.auth.policy import rule_for
from indunet.auth.store import AuthStore
from indunet.config import load_settings

EXAMPLES = int(os.environ.get("INDUNET_SCHEMA_EXAMPLES", "6"))
SLOW = {"/api/v1/auth/login", "/api/v1/auth/login/form", "/api/v1/users"}  # password hashing
SKIP = {"/api/v1/events"}  # an endless event stream: tests/api/routes/test_events.py
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ERRORS_EVERYWHERE = {"404", "422", "500", "503"}
# routes that still answer a bare dict (documented as "an object"): type them and take them off
KNOWN_UNTYPED = {
    "DELETE /api/v1/alarm-rules/{rule_id}",
    "DELETE /api/v1/dock/{kind}/{entry_id}",
    "DELETE /api/v1/keys/{key_id}",
    "DELETE /api/v1/users/{name}/grant",
    "GET /api/v1/alarm-rules",
    "GET /api/v1/alarms",
    "GET /api/v1/alarms/history",
    "GET /api/v1/alarms/status",
    "GET /api/v1/auth/me",
    "GET /api/v1/business/overview",
    "GET /api/v1/chain/networks",
    "GET /api/v1/chain/networks/{name}",
    "GET /api/v1/chain/networks/{name}/carbon",
    "GET /api/v1/chain/networks/{name}/items",
    "GET /api/v1/chain/networks/{name}/resilience",
    "GET /api/v1/chain/networks/{name}/scenarios",
    "GET /api/v1/chain/networks/{name}/scenarios/compare",
    "GET /api/v1/chain/networks/{name}/scenarios/{scenario}",
    "GET /api/v1/chain/networks/{name}/stuck-points",
    "GET /api/v1/dock/dispatch",
    "GET /api/v1/dock/dispatch/{order_id}/audit",
    "GET /api/v1/dock/rank",
    "GET /api/v1/dock/runs/{run_id}",
    "GET /api/v1/dock/{kind}",
    "GET /api/v1/energy",
    "GET /api/v1/inventory",
    "GET /api/v1/machines",
    "GET /api/v1/oee",
    "GET /api/v1/orders",
    "GET /api/v1/region/enterprises",
    "GET /api/v1/region/headline",
    "GET /api/v1/region/quarantine",
    "GET /api/v1/region/rankings",
    "GET /api/v1/region/rate",
    "GET /api/v1/region/rate.csv",
    "GET /api/v1/region/status",
    "GET /api/v1/region/trend",
    "GET /api/v1/region/watchlist",
    "GET /api/v1/series",
    "GET /api/v1/shipments",
    "GET /api/v1/states",
    "GET /api/v1/stops",
    "POST /api/v1/alarm-rules",
    "POST /api/v1/alarms/{alarm_id}/acknowledge",
    "POST /api/v1/alarms/{alarm_id}/shelve",
    "POST /api/v1/alarms/{alarm_id}/unshelve",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/logout",
    "POST /api/v1/business/{kind}",
    "POST /api/v1/chain/networks/{name}/scenarios",
    "POST /api/v1/commands",
    "POST /api/v1/dock/dispatch/{order_id}/{action}",
    "POST /api/v1/dock/runs",
    "POST /api/v1/dock/runs/{run_id}/dispatch",
    "POST /api/v1/dock/solve",
    "POST /api/v1/dock/transfer/match",
    "POST /api/v1/dock/{kind}",
    "POST /api/v1/keys",
    "POST /api/v1/states/reasons",
    "POST /api/v1/users",
    "POST /api/v1/users/{name}/disable",
    "PUT /api/v1/chain/networks/{name}",
    "PUT /api/v1/machines/{path}",
    "PUT /api/v1/users/{name}/grant",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One running app (DuckDB) with a point stored and keys for acme's admin and a chain one."""
    tmp: Path = tmp_path_factory.mktemp("schema")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("INDUNET_CONFIG", raising=False)
        app = create_app(load_settings(data_dir=tmp / "data", enterprise="acme"))
    with TestClient(app) as client:  # runs the lifespan: the historian stays open meanwhile
        store = AuthStore(app.state.historian)
        now = int(time.time() * 1000)
        app.state.test_keys = {
            "admin": store.create_key("acme", "admin", now_ms=now).secret,
            "chain": store.create_key("*", "chain", now_ms=now).secret,
        }
        auth = {"Authorization": f"Bearer {app.state.test_keys['admin']}"}
        point = {"tag": "s1/a/l/m/power", "ts": now - 1000, "value": 3.5}
        assert client.post("/api/v1/ingest", json=point, headers=auth).status_code == 200
        yield app


def _probe(op, session: ASGIClient, headers: dict[str, str], failures: list[str]):
    """Return a function running ``op``'s generated requests; it returns how many it sent."""
    sent = 0

    @given(case=op.as_strategy())
    @settings(
        max_examples=2 if op.path in SLOW else EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def probe(case) -> None:
        nonlocal sent
        if case.query and "enterprise" in case.query:
            case.query["enterprise"] = "acme"  # the key's tenant: reach the route code
        sent += 1
        try:
            case.call_and_validate(
                base_url="http://testserver", session=session, headers=headers, checks=CHECKS
            )
        except (Exception, BaseExceptionGroup) as exc:  # a failure group, or a crash in the app
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            failures.append(f"{op.label}: {type(exc).__name__}: {first}\n{exc}"[:1500])

    def run() -> int:
        probe()
        return sent

    return run


@contextmanager
def _client(app: FastAPI) -> Iterator[TestClient]:
    """A client on the running app, without a second lifespan (that would reopen the store)."""
    client = TestClient(app)
    try:
        yield client
    finally:
        client.close()


def test_no_operation_answers_5xx_or_off_schema(app: FastAPI) -> None:
    # from_dict + an un-entered ASGI client: schemathesis' from_asgi would start a second
    # lifespan of the app (a second historian), kept until the process ends
    schema = schemathesis.openapi.from_dict(app.openapi())
    session = ASGIClient(app)
    keys = app.state.test_keys
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in SKIP:
            continue
        key = keys["chain"] if op.path.startswith("/api/v1/region") else keys["admin"]
        probe = _probe(op, session, {"Authorization": f"Bearer {key}"}, failures)
        calls += probe()
    assert calls > 100  # the run did reach the operations
    assert not failures, "\n\n".join(failures[:10])


def test_openapi_documents_every_operation(app: FastAPI) -> None:
    spec = app.openapi()
    assert "ErrorBody" in spec["components"]["schemas"]
    problems = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            label = f"{method.upper()} {path}"
            if not (op.get("summary") and op.get("description")):
                problems.append(f"{label}: no summary/description (give the route a docstring)")
            responses = op.get("responses", {})
            ok = [code for code in responses if code[0] in "23"]
            redirect = any(code[0] == "3" for code in ok)  # a form's 303 has no body
            if not ok or not (redirect or any(responses[c].get("content") for c in ok)):
                problems.append(f"{label}: no documented success body")
            missing = ERRORS_EVERYWHERE - set(responses)
            rule = rule_for(method.upper(), path)
            if rule is not None and rule.need.value != "public":
                missing |= {"401", "403"} - set(responses)
            if method in ("post", "put"):
                missing |= {"413"} - set(responses)
            if missing:
                problems.append(f"{label}: errors not documented: {sorted(missing)}")
            for code, response in responses.items():
                if code[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    if schema != {"$ref": "#/components/schemas/ErrorBody"}:
                        problems.append(f"{label}: {code} is not ErrorBody")
    assert not problems, "\n".join(problems)


def untyped_operations(spec: dict) -> set[str]:
    """Return ``METHOD path`` of operations whose JSON success body is an untyped object."""
    out = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for code, response in op.get("responses", {}).items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if code[0] != "2" or schema is None:
                    continue
                typed = {"$ref", "properties", "items", "anyOf", "oneOf", "allOf"} & set(schema)
                if not typed and schema.get("type") not in ("string", "integer", "number"):
                    out.add(f"{method.upper()} {path}")
    return out


def test_new_operations_have_a_typed_success_body(app: FastAPI) -> None:
    """A ratchet: routes answering a bare ``dict`` are listed in KNOWN_UNTYPED; no new ones."""
    new = untyped_operations(app.openapi()) - KNOWN_UNTYPED
    assert not new, f"give these routes a response_model (a pydantic class): {sorted(new)}"


def test_error_bodies_match_the_documented_schema(app: FastAPI) -> None:
    """The ErrorBody schema is what the app really sends (a 422 list and a 404 sentence)."""
    import jsonschema_rs

    spec = app.openapi()
    error_schema = spec["components"]["schemas"]["ErrorBody"]
    validator = jsonschema_rs.validator_for(error_schema)
    with _client(app) as c:
        auth = {"Authorization": f"Bearer {app.state.test_keys['admin']}"}
        for r in (
            c.get("/api/v1/tags", params={"limit": -1}, headers=auth),
            c.get("/api/v1/nope", headers=auth),
            c.get("/api/v1/tags"),
        ):
            assert r.status_code >= 400
            validator.validate(r.json())


@pytest.mark.parametrize(
    ("url", "key", "status"),
    [
        ("/api/v1/stops?min_s=inf", "admin", 422),  # was a 500: round(inf)
        ("/api/v1/stops?min_s=1e300", "admin", 422),
        ("/api/v1/region/rate?date=0001-01-01", "chain", 200),  # was a 500: the day before 1 AD
        ("/api/v1/region/trend?start=0001-01-01&end=0001-01-03", "chain", 200),
        ("/api/v1/region/rankings?date=0001-01-01", "chain", 200),
    ],
)
def test_what_schemathesis_found_stays_fixed(app: FastAPI, url: str, key: str, status: int):
    with _client(app) as c:
        r = c.get(url, headers={"Authorization": f"Bearer {app.state.test_keys[key]}"})
        assert r.status_code == status, r.text


def test_csv_answers_are_documented(app: FastAPI) -> None:
    spec = app.openapi()
    for path in ("/api/v1/region/rate.csv", "/api/v1/region/trend", "/api/v1/region/enterprises"):
        assert "text/csv" in spec["paths"][path]["get"]["responses"]["200"]["content"], path
    with _client(app) as c:
        auth = {"Authorization": f"Bearer {app.state.test_keys['chain']}"}
        r = c.get("/api/v1/region/enterprises?date=2020-02-10&format=csv", headers=auth)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
