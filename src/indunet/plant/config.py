"""Plant configuration: machines, thresholds, part counters, shift calendars and stop reasons.

Loaded from the ``[plant]`` table of ``indunet.toml`` (``Settings.plant``). Every validation
error names the machine, calendar or shift and the field that is wrong.
"""

from __future__ import annotations

from datetime import datetime, time
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indunet.condition.config import RulClassConfig
from indunet.errors import DataError
from indunet.plant.alarms import AlarmRule, AlarmRuleError, load_rules
from indunet.plant.delivery import AndonConfig, ReportsConfig, SmtpConfig
from indunet.plant.notify import WebhookTarget
from indunet.uns import MachinePath, check_segment

__all__ = [
    "Break",
    "CounterConfig",
    "MachineConfig",
    "PlannedDowntime",
    "PlantConfig",
    "Shift",
    "ShiftCalendar",
    "SiteConfig",
    "StopReason",
    "StopReasonTree",
    "Thresholds",
]

WEEK_MIN = 7 * 24 * 60


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Model):
    """Power (or current) levels that separate off, idle and running, in the power tag's unit."""

    off_below: float = Field(ge=0, description="Standby level: below it the machine is off.")
    running_above: float = Field(gt=0, description="Load level: above it the machine runs.")
    hysteresis: float = Field(0.0, ge=0, description="Half-width of the band around each level.")
    min_dwell_s: float = Field(0.0, ge=0, description="Shorter excursions keep the prior state.")

    @model_validator(mode="after")
    def _check_order(self) -> Thresholds:
        if self.off_below >= self.running_above:
            raise ValueError(
                f"off_below ({self.off_below}) must be below running_above ({self.running_above})"
            )
        if 2 * self.hysteresis > self.running_above - self.off_below:
            raise ValueError(
                f"hysteresis ({self.hysteresis}) must be at most half the idle band "
                f"({(self.running_above - self.off_below) / 2:g})"
            )
        return self


class CounterConfig(_Model):
    """A part counter tag: it may reset to zero (e.g. at shift start) or wrap at a modulus."""

    tag: str
    resets: bool = Field(True, description="A drop to near zero is a reset, not an error.")
    reset_below: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="A drop to at most this share of the counter's high-water mark (or to 0 "
        "or 1) is a reset; a smaller drop is a counter going backwards and counts nothing.",
    )
    wrap_at: int | None = Field(None, gt=0, description="Counter modulus, e.g. 65536.")
    max_step: int | None = Field(None, gt=0, description="Larger jumps are flagged as anomalies.")

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, value: str) -> str:
        return _segment(value, "tag")


