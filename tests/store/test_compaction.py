"""Background compaction of closed hours: same answers before and after, roll-ups current."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from indunet.config import RetentionRule
from indunet.store import open_historian
from indunet.store.base import DAY_MS, HOUR_MS
from indunet.store.compaction import CompactionSettings, HourCompactor
from indunet.store.duckdb import _tag_chunks
from tests.store.test_base import batch

E = "acme"
H = 1_700_000_000_000 // HOUR_MS * HOUR_MS  # an hour start
TAGS = [f"s1/press/l1/m{m}/t{t}" for m in range(3) for t in range(4)]
TEXT = "s1/press/l1/m0/mode"


class Clock:
    """A clock the test moves (epoch ms)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def live_rows(start: int, seconds: int, step_ms: int = 1000) -> list[tuple]:
    """Time-major rows as live ingest brings them: each second, every tag."""
    return [
        (tag, start + s * step_ms, float((s * 7 + i) % 13))
        for s in range(seconds)
        for i, tag in enumerate(TAGS)
    ]


def answers(h) -> dict:
    """Everything a reader can ask of the hours under test."""
    out: dict = {"count": h.count(E), "latest": h.latest(E).to_pylist()}
    for tag in [*TAGS, TEXT]:
        out[f"series {tag}"] = h.series(E, tag, H - HOUR_MS, H + 3 * HOUR_MS).to_pylist()
    for tag in TAGS:
        out[f"buckets {tag}"] = h.buckets(E, tag, H, H + 2 * HOUR_MS, 17).to_pylist()
    return out


def expected_rollup(h, tag: str, hour: int) -> dict:
    """The roll-up of one tag's hour, computed here from its raw points."""
    rows = h.series(E, tag, hour, hour + HOUR_MS).to_pylist()
    values = [r["value"] for r in rows]
    return {
        "hour_ms": hour,
        "min": min(values),
        "max": max(values),
        "sum": pytest.approx(sum(values)),
        "count": len(values),
        "first": rows[0]["value"],
        "last": rows[-1]["value"],
    }


def physical(h, lo: int, hi: int) -> list[tuple[int, int]]:
    rows = h._query("SELECT tag_id, ts FROM points WHERE ts >= $1 AND ts < $2", [lo, hi])
    return list(zip(rows.column("tag_id").to_pylist(), rows.column("ts").to_pylist(), strict=True))


@pytest.fixture
def historian(settings_factory):
    h = open_historian(settings_factory())
    yield h
    h.close()


def compactor_of(h, clock: Clock, **options) -> HourCompactor:
    settings = CompactionSettings(grace_s=60, chunk_rows=options.pop("chunk_rows", 50), **options)
    return HourCompactor(h, settings, clock=clock)


def test_closed_hour_is_compacted_and_answers_do_not_change(historian):
    clock = Clock(H + 10 * 60_000)
    compactor = compactor_of(historian, clock)
    # hour H and the first minutes of H+1, in arrival order; a text tag and an overwrite too
    historian.write(batch(live_rows(H + HOUR_MS - 120_000, 200, 900)))
    historian.write(batch([(TEXT, H + 5, "run"), (TEXT, H + HOUR_MS + 5, "stop")]))
    historian.write(batch([(TAGS[0], H + HOUR_MS - 120_000, 99.5)]))  # corrects a value
    assert compactor.closed() == []  # H ended, but not its grace period yet
    before = answers(historian)
    unsorted = physical(historian, H, H + HOUR_MS)
    assert unsorted != sorted(unsorted)  # arrival order: time-major

    clock.now = H + HOUR_MS + 61_000
    assert compactor.closed() == [H]
    assert compactor.run_once() == 1
    assert answers(historian) == before  # exactly the same values, nothing lost or doubled
    stored = physical(historian, H, H + HOUR_MS)
    assert stored == sorted(stored)  # physically in (tag, time) order now
    assert compactor.status()["pending_hours"] == 1  # H+1 is still open
    # roll-ups of the closed hour, as computed from its raw points; none for the open hour
    for tag in TAGS:
        assert historian.rollups(E, tag, H - HOUR_MS, H + 3 * HOUR_MS).to_pylist() == [
            expected_rollup(historian, tag, H)
        ]
    assert historian.rollups(E, TEXT, H, H + 2 * HOUR_MS).num_rows == 0  # text: no roll-up
    assert historian.hours_to_compact(H - DAY_MS) == [H + HOUR_MS]


