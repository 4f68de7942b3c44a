"""The demo broker's logins: kept private and across restarts, made anew when unfit."""

from __future__ import annotations

import json

import pytest

from indunet.cli.run import _demo_broker_logins


def test_logins_are_kept_across_restarts_in_a_private_file(tmp_path) -> None:
    spec, logins = _demo_broker_logins("acme", tmp_path)
    assert spec.users() == ["indunet-ingest", "acme-sim", "acme-edge"]
    assert spec.enterprises["acme"] == ([], ["acme-sim", "acme-edge"])
    kept = tmp_path / "demo-broker.json"
    assert oct(kept.stat().st_mode)[-3:] == "600"
    assert sorted(logins) == sorted(spec.users()) and len(set(logins.values())) == 3
    assert _demo_broker_logins("acme", tmp_path)[1] == logins


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[1, 2]",
        '["indunet-ingest", "acme-sim", "acme-edge"]',  # the names, not a table
        '{"indunet-ingest": "x"}',  # users missing, a short password
        '{"indunet-ingest": 1, "acme-sim": 2, "acme-edge": 3}',
        json.dumps({u: "p" * 20 for u in ("indunet-ingest", "acme-sim", "mallory")}),
    ],
)
def test_an_unfit_file_gives_fresh_logins(tmp_path, content) -> None:
    kept = tmp_path / "demo-broker.json"
    kept.write_text(content)
    kept.chmod(0o644)
    spec, logins = _demo_broker_logins("acme", tmp_path)
    assert sorted(logins) == sorted(spec.users())
    assert all(isinstance(p, str) and len(p) >= 16 for p in logins.values())
    assert json.loads(kept.read_text()) == logins
    assert oct(kept.stat().st_mode)[-3:] == "600"


def test_another_enterprise_gets_its_own_users(tmp_path) -> None:
    _demo_broker_logins("acme", tmp_path)
    _, logins = _demo_broker_logins("globex", tmp_path)
    assert sorted(logins) == ["globex-edge", "globex-sim", "indunet-ingest"]
