"""OPC UA against a real asyncua server: subscriptions, polling, missing nodes, browse."""

from __future__ import annotations

import asyncio
import time

import pytest

from indunet.edge.config import OpcuaDevice, parse_edge_config
from indunet.edge.opcua import OpcuaReader, browse, starter_config
from tests.edge.servers import OpcuaSim


@pytest.fixture(scope="module")
def plc():
    server = OpcuaSim(count=2000).start()
    yield server
    server.stop()


def _device(plc: OpcuaSim, **kw) -> OpcuaDevice:
    base = {
        "name": "press",
        "machine": "s/a/l/press",
        "endpoint": plc.endpoint,
        "sampling_ms": 100,
        "tags": [
            {"name": "speed", "node": "ns=2;s=Press.Speed"},
            {"name": "running", "path": "0:Objects/2:Press/2:Running", "type": "boolean"},
            {"name": "ghost", "node": "ns=2;s=Press.Nothing"},
            {"name": "wrongtype", "node": "ns=2;s=Press.Running"},
        ],
    }
    return OpcuaDevice.model_validate({**base, **kw})


def test_subscription_delivers_changes_and_bad_tags_are_named(plc: OpcuaSim) -> None:
    async def go():
        reader = OpcuaReader(_device(plc))
        await reader.connect()
        assert reader.mode == "subscribe"
        problems = " | ".join(reader.problems)
        assert "tag 'ghost' field 'node'" in problems and "does not exist" in problems
        assert "tag 'wrongtype' field 'type'" in problems and "boolean" in problems
        first = {}
        for _ in range(50):
            first.update({r.tag: r.value for r in await reader.read_cycle()})
            if "speed" in first:
                break
            await asyncio.sleep(0.05)
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(plc.nodes["speed"].write_value(42.5), plc.loop)
        )
        later = {}
        for _ in range(60):
            later.update({r.tag: r.value for r in await reader.read_cycle()})
            if later.get("speed") == 42.5:
                break
            await asyncio.sleep(0.05)
        await reader.close()
        return first, later

    first, later = asyncio.run(go())
    assert first["speed"] == 10.0 and first["running"] is True
    assert later["speed"] == 42.5


def test_polling_mode_reads_every_tag(plc: OpcuaSim) -> None:
    tags = [{"name": f"v{i}", "node": f"ns=2;s=Bulk.V{i}"} for i in range(1500)]

    async def go():
        reader = OpcuaReader(_device(plc, mode="poll", tags=tags))
        await reader.connect()
        readings = await reader.read_cycle()
        await reader.close()
        return reader, readings

    reader, readings = asyncio.run(go())
    assert [r.value for r in readings] == [float(i) for i in range(1500)]
    assert reader.requests == 4  # 2 checks + 2 reads of 1000 nodes, not 1500 requests


def test_unreachable_server_is_a_clear_temporary_error() -> None:
    from indunet.errors import TemporaryError

    dev = OpcuaDevice.model_validate(
        {
            "name": "gone",
            "machine": "s/a/l/gone",
            "endpoint": "opc.tcp://127.0.0.1:1/x",
            "timeout_s": 1,
            "tags": [{"name": "x", "node": "ns=2;s=X"}],
        }
    )
    with pytest.raises(TemporaryError, match=r"'gone'.*not reachable"):
        asyncio.run(OpcuaReader(dev).connect())


def test_browse_finds_thousands_of_nodes_and_writes_a_usable_config(plc: OpcuaSim) -> None:
    t0 = time.perf_counter()
    nodes = asyncio.run(browse(plc.endpoint))
    took = time.perf_counter() - t0
    assert len(nodes) >= 2003
    assert {n.kind for n in nodes} >= {"number", "boolean"}
    text = starter_config(plc.endpoint, nodes)
    import tomllib

    cfg = parse_edge_config(tomllib.loads(text))
    assert not cfg.problems and len(cfg.devices[0].tags) >= 2003
    assert took < 60  # generous: only guards against a per-node request storm
