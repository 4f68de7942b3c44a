"""The edge agent: one supervised task per device, the disk buffer, the publisher and commands.

Each device reads on its own schedule and reconnects with backoff on its own; a device that is
down is logged once when it goes and once when it comes back, and never stalls the others.
Readings go to the buffer first (optionally only when they changed by more than the tag's
deadband), with the device's health as tags (``edge_connected``, ``edge_errors`` …).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from indunet.connect.codec.tag_meta import encode_tag_meta, meta_topic
from indunet.connect.codec.uns_json import QUALITY_KEY
from indunet.edge.buffer import EdgeBuffer, now_ms
from indunet.edge.commands import CommandDesk, decode_dcmd
from indunet.edge.config import EdgeConfig, ModbusDevice, OpcuaDevice
from indunet.edge.modbus import ModbusReader
from indunet.edge.opcua import OpcuaReader
from indunet.edge.publish import (
    COMMAND_ROOT,
    Forwarder,
    SparkplugEdgeNode,
    make_encoder,
    tag_kinds,
)
from indunet.edge.reading import Reading, TagValue
from indunet.errors import ConfigError, IndunetError
from indunet.model import Quality

__all__ = ["DeviceHealth", "EdgeAgent", "changed", "status_path"]

log = logging.getLogger(__name__)


def status_path(buffer_path: Path) -> Path:
    """Return where the agent writes its status for ``indunet edge status``."""
    return buffer_path.with_suffix(".status.json")


def changed(old: TagValue | None, new: TagValue, deadband: float) -> bool:
    """Return whether a value differs from the last one published by more than the deadband."""
    if old is None:
        return True
    if (
        isinstance(new, bool)
        or isinstance(old, bool)
        or isinstance(new, str)
        or isinstance(old, str)
    ):
        return new != old
    return abs(float(new) - float(old)) > deadband or (deadband == 0 and new != old)


@dataclass(slots=True)
class DeviceHealth:
    """Per-device status, published as tags and shown by ``indunet edge status``."""

    device: str
    machine: str
    protocol: str
    connected: bool = False
    last_good_ms: int | None = None
    errors: int = 0
    reads: int = 0
    last_error: str | None = None
    latency_ms: float = 0.0
    mode: str = ""
    problems: list[str] = field(default_factory=list)
    requests: int = 0


class _DeviceTask:
    """Read one device forever: connect, read on schedule, reconnect with backoff."""

    def __init__(self, agent: EdgeAgent, device: ModbusDevice | OpcuaDevice) -> None:
        self.agent = agent
        self.device = device
        self.reader: ModbusReader | OpcuaReader = (
            ModbusReader(device) if isinstance(device, ModbusDevice) else OpcuaReader(device)
        )
        self.health = DeviceHealth(device.name, device.machine, device.protocol)
        self.last: dict[str, TagValue] = {}
        self.quality: dict[str, Quality] = {}  # tag -> quality of the last value buffered
        # the agent's own report-by-exception uses absolute deadbands (a percent one is the
        # OPC UA server's to apply: it knows the range)
        self.deadbands = {
            t.name: t.deadband
            for t in device.tags
            if getattr(t, "deadband_type", "absolute") == "absolute"
        }
        self._health_at = 0.0
        self.io_ready = False

    async def run(self, stop: asyncio.Event) -> None:
        delay, low, high = 0.5, 0.5, 30.0
        down_logged = False
        while not stop.is_set():
            try:
                await self.reader.connect()
                self.io_ready = True
                self.health.connected = True
                self.health.problems = list(getattr(self.reader, "problems", []))
                self.health.mode = getattr(self.reader, "mode", "poll")
                self.agent.announce(self.device, getattr(self.reader, "units", {}))
                if down_logged:
                    log.info("%s is back", self.reader.where)
                down_logged = False
                delay = low
                self._emit_health(force=True)
                await self._cycle(stop)
            except (IndunetError, OSError, TimeoutError) as exc:
                self.health.errors += 1
                self.health.last_error = str(exc)
                permanent = isinstance(exc, ConfigError)
                if not down_logged:
                    log.warning("%s: %s; retrying", self.reader.where, exc)
                    down_logged = True
                if permanent:
                    delay = high
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a library bug must not end the device's task
                self.health.errors += 1
                self.health.last_error = f"unexpected: {exc!r}"
                log.exception("%s failed unexpectedly; restarting it", self.reader.where)
            finally:
                self.io_ready = False
                was = self.health.connected
                self.health.connected = False
                if was:
                    self._emit_health(force=True)
                await self.reader.close()
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, high)

    async def _cycle(self, stop: asyncio.Event) -> None:
        period = self.device.poll_ms / 1000
        next_at = time.monotonic()
        bad_cycles = 0
        while not stop.is_set():
            ts = now_ms()
            readings = await self.reader.read_cycle(ts)
            self.health.requests = self.reader.requests
            self.health.reads += 1
            good = [r for r in readings if r.good]
            bad = [r for r in readings if r.quality == Quality.BAD or r.value is None]
            if good:
                self.health.last_good_ms = ts
                self.health.latency_ms = max(r.latency_ms for r in good)
            if bad:
                self.health.errors += len(bad)
                self.health.last_error = bad[0].error
            if readings and not good:
                bad_cycles += 1
                if bad_cycles >= 3:
                    raise IndunetError(f"{self.reader.where}: 3 cycles without a good value")
            else:
                bad_cycles = 0
            self._store(ts, readings)
            self._emit_health()
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()
                delay = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _store(self, ts: int, readings: list[Reading]) -> None:
        """Buffer the readings that hold a value, one row per instant (a subscription delivers
        each change at its own source time; a poll cycle has one time). A value that is not
        good goes with its quality (the JSON contract's ``$quality``); a change of quality is
        a change for report-by-exception."""
        rbe = self.agent.cfg.publisher.rbe
        rows: dict[int, dict[str, Any]] = {}
        for r in readings:
            if r.value is None:
                continue
            quality = self.quality.get(r.tag, Quality.GOOD)
            if (
                rbe
                and quality == r.quality
                and not changed(self.last.get(r.tag), r.value, self.deadbands.get(r.tag, 0.0))  # type: ignore[arg-type]
            ):
                continue
            row = rows.setdefault(r.ts_ms, {})
            row[r.tag] = r.value
            if r.quality != Quality.GOOD:
                row.setdefault(QUALITY_KEY, {})[r.tag] = r.quality.name.lower()
            self.last[r.tag] = r.value
            self.quality[r.tag] = r.quality
        if rows:
            self.agent.enqueue_rows(self.device.name, sorted(rows.items()))

    def _emit_health(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._health_at < self.agent.cfg.publisher.health_s:
            return
        self._health_at = now
        h = self.health
        values: dict[str, TagValue] = {
            "edge_connected": h.connected,
            "edge_errors": h.errors,
            "edge_latency_ms": round(h.latency_ms, 3),
            "edge_last_error": (h.last_error or "")[:200],
        }
        if h.last_good_ms is not None:
            values["edge_last_good_ms"] = h.last_good_ms
        self.agent.enqueue(self.device.name, now_ms(), values)


class EdgeAgent:
    """Run every device of an edge config, buffer their readings and publish them."""

    def __init__(self, cfg: EdgeConfig, *, start_publisher: bool = True) -> None:
        self.cfg = cfg
        self.buffer = EdgeBuffer(cfg.buffer.path, int(cfg.buffer.max_mb * 1024 * 1024))
        self.encoder = make_encoder(cfg, self.buffer)
        self.tasks = {d.name: _DeviceTask(self, d) for d in cfg.devices}
        self.desk = CommandDesk(cfg, self.buffer, self._io)
        self.forwarder = Forwarder(
            cfg.broker, cfg.publisher, self.buffer, self.encoder, on_command=self._on_command
        )
        self.start_publisher = start_publisher
        self.dropped = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.commands_done: list[Any] = []
        self._announced: dict[str, bytes] = {}  # device -> last metadata payload sent

    def announce(self, device: ModbusDevice | OpcuaDevice, server_units: dict[str, str]) -> None:
        """Send the device's tag metadata (unit, description, data type) through the buffer,
        when it changed: the historian's tags get the units the config and the server name."""
        kinds = tag_kinds(device)
        payload = encode_tag_meta(
            {
                t.name: {
                    "unit": t.unit or server_units.get(t.name),
                    "description": t.description,
                    "data_type": kinds.get(t.name, "number"),
                }
                for t in device.tags
            }
        )
        if self._announced.get(device.name) == payload:
            return
        self._announced[device.name] = payload
        topic = meta_topic(self.cfg.broker.enterprise, device.machine)
        self.buffer.put([("raw", topic, now_ms(), payload)])

    def _io(self, device: str) -> Any:
        task = self.tasks.get(device)
        return task.reader if task and task.io_ready else None

    def enqueue(self, device: str, ts: int, values: dict[str, TagValue]) -> None:
        """Put one device's readings of one instant into the buffer."""
        self.enqueue_rows(device, [(ts, values)])

    def enqueue_rows(self, device: str, rows: list[tuple[int, dict[str, TagValue]]]) -> None:
        """Put one device's readings of several instants into the buffer (one write)."""
        dropped = self.buffer.put([("data", device, ts, orjson.dumps(v)) for ts, v in rows])
        if dropped:
            if not self.dropped:
                log.warning(
                    "edge buffer %s is full: dropping the oldest readings", self.buffer.path
                )
            self.dropped += dropped

    def _on_command(self, topic: str, payload: bytes) -> None:
        """Hand a command from the MQTT thread to the agent's event loop."""
        if self.loop is None:
            return
        if topic.startswith(COMMAND_ROOT + "/"):
            parts = topic.split("/")
            machine = "/".join(parts[4:])
            coro = self.desk.execute_json(machine, payload)
        elif isinstance(self.encoder, SparkplugEdgeNode) and "/DCMD/" in topic:
            device = topic.rsplit("/", 1)[-1]
            births = self.encoder.metrics.get(device, {})
            try:
                metrics = decode_dcmd(payload, {a: n for n, (a, _) in births.items()})
            except Exception:
                log.warning("DCMD on %s is not a Sparkplug payload", topic)
                return
            coro = self.desk.execute_sparkplug(device, metrics)
        else:
            return
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        fut.add_done_callback(lambda f: self.commands_done.append(f.result()))

    def status(self) -> dict[str, Any]:
        """Return the agent's status: devices, buffer and publisher."""
        stats = self.buffer.stats()
        return {
            "ts": now_ms(),
            "devices": [asdict(t.health) for t in self.tasks.values()],
            "problems": [asdict(p) for p in self.cfg.problems],
            "buffer": {**asdict(stats), "fill": round(stats.fill, 4)},
            "publisher": asdict(self.forwarder.stats),
        }

    def _write_status(self) -> None:
        path = status_path(self.buffer.path)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1), encoding="utf-8")
        tmp.replace(path)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then finish publishing what is in flight and close."""
        self.loop = asyncio.get_running_loop()
        for p in self.cfg.problems:
            log.warning("%s", p.message)
        if self.start_publisher:
            self.forwarder.start()
        tasks = [asyncio.create_task(t.run(stop), name=n) for n, t in self.tasks.items()]
        try:
            while not stop.is_set():
                self._write_status()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.start_publisher:
                await asyncio.to_thread(self.forwarder.stop)
            self._write_status()
            self.buffer.close()
