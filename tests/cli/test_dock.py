from __future__ import annotations

import json

from typer.testing import CliRunner

from indunet.cli import app

PROBLEM = {
    "requests": [{"id": "H1", "item": "mask", "quantity": 250, "unmet_penalty": 1000}],
    "offers": [{"id": "S1", "item": "mask", "quantity": 300}],
    "lanes": [{"from": "S1", "to": "H1", "cost_per_unit": 4}],
}


def test_contract_command(tmp_path):
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(PROBLEM))
    result = CliRunner().invoke(app, ["dock", "solve", str(path), "--objective", "fair", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["total_cost"] == 1000
    assert out["min_fill_rate"] == 1.0
    assert out["allocations"] == [
        {"offer": "S1", "request": "H1", "quantity": 250.0, "cost": 1000.0}
    ]
    assert out["unmet"] == []
    table = CliRunner().invoke(app, ["dock", "solve", str(path)])
    assert "total cost 1000" in table.stdout


def test_bad_problem_files_exit_2_with_one_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"requests": [{"id": "H1", "item": "m", "quantity": -1}], "offers": []}')
    result = CliRunner().invoke(app, ["dock", "solve", str(path)])
    assert result.exit_code == 2
    assert "requests[0].quantity (id 'H1')" in result.stderr
    path.write_text("{")
    assert CliRunner().invoke(app, ["dock", "solve", str(path)]).exit_code == 2
    missing = CliRunner().invoke(app, ["dock", "solve", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "cannot be read" in missing.stderr


def test_rank_command(tmp_path):
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(PROBLEM))
    result = CliRunner().invoke(app, ["dock", "rank", str(path), "--request", "H1", "--json"])
    assert json.loads(result.stdout)["rows"][0]["offer"] == "S1"
    result = CliRunner().invoke(app, ["dock", "rank", str(path), "--request", "H9"])
    assert result.exit_code == 2
