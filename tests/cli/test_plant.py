"""`indunet plant` analytics commands: machines, states, oee, energy, learn-thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from indunet.cli import app
from indunet.store import open_historian
from tests.plant.plant_data import M1, T0, power_profile, write

TOML = f"""
[[plant.machines]]
id = "{M1}"
power_tag = "power_kw"
thresholds = {{ off_below = 1.0, running_above = 5.0, hysteresis = 0.2 }}
total_counter = {{ tag = "parts_total" }}
ideal_cycle_s = {{ p = 10.0 }}
default_product = "p"

[plant.sites.s1]
grid_kg_co2_per_kwh = 0.5
"""


@pytest.fixture
def run(settings_factory, tmp_path):
    """Run the CLI on a data dir whose indunet.toml configures one machine with power data."""
    (tmp_path / "indunet.toml").write_text(TOML)
    settings = settings_factory()
    h = open_historian(settings)
    ts, v = power_profile(T0, [(600, 0.0), (600, 3.0), (1200, 8.0), (600, 0.0)])
    write(h, f"{M1}/power_kw", ts, v)
    write(h, f"{M1}/parts_total", [T0, T0 + 2_400_000], [0, 100])
    h.close()
    runner = CliRunner()

    def invoke(*args: object, expect: int = 0):
        argv = [str(a) for a in args] + ["--data-dir", str(tmp_path / "data")]
        result = runner.invoke(app, argv, catch_exceptions=False)
        assert result.exit_code == expect, (argv, result.output)
        return result

    return invoke


def test_states_recompute_then_oee_energy_and_machines(run):
    end = T0 + 3_000_000
    r = run("plant", "states", M1, "--start", T0, "--end", end, "--recompute", "--json")
    body = json.loads(r.stdout)
    assert [x["state"] for x in body["rows"]] == ["off", "idle", "running", "off"]
    assert body["ms_by_state"]["running"] == 1_200_000
    table = run("plant", "states", M1, "--start", T0, "--end", end).stdout
    assert "running" in table and "20.0" in table  # 20 minutes running
    oee = json.loads(run("plant", "oee", "s1", "--start", T0, "--end", end, "--json").stdout)
    t = oee["total"]
    assert (t["pbt_ms"], t["apt_ms"], t["produced"]) == (3_000_000, 1_200_000, 100)
    assert t["oee"] == pytest.approx(0.4 * 1000 / 1200)
    assert "OEE" in run("plant", "oee", "s1", "--start", T0, "--end", end, "--by", "day").stdout
    en = json.loads(run("plant", "energy", M1, "--start", T0, "--end", end, "--json").stdout)
    assert en["total"]["running_kwh"] == pytest.approx(8 * 1200 / 3600, rel=2e-3)
    assert "total" in run("plant", "energy", M1, "--start", T0, "--end", end).stdout
    ms = json.loads(run("plant", "machines", "--json").stdout)["rows"]
    assert [(m["id"], m["last_state"]) for m in ms] == [(M1, "off")]


def test_learn_thresholds_prints_a_toml_snippet(run):
    r = run("plant", "learn-thresholds", M1, "--start", T0, "--end", T0 + 3_000_000)
    assert "[[plant.machines]]" in r.stdout and "off_below" in r.stdout
    j = json.loads(
        run(
            "plant", "learn-thresholds", M1, "--start", T0, "--end", T0 + 3_000_000, "--json"
        ).stdout
    )
    th = j["thresholds"]
    assert 0.0 < th["off_below"] < 3.0 < th["running_above"] < 8.0
    assert j["note"].startswith("three levels")


def test_a_too_slow_ideal_cycle_is_flagged_and_learn_cycle_proposes_the_real_one(
    run, settings_factory
):
    t1 = T0 + 86_400_000  # a day later: 3 h running at a 4 s cycle (configured: 10 s)
    h = open_historian(settings_factory())
    ts, v = power_profile(t1, [(3 * 3600, 8.0), (600, 0.0)])
    write(h, f"{M1}/power_kw", ts, v)
    cts = np.arange(t1, t1 + 3 * 3_600_000, 5_000, dtype=np.int64)
    write(h, f"{M1}/parts_total", cts, 1000 + np.floor((cts - t1) / 4_000))
    h.close()
    end = t1 + 3 * 3_600_000 + 600_000
    run("plant", "states", M1, "--start", t1, "--end", end, "--recompute")
    oee = json.loads(run("plant", "oee", M1, "--start", t1, "--end", end, "--json").stdout)
    t = oee["total"]
    assert t["performance"] == pytest.approx(2.5, rel=0.01) and t["plausible"] is False
    [finding] = t["implausible"]
    assert finding["machine"] == M1 and finding["figure"] == "performance"
    assert "ideal cycle time is set too slow" in finding["cause"]
    assert any(w.startswith(f"{M1}: performance 25") for w in t["warnings"]), t["warnings"]
    r = run("plant", "oee", M1, "--start", t1, "--end", end)
    assert "warning: " + M1 in r.stderr and "learn-cycle" in r.stderr
    j = json.loads(run("plant", "learn-cycle", M1, "--start", t1, "--end", end, "--json").stdout)
    assert j["ideal_cycle_s"] == pytest.approx(4.0, rel=0.04) and j["current_s"] == 10.0
    assert j["machine"] == M1 and j["product"] == "p" and j["windows"] >= 10
    snippet = run("plant", "learn-cycle", M1, "--start", t1, "--end", end).stdout
    assert f'id = "{M1}"' in snippet and 'ideal_cycle_s = { "p" = 4' in snippet


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("plant", "states", "s1/press/l1/nope"), "not in the plant configuration"),
        (("plant", "oee", "s7"), "no configured machine under scope 's7'"),
        (("plant", "oee", "s1", "--start", T0, "--end", T0 - 1), "must be after --start"),
        (("plant", "oee", "s1", "--by", "week"), "by must be none, shift or day"),
        (("plant", "energy", "s1", "--bucket", "fortnight"), "bucket must be"),
        (("plant", "states", M1, "--start", "soon"), "option --start"),
        (("plant", "learn-thresholds", "s1/press/l1/m5"), "name its power tag with --tag"),
        (
            ("plant", "learn-thresholds", M1, "--start", T0 - 10**7, "--end", T0 - 10**6),
            "no power data",
        ),
        (("plant", "learn-cycle", M1, "--start", T0 - 10**7, "--end", T0 - 10**6), "no counter"),
        (("plant", "learn-cycle", "s1/press/l1/m5"), "not in the plant configuration"),
        (("plant", "learn-cycle", M1, "--percentile", "100"), "percentile"),
    ],
)
def test_bad_input_exits_2_with_a_reason(run, args, text):
    r = run(*args, expect=2)
    assert text in r.output


def test_csv_import_then_oee_needs_no_manual_step(run, tmp_path):
    """The issue's reproduction: import a machine's CSV, then `plant oee` straight away."""
    m2 = "s1/press/l1/m2"
    (tmp_path / "indunet.toml").write_text(TOML + TOML.replace(M1, m2).split("[plant.sites")[0])
    lines = ["ts,tag,value"]
    for i in range(0, 1800):  # 10 min off, 20 min running at 8 kW, a part every 12 s
        kw = 0.0 if i < 600 else 8.0
        lines.append(f"{T0 + i * 1000},{m2}/power_kw,{kw}")
        if i % 10 == 0:
            lines.append(f"{T0 + i * 1000},{m2}/parts_total,{max(i - 600, 0) // 12}")
    path = tmp_path / "m2.csv"
    path.write_text("\n".join(lines) + "\n")
    run("import", "csv", path, "--long")
    end = T0 + 1_800_000
    oee = json.loads(run("plant", "oee", m2, "--start", T0, "--end", end, "--json").stdout)
    t = oee["total"]
    assert t["apt_ms"] == pytest.approx(1_199_000, abs=2_000)  # running from the 600th second
    assert 0 < t["availability"] <= 1 and 0 < t["performance"] <= 1
    assert t["availability"] == pytest.approx(2 / 3, abs=0.01)
    assert not any("offline" in w for w in t["warnings"])


def test_check_and_repair_exit_codes(run, tmp_path):
    end = T0 + 3_000_000
    r = run("check", "--start", T0, "--end", end, "--json")
    assert json.loads(r.stdout) == {"clean": True, "findings": []}
    run("plant", "states", M1, "--start", T0, "--end", end)  # brings the timeline up to date
    from indunet.config import load_settings

    h = open_historian(load_settings(data_dir=tmp_path / "data"))
    h._query(  # two writers' segments over each other, as an old release could leave them
        "INSERT INTO plant_states VALUES ('demo', $1, $2, $3, 'idle', NULL) RETURNING start_ms",
        [M1, T0 + 100_000, T0 + 700_000],
    )
    h.close()
    r = run("check", "--start", T0, "--end", end, expect=1)
    assert "timeline_overlap" in r.stdout and M1 in r.stdout
    rows = json.loads(run("plant", "repair", M1, "--json").stdout)["rows"]
    assert rows[0]["machine"] == M1 and rows[0]["segments"] >= 4
    assert json.loads(run("check", "--start", T0, "--end", end, "--json").stdout)["clean"]


def test_report_webhooks_share_the_alarm_outbox_and_are_sent_after_a_restart(settings_factory):
    """A shift report's webhook that could not be delivered yet is kept with the alarm state,
    so the next start sends it again (it was lost with a sender of its own)."""
    from types import SimpleNamespace

    from indunet.cli.plant import _start_alarms, _start_reports
    from indunet.plant.alarm_service import AlarmService
    from indunet.plant.delivery import submit_document
    from tests.plant.test_alarm_service import batch

    hook = {"name": "ops", "url": "http://127.0.0.1:9/hook", "secret": "s3cr3t-webhook-key-9f2c"}
    rule = {"id": "t-high", "kind": "high", "tag": "s1/a/l1/m1/temp", "limit": 80.0}
    settings = settings_factory(enterprise="acme", plant={"webhooks": [hook], "alarms": [rule]})
    historian = open_historian(settings)
    try:
        historian.write(batch([("s1/a/l1/m1/temp", T0, 20.0)]))  # a rule needs a known tag
        plant = SimpleNamespace(state=SimpleNamespace())
        service = _start_alarms(plant, historian, settings)
        _start_reports(plant, historian, settings)
        assert plant.state.report_webhooks is None  # no sender of its own to lose documents
        assert submit_document(service.sender, ["ops"], "shift_report", {"scope": "s1"}) == 1
        service.stop()  # port 9 refuses: the document waits in the outbox
        again = AlarmService(historian, settings)
        pending = again.sender.outbox.snapshot()
        kept = pending["pending"] + pending["failed"]  # failed ones can be re-queued
        assert [d["event"] for d in kept] == ["shift_report"]
    finally:
        historian.close()
