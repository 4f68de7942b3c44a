"""OPC UA client of one device (asyncua): subscriptions or polling, security, and fast browse.

Tags are resolved and checked at connect: a node that does not exist or holds the wrong kind
of value becomes a problem naming the tag, and the device runs with its other tags.
Subscriptions are rebuilt from the config after every reconnect; when the server refuses
them the device falls back to polling.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indunet.edge.config import OpcuaDevice, OpcuaTag
from indunet.edge.reading import Reading, TagValue
from indunet.errors import ConfigError, DataError, TemporaryError
from indunet.model import Quality

__all__ = ["BrowsedNode", "OpcuaReader", "browse", "starter_config"]

log = logging.getLogger(__name__)
_BATCH = 1000


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _value(tag: OpcuaTag, value: object) -> TagValue:
    kind = _kind_of(value)
    if kind != tag.type:
        raise DataError(f"tag {tag.name!r} holds a {kind} value, the config says {tag.type}")
    return value  # type: ignore[return-value]


def _application_uri(cert: Any) -> str | None:
    """Return the application URI a certificate names (its first URI subject alternative name)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


async def _secure(client: Any, device: OpcuaDevice) -> None:
    """Set login and security on ``client`` before it connects.

    The client announces the application URI of its own certificate (servers check that they
    match), and the server's certificate is taken from its endpoints and, when the config pins
    one, compared with that file: a mismatch is a `ConfigError`, an unreachable server a
    `TemporaryError`.
    """
    from asyncua import Client, ua
    from asyncua.crypto import security_policies as sp
    from asyncua.crypto import uacrypto
    from cryptography.hazmat.primitives.serialization import Encoding

    where = f"OPC UA device {device.name!r} ({device.endpoint})"
    if device.username:
        client.set_user(device.username)
        client.set_password(device.password)
    if device.security == "None":
        return
    policy = getattr(sp, f"SecurityPolicy{device.policy}")
    mode = getattr(ua.MessageSecurityMode, device.security)
    try:
        own = await uacrypto.load_certificate(str(device.certificate))
        await uacrypto.load_private_key(str(device.private_key))
        pinned = (
            await uacrypto.load_certificate(str(device.server_certificate))
            if device.server_certificate
            else None
        )
    except Exception as exc:  # cryptography raises ValueError and friends for bad files
        raise ConfigError(
            f"OPC UA device {device.name!r}: certificate or key cannot be used: {exc}"
        ) from exc
    uri = _application_uri(own)
    if uri:
        client.application_uri = uri
    try:
        endpoints = await client.connect_and_get_server_endpoints()
    except (OSError, TimeoutError) as exc:
        raise TemporaryError(f"{where} is not reachable; check it runs", detail=str(exc)) from exc
    try:
        endpoint = Client.find_endpoint(endpoints, mode, policy.URI)
    except ua.UaError as exc:
        raise ConfigError(
            f"{where} offers no endpoint with security {device.security} and policy "
            f"{device.policy}; check the server's security settings"
        ) from exc
    served = uacrypto.x509_from_der(endpoint.ServerCertificate)
    if pinned is not None and pinned.public_bytes(Encoding.DER) != served.public_bytes(
        Encoding.DER
    ):
        raise ConfigError(
            f"{where}: the server's certificate does not match server_certificate "
            f"{device.server_certificate}; check which certificate the server uses"
        )
    try:
        await client.set_security(
            policy,
            certificate=str(device.certificate),
            private_key=str(device.private_key),
            server_certificate=served.public_bytes(Encoding.DER),
            mode=mode,
        )
    except Exception as exc:
        raise ConfigError(
            f"OPC UA device {device.name!r}: certificate or key cannot be used: {exc}"
        ) from exc


#: how often the session is probed, and how long a probe may take, s (asyncua's default: 1)
WATCHDOG_S = 5.0


def _ms(stamp: datetime | None) -> int | None:
    """Return an OPC UA timestamp (UTC; asyncua may hand it over naive) as epoch ms."""
    if stamp is None or stamp.year < 1971:  # unset: OPC UA's minimum date
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return round(stamp.timestamp() * 1000)


def quality_of(status: Any) -> Quality:
    """Map an OPC UA StatusCode to a quality by its severity bits (Part 4, 7.39)."""
    value = getattr(status, "value", status) or 0
    severity = (int(value) >> 30) & 0b11
    return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD


@dataclass(frozen=True, slots=True)
class Change:
    """One data change as the server sent it."""

    tag: str
    value: object
    source_ms: int | None
    server_ms: int | None
    status: Any


