"""Modbus TCP: register decoding and block planning (pure), and the pymodbus client of a device.

The planner coalesces the tags of a device into as few block reads as the protocol allows
(at most 125 registers or 2000 bits per request, and no more than ``max_gap`` unused registers
between two tags). Each block is read on its own, so an exception response (illegal address)
or a timeout spoils only that block's tags.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from indunet.edge.config import ModbusDevice, ModbusTag
from indunet.edge.reading import Reading, TagValue
from indunet.errors import DataError, TemporaryError
from indunet.model import Quality

__all__ = [
    "Block",
    "ModbusReader",
    "decode_registers",
    "decode_tag",
    "encode_tag",
    "plan_blocks",
]

log = logging.getLogger(__name__)

MAX_REGISTERS = 125
MAX_BITS = 2000
_FORMATS = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}
_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target did not respond (check the unit id)",
}


def _bytes(registers: Sequence[int], word_order: str, byte_order: str) -> bytes:
    words = list(registers) if word_order == "big" else list(reversed(registers))
    out = bytearray()
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise DataError(f"register value {w} is not a 16-bit word")
        hi, lo = w >> 8, w & 0xFF
        out += bytes((hi, lo)) if byte_order == "big" else bytes((lo, hi))
    return bytes(out)


def decode_registers(
    registers: Sequence[int], kind: str, word_order: str = "big", byte_order: str = "big"
) -> TagValue:
    """Decode raw 16-bit registers as ``kind`` (int16 … float64, string) in the given orders."""
    if kind == "string":
        raw = _bytes(registers, "big" if word_order == "big" else "little", byte_order)
        return raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    if kind == "bool":
        return bool(registers[0])
    fmt = _FORMATS[kind]
    need = struct.calcsize(fmt) // 2
    if len(registers) != need:
        raise DataError(f"{kind} needs {need} registers, got {len(registers)}")
    return struct.unpack(">" + fmt, _bytes(registers, word_order, byte_order))[0]


def decode_tag(tag: ModbusTag, registers: Sequence[int]) -> TagValue:
    """Decode a tag's registers and apply its scale and offset; refuse NaN and infinity."""
    raw = decode_registers(registers, tag.type, tag.word_order, tag.byte_order)
    if isinstance(raw, str | bool):
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        raise DataError(f"tag {tag.name!r} reads {raw} (not a number)")
    if tag.scale == 1.0 and tag.offset == 0.0:
        return raw
    return raw * tag.scale + tag.offset