def test_late_write_marks_the_hour_again_and_rollups_follow(historian):
    clock = Clock(H + 2 * HOUR_MS)
    compactor = compactor_of(historian, clock)
    historian.write(batch(live_rows(H, 120)))
    assert compactor.run_once() == 1
    assert compactor.run_once() == 0  # nothing changed since
    late = [(TAGS[1], H + 60_000, 1000.0), (TAGS[1], H, -5.0), (TAGS[1], H + 500, 3.0)]
    historian.write(batch(late))  # two corrections and one new point
    assert compactor.closed() == [H]
    assert compactor.run_once() == 1
    got = historian.rollups(E, TAGS[1], H, H + HOUR_MS).to_pylist()
    assert got == [expected_rollup(historian, TAGS[1], H)]
    assert got[0]["count"] == 121 and got[0]["max"] == 1000.0 and got[0]["first"] == -5.0


def test_retention_replaces_a_compacted_rollup_instead_of_adding(historian):
    clock = Clock(H + 2 * HOUR_MS)
    compactor = compactor_of(historian, clock)
    historian.write(batch(live_rows(H, 300)))
    compactor.run_once()
    want = expected_rollup(historian, TAGS[2], H)
    historian.apply_retention([RetentionRule(prefix="s1", raw_days=1)], H + 3 * DAY_MS)
    assert historian.series(E, TAGS[2], H, H + HOUR_MS).num_rows == 0
    assert historian.rollups(E, TAGS[2], H, H + HOUR_MS).to_pylist() == [want]
    # late data for the retained hour still adds to its roll-up, compaction leaves it alone
    historian.write(batch([(TAGS[2], H + 7, 50.0)]))
    compactor.run_once()
    assert historian.rollups(E, TAGS[2], H, H + HOUR_MS).column("count").to_pylist() == [300]
    historian.apply_retention([RetentionRule(prefix="s1", raw_days=1)], H + 3 * DAY_MS)
    got = historian.rollups(E, TAGS[2], H, H + HOUR_MS).to_pylist()[0]
    assert got["count"] == 301 and got["max"] == 50.0


def test_compaction_while_the_writer_writes_loses_and_doubles_nothing(historian):
    clock = Clock(H + 3 * HOUR_MS)
    compactor = compactor_of(historian, clock, chunk_rows=40, pause_s=0)
    historian.write(batch(live_rows(H, 600, 6000)))  # hour H, 600 steps of 6 s
    done = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:  # live ingest into H+1, and late corrections into H meanwhile
        try:
            for s in range(200):
                historian.write(batch([(t, H + HOUR_MS + s * 1000, float(s)) for t in TAGS]))
                historian.write(batch([(TAGS[s % len(TAGS)], H + s * 6000, -float(s))]))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        compactor.run_once()
    thread.join()
    assert failures == []
    compactor.run_once()
    assert historian.count(E) == 600 * len(TAGS) + 200 * len(TAGS)
    for s in range(200):  # every correction won over the original value
        got = historian.series(E, TAGS[s % len(TAGS)], H + s * 6000, H + s * 6000 + 1)
        assert got.column("value").to_pylist() == [-float(s)]
    for tag in TAGS:
        assert historian.rollups(E, tag, H, H + HOUR_MS).to_pylist() == [
            expected_rollup(historian, tag, H)
        ]
    stored = physical(historian, H, H + HOUR_MS)
    assert stored == sorted(stored)


def test_running_compactor_compacts_across_an_hour_boundary(settings_factory):
    settings = settings_factory()
    h = open_historian(settings)
    clock = Clock(H + 30 * 60_000)
    h.write(batch(live_rows(H + 20 * 60_000, 300)))  # written before the compactor started
    h.write(batch([(TEXT, H + 20 * 60_000, "run")]))
    h.close()
    h = open_historian(settings)  # a restart: the record of writes is gone, the seed finds H
    compactor = compactor_of(h, clock, interval_s=30)
    compacted = threading.Event()
    compactor.compacted_listeners.append(lambda hour: compacted.set())
    compactor.start()
    try:
        assert compactor.status()["pending_hours"] == 1
        before = answers(h)
        h.write(batch(live_rows(H + HOUR_MS, 30)))  # the clock's hour turns, ingest goes on
        clock.now = H + HOUR_MS + 5 * 60_000
        compactor.wake()
        assert compacted.wait(30)
        after = answers(h)
        assert after["count"] == before["count"] + 30 * len(TAGS)
        for tag in TAGS:
            assert after[f"series {tag}"][:300] == before[f"series {tag}"]
        assert h.hours_to_compact(H - DAY_MS) == [H + HOUR_MS]
    finally:
        compactor.stop()
        h.close()
    assert compactor.on_change not in h.change_listeners


def test_a_failed_hour_is_kept_for_later(historian):
    clock = Clock(H + 2 * HOUR_MS)
    compactor = compactor_of(historian, clock)
    historian.write(batch(live_rows(H, 10)))
    real = historian.compact_hour

    def broken(hour: int, **options) -> int:
        raise RuntimeError("disk full")

    historian.compact_hour = broken
    assert compactor.run_once() == 0
    assert compactor.status()["failures"] == 1 and "disk full" in compactor.last_error
    historian.compact_hour = real
    assert compactor.run_once() == 1


