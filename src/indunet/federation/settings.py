"""Settings of the plant's uplink (``[uplink]``) and of the regional consumer (``[federation]``).

Both are parts of `indunet.config.Settings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from indunet.errors import ConfigError

__all__ = ["FederationSettings", "UplinkSettings"]


def _mqtt_url(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    from indunet.connect.mqtt import parse_mqtt_url

    try:
        parse_mqtt_url(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


def _segment(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    from indunet.errors import DataError
    from indunet.uns import check_segment

    try:
        if check_segment(value, what) != value:
            raise ValueError(f"{what} {value!r} has leading or trailing blanks")
    except DataError as exc:
        raise ValueError(str(exc)) from None
    return value


class UplinkSettings(BaseModel):
    """Where and how often a plant sends its aggregates to a regional instance."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="Regional broker, mqtt[s]://user:pass@host:port; empty = no uplink."
    )
    enterprise: str | None = Field(
        None, description="The enterprise's id in the regional registry (default: enterprise)."
    )
    client_id: str | None = Field(None, description="MQTT client id (default indunet-uplink-E).")
    interval_s: float = Field(60.0, gt=0, le=86_400, description="Seconds between rounds.")
    days_back: int = Field(3, ge=1, le=31, description="Ended days recomputed in full rounds.")
    full_every_s: float = Field(
        900.0, ge=0, description="Seconds between full rounds; the others recompute one day."
    )
    buffer_path: Path | None = Field(None, description="Default: uplink.sqlite in the data dir.")
    buffer_mb: int = Field(64, ge=1, le=65_536, description="Store-and-forward file size cap.")
    max_inflight: int = Field(100, gt=0, le=65_535)
    reconnect_s: tuple[float, float] = (0.5, 30.0)
    items: list[str] = Field(
        default_factory=list,
        max_length=60,
        description="Declared items whose stock and days of cover go up (inventory kind).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _mqtt_url(value)

    @field_validator("enterprise")
    @classmethod
    def _enterprise(cls, value: str | None) -> str | None:
        return _segment(value, "enterprise")


class FederationSettings(BaseModel):
    """The regional instance: which broker its plants' uplinks arrive on, and the rule for them."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="Broker the plants uplink to; empty = this instance consumes none."
    )
    client_id: str = Field("indunet-region-uplinks", description="Persistent session's id.")
    shared_group: str | None = Field(
        None, description="Share indunet/uplink/v1/# among several regional workers."
    )
    min_coverage: float = Field(
        0.9, ge=0, le=1, description="A site-day's meter coverage needed to become a reading."
    )
    stale_s: float = Field(
        300.0, gt=0, description="A site whose newest states are older is shown as unknown."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _mqtt_url(value)

    @field_validator("shared_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return _segment(value, "shared group")
