"""The platform's command log: edge audit messages parsed strictly, stored once per record on both
backends, and ingested from a real broker in the same commit as the points."""

from __future__ import annotations

import contextlib
import time
import uuid

import orjson
import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from indunet.connect.mqtt import MqttIngest
from indunet.errors import DataError
from indunet.plant.command_log import CommandLog, parse_audit_message
from indunet.store import open_historian
from tests.conftest import PG_URL

MACHINE = "s1/press/l1/press-7"


def record(**over) -> dict:
    base = {
        "ts": 1_700_000_000_000, "command_id": "c1", "user": "alice", "role": "operator",
        "device": "press-7", "machine": MACHINE, "tag": "setpoint", "old": "50.0",
        "new": "72.5", "result": "written", "detail": "read back 72.5",
    }  # fmt: skip
    return {**base, **over}


def topic(enterprise: str = "acme", machine: str = MACHINE) -> str:
    return f"indunet/audit/v1/{enterprise}/{machine}"


def test_a_good_record_is_parsed_with_its_tenant_from_the_topic() -> None:
    got = parse_audit_message(topic(), orjson.dumps(record()))
    assert (got.enterprise, got.machine, got.tag, got.user_name) == (
        "acme",
        MACHINE,
        "setpoint",
        "alice",
    )
    assert (got.old, got.new, got.result) == ("50.0", "72.5", "written")


@pytest.mark.parametrize(
    ("t", "payload", "says"),
    [
        (topic(), b"not json", "not JSON"),
        (topic(), b"[1, 2]", "JSON object"),
        (topic(), orjson.dumps(record(ts="yesterday")), "epoch milliseconds"),
        (topic(), orjson.dumps(record(ts=True)), "epoch milliseconds"),
        (topic(), orjson.dumps(record(result="maybe")), "'result' must be one of"),
        (topic(), orjson.dumps(record(user="")), "'user'"),
        (topic(), orjson.dumps(record(tag=None)), "'tag'"),
        (topic(), orjson.dumps(record(machine="s9/x/y/z")), "names machine"),
        ("indunet/audit/v1/acme/s1/press", orjson.dumps(record()), "audit topic must be"),
        ("indunet/audit/v1/acme/s1/press/l1/m/extra", orjson.dumps(record()), "audit topic"),
        (topic(enterprise="+"), orjson.dumps(record()), "enterprise"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(t: str, payload: bytes, says: str) -> None:
    with pytest.raises(DataError, match=says):
        parse_audit_message(t, payload)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_record_or_a_data_error(payload: bytes) -> None:
    with contextlib.suppress(DataError):
        parse_audit_message(topic(), payload)


@pytest.fixture(params=["duckdb", "postgresql"])
def historian(request, settings_factory):
    if request.param == "postgresql":
        h = open_historian(
            settings_factory(db=PG_URL, pg_schema=request.getfixturevalue("pg_schema"))
        )
    else:
        h = open_historian(settings_factory())
    yield h
    h.close()


def test_store_keeps_one_row_per_record_and_separates_tenants(historian) -> None:
    log = CommandLog(historian)
    first = parse_audit_message(topic(), orjson.dumps(record()))
    later = parse_audit_message(
        topic(), orjson.dumps(record(ts=1_700_000_001_000, command_id="c2", result="rejected",
                                     old=None, new="150.0", detail="above its maximum 100"))
    )  # fmt: skip
    other = parse_audit_message(topic("rival"), orjson.dumps(record(command_id="c9")))
    log.add([first, later, other])
    log.add([first])  # redelivered after a crash: no second row
    rows = log.recent("acme")
    assert [r["command_id"] for r in rows] == ["c2", "c1"]  # newest first
    assert rows[0]["old"] is None and rows[0]["detail"] == "above its maximum 100"
    assert [r["command_id"] for r in log.recent("rival")] == ["c9"]
    assert log.recent("acme", "s1/press/l1/other") == []
    assert len(log.recent("acme", limit=1)) == 1


def test_ingest_stores_audit_records_and_dead_letters_broken_ones(settings_factory) -> None:
    ent = f"e{uuid.uuid4().hex[:10]}"
    historian = open_historian(settings_factory())
    ingest = MqttIngest(
        historian, "mqtt://127.0.0.1:1883", client_id=f"ing-{ent}", flush_s=0.05,
        sparkplug_groups=[], session_expiry_s=0,
    )  # fmt: skip
    ingest.start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{ent}")
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    try:
        deadline = time.monotonic() + 20
        while not ingest.stats.subscribed:
            assert time.monotonic() < deadline, "ingest did not subscribe"
            time.sleep(0.05)
        for payload in (orjson.dumps(record()), orjson.dumps(record()), b"{broken"):
            pub.publish(topic(ent), payload, qos=1).wait_for_publish(5)
        pub.publish(
            f"indunet/v1/{ent}/{MACHINE}",
            orjson.dumps({"timestamp_ms": int(time.time() * 1000), "speed": 3}),
            qos=1,
        ).wait_for_publish(5)
        while historian.count(ent) < 1 or not historian.dead_letters(ent):
            assert time.monotonic() < deadline, f"nothing stored: {ingest.stats}"
            time.sleep(0.05)
    finally:
        pub.loop_stop()
        pub.disconnect()
        ingest.stop()
    rows = CommandLog(historian).recent(ent)
    assert [(r["command_id"], r["result"]) for r in rows] == [("c1", "written")]
    letters = historian.dead_letters(ent)
    assert any("not JSON" in str(getattr(d, "reason", d)) for d in letters), letters
    historian.close()
