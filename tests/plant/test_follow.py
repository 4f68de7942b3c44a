"""Derived data follows raw data: late, re-written and imported power data on both backends."""

from __future__ import annotations

import numpy as np

from indunet.errors import DataError
from indunet.plant.follow import bring_up_to_date, pending_changes, repair_overlaps
from indunet.plant.states import StateTimeline
from indunet.plant.store import PlantStore
from indunet.plant.watch import PlantWatcher, recompute_range
from tests.plant.plant_data import M1, T0, plant, power_profile, write

S = 1000
FAR = T0 + 86_400_000


def segments(tl: StateTimeline) -> list[tuple[int, int, int]]:
    return [
        (int(a), int(b), int(c)) for a, b, c in zip(tl.start_ms, tl.end_ms, tl.state, strict=True)
    ]


def truth(historian, settings, start: int, end: int) -> list[tuple[int, int, int]]:
    """The timeline recomputed from all raw data, in another store table-space (enterprise)."""
    store = PlantStore(historian, settings.plant)
    m = settings.plant.machine(M1)
    return segments(recompute_range(store, historian, "demo", m, start, end))


def assert_no_overlap(tl: StateTimeline) -> None:
    assert (tl.start_ms[1:] >= tl.end_ms[:-1]).all()


def test_rewritten_past_range_is_followed_by_the_running_watcher(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    ts, v = power_profile(T0, [(300, 8.0), (300, 3.0), (300, 8.0), (300, 0.0)])
    w = PlantWatcher(historian, settings, history_ms=3_600_000)
    write(historian, f"{M1}/power_kw", ts, v)
    w.tick(int(ts[-1]) + 500)
    before = segments(w.store.timeline("demo", M1, T0, FAR))
    # a past range is re-sent with other values: the machine was off, not running, 100-200 s
    sel = (ts >= T0 + 100 * S) & (ts < T0 + 200 * S)
    write(historian, f"{M1}/power_kw", ts[sel], np.zeros(sel.sum()))
    assert pending_changes(w.store, historian, "demo", settings.plant.machines, T0, FAR) == [M1]
    w.tick(int(ts[-1]) + 1500)
    after = w.store.timeline("demo", M1, T0, FAR)
    assert_no_overlap(after)
    assert segments(after) != before
    assert (T0 + 100 * S, T0 + 200 * S, 0) in segments(after)  # off (code 0) where it was off
    assert not pending_changes(w.store, historian, "demo", settings.plant.machines, T0, FAR)
    # what is stored equals a recompute from all raw data over the stored span
    stored = segments(after)
    assert stored == truth(historian, settings, stored[0][0], stored[-1][1])


def test_late_data_inside_the_open_part_restarts_the_tracker(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    ts, v = power_profile(T0, [(120, 0.0), (600, 8.0)])
    w = PlantWatcher(historian, settings, history_ms=3_600_000)
    late = (ts >= T0 + 400 * S) & (ts < T0 + 500 * S)
    write(historian, f"{M1}/power_kw", ts[~late], v[~late])  # a hole: offline 400-500 s
    w.tick(int(ts[-1]) + 500)
    assert w.current(M1) == ("running", T0 + 500 * S)
    write(historian, f"{M1}/power_kw", ts[late], v[late])  # the hole arrives late
    w.tick(int(ts[-1]) + 600)  # restarts the tracker
    w.tick(int(ts[-1]) + 700)
    assert w.current(M1) == ("running", T0 + 120 * S)
    tl = w.store.timeline("demo", M1, T0, FAR)
    assert_no_overlap(tl)
    assert 3 not in set(tl.state.tolist())  # nothing offline is left


def test_import_without_a_watcher_is_brought_up_to_date(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    store = PlantStore(historian, settings.plant)
    ts, v = power_profile(T0, [(200, 8.0), (100, 3.0)])
    write(historian, f"{M1}/power_kw", ts, v)  # nobody followed the tag yet
    done = bring_up_to_date(store, historian, "demo", settings.plant.machines, now_ms=FAR)
    assert M1 in done.recomputed
    assert segments(store.timeline("demo", M1, T0, FAR)) == [
        (T0, T0 + 200 * S, 2),
        (T0 + 200 * S, int(ts[-1]) + 1, 1),
    ]
    # a second import of a later hour goes through the journal this time
    ts2, v2 = power_profile(T0 + 3_600_000, [(100, 8.0)])
    write(historian, f"{M1}/power_kw", ts2, v2)
    assert historian.raw_changes("demo").num_rows == 1  # journaled, after the stored part
    assert not pending_changes(store, historian, "demo", settings.plant.machines, T0, FAR)
    bring_up_to_date(store, historian, "demo", settings.plant.machines, now_ms=FAR)
    tl = store.timeline("demo", M1, T0, FAR)
    assert_no_overlap(tl)
    assert segments(tl)[-1][2] == 2 and segments(tl)[-1][1] == int(ts2[-1]) + 1
    assert not historian.raw_changes("demo").num_rows


def test_saved_segments_replace_what_they_cover(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    store = PlantStore(historian, settings.plant)

    def tl(*rows):
        a = np.array(rows, np.int64)
        return StateTimeline(a[:, 0], a[:, 1], a[:, 2].astype(np.int8))

    store.save_segments("demo", M1, tl((0, 100, 1), (100, 200, 2)))
    store.save_segments("demo", M1, tl((50, 150, 0)))  # a writer with other boundaries
    got = store.timeline("demo", M1, 0, 1000)
    assert segments(got) == [(0, 50, 1), (50, 150, 0), (150, 200, 2)]


def test_overlapping_rows_left_by_an_old_release_are_rebuilt_when_a_watcher_starts(historian):
    settings = historian.settings.model_copy(update={"plant": plant(M1)})
    ts, v = power_profile(T0, [(300, 8.0), (300, 3.0), (300, 0.0)])
    write(historian, f"{M1}/power_kw", ts, v)
    store = PlantStore(historian, settings.plant)
    bring_up_to_date(store, historian, "demo", settings.plant.machines, now_ms=FAR)
    good = segments(store.timeline("demo", M1, T0, FAR))
    store.sql.execute(  # what two writers with other boundaries left behind
        "INSERT INTO plant_states VALUES ('demo', $1, $2, $3, 'offline', NULL)",
        [M1, T0 + 250 * S, T0 + 420 * S],
    )
    try:
        store.timeline("demo", M1, T0, FAR)
        raise AssertionError("overlapping rows must not read as a timeline")
    except DataError:
        pass
    w = PlantWatcher(historian, settings, history_ms=3_600_000)
    w.start()
    w.stop()
    after = segments(w.store.timeline("demo", M1, T0, FAR))
    # as before, but the watcher's first tick may close the last run at its offline point
    assert after[: len(good) - 1] == good[:-1] and after[len(good) - 1][::2] == good[-1][::2]
    assert not repair_overlaps(
        store, historian, "demo", settings.plant.machines, now_ms=FAR
    ).recomputed
