"""Configuration of remaining-useful-life estimates: ``[[plant.rul]]`` in indunet.toml."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indunet.errors import DataError
from indunet.plant.alarms import Priority
from indunet.uns import MachinePath, check_segment

__all__ = ["RUL_TAG", "RulClassConfig", "RunRange"]

#: derived tag of a machine's RUL estimate: derived/rul/<asset class>/<machine id>
RUL_TAG = "derived/rul/"


class RunRange(BaseModel):
    """A run to failure kept in the historian: a machine's tags from ``start`` until it failed
    at ``end`` (both with a time zone, e.g. ``2026-03-01T06:00:00Z``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machine: str = Field(description="Machine id whose tags hold the run (may be retired).")
    start: datetime = Field(description="When the asset was new or renewed.")
    end: datetime = Field(description="When it failed: the run's last cycle.")

    @field_validator("machine")
    @classmethod
    def _check_machine(cls, value: str) -> str:
        try:
            return str(MachinePath.parse(value))
        except DataError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-03-01T06:00:00Z or +08:00")
        return value

    @model_validator(mode="after")
    def _order(self) -> RunRange:
        if self.end <= self.start:
            raise ValueError(f"run of {self.machine}: end must be after start")
        return self

    @property
    def start_ms(self) -> int:
        """Return the start in epoch ms."""
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        """Return the end (failure) in epoch ms."""
        return int(self.end.timestamp() * 1000)


class RulClassConfig(BaseModel):
    """One asset class: similar machines sharing one degradation model.

    The model is fitted on run-to-failure histories: CSV files (``runs_dir``: one file per run,
    a ``cycle`` column and one column per sensor, the last cycle being the failure) and/or
    ranges of the historian (``runs``: a machine's tags from new to failure). Each
    machine's sensor tags (``<machine id>/<sensor>``) are turned into cycles, either fixed
    periods (``cycle_s``) or the spans of a cycle counter tag (``cycle_tag``), from the first
    reading on: the history must start when the asset was new or renewed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    asset_class: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name of the asset class, e.g. 'spindle' or 'pump' (letters, digits, _ . -).",
    )
    machines: list[str] = Field(min_length=1, description="Machine ids of this class.")
    sensors: list[str] = Field(min_length=1, description="Sensor tags, relative to the machine.")
    cycle_s: float | None = Field(None, gt=0, description="One cycle = a fixed period (s).")
    cycle_tag: str | None = Field(
        None, description="One cycle = one value of this counter tag (run or flight number)."
    )
    runs_dir: Path | None = Field(
        None, description="Folder of run-to-failure CSV files (one file per run)."
    )
    runs: list[RunRange] = Field(
        default_factory=list, description="Runs to failure kept in the historian."
    )
    horizon: float = Field(gt=0, description="Alarm when the estimated RUL falls below (cycles).")
    priority: Priority = Priority.HIGH
    cap: int = Field(125, ge=10, description="RUL above this reads 'healthy' (cycles).")
    window: int = Field(30, ge=2, le=500, description="Trailing cycles the features look at.")
    min_cycles: int = Field(10, ge=2, description="Fewer cycles: 'insufficient history'.")
    trees: int = Field(400, ge=10, le=5000, description="Boosting rounds of the model.")
    every_s: float = Field(300.0, ge=1, description="How often the estimates are refreshed.")

    @field_validator("machines")
    @classmethod
    def _check_machines(cls, value: list[str]) -> list[str]:
        out = []
        for m in value:
            try:
                out.append(str(MachinePath.parse(m)))
            except DataError as exc:
                raise ValueError(str(exc)) from exc
        if len(set(out)) != len(out):
            raise ValueError("a machine is listed twice")
        return out

    @field_validator("sensors")
    @classmethod
    def _check_sensors(cls, value: list[str]) -> list[str]:
        out = [_segment(s, "sensor") for s in value]
        if len(set(out)) != len(out):
            raise ValueError("a sensor is listed twice")
        return out

    @field_validator("cycle_tag")
    @classmethod
    def _check_cycle_tag(cls, value: str | None) -> str | None:
        return None if value is None else _segment(value, "cycle_tag")

    @model_validator(mode="after")
    def _one_cycle(self) -> RulClassConfig:
        if (self.cycle_s is None) == (self.cycle_tag is None):
            raise ValueError("give exactly one of cycle_s (fixed period) or cycle_tag (counter)")
        if self.runs_dir is None and not self.runs:
            raise ValueError("give the run-to-failure histories: runs_dir (CSV files) or runs")
        if self.horizon >= self.cap:
            raise ValueError(f"horizon ({self.horizon:g}) must be below cap ({self.cap})")
        return self

    def tag(self, machine: str) -> str:
        """Return the derived tag of a machine's RUL estimate (what the alarm rule watches)."""
        return f"{RUL_TAG}{self.asset_class}/{machine}"

    def rule_id(self) -> str:
        """Return the id of the class's built-in RUL alarm rule."""
        return f"rul:{self.asset_class}"


def _segment(value: str, level: str) -> str:
    try:
        return check_segment(value, level)
    except DataError as exc:
        raise ValueError(str(exc)) from exc
