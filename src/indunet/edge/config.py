"""The edge agent's configuration (``edge.toml``): broker, publisher, buffer, devices and tags.

Loading is per device: a device whose section is wrong is reported with its name, tag and field,
and the other devices still run. Only a file that is not TOML at all, or a wrong broker,
publisher or buffer section, stops the agent.
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from indunet.errors import ConfigError, DataError
from indunet.uns import MachinePath, check_segment

__all__ = [
    "BrokerConfig",
    "BufferConfig",
    "CommandConfig",
    "DeviceProblem",
    "EdgeConfig",
    "ModbusDevice",
    "ModbusTag",
    "OpcuaDevice",
    "OpcuaTag",
    "PublisherConfig",
    "load_edge_config",
    "parse_edge_config",
]

ModbusType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "bool"
]
RegisterKind = Literal["holding", "input", "coil", "discrete"]
Order = Literal["big", "little"]
#: how many 16-bit registers each type needs (strings give their own length)
REGISTER_WIDTH = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
    "bool": 1,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Strict):
    """Where readings go: an MQTT broker and the enterprise (tenant) they belong to."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = "indunet-edge"
    enterprise: str = "demo"
    keepalive_s: int = Field(30, gt=0, le=65535)
    reconnect_s: tuple[float, float] = (0.5, 30.0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from indunet.connect.mqtt import parse_mqtt_url

        try:
            parse_mqtt_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("enterprise")
    @classmethod
    def _enterprise(cls, value: str) -> str:
        return check_segment(value, "enterprise")


class PublisherConfig(_Strict):
    """How readings are published: JSON on the unified namespace or as a Sparkplug B edge node."""

    mode: Literal["json", "sparkplug"] = "json"
    group: str = "indunet"
    node: str = "edge"
    max_inflight: int = Field(200, gt=0, le=65535)
    #: seconds between the agent's own health tags per device
    health_s: float = Field(10.0, gt=0)
    #: publish a tag only when it changed by more than its deadband (default: on for sparkplug)
    report_by_exception: bool | None = None
    #: after a lost connection, send again what the broker acknowledged in the last seconds
    #: before it: a broker killed before it saved them would otherwise lose them (docs/mqtt.md)
    resend_s: float = Field(2.0, ge=0, le=60)

    @property
    def rbe(self) -> bool:
        """Return whether readings are reported by exception."""
        if self.report_by_exception is None:
            return self.mode == "sparkplug"
        return self.report_by_exception

    @field_validator("group", "node")
    @classmethod
    def _segment(cls, value: str) -> str:
        return check_segment(value, "Sparkplug id")


class BufferConfig(_Strict):
    """The on-disk store-and-forward queue (SQLite in WAL mode)."""

    path: Path = Path("edge-buffer.sqlite")
    max_mb: float = Field(256.0, gt=0)


class CommandConfig(_Strict):
    """Who may write to machines: a shared HMAC secret for signed role claims, and an allow-list."""

    #: HMAC-SHA256 key the platform signs command claims with; empty disables MQTT writes
    secret: str = ""
    #: user -> machine paths (``*`` for all) the user may operate, checked after the signature
    operators: dict[str, list[str]] = Field(default_factory=dict)
    #: accept Sparkplug NCMD/DCMD writes (they carry no user; the broker's ACL is the authority)
    sparkplug_writes: bool = False
    max_age_s: float = Field(60.0, gt=0)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if value and len(value) < 16:
            raise ValueError("the command secret must have at least 16 characters")
        if value.lower() in {"changeme", "secret", "change-me-please!"}:
            raise ValueError("the command secret is a placeholder; set a random one")
        return value


class _Tag(_Strict):
    name: str
    unit: str = Field("", max_length=32)
    description: str = Field("", max_length=1000)
    deadband: float = Field(0.0, ge=0)
    writable: bool = False
    min: float | None = None
    max: float | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_segment(value, "tag")

    @model_validator(mode="after")
    def _limits(self) -> _Tag:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


warnings.filterwarnings("ignore", 'Field name "register"', UserWarning)  # BaseModel.register


class ModbusTag(_Tag):
    """One value read from a Modbus device."""

    register: RegisterKind = "holding"
    address: int = Field(ge=0, le=65535)
    type: ModbusType = "uint16"
    length: int = Field(0, ge=0, le=125)  # registers, for strings
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="after")
    def _shape(self) -> ModbusTag:
        if self.type == "string" and self.length == 0:
            raise ValueError("a string tag needs length (registers)")
        if self.register in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"{self.register} registers hold bits; use type = 'bool'")
        if self.address + self.width > 65536:
            raise ValueError(f"address {self.address} + {self.width} registers passes 65535")
        if self.writable and self.register in ("input", "discrete"):
            raise ValueError(f"{self.register} registers are read-only; cannot be writable")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self

    @property
    def width(self) -> int:
        """Return how many registers (or bits) the tag occupies."""
        if self.type == "string":
            return self.length
        if self.register in ("coil", "discrete"):
            return 1
        return REGISTER_WIDTH[self.type]


