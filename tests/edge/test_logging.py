"""`indunet edge run` logs one line per event for operations: no library chatter at INFO."""

from __future__ import annotations

import asyncio
import logging

from indunet.edge.config import parse_edge_config
from indunet.edge.opcua import OpcuaReader
from indunet.edge.service import CHATTY_LIBRARIES, configure_logging
from indunet.sim.edge_devices import PlcSim


def _connect_once(endpoint: str, tmp_path) -> None:
    cfg = parse_edge_config(
        {
            "broker": {"url": "mqtt://127.0.0.1:1", "enterprise": "e"},
            "buffer": {"path": str(tmp_path / "b.sqlite")},
            "devices": [
                {
                    "name": "p",
                    "machine": "s/a/l/m",
                    "endpoint": endpoint,
                    "tags": [{"name": "speed", "node": "ns=2;s=Press.Speed"}],
                }
            ],
        }
    )

    async def go() -> None:
        reader = OpcuaReader(cfg.devices[0])
        await reader.connect()
        await reader.read_cycle()
        await reader.close()

    asyncio.run(go())


def test_an_opcua_session_leaves_no_library_lines_below_error(tmp_path, caplog):
    saved = {n: logging.getLogger(n).level for n in CHATTY_LIBRARIES}
    plc = PlcSim().start()
    try:
        configure_logging(verbose=False)
        caplog.set_level(logging.DEBUG, logger="indunet")
        _connect_once(plc.endpoint, tmp_path)
    finally:
        plc.stop()
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    chatter = [  # (the simulated PLC's server runs in this process: its lines are not ours)
        r
        for r in caplog.records
        if r.name.split(".")[0] in CHATTY_LIBRARIES
        and not r.name.startswith("asyncua.server")
        and r.levelno < logging.ERROR
    ]
    assert chatter == [], [(r.name, r.levelname, r.getMessage()[:120]) for r in chatter]
    assert not any("CERTIFICATE" in r.getMessage() for r in caplog.records)


def test_verbose_lets_the_libraries_speak(tmp_path, caplog):
    saved = {n: logging.getLogger(n).level for n in CHATTY_LIBRARIES}
    plc = PlcSim().start()
    try:
        configure_logging(verbose=True)
        caplog.set_level(logging.DEBUG)
        _connect_once(plc.endpoint, tmp_path)
    finally:
        plc.stop()
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    # the control: the same session does produce library detail when asked for
    assert any(
        r.name.startswith("asyncua.client") and r.levelno < logging.ERROR for r in caplog.records
    )
