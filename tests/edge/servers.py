"""Real protocol peers for the edge tests: a pymodbus TCP server and an asyncua server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ModbusSim:
    """A pymodbus TCP server in its own thread and event loop; counts the requests it saw."""

    units: tuple[int, ...] = (1,)
    size: int = 10_000
    port: int = field(default_factory=free_port)
    requests: int = 0
    writes: int = 0

    def __post_init__(self) -> None:
        from pymodbus.simulator import DataType, SimData, SimDevice

        def regs() -> list:
            return [SimData(0, count=self.size, values=0, datatype=DataType.REGISTERS)]

        def bits() -> list:
            return [SimData(0, count=2000, values=False, datatype=DataType.BITS)]

        self.devices = [SimDevice(u, simdata=(bits(), bits(), regs(), regs())) for u in self.units]
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = None
        self._thread: threading.Thread | None = None

    def _trace(self, sending: bool, pdu):
        if not sending:
            self.requests += 1
            if pdu.function_code in (5, 6, 15, 16):
                self.writes += 1
        return pdu

    def _regs(self, unit: int, kind: str) -> list[int]:
        block = {"co": "c", "di": "d", "hr": "h", "ir": "i"}[kind]
        return self.server.context.devices[unit].block[block][2]

    def set(self, unit: int, kind: str, address: int, values: list[int]) -> None:
        """Put raw register values (kind: hr, ir; co/di one register per bit) at an address."""
        self._regs(unit, kind)[address : address + len(values)] = [int(v) for v in values]

    def get(self, unit: int, kind: str, address: int, count: int) -> list[int]:
        """Return raw register values at a 0-based address."""
        return list(self._regs(unit, kind)[address : address + count])

    def start(self) -> ModbusSim:
        """Start serving on 127.0.0.1:port."""
        from pymodbus.server import ModbusTcpServer

        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)

            async def main() -> None:
                self.server = ModbusTcpServer(
                    self.devices, address=("127.0.0.1", self.port), trace_pdu=self._trace
                )
                task = asyncio.ensure_future(self.server.serve_forever())
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if self.server.transport is not None:
                        break
                ready.set()
                await task

            try:
                self.loop.run_until_complete(main())
            except Exception:
                pass
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        """Stop the server (clients see the connection drop)."""
        if self.loop and self.server:
            fut = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop)
            with contextlib.suppress(Exception):
                fut.result(5)
        if self._thread:
            self._thread.join(5)


def in_thread(fn: Callable[[], None]) -> threading.Thread:
    """Run ``fn`` in a daemon thread and return it."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


class OpcuaSim:
    """An asyncua server on 127.0.0.1 with ``count`` numeric variables plus a few named ones."""

    def __init__(self, count: int = 2000) -> None:
        self.count = count
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/indunet/"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = None
        self.nodes: dict[str, object] = {}
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OpcuaSim:
        """Start the server in its own thread."""
        ready = threading.Event()

        async def main() -> None:
            from asyncua import Server, ua

            server = Server()
            await server.init()
            server.set_endpoint(self.endpoint)
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            ns = await server.register_namespace("urn:indunet:test")
            plc = await server.nodes.objects.add_object(ua.NodeId("Press", ns), f"{ns}:Press")
            speed = await plc.add_variable(ua.NodeId("Press.Speed", ns), f"{ns}:Speed", 10.0)
            setpoint = await plc.add_variable(
                ua.NodeId("Press.Setpoint", ns), f"{ns}:Setpoint", 50.0, ua.VariantType.Double
            )
            await setpoint.set_writable()
            running = await plc.add_variable(ua.NodeId("Press.Running", ns), f"{ns}:Running", True)
            self.nodes = {"speed": speed, "setpoint": setpoint, "running": running}
            bulk = await server.nodes.objects.add_object(ua.NodeId("Bulk", ns), f"{ns}:Bulk")
            for i in range(self.count):
                await bulk.add_variable(ua.NodeId(f"Bulk.V{i}", ns), f"{ns}:V{i}", float(i))
            self.server = server
            self._stop = asyncio.Event()
            async with server:
                ready.set()
                await self._stop.wait()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            try:
                self.loop.run_until_complete(main())
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(60)
        return self

    def call(self, coro) -> object:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        """Stop the server."""
        if self.loop and self._stop:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)