def test_a_write_spanning_years_asks_the_database_instead_of_marking_each_hour(historian):
    clock = Clock(H + 2 * HOUR_MS)
    compactor = compactor_of(historian, clock)
    historian.write(batch([(TAGS[0], H - 3 * 365 * DAY_MS, 1.0), (TAGS[0], H + 5, 2.0)]))
    assert len(compactor.dirty) == 0
    assert compactor.closed() == [H - 3 * 365 * DAY_MS // HOUR_MS * HOUR_MS, H]


def test_compact_hour_refuses_a_time_off_the_hour(historian):
    with pytest.raises(ValueError, match="not on an hour"):
        historian.compact_hour(H + 1)


def test_tag_chunks_cover_every_id_in_bounded_runs():
    ids = np.array([1, 2, 3, 5, 8])
    counts = np.array([30, 30, 30, 100, 10])
    assert _tag_chunks(ids, counts, 50) == [(-1, 2), (2, 5), (5, 2**31 - 1)]
    assert _tag_chunks(np.array([], int), np.array([], int), 50) == [(-1, 2**31 - 1)]


D = H // DAY_MS * DAY_MS  # the day (UTC) of H


def day_answers(h) -> dict:
    """What a reader can ask of day D."""
    out: dict = {"count": h.count(E), "latest": h.latest(E).to_pylist()}
    for tag in [*TAGS, TEXT]:
        out[f"series {tag}"] = h.series(E, tag, D, D + DAY_MS).to_pylist()
    for tag in TAGS:
        out[f"buckets {tag}"] = h.buckets(E, tag, D, D + DAY_MS, 17).to_pylist()
        out[f"rollups {tag}"] = h.rollups(E, tag, D, D + DAY_MS).to_pylist()
    return out


def test_a_closed_day_is_merged_into_one_sorted_run_per_tag(historian):
    """Hours compacted one by one leave each tag's day in pieces; once the day is closed the
    compactor merges it (what a manual compact() gives), answers unchanged."""
    clock = Clock(D + 3 * HOUR_MS)
    compactor = compactor_of(historian, clock)
    historian.write(batch(live_rows(D + HOUR_MS - 60_000, 150, 1000)))  # hours 0 and 1 of D
    historian.write(batch([(TEXT, D + 5, "run")]))
    assert compactor.run_once() == 2  # both hours closed; the day is not
    by_hour = physical(historian, D, D + DAY_MS)
    assert by_hour != sorted(by_hour)  # sorted within each hour, not across the day
    assert compactor.closed_days() == []
    before = day_answers(historian)

    clock.now = D + DAY_MS + 61_000  # the day and its grace are over
    assert compactor.run_once() == 0  # no hour left: the day is merged
    assert compactor.status()["compacted_days"] == 1
    merged = physical(historian, D, D + DAY_MS)
    assert merged == sorted(merged)  # one run per tag across the whole day
    assert day_answers(historian) == before
    assert historian.days_to_compact(D) == [] and compactor.status()["pending_days"] == 0

    # a late point marks its hour again; the day waits for that hour, then merges again
    historian.write(batch([(TAGS[1], D + HOUR_MS + 500, 42.0)]))
    assert compactor.closed_days() == []  # its hour is not compacted yet
    assert compactor.run_once() == 1
    assert compactor.status()["compacted_days"] == 2
    merged = physical(historian, D, D + DAY_MS)
    assert merged == sorted(merged)
    assert (
        historian.series(E, TAGS[1], D + HOUR_MS + 500, D + HOUR_MS + 501).to_pylist()[0]["value"]
        == 42.0
    )


def test_a_restart_finds_the_days_not_merged_yet(settings_factory):
    settings = settings_factory()
    h = open_historian(settings)
    h.write(batch(live_rows(D + HOUR_MS, 30)))
    h.compact_hour(D + HOUR_MS)  # compacted hour, day not merged, then a restart
    h.close()
    h = open_historian(settings)
    try:
        compactor = compactor_of(h, Clock(D + DAY_MS + HOUR_MS), lookback_hours=72)
        compactor.seed()
        assert compactor.closed_days() == [D]
        assert compactor.run_once() == 0 and compactor.status()["compacted_days"] == 1
        assert h.days_to_compact(D) == []
    finally:
        h.close()


def test_day_merging_can_be_turned_off(historian):
    compactor = compactor_of(historian, Clock(D + DAY_MS + HOUR_MS), days=False)
    historian.write(batch(live_rows(D + HOUR_MS, 30)))
    assert compactor.run_once() == 1
    assert compactor.status()["compacted_days"] == 0 and compactor.closed_days() == []
