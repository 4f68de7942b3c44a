"""Derived data follows raw data: state timelines brought up to date from the change journal.

Every historian write journals, per tag, the time range it wrote (`Historian.raw_changes`), in
the same transaction as the points, whatever route it came by: MQTT, HTTP ingest, a CSV or
Parquet import, the demo's back-fill, late or re-sent data. `follow_raw_changes` takes the
journal rows of the machines' power tags and recomputes the stored timeline around each range
(with a margin for hysteresis, dwell and the offline window), then forgets the rows. A running
`PlantWatcher` calls it after each tick with the trackers' positions: a range older than what a
tracker had read is late, and the tracker is restarted from the stored timeline; anything newer
is the tracker's own. Without a watcher (the CLI on a data dir), ranges are recomputed outright.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from indunet.errors import DataError
from indunet.plant.config import MachineConfig
from indunet.plant.store import PlantStore
from indunet.plant.watch import LOOKBACK_MS, recompute_range
from indunet.store.base import Historian

__all__ = [
    "Followed",
    "bring_up_to_date",
    "follow_raw_changes",
    "margin_ms",
    "pending_changes",
    "repair_overlaps",
]

#: rows of the journal older than this are dropped whatever their enterprise (no one waits)
JOURNAL_KEEP_MS = 86_400_000


@dataclass
class Followed:
    """What one pass over the journal did."""

    recomputed: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def margin_ms(machine: MachineConfig) -> int:
    """Return how far a changed point can move a machine's states around it."""
    return max(LOOKBACK_MS, 2 * machine.offline_after_ms)


def _watched(machines: Iterable[MachineConfig]) -> dict[str, MachineConfig]:
    return {
        f"{m.id}/{m.power_tag}": m
        for m in machines
        if m.power_tag is not None and m.thresholds is not None
    }


def pending_changes(
    store: PlantStore,
    historian: Historian,
    enterprise: str,
    machines: Iterable[MachineConfig],
    start_ms: int,
    end_ms: int,
) -> list[str]:
    """Return the machines whose stored timeline in ``[start_ms, end_ms)`` awaits late data.

    A journal row counts when it reaches back before the machine's newest stored segment: in
    order data after it is the watcher's live part, not a stored figure gone stale.
    """
    power = _watched(machines)
    if not power:
        return []
    journal = historian.raw_changes(enterprise, list(power))
    if not journal.num_rows:
        return []
    earliest: dict[str, int] = {}
    for tag, lo, hi in zip(
        journal.column("tag").to_pylist(),
        journal.column("lo").to_pylist(),
        journal.column("hi").to_pylist(),
        strict=True,
    ):
        m = power[tag]
        pad = margin_ms(m)
        if lo - pad < end_ms and hi + pad >= start_ms:
            earliest[m.id] = min(earliest.get(m.id, lo), lo)
    if not earliest:
        return []
    frontier = {
        r["machine"]: int(r["last_start"])
        for r in store.sql.rows(
            "SELECT machine, max(start_ms) AS last_start FROM plant_states WHERE "
            "enterprise = $1 AND machine IN (SELECT unnest(CAST($2 AS TEXT[]))) "
            "GROUP BY machine",
            [enterprise, sorted(earliest)],
        )
    }
    return sorted(m for m, lo in earliest.items() if m in frontier and lo < frontier[m])


