"""PlantWatcher on a real historian: points in, stored segments out, resume, DEATH, offline."""

from __future__ import annotations

import time

import numpy as np
import pytest

from indunet.errors import DataError
from indunet.model import Quality
from indunet.plant.watch import PlantWatcher
from tests.plant.plant_data import M1, T0, plant, power_profile, write

S = 1000


def rows(watcher: PlantWatcher, machine: str = M1, start: int = T0 - 3_600_000, end=None):
    tl = watcher.store.timeline("demo", machine, start, end or T0 + 86_400_000)
    names = ("off", "idle", "running", "offline")
    return [
        (int(s - T0) // S, int(e - T0) // S, names[st])
        for s, e, st in zip(tl.start_ms, tl.end_ms, tl.state, strict=True)
    ]


def test_points_become_stored_segments_and_current_state(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    ts, v = power_profile(T0, [(60, 0.0), (120, 3.0), (180, 8.0), (60, 3.0)])
    write(historian, f"{M1}/power_kw", ts, v)
    w = PlantWatcher(historian, settings, history_ms=3_600_000)
    changes = []
    w.on_state_change.append(lambda m, t, s, p: changes.append((m, (t - T0) // S, s, p)))
    w.tick(int(ts[-1]) + 500)
    # the last closed run stays pending (a later short run may still join it); not stored yet
    assert rows(w) == [(0, 60, "off"), (60, 180, "idle")]
    open_part = w.open_segment(M1, int(ts[-1]) + 500)
    assert [
        (int(s - T0) // S, int(e - T0), int(st))
        for s, e, st in zip(open_part.start_ms, open_part.end_ms, open_part.state, strict=True)
    ] == [(180, 360_000, 2), (360, 419_500, 1)]
    assert w.current(M1) == ("idle", T0 + 360 * S)
    # every change announced once, in order; no shifts configured → every hour is planned
    assert changes == [
        (M1, 0, "off", True),
        (M1, 60, "idle", True),
        (M1, 180, "running", True),
        (M1, 360, "idle", True),
    ]
    # a second tick without new data stores nothing new and announces nothing
    w.tick(int(ts[-1]) + 1500)
    assert len(changes) == 4
    # the machine falls silent: offline after 5 intervals, the idle segment closes
    w.tick(int(ts[-1]) + 10_000)
    assert rows(w)[-2:] == [(180, 360, "running"), (360, 420, "idle")]
    assert w.current(M1) == ("offline", T0 + 420 * S)
    assert changes[-1] == (M1, 420, "offline", True)


def test_resume_after_restart_gives_the_same_timeline(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    blocks = [(30, 0.0), (50, 3.0), (200, 8.0), (40, 3.0), (90, 8.0), (20, 0.0), (300, 8.0)]
    ts, v = power_profile(T0, blocks)
    rng = np.random.default_rng(3)
    v = v + rng.normal(0, 0.05, len(v))
    v[500:510] = np.nan  # bad samples
    q = np.where(np.isnan(v), Quality.BAD, Quality.GOOD).astype(np.uint8)
    v = np.nan_to_num(v)
    half = 400
    write(historian, f"{M1}/power_kw", ts[:half], v[:half], q[:half])
    first = PlantWatcher(historian, settings, history_ms=3_600_000)
    first.tick(int(ts[half - 1]) + 200)
    stored_before = rows(first)
    # restart: a new watcher resumes from the stored timeline, then the rest arrives
    write(historian, f"{M1}/power_kw", ts[half:], v[half:], q[half:])
    second = PlantWatcher(historian, settings, history_ms=3_600_000)
    second.tick(int(ts[-1]) + 200)
    resumed = rows(second)
    assert resumed[: len(stored_before) - 1] == stored_before[:-1]

    # one uninterrupted run over all points, in another enterprise
    for i in range(0, len(ts), 97):
        write(historian, f"{M1}/power_kw", ts[i : i + 97], v[i : i + 97], q[i : i + 97], "solo")
    solo_settings = settings.model_copy(update={"enterprise": "solo"})
    solo = PlantWatcher(historian, solo_settings, history_ms=3_600_000)
    solo.tick(int(ts[-1]) + 200)
    tl = solo.store.timeline("solo", M1, T0 - 3_600_000, T0 + 86_400_000)
    names = ("off", "idle", "running", "offline")
    expect = [
        (int(s - T0) // S, int(e - T0) // S, names[st])
        for s, e, st in zip(tl.start_ms, tl.end_ms, tl.state, strict=True)
    ]
    assert resumed == expect
    assert len(expect) == 7
    now = int(ts[-1]) + 200
    tail_a, tail_b = second.open_segment(M1, now), solo.open_segment(M1, now)
    assert list(tail_a.state) == list(tail_b.state) == [3, 2]  # the bad samples: offline
    assert list(tail_a.start_ms) == list(tail_b.start_ms) == [T0 + 500 * S, T0 + 510 * S]
    assert second.current(M1) == solo.current(M1) == ("running", T0 + 510 * S)


def test_sparkplug_death_turns_the_machine_offline(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    ts, v = power_profile(T0, [(20, 8.0)])
    write(historian, f"{M1}/power_kw", ts, v)
    w = PlantWatcher(historian, settings, history_ms=3_600_000)
    w.tick(int(ts[-1]) + 100)
    assert w.current(M1) == ("running", T0)
    historian.mark_stale("demo", M1)  # what the Sparkplug host does on NDEATH/DDEATH
    w.tick(int(ts[-1]) + 600)  # well before the offline gap would expire
    assert w.current(M1)[0] == "offline"
    # death is placed at the tick (0.6 s after the last sample), at most one interval after it
    tl = w.store.timeline("demo", M1, T0, T0 + 60_000)
    assert (list(tl.end_ms), list(tl.state)) == ([T0 + 19_600], [2])
    # the machine comes back (rebirth): running again
    ts2, v2 = power_profile(int(ts[-1]) + 5000, [(10, 8.0)])
    write(historian, f"{M1}/power_kw", ts2, v2)
    w.tick(int(ts2[-1]) + 100)
    assert w.current(M1) == ("running", int(ts2[0]))
    tail = w.open_segment(M1, int(ts2[-1]) + 100)
    assert list(tail.state) == [3, 2]
    assert list(tail.start_ms) == [T0 + 19_600, int(ts2[0])]


def test_recompute_replaces_a_range_after_late_data(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    ts, v = power_profile(T0, [(100, 8.0), (100, 3.0), (100, 8.0), (10, 0.0)])
    write(historian, f"{M1}/power_kw", ts, v)
    w = PlantWatcher(historian, settings, history_ms=3_600_000)
    w.tick(int(ts[-1]) + 10_000)  # silent since: offline, every segment before it closed
    assert rows(w) == [
        (0, 100, "running"),
        (100, 200, "idle"),
        (200, 300, "running"),
        (300, 310, "off"),
    ]
    # late correction: the machine was off from 120 s to 150 s
    write(historian, f"{M1}/power_kw", ts[120:150], np.zeros(30))
    w.recompute(M1, T0 + 110 * S, T0 + 160 * S)
    assert rows(w) == [
        (0, 100, "running"),
        (100, 120, "idle"),
        (120, 150, "off"),
        (150, 200, "idle"),
        (200, 300, "running"),
        (300, 310, "off"),
    ]
    with pytest.raises(DataError, match="not in the plant configuration"):
        w.recompute("s1/press/l1/nope", T0, T0 + S)
    with pytest.raises(DataError, match="nothing stored to recompute"):
        w.recompute(M1, T0 + 400 * S, T0 + 500 * S)


def test_background_thread_starts_and_stops(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    ts, v = power_profile(T0, [(10, 8.0), (10, 0.0)])
    write(historian, f"{M1}/power_kw", ts, v)
    clock = iter(range(10**9))
    w = PlantWatcher(
        historian,
        settings,
        interval_s=0.01,
        history_ms=3_600_000,
        clock=lambda: (int(ts[-1]) + 100 + 1000 * next(clock)) / 1000,
    )
    w.start()
    try:
        for _ in range(500):
            if rows(w):
                break
            time.sleep(0.01)
    finally:
        w.stop()
    assert rows(w)[0] == (0, 10, "running")
    assert w.errors == 0
