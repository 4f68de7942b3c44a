"""What needs attention: machines stopped now with reasons, rankings, periods."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from indunet.plant.attention import machines_now, period_span, ranking
from indunet.plant.config import PlantConfig
from indunet.plant.oee import OeeElements
from tests.plant.plant_data import M1, M2, plant
from tests.plant.test_report import H, at, tl

M3 = "s1/press/l2/m3"


def cfg(*, shifts: bool = True) -> PlantConfig:
    doc = plant(M1, M2, M3, shifts=shifts).model_dump(mode="json")
    doc["reasons"]["reasons"] = [
        {"code": "mechanical", "label": "Mechanical failure"},
        {"code": "waiting", "label": "Waiting for material"},
        {"code": "changeover", "label": "Changeover / setup"},
    ]
    doc["machines"][0].update(state_tag="state", state_reasons={"setup": "changeover"})
    return PlantConfig.model_validate(doc)


def test_machines_now_longest_stop_first_with_reasons():
    now = at(12)
    c = cfg()
    t1 = tl((6, 11, 2), (11, 12, 1))  # idle since 11, no operator reason, reports "setup"
    t2 = tl((6, 8, 2), (8, 12, 0))
    t2 = t2.__class__(t2.start_ms, t2.end_ms, t2.state, np.array([None, "mechanical"], object))
    latest = {
        f"{M1}/power_kw": {"ts": now - 1000, "value": 3.0, "quality": 0},
        f"{M1}/state": {"ts": now - 1000, "value": None, "text": "setup", "quality": 0},
        f"{M2}/power_kw": {"ts": now - 1000, "value": 0.1, "quality": 0},
        f"{M3}/power_kw": {"ts": now - 3 * H, "value": 9.0, "quality": 0},  # silent: offline
    }
    got = machines_now(c, "s1", now, latest=latest, recent={M1: t1, M2: t2})
    assert [(m.machine, m.state, m.lost_ms(now)) for m in got] == [
        (M2, "off", 4 * H),
        (M3, "offline", 3 * H),
        (M1, "idle", 1 * H),
    ]
    by = {m.machine: m for m in got}
    assert by[M2].reason_label == "Mechanical failure" and not by[M2].proposed
    assert by[M1].reason == "changeover" and by[M1].proposed
    assert by[M3].reason is None and by[M3].reason_label == "Unexplained"
    # the watcher's state wins; running machines come last, without a reason
    live = machines_now(
        c, "s1/press/l1", now, latest=latest, recent={M1: t1, M2: t2},
        current=lambda m: ("running", at(11.5)) if m == M1 else None,
    )  # fmt: skip
    assert [(m.machine, m.state, m.reason_label) for m in live] == [
        (M2, "off", "Mechanical failure"),
        (M1, "running", ""),
    ]


def _doc(**machines: OeeElements) -> dict:
    return {
        "machines": {k: e.as_dict() for k, e in machines.items()},
        "lines": {"s1/press/l1": OeeElements.total(machines.values()).as_dict()},
    }


def test_ranking_worst_oee_first_with_reason_and_energy():
    c = cfg()
    a = OeeElements(pbt_ms=10 * H, apt_ms=8 * H, stop_ms={"idle": 2 * H},
                    reason_ms={"waiting": 2 * H}, produced=100, good=100,
                    ideal_ms=8 * H)  # fmt: skip
    b = OeeElements(pbt_ms=10 * H, apt_ms=4 * H, stop_ms={"off": 6 * H},
                    reason_ms={"mechanical": 1 * H, "unassigned": 5 * H}, produced=50, good=50,
                    ideal_ms=4 * H)  # fmt: skip
    energy = {"machines": {M1: {"kwh": 10.0, "kwh_per_good_part": 0.1},
                           M2: {"kwh": 20.0, "kwh_per_good_part": 0.4}}}  # fmt: skip
    rows = ranking(_doc(**{M1: a, M2: b}), energy, c)
    assert [(r.key, round(r.oee, 2), r.top_reason_label) for r in rows] == [
        (M2, 0.4, "Unexplained"),
        (M1, 0.8, "Waiting for material"),
    ]
    assert rows[0].kwh_per_good_part == 0.4 and rows[0].stop_ms == 6 * H
    assert [r.key for r in ranking(_doc(**{M1: a, M2: b}), None, c, sort="downtime")] == [M2, M1]
    lines = ranking(_doc(**{M1: a, M2: b}), None, c, level="line")
    assert lines[0].key == "s1/press/l1" and lines[0].oee == OeeElements.total([a, b]).oee


def test_periods_today_shift_yesterday():
    cal = cfg().site("s1").calendar  # UTC, early 06–14, late 14–22
    now = at(15.5)
    assert period_span(cal, "today", now) == (at(0), now, "today")
    start, end, label = period_span(cal, "shift", now)
    assert (start, end) == (at(14), now) and "late" in label
    assert period_span(cal, "yesterday", now) == (at(-24), at(0), "yesterday")
    assert period_span(cal, "shift", at(23))[2] == "today"  # no shift at 23:00
    assert datetime.fromtimestamp(at(0) / 1000, UTC).hour == 0
