"""Settings of the resumption monitor (``[region]`` in ``indunet.toml``, ``Settings.region``)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["RegionSettings"]


class RegionSettings(BaseModel):
    """The resumption rule (θ, baseline period) and the limits of reading import."""

    model_config = ConfigDict(extra="forbid")

    theta: float = Field(
        0.3, gt=0, le=5, description="Resumed when day kWh > theta × baseline daily kWh."
    )
    theta_by_industry: dict[str, float] = Field(
        default_factory=dict,
        description="θ per GB/T 4754 section (C) or division (C31 or 31); the most specific wins.",
    )
    baseline_start: date = Field(date(2019, 12, 1), description="First day of the normal period.")
    baseline_end: date = Field(date(2019, 12, 31), description="Last day (inclusive).")
    baseline_min_days: int = Field(
        7, ge=1, description="Days with readings needed in the normal period for a baseline."
    )
    max_daily_kwh: float = Field(
        5e7, gt=0, description="Daily kWh above this are absurd and kept aside (50 GWh default)."
    )
    timezone: str = Field("Asia/Shanghai", description="Zone of day boundaries for meter tags.")

    @field_validator("theta_by_industry")
    @classmethod
    def _check_thetas(cls, value: dict[str, float]) -> dict[str, float]:
        from indunet.region.registry import industry_key

        out: dict[str, float] = {}
        for key, theta in value.items():
            if not 0 < theta <= 5:
                raise ValueError(f"theta_by_industry[{key!r}] = {theta} must be in (0, 5]")
            out[industry_key(key)] = float(theta)
        return out

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _check_period(self) -> RegionSettings:
        if self.baseline_end < self.baseline_start:
            raise ValueError(
                f"baseline_end {self.baseline_end} is before baseline_start {self.baseline_start}"
            )
        return self
