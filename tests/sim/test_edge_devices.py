"""The demo's simulated meter and PLC, read by the real edge agent through the real Mosquitto."""

from __future__ import annotations

import time
import uuid

import pytest

from indunet.connect.mqtt import MqttIngest
from indunet.sim.edge_devices import METER_MACHINE, PLC_MACHINE, EdgeDemo, MeterSim
from indunet.store import open_historian
from tests.connect.test_mqtt import BROKER, _require_broker


def test_meter_registers_follow_the_press_cycle():
    meter = MeterSim().start()
    try:
        meter.update(10.0, 1.0)  # pressing
        assert 7000 < _read_float(meter, 0x0C) < 9100
        meter.update(50.0, 1.0)  # idle part of the minute
        assert _read_float(meter, 0x0C) == 400.0
        before = meter.energy_kwh
        meter.update(51.0, 3600.0)  # an hour idle at 0.4 kW
        assert meter.energy_kwh - before == pytest.approx(0.4)
    finally:
        meter.stop()


def _read_float(meter: MeterSim, address: int) -> float:
    import struct

    hi, lo = meter._registers()[address : address + 2]
    return round(struct.unpack(">f", struct.pack(">HH", hi, lo))[0], 3)


def test_old_press_meter_and_servo_press_plc_reach_the_historian(settings_factory, tmp_path):
    _require_broker()
    enterprise = f"e{uuid.uuid4().hex[:10]}"
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        BROKER,
        client_id=f"ing-{enterprise}",
        session_expiry_s=60,
        flush_s=0.05,
        sparkplug_groups=[],
    )
    ingest.start()
    demo = EdgeDemo(BROKER, enterprise, tmp_path / "edge").start()
    try:
        wanted = {f"{METER_MACHINE}/power_w", f"{PLC_MACHINE}/speed_spm"}
        deadline = time.monotonic() + 40
        seen: set[str] = set()
        while time.monotonic() < deadline and not wanted <= seen:
            seen = {r["tag"] for r in historian.latest(enterprise, "").to_pylist()}
            time.sleep(0.5)
        assert wanted <= seen, seen
        latest = {r["tag"]: r["value"] for r in historian.latest(enterprise, "").to_pylist()}
        assert latest[f"{METER_MACHINE}/voltage_v"] > 200
        assert latest[f"{PLC_MACHINE}/setpoint_spm"] == 30.0
        # units end to end: from the meter profile (V, W) and the PLC's EngineeringUnits
        # (1/min), descriptions from the edge config
        tags = {t.path: t for t in historian.tags(enterprise)}
        assert tags[f"{METER_MACHINE}/voltage_v"].unit == "V"
        assert tags[f"{METER_MACHINE}/power_w"].unit == "W"
        assert tags[f"{PLC_MACHINE}/speed_spm"].unit == "1/min"
        assert tags[f"{PLC_MACHINE}/speed_spm"].description == "Stroke rate"
        assert tags[f"{PLC_MACHINE}/setpoint_spm"].unit == "1/min"
        assert tags[f"{PLC_MACHINE}/running"].unit is None
        assert str(tags[f"{PLC_MACHINE}/running"].data_type) == "boolean"
    finally:
        demo.stop()
        ingest.stop()
        historian.close()
