"""`indunet plant alarms|ack|shelve|scan` on the stored alarm state, rules from indunet.toml."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from indunet.cli import app
from indunet.config import load_settings
from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.plant.alarm_service import AlarmService
from indunet.store import open_historian

TEMP = "s1/press/l1/m1/temp_c"
AID = f"hot@{TEMP}"
TOML = f"""
[[plant.alarms]]
id = "hot"
kind = "high"
tag = "{TEMP}"
limit = 80.0
deadband = 5.0
priority = "high"
max_shelve_s = 3600
"""


@pytest.fixture
def run(settings_factory, tmp_path: Path):
    """Run the CLI in-process on a temporary data dir with rules in ./indunet.toml."""
    settings_factory()  # clears INDUNET_* variables and changes into tmp_path
    (tmp_path / "indunet.toml").write_text(TOML, encoding="utf-8")
    runner = CliRunner()

    def invoke(*args: str, expect: int = 0):
        argv = [*args, "--data-dir", str(tmp_path / "data")]
        result = runner.invoke(app, argv, catch_exceptions=False)
        assert result.exit_code == expect, (argv, result.output)
        return result

    return invoke


def _raise_alarm(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    historian = open_historian(settings)
    try:
        now = int(time.time() * 1000)
        table = pa.table(
            {
                "tag": [TEMP, TEMP],
                "ts": pa.array([now - 5000, now - 3000], pa.int64()),
                "value": pa.array([20.0, 97.5], pa.float64()),
                "text": pa.array([None, None], pa.string()),
                "quality": pa.array([0, 0], pa.uint8()),
            },
            schema=POINT_SCHEMA,
        )
        historian.write(PointBatch(settings.enterprise, table, {TEMP: DataType.NUMBER}))
        service = AlarmService(historian, settings)
        assert [r["kind"] for r in service.run_once(now)] == ["raised"]
        service.stop()
    finally:
        historian.close()


def _error(result) -> str:
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_list_ack_shelve(run, tmp_path: Path) -> None:
    _raise_alarm(tmp_path)
    rows = json.loads(run("plant", "alarms", "--json").stdout)["rows"]
    assert [(r["alarm_id"], r["state"], r["value"]) for r in rows] == [(AID, "unack", 97.5)]
    assert len(json.loads(run("plant", "alarms", "--active", "--json").stdout)["rows"]) == 1
    table = run("plant", "alarms").stdout
    assert AID in table and "unack" in table

    out = json.loads(run("plant", "ack", AID, "--by", "li", "--comment", "ok", "--json").stdout)
    assert [(r["kind"], r["by"], r["seq"]) for r in out["rows"]] == [("acknowledged", "li", 2)]
    assert json.loads(run("plant", "alarms", "--json").stdout)["rows"][0]["state"] == "acked"

    until = str(int(time.time() * 1000) + 600_000)
    out = json.loads(run("plant", "shelve", AID, "--until", until, "--by", "li", "--json").stdout)
    assert out["rows"][0]["kind"] == "shelved"
    assert "shelved" in run("plant", "shelve", AID, "--until", until, "--by", "li").stdout


def test_bad_input_exits_2(run, tmp_path: Path) -> None:
    _raise_alarm(tmp_path)
    assert "does not exist" in _error(run("plant", "ack", "nope@" + TEMP, "--by", "li", expect=2))
    assert "'by'" in _error(run("plant", "ack", AID, "--by", " ", expect=2))
    missing = run("plant", "shelve", AID, "--by", "li", expect=2)
    assert "--until" in missing.output
    err = _error(run("plant", "shelve", AID, "--until", "soon", "--by", "li", expect=2))
    assert "option --until" in err
    far = str(int(time.time() * 1000) + 7200_000)
    assert "max_shelve_s" in _error(
        run("plant", "shelve", AID, "--until", far, "--by", "li", expect=2)
    )
    run("plant", "ack", AID, "--by", "li")
    assert "cannot ack" in _error(run("plant", "ack", AID, "--by", "li", expect=2))


def test_rules_with_unknown_tags_or_fields_exit_2(run, tmp_path: Path) -> None:
    _raise_alarm(tmp_path)
    (tmp_path / "indunet.toml").write_text(
        TOML.replace(f'tag = "{TEMP}"', 'tag = "s1/press/l1/m1/tmp_c"'), encoding="utf-8"
    )
    err = _error(run("plant", "alarms", expect=2))
    assert "alarm rule 'hot' field 'tag': unknown tag 's1/press/l1/m1/tmp_c'" in err
    (tmp_path / "indunet.toml").write_text(TOML.replace("limit = 80.0", ""), encoding="utf-8")
    err = _error(run("plant", "alarms", expect=2))
    assert "alarm rule 'hot' field 'limit': Field required" in err


def test_scan_an_anomaly_monitor_over_history(run, tmp_path: Path) -> None:
    (tmp_path / "indunet.toml").write_text(
        TOML + f'\n[[plant.monitors]]\nid = "press-temp"\ntag = "{TEMP}"\n', encoding="utf-8"
    )
    settings = load_settings(data_dir=tmp_path / "data")
    historian = open_historian(settings)
    t0 = int(time.time() * 1000) // 60_000 * 60_000 - 3 * 86_400_000
    n = 3 * 1440
    rng = np.random.default_rng(1)
    values = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.5, n)
    values[3000:3010] += 15  # a spike
    values[3500:] *= 1000  # the logger switched units
    try:
        table = pa.table(
            {
                "tag": [TEMP] * n,
                "ts": pa.array(t0 + np.arange(n) * 60_000, pa.int64()),
                "value": pa.array(values, pa.float64()),
                "text": pa.array([None] * n, pa.string()),
                "quality": pa.array([0] * n, pa.uint8()),
            },
            schema=POINT_SCHEMA,
        )
        historian.write(PointBatch(settings.enterprise, table, {TEMP: DataType.NUMBER}))
    finally:
        historian.close()
    start, end = str(t0), str(t0 + n * 60_000)
    out = json.loads(
        run("plant", "scan", "press-temp", "--start", start, "--end", end, "--json").stdout
    )
    kinds = [(r["kind"], r["ts"]) for r in out["rows"]]
    assert kinds == [("anomaly", t0 + 3000 * 60_000), ("unit_change", t0 + 3499 * 60_000)]
    assert "robust z" in out["rows"][0]["text"]
    assert (
        "unit_change" in run("plant", "scan", "press-temp", "--start", start, "--end", end).stdout
    )
    assert "does not exist" in _error(run("plant", "scan", "nope", expect=2))
    assert "after" in _error(
        run("plant", "scan", "press-temp", "--start", end, "--end", start, expect=2)
    )
