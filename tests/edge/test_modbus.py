"""Modbus: register decoding, block planning, and reads against a real pymodbus server."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indunet.edge.agent import EdgeAgent
from indunet.edge.config import ModbusDevice, ModbusTag, parse_edge_config
from indunet.edge.modbus import ModbusReader, decode_registers, decode_tag, encode_tag, plan_blocks
from indunet.model import Quality
from tests.edge.servers import ModbusSim


def _tag(**kw) -> ModbusTag:
    kw.setdefault("name", "t")
    return ModbusTag.model_validate(kw)


@pytest.mark.parametrize(
    ("regs", "kind", "word", "byte", "expected"),
    [
        ([0x4366, 0x8000], "float32", "big", "big", 230.5),
        ([0x8000, 0x4366], "float32", "little", "big", 230.5),
        ([0x6643, 0x0080], "float32", "big", "little", 230.5),
        ([0x0080, 0x6643], "float32", "little", "little", 230.5),
        ([0xFFFF], "int16", "big", "big", -1),
        ([0xFFFF], "uint16", "big", "big", 65535),
        ([0x0001, 0x0000], "int32", "big", "big", 65536),
        ([0x0000, 0x0001], "int32", "little", "big", 65536),
        ([0xFFFF, 0xFFFE], "int32", "big", "big", -2),
        ([0x3FF0, 0, 0, 0], "float64", "big", "big", 1.0),
        ([0x4142, 0x4300], "string", "big", "big", "ABC"),
        ([0x4241, 0x0043], "string", "big", "little", "ABC"),
    ],
)
def test_word_and_byte_orders(regs, kind, word, byte, expected) -> None:
    assert decode_registers(regs, kind, word, byte) == expected


@given(
    kind=st.sampled_from(["int16", "uint16", "int32", "uint32", "int64", "float32", "float64"]),
    word=st.sampled_from(["big", "little"]),
    byte=st.sampled_from(["big", "little"]),
    raw=st.integers(min_value=-32768, max_value=32767),
)
def test_encode_decode_round_trip(kind, word, byte, raw) -> None:
    if kind.startswith("uint"):
        raw = abs(raw)
    tag = _tag(address=0, type=kind, word_order=word, byte_order=byte, scale=0.5, offset=10)
    value = raw * 0.5 + 10
    regs = encode_tag(tag, value)
    assert len(regs) == tag.width
    assert decode_tag(tag, regs) == pytest.approx(value)


def test_nan_and_short_reads_are_refused() -> None:
    nan = list(struct.unpack(">HH", struct.pack(">f", float("nan"))))
    with pytest.raises(Exception, match="not a number"):
        decode_tag(_tag(address=0, type="float32"), nan)
    with pytest.raises(Exception, match="needs 2 registers"):
        decode_registers([1], "int32")
    with pytest.raises(Exception, match="does not fit"):
        encode_tag(_tag(address=0, type="int16"), 40000)


def test_planner_coalesces_within_gap_and_125_registers() -> None:
    tags = [_tag(name=f"t{i}", address=i * 2, type="float32") for i in range(100)]  # 0..199
    tags.append(_tag(name="far", address=1000))
    tags.append(_tag(name="in", address=0, register="input"))
    blocks = plan_blocks(tags, max_gap=8)
    hr = [b for b in blocks if b.register == "holding"]
    assert [(b.start, b.count) for b in hr] == [(0, 124), (124, 76), (1000, 1)]
    assert all(b.count <= 125 for b in blocks)
    assert sum(len(b.tags) for b in blocks) == len(tags)
    # a gap larger than max_gap splits the block
    split = plan_blocks([_tag(name="a", address=0), _tag(name="b", address=20)], max_gap=8)
    assert len(split) == 2
    joined = plan_blocks([_tag(name="a", address=0), _tag(name="b", address=20)], max_gap=19)
    assert [(b.start, b.count) for b in joined] == [(0, 21)]


@given(
    st.lists(
        st.tuples(st.integers(0, 3000), st.sampled_from(["uint16", "float32", "float64"])),
        min_size=1,
        max_size=60,
        unique_by=lambda t: t[0],
    ),
    st.integers(0, 30),
)
def test_planner_never_loses_a_tag_or_passes_the_limit(specs, gap) -> None:
    tags = [_tag(name=f"t{i}", address=a, type=k) for i, (a, k) in enumerate(specs)]
    blocks = plan_blocks(tags, max_gap=gap)
    assert sorted(t.name for b in blocks for t in b.tags) == sorted(t.name for t in tags)
    for b in blocks:
        assert b.count <= 125
        assert all(
            b.start <= t.address and t.address + t.width <= b.start + b.count for t in b.tags
        )


@pytest.fixture
def sim():
    server = ModbusSim(units=(1, 2)).start()
    yield server
    server.stop()


def _device(sim: ModbusSim, **kw) -> ModbusDevice:
    base = {
        "name": "m",
        "machine": "s/a/l/m",
        "host": "127.0.0.1",
        "port": sim.port,
        "timeout_s": 0.5,
    }
    return ModbusDevice.model_validate({**base, **kw})


def test_block_reads_need_far_fewer_requests_than_tags(sim: ModbusSim) -> None:
    tags = [{"name": f"r{i}", "address": i * 2, "type": "float32"} for i in range(200)]
    for i in range(200):
        sim.set(1, "hr", i * 2, list(struct.unpack(">HH", struct.pack(">f", i + 0.5))))
    dev = _device(sim, tags=tags)

    async def go():
        reader = ModbusReader(dev)
        await reader.connect()
        before = sim.requests
        readings = await reader.read_cycle()
        await reader.close()
        return readings, sim.requests - before

    readings, requests = asyncio.run(go())
    assert requests == 4 == len(plan_blocks(dev.tags))  # 400 registers / 125 -> 4 reads, not 200
    assert [r.value for r in readings] == [i + 0.5 for i in range(200)]


def test_profile_meter_with_word_orders_and_bad_blocks(sim: ModbusSim) -> None:
    cfg = parse_edge_config(
        {
            "devices": [
                {
                    "name": "em24",
                    "machine": "s/a/l/em24",
                    "host": "127.0.0.1",
                    "port": sim.port,
                    "unit": 2,
                    "profile": "carlo-gavazzi-em24",
                    "timeout_s": 0.5,
                    "tags": [{"name": "missing", "address": 9999, "register": "input"}],
                }
            ]
        }
    )
    (dev,) = cfg.devices
    sim.set(2, "hr", 0, [2305, 0])  # 230.5 V, INT32 LSW first, x10
    sim.set(2, "hr", 0x28, [0x86A0, 0x0001])  # 100000 -> 10000.0 W
    readings = {r.tag: r for r in asyncio.run(_one_cycle(dev))}
    assert readings["voltage_l1_v"].value == pytest.approx(230.5)
    assert readings["power_w"].value == pytest.approx(10000.0)
    assert readings["missing"].quality == Quality.GOOD  # inside the 10,000 registers
    wrong = _device(sim, unit=9, tags=[{"name": "x", "address": 1}])
    (bad,) = asyncio.run(_one_cycle(wrong))
    assert bad.quality == Quality.BAD and "unit 9" in bad.error
    illegal = _device(sim, tags=[{"name": "x", "address": 20000}, {"name": "y", "address": 3}])
    got = {r.tag: r for r in asyncio.run(_one_cycle(illegal))}
    assert "illegal data address" in got["x"].error and got["y"].good


async def _one_cycle(dev: ModbusDevice):
    reader = ModbusReader(dev)
    await reader.connect()
    try:
        return await reader.read_cycle()
    finally:
        await reader.close()


def test_a_device_that_disappears_comes_back_without_stalling_the_other(
    tmp_path: Path,
) -> None:
    one = ModbusSim(units=(1,)).start()
    two = ModbusSim(units=(1,)).start()
    one.set(1, "hr", 0, [11])
    two.set(1, "hr", 0, [22])
    cfg = parse_edge_config(
        {
            "buffer": {"path": str(tmp_path / "b.sqlite")},
            "publisher": {"health_s": 0.2},
            "devices": [
                {
                    "name": f"d{i}",
                    "machine": f"s/a/l/d{i}",
                    "host": "127.0.0.1",
                    "port": sim.port,
                    "poll_ms": 50,
                    "timeout_s": 0.3,
                    "tags": [{"name": "v", "address": 0}],
                }
                for i, sim in ((1, one), (2, two))
            ],
        }
    )
    agent = EdgeAgent(cfg, start_publisher=False)
    port = one.port
    seen: dict[str, list] = {"d1": [], "d2": []}

    async def scenario():
        stop = asyncio.Event()
        runner = asyncio.create_task(agent.run(stop))
        await _until(lambda: agent.tasks["d1"].health.reads > 3)
        one.stop()
        await _until(lambda: not agent.tasks["d1"].health.connected, 10)
        reads_two = agent.tasks["d2"].health.reads
        await asyncio.sleep(0.5)
        assert agent.tasks["d2"].health.reads > reads_two + 3  # the other device kept going
        back = ModbusSim(units=(1,), port=port).start()
        back.set(1, "hr", 0, [33])
        await _until(lambda: agent.tasks["d1"].health.connected, 15)
        await asyncio.sleep(0.3)
        stop.set()
        await runner
        back.stop()

    try:
        asyncio.run(scenario())
    finally:
        two.stop()
    from indunet.edge.buffer import EdgeBuffer

    buf = EdgeBuffer(tmp_path / "b.sqlite", 1 << 20)
    for row in buf.read(0, 100_000):
        values = orjson.loads(row.payload)
        if "v" in values:
            seen[row.key].append(values["v"])
        if row.key == "d1" and "edge_connected" in values:
            seen.setdefault("health", []).append(values["edge_connected"])
    buf.close()
    assert 11 in seen["d1"] and 33 in seen["d1"] and set(seen["d2"]) == {22}
    assert False in seen["health"] and seen["health"][-1] is False  # down, then stopped
    assert seen["health"].count(True) >= 2  # connected, and connected again


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