class _Handler:
    """Collect every data change, in the order the server sent them, until the next cycle."""

    def __init__(self, names: dict[Any, str]) -> None:
        self.names = names
        self.changes: list[Change] = []
        self.count = 0

    def datachange_notification(self, node: Any, val: object, data: Any) -> None:
        """Keep the change with its SourceTimestamp, ServerTimestamp and status."""
        name = self.names.get(node.nodeid)
        if name is None:
            return
        dv = getattr(getattr(data, "monitored_item", None), "Value", None)
        if dv is None:
            self.changes.append(Change(name, val, None, None, None))
        else:
            self.changes.append(
                Change(name, val, _ms(dv.SourceTimestamp), _ms(dv.ServerTimestamp), dv.StatusCode)
            )
        self.count += 1

    def status_change_notification(self, status: Any) -> None:
        """Note a subscription status change (the session keep-alive spots a lost server)."""
        log.warning("OPC UA subscription status: %s", status)


class OpcuaReader:
    """The asyncua client of one device."""

    def __init__(self, device: OpcuaDevice) -> None:
        self.device = device
        self.tags = {t.name: t for t in device.tags}
        self.client: Any = None
        self.nodes: dict[str, Any] = {}
        self.problems: list[str] = []
        self.mode = device.mode
        self.requests = 0
        self._handler: _Handler | None = None
        self._sub: Any = None
        self.units: dict[str, str] = {}  # tag -> unit from the server (EngineeringUnits)

    @property
    def where(self) -> str:
        """Return the device's name and endpoint for messages."""
        return f"OPC UA device {self.device.name!r} ({self.device.endpoint})"

    async def connect(self) -> None:
        """Connect, resolve and check every tag, then subscribe (or fall back to polling)."""
        from asyncua import Client, ua

        await self.close()
        # asyncua probes the server every `watchdog_intervall` s and gives up on the session when
        # one probe takes longer than that (1 s by default): a PLC busy changing 10,000 values
        # answers later than that, and each false "lost" cost a resubscription of every item
        client = Client(
            self.device.endpoint,
            timeout=self.device.timeout_s,
            watchdog_intervall=max(WATCHDOG_S, self.device.timeout_s),
        )
        await _secure(client, self.device)
        try:
            await client.connect()
        except ua.UaStatusCodeError as exc:
            name = type(exc).__name__
            if (
                "Identity" in name
                or "UserAccess" in name
                or "Certificate" in name
                or "Security" in name
            ):
                raise ConfigError(f"{self.where} refused the login or certificate: {exc}") from exc
            raise TemporaryError(f"{self.where} refused the session: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise TemporaryError(
                f"{self.where} is not reachable; check it runs", detail=str(exc)
            ) from exc
        except Exception as exc:  # asyncua raises plain exceptions for security mismatches
            raise ConfigError(f"{self.where} cannot open a session: {exc}") from exc
        self.client = client
        await self._resolve()
        self.units = await self._engineering_units()
        if not self.nodes:
            raise ConfigError(
                f"{self.where}: none of its tags can be read: {'; '.join(self.problems)}"
            )
        self.mode = self.device.mode
        if self.mode == "subscribe":
            try:
                await self._subscribe()
            except Exception as exc:  # server without subscriptions: poll instead
                log.warning("%s refused subscriptions (%s); polling instead", self.where, exc)
                self.mode = "poll"

    async def _resolve(self) -> None:
        from asyncua import ua

        self.problems = []
        found: dict[str, Any] = {}
        for tag in self.device.tags:
            try:
                if tag.node:
                    found[tag.name] = self.client.get_node(tag.node)
                else:
                    parts = [p for p in tag.path.split("/") if p]
                    found[tag.name] = await self.client.nodes.root.get_child(parts)
            except Exception as exc:
                self.problems.append(
                    f"tag {tag.name!r} field 'path': {tag.path!r} not found ({exc})"
                )
        names = list(found)
        values = await self._read([found[n] for n in names])
        self.nodes = {}
        for name, dv in zip(names, values, strict=True):
            tag = self.tags[name]
            where = tag.node or tag.path
            if not dv.StatusCode.is_good():
                code = dv.StatusCode.name
                why = "does not exist" if "NodeIdUnknown" in code else f"cannot be read ({code})"
                self.problems.append(f"tag {name!r} field 'node': {where} {why} on the server")
                continue
            kind = _kind_of(dv.Value.Value if dv.Value else None)
            if kind != tag.type:
                self.problems.append(
                    f"tag {name!r} field 'type': {where} holds a {kind}, the config says {tag.type}"
                )
                continue
            self.nodes[name] = found[name]
        for p in self.problems:
            log.warning("%s: %s", self.where, p)
        _ = ua

    async def _engineering_units(self) -> dict[str, str]:
        """Return the server's unit (EngineeringUnits property, DisplayName) of each number tag
        without a unit in the config; a server without the property gives none."""
        from asyncua import ua

        wanted = [
            n for n, t in self.tags.items() if n in self.nodes and t.type == "number" and not t.unit
        ]
        units: dict[str, str] = {}
        for start in range(0, len(wanted), _BATCH):
            names = wanted[start : start + _BATCH]
            paths = []
            for name in names:
                element = ua.RelativePathElement()
                element.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty)
                element.IsInverse = False  # asyncua defaults to True
                element.IncludeSubtypes = True
                element.TargetName = ua.QualifiedName("EngineeringUnits", 0)
                path = ua.BrowsePath()
                path.StartingNode = self.nodes[name].nodeid
                path.RelativePath = ua.RelativePath(Elements=[element])
                paths.append(path)
            try:
                found = await self.client.uaclient.translate_browsepaths_to_nodeids(paths)
                self.requests += 1
                pairs = [
                    (name, r.Targets[0].TargetId)
                    for name, r in zip(names, found, strict=True)
                    if r.StatusCode.is_good() and r.Targets
                ]
                if not pairs:
                    continue
                values = await self._read([self.client.get_node(nid) for _, nid in pairs])
            except Exception as exc:  # optional metadata: never a reason to fail the device
                log.debug("%s: no EngineeringUnits (%s)", self.where, exc)
                continue
            for (name, _), dv in zip(pairs, values, strict=True):
                eu = dv.Value.Value if dv.Value is not None else None
                text = getattr(getattr(eu, "DisplayName", None), "Text", None)
                if isinstance(text, str) and text.strip():
                    units[name] = text.strip()[:32]
        return units

    async def _read(self, nodes: Sequence[Any]) -> list[Any]:
        from asyncua import ua

        out = []
        for start in range(0, len(nodes), _BATCH):
            params = ua.ReadParameters()
            for node in nodes[start : start + _BATCH]:
                rv = ua.ReadValueId()
                rv.NodeId = node.nodeid
                rv.AttributeId = ua.AttributeIds.Value
                params.NodesToRead.append(rv)
            self.requests += 1
            out.extend(await self.client.uaclient.read(params))
        return out

    def publish_ms(self) -> int:
        """Return the subscription's publishing interval, ms."""
        return self.device.publish_ms or max(self.device.sampling_ms, 50)

    def item_plan(self, tag: OpcuaTag) -> tuple[int, int]:
        """Return (sampling ms, queue size) of a monitored item: the queue holds every sample
        taken between two publishes, so none is dropped on the server."""
        sampling = self.device.sampling_ms if tag.sampling_ms is None else tag.sampling_ms
        if tag.queue_size is not None:
            return sampling, tag.queue_size
        # sampling 0 means "as fast as the server can": assume changes 10 ms apart at most
        per_publish = -(-self.publish_ms() // max(sampling, 10))
        return sampling, min(per_publish + 1, 10_000)

    async def _subscribe(self) -> None:
        from asyncua import ua

        names = {node.nodeid: name for name, node in self.nodes.items()}
        self._handler = _Handler(names)
        self._sub = await self.client.create_subscription(self.publish_ms(), self._handler)
        requests = []
        for name, node in self.nodes.items():
            tag = self.tags[name]
            sampling, queue = self.item_plan(tag)
            band = None
            if tag.deadband:
                band = ua.DataChangeFilter()
                band.Trigger = ua.DataChangeTrigger.StatusValue
                band.DeadbandType = (
                    ua.DeadbandType.Percent
                    if tag.deadband_type == "percent"
                    else ua.DeadbandType.Absolute
                )
                band.DeadbandValue = tag.deadband
            requests.append(
                (
                    name,
                    self._sub._make_monitored_item_request(
                        node,
                        ua.AttributeIds.Value,
                        band,
                        queue,
                        ua.MonitoringMode.Reporting,
                        sampling,
                    ),
                )
            )
        refused = []
        for start in range(0, len(requests), _BATCH):
            chunk = requests[start : start + _BATCH]
            results = await self._sub.create_monitored_items([r for _, r in chunk])
            self.requests += 1
            for (name, _), result in zip(chunk, results, strict=True):
                if isinstance(result, ua.StatusCode):  # this item refused, the others run
                    refused.append(name)
                    problem = (
                        f"tag {name!r}: the server refused to monitor it ({result.name}); "
                        "check its sampling_ms, deadband and deadband_type"
                    )
                    self.problems.append(problem)
                    log.warning("%s: %s", self.where, problem)
        if refused and len(refused) == len(requests):
            raise TemporaryError(f"{self.where} refused to monitor every tag")

    async def close(self) -> None:
        """Close the session (quietly: the server may be gone)."""
        if self.client is not None:
            with contextlib.suppress(Exception):  # already gone
                await self.client.disconnect()
            self.client = None
            self._sub = None

    async def read_cycle(self, now_ms: int | None = None) -> list[Reading]:
        """Return the changes since the last cycle (subscription) or read every tag (polling)."""
        ts = now_ms if now_ms is not None else int(time.time() * 1000)
        if self.client is None:
            raise TemporaryError(f"{self.where} is not connected")
        try:
            await self.client.check_connection()
        except Exception as exc:
            raise TemporaryError(f"{self.where} lost the session", detail=str(exc)) from exc
        if self.mode == "subscribe" and self._handler is not None:
            changes, self._handler.changes = self._handler.changes, []
            return self._readings(changes, ts)
        names = list(self.nodes)
        t0 = time.perf_counter()
        try:
            values = await self._read([self.nodes[n] for n in names])
        except (OSError, TimeoutError) as exc:
            raise TemporaryError(f"{self.where} did not answer a read", detail=str(exc)) from exc
        latency = (time.perf_counter() - t0) * 1000
        out = []
        for name, dv in zip(names, values, strict=True):
            if not dv.StatusCode.is_good():
                out.append(Reading(name, ts, None, Quality.BAD, dv.StatusCode.name))
                continue
            try:
                out.append(
                    Reading(name, ts, _value(self.tags[name], dv.Value.Value), latency_ms=latency)
                )
            except DataError as exc:
                out.append(Reading(name, ts, None, Quality.BAD, str(exc)))
        return out

    def _readings(self, changes: list[Change], cycle_ms: int) -> list[Reading]:
        """Turn the changes of a cycle into readings: each with its SourceTimestamp (else the
        ServerTimestamp, else the cycle time), or only the newest per item when chosen."""
        newest = self.device.changes == "newest"
        if newest:
            changes = list({c.tag: c for c in changes}.values())
        out = []
        for c in changes:
            ts = cycle_ms if newest else (c.source_ms or c.server_ms or cycle_ms)
            quality = quality_of(c.status)
            if quality == Quality.BAD:
                name = getattr(c.status, "name", str(c.status))
                out.append(Reading(c.tag, ts, None, Quality.BAD, name, server_ts_ms=c.server_ms))
                continue
            try:
                value = _value(self.tags[c.tag], c.value)
            except DataError as exc:
                out.append(Reading(c.tag, ts, None, Quality.BAD, str(exc)))
                continue
            error = None if quality == Quality.GOOD else getattr(c.status, "name", None)
            out.append(Reading(c.tag, ts, value, quality, error, server_ts_ms=c.server_ms))
        return out

    async def read_tag(self, name: str) -> TagValue:
        """Read one tag now."""
        node = self.nodes.get(name)
        if node is None:
            raise DataError(f"tag {name!r} is not available on {self.where}")
        dv = (await self._read([node]))[0]
        if not dv.StatusCode.is_good():
            raise DataError(f"tag {name!r} cannot be read: {dv.StatusCode.name}")
        return _value(self.tags[name], dv.Value.Value)

    async def write_tag(self, name: str, value: TagValue) -> None:
        """Write one tag with the node's own data type."""
        from asyncua import ua

        node = self.nodes.get(name)
        if node is None:
            raise DataError(f"tag {name!r} is not available on {self.where}")
        vtype = await node.read_data_type_as_variant_type()
        if vtype in (
            ua.VariantType.Int16,
            ua.VariantType.Int32,
            ua.VariantType.Int64,
            ua.VariantType.UInt16,
            ua.VariantType.UInt32,
            ua.VariantType.UInt64,
            ua.VariantType.Byte,
            ua.VariantType.SByte,
        ):
            if float(value) != int(float(value)):
                raise DataError(f"tag {name!r} takes whole numbers, got {value}")
            value = int(float(value))
        self.requests += 1
        try:
            await node.write_value(ua.DataValue(ua.Variant(value, vtype)))
        except ua.UaStatusCodeError as exc:
            raise DataError(f"{self.where} refused the write of {name!r}: {exc}") from exc


# ---------------------------------------------------------------------------- browse
@dataclass(frozen=True, slots=True)
class BrowsedNode:
    """A variable found by browsing: its node id, browse path and kind of value."""

    node: str
    path: str
    kind: str


async def browse(
    endpoint: str, root: str = "i=85", max_nodes: int = 100_000, timeout_s: float = 10.0
) -> list[BrowsedNode]:
    """Walk the address space below ``root`` breadth-first with batched Browse requests."""
    from asyncua import Client, ua

    client = Client(endpoint, timeout=timeout_s)
    try:
        await client.connect()
    except Exception as exc:
        raise TemporaryError(f"OPC UA server {endpoint} is not reachable: {exc}") from exc
    try:
        found: list[tuple[Any, str]] = []
        level: list[tuple[Any, str]] = [(ua.NodeId.from_string(root), "")]
        seen = {level[0][0]}
        while level and len(found) < max_nodes:
            nxt: list[tuple[Any, str]] = []
            for start in range(0, len(level), 500):
                chunk = level[start : start + 500]
                params = ua.BrowseParameters()
                params.NodesToBrowse = [
                    ua.BrowseDescription(
                        NodeId=nid,
                        BrowseDirection=ua.BrowseDirection.Forward,
                        ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
                        IncludeSubtypes=True,
                        NodeClassMask=ua.NodeClass.Object | ua.NodeClass.Variable,
                        ResultMask=ua.BrowseResultMask.All,
                    )
                    for nid, _ in chunk
                ]
                results = await client.uaclient.browse(params)
                for (_, path), result in zip(chunk, results, strict=True):
                    refs = list(result.References)
                    cp = result.ContinuationPoint
                    while cp:
                        more = await client.uaclient.browse_next(
                            ua.BrowseNextParameters(ContinuationPoints=[cp])
                        )
                        refs.extend(more[0].References)
                        cp = more[0].ContinuationPoint
                    for ref in refs:
                        nid = ref.NodeId
                        if nid in seen or (nid.NamespaceIndex == 0 and root != "i=84"):
                            continue  # skip the standard Server object and its kin
                        seen.add(nid)
                        name = f"{ref.BrowseName.NamespaceIndex}:{ref.BrowseName.Name}"
                        child = (nid, f"{path}/{name}" if path else name)
                        if ref.NodeClass == ua.NodeClass.Variable:
                            found.append(child)
                        nxt.append(child)
            level = nxt
        found = found[:max_nodes]
        kinds: list[str] = []
        for start in range(0, len(found), _BATCH):
            params = ua.ReadParameters()
            for nid, _ in found[start : start + _BATCH]:
                rv = ua.ReadValueId()
                rv.NodeId, rv.AttributeId = nid, ua.AttributeIds.Value
                params.NodesToRead.append(rv)
            for dv in await client.uaclient.read(params):
                kinds.append(_kind_of(dv.Value.Value) if dv.Value is not None else "unknown")
        return [
            BrowsedNode(nid.to_string(), path, kind)
            for (nid, path), kind in zip(found, kinds, strict=True)
        ]
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


_TAG_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def starter_config(
    endpoint: str, nodes: list[BrowsedNode], machine: str = "site/area/line/plc"
) -> str:
    """Return an ``edge.toml`` for the browsed variables (numbers, booleans and strings only)."""
    lines = [
        "# starter config written by `indunet edge browse`; check names and machine path",
        "[broker]",
        'url = "mqtt://127.0.0.1:1883"',
        'enterprise = "demo"',
        "",
        "[[devices]]",
        'name = "plc"',
        f'machine = "{machine}"',
        f'endpoint = "{endpoint}"',
        'mode = "subscribe"',
        "sampling_ms = 1000",
    ]
    used: set[str] = set()
    for n in nodes:
        if n.kind not in ("number", "boolean", "string"):
            continue
        base = _TAG_CHARS.sub("_", ".".join(p.split(":", 1)[-1] for p in n.path.split("/")[-2:]))
        name, i = base[:120] or "tag", 2
        while name in used:
            name, i = f"{base[:110]}_{i}", i + 1
        used.add(name)
        node = n.node.replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            "",
            "[[devices.tags]]",
            f'name = "{name}"',
            f'node = "{node}"',
            f'type = "{n.kind}"',
        ]
    return "\n".join(lines) + "\n"


def write_starter(path: Path, text: str) -> None:
    """Write the starter config, refusing to overwrite a file."""
    if path.exists():
        raise ConfigError(f"{path} exists; choose another --out")
    path.write_text(text, encoding="utf-8")
