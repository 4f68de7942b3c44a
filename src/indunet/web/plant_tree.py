"""The plant as the pages show it: sites → areas → lines → machines with latest readings (pure).

Everything here is computed from the historian's tags and latest values plus ``now_ms``; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from indunet.model import DataType, Quality
from indunet.store import TagInfo
from indunet.uns import MachinePath, TagPath

__all__ = [
    "DEFAULT_STALE_MS",
    "STALE_FACTOR",
    "AreaView",
    "LineView",
    "MachineCard",
    "PlantView",
    "SiteView",
    "TagReading",
    "format_age",
    "format_epoch_ms",
    "format_value",
    "is_epoch_ms",
    "machine_card",
    "machine_url",
    "plant_view",
    "scope_url",
]

#: a reading is stale when older than this and its tag declares no expected interval
DEFAULT_STALE_MS = 60_000
#: a reading is stale when older than this many expected intervals of its tag
STALE_FACTOR = 3


@dataclass(frozen=True, slots=True)
class TagReading:
    """A tag of a machine and its latest value, formatted for a person."""

    name: str
    path: str
    data_type: DataType
    unit: str | None
    description: str | None
    value: str | None
    ts_ms: int | None
    time: str | None
    age: str | None
    #: good, uncertain, bad, stale or none (no value yet)
    status: str
    note: str
    #: how the value reads: "" (as stored) or "epoch_ms" (a time, shown as clock time and age)
    kind: str = ""

    @property
    def chartable(self) -> bool:
        """Return whether the tag can be drawn as a line (numbers and booleans)."""
        return self.data_type != DataType.STRING


@dataclass(frozen=True, slots=True)
class MachineCard:
    """One machine: where it is, its page, its readings and whether it is live."""

    path: MachinePath
    url: str
    readings: tuple[TagReading, ...]
    #: live (at least one fresh good value), stale, or none (no value yet)
    status: str


@dataclass(slots=True)
class LineView:
    """A line and its machines."""

    name: str
    machines: list[MachineCard] = field(default_factory=list)


@dataclass(slots=True)
class AreaView:
    """An area and its lines."""

    name: str
    lines: list[LineView] = field(default_factory=list)


@dataclass(slots=True)
class SiteView:
    """A site and its areas."""

    name: str
    areas: list[AreaView] = field(default_factory=list)

    @property
    def machine_count(self) -> int:
        """Return how many machines the site has."""
        return sum(len(line.machines) for area in self.areas for line in area.lines)

    @property
    def live_count(self) -> int:
        """Return how many of the site's machines are live."""
        return sum(
            m.status == "live" for area in self.areas for line in area.lines for m in line.machines
        )


@dataclass(slots=True)
class PlantView:
    """An enterprise's plant tree as of ``now_ms``."""

    enterprise: str
    now_ms: int
    sites: list[SiteView] = field(default_factory=list)

    @property
    def machine_count(self) -> int:
        """Return how many machines the enterprise has."""
        return sum(s.machine_count for s in self.sites)

    @property
    def live_count(self) -> int:
        """Return how many machines are live."""
        return sum(s.live_count for s in self.sites)

    @property
    def time(self) -> str:
        """Return ``now_ms`` as UTC clock time."""
        return _iso(self.now_ms)


def format_value(value: float | None, text: str | None, data_type: DataType) -> str | None:
    """Return a stored value as short text: numbers rounded for reading, booleans as on/off."""
    if text is not None:
        return text
    if value is None:
        return None
    if data_type == DataType.BOOLEAN:
        return "on" if value else "off"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    size = abs(value)
    if size >= 1e15 or size < 1e-3:
        return f"{value:.3g}"
    if size >= 1000:
        return f"{value:.1f}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def format_age(age_ms: int) -> str:
    """Return an age as whole seconds, minutes, hours or days (future times count as now)."""
    s = max(age_ms, 0) // 1000
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86_400:
        return f"{s // 3600} h"
    return f"{s // 86_400} d"


def is_epoch_ms(name: str, value: float | None) -> bool:
    """Return whether a ``*_ms`` tag's value is an epoch time in ms (years 1973 to 5138)."""
    return (
        name.endswith("_ms") and value is not None and math.isfinite(value) and 1e11 <= value < 1e14
    )


def format_epoch_ms(value: float, now_ms: int) -> str:
    """Return an epoch-ms value as UTC clock time (with the date unless today) and its age."""
    ms = int(value)
    at = datetime.fromtimestamp(ms / 1000, UTC)
    today = datetime.fromtimestamp(now_ms / 1000, UTC).date()
    clock = at.strftime("%H:%M:%S" if at.date() == today else "%Y-%m-%d %H:%M")
    age = now_ms - ms
    when = f"{format_age(age)} ago" if age >= 0 else f"in {format_age(-age)}"
    return f"{clock} UTC ({when})"


def machine_url(path: MachinePath) -> str:
    """Return the page address of a machine, each segment percent-encoded."""
    parts = (path.site, path.area, path.line, path.machine)
    return "/machine/" + "/".join(quote(p, safe="") for p in parts)


def scope_url(*parts: str) -> str:
    """Return the drill-down page of a site, area or line (``site[, area[, line]]``)."""
    return "/site/" + "/".join(quote(p, safe="") for p in parts)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


