"""Shift calendar: night shifts, breaks, planned downtime, DST in Berlin, Shanghai (no DST)."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indunet.errors import DataError
from indunet.plant.config import PlannedDowntime, Shift, ShiftCalendar
from indunet.plant.shifts import intersect, planned_busy, shift_windows, subtract, to_ms, union

H = 3_600_000
BERLIN = ZoneInfo("Europe/Berlin")


def ms(y, mo, d, h=0, mi=0, tz=BERLIN) -> int:
    return to_ms(datetime(y, mo, d, h, mi, tzinfo=tz))


THREE_SHIFTS = ShiftCalendar(
    timezone="Europe/Berlin",
    shifts=[
        Shift(
            name="early", start=time(6), end=time(14), breaks=[{"start": "10:00", "end": "10:30"}]
        ),
        Shift(name="late", start=time(14), end=time(22)),
        Shift(
            name="night", start=time(22), end=time(6), breaks=[{"start": "02:00", "end": "02:30"}]
        ),
    ],
)


def test_night_shift_crosses_midnight_with_break_after_midnight():
    ws = shift_windows(THREE_SHIFTS, ms(2026, 6, 10), ms(2026, 6, 11))
    assert [w.label for w in ws] == [
        "2026-06-09 night",
        "2026-06-10 early",
        "2026-06-10 late",
        "2026-06-10 night",
    ]
    # the first night shift is clipped to the range start; the last one to its end
    assert ws[0].start_ms == ms(2026, 6, 10) and ws[0].end_ms == ms(2026, 6, 10, 6)
    assert ws[0].busy.tolist() == [
        [ms(2026, 6, 10), ms(2026, 6, 10, 2)],
        [ms(2026, 6, 10, 2, 30), ms(2026, 6, 10, 6)],
    ]
    assert ws[1].planned_ms == 7.5 * H
    assert ws[3].planned_ms == 2 * H  # 22:00–24:00 of the range


def test_berlin_spring_forward_night_shift_is_seven_hours():
    # 2026-03-29 02:00 CET → 03:00 CEST
    (w,) = [
        w
        for w in shift_windows(THREE_SHIFTS, ms(2026, 3, 28, 12), ms(2026, 3, 29, 12))
        if w.shift == "night"
    ]
    assert w.day == date(2026, 3, 28)
    assert w.end_ms - w.start_ms == 7 * H
    # the break 02:00–02:30 does not exist on the wall clock: read with the old offset it
    # falls on 03:00–03:30 CEST, so 6.5 h stay planned
    assert w.planned_ms == 6.5 * H


def test_berlin_fall_back_night_shift_is_nine_hours():
    # 2026-10-25 03:00 CEST → 02:00 CET
    (w,) = [
        w
        for w in shift_windows(THREE_SHIFTS, ms(2026, 10, 24, 12), ms(2026, 10, 25, 12))
        if w.shift == "night"
    ]
    assert w.end_ms - w.start_ms == 9 * H
    assert w.planned_ms == 8.5 * H  # the break is the first 02:00–02:30
    assert w.busy[0].tolist() == [
        ms(2026, 10, 24, 22),
        to_ms(datetime(2026, 10, 25, 2, tzinfo=BERLIN)),
    ]


def test_days_without_shifts_are_local_days_of_23_and_25_hours():
    cal = ShiftCalendar(timezone="Europe/Berlin")
    ws = shift_windows(cal, ms(2026, 3, 28), ms(2026, 3, 31))
    assert [(w.day.day, (w.end_ms - w.start_ms) / H) for w in ws] == [(28, 24), (29, 23), (30, 24)]
    ws = shift_windows(cal, ms(2026, 10, 25), ms(2026, 10, 26))
    assert [(w.end_ms - w.start_ms) / H for w in ws] == [25]


def test_shanghai_has_no_dst_and_weekdays_filter():
    sh = ZoneInfo("Asia/Shanghai")
    cal = ShiftCalendar(
        timezone="Asia/Shanghai",
        shifts=[Shift(name="day", start=time(8), end=time(20), days=[0, 1, 2, 3, 4])],
    )
    # a whole March week (Europe changes clocks that weekend; China does not)
    ws = shift_windows(cal, ms(2026, 3, 23, tz=sh), ms(2026, 3, 30, tz=sh))
    assert len(ws) == 5 and all(w.planned_ms == 12 * H for w in ws)
    assert ws[0].start_ms == ms(2026, 3, 23, 8, tz=sh) == ms(2026, 3, 23, 0, tz=ZoneInfo("UTC"))


def test_planned_downtime_is_removed_for_its_machines_only():
    cal = THREE_SHIFTS.model_copy(
        update={
            "planned_downtime": [
                PlannedDowntime(
                    start=datetime(2026, 6, 10, 7),
                    end=datetime(2026, 6, 10, 9),
                    machines=["s/a/l/m1"],
                ),
            ]
        }
    )
    day = (ms(2026, 6, 10, 6), ms(2026, 6, 10, 14))
    assert planned_busy(cal, *day, machine="s/a/l/m1").tolist() == [
        [ms(2026, 6, 10, 6), ms(2026, 6, 10, 7)],
        [ms(2026, 6, 10, 9), ms(2026, 6, 10, 10)],
        [ms(2026, 6, 10, 10, 30), ms(2026, 6, 10, 14)],
    ]
    assert planned_busy(cal, *day, machine="s/a/l/m2").tolist() == [
        [ms(2026, 6, 10, 6), ms(2026, 6, 10, 10)],
        [ms(2026, 6, 10, 10, 30), ms(2026, 6, 10, 14)],
    ]
    with pytest.raises(DataError, match="not after"):
        shift_windows(cal, 10, 10)


def test_interval_algebra():
    a = np.array([[0, 10], [5, 15], [20, 30]])
    assert union(a).tolist() == [[0, 15], [20, 30]]
    assert intersect(a, [[12, 25]]).tolist() == [[12, 15], [20, 25]]
    assert subtract(a, [[3, 4], [14, 21]]).tolist() == [[0, 3], [4, 14], [21, 30]]
    assert subtract(a, np.zeros((0, 2))).tolist() == [[0, 15], [20, 30]]


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 400 * 24),  # hours after 2026-01-01
    length=st.integers(1, 24 * 9),
    cut=st.floats(0.01, 0.99),
    tz=st.sampled_from(["Europe/Berlin", "Asia/Shanghai", "America/New_York"]),
)
def test_planned_time_does_not_depend_on_how_the_range_is_split(start, length, cut, tz):
    cal = THREE_SHIFTS.model_copy(update={"timezone": tz})
    lo = ms(2026, 1, 1, tz=ZoneInfo("UTC")) + start * H
    hi = lo + length * H
    mid = lo + int((hi - lo) * cut)
    whole = sum(w.planned_ms for w in shift_windows(cal, lo, hi))
    parts = sum(w.planned_ms for w in shift_windows(cal, lo, mid)) + sum(
        w.planned_ms for w in shift_windows(cal, mid, hi)
    )
    assert whole == parts
    # three 8 h shifts with two 30 min breaks cover every hour except the breaks
    busy = planned_busy(cal, lo, hi)
    assert int((busy[:, 1] - busy[:, 0]).sum()) == whole <= hi - lo
