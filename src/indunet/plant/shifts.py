"""Shift calendar → planned busy intervals in UTC ms, in the site's time zone (DST-aware).

Shift and break times are local wall-clock times: a 22:00–06:00 shift lasts 7 h on the
spring-forward night and 9 h on the fall-back night. A wall time that does not exist (inside
the spring gap) is read with the offset before the change; an ambiguous one (the repeated
hour) is its first occurrence. A calendar without shifts plans every hour of every day.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from indunet.errors import DataError
from indunet.plant.config import ShiftCalendar

__all__ = [
    "ShiftWindow",
    "day_windows",
    "intersect",
    "planned_busy",
    "shift_windows",
    "subtract",
    "to_ms",
    "union",
]

_EMPTY = np.zeros((0, 2), dtype=np.int64)


@dataclass(frozen=True)
class ShiftWindow:
    """One occurrence of a shift: its span and its planned busy intervals (UTC ms)."""

    shift: str
    day: date  # local date on which the shift starts
    start_ms: int
    end_ms: int
    busy: np.ndarray  # (k, 2) int64, sorted, disjoint, inside [start_ms, end_ms)

    @property
    def planned_ms(self) -> int:
        """Return the planned busy time in ms."""
        return int((self.busy[:, 1] - self.busy[:, 0]).sum())

    @property
    def label(self) -> str:
        """Return a readable name such as ``2026-03-29 night``."""
        return f"{self.day.isoformat()} {self.shift}"


def to_ms(moment: datetime) -> int:
    """Return epoch milliseconds of an aware datetime."""
    if moment.tzinfo is None:
        raise DataError(f"datetime {moment.isoformat()} has no time zone")
    return round(moment.timestamp() * 1000)


def shift_windows(
    calendar: ShiftCalendar, start_ms: int, end_ms: int, *, machine: str | None = None
) -> list[ShiftWindow]:
    """Return the shifts overlapping ``[start_ms, end_ms)``, clipped to it, in time order.

    Breaks and the calendar's planned downtime (for ``machine``, or for every machine) are
    removed from each shift's busy intervals. Without shifts, each local day is one window.
    """
    if end_ms <= start_ms:
        raise DataError(f"end_ms {end_ms} is not after start_ms {start_ms}")
    if not calendar.shifts:
        return day_windows(calendar, start_ms, end_ms, machine=machine)
    zone = calendar.zone
    downtime = _downtime(calendar, machine)
    first = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(zone).date() - timedelta(2)
    last = datetime.fromtimestamp(end_ms / 1000, UTC).astimezone(zone).date()
    out: list[ShiftWindow] = []
    day = first
    while day <= last:
        for shift in calendar.shifts:
            if day.weekday() not in shift.days:
                continue
            begin = datetime.combine(day, shift.start, tzinfo=zone)
            s = to_ms(begin)
            e = to_ms(begin + timedelta(minutes=shift.length_min))  # wall-clock arithmetic
            if e <= start_ms or s >= end_ms:
                continue
            breaks = np.array(
                [
                    (to_ms(begin + timedelta(minutes=b0)), to_ms(begin + timedelta(minutes=b1)))
                    for b0, b1 in shift.break_offsets()
                ],
                dtype=np.int64,
            ).reshape(-1, 2)
            busy = subtract(np.array([[s, e]], dtype=np.int64), breaks)
            busy = subtract(busy, downtime)
            lo, hi = max(s, start_ms), min(e, end_ms)
            busy = intersect(busy, np.array([[lo, hi]], dtype=np.int64))
            out.append(ShiftWindow(shift.name, day, lo, hi, busy))
        day += timedelta(1)
    out.sort(key=lambda w: w.start_ms)
    for a, b in itertools.pairwise(out):
        if b.start_ms < a.end_ms:
            raise DataError(f"shifts {a.label} and {b.label} overlap; fix the shift calendar")
    return out


def day_windows(
    calendar: ShiftCalendar, start_ms: int, end_ms: int, *, machine: str | None = None
) -> list[ShiftWindow]:
    """Return one window per local calendar day (23 or 25 h on DST days), all planned."""
    zone = calendar.zone
    downtime = _downtime(calendar, machine)
    day = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(zone).date()
    out = []
    while True:
        s = to_ms(datetime.combine(day, datetime.min.time(), tzinfo=zone))
        e = to_ms(datetime.combine(day + timedelta(1), datetime.min.time(), tzinfo=zone))
        if s >= end_ms:
            break
        lo, hi = max(s, start_ms), min(e, end_ms)
        if hi > lo:
            busy = subtract(np.array([[lo, hi]], dtype=np.int64), downtime)
            out.append(ShiftWindow("day", day, lo, hi, busy))
        day += timedelta(1)
    return out


def planned_busy(
    calendar: ShiftCalendar, start_ms: int, end_ms: int, *, machine: str | None = None
) -> np.ndarray:
    """Return the planned busy intervals inside ``[start_ms, end_ms)`` as an (n, 2) array."""
    windows = shift_windows(calendar, start_ms, end_ms, machine=machine)
    if not windows:
        return _EMPTY.copy()
    return union(np.concatenate([w.busy for w in windows]))


def _downtime(calendar: ShiftCalendar, machine: str | None) -> np.ndarray:
    rows = []
    for d in calendar.planned_downtime:
        if d.machines and (machine is None or machine not in d.machines):
            continue
        s = d.start if d.start.tzinfo else d.start.replace(tzinfo=calendar.zone)
        e = d.end if d.end.tzinfo else d.end.replace(tzinfo=calendar.zone)
        rows.append((to_ms(s), to_ms(e)))
    return union(np.array(rows, dtype=np.int64).reshape(-1, 2))


def union(iv: np.ndarray) -> np.ndarray:
    """Return the union of intervals as sorted, disjoint ``[start, end)`` rows."""
    iv = np.asarray(iv, dtype=np.int64).reshape(-1, 2)
    iv = iv[iv[:, 1] > iv[:, 0]]
    if len(iv) < 2:
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    reach = np.maximum.accumulate(iv[:, 1])
    new = np.ones(len(iv), bool)
    new[1:] = iv[1:, 0] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:] - 1, [len(iv) - 1]])
    return np.stack([iv[first, 0], reach[last]], axis=1)


def intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the intersection of two sets of intervals."""
    a, b = union(a), union(b)
    if not len(a) or not len(b):
        return _EMPTY.copy()
    ai, bi = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
    s = np.maximum(a[ai, 0], b[bi, 0]).ravel()
    e = np.minimum(a[ai, 1], b[bi, 1]).ravel()
    return union(np.stack([s, e], axis=1))


def subtract(a: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Return intervals ``a`` minus ``holes``."""
    a, holes = union(a), union(holes)
    if not len(holes) or not len(a):
        return a
    lo = min(int(a[:, 0].min()), int(holes[:, 0].min())) - 1
    hi = max(int(a[:, 1].max()), int(holes[:, 1].max())) + 1
    edges = np.concatenate([[lo], holes.ravel(), [hi]]).reshape(-1, 2)
    return intersect(a, edges)
