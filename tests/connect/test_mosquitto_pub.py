"""Raw payloads sent with the `mosquitto_pub` tool to the shared Mosquitto, into MqttIngest.

Valid ones are stored; every bad one is in the dead-letter store with its topic and reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from indunet.connect.codec.sparkplug import SparkplugMapping
from indunet.connect.mqtt import MqttIngest, parse_mqtt_url
from indunet.store import open_historian
from tests.connect.test_mqtt import BROKER, T0, _require_broker, _wait

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


def _pub(topic: str, *, message: str | None = None, file=None) -> None:
    host, port, *_ = parse_mqtt_url(BROKER)
    args = [MOSQUITTO_PUB, "-h", host, "-p", str(port), "-q", "1", "-t", topic]
    args += ["-f", str(file)] if file is not None else ["-m", message or ""]
    subprocess.run(args, check=True, timeout=20, capture_output=True)


def test_raw_payloads_are_stored_or_dead_lettered(tmp_path, settings_factory):
    _require_broker()
    if not os.path.exists(MOSQUITTO_PUB):
        pytest.fail("mosquitto_pub is needed (apt install mosquitto-clients)")
    enterprise, group = f"m{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    machine = f"indunet/v1/{enterprise}/s/a/l/press"
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian,
        BROKER,
        client_id=f"ing-{enterprise}",
        flush_s=0.05,
        session_expiry_s=60,
        host_id=f"h-{enterprise}",
        sparkplug_groups=[group],
        sparkplug=SparkplugMapping(enterprise=enterprise),
    )
    ingest.start()
    bad_utf8 = tmp_path / "bad.bin"
    bad_utf8.write_bytes(b'{"timestamp_ms": 1700000000000, "temp_c": "\xff\xfe"}')
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"timestamp_ms": T0, "note": "x" * 300_000}))
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01garbage")
    try:
        assert _wait(lambda: ingest.stats.subscribed)
        _pub(f"{machine}/temp_c", message=json.dumps({"timestamp_ms": T0, "value": 41.5}))
        _pub(machine, message=json.dumps({"ts": T0 + 1, "power_kw": 3.2, "running": True}))
        _pub(machine, message='{"timestamp_ms": 1700000000000, "power_kw": ')
        _pub(machine, file=bad_utf8)
        _pub(machine, file=big)
        _pub(f"spBv1.0/{group}/NDATA/edge-1", file=garbage)
        assert _wait(lambda: len(historian.dead_letters(enterprise)) >= 4), ingest.stats
        assert _wait(lambda: len(historian.tags(enterprise)) == 3), ingest.stats
    finally:
        ingest.stop()
    latest = {r["tag"]: r["value"] for r in historian.latest(enterprise).to_pylist()}
    assert latest == {
        "s/a/l/press/temp_c": 41.5,
        "s/a/l/press/power_kw": 3.2,
        "s/a/l/press/running": 1.0,
    }
    letters = historian.dead_letters(enterprise)
    reasons = sorted(d["reason"] for d in letters)
    assert len(letters) == 4, reasons
    assert all(d["ref"] in (machine, f"spBv1.0/{group}/NDATA/edge-1") for d in letters)
    assert any("not valid JSON" in r for r in reasons)
    assert any("not valid UTF-8" in r for r in reasons)
    assert any("byte limit" in r for r in reasons)
    assert any("spBv1.0" in r and "protobuf" in r for r in reasons), reasons
    historian.close()
