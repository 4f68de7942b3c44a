"""The demo's back-filled history: the spindles' lives so far, kept across restarts."""

from __future__ import annotations

import numpy as np

from indunet.sim.backfill import backfill_spindles
from indunet.sim.live import build_plants

H = 3_600_000
NOW = 1_800_000_000_000


def test_spindles_get_their_life_so_far_and_keep_it_across_restarts(historian):
    plants = build_plants(2, 6, seed=7)
    written = backfill_spindles(historian, "demo", plants, now_ms=NOW)
    fitted = [m for m in plants if m.spindle is not None]
    assert [m.path.area for m in fitted] == ["machining", "machining"]
    assert all(m.spindle is None for m in plants if m.path.area != "machining")
    worn = fitted[0]
    tag = str(worn.path.tag("spindle_vib_mm_s"))
    ts = historian.series("demo", tag, 0, NOW + 1).column("ts").to_numpy()
    assert ts[0] == worn.spindle.install_ms and NOW - 60_000 <= ts[-1] < NOW
    assert np.all(np.diff(ts) == 60_000)
    assert written == sum(2 * -(-(NOW - m.spindle.install_ms) // 60_000) for m in fitted)
    # a restart an hour later: the same spindles (install kept), only the gap written
    again = build_plants(2, 6, seed=7)
    more = backfill_spindles(historian, "demo", again, now_ms=NOW + H)
    assert [m.spindle.install_ms for m in again if m.spindle] == [
        m.spindle.install_ms for m in fitted
    ]
    assert more == 2 * 2 * 60
    # without history, spindles not stored yet are new
    fresh = build_plants(3, 9, seed=8)
    assert backfill_spindles(historian, "other", fresh, now_ms=NOW, history=False) == 0
    assert {m.spindle.install_ms for m in fresh if m.spindle} == {NOW}


def test_no_machining_machine_no_spindle(historian):
    plants = build_plants(3, 3, seed=7)
    assert backfill_spindles(historian, "demo", plants, now_ms=NOW) == 0
    assert all(m.spindle is None for m in plants)
