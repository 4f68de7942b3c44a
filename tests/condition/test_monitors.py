"""Anomaly monitors: config, the pure bank, and the alarm service on a real historian."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pytest

from indunet.condition.monitors import (
    MonitorBank,
    MonitorConfig,
    MonitorError,
    anomaly_asset,
    load_monitors,
    monitor_tags,
    scan_history,
)
from indunet.errors import ConfigError
from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.plant.alarm_service import AlarmService
from indunet.plant.notify import verify_signature
from indunet.store import open_historian
from tests.conftest import PG_URL

E = "acme"
TEMP = "s1/press/l1/m1/temp_c"
OTHER = "s1/press/l1/m2/temp_c"
MIN = 60_000
SECRET = "s3cr3t-webhook-key-9f2c"


def _values(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 1440) + rng.normal(0, 0.5, n)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"id": "a b", "tag": TEMP}, "id"),
        ({"id": "m", "tag": TEMP, "pattern": "s1/+/l1/+/temp_c"}, "exactly one"),
        ({"id": "m"}, "exactly one"),
        ({"id": "m", "kind": "multivariate", "tags": [TEMP]}, "two different"),
        ({"id": "m", "kind": "multivariate", "tags": [TEMP, TEMP]}, "two different"),
        ({"id": "m", "kind": "multivariate", "tag": TEMP, "tags": [TEMP, OTHER]}, "not tag"),
        ({"id": "m", "tag": "not/a/tag"}, "tag"),
        ({"id": "m", "tag": TEMP, "bucket_s": 7000}, "divide a day"),
        ({"id": "m", "tag": TEMP, "threshold": 2}, "threshold"),
        ({"id": "m", "tag": TEMP, "kind": "magic"}, "kind"),
        ({"id": "m", "tag": TEMP, "machine": "s1/press"}, "site/area/line/machine"),
        ({"id": "m", "tag": TEMP, "colour": "red"}, "colour"),
    ],
)
def test_bad_monitors_name_the_monitor_and_field(doc, match):
    with pytest.raises(MonitorError, match=match) as exc:
        load_monitors([doc])
    assert "monitor" in exc.value.problems[0]


def test_duplicate_ids_and_not_a_list():
    with pytest.raises(MonitorError, match="used twice"):
        load_monitors([{"id": "m", "tag": TEMP}, {"id": "m", "tag": OTHER}])
    with pytest.raises(MonitorError, match="list"):
        load_monitors({"id": "m", "tag": TEMP})


def test_anomaly_asset_is_the_tag_or_machine():
    assert anomaly_asset(f"derived/anomaly/t1/{TEMP}") == TEMP
    assert anomaly_asset("derived/anomaly/mv/s1/press/l1/m1") == "s1/press/l1/m1"
    assert anomaly_asset("derived/anomaly/mv") is None
    assert anomaly_asset(TEMP) is None


def test_monitor_brings_its_rule_and_derived_tags():
    one, many = load_monitors(
        [
            {"id": "t1", "tag": TEMP, "priority": "high"},
            {"id": "all", "pattern": "s1/press/l1/+/temp_c", "threshold": 0.5},
        ]
    )
    r1, r2 = one.rule(), many.rule()
    assert (r1.id, r1.tag, r1.priority.value) == (
        "anomaly.t1",
        f"derived/anomaly/t1/{TEMP}",
        "high",
    )
    assert r2.pattern == "derived/anomaly/all/#" and abs(r2.limit - 0.5) < 1e-6
    assert monitor_tags([one, many], [TEMP, OTHER, "s1/press/l1/m1/power"]) == {
        f"derived/anomaly/t1/{TEMP}",
        f"derived/anomaly/all/{TEMP}",
        f"derived/anomaly/all/{OTHER}",
    }


# --------------------------------------------------------------------------- bank (pure)


def _table(tag: str, ts: np.ndarray, values: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "tag": pa.array([tag] * len(ts), pa.string()),
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
        }
    )


def test_bank_warms_up_from_history_then_raises_held_score_with_evidence():
    t0 = 1_700_000_000_000
    n = 2160
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    v = _values(n)
    reads = []

    def reader(tags, start, end):
        reads.append((tags, start, end))
        sel = (ts >= start) & (ts < end)
        return {TEMP: (ts[sel], v[sel], [None] * int(sel.sum()))}

    bank = MonitorBank(load_monitors([{"id": "t1", "tag": TEMP, "hold_s": 300}]))
    now = int(ts[-1]) + MIN
    out = bank.feed(_table(TEMP, np.array([now]), np.array([v[-1]])), now, reader=reader)
    assert reads and out.column("value").to_pylist() == [0.0]  # history learnt, no alarm
    assert bank.status()[0]["status"] == "ok"
    spike = now + MIN
    out = bank.feed(_table(TEMP, np.array([spike]), np.array([95.0])), spike, reader=reader)
    assert out.column("tag").to_pylist() == [f"derived/anomaly/t1/{TEMP}"]
    assert out.column("value").to_pylist()[0] >= 0.3
    text = bank.explain(f"derived/anomaly/t1/{TEMP}")
    assert TEMP in text and "robust z" in text
    later = spike + 301_000  # hold over
    assert bank.feed(_table(TEMP, np.array([later]), np.array([v[0]])), later).column(
        "value"
    ).to_pylist() == [0.0]


def test_stream_monitor_respects_machine_state():
    t0 = 1_700_000_000_000
    n = 2160
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    v = _values(n)

    def reader(tags, start, end):
        sel = (ts >= start) & (ts < end)
        return {TEMP: (ts[sel], v[sel], [None] * int(sel.sum()))}

    m = MonitorConfig(id="t1", tag=TEMP, machine="s1/press/l1/m1")
    assert "s1/press/l1/m1/state" in MonitorBank([m]).state_tags()
    now = int(ts[-1]) + MIN
    for state, at, raised in (
        ("stopped", now - 3_600_000, False),  # stopped: never an anomaly
        ("running", now - 60_000, False),  # just started: settling
        ("running", now - 3_600_000, True),
    ):
        bank = MonitorBank([m])
        bank.on_state("s1/press/l1/m1", state, at)
        bank.feed(_table(TEMP, np.array([now]), np.array([v[-1]])), now, reader=reader)
        out = bank.feed(_table(TEMP, np.array([now + MIN]), np.array([95.0])), now + MIN)
        assert (out.column("value").to_pylist()[0] > 0) is raised, state


def test_bad_quality_sample_is_a_gap_not_an_anomaly():
    t0 = 1_700_000_000_000
    n = 2160
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    v = _values(n)

    def reader(tags, start, end):
        sel = (ts >= start) & (ts < end)
        return {TEMP: (ts[sel], v[sel], [None] * int(sel.sum()))}

    bank = MonitorBank(load_monitors([{"id": "t1", "tag": TEMP}]))
    now = int(ts[-1]) + MIN
    bank.feed(_table(TEMP, np.array([now]), np.array([v[-1]])), now, reader=reader)
    bad = _table(TEMP, np.array([now + MIN]), np.array([9999.0])).append_column(
        "quality", pa.array([2], pa.uint8())
    )
    assert bank.feed(bad, now + MIN).column("value").to_pylist() == [0.0]
    good = _table(TEMP, np.array([now + 2 * MIN]), np.array([v[-1]]))
    bank.feed(good, now + 2 * MIN)
    assert [f["kind"] for f in bank.status()[0]["data_quality"]] == ["gap"]
    assert bank.evidence == {}


def test_bank_without_history_says_insufficient():
    bank = MonitorBank(load_monitors([{"id": "t1", "tag": TEMP}]))
    t0 = 1_700_000_000_000
    ts = t0 + np.arange(100, dtype=np.int64) * MIN
    bank.feed(_table(TEMP, ts, _values(100)), int(ts[-1]))
    assert bank.status()[0]["status"] == "insufficient_history"


def test_bank_snapshot_round_trips_through_json_and_drops_removed_monitors():
    t0 = 1_700_000_000_000
    n = 2160
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    v = _values(n)

    def reader(tags, start, end):
        sel = (ts >= start) & (ts < end)
        return {TEMP: (ts[sel], v[sel], [None] * int(sel.sum()))}

    monitors = load_monitors([{"id": "t1", "tag": TEMP}, {"id": "t2", "tag": OTHER}])
    bank = MonitorBank(monitors)
    now = int(ts[-1]) + MIN
    bank.feed(_table(TEMP, np.array([now]), np.array([95.0])), now, reader=reader)
    derived = f"derived/anomaly/t1/{TEMP}"
    snap = json.loads(json.dumps(bank.snapshot(), allow_nan=False))
    again = MonitorBank(monitors)
    again.restore(snap)
    assert again.explain(derived) == bank.explain(derived) and "95" in bank.explain(derived)
    assert again.anomalies_under("s1/press/l1/m1") == bank.anomalies_under("s1/press/l1/m1")
    out = again.feed(_table(OTHER, np.array([now + MIN]), np.array([1.0])), now + MIN)
    held = dict(zip(out.column("tag").to_pylist(), out.column("value").to_pylist(), strict=True))
    assert held[derived] >= 0.3 and again.machine_scores()["s1/press/l1/m1"] == held[derived]
    only_t2 = MonitorBank(monitors[1:])
    only_t2.restore(snap)
    assert only_t2.evidence == {} and only_t2.machine_scores() == {}
    with pytest.raises((TypeError, ValueError)):  # the service logs it and starts afresh
        MonitorBank(monitors).restore({"held": {derived: "not a pair"}})


def test_multivariate_bank_names_the_tag():
    rng = np.random.default_rng(4)
    t0 = 1_700_000_000_000
    n = 1500
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    load = rng.uniform(20, 80, n)
    power = 2 * load + rng.normal(0, 1, n)
    hist = {TEMP: (ts, load, [None] * n), OTHER: (ts, power, [None] * n)}

    def reader(tags, start, end):
        return {
            t: tuple(x[(ts >= start) & (ts < end)] if i < 2 else x for i, x in enumerate(hist[t]))
            for t in tags
        }

    m = MonitorConfig(id="mv", kind="multivariate", tags=[TEMP, OTHER], machine="s1/press/l1/m1")
    bank = MonitorBank([m])
    now = int(ts[-1]) + MIN
    pts = pa.concat_tables(
        [
            _table(TEMP, np.array([now]), np.array([50.0])),
            _table(OTHER, np.array([now]), np.array([140.0])),
        ]
    )
    out = bank.feed(pts, now, reader=reader)
    assert out.column("value").to_pylist()[0] >= 0.6
    ev = bank.evidence["derived/anomaly/mv/s1/press/l1/m1"]
    assert ev.tag == OTHER and "relation" in ev.reason


def test_baseline_bank_learns_per_state_and_ignores_a_stopped_machine():
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000
    n = 3 * 1440
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    v = 100 + np.random.default_rng(2).normal(0, 1, n)
    state_ts = np.array([t0], dtype=np.int64)

    def reader(tags, start, end):
        sel = (ts >= start) & (ts < end)
        out = {TEMP: (ts[sel], v[sel], [None] * int(sel.sum()))}
        if "s1/press/l1/m1/state" in tags:
            out["s1/press/l1/m1/state"] = (state_ts, np.array([np.nan]), ["running"])
        return out

    m = MonitorConfig(id="bl", kind="baseline", tag=TEMP, machine="s1/press/l1/m1")
    bank = MonitorBank([m])
    now = int(ts[-1]) + MIN
    out = bank.feed(_table(TEMP, np.array([now - 1]), np.array([130.0])), now - 1, reader=reader)
    assert out.column("value").to_pylist()[0] >= 0.6  # state taken from history: running
    bank = MonitorBank([m])
    bank.on_state("s1/press/l1/m1", "stopped")
    out = bank.feed(_table(TEMP, np.array([now]), np.array([5.0])), now, reader=reader)
    assert out.column("value").to_pylist() == [0.0]  # stopped: never an anomaly
    bank.on_state("s1/press/l1/m1", "running")
    out = bank.feed(_table(TEMP, np.array([now + MIN]), np.array([130.0])), now + MIN)
    assert out.column("value").to_pylist()[0] >= 0.6
    assert "running" in bank.explain(f"derived/anomaly/bl/{TEMP}")


def test_scan_history_reports_anomalies_and_data_quality():
    t0 = 1_700_000_000_000
    n = 4320
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    v = _values(n)
    v[3000:3010] += 15
    v[3500:] *= 1000  # a unit change

    def reader(tags, start, end):
        sel = (ts >= start) & (ts < end)
        return {TEMP: (ts[sel], v[sel], [None] * int(sel.sum()))}

    m = MonitorConfig(id="t1", tag=TEMP)
    out = scan_history(m, reader, t0, int(ts[-1]) + 1)
    res = out["results"][0]
    assert out["anomalies"] == 1 and res["anomalies"][0]["ts_ms"] == ts[3000]
    assert [f["kind"] for f in res["data_quality"]] == ["unit_change"]
    with pytest.raises(ValueError, match="after start"):
        scan_history(m, reader, t0, t0)


def test_scan_history_gives_the_start_of_the_anomalous_run_as_since():
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000
    n = 4 * 1440
    ts = t0 + np.arange(n, dtype=np.int64) * MIN
    rng = np.random.default_rng(5)
    v = 100 + rng.normal(0, 1, n)
    w = 2 * v + rng.normal(0, 0.5, n)
    v[5000:5006] += 40  # one run of six anomalous samples …
    v[5100] += 40  # … and a lone one

    def reader(tags, start, end):
        sel = (ts >= start) & (ts < end)
        cols = {TEMP: v, OTHER: w}
        return {t: (ts[sel], cols[t][sel], [None] * int(sel.sum())) for t in tags}

    start = int(ts[3 * 1440])
    for m in (
        MonitorConfig(id="bl", kind="baseline", tag=TEMP, min_history_s=3600),
        MonitorConfig(id="mv", kind="multivariate", tags=[TEMP, OTHER]),
    ):
        out = scan_history(m, reader, start, int(ts[-1]) + 1)
        got = [(a["ts_ms"], a["since_ms"]) for a in out["results"][0]["anomalies"]]
        run = [(int(ts[i]), int(ts[5000])) for i in range(5000, 5006)]
        assert got == [*run, (int(ts[5100]), int(ts[5100]))], m.kind


# --------------------------------------------------------------------------- alarm service


def _batch(tag: str, ts: np.ndarray, values: np.ndarray) -> PointBatch:
    table = pa.table(
        {
            "tag": [tag] * len(ts),
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "text": pa.array([None] * len(ts), pa.string()),
            "quality": pa.array([0] * len(ts), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    return PointBatch(E, table, {tag: DataType.NUMBER})


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    """A real local HTTP server that records every webhook POST."""
    got: list[dict] = []
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"body": body, "headers": dict(self.headers)})
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got, arrived
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["duckdb", "postgresql"])
def make_settings(request: pytest.FixtureRequest, settings_factory):
    extra: dict = {}
    if request.param == "postgresql":
        extra = {"db": PG_URL, "pg_schema": request.getfixturevalue("pg_schema")}

    def make(**plant):
        return settings_factory(enterprise=E, plant=plant, **extra)

    return make


def test_anomaly_alarm_lifecycle_raise_webhook_acknowledge(make_settings, receiver) -> None:
    url, got, arrived = receiver
    now = int(time.time() * 1000) // MIN * MIN
    settings = make_settings(
        monitors=[{"id": "t1", "tag": TEMP, "priority": "high", "message": "press temperature"}],
        webhooks=[{"name": "ops", "url": url, "secret": SECRET, "min_priority": "high"}],
    )
    historian = open_historian(settings)
    try:
        n = 2160  # 36 h of 1-min history
        ts = now - n * MIN + np.arange(n, dtype=np.int64) * MIN
        historian.write(_batch(TEMP, ts, _values(n)), source="test")
        service = AlarmService(historian, settings, clock=Clock(now))
        assert "anomaly.t1" in {r.id for r in service.rules()}
        assert service.rule_sources["anomaly.t1"] == "monitor"
        assert service.run_once(now + 1000) == []  # learnt from history, nothing raised
        assert service.monitor_status()[0]["status"] == "ok"
        service.sender.start()
        historian.write(_batch(TEMP, np.array([now + 30_000]), np.array([97.0])), source="test")
        rows = service.run_once(now + 31_000)
        assert [r["kind"] for r in rows] == ["raised"]
        raised = rows[0]
        assert raised["alarm_id"] == f"anomaly.t1@derived/anomaly/t1/{TEMP}"
        assert raised["priority"] == "high" and raised["value"] >= 0.3
        assert raised["message"].startswith("press temperature: ")
        assert TEMP in raised["message"] and "robust z" in raised["message"]
        assert arrived.wait(10)
        service.sender.stop()
        body, headers = got[0]["body"], got[0]["headers"]
        verify_signature(SECRET, body, headers["X-Indunet-Signature"], now_s=time.time())
        doc = json.loads(body)
        assert doc["type"] == "alarm.raised" and "robust z" in doc["event"]["message"]
        acked = service.acknowledge(
            f"anomaly.t1@derived/anomaly/t1/{TEMP}", by="li", comment="checked"
        )
        assert [e["kind"] for e in acked] == ["acknowledged"]
        assert service.alarms()[0].state.value == "acked"
        # the hold runs out: the alarm returns and, being acknowledged, goes back to normal
        later = now + 31_000 + 601_000
        historian.write(_batch(TEMP, np.array([later - 1000]), np.array([50.0])), source="test")
        rows = service.run_once(later)
        assert [r["kind"] for r in rows] == ["returned"]
        assert service.alarms() == []
    finally:
        historian.close()


def test_restart_mid_anomaly_keeps_the_alarm_without_false_events(make_settings) -> None:
    now = int(time.time() * 1000) // MIN * MIN
    settings = make_settings(monitors=[{"id": "t1", "tag": TEMP, "hold_s": 600}])
    alarm_id = f"anomaly.t1@derived/anomaly/t1/{TEMP}"
    historian = open_historian(settings)
    try:
        n = 2160
        ts = now - n * MIN + np.arange(n, dtype=np.int64) * MIN
        historian.write(_batch(TEMP, ts, _values(n)), source="test")
        service = AlarmService(historian, settings, clock=Clock(now))
        service.run_once(now + 1000)
        historian.write(_batch(TEMP, np.array([now + 30_000]), np.array([97.0])), source="test")
        assert [r["kind"] for r in service.run_once(now + 31_000)] == ["raised"]
        service.acknowledge(alarm_id, by="li")
        service.stop()  # saves the snapshot
        before = copy.deepcopy(service.bank._stream[("t1", TEMP)].detector)
        before.update(50.0)  # the sample the restarted service will see
        # restart: the monitor relearns from history; the held score comes from the snapshot
        again = AlarmService(historian, settings, clock=Clock(now + 90_000))
        assert again.alarms()[0].state.value == "acked"
        historian.write(_batch(TEMP, np.array([now + 90_000]), np.array([50.0])), source="test")
        assert again.run_once(now + 91_000) == []  # no return, no raise
        assert [(a.alarm_id, a.state.value) for a in again.alarms()] == [(alarm_id, "acked")]
        assert again.monitor_status()[0]["evidence"]["value"] == 97.0
        after = again.bank._stream[("t1", TEMP)].detector  # relearnt: the very same state
        for name in ("n", "_lo", "_span", "_seen", "_prev", "_a", "_b", "_quiet_until", "_max"):
            assert getattr(after, name) == getattr(before, name), name
        assert list(after._s_hist) == list(before._s_hist)
        # the hold runs out after the restart: the acknowledged alarm returns to normal once
        later = now + 31_000 + 601_000
        historian.write(_batch(TEMP, np.array([later - 1000]), np.array([50.0])), source="test")
        assert [r["kind"] for r in again.run_once(later)] == ["returned"]
        assert again.alarms() == []
    finally:
        historian.close()


def test_monitor_rule_on_unknown_tag_is_refused(make_settings) -> None:
    settings = make_settings(monitors=[{"id": "t1", "tag": "s1/press/l1/m1/tmp_c"}])
    historian = open_historian(settings)
    try:
        service = AlarmService(historian, settings)
        # the monitor's own rule is on its derived tag: it loads; the tag simply has no data
        assert service.monitors()[0].id == "t1"
        with pytest.raises(ConfigError, match="used twice"):
            service.add_monitors([{"id": "x", "tag": TEMP}, {"id": "x", "tag": TEMP}])
        with pytest.raises(ConfigError, match=r"indunet\.toml"):
            service.add_monitors([{"id": "t1", "tag": TEMP}])
    finally:
        historian.close()