def follow_raw_changes(
    store: PlantStore,
    historian: Historian,
    enterprise: str,
    machines: Iterable[MachineConfig],
    *,
    now_ms: int,
    read_up_to: Callable[[str], int | None] | None = None,
    journal: pa.Table | None = None,
) -> Followed:
    """Bring the machines' stored timelines in step with the journal of raw writes.

    With a running watcher, ``journal`` holds each machine's journal rows taken just *before*
    its tracker read, and ``read_up_to(machine)`` where that tracker stood then: every row was
    written before the read, so a change newer than that position was read by the tracker
    itself, and an older one is late. Without them (the CLI) the whole journal is taken and
    every change is recomputed. Returns what was recomputed and which machines' trackers must
    restart from the stored timeline; the rows taken are dropped.
    """
    power = _watched(machines)
    done = Followed()
    if not power:
        return done
    if journal is None:
        journal = historian.raw_changes(enterprise, list(power))
    if not journal.num_rows:
        historian.drop_raw_changes([], older_ms=now_ms - JOURNAL_KEEP_MS)
        return done
    taken = journal.column("id").to_pylist()
    spans: dict[str, list[int]] = {}
    for tag, lo, hi in zip(
        journal.column("tag").to_pylist(),
        journal.column("lo").to_pylist(),
        journal.column("hi").to_pylist(),
        strict=True,
    ):
        m = power.get(tag)
        if m is None:
            continue
        seen = read_up_to(m.id) if read_up_to is not None else None
        if seen is not None and lo > seen:
            continue  # in order: the tracker read it
        span = spans.setdefault(m.id, [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    by_id = {m.id: m for m in power.values()}
    for machine_id, (lo, hi) in spans.items():
        m = by_id[machine_id]
        pad = margin_ms(m)
        start, end = _first_point(historian, enterprise, m, lo - pad, lo), min(hi + pad, now_ms)
        if read_up_to is not None:
            last = store.last_segment(enterprise, m.id)
            stored_end = last[1] if last else None
            if stored_end is None or hi + pad > stored_end:
                done.restarted.append(m.id)  # the tail is the tracker's: it starts over
            end = min(end, stored_end) if stored_end is not None else start
        else:  # no tracker: stop at the newest sample (the silence after it is offline anyway)
            newest = historian.latest(enterprise, f"{m.id}/{m.power_tag}")
            if newest.num_rows:
                end = min(end, int(newest.column("ts")[0].as_py()) + 1)
        if end <= start:
            continue
        _recompute(done, store, historian, enterprise, m, start, end)
    historian.drop_raw_changes(taken, older_ms=now_ms - JOURNAL_KEEP_MS)
    return done


def bring_up_to_date(
    store: PlantStore,
    historian: Historian,
    enterprise: str,
    machines: Iterable[MachineConfig],
    *,
    now_ms: int,
) -> Followed:
    """Make stored timelines cover the machines' power data, when no watcher runs (the CLI).

    Follows the change journal, then computes what lies after the stored timeline (or all of
    it when there is none): data written before anyone followed the tags — an import into a
    new data dir, a machine configured after its data came — or the open tail a stopped
    server never closed.
    """
    machines = list(machines)
    power = _watched(machines)
    historian.follow_tags(enterprise, list(power))
    done = follow_raw_changes(store, historian, enterprise, machines, now_ms=now_ms)
    for tag, m in power.items():
        newest = historian.latest(enterprise, tag)
        if not newest.num_rows:
            continue
        newest_ms = int(newest.column("ts")[0].as_py())
        last = store.last_segment(enterprise, m.id)
        if last is not None and newest_ms < last[1]:
            continue
        if last is not None:
            start = last[1]
        else:
            start = _first_point(historian, enterprise, m, 0, newest_ms)
        end = newest_ms + 1  # the silence after it is offline in every report anyway
        if end <= start:
            continue
        _recompute(done, store, historian, enterprise, m, start, end)
    return done


def _first_point(
    historian: Historian, enterprise: str, machine: MachineConfig, start_ms: int, lo: int
) -> int:
    """Return the first power sample at or after ``start_ms`` (no earlier than data begins)."""
    first = historian.series(
        enterprise, f"{machine.id}/{machine.power_tag}", start_ms, lo + 1, limit=1
    )
    return int(first.column("ts")[0].as_py()) if first.num_rows else lo


def repair_overlaps(
    store: PlantStore,
    historian: Historian,
    enterprise: str,
    machines: Iterable[MachineConfig],
    *,
    now_ms: int,
) -> Followed:
    """Rebuild, from raw data, the stretches of stored timelines whose rows overlap.

    An older release could leave them after a restart on a kept data dir; a timeline that holds
    them cannot be read (every page over it answered 422). Runs when a watcher starts.
    """
    done = Followed()
    by_id = {m.id: m for m in machines if m.power_tag is not None and m.thresholds is not None}
    rows = store.sql.rows(
        "SELECT machine, min(start_ms) AS lo, max(prev_end) AS hi FROM (SELECT machine, "
        "start_ms, end_ms, max(end_ms) OVER (PARTITION BY machine ORDER BY start_ms ROWS "
        "BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end FROM plant_states WHERE "
        "enterprise = $1) s WHERE prev_end > start_ms GROUP BY machine",
        [enterprise],
    )
    for r in rows:
        m = by_id.get(r["machine"])
        if m is None:
            continue
        # every row touching the stretch goes, whole; the stretch is computed again
        lo, hi = int(r["lo"]), int(r["hi"])
        span = store.sql.rows(
            "SELECT min(start_ms) AS lo, max(end_ms) AS hi FROM plant_states WHERE enterprise = $1 "
            "AND machine = $2 AND end_ms > $3 AND start_ms < $4",
            [enterprise, m.id, lo, hi],
        )[0]
        lo, hi = int(span["lo"]), min(int(span["hi"]), now_ms)
        store.sql.execute(
            "DELETE FROM plant_states WHERE enterprise = $1 AND machine = $2 AND end_ms > $3 "
            "AND start_ms < $4",
            [enterprise, m.id, lo, hi],
        )
        if hi <= lo:
            continue
        _recompute(done, store, historian, enterprise, m, lo, hi)
    return done


def _recompute(
    done: Followed,
    store: PlantStore,
    historian: Historian,
    enterprise: str,
    machine: MachineConfig,
    start_ms: int,
    end_ms: int,
) -> None:
    """Recompute a stored range, noting it in ``done`` (or the reason it could not be)."""
    try:
        recompute_range(store, historian, enterprise, machine, start_ms, end_ms)
    except DataError as exc:
        done.errors.append(f"{machine.id}: {exc}")
        return
    done.recomputed.setdefault(machine.id, []).append((start_ms, end_ms))
