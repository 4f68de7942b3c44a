"""The demo's history: back-fill only what is missing, and carry counters on across restarts.

A demo started again on a kept data dir must continue where it stopped: history that exists is
never written again (a second simulation over it would interleave two counters), the gap since
the last stop is filled, and the part, scrap and energy counters go on from their stored values.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow.compute as pc

from indunet.errors import DataError
from indunet.sim.live import SimMachineState
from indunet.sim.plant import SimMachine, simulate
from indunet.store.base import Historian

__all__ = [
    "BACKFILL_STEP_MS",
    "SPINDLE_AREA",
    "backfill_history",
    "backfill_spindles",
    "carry_on_counters",
    "stored_latest",
]

BACKFILL_STEP_MS = 10_000
#: the back-filled tags (not temperature: the batch model's would not join the live one)
BACKFILL_TAGS = ("power_kw", "parts_total", "scrap_total")
#: the machines of this area have a spindle that wears out (the demo's RUL asset class)
SPINDLE_AREA = "machining"


def stored_latest(historian: Historian, enterprise: str) -> dict[str, tuple[int, float | None]]:
    """Return every tag's newest (ts, value) of the enterprise."""
    latest = historian.latest(enterprise)
    return {
        tag: (int(ts), value)
        for tag, ts, value in zip(
            latest.column("tag").to_pylist(),
            latest.column("ts").to_pylist(),
            latest.column("value").to_pylist(),
            strict=True,
        )
    }


def backfill_history(
    historian: Historian,
    enterprise: str,
    machines: Sequence[SimMachineState],
    *,
    hours: float,
    now_ms: int,
    seed: int = 7,
) -> int:
    """Write the missing part of each machine's last ``hours`` of history; return the points.

    A machine with stored data gets only the gap after its newest power point; its counters
    continue from their stored values, so they never fall back.
    """
    end = now_ms // 1000 * 1000
    window_start = end - int(hours * 3_600_000)
    latest = stored_latest(historian, enterprise)
    written = 0
    for i, m in enumerate(machines):
        power = latest.get(str(m.path.tag("power_kw")))
        start = window_start if power is None else max(window_start, power[0] + BACKFILL_STEP_MS)
        if end - start < BACKFILL_STEP_MS:
            continue
        sim = SimMachine(m.path, m.rated_kw * 0.08, m.rated_kw, m.cycle_s)
        batch = simulate((sim,), start, end, BACKFILL_STEP_MS, enterprise=enterprise, seed=seed + i)
        table = batch.table
        tags = table.column("tag")
        keep = pc.match_substring_regex(tags, r"/(" + "|".join(BACKFILL_TAGS) + r")$")
        table = table.filter(keep)
        for name in ("parts_total", "scrap_total"):  # carry on from the stored count
            stored = latest.get(str(m.path.tag(name)))
            if stored is None or stored[1] is None:
                continue
            is_tag = pc.equal(table.column("tag"), str(m.path.tag(name)))
            shifted = pc.if_else(
                is_tag, pc.add(table.column("value"), stored[1]), table.column("value")
            )
            table = table.set_column(table.schema.get_field_index("value"), "value", shifted)
        batch.table = table.cast(table.schema)
        written += historian.write(batch, source="demo").stored
    return written


def carry_on_counters(
    historian: Historian, enterprise: str, machines: Sequence[SimMachineState]
) -> None:
    """Start the live simulation's counters at the stored values (parts, scrap, energy)."""
    latest = stored_latest(historian, enterprise)
    for m in machines:
        for name, attr in (("parts_total", "parts"), ("scrap_total", "scrap"),
                           ("energy_kwh", "energy_kwh")):  # fmt: skip
            stored = latest.get(str(m.path.tag(name)))
            if stored is None or stored[1] is None:
                continue
            value = stored[1]
            setattr(m, attr, int(value) if attr == "scrap" else float(value))


def backfill_spindles(
    historian: Historian,
    enterprise: str,
    machines: Sequence[SimMachineState],
    *,
    now_ms: int,
    history: bool = True,
    seed: int = 7,
) -> int:
    """Give the machining machines their spindles (`indunet.sim.wear`) and write the missing
    part of each spindle's life so far; return the points written.

    A spindle already stored keeps its install time (its first stored reading) and gets only
    the gap after its newest reading. Without ``history`` new spindles are installed now.
    """
    from indunet.sim.wear import SENSORS, demo_spindles, spindle_history

    fitted = [m for m in machines if m.path.area == SPINDLE_AREA]
    if not fitted:
        return 0
    first: dict[str, int] = {}
    for m in fitted:
        tag = str(m.path.tag(SENSORS[0]))
        try:
            found = historian.series(enterprise, tag, 0, now_ms + 1, limit=1)
        except DataError:  # never written
            found = None
        if found is not None and found.num_rows:
            first[str(m.path)] = int(found.column("ts")[0].as_py())
        elif not history:
            first[str(m.path)] = now_ms
    spindles = demo_spindles([m.path for m in fitted], now_ms, seed=seed, installed=first)
    for m in fitted:
        m.spindle = spindles[str(m.path)]
    if not history:
        return 0
    latest = stored_latest(historian, enterprise)
    after = {
        str(m.path): latest[str(m.path.tag(SENSORS[0]))][0]
        for m in fitted
        if str(m.path.tag(SENSORS[0])) in latest
    }
    batch = spindle_history(enterprise, spindles, now_ms // 1000 * 1000, after=after, seed=seed)
    if batch.table.num_rows == 0:
        return 0
    return historian.write(batch, source="demo").stored
