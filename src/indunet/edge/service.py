"""What the ``indunet edge`` commands do: run the agent, check a config once, read the status."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

from indunet.edge.agent import EdgeAgent, status_path
from indunet.edge.config import EdgeConfig, ModbusDevice
from indunet.edge.modbus import ModbusReader
from indunet.edge.opcua import OpcuaReader, browse, starter_config
from indunet.errors import ConfigError, IndunetError

__all__ = ["browse_to_config", "check_devices", "read_status", "run_agent"]


#: protocol libraries whose INFO and DEBUG (session haggling, certificates, packet dumps) are
#: for developers; the agent logs what operations need (device down / back, buffer full …)
CHATTY_LIBRARIES = ("asyncua", "pymodbus", "paho")


def configure_logging(verbose: bool = False) -> None:
    """One line per event: the agent's INFO, the libraries' errors only (all with ``verbose``)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)


def run_agent(cfg: EdgeConfig) -> None:
    """Run the agent until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await EdgeAgent(cfg).run(stop)

    asyncio.run(main())


async def _check_one(dev: Any) -> list[dict[str, Any]]:
    reader = ModbusReader(dev) if isinstance(dev, ModbusDevice) else OpcuaReader(dev)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        await reader.connect()
        for p in getattr(reader, "problems", []):
            rows.append(
                {
                    "device": dev.name,
                    "tag": "-",
                    "value": "",
                    "quality": "BAD",
                    "latency_ms": "",
                    "note": p,
                }
            )
        if isinstance(reader, OpcuaReader):
            reader.mode = "poll"
        for r in await reader.read_cycle():
            rows.append(
                {
                    "device": dev.name,
                    "tag": r.tag,
                    "value": "" if r.value is None else r.value,
                    "quality": r.quality.name,
                    "latency_ms": round(r.latency_ms, 2),
                    "note": r.error or "",
                }
            )
    except (IndunetError, OSError, TimeoutError) as exc:
        rows.append(
            {
                "device": dev.name,
                "tag": "*",
                "value": "",
                "quality": "BAD",
                "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
                "note": str(exc),
            }
        )
    finally:
        await reader.close()
    return rows


def check_devices(cfg: EdgeConfig) -> list[dict[str, Any]]:
    """Connect to every device once and return one row per tag (value, quality, latency)."""

    async def main() -> list[dict[str, Any]]:
        results = await asyncio.gather(*(_check_one(d) for d in cfg.devices))
        return [row for rows in results for row in rows]

    rows = [
        {
            "device": p.device,
            "tag": "*",
            "value": "",
            "quality": "CONFIG",
            "latency_ms": "",
            "note": p.message,
        }
        for p in cfg.problems
    ]
    return rows + asyncio.run(main())


def read_status(cfg: EdgeConfig) -> dict[str, Any]:
    """Return the status the running agent last wrote next to its buffer."""
    path = status_path(cfg.buffer.path)
    if not path.is_file():
        raise ConfigError(f"no status at {path}; is `indunet edge run` running with this config?")
    return json.loads(path.read_text(encoding="utf-8"))


def browse_to_config(endpoint: str, out: Path | None, root: str, machine: str) -> tuple[int, str]:
    """Browse a server and return (variables found, starter config text); write it to ``out``."""
    nodes = asyncio.run(browse(endpoint, root=root))
    text = starter_config(endpoint, nodes, machine)
    if out is not None:
        if out.exists():
            raise ConfigError(f"{out} exists; choose another --out")
        out.write_text(text, encoding="utf-8")
    return len(nodes), text
