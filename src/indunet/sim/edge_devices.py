"""Simulated field devices for the demo: a clip-on meter (Modbus TCP) and a press PLC (OPC UA).

`EdgeDemo` starts both on 127.0.0.1, drives their values once a second, and runs the edge agent
(`indunet.edge`) that reads them and publishes to the demo broker, so an old machine with only a
meter and a PLC-controlled press appear in the plant like the MQTT-native machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import struct
import threading
import time
from pathlib import Path
from typing import Any

from indunet.connect.broker import free_port

__all__ = ["EdgeDemo", "MeterSim", "PlcSim", "old_press_machine"]

METER_MACHINE = "site-01/press-shop/line-01/old-press"
PLC_MACHINE = "site-01/press-shop/line-01/servo-press"


def old_press_machine() -> Any:
    """Return the plant config of the old press: states from its clip-on meter's power in W."""
    from indunet.plant.config import MachineConfig

    return MachineConfig.model_validate(
        {
            "id": METER_MACHINE,
            "power_tag": "power_w",
            "power_unit": "W",
            "rated_kw": 9.0,
            "expected_interval_s": 1.0,
            "offline_after_intervals": 15,
            "thresholds": {
                "off_below": 100.0,
                "running_above": 4000.0,
                "hysteresis": 100.0,
                "min_dwell_s": 3.0,
            },
        }
    )


def _float_regs(value: float) -> list[int]:
    """Return a float32 as two 16-bit registers, high word first (Eastron's order)."""
    return list(struct.unpack(">HH", struct.pack(">f", value)))


class MeterSim:
    """An Eastron SDM120-like meter on Modbus TCP (input registers, float32), one press behind it.

    The press works in cycles: about 40 s pressing at 7–9 kW, 20 s idle at 0.4 kW.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.energy_kwh = 1234.5
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Any = None
        self._thread: threading.Thread | None = None

    def _registers(self) -> list[int]:
        return self.server.context.devices[1].block["i"][2]

    def update(self, t: float, dt: float) -> None:
        """Set the meter's registers for time ``t`` (seconds)."""
        pressing = (t % 60.0) < 40.0
        watts = (8000.0 + 1000.0 * math.sin(t / 3.0)) if pressing else 400.0
        volts = 230.0 + 2.0 * math.sin(t / 17.0)
        amps = watts / (volts * 0.9)
        self.energy_kwh += watts * dt / 3_600_000.0
        regs = self._registers()
        for address, value in (
            (0x00, volts),
            (0x06, amps),
            (0x0C, watts),
            (0x12, watts / 0.9),
            (0x1E, 0.9),
            (0x46, 50.0),
            (0x48, self.energy_kwh),
            (0x156, self.energy_kwh),
        ):
            regs[address : address + 2] = _float_regs(value)

    def start(self) -> MeterSim:
        """Serve on 127.0.0.1:port."""
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        def block() -> list:
            return [SimData(0, count=512, values=0, datatype=DataType.REGISTERS)]

        def bits() -> list:
            return [SimData(0, count=16, values=False, datatype=DataType.BITS)]

        device = SimDevice(1, simdata=(bits(), bits(), block(), block()))
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)

            async def main() -> None:
                self.server = ModbusTcpServer([device], address=("127.0.0.1", self.port))
                task = asyncio.ensure_future(self.server.serve_forever())
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if self.server.transport is not None:
                        break
                ready.set()
                await task

            with contextlib.suppress(Exception):
                self.loop.run_until_complete(main())
            ready.set()

        self._thread = threading.Thread(target=run, name="demo-meter", daemon=True)
        self._thread.start()
        ready.wait(10)
        self.update(time.time(), 0.0)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.loop and self.server:
            fut = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop)
            with contextlib.suppress(Exception):
                fut.result(5)
        if self._thread:
            self._thread.join(5)


