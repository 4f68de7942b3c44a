"""The long-run invariant test, reduced: 2 simulated hours of 3 machines through faults.

`bench/soak.py` runs the full version (a simulated week). See `tests/soak.py` for the faults and
the invariants.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import PG_URL
from tests.connect.test_durability import MOSQUITTO
from tests.soak import run_soak


@pytest.fixture
def mosquitto():
    if not os.path.exists(MOSQUITTO):
        if os.environ.get("CI"):
            pytest.fail("the mosquitto binary is needed for the invariant test")
        pytest.skip("the mosquitto binary is needed for the invariant test")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_a_plant_through_restarts_and_faults_keeps_every_invariant(
    tmp_path, mosquitto, backend, request, monkeypatch
):
    db = None
    if backend == "postgresql":
        monkeypatch.setenv("INDUNET_PG_SCHEMA", request.getfixturevalue("pg_schema"))
        db = PG_URL
    result = run_soak(tmp_path, machines=3, hours=2.0, db=db, log=lambda *_: None)
    assert result.failures == [], "\n".join(result.failures)
    assert result.published > 3 * 7200  # plus the re-sent duplicates
    assert result.stored == 4 * 3 * 7200
    assert len(result.faults) == 6
