"""Settings: one pydantic-settings object read from ``indunet.toml`` and ``INDUNET_*`` variables.

Nothing builds `Settings` at import time; the CLI and the app call `load_settings()` once and
pass the object down.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from indunet.auth.settings import AuthSettings
from indunet.connect.settings import IngestSettings, SparkplugSettings
from indunet.errors import ConfigError
from indunet.federation.settings import FederationSettings, UplinkSettings
from indunet.plant.config import PlantConfig
from indunet.region.settings import RegionSettings
from indunet.store.compaction import CompactionSettings

__all__ = ["RetentionRule", "Settings", "load_settings"]


class RetentionRule(BaseModel):
    """Keep raw points under ``prefix`` for ``raw_days`` and hourly roll-ups for ``rollup_days``."""

    prefix: str = ""
    raw_days: int = Field(gt=0)
    rollup_days: int | None = Field(default=None, gt=0)


class Settings(BaseSettings):
    """All of indunet's settings; CLI options override environment, which overrides the file."""

    model_config = SettingsConfigDict(
        env_prefix="INDUNET_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Field(Path("indunet-data"), description="Where the embedded historian lives.")
    db: str | None = Field(
        None,
        description="Historian URL: empty for the embedded DuckDB file, or postgresql://…",
    )
    pg_schema: str = Field("indunet", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pg_partition_days: int = Field(7, gt=0, le=366)
    enterprise: str = Field("demo", description="Default enterprise (tenant) for CLI and API.")
    currency: str = Field(
        "CNY", min_length=1, max_length=8, description="Currency the pages show costs in."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    ingest_max_bytes: int = Field(32 * 1024 * 1024, gt=0)
    http_max_body_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="Body limit of every HTTP route that is not a bulk upload (login included).",
    )
    max_future_s: int = Field(
        86_400, ge=0, description="Reject timestamps further than this in the future."
    )
    deadletter_payload_bytes: int = Field(4096, gt=0)
    retention: list[RetentionRule] = Field(default_factory=list)
    http_inline_points: int = Field(
        2_000,
        ge=0,
        description="HTTP ingest posts up to this many points are stored on the event loop "
        "(ahead of queued reads) when no other writer holds the historian; 0: always a thread.",
    )
    http_read_threads: int = Field(
        8,
        gt=0,
        description="Worker threads for reads (plain routes, pages, reports); writes and key "
        "checks have their own, so a read load never holds them up.",
    )
    http_read_slots: int = Field(
        4,
        ge=0,
        description="Reads (GET, HEAD) worked on at once; more wait, so writes never queue "
        "behind a crowd of readers on the event loop. Raise it where reads wait on a database "
        "server (PostgreSQL) rather than on this process's CPU. 0: no limit.",
    )
    http_fast_reads_per_turn: int = Field(
        8,
        ge=0,
        description="While a write is in progress, fast reads (GET /api/v1/latest from memory) "
        "answered per turn of the event loop; more wait for the next turn, so the write's steps "
        "come round quickly. 0: no limit.",
    )
    compaction: CompactionSettings = Field(
        default_factory=CompactionSettings,
        description="Background compaction of closed hours in `serve` ([compaction]).",
    )
    region: RegionSettings = Field(
        default_factory=RegionSettings, description="Resumption monitor rule ([region])."
    )
    plant: PlantConfig = Field(
        default_factory=PlantConfig, description="Machines, sites and stop reasons ([plant])."
    )
    auth: AuthSettings = Field(
        default_factory=AuthSettings, description="Sessions, login rate limits ([auth])."
    )
    uplink: UplinkSettings = Field(
        default_factory=UplinkSettings,
        description="Send this plant's aggregates to a regional instance ([uplink]).",
    )
    federation: FederationSettings = Field(
        default_factory=FederationSettings,
        description="Consume plants' uplinks as a regional instance ([federation]).",
    )
    ingest: IngestSettings = Field(
        default_factory=IngestSettings,
        description="MQTT JSON ingest: decode worker processes ([ingest]).",
    )
    sparkplug: SparkplugSettings = Field(
        default_factory=SparkplugSettings,
        description="Sparkplug B host id, session and group -> enterprise/site ([sparkplug]).",
    )

    @field_validator("db")
    @classmethod
    def _check_db(cls, value: str | None) -> str | None:
        if value in (None, "", "duckdb"):
            return None
        if not value.startswith(("postgresql://", "postgres://", "duckdb://")):
            raise ValueError("db must be empty (embedded DuckDB), duckdb://PATH or postgresql://…")
        return value

    @property
    def duckdb_path(self) -> Path:
        """Return the DuckDB file of this data dir (or of a ``duckdb://`` URL)."""
        if self.db and self.db.startswith("duckdb://"):
            return Path(self.db.removeprefix("duckdb://"))
        return self.data_dir / "indunet.duckdb"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, then environment, then the TOML file."""
        toml_file = os.environ.get("INDUNET_CONFIG", "indunet.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; ``None`` overrides are ignored so CLI defaults do not mask files."""
    given = {k: v for k, v in overrides.items() if v is not None}
    config_file = os.environ.get("INDUNET_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"config file {config_file} (INDUNET_CONFIG) does not exist")
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(
            f"setting {where}: {first['msg']} (check indunet.toml, INDUNET_* variables "
            "and command options)",
            detail=str(exc),
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        toml_file = config_file or "indunet.toml"
        raise ConfigError(
            f"config file {toml_file} is not valid TOML: {exc}", detail=repr(exc)
        ) from exc
    except Exception as exc:  # e.g. an INDUNET_* variable that is not valid JSON
        raise ConfigError(f"cannot read the settings: {exc}", detail=repr(exc)) from exc
