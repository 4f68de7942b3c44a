"""OPC UA as the source says it: every change, with its SourceTimestamp, even when the server
changes a value many times between two publishes of the subscription."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from indunet.connect.mqtt import MqttIngest
from indunet.edge.agent import EdgeAgent
from indunet.edge.config import parse_edge_config
from indunet.edge.opcua import OpcuaReader, quality_of
from indunet.model import Quality
from indunet.store import open_historian
from tests.connect.test_mqtt import _require_broker
from tests.edge.servers import OpcuaSim

CHANGES = 60
EVERY_S = 0.02  # 50 changes/s against a 500 ms publishing interval: ~25 per publish
T0_MS = 1_700_000_000_000


@pytest.fixture
def plc():
    sim = OpcuaSim(count=1).start()
    yield sim
    sim.stop()


def _device(plc: OpcuaSim, **extra) -> dict:
    return {
        "name": "press",
        "machine": "s1/press/l1/press-1",
        "endpoint": plc.endpoint,
        "sampling_ms": 10,
        "publish_ms": 500,
        "poll_ms": 100,
        "tags": [{"name": "speed", "node": "ns=2;s=Press.Speed", **extra.pop("tag", {})}],
        **extra,
    }


def _config(plc: OpcuaSim, tmp_path: Path, enterprise: str = "e", **extra):
    return parse_edge_config(
        {
            "broker": {
                "url": "mqtt://127.0.0.1:1883",
                "enterprise": enterprise,
                "client_id": f"edge-{enterprise}",
            },
            "buffer": {"path": str(tmp_path / "b.sqlite")},
            "devices": [_device(plc, **extra)],
        }
    )


def _change_fast(plc: OpcuaSim, statuses: list | None = None) -> list[tuple[float, int]]:
    """Write CHANGES values (or one per status given), each with its own SourceTimestamp and
    status; return (value, source ms)."""
    from asyncua import ua

    async def go() -> list[tuple[float, int]]:
        node = plc.nodes["speed"]
        written = []
        for i, status in enumerate(statuses or [None] * CHANGES):
            source_ms = T0_MS + i * 7  # not the wall clock: a PLC's own time
            stamp = datetime.fromtimestamp(source_ms / 1000, UTC)
            extra = {} if status is None else {"StatusCode": ua.StatusCode(status)}
            await node.write_value(
                ua.DataValue(
                    ua.Variant(100.0 + i, ua.VariantType.Double), SourceTimestamp=stamp, **extra
                )
            )
            written.append((100.0 + i, source_ms))
            await asyncio.sleep(EVERY_S)
        return written

    return asyncio.run_coroutine_threadsafe(go(), plc.loop).result(30)


def _collect(cfg, plc: OpcuaSim) -> tuple[list, list[tuple[float, int]]]:
    async def go():
        reader = OpcuaReader(cfg.devices[0])
        await reader.connect()
        assert reader.mode == "subscribe"
        await asyncio.sleep(0.3)
        reader._handler.changes.clear()  # the initial value is not one of ours
        writer = asyncio.get_running_loop().run_in_executor(None, _change_fast, plc)
        readings = []
        while not writer.done():
            readings += await reader.read_cycle()
            await asyncio.sleep(cfg.devices[0].poll_ms / 1000)
        await asyncio.sleep(1.2)  # the last publish
        readings += await reader.read_cycle()
        await reader.close()
        return readings, await writer

    return asyncio.run(go())


def test_every_change_between_publishes_arrives_with_its_source_timestamp(plc, tmp_path):
    readings, written = _collect(_config(plc, tmp_path), plc)
    got = [(r.value, r.ts_ms) for r in readings if r.tag == "speed"]
    assert got == written  # every change, in order, at the PLC's own time
    assert all(r.quality == Quality.GOOD for r in readings)
    assert all(r.server_ts_ms and r.server_ts_ms > T0_MS for r in readings)  # kept too


def test_a_queue_of_one_loses_changes_between_publishes(plc, tmp_path):
    """The control: what the sized queue prevents (the server keeps one sample per item)."""
    readings, written = _collect(_config(plc, tmp_path, tag={"queue_size": 1}), plc)
    got = [(r.value, r.ts_ms) for r in readings]
    assert set(got) < set(written)
    assert len(got) < len(written) // 2


def test_newest_per_cycle_only_when_chosen(plc, tmp_path):
    readings, written = _collect(_config(plc, tmp_path, changes="newest"), plc)
    values = [r.value for r in readings]
    assert values[-1] == written[-1][0]
    assert len(values) < len(written) // 2  # one per publish at most
    assert all(r.ts_ms > T0_MS + 10**9 for r in readings)  # the cycle's time, not the source's


def test_status_codes_map_to_quality():
    from asyncua import ua

    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) == Quality.GOOD
    assert quality_of(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) == Quality.UNCERTAIN
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) == Quality.BAD
    assert quality_of(None) == Quality.GOOD  # no status: the server reported Good


@pytest.mark.parametrize("with_quality", [False, True], ids=["good", "mixed-quality"])
def test_every_change_reaches_the_historian_with_its_source_timestamp(
    plc, tmp_path, settings_factory, with_quality
):
    """Every change is stored with its SourceTimestamp; uncertain values are kept with their
    quality (they were dropped), bad ones without a value count as errors, not points."""
    from asyncua import ua

    codes = ua.StatusCodes
    statuses = (
        [codes.Good, codes.UncertainLastUsableValue, codes.Good, codes.UncertainSensorNotAccurate]
        * 5
        if with_quality
        else None
    )
    _require_broker()
    ent = f"f{uuid.uuid4().hex[:10]}"
    cfg = _config(plc, tmp_path, enterprise=ent)
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        "mqtt://127.0.0.1:1883",
        client_id=f"ing-{ent}",
        session_expiry_s=60,
        flush_s=0.05,
        sparkplug_groups=[],
    )
    ingest.start()
    agent = EdgeAgent(cfg)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=lambda: loop.run_until_complete(agent.run(stop)), daemon=True)
    runner.start()
    tag = "s1/press/l1/press-1/speed"

    def stored() -> list[tuple[float, int]]:
        if not any(t.path == tag for t in historian.tags(ent)):
            return []
        rows = historian.series(ent, tag, T0_MS, T0_MS + 10**6).to_pylist()
        qualities[:] = [r["quality"] for r in rows]
        return [(r["value"], r["ts"]) for r in rows]

    qualities: list[int] = []

    try:
        deadline = time.monotonic() + 20
        while not (
            agent.forwarder.stats.connected
            and ingest.stats.subscribed
            and agent.tasks["press"].health.connected
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        written = _change_fast(plc, statuses)
        deadline = time.monotonic() + 20
        while len(stored()) < len(written) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored() == written
        if statuses:
            assert qualities == [
                Quality.UNCERTAIN if ua.StatusCode(c).is_uncertain() else Quality.GOOD
                for c in statuses
            ]
        else:
            assert set(qualities) == {Quality.GOOD}
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(15)
        ingest.stop()
        historian.close()


def test_changes_become_readings_with_the_right_time_and_quality():
    from types import SimpleNamespace

    from asyncua import ua

    plc = SimpleNamespace(endpoint="opc.tcp://127.0.0.1:1/none")  # no server needed

    from indunet.edge.opcua import Change

    cfg = parse_edge_config(
        {
            "broker": {"url": "mqtt://127.0.0.1:1", "enterprise": "e"},
            "devices": [_device(plc, tag={"type": "number"})],
        }
    )
    reader = OpcuaReader(cfg.devices[0])
    good = ua.StatusCode(ua.StatusCodes.Good)
    changes = [
        Change("speed", 1.0, T0_MS + 1, T0_MS + 9, good),  # source time wins
        Change("speed", 2.0, None, T0_MS + 20, good),  # no source time: the server's
        Change("speed", 3.0, None, None, None),  # neither: the cycle's
        Change(
            "speed",
            4.0,
            T0_MS + 40,
            T0_MS + 41,
            ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
        ),
        Change(
            "speed", None, T0_MS + 50, T0_MS + 51, ua.StatusCode(ua.StatusCodes.BadSensorFailure)
        ),
        Change("speed", "text", T0_MS + 60, None, good),  # not what the config says
    ]
    out = reader._readings(changes, cycle_ms=T0_MS + 999)
    assert [(r.value, r.ts_ms, r.quality) for r in out] == [
        (1.0, T0_MS + 1, Quality.GOOD),
        (2.0, T0_MS + 20, Quality.GOOD),
        (3.0, T0_MS + 999, Quality.GOOD),
        (4.0, T0_MS + 40, Quality.UNCERTAIN),
        (None, T0_MS + 50, Quality.BAD),
        (None, T0_MS + 60, Quality.BAD),
    ]
    assert out[0].server_ts_ms == T0_MS + 9
    assert out[3].error == "UncertainLastUsableValue" and not out[3].good
    assert out[4].error == "BadSensorFailure"
    assert "holds a string" in out[5].error


def test_an_items_absolute_deadband_is_applied_by_the_server(plc, tmp_path):
    cfg = _config(plc, tmp_path, publish_ms=100, tag={"deadband": 5})
    node = plc.nodes["speed"]

    def write(value: float) -> None:
        asyncio.run_coroutine_threadsafe(node.write_value(value), plc.loop).result(5)

    async def go() -> list:
        write(0.0)
        reader = OpcuaReader(cfg.devices[0])
        await reader.connect()
        await asyncio.sleep(0.3)
        reader._handler.changes.clear()
        for value in (10.0, 12.0, 20.0, 21.0, 30.0, 26.0):
            write(value)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        readings = await reader.read_cycle()
        await reader.close()
        return readings

    readings = asyncio.run(go())
    # each reported value differs from the last *reported* one by more than 5
    assert [r.value for r in readings] == [10.0, 20.0, 30.0]
