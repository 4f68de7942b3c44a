"""`indunet users …` and `indunet keys …`: bootstrap an admin, issue and revoke keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from indunet.api.app import create_app
from indunet.cli import app


@pytest.fixture
def indunet(settings_factory, tmp_path: Path):
    settings_factory()  # a clean environment and working directory
    runner = CliRunner()

    def invoke(*args: str, expect: int = 0, stdin: str | None = None):
        argv = [*args, "--data-dir", str(tmp_path / "data")]
        result = runner.invoke(app, argv, input=stdin, catch_exceptions=False)
        assert result.exit_code == expect, (result.output, result.stderr)
        return result

    return invoke


def test_bootstrap_admin_and_keys_then_use_them(indunet, settings_factory) -> None:
    r = indunet("users", "add", "ann", "--enterprise", "acme", "--role", "admin", "--json")
    created = json.loads(r.stdout)
    assert created["role"] == "admin" and len(created["password"]) >= 12
    indunet(
        "users", "add", "bob", "--enterprise", "acme", "--password-stdin",
        stdin="bob's long password\n",
    )  # fmt: skip
    indunet("users", "grant", "bob", "--enterprise", "globex", "--role", "operator")
    indunet("users", "grant", "bob", "--role", "chain")
    listed = json.loads(indunet("users", "list", "--json").stdout)["rows"]
    assert [u["name"] for u in listed] == ["ann", "bob"]
    assert listed[1]["grants"] == "chain@*, viewer@acme, operator@globex"
    key = json.loads(
        indunet("keys", "create", "--enterprise", "acme", "--role", "operator", "--json").stdout
    )
    device = json.loads(
        indunet("keys", "create", "--enterprise", "acme", "--device", "--json").stdout
    )
    assert key["secret"].startswith("ik_") and device["secret"].startswith("idk_")
    keys = indunet("keys", "list", "--enterprise", "acme").stdout
    assert key["key_id"] in keys and key["secret"] not in keys

    with TestClient(create_app(settings_factory(enterprise="acme"))) as c:
        login = c.post("/api/v1/auth/login", json={"name": "ann", "password": created["password"]})
        assert login.status_code == 200 and login.json()["enterprises"] == ["acme"]
        point = {"tag": "s1/a/l/m/t", "ts": 1_700_000_000_000, "value": 1}
        sent = c.post("/api/v1/ingest", json=point, headers={"X-Device-Key": device["secret"]})
        assert sent.status_code == 200
        bearer = {"Authorization": f"Bearer {key['secret']}"}
        assert c.get("/api/v1/latest", headers=bearer).status_code == 200
    indunet("keys", "revoke", key["key_id"])
    indunet("keys", "revoke", key["key_id"], expect=2)
    indunet("users", "disable", "ann")
    with TestClient(create_app(settings_factory(enterprise="acme"))) as c:
        assert c.get("/api/v1/latest", headers=bearer).status_code == 401
        login = c.post("/api/v1/auth/login", json={"name": "ann", "password": created["password"]})
        assert login.status_code == 401


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("users", "add", "x y", "--enterprise", "acme"), "user name"),
        (("users", "add", "ann", "--enterprise", "acme", "--role", "root"), "--role"),
        (("users", "grant", "nobody", "--enterprise", "acme"), "does not exist"),
        (("users", "grant", "nobody", "--role", "admin"), "--enterprise is needed"),
        (("keys", "create", "--role", "admin"), "--enterprise is needed"),
        (("keys", "create", "--enterprise", "a/b"), "enterprise"),
        (("keys", "revoke", "0000000000000000"), "does not exist"),
        (("users", "disable", "nobody"), "does not exist"),
    ],
)
def test_bad_input_exits_2_naming_the_field(indunet, args, says) -> None:
    r = indunet(*args, expect=2)
    assert says in r.stderr and r.stderr.count("\n") == 1


def test_short_password_from_stdin_is_refused(indunet) -> None:
    r = indunet(
        "users", "add", "ann", "--enterprise", "acme", "--password-stdin", stdin="short\n", expect=2
    )
    assert "at least 10" in r.stderr
