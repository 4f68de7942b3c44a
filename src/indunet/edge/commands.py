"""Commands back to machines: authorised, validated, written, read back and audited.

A JSON command arrives on ``indunet/cmd/v1/{enterprise}/{site}/{area}/{line}/{machine}``::

    {"id": "c-17", "tag": "speed_setpoint", "value": 42.0, "user": "alice",
     "role": "operator", "exp": 1700000060000, "sig": "<hex HMAC-SHA256>"}

The role system of the platform comes later, so the edge accepts a *signed role claim*: the
platform signs the fields above (``sign_command``) with a secret shared with the edge
(``[commands] secret``). The edge checks the signature, the expiry, that the role is operator or
admin, that the user is on the machine's allow-list (``[commands] operators``) when one is
configured, and that the command id was not used before. Without a secret, JSON writes are off.
Sparkplug NCMD/DCMD writes carry no user; they are accepted only with ``sparkplug_writes = true``
(the broker's ACL is then the authority) and audited as user ``sparkplug``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import orjson

from indunet.edge.buffer import AuditRecord, EdgeBuffer, now_ms
from indunet.edge.config import CommandConfig, EdgeConfig, ModbusDevice, OpcuaDevice
from indunet.edge.publish import audit_topic
from indunet.edge.reading import TagValue
from indunet.errors import DataError, IndunetError

__all__ = ["CommandDesk", "CommandRejected", "check_command", "sign_command"]

log = logging.getLogger(__name__)
_SIGNED = ("id", "machine", "tag", "value", "user", "role", "exp")
_ROLES = {"operator", "admin"}


class CommandRejected(DataError):
    """A command that is not allowed or not valid; it is audited and not written."""


def _canonical(claim: dict[str, Any]) -> bytes:
    return orjson.dumps({k: claim.get(k) for k in _SIGNED}, option=orjson.OPT_SORT_KEYS)


def sign_command(secret: str, claim: dict[str, Any]) -> dict[str, Any]:
    """Return the claim with its ``sig`` (what the platform does before publishing)."""
    sig = hmac.new(secret.encode(), _canonical(claim), hashlib.sha256).hexdigest()
    return {**claim, "sig": sig}


def _coerce(tag: Any, device: ModbusDevice | OpcuaDevice, value: Any) -> TagValue:
    kind = getattr(tag, "type", "number")
    if isinstance(device, ModbusDevice):
        kind = {"bool": "boolean", "string": "string"}.get(tag.type, "number")
    if kind == "boolean":
        if not isinstance(value, bool):
            raise CommandRejected(f"tag {tag.name!r} takes true or false, got {value!r}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise CommandRejected(f"tag {tag.name!r} takes text, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandRejected(f"tag {tag.name!r} takes a number, got {value!r}")
    if not math.isfinite(value):
        raise CommandRejected(f"tag {tag.name!r} takes a finite number, got {value!r}")
    if tag.min is not None and value < tag.min:
        raise CommandRejected(f"value {value} of tag {tag.name!r} is below its minimum {tag.min}")
    if tag.max is not None and value > tag.max:
        raise CommandRejected(f"value {value} of tag {tag.name!r} is above its maximum {tag.max}")
    return value


def check_command(
    claim: dict[str, Any],
    device: ModbusDevice | OpcuaDevice,
    rules: CommandConfig,
    now: int,
    *,
    signed: bool = True,
) -> tuple[str, TagValue]:
    """Return (tag, value) of an allowed, valid command or raise `CommandRejected` saying why."""
    if signed:
        if not rules.secret:
            raise CommandRejected("writes over MQTT are off: no [commands] secret is configured")
        sig = claim.get("sig")
        expected = hmac.new(rules.secret.encode(), _canonical(claim), hashlib.sha256).hexdigest()
        if not isinstance(sig, str) or not hmac.compare_digest(sig, expected):
            raise CommandRejected("the command's signature does not match")
        exp = claim.get("exp")
        if not isinstance(exp, int) or exp < now or exp > now + rules.max_age_s * 1000:
            raise CommandRejected("the command has expired or its exp is too far ahead")
        if claim.get("role") not in _ROLES:
            raise CommandRejected(
                f"role {claim.get('role')!r} may not write; operator or admin is needed"
            )
        user = str(claim.get("user") or "")
        if rules.operators:
            allowed = rules.operators.get(user, [])
            if "*" not in allowed and device.machine not in allowed:
                raise CommandRejected(f"user {user!r} is not an operator of {device.machine}")
    name = claim.get("tag")
    tag = next((t for t in device.tags if t.name == name), None)
    if tag is None:
        raise CommandRejected(f"machine {device.machine} has no tag {name!r}")
    if not tag.writable:
        raise CommandRejected(f"tag {name!r} is not writable (set writable = true in edge.toml)")
    if "value" not in claim:
        raise CommandRejected("the command has no value")
    return tag.name, _coerce(tag, device, claim["value"])


def _same(a: TagValue | None, b: TagValue) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return a == b


class CommandDesk:
    """Carry out commands against the agent's devices and keep the audit trail."""

    def __init__(
        self,
        cfg: EdgeConfig,
        buffer: EdgeBuffer,
        device_io: Callable[[str], Any],
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.cfg = cfg
        self.buffer = buffer
        self.device_io = device_io  # device name -> reader with read_tag/write_tag, or None
        self.clock = clock
        self.by_machine = {d.machine: d for d in cfg.devices}
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _audit(self, record: AuditRecord) -> AuditRecord:
        self.buffer.add_audit(record)
        topic = audit_topic(
            self.cfg.broker.enterprise, record.machine or "unknown/unknown/unknown/unknown"
        )
        self.buffer.put([("raw", topic, record.ts, orjson.dumps(asdict(record)))])
        level = logging.INFO if record.result == "written" else logging.WARNING
        log.log(
            level,
            "write %s %s/%s by %s: %s",
            record.result,
            record.machine,
            record.tag,
            record.user,
            record.detail,
        )
        return record

    async def execute_json(self, machine: str, payload: bytes) -> AuditRecord:
        """Check and carry out a JSON command for a machine; always returns its audit record."""
        now = self.clock()
        try:
            claim = orjson.loads(payload)
            if not isinstance(claim, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            return self._audit(
                AuditRecord(
                    now,
                    "",
                    "",
                    "",
                    "",
                    machine,
                    "",
                    None,
                    None,
                    "rejected",
                    f"command is not a JSON object: {exc}",
                )
            )
        claim["machine"] = claim.get("machine", machine)
        cid = str(claim.get("id") or "")
        base = dict(
            command_id=cid,
            user=str(claim.get("user") or ""),
            role=str(claim.get("role") or ""),
            machine=machine,
            tag=str(claim.get("tag") or ""),
        )
        device = self.by_machine.get(machine)
        if claim["machine"] != machine or device is None:
            return self._audit(
                AuditRecord(
                    now,
                    device="",
                    old=None,
                    new=None,
                    result="rejected",
                    detail=f"no device serves machine {machine}",
                    **base,
                )
            )
        if not cid or cid in self._seen:
            why = "command has no id" if not cid else f"command id {cid!r} was already used"
            return self._audit(
                AuditRecord(
                    now,
                    device=device.name,
                    old=None,
                    new=None,
                    result="rejected",
                    detail=why,
                    **base,
                )
            )
        try:
            tag, value = check_command(claim, device, self.cfg.commands, now)
        except CommandRejected as exc:
            return self._audit(
                AuditRecord(
                    now,
                    device=device.name,
                    old=None,
                    new=repr(claim.get("value")),
                    result="rejected",
                    detail=str(exc),
                    **base,
                )
            )
        self._seen[cid] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return await self._write(device, tag, value, base, now)

    async def execute_sparkplug(
        self, device_name: str, metrics: dict[str, Any]
    ) -> list[AuditRecord]:
        """Carry out DCMD writes (name -> value) when Sparkplug writes are enabled."""
        now = self.clock()
        out = []
        device = next((d for d in self.cfg.devices if d.name == device_name), None)
        for name, value in metrics.items():
            base = dict(
                command_id=f"dcmd-{now}",
                user="sparkplug",
                role="broker-acl",
                machine=device.machine if device else "",
                tag=name,
            )
            if device is None or not self.cfg.commands.sparkplug_writes:
                why = (
                    "Sparkplug writes are off (commands.sparkplug_writes)"
                    if device
                    else f"no device {device_name!r}"
                )
                out.append(
                    self._audit(
                        AuditRecord(
                            now,
                            device=device_name,
                            old=None,
                            new=repr(value),
                            result="rejected",
                            detail=why,
                            **base,
                        )
                    )
                )
                continue
            try:
                tag, val = check_command(
                    {"tag": name, "value": value}, device, self.cfg.commands, now, signed=False
                )
            except CommandRejected as exc:
                out.append(
                    self._audit(
                        AuditRecord(
                            now,
                            device=device.name,
                            old=None,
                            new=repr(value),
                            result="rejected",
                            detail=str(exc),
                            **base,
                        )
                    )
                )
                continue
            out.append(await self._write(device, tag, val, base, now))
        return out

    async def _write(
        self, device: Any, tag: str, value: TagValue, base: dict[str, str], now: int
    ) -> AuditRecord:
        io = self.device_io(device.name)
        if io is None:
            return self._audit(
                AuditRecord(
                    now,
                    device=device.name,
                    old=None,
                    new=repr(value),
                    result="failed",
                    detail="the device is not connected",
                    **base,
                )
            )
        old: TagValue | None = None
        try:
            old = await io.read_tag(tag)
            await io.write_tag(tag, value)
            back = await io.read_tag(tag)
        except Exception as exc:  # any failure of the device or library is audited
            if not isinstance(exc, IndunetError | OSError | TimeoutError):
                log.exception("write to %s/%s failed unexpectedly", device.name, tag)
            return self._audit(
                AuditRecord(
                    now,
                    device=device.name,
                    old=repr(old),
                    new=repr(value),
                    result="failed",
                    detail=str(exc),
                    **base,
                )
            )
        if not _same(back, value):
            return self._audit(
                AuditRecord(
                    now,
                    device=device.name,
                    old=repr(old),
                    new=repr(back),
                    result="failed",
                    detail=f"read back {back!r}, not {value!r}",
                    **base,
                )
            )
        return self._audit(
            AuditRecord(
                now,
                device=device.name,
                old=repr(old),
                new=repr(back),
                result="written",
                detail="written and read back",
                **base,
            )
        )


def decode_dcmd(payload: bytes, aliases: dict[int, str] | None = None) -> dict[str, Any]:
    """Return name -> value of a DCMD payload's metrics.

    A metric sent by alias only (Sparkplug B allows it once the birth gave the alias) is named
    from ``aliases`` (alias -> name, as in this node's DBIRTH); an alias the node never gave is
    kept as ``"alias N"`` so that the write is refused and audited, not silently ignored.
    """
    from indunet.connect.codec._protobuf import sparkplug_b_pb2 as pb

    msg = pb.Payload()
    msg.ParseFromString(payload)
    out: dict[str, Any] = {}
    for m in msg.metrics:
        field = m.WhichOneof("value")
        if not field:
            continue
        if m.name:
            name = m.name
        elif m.HasField("alias"):
            name = (aliases or {}).get(m.alias, f"alias {m.alias}")
        else:
            continue
        out[name] = getattr(m, field)
    return out


_ = Awaitable