#: units read from a tag name's last word when its metadata names none (power_kw → kW); not
#: ``_ms``, which here mostly holds epoch times (edge_last_good_ms)
NAME_UNITS = {
    "kw": "kW", "w": "W", "kwh": "kWh", "wh": "Wh", "kvarh": "kVArh", "c": "°C", "degc": "°C",
    "f": "°F", "k": "K", "bar": "bar", "pa": "Pa", "kpa": "kPa", "mpa": "MPa", "a": "A",
    "v": "V", "hz": "Hz", "rpm": "rpm", "pct": "%", "percent": "%", "mm": "mm", "m": "m",
    "kg": "kg", "t": "t", "s": "s", "l": "L", "lpm": "L/min", "total": "pcs",
}  # fmt: skip


def tag_unit(name: str, unit: str | None) -> str | None:
    """Return a tag's unit: its metadata's, else one read from its name (``temp_c`` → °C)."""
    if unit:
        return unit
    last = name.rsplit("_", 1)[-1].lower() if "_" in name else ""
    return NAME_UNITS.get(last)


def display_name(name: str) -> str:
    """Return a tag's name for people: words, without a unit suffix (``power_kw`` → Power)."""
    words = name.replace("-", "_").split("_")
    if len(words) > 1 and words[-1].lower() in NAME_UNITS and words[-1].lower() != "total":
        words = words[:-1]
    text = " ".join(w for w in words if w)
    return text[:1].upper() + text[1:] if text else name


def _reading(tag: TagInfo, name: str, row: Mapping[str, Any] | None, now_ms: int) -> TagReading:
    if row is None:
        return TagReading(
            name=name,
            path=tag.path,
            data_type=tag.data_type,
            unit=tag_unit(name, tag.unit),
            description=tag.description,
            value=None,
            ts_ms=None,
            time=None,
            age=None,
            status="none",
            note="no value yet",
        )
    ts = int(row["ts"])
    age_ms = now_ms - ts
    limit = STALE_FACTOR * tag.expected_interval_ms if tag.expected_interval_ms else None
    limit = limit or DEFAULT_STALE_MS
    quality = Quality(row["quality"])
    if quality == Quality.BAD:
        status, note = "bad", "bad quality reported by the source"
    elif quality == Quality.STALE:
        status, note = "stale", "the source went offline"
    elif age_ms > limit:
        status, note = "stale", f"no new value for {format_age(age_ms)}"
    elif quality == Quality.UNCERTAIN:
        status, note = "uncertain", "uncertain quality reported by the source"
    else:
        status, note = "good", ""
    value = row["value"]
    epoch = row["text"] is None and tag.data_type == DataType.NUMBER and is_epoch_ms(name, value)
    return TagReading(
        name,
        tag.path,
        tag.data_type,
        tag_unit(name, tag.unit),
        tag.description,
        format_epoch_ms(value, now_ms)
        if epoch
        else format_value(value, row["text"], tag.data_type),
        ts,
        _iso(ts),
        format_age(age_ms),
        status,
        note,
        "epoch_ms" if epoch else "",
    )


def machine_card(
    path: MachinePath,
    tags: Iterable[tuple[str, TagInfo]],
    latest: Mapping[str, Mapping[str, Any]],
    now_ms: int,
) -> MachineCard:
    """Return a machine's card from ``(tag name, TagInfo)`` pairs and latest rows by tag path."""
    readings = tuple(_reading(info, name, latest.get(info.path), now_ms) for name, info in tags)
    if any(r.status == "good" for r in readings):
        status = "live"
    elif all(r.status == "none" for r in readings):
        status = "none"
    else:
        status = "stale"
    return MachineCard(path, machine_url(path), readings, status)


def plant_view(
    enterprise: str, tags: Iterable[TagInfo], latest: Iterable[Mapping[str, Any]], now_ms: int
) -> PlantView:
    """Nest tags into sites → areas → lines → machines (sorted) with their latest readings."""
    by_path = {row["tag"]: row for row in latest}
    machines: dict[MachinePath, list[tuple[str, TagInfo]]] = {}
    for info in tags:
        tp = TagPath.parse(info.path)
        machines.setdefault(tp.machine_path, []).append((tp.tag, info))
    view = PlantView(enterprise, now_ms)
    sites: dict[str, SiteView] = {}
    areas: dict[tuple[str, str], AreaView] = {}
    lines: dict[tuple[str, str, str], LineView] = {}
    for mp in sorted(machines, key=lambda m: (m.site, m.area, m.line, m.machine)):
        if mp.site not in sites:
            sites[mp.site] = SiteView(mp.site)
            view.sites.append(sites[mp.site])
        akey = (mp.site, mp.area)
        if akey not in areas:
            areas[akey] = AreaView(mp.area)
            sites[mp.site].areas.append(areas[akey])
        lkey = (mp.site, mp.area, mp.line)
        if lkey not in lines:
            lines[lkey] = LineView(mp.line)
            areas[akey].lines.append(lines[lkey])
        pairs = sorted(machines[mp], key=lambda p: p[0])
        lines[lkey].machines.append(machine_card(mp, pairs, by_path, now_ms))
    return view