def encode_tag(tag: ModbusTag, value: TagValue) -> list[int]:
    """Return the registers that hold ``value`` for this tag (inverse of `decode_tag`)."""
    if tag.type == "bool":
        return [1 if value else 0]
    if tag.type == "string":
        data = str(value).encode("latin-1")[: tag.length * 2].ljust(tag.length * 2, b"\x00")
        words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        return words if tag.word_order == "big" else list(reversed(words))
    raw = (float(value) - tag.offset) / tag.scale
    fmt = _FORMATS[tag.type]
    if fmt not in "fd":
        raw_int = round(raw)
        bits = struct.calcsize(fmt) * 8
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if fmt.islower() else (0, (1 << bits) - 1)
        )
        if not lo <= raw_int <= hi:
            raise DataError(f"value {value} does not fit the {tag.type} register of {tag.name!r}")
        packed = struct.pack(">" + fmt, raw_int)
    else:
        packed = struct.pack(">" + fmt, raw)
    if tag.byte_order == "little":
        packed = b"".join(packed[i : i + 2][::-1] for i in range(0, len(packed), 2))
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    return words if tag.word_order == "big" else list(reversed(words))


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: a register kind, a start address, a count, and the tags inside it."""

    register: str
    start: int
    count: int
    tags: tuple[ModbusTag, ...]


def plan_blocks(tags: Sequence[ModbusTag], max_gap: int = 8, max_block: int = 125) -> list[Block]:
    """Coalesce tags into block reads of at most ``max_block`` registers and ``max_gap`` holes."""
    blocks: list[Block] = []
    for register in ("holding", "input", "coil", "discrete"):
        mine = sorted((t for t in tags if t.register == register), key=lambda t: t.address)
        bits = register in ("coil", "discrete")
        limit = min(MAX_BITS, max_block * 16) if bits else min(MAX_REGISTERS, max_block)
        gap = max_gap * 16 if bits else max_gap
        current: list[ModbusTag] = []
        start = end = 0
        for tag in mine:
            t_end = tag.address + tag.width
            if current and tag.address - end <= gap and max(end, t_end) - start <= limit:
                current.append(tag)
                end = max(end, t_end)
                continue
            if current:
                blocks.append(Block(register, start, end - start, tuple(current)))
            current, start, end = [tag], tag.address, t_end
        if current:
            blocks.append(Block(register, start, end - start, tuple(current)))
    return blocks


def decode_block(
    block: Block, words: Sequence[int | bool], ts_ms: int, latency_ms: float
) -> list[Reading]:
    """Decode every tag of a block from the words (or bits) the device returned."""
    out = []
    for tag in block.tags:
        i = tag.address - block.start
        try:
            chunk = words[i : i + tag.width]
            if block.register in ("coil", "discrete"):
                value: TagValue = bool(chunk[0])
            else:
                value = decode_tag(tag, [int(w) for w in chunk])
            out.append(Reading(tag.name, ts_ms, value, latency_ms=latency_ms))
        except (DataError, IndexError, struct.error) as exc:
            out.append(Reading(tag.name, ts_ms, None, Quality.BAD, str(exc)))
    return out


class ModbusReader:
    """The pymodbus client of one device: block reads per cycle, writes with read-back."""

    def __init__(self, device: ModbusDevice) -> None:
        self.device = device
        self.blocks = plan_blocks(device.tags, device.max_gap, device.max_block)
        self.tags = {t.name: t for t in device.tags}
        self.client = None
        self.requests = 0
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        """Return the device's name and address for messages."""
        d = self.device
        return f"Modbus device {d.name!r} ({d.host}:{d.port} unit {d.unit})"

    async def connect(self) -> None:
        """Open the TCP connection; raise `TemporaryError` naming the device when it fails."""
        from pymodbus.client import AsyncModbusTcpClient

        await self.close()
        self.client = AsyncModbusTcpClient(
            self.device.host,
            port=self.device.port,
            timeout=self.device.timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        ok = await self.client.connect()
        if not ok:
            raise TemporaryError(f"{self.where} is not reachable; check power and network")

    async def close(self) -> None:
        """Close the connection."""
        if self.client is not None:
            self.client.close()
            self.client = None

    async def _request(self, register: str, start: int, count: int) -> list[int | bool]:
        from pymodbus.exceptions import ConnectionException, ModbusException

        if self.client is None or not self.client.connected:
            raise TemporaryError(f"{self.where} is not connected")
        fn = {
            "holding": self.client.read_holding_registers,
            "input": self.client.read_input_registers,
            "coil": self.client.read_coils,
            "discrete": self.client.read_discrete_inputs,
        }[register]
        self.requests += 1
        try:
            rr = await fn(start, count=count, device_id=self.device.unit)
        except ConnectionException as exc:
            raise TemporaryError(f"{self.where} dropped the connection", detail=str(exc)) from exc
        except (ModbusException, TimeoutError) as exc:
            raise TimeoutError(
                f"{self.where} did not answer a read of {register} {start}+{count} "
                f"within {self.device.timeout_s} s (wrong unit id?)"
            ) from exc
        if rr.isError():
            code = getattr(rr, "exception_code", 0)
            why = _EXCEPTIONS.get(code, f"exception {code}")
            raise DataError(f"{self.where} refused {register} {start}+{count}: {why}")
        if register in ("coil", "discrete"):
            return list(rr.bits[:count])
        return list(rr.registers)

    async def read_cycle(self, now_ms: int | None = None) -> list[Reading]:
        """Read every block once; a failing block gives BAD readings for its tags only."""
        out: list[Reading] = []
        async with self._lock:
            for block in self.blocks:
                ts = now_ms if now_ms is not None else int(time.time() * 1000)
                t0 = time.perf_counter()
                try:
                    words = await self._request(block.register, block.start, block.count)
                except (DataError, TimeoutError) as exc:
                    out.extend(Reading(t.name, ts, None, Quality.BAD, str(exc)) for t in block.tags)
                    continue
                latency = (time.perf_counter() - t0) * 1000
                out.extend(decode_block(block, words, ts, latency))
        return out

    async def read_tag(self, name: str) -> TagValue:
        """Read one tag now (used to read back a write)."""
        tag = self.tags[name]
        async with self._lock:
            try:
                words = await self._request(tag.register, tag.address, tag.width)
            except TimeoutError as exc:
                raise TemporaryError(str(exc)) from exc
        block = Block(tag.register, tag.address, tag.width, (tag,))
        reading = decode_block(block, words, 0, 0.0)[0]
        if not reading.good:
            raise DataError(reading.error or f"tag {name!r} has no value")
        return reading.value  # type: ignore[return-value]

    async def write_tag(self, name: str, value: TagValue) -> None:
        """Write one tag (holding registers or a coil)."""
        from pymodbus.exceptions import ModbusException

        tag = self.tags[name]
        if self.client is None or not self.client.connected:
            raise TemporaryError(f"{self.where} is not connected")
        async with self._lock:
            self.requests += 1
            try:
                if tag.register == "coil":
                    rr = await self.client.write_coil(
                        tag.address, bool(value), device_id=self.device.unit
                    )
                else:
                    rr = await self.client.write_registers(
                        tag.address, encode_tag(tag, value), device_id=self.device.unit
                    )
            except (ModbusException, TimeoutError) as exc:
                raise TemporaryError(
                    f"{self.where} did not confirm the write", detail=str(exc)
                ) from exc
        if rr.isError():
            code = getattr(rr, "exception_code", 0)
            raise DataError(f"{self.where} refused the write: {_EXCEPTIONS.get(code, code)}")
