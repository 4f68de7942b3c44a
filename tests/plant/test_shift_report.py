"""The shift report: same numbers as the OEE report, the three formats, archive and notes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import numpy as np
import pytest
from openpyxl import load_workbook

from indunet.errors import DataError
from indunet.plant.andon import AndonStore
from indunet.plant.report import oee_report
from indunet.plant.report_service import make_report
from indunet.plant.shift_log import HandoverNotes, ReportArchive
from indunet.plant.shift_report import (
    ended_windows,
    find_window,
    render_csv,
    render_html,
    render_xlsx,
    top_losses,
)
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from tests.plant.plant_data import M1, M2, plant, write

H = 3_600_000
LINE = "s1/press/l1"


def at(hh: float) -> int:
    """2026-06-01 (a Monday) at hh UTC, in ms."""
    return int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000 + hh * H)


def tl(*rows: tuple[float, float, int]) -> StateTimeline:
    return StateTimeline(
        np.array([at(a) for a, _, _ in rows], np.int64),
        np.array([at(b) for _, b, _ in rows], np.int64),
        np.array([s for _, _, s in rows], np.int8),
    )


@pytest.fixture
def line(historian):
    cfg = plant(shifts=True)
    store = PlantStore(historian, cfg)
    store.save_segments("demo", M1, tl((6, 9, 2), (9, 10, 1), (10, 16, 2)))
    store.save_segments("demo", M2, tl((6, 8, 0), (8, 14, 2)))
    write(historian, f"{M1}/parts_total", [at(6), at(9), at(14), at(16)], [0, 1000, 2300, 3000])
    write(historian, f"{M1}/scrap_total", [at(6), at(14), at(16)], [0, 50, 60])
    write(historian, f"{M2}/parts_total", [at(6), at(14)], [100, 1600])
    store.assign_reason("demo", M1, at(9), "mechanical", now_ms=at(15))
    return store, cfg


def test_find_window_by_label_day_and_last(line):
    _, cfg = line
    w = find_window(cfg, LINE, "2026-06-01 early", now_ms=at(20))
    assert (w.label, w.start_ms, w.end_ms, w.kind) == ("2026-06-01 early", at(6), at(14), "shift")
    assert find_window(cfg, LINE, "last", now_ms=at(20)).label == "2026-06-01 early"
    assert find_window(cfg, LINE, "current", now_ms=at(20)).label == "2026-06-01 late"
    day = find_window(cfg, LINE, "2026-06-01", now_ms=at(20))
    assert (day.start_ms, day.end_ms, day.kind) == (at(0), at(24), "day")
    for bad in ("yesterday", "2026-13-01 early", "2026-06-01 night", "", "2026-06-01 early x"):
        with pytest.raises(DataError):
            find_window(cfg, LINE, bad, now_ms=at(20))


def test_ended_windows_are_whole_shifts_in_order(line):
    _, cfg = line
    got = ended_windows(cfg, "s1", at(13), at(22))
    assert [(w.label, w.start_ms, w.end_ms) for w in got] == [
        ("2026-06-01 early", at(6), at(14)),
        ("2026-06-01 late", at(14), at(22)),
    ]
    assert ended_windows(cfg, "s1", at(22), at(22)) == []
    assert ended_windows(cfg, "s1", at(14), at(21)) == []


def test_top_losses_is_a_pareto():
    rows = top_losses({"unassigned": 600, "mechanical": 3000, "waiting": 0, "x": 1400}, first=2)
    assert [r["reason"] for r in rows] == ["mechanical", "x"]
    assert rows[0]["share"] == pytest.approx(0.6) and rows[1]["cumulative"] == pytest.approx(0.88)
    assert top_losses({}) == []


def test_report_equals_the_oee_report_of_the_shift(historian, line):
    store, cfg = line
    notes = HandoverNotes(historian)
    notes.add(
        "demo", LINE, "2026-06-01 early", "ann", "=cmd|' /C calc'!A0 tool 4 worn", now_ms=at(13)
    )
    AndonStore(historian).raise_call(
        cfg, "demo", target=M1, reason="maintenance", note="jam", by="ann", now_ms=at(9)
    )
    doc = make_report(historian, store, "demo", LINE, "2026-06-01 early", now_ms=at(20))
    api = oee_report(store, historian, cfg, "demo", LINE, at(6), at(14), by="shift")["groups"][0]
    for k in ("availability", "performance", "quality", "oee", "pbt_ms", "apt_ms", "good"):
        assert doc["oee"][k] == api[k], k
    assert doc["output"]["good"] == 3750 and doc["complete"]
    assert doc["top_losses"][0]["reason"] == "unassigned"  # m2 off 2 h, then m1's 1 h mechanical
    assert [r["reason"] for r in doc["top_losses"]] == ["unassigned", "mechanical"]
    assert doc["unexplained_stops"]["count"] == 1  # m2's off stop; m1's idle hour has a reason
    assert doc["handover"][0]["author"] == "ann"
    assert doc["andon"]["calls"] == 1 and doc["andon"]["open"] == 1
    assert doc["energy"]["good_parts"] == pytest.approx(3750)

    html = render_html(doc)
    assert "2026-06-01 early" in html and "tool 4 worn" in html and "<script" not in html
    rows = list(csv.reader(io.StringIO(render_csv(doc))))
    assert rows[0] == ["section", "field", "value"]
    found = {(r[0], r[1]): r[2] for r in rows[1:]}
    assert float(found[("oee", "oee")]) == pytest.approx(api["oee"])
    assert found[("handover", f"{LINE} ann")].startswith("'=")  # no formula from a note
    wb = load_workbook(io.BytesIO(render_xlsx(doc)))
    assert wb.sheetnames[:3] == ["Summary", "Losses", "Unexplained stops"]
    summary = {(r[0], r[1]): r[2] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary[("oee", "oee")] == pytest.approx(api["oee"])
    assert wb["Handover"]["E2"].value.startswith("'=")


def test_archive_keeps_one_report_per_scope_and_shift(historian, line):
    store, _ = line
    archive = ReportArchive(historian)
    doc = make_report(historian, store, "demo", LINE, "2026-06-01 early", now_ms=at(20))
    rid = archive.put(doc, render_html(doc), now_ms=at(20))
    assert archive.put(doc, "<p>again</p>", now_ms=at(21)) == rid
    listed = archive.list("demo")
    assert [r["report_id"] for r in listed] == [rid]
    assert listed[0]["oee"] == doc["oee"]["oee"]
    assert archive.get("demo", rid)["html"] == "<p>again</p>"
    assert archive.get("other", rid) is None and archive.list("other") == []


def test_handover_notes_refuse_bad_text(historian):
    notes = HandoverNotes(historian)
    for bad in ("", "   ", "x" * 5000):
        with pytest.raises(DataError):
            notes.add("demo", LINE, "2026-06-01 early", "ann", bad, now_ms=1)
    notes.add("demo", LINE, "2026-06-01 early", "ann", "ok", now_ms=1)
    notes.add("demo", "s1/press/l10", "2026-06-01 early", "bob", "other line", now_ms=2)
    assert [n["text"] for n in notes.notes("demo", LINE)] == ["ok"]
    assert [n["text"] for n in notes.notes("demo", "s1")] == ["ok", "other line"]
    assert notes.notes("other", "") == []
