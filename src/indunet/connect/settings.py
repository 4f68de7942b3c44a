"""Settings of the Sparkplug B host (``[sparkplug]`` in ``indunet.toml``, ``Settings.sparkplug``).

```toml
[sparkplug]
host_id = "indunet-a"          # spBv1.0/STATE/indunet-a; one per host application
clean_session = false          # true: Sparkplug 3.0's clean session (see docs/mqtt.md)

[[sparkplug.routes]]           # group (or one edge node of it) -> enterprise and site
group = "plant1"
enterprise = "acme"
site = "shanghai"
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indunet.errors import DataError

__all__ = ["IngestSettings", "SparkplugRouteSettings", "SparkplugSettings"]


class SparkplugRouteSettings(BaseModel):
    """Where one group's (or one of its edge nodes') data lands."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(description="Sparkplug group id.")
    node: str | None = Field(None, description="One edge node of the group; empty: all of them.")
    enterprise: str | None = Field(None, description="Enterprise (tenant); empty: the default.")
    site: str | None = Field(None, description="Site; empty: the group id.")

    @model_validator(mode="after")
    def _check(self) -> SparkplugRouteSettings:
        from indunet.connect.codec.sparkplug import SparkplugRoute

        try:
            SparkplugRoute(self.group, self.node, self.enterprise, self.site)
        except DataError as exc:
            raise ValueError(str(exc)) from exc
        return self


class SparkplugSettings(BaseModel):
    """Host identity, session kind and the group/edge node -> enterprise/site mapping."""

    model_config = ConfigDict(extra="forbid")

    host_id: str = Field(
        "indunet", description="Sparkplug host id: the STATE topic is spBv1.0/STATE/{host_id}."
    )
    clean_session: bool = Field(
        False,
        description="Connect with a clean session as Sparkplug 3.0 asks (the JSON ingest then "
        "loses what the broker held while indunet was away).",
    )
    enterprise: str | None = Field(
        None, description="Enterprise of Sparkplug data without a route; empty: `enterprise`."
    )
    device_machine: str = Field(
        "{site}/{node}/devices/{device}", description="Machine path of a device."
    )
    node_machine: str = Field("{site}/{node}/node/{node}", description="Machine path of a node.")
    routes: list[SparkplugRouteSettings] = Field(default_factory=list)

    @field_validator("host_id")
    @classmethod
    def _check_host_id(cls, value: str) -> str:
        from indunet.connect.mqtt import check_host_id

        try:
            return check_host_id(value)
        except Exception as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("device_machine", "node_machine")
    @classmethod
    def _check_template(cls, value: str) -> str:
        try:
            path = value.format(site="s", group="g", node="n", device="d")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{value!r} may only use {{site}}, {{group}}, {{node}} and {{device}}"
            ) from exc
        if len(path.split("/")) != 4:
            raise ValueError(f"{value!r} must give site/area/line/machine (four levels)")
        return value

    def mapping(self, default_enterprise: str):  # -> SparkplugMapping (imported lazily)
        """Return the codec's mapping for these settings."""
        from indunet.connect.codec.sparkplug import SparkplugMapping, SparkplugRoute

        return SparkplugMapping(
            enterprise=self.enterprise or default_enterprise,
            device_machine=self.device_machine,
            node_machine=self.node_machine,
            routes=tuple(
                SparkplugRoute(r.group, r.node, r.enterprise, r.site) for r in self.routes
            ),
        )


class IngestSettings(BaseModel):
    """MQTT ingest of the JSON tree (``[ingest]``): how many decode worker processes."""

    model_config = ConfigDict(extra="forbid")

    decode_workers: int = Field(
        0,
        ge=0,
        le=32,
        description="Decode worker processes on a shared subscription of indunet/v1/# feeding "
        "the one writer (docs/mqtt.md); 0: decode in the serve process.",
    )
