"""`indunet chain …`: the resilience contract, stuck points, disruptions, carbon, import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indunet.cli import app
from tests.chain.networks import CONTRACT, TWO_LEVELS, TWO_SOURCES, doc


@pytest.fixture
def run(settings_factory):
    runner = CliRunner()

    def invoke(*args: str, expect: int = 0):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == expect, (args, result.output)
        return result

    return invoke


def write(tmp_path: Path, document, name: str = "network.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_resilience_contract_in_a_real_process(tmp_path: Path) -> None:
    path = write(tmp_path, doc(CONTRACT))
    out = subprocess.run(
        [sys.executable, "-m", "indunet.cli", "chain", "resilience", str(path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    # stdout is exactly the contract (no solver banner or log lines)
    assert json.loads(out.stdout) == {
        "nodes": [
            {
                "id": "A",
                "tts_weeks": 3.0,
                "ttr_weeks": 10.0,
                "performance_impact": 7000.0,
                "rei": 1.0,
                "at_risk": True,
            }
        ]
    }


def test_resilience_keys_and_table(run, tmp_path: Path) -> None:
    path = write(tmp_path, doc(TWO_SOURCES))
    data = json.loads(run("chain", "resilience", path, "--json").stdout)
    assert [list(n) for n in data["nodes"]] == [
        ["id", "tts_weeks", "ttr_weeks", "performance_impact", "rei", "at_risk"]
    ] * 2
    assert [n["at_risk"] for n in data["nodes"]] == [True, False]
    text = run("chain", "resilience", path).stdout
    assert "tts_weeks" in text.splitlines()[0] and "A" in text


def test_stuck_points_and_disrupt(run, tmp_path: Path) -> None:
    path = write(tmp_path, doc(TWO_LEVELS))
    points = json.loads(run("chain", "stuck-points", path, "--json").stdout)["stuck_points"]
    assert points[0]["rank"] == 1
    assert "1. [" in run("chain", "stuck-points", path).stdout
    result = json.loads(
        run("chain", "disrupt", path, "--region", "Y", "--weeks", "2", "--json").stdout
    )
    assert result["products"][0]["lost_demand"] == 100.0
    text = run("chain", "disrupt", path, "--item", "r", "--weeks", "4").stdout
    assert text.startswith("item r stops for 4 weeks: 1 sites stopped, 1 products hit")
    carbon = json.loads(run("chain", "carbon", path, "--json").stdout)
    assert round(carbon["products"][0]["kg_co2_per_unit"], 6) == 11.6


def test_bad_input_exits_2_with_one_line(run, tmp_path: Path) -> None:
    bad = doc(TWO_SOURCES)
    del bad["nodes"][1]["ttr_weeks"]
    result = run("chain", "resilience", write(tmp_path, bad), "--json", expect=2)
    assert result.stderr.strip() == "error: network.json: nodes[1] (id 'B'): ttr_weeks is missing"
    assert result.stdout == ""
    result = run("chain", "disrupt", write(tmp_path, doc(TWO_SOURCES)), "--weeks", "2", expect=2)
    assert "say what stops" in result.stderr and "\n" not in result.stderr.strip()
    result = run("chain", "stuck-points", tmp_path / "missing.json", expect=2)
    assert "no such file" in result.stderr


def test_import_stores_for_the_api(run, tmp_path: Path, settings_factory) -> None:
    from indunet.chain.store import ChainStore
    from indunet.store import open_historian

    path = write(tmp_path, doc(TWO_LEVELS))
    data = tmp_path / "data"
    out = run("chain", "import", path, "--name", "auto", "--data-dir", data, "--enterprise", "e1")
    assert "stored network 'auto': 3 sites, 1 products" in out.stdout
    historian = open_historian(settings_factory(data_dir=data))
    try:
        assert ChainStore(historian).network("e1", "auto").nodes[0].id == "R1"
    finally:
        historian.close()
