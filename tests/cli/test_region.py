"""`indunet region …` end to end on the hand-checked fixture and a small simulated nation."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from indunet.cli import app
from tests.region.conftest import CORRECTION, READINGS, REGISTRY, write

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["region", *args])
    return result.exit_code, result.output


def test_import_rate_trend(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "indunet.toml").write_text(
        "[region]\nbaseline_min_days = 2\ntheta_by_industry = { C31 = 0.5 }\n"
    )
    dd = str(tmp_path / "data")
    code, out = _run(
        "import-registry",
        str(write(tmp_path / "reg.csv", REGISTRY)),
        "--data-dir",
        dd,
        "--effective",
        "2020-01-01",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["new"] == 6
    code, out = _run("import-readings", str(write(tmp_path / "r.csv", READINGS)), "--data-dir", dd)
    assert code == 0 and "stored 19 readings" in out
    code, out = _run(
        "import-readings", str(write(tmp_path / "c.csv", CORRECTION)), "--data-dir", dd, "--json"
    )
    assert json.loads(out)["replaced"] == 1
    code, out = _run("rate", "--date", "2020-03-02", "--by", "province", "--json", "--data-dir", dd)
    body = json.loads(out)
    assert code == 0 and {r["province"]: r["rate"] for r in body["rows"]} == {
        "Hubei": 100.0,
        "Guangdong": 50.0,
    }
    assert body["headline"].startswith("2020-03-02: Resumption 75.0 %")
    code, out = _run("rate", "--date", "2020-03-02", "--data-dir", dd)
    assert code == 0 and "Resumption 75.0 %" in out
    code, out = _run(
        "trend", "--start", "2020-03-01", "--end", "2020-03-02", "--csv", "--data-dir", dd
    )
    assert code == 0 and out.count("\n") == 3
    code, out = _run("not-resumed", "--date", "2020-03-02", "--data-dir", dd, "--json")
    assert [r["enterprise_id"] for r in json.loads(out)["rows"]] == ["E1"]
    code, out = _run("watchlist", "--date", "2020-03-02", "--data-dir", dd)
    assert "E3: Wuhan Motors is back but 2 of its 3 suppliers are not back" in out


def test_bad_input_exit_2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dd = str(tmp_path / "data")
    code, out = _run("rate", "--date", "2020-02-30", "--data-dir", dd)
    assert code == 2 and "--date" in out
    code, out = _run("rate", "--date", "2020-03-01", "--by", "planet", "--data-dir", dd)
    assert code == 2 and "planet" in out
    code, out = _run("import-readings", str(tmp_path / "none.csv"), "--data-dir", dd)
    assert code == 2 and "no such file" in out
    bad = "enterprise_id,name,province,city,industry,size\nX1,A,Atlantis,B,C36,small\n"
    code, out = _run("import-registry", str(write(tmp_path / "bad.csv", bad)), "--data-dir", dd)
    assert code == 2 and "row 2, field province" in out
    code, out = _run(
        "import-readings",
        str(write(tmp_path / "u.csv", "enterprise_id,date,kwh\nZZ,2020-03-01,5\n")),
        "--data-dir",
        dd,
    )
    assert code == 2 and "not in the registry" in out


def test_simulate_small_nation_and_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dd = str(tmp_path / "data")
    code, out = _run(
        "simulate", "--enterprises", "3000", "--start", "2019-12-01", "--end", "2020-03-06",
        "--out", str(tmp_path / "nation"), "--load", "--data-dir", dd, "--json",
    )  # fmt: skip
    assert code == 0, out
    body = json.loads(out)
    assert body["enterprises"] == 3000 and body["loaded"] == body["readings"]
    code, out = _run("rate", "--date", "2020-03-05", "--by", "province", "--json", "--data-dir", dd)
    rows = {r["province"]: r for r in json.loads(out)["rows"]}
    assert rows["Hubei"]["rate"] < rows["Guangdong"]["rate"]
    code, out = _run("rate", "--date", "2020-02-12", "--json", "--data-dir", dd)
    feb = json.loads(out)["rows"][0]["rate"]
    code, out = _run("rate", "--date", "2020-01-06", "--json", "--data-dir", dd)
    jan = json.loads(out)["rows"][0]["rate"]
    assert jan > 90 and feb < 40  # normal work, then the shutdown
