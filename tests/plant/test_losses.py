"""Loss analysis: the downtime Pareto adds up to the stop reasons, reported reasons, TEEP."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from indunet.errors import DataError
from indunet.model import POINT_SCHEMA, DataType, PointBatch, Quality
from indunet.plant.config import PlantConfig
from indunet.plant.losses import downtime_pareto, reason_label, short_stops
from indunet.plant.oee import StopAssignment, apply_reasons, machine_oee, propose_reasons
from indunet.plant.report import oee_report
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from tests.plant.plant_data import M1, M2, plant, write
from tests.plant.test_report import H, at, tl

TREE = PlantConfig.model_validate(
    {
        "reasons": {
            "reasons": [
                {"code": "mechanical", "label": "Mechanical failure"},
                {"code": "waiting", "label": "Waiting for material"},
                {"code": "changeover", "label": "Changeover / setup", "planned": True},
            ]
        }
    }
).reasons


def write_text(h, tag: str, ts: list[int], values: list[str | None]) -> None:
    """Write string points (a machine's reported state)."""
    n = len(ts)
    table = pa.table(
        {
            "tag": pa.array([tag] * n, pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "value": pa.nulls(n, pa.float64()),
            "text": pa.array(values, pa.string()),
            "quality": pa.array([Quality.GOOD] * n, pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    h.write(PointBatch("demo", table, {tag: DataType.STRING}), source="test")


def state_plant() -> PlantConfig:
    """The two-machine line with shifts; m1 reports its state in the tag ``state``."""
    doc = plant(shifts=True).model_dump(mode="json")
    doc["reasons"]["reasons"].append({"code": "changeover", "label": "Changeover / setup"})
    m = doc["machines"][0]
    m["state_tag"] = "state"
    m["state_reasons"] = {"setup": "changeover", "breakdown": "mechanical", "17": "waiting"}
    return PlantConfig.model_validate(doc)


def test_propose_reasons_fills_only_unexplained_stops():
    t = tl((6, 7, 2), (7, 8, 1), (8, 9, 0), (9, 10, 1))
    t = apply_reasons(t, [StopAssignment(at(9), at(10), "waiting")], TREE)
    ts = np.array([at(6), at(7.5), at(8.25), at(9), at(9.5)], np.int64)
    reported = ["running", "setup", "breakdown", "setup", "setup"]
    mapping = {"setup": "changeover", "breakdown": "mechanical"}
    out, proposed = propose_reasons(t, ts, reported, mapping, hold_ms=H)
    rows = list(
        zip(out.start_ms.tolist(), out.end_ms.tolist(), out.reasons().tolist(), strict=True)
    )
    assert rows == [
        (at(6), at(7), None),  # running never gets a reason
        (at(7), at(7.5), None),  # "running" reported: no proposal
        (at(7.5), at(8), "changeover"),
        (at(8), at(8.25), "changeover"),
        (at(8.25), at(9), "mechanical"),
        (at(9), at(10), "waiting"),  # the operator's reason stays
    ]
    assert int(proposed.duration_ms.sum()) == int(1.5 * H)
    # a reading holds at most hold_ms: a silent tag proposes nothing after it
    out, proposed = propose_reasons(t, ts[:2], reported[:2], mapping, hold_ms=60_000)
    assert int(proposed.duration_ms.sum()) == 60_000
    # whole-number fault codes, NaN and None are keys too (or nothing)
    out, proposed = propose_reasons(
        t, ts[:3], [17.0, float("nan"), None], {"17": "waiting"}, hold_ms=4 * H
    )
    # 17 holds from 6 h to the next reading at 7.5 h: its stop part 7–7.5 h is proposed
    assert proposed.start_ms.tolist() == [at(7)] and proposed.end_ms.tolist() == [at(7.5)]
    assert proposed.reasons().tolist() == ["waiting"]


def test_pareto_equals_the_stop_reasons_of_the_report(historian):
    h = historian
    cfg = state_plant()
    store = PlantStore(h, cfg)
    store.save_segments("demo", M1, tl((6, 9, 2), (9, 10, 1), (10, 12, 0), (12, 22, 2)))
    store.save_segments("demo", M2, tl((6, 8, 0), (8, 14, 2), (14, 15, 1), (15, 22, 2)))
    store.assign_reason("demo", M2, at(14), "waiting", now_ms=at(23))
    write(h, f"{M1}/parts_total", [at(6), at(22)], [0, 3000])
    write(h, f"{M2}/parts_total", [at(6), at(22)], [0, 2000])
    write_text(h, f"{M1}/state", [at(9), at(10.5), at(11)], ["setup", "breakdown", "idle"])
    doc = oee_report(store, h, cfg, "demo", "s1", at(0), at(24))
    total = doc["total"]
    by_reason = downtime_pareto(doc, by="reason", tree=cfg.reasons)
    got = {r["key"]: r["stop_ms"] for r in by_reason["rows"]}
    assert got == {k: v for k, v in total["reason_ms"].items() if v}
    assert sum(got.values()) == total["pbt_ms"] - total["apt_ms"] == by_reason["stop_ms"]
    # m1's setup (9–10, minus the 10:00–10:30 break) and breakdown (10:30–11) are proposed
    assert total["proposed_ms"] == {"changeover": 1 * H, "mechanical": H // 2}
    assert got["changeover"] == H and got["mechanical"] == H // 2
    labels = {r["key"]: r["label"] for r in by_reason["rows"]}
    assert labels["waiting"] == "waiting" and labels["unassigned"] == "Unexplained"
    assert by_reason["rows"][0]["stop_ms"] >= by_reason["rows"][-1]["stop_ms"]
    assert by_reason["rows"][-1]["cumulative"] == pytest.approx(1.0)
    assert sum(r["availability_loss"] for r in by_reason["rows"]) + total[
        "availability"
    ] == pytest.approx(1.0)
    by_machine = downtime_pareto(doc, by="machine", tree=cfg.reasons)
    assert {r["key"]: r["stop_ms"] for r in by_machine["rows"]} == {
        m: sum(e["stop_ms"].values()) for m, e in doc["machines"].items()
    }
    first = by_machine["rows"][0]
    assert first["key"] == M2 and first["top_reason"] == "unassigned"
    by_line = downtime_pareto(doc, by="line", tree=cfg.reasons)
    assert by_line["rows"][0]["stop_ms"] == by_reason["stop_ms"]
    # TEEP = OEE × PBT / calendar time (two machines × 24 h)
    assert by_reason["calendar_ms"] == 2 * 24 * H
    assert by_reason["teep"] == pytest.approx(total["oee"] * total["pbt_ms"] / (48 * H))
    with pytest.raises(DataError, match="by must be"):
        downtime_pareto(doc, by="shift")  # type: ignore[arg-type]


def test_state_reasons_must_name_tree_codes():
    doc = plant().model_dump(mode="json")
    doc["machines"][0]["state_tag"] = "state"
    doc["machines"][0]["state_reasons"] = {"setup": "nope"}
    with pytest.raises(ValueError, match="not a code of the reason tree"):
        PlantConfig.model_validate(doc)
    doc["machines"][0]["state_tag"] = None
    doc["machines"][0]["state_reasons"] = {"setup": "waiting"}
    with pytest.raises(ValueError, match="needs a state_tag"):
        PlantConfig.model_validate(doc)


def test_short_stops_and_labels():
    rows = [
        {"machine": M1, "duration_ms": 30_000},
        {"machine": M1, "duration_ms": 120_000},
        {"machine": M2, "duration_ms": 120_001},
    ]
    s = short_stops(rows, 120)
    assert (s["count"], s["stop_ms"]) == (2, 150_000)
    assert s["machines"] == {M1: {"count": 2, "stop_ms": 150_000}}
    with pytest.raises(DataError):
        short_stops(rows, float("nan"))
    assert reason_label("changeover", TREE) == "Changeover / setup"
    assert reason_label(None, TREE) == "Unexplained" and reason_label("x", None) == "x"


def test_teep_of_elements():
    e = machine_oee(tl((0, 12, 2)), np.array([[at(0), at(12)]], np.int64), (at(0), at(24)))
    assert e.calendar_ms == 24 * H and e.teep is None  # no counter: OEE unknown
    assert StateTimeline.empty().reasons().size == 0


def test_running_losses_judge_windows_against_the_ideal_cycle():
    from indunet.plant.losses import running_losses

    t0 = at(6)
    # 10 s ideal cycle → 100 s windows (10 cycles); 5 windows of running time
    running = np.array([[t0, t0 + 500_000]], np.int64)
    # window 1: 10 parts (ideal), 2: 6 parts (16.7 s each, < 17 s), 3: 5 parts (20 s: slow),
    # 4: none, 5: 9 parts
    counts = [10, 6, 5, 0, 9]
    ts = np.array([t0 + k * 100_000 + 50_000 for k in range(5)], np.int64)
    got = running_losses(running, ts, np.array(counts, float), 10.0)
    assert (got.windows, got.running_ms) == (5, 500_000)
    assert (got.slow_ms, got.no_parts_ms) == (100_000, 100_000)
    stricter = running_losses(running, ts, np.array(counts, float), 10.0, slow_factor=1.5)
    assert stricter.slow_ms == 200_000
    # a running interval shorter than a window is not judged; a minute at least
    assert running_losses(np.array([[t0, t0 + 50_000]]), ts, np.ones(5), 1.0).windows == 0
    for bad in ({"ideal_cycle_s": 0.0}, {"ideal_cycle_s": float("nan")}):
        with pytest.raises(DataError):
            running_losses(running, ts, np.ones(5), **bad)
    with pytest.raises(DataError, match="slow_factor"):
        running_losses(running, ts, np.ones(5), 10.0, slow_factor=0.5)