class PlcSim:
    """A servo press PLC on OPC UA: speed (strokes/min), running, and a writable speed setpoint."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/indunet-demo/"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.nodes: dict[str, Any] = {}
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> PlcSim:
        """Start the server and its drive loop in their own thread."""
        ready = threading.Event()

        async def main() -> None:
            from asyncua import Server, ua

            server = Server()
            await server.init()
            server.set_endpoint(self.endpoint)
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            ns = await server.register_namespace("urn:indunet:demo")
            press = await server.nodes.objects.add_object(ua.NodeId("Press", ns), f"{ns}:Press")
            speed = await press.add_variable(ua.NodeId("Press.Speed", ns), f"{ns}:Speed", 0.0)
            setpoint = await press.add_variable(
                ua.NodeId("Press.Setpoint", ns), f"{ns}:Setpoint", 30.0, ua.VariantType.Double
            )
            await setpoint.set_writable()
            for node, key in ((speed, "Press.Speed"), (setpoint, "Press.Setpoint")):
                # the OPC UA way to state a unit (Part 8): the edge agent reads it at connect
                eu = ua.EUInformation(
                    NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                    UnitId=-1,
                    DisplayName=ua.LocalizedText("1/min"),
                    Description=ua.LocalizedText("strokes per minute"),
                )
                await node.add_property(
                    ua.NodeId(f"{key}.EngineeringUnits", ns),
                    ua.QualifiedName("EngineeringUnits", 0),
                    eu,
                )
            running = await press.add_variable(
                ua.NodeId("Press.Running", ns), f"{ns}:Running", True
            )
            self.nodes = {"speed": speed, "setpoint": setpoint, "running": running}
            self._stop = asyncio.Event()
            async with server:
                ready.set()
                while not self._stop.is_set():
                    t = time.time()
                    on = (t % 300.0) < 240.0  # 4 minutes running, 1 minute stopped
                    target = float(await setpoint.read_value())
                    value = target * (1.0 + 0.02 * math.sin(t)) if on else 0.0
                    await speed.write_value(value)
                    await running.write_value(on)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), 1.0)

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            try:
                self.loop.run_until_complete(main())
            except Exception:  # the demo goes on without the PLC
                pass
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="demo-plc", daemon=True)
        self._thread.start()
        ready.wait(60)
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self.loop and self._stop:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)


class EdgeDemo:
    """The meter, the PLC and an edge agent publishing both to ``broker_url``."""

    def __init__(
        self, broker_url: str, enterprise: str, work_dir: Path, secret: str | None = None
    ) -> None:
        self.broker_url = broker_url
        self.enterprise = enterprise
        self.work_dir = work_dir
        self.secret = secret or secrets.token_hex(16)
        self.meter = MeterSim()
        self.plc = PlcSim()
        self.agent: Any = None
        self._stop_agent: asyncio.Event | None = None
        self._agent_loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._halt = threading.Event()

    def config(self) -> dict[str, Any]:
        """Return the edge config of the two devices (what an `edge.toml` would hold)."""
        return {
            "broker": {
                "url": self.broker_url,
                "client_id": "indunet-demo-edge",
                "enterprise": self.enterprise,
            },
            "buffer": {"path": str(self.work_dir / "edge-buffer.sqlite")},
            "commands": {"secret": self.secret},
            "devices": [
                {
                    "machine": METER_MACHINE,
                    "profile": "eastron-sdm120",
                    "host": "127.0.0.1",
                    "port": self.meter.port,
                    "poll_ms": 1000,
                },
                {
                    "name": "servo-press",
                    "machine": PLC_MACHINE,
                    "endpoint": self.plc.endpoint,
                    "sampling_ms": 500,
                    "poll_ms": 1000,
                    "tags": [
                        {
                            "name": "speed_spm",
                            "node": "ns=2;s=Press.Speed",
                            "description": "Stroke rate",
                        },
                        {
                            "name": "running",
                            "node": "ns=2;s=Press.Running",
                            "type": "boolean",
                            "description": "Main drive running",
                        },
                        {
                            "name": "setpoint_spm",
                            "node": "ns=2;s=Press.Setpoint",
                            "writable": True,
                            "min": 0,
                            "max": 60,
                        },
                    ],
                },
            ],
        }

    def start(self) -> EdgeDemo:
        """Start the devices, their drive loop and the agent."""
        import logging

        from indunet.edge.agent import EdgeAgent
        from indunet.edge.config import parse_edge_config

        # asyncua reports an unsecured demo endpoint and session-timeout haggling at warning level
        for name in ("asyncua", "pymodbus"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.meter.start()
        self.plc.start()

        def drive() -> None:
            last = time.time()
            while not self._halt.wait(1.0):
                now = time.time()
                with contextlib.suppress(Exception):
                    self.meter.update(now, now - last)
                last = now

        self.agent = EdgeAgent(parse_edge_config(self.config(), self.work_dir))
        self._agent_loop = asyncio.new_event_loop()
        self._stop_agent = asyncio.Event()

        def run_agent() -> None:
            assert self._agent_loop and self._stop_agent
            asyncio.set_event_loop(self._agent_loop)
            with contextlib.suppress(Exception):
                self._agent_loop.run_until_complete(self.agent.run(self._stop_agent))

        for target, name in ((drive, "demo-meter-drive"), (run_agent, "demo-edge-agent")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the agent (it flushes what it can), then the devices."""
        self._halt.set()
        if self._agent_loop and self._stop_agent:
            self._agent_loop.call_soon_threadsafe(self._stop_agent.set)
        for thread in self._threads:
            thread.join(10)
        self.plc.stop()
        self.meter.stop()