class MachineConfig(_Model):
    """One machine: where it sits, which tags to read, how to judge its state and output."""

    id: str = Field(description="Machine path site/area/line/machine.")
    power_tag: str | None = None
    power_unit: Literal["kW", "W", "A"] = "kW"
    rated_kw: float | None = Field(None, gt=0, description="Nameplate power, for unit checks.")
    volts: float | None = Field(None, gt=0, description="Line voltage when power_unit is A.")
    power_factor: float = Field(0.85, gt=0, le=1)
    meter_tag: str | None = Field(None, description="Energy meter total in kWh.")
    meter_rollover_kwh: float | None = Field(None, gt=0)
    expected_interval_s: float = Field(1.0, gt=0)
    offline_after_intervals: float = Field(
        5.0, ge=1, description="No data for this many intervals means offline."
    )
    thresholds: Thresholds | None = Field(None, description="None: learn them from history.")
    total_counter: CounterConfig | None = None
    scrap_counter: CounterConfig | None = None
    ideal_cycle_s: dict[str, float] = Field(
        default_factory=dict, description="Ideal cycle time per product, seconds per part."
    )
    default_product: str | None = None
    state_tag: str | None = Field(
        None, description="A tag where the machine reports its own state or fault code."
    )
    state_reasons: dict[str, str] = Field(
        default_factory=dict,
        description="Reported state (text, or a whole-number code) → stop reason code, proposed "
        "for stops no operator has explained, e.g. setup → changeover.",
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        try:
            return str(MachinePath.parse(value))
        except DataError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("power_tag", "meter_tag", "state_tag")
    @classmethod
    def _check_tag(cls, value: str | None) -> str | None:
        return None if value is None else _segment(value, "tag")

    @field_validator("ideal_cycle_s")
    @classmethod
    def _check_cycles(cls, value: dict[str, float]) -> dict[str, float]:
        for product, seconds in value.items():
            if not seconds > 0:
                raise ValueError(f"ideal cycle time of product {product!r} must be > 0 s")
        return value

    @model_validator(mode="after")
    def _check_product(self) -> MachineConfig:
        if self.default_product is not None and self.default_product not in self.ideal_cycle_s:
            raise ValueError(f"default_product {self.default_product!r} has no ideal_cycle_s entry")
        return self

    @property
    def path(self) -> MachinePath:
        """Return the machine's namespace path."""
        return MachinePath.parse(self.id)

    @property
    def line(self) -> str:
        """Return the line the machine belongs to, as site/area/line."""
        p = self.path
        return f"{p.site}/{p.area}/{p.line}"

    @property
    def site(self) -> str:
        """Return the machine's site."""
        return self.path.site

    @property
    def offline_after_ms(self) -> int:
        """Return the data gap (ms) after which the machine counts as offline."""
        return round(self.expected_interval_s * self.offline_after_intervals * 1000)

    def ideal_cycle(self, product: str | None = None) -> float | None:
        """Return the ideal cycle time (s) of a product, or of the default product."""
        name = product if product is not None else self.default_product
        if name is None and len(self.ideal_cycle_s) == 1:
            return next(iter(self.ideal_cycle_s.values()))
        return self.ideal_cycle_s.get(name) if name is not None else None


class Break(_Model):
    """A planned break inside a shift, in local wall-clock time."""

    start: time
    end: time
    name: str = "break"


class Shift(_Model):
    """A shift in local wall-clock time; ``end`` <= ``start`` means it ends the next day."""

    name: str
    start: time
    end: time
    days: list[int] = Field(
        default_factory=lambda: list(range(7)), description="Weekdays it starts on, 0 = Monday."
    )
    breaks: list[Break] = Field(default_factory=list)

    @field_validator("days")
    @classmethod
    def _check_days(cls, value: list[int]) -> list[int]:
        bad = [d for d in value if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"days must be 0 (Monday) … 6 (Sunday), got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"days lists a weekday twice: {value}")
        return sorted(value)

    @property
    def length_min(self) -> int:
        """Return the nominal length in minutes (wall clock, before DST changes)."""
        return _span_min(self.start, self.end)

    def break_offsets(self) -> list[tuple[int, int]]:
        """Return each break as (start, end) minutes after the shift start."""
        out = []
        for b in self.breaks:
            s = (_minutes(b.start) - _minutes(self.start)) % (24 * 60)
            out.append((s, s + _span_min(b.start, b.end)))
        return out

    @model_validator(mode="after")
    def _check_breaks(self) -> Shift:
        if self.start.second or self.end.second:
            raise ValueError("shift start and end must be whole minutes")
        length = self.length_min
        spans = sorted(self.break_offsets())
        for (_, e), b in zip(self.break_offsets(), self.breaks, strict=True):
            if e > length:
                raise ValueError(
                    f"break {b.name!r} ({b.start:%H:%M}–{b.end:%H:%M}) is not inside the shift "
                    f"({self.start:%H:%M}–{self.end:%H:%M})"
                )
        for (_, e1), (s2, _) in pairwise(spans):
            if s2 < e1:
                raise ValueError("two breaks of the shift overlap")
        return self


class PlannedDowntime(_Model):
    """Planned downtime (maintenance, no orders): removed from planned busy time."""

    start: datetime
    end: datetime
    reason: str = "planned downtime"
    machines: list[str] = Field(default_factory=list, description="Empty: every machine.")

    @model_validator(mode="after")
    def _check_span(self) -> PlannedDowntime:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("start and end must both have a UTC offset or both have none")
        if self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        return self


class ShiftCalendar(_Model):
    """A site's shift pattern, in the site's time zone."""

    timezone: str = "UTC"
    shifts: list[Shift] = Field(default_factory=list)
    planned_downtime: list[PlannedDowntime] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @model_validator(mode="after")
    def _check_overlaps(self) -> ShiftCalendar:
        names = [s.name for s in self.shifts]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"shift name {sorted(dup)[0]!r} is used twice")
        spans: list[tuple[int, int, str]] = []
        for shift in self.shifts:
            for day in shift.days:
                s = day * 24 * 60 + _minutes(shift.start)
                spans.append((s, s + shift.length_min, shift.name))
        spans.sort()
        # compare each pair on the weekly circle (a Sunday night shift overlaps Monday morning)
        for i, (s1, e1, n1) in enumerate(spans):
            for s2, e2, n2 in spans[i + 1 :]:
                for shift_by in (0, WEEK_MIN, -WEEK_MIN):
                    if s1 < e2 + shift_by and s2 + shift_by < e1:
                        raise ValueError(
                            f"shifts {n1!r} and {n2!r} overlap "
                            f"({_weekday_time(s1)} and {_weekday_time(s2)})"
                        )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """Return the calendar's time zone."""
        return ZoneInfo(self.timezone)


class SiteConfig(_Model):
    """A site: its time zone, shift calendar and grid emission factor."""

    calendar: ShiftCalendar = Field(default_factory=ShiftCalendar)
    grid_kg_co2_per_kwh: float = Field(0.0, ge=0, le=5)
    oee_target: float | None = Field(
        None, gt=0, le=1, description="OEE the site aims at (0-1); the overview shows it."
    )


class StopReason(_Model):
    """A node of the stop-reason tree; ``parent`` is None for a top-level category."""

    code: str
    label: str = ""
    parent: str | None = None
    planned: bool = False

    @field_validator("code")
    @classmethod
    def _check_code(cls, value: str) -> str:
        return _segment(value, "reason code")


class StopReasonTree(_Model):
    """Reasons operators can assign to stops, as a tree of codes."""

    reasons: list[StopReason] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_tree(self) -> StopReasonTree:
        codes = [r.code for r in self.reasons]
        seen: set[str] = set()
        for code in codes:
            if code in seen:
                raise ValueError(f"reason code {code!r} is used twice")
            seen.add(code)
        parents = {r.code: r.parent for r in self.reasons}
        for r in self.reasons:
            if r.parent is not None and r.parent not in parents:
                raise ValueError(f"reason {r.code!r}: parent {r.parent!r} is not a reason code")
            walk, steps = r.parent, 0
            while walk is not None:
                steps += 1
                if walk == r.code or steps > len(codes):
                    raise ValueError(f"reason {r.code!r} is its own ancestor (a cycle)")
                walk = parents[walk]
        return self

    def __contains__(self, code: object) -> bool:
        return any(r.code == code for r in self.reasons)

    def path(self, code: str) -> list[str]:
        """Return the codes from the top-level category down to ``code``."""
        parents = {r.code: r.parent for r in self.reasons}
        if code not in parents:
            raise DataError(f"stop reason {code!r} is not in the reason tree")
        out = [code]
        while parents[out[-1]] is not None:
            out.append(parents[out[-1]])  # type: ignore[arg-type]
        return out[::-1]

    def category(self, code: str) -> str:
        """Return the top-level category of a reason."""
        return self.path(code)[0]


class PlantConfig(_Model):
    """Every machine and site of the plant analytics."""

    machines: list[MachineConfig] = Field(default_factory=list)
    sites: dict[str, SiteConfig] = Field(default_factory=dict)
    reasons: StopReasonTree = Field(default_factory=StopReasonTree)
    alarms: list[AlarmRule] = Field(
        default_factory=list, description="Alarm rules ([[plant.alarms]], docs/alarms.md)."
    )
    monitors: list[Any] = Field(
        default_factory=list,
        description="Anomaly monitors ([[plant.monitors]], docs/condition.md).",
    )
    command_secret: str | None = Field(
        None,
        min_length=16,
        repr=False,
        description="Secret shared with edge agents ([commands] secret) to sign machine writes.",
    )
    webhooks: list[WebhookTarget] = Field(
        default_factory=list, description="Where alarm events are posted ([[plant.webhooks]])."
    )
    smtp: SmtpConfig | None = Field(None, description="Mail relay for reports and Andon calls.")
    reports: ReportsConfig = Field(
        default_factory=ReportsConfig, description="Shift reports at each shift's end."
    )
    andon: AndonConfig = Field(default_factory=AndonConfig, description="Andon groups.")
    rul: list[RulClassConfig] = Field(
        default_factory=list,
        description="Remaining useful life per asset class ([[plant.rul]], docs/condition.md).",
    )

    @field_validator("alarms", mode="before")
    @classmethod
    def _check_alarms(cls, value: object) -> object:
        """Validate alarm rules with `load_rules`, so each problem names the rule id and field."""
        try:
            return load_rules(value)  # type: ignore[arg-type]
        except AlarmRuleError as exc:
            raise ValueError("; ".join(exc.problems)) from exc

    @field_validator("monitors", mode="before")
    @classmethod
    def _check_monitors(cls, value: object) -> object:
        """Validate monitors with `load_monitors`, so each problem names the monitor and field."""
        from indunet.condition.monitors import MonitorError, load_monitors  # import cycle

        try:
            return load_monitors(value)  # type: ignore[arg-type]
        except MonitorError as exc:
            raise ValueError("; ".join(exc.problems)) from exc

    @model_validator(mode="after")
    def _check_machines(self) -> PlantConfig:
        seen: set[str] = set()
        for i, m in enumerate(self.machines):
            if m.id in seen:
                raise ValueError(f"machines[{i}] ({m.id}): the machine id is listed twice")
            seen.add(m.id)
            if self.sites and m.site not in self.sites:
                raise ValueError(
                    f"machines[{i}] ({m.id}): site {m.site!r} has no [plant.sites.{m.site}] table"
                )
            for state, code in m.state_reasons.items():
                if code not in self.reasons:
                    raise ValueError(
                        f"machines[{i}] ({m.id}): state_reasons[{state!r}] = {code!r} is not a "
                        "code of the reason tree"
                    )
            if m.state_reasons and m.state_tag is None:
                raise ValueError(f"machines[{i}] ({m.id}): state_reasons needs a state_tag")
        classes: dict[str, str] = {}
        for i, r in enumerate(self.rul):
            if r.asset_class in classes.values():
                raise ValueError(f"rul[{i}] ({r.asset_class}): the asset class is listed twice")
            for machine in r.machines:
                if machine not in seen:
                    raise ValueError(
                        f"rul[{i}] ({r.asset_class}): machine {machine!r} is not in "
                        "[[plant.machines]]"
                    )
                if machine in classes:
                    raise ValueError(
                        f"rul[{i}] ({r.asset_class}): machine {machine!r} is already in asset "
                        f"class {classes[machine]!r}"
                    )
                classes[machine] = r.asset_class
        return self

    def machine(self, machine_id: str) -> MachineConfig:
        """Return a machine's config, or raise `DataError` naming the unknown machine."""
        for m in self.machines:
            if m.id == machine_id:
                return m
        raise DataError(f"machine {machine_id!r} is not in the plant configuration")

    def site(self, name: str) -> SiteConfig:
        """Return a site's config; an unconfigured site gets UTC and no shifts."""
        return self.sites.get(name, SiteConfig())

    def line_machines(self, line: str) -> list[MachineConfig]:
        """Return the machines of a line (site/area/line)."""
        return [m for m in self.machines if m.line == line]


def _segment(value: str, level: str) -> str:
    try:
        return check_segment(value, level)
    except DataError as exc:
        raise ValueError(str(exc)) from exc


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _span_min(start: time, end: time) -> int:
    span = (_minutes(end) - _minutes(start)) % (24 * 60)
    return span or 24 * 60


def _weekday_time(minute_of_week: int) -> str:
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    m = minute_of_week % WEEK_MIN
    return f"{days[m // 1440]} {m % 1440 // 60:02d}:{m % 60:02d}"
