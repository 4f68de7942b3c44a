"""`indunet plant report`: the shift report on the command line, in every format."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from openpyxl import load_workbook

from indunet.plant.report import oee_report
from indunet.plant.store import PlantStore
from indunet.plant.watch import recompute_range
from indunet.store import open_historian
from tests.cli.test_plant import TOML, run  # noqa: F401 (the fixture)
from tests.plant.plant_data import M1, T0

DAY = datetime.fromtimestamp(T0 / 1000, UTC).date().isoformat()


def test_report_of_a_day_in_each_format(run, settings_factory, tmp_path):  # noqa: F811
    settings = settings_factory()
    h = open_historian(settings)
    try:
        store = PlantStore(h, settings.plant)
        recompute_range(store, h, "demo", settings.plant.machines[0], T0, T0 + 3_000_000)
        day = run("plant", "report", "s1/a", "--shift", DAY, "--format", "json", expect=2)
        assert "s1/a" in day.output  # an unknown scope is named
        out = run("plant", "report", M1.rsplit("/", 1)[0], "--shift", DAY, "--format", "json")
        doc = json.loads(out.stdout)
        api = oee_report(store, h, settings.plant, "demo", doc["scope"], doc["start_ms"],
                         doc["end_ms"], by="day")["groups"][0]  # fmt: skip
    finally:
        h.close()
    assert doc["kind"] == "day" and doc["label"] == DAY
    assert doc["oee"]["oee"] == api["oee"] and doc["oee"]["good"] == api["good"] == 100
    rows = list(csv.reader(io.StringIO(run("plant", "report", "s1/press/l1", "--shift", DAY,
                                           "--format", "csv").stdout)))  # fmt: skip
    assert ["oee", "good", "100.0"] in rows
    html = run("plant", "report", "s1/press/l1", "--shift", DAY).stdout
    assert html.startswith("<!doctype html>") and "@page" in html
    target = tmp_path / "r.xlsx"
    run("plant", "report", "s1/press/l1", "--shift", DAY, "--format", "xlsx", "--out", target,
        "--archive")  # fmt: skip
    assert load_workbook(target).sheetnames[0] == "Summary"
    for bad in (["--format", "pdf"], ["--format", "xlsx"], ["--shift", "someday"],
                ["--shift", f"{DAY} night"]):  # fmt: skip
        result = run("plant", "report", "s1/press/l1", "--shift", DAY, *bad, expect=2)
        assert len(result.output.strip().splitlines()) == 1, result.output