class OpcuaTag(_Tag):
    """One OPC UA variable, by node id (``ns=2;s=Press.Speed``) or browse path."""

    node: str = ""
    path: str = ""  # e.g. "0:Objects/2:Press/2:Speed"
    type: Literal["number", "boolean", "string"] = "number"
    # subscriptions: how often the server samples this item (default: the device's sampling_ms)
    sampling_ms: int | None = Field(None, ge=0)
    # `deadband` is applied by the server: absolute (in the tag's unit) or percent of its
    # EURange (the server must know the range)
    deadband_type: Literal["absolute", "percent"] = "absolute"
    # samples the server keeps between two publishes (default: enough for every sample)
    queue_size: int | None = Field(None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _where(self) -> OpcuaTag:
        if bool(self.node) == bool(self.path):
            raise ValueError("give exactly one of node (node id) or path (browse path)")
        if self.node:
            from asyncua import ua

            try:
                ua.NodeId.from_string(self.node)
            except Exception as exc:  # asyncua raises several types for bad ids
                raise ValueError(f"node id {self.node!r} is not valid: {exc}") from None
        return self


class _Device(_Strict):
    name: str
    machine: str
    poll_ms: int = Field(1000, ge=10, le=3_600_000)
    timeout_s: float = Field(2.0, gt=0, le=120)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_segment(value, "device")

    @field_validator("machine")
    @classmethod
    def _machine(cls, value: str) -> str:
        try:
            return str(MachinePath.parse(value))
        except DataError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _unique(self) -> _Device:
        seen: set[str] = set()
        for tag in self.tags:  # type: ignore[attr-defined]
            if tag.name in seen:
                raise ValueError(f"tag {tag.name!r} is defined twice")
            seen.add(tag.name)
        return self


class ModbusDevice(_Device):
    """A Modbus TCP device (PLC or meter): address, unit id, tags or a meter profile."""

    protocol: Literal["modbus"] = "modbus"
    host: str
    port: int = Field(502, gt=0, lt=65536)
    unit: int = Field(1, ge=0, le=255)
    profile: str = ""
    max_gap: int = Field(8, ge=0, le=124)
    max_block: int = Field(125, ge=1, le=125)
    tags: list[ModbusTag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> ModbusDevice:
        if not self.tags:
            raise ValueError("the device has no tags (give tags or a meter profile)")
        return self


class OpcuaDevice(_Device):
    """An OPC UA server (PLC): endpoint, security, login and tags."""

    protocol: Literal["opcua"] = "opcua"
    endpoint: str
    security: Literal["None", "SignAndEncrypt", "Sign"] = "None"
    policy: Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = (
        "Basic256Sha256"
    )
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = None
    username: str = ""
    password: str = ""
    mode: Literal["subscribe", "poll"] = "subscribe"
    sampling_ms: int = Field(1000, ge=0)
    # subscriptions: how often the server sends what changed (default: sampling_ms, ≥ 50)
    publish_ms: int | None = Field(None, ge=10)
    # "every": every change with the server's SourceTimestamp; "newest": only each item's
    # newest value per poll_ms cycle, stamped with the cycle time (less traffic, fewer points)
    changes: Literal["every", "newest"] = "every"
    tags: list[OpcuaTag] = Field(default_factory=list)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError("endpoint must start with opc.tcp://")
        return value

    @model_validator(mode="after")
    def _security(self) -> OpcuaDevice:
        if not self.tags:
            raise ValueError("the device has no tags")
        if self.security != "None" and not (self.certificate and self.private_key):
            raise ValueError(f"security {self.security} needs certificate and private_key")
        for name in ("certificate", "private_key", "server_certificate"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} file {path} does not exist")
        return self


@dataclass(frozen=True, slots=True)
class DeviceProblem:
    """A device section that cannot run, with a message naming device, tag and field."""

    device: str
    message: str


@dataclass(slots=True)
class EdgeConfig:
    """The usable part of ``edge.toml`` plus the problems of the devices that were refused."""

    broker: BrokerConfig
    publisher: PublisherConfig
    buffer: BufferConfig
    commands: CommandConfig
    devices: list[ModbusDevice | OpcuaDevice] = field(default_factory=list)
    problems: list[DeviceProblem] = field(default_factory=list)

    def device(self, name: str) -> ModbusDevice | OpcuaDevice:
        """Return the device called ``name``."""
        for dev in self.devices:
            if dev.name == name:
                return dev
        raise ConfigError(f"no device called {name!r} in the edge config")


def _where(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """Turn a pydantic error location inside a device into "tag 'x' field 'y'"."""
    parts: list[str] = []
    i = 0
    while i < len(loc):
        item = loc[i]
        if item == "tags" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            tags = raw.get("tags") or []
            idx = loc[i + 1]
            name = (
                tags[idx].get("name") if idx < len(tags) and isinstance(tags[idx], dict) else None
            )
            parts.append(f"tag {name!r}" if name else f"tag #{idx + 1}")
            i += 2
            continue
        if isinstance(item, str) and not item.startswith(("function-", "union[", "tagged-union")):
            parts.append(f"field {item!r}")
        i += 1
    return " ".join(parts)


def _explain(exc: ValidationError, raw: dict[str, Any]) -> str:
    msgs = []
    for err in exc.errors()[:5]:
        where = _where(tuple(err["loc"]), raw)
        msg = err["msg"].removeprefix("Value error, ")
        msgs.append(f"{where}: {msg}" if where else msg)
    return "; ".join(msgs)


def _device(raw: Any, index: int, base_dir: Path) -> ModbusDevice | OpcuaDevice:
    from indunet.edge.profiles import apply_profile

    if not isinstance(raw, dict):
        raise DataError(f"device #{index + 1} must be a table ([[devices]]), got {raw!r}")
    raw = dict(raw)
    raw.setdefault("name", str(raw.get("machine", "")).rsplit("/", 1)[-1] or f"device{index + 1}")
    protocol = raw.get("protocol") or ("opcua" if "endpoint" in raw else "modbus")
    raw["protocol"] = protocol
    if protocol == "modbus" and raw.get("profile"):
        raw = apply_profile(raw)
    for key in ("certificate", "private_key", "server_certificate"):
        if isinstance(raw.get(key), str) and not Path(raw[key]).is_absolute():
            raw[key] = str(base_dir / raw[key])
    model = {"modbus": ModbusDevice, "opcua": OpcuaDevice}.get(protocol)
    if model is None:
        raise DataError(f"field 'protocol': {protocol!r} is not modbus or opcua")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DataError(_explain(exc, raw), detail=str(exc)) from None


def _section(model: type[BaseModel], raw: Any, name: str) -> Any:
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(f"edge config [{name}] {_explain(exc, {})}", detail=str(exc)) from None
    except ConfigError as exc:
        raise ConfigError(f"edge config [{name}]: {exc}") from None


def parse_edge_config(doc: dict[str, Any], base_dir: Path = Path()) -> EdgeConfig:
    """Validate a parsed ``edge.toml``; bad devices become `DeviceProblem`s, not errors."""
    unknown = set(doc) - {"broker", "publisher", "buffer", "commands", "devices"}
    if unknown:
        raise ConfigError(f"edge config has unknown section(s) {sorted(unknown)}")
    buffer_raw = dict(doc.get("buffer") or {})
    if "path" in buffer_raw and not Path(buffer_raw["path"]).is_absolute():
        buffer_raw["path"] = str(base_dir / buffer_raw["path"])
    buffer_raw.setdefault("path", str(base_dir / "edge-buffer.sqlite"))
    cfg = EdgeConfig(
        broker=_section(BrokerConfig, doc.get("broker"), "broker"),
        publisher=_section(PublisherConfig, doc.get("publisher"), "publisher"),
        buffer=_section(BufferConfig, buffer_raw, "buffer"),
        commands=_section(CommandConfig, doc.get("commands"), "commands"),
    )
    devices = doc.get("devices") or []
    if not isinstance(devices, list):
        raise ConfigError("edge config: devices must be an array of tables ([[devices]])")
    names: set[str] = set()
    for i, raw in enumerate(devices):
        label = raw.get("name") or raw.get("machine") if isinstance(raw, dict) else None
        label = str(label or f"#{i + 1}")
        try:
            dev = _device(raw, i, base_dir)
        except (DataError, ConfigError) as exc:
            cfg.problems.append(DeviceProblem(label, f"device {label!r} {exc}"))
            continue
        if dev.name in names:
            cfg.problems.append(
                DeviceProblem(
                    dev.name, f"device {dev.name!r} is defined twice; the second is ignored"
                )
            )
            continue
        names.add(dev.name)
        cfg.devices.append(dev)
    return cfg


def load_edge_config(path: Path) -> EdgeConfig:
    """Read and validate ``edge.toml``; raise `ConfigError` naming the file when it is unusable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"edge config {path} cannot be read: {exc.strerror}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"edge config {path} is not valid TOML: {exc}") from exc
    try:
        return parse_edge_config(doc, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", detail=exc.detail) from exc
