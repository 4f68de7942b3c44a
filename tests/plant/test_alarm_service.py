"""The alarm service on a real historian (DuckDB file and PostgreSQL) with a real webhook server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from indunet.errors import ConfigError, DataError
from indunet.model import POINT_SCHEMA, DataType, PointBatch
from indunet.plant.alarm_service import AlarmNotFound, AlarmService, AlarmStore
from indunet.plant.alarms import AlarmActionError, AlarmRuleError
from indunet.plant.notify import verify_signature
from indunet.store import open_historian
from tests.conftest import PG_URL

E = "acme"
TEMP = "s1/press/l1/m1/temp_c"
STATE = "s1/press/l1/m1/state"
SECRET = "s3cr3t-webhook-key-9f2c"
RULES = [
    {
        "id": "temp-high",
        "kind": "high",
        "tag": TEMP,
        "limit": 80.0,
        "deadband": 5.0,
        "priority": "high",
    },
    {
        "id": "idle-long",
        "kind": "state_duration",
        "tag": STATE,
        "state": "idle",
        "max_duration_s": 1800,
    },
]


def batch(rows: list[tuple]) -> PointBatch:
    """Build a batch from (tag, ts, value) rows; str values are text."""
    tags, ts, values, texts = [], [], [], []
    types: dict[str, DataType] = {}
    for tag, t, v in rows:
        tags.append(tag)
        ts.append(t)
        values.append(None if isinstance(v, str) else float(v))
        texts.append(v if isinstance(v, str) else None)
        types[tag] = DataType.STRING if isinstance(v, str) else DataType.NUMBER
    table = pa.table(
        {
            "tag": tags,
            "ts": pa.array(ts, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "text": pa.array(texts, pa.string()),
            "quality": pa.array([0] * len(tags), pa.uint8()),
        },
        schema=POINT_SCHEMA,
    )
    return PointBatch(E, table, types)


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture(params=["duckdb", "postgresql"])
def make_settings(request: pytest.FixtureRequest, settings_factory):
    """Build settings on each backend with the given plant config."""
    extra: dict = {}
    if request.param == "postgresql":
        extra = {"db": PG_URL, "pg_schema": request.getfixturevalue("pg_schema")}

    def make(**plant):
        plant.setdefault("alarms", RULES)
        return settings_factory(enterprise=E, plant=plant, **extra)

    return make


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    """A real local HTTP server that records every webhook POST."""
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"body": body, "headers": dict(self.headers)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


def _seed(historian, t0: int) -> None:
    historian.write(batch([(TEMP, t0, 20.0), (STATE, t0, "running")]), source="test")


def test_raise_store_restore_without_duplicates(make_settings) -> None:
    t0 = int(time.time() * 1000) // 1000 * 1000
    settings = make_settings()
    historian = open_historian(settings)
    try:
        _seed(historian, t0)
        clock = Clock(t0 + 1000)
        service = AlarmService(historian, settings, clock=clock)
        assert service.run_once(t0 + 1000) == []
        values = [70.0, 85.0, 90.0, 95.0]  # one occurrence, however many samples stay high
        historian.write(batch([(TEMP, t0 + 2000 + i * 1000, v) for i, v in enumerate(values)]))
        rows = service.run_once(t0 + 6000)
        assert [(r["kind"], r["alarm_id"], r["seq"]) for r in rows] == [
            ("raised", f"temp-high@{TEMP}", 1)
        ]
        assert rows[0]["value"] == 85.0 and rows[0]["ts_ms"] == t0 + 3000
        service.stop()

        # a restart restores the engine: the same and newer samples above the limit raise nothing
        clock.ms = t0 + 8000
        again = AlarmService(historian, settings, clock=clock)
        historian.write(batch([(TEMP, t0 + 7000, 99.0)]))
        assert again.run_once(t0 + 8000) == []
        assert [a.state.value for a in again.alarms()] == ["unack"]
        acked = again.acknowledge(f"temp-high@{TEMP}", by="li", comment="checking the cooler")
        assert acked[0]["kind"] == "acknowledged" and acked[0]["by"] == "li"
        historian.write(batch([(TEMP, t0 + 9000, 76.0), (TEMP, t0 + 10_000, 74.0)]))
        back = again.run_once(t0 + 11_000)
        assert [(r["kind"], r["ts_ms"], r["state"]) for r in back] == [
            ("returned", t0 + 10_000, "normal")  # 76 is inside the deadband, 74 is below it
        ]
        stored = AlarmStore(historian).events(E)
        assert [(r["seq"], r["kind"]) for r in stored] == [
            (1, "raised"),
            (2, "acknowledged"),
            (3, "returned"),
        ]
        assert stored[1]["comment"] == "checking the cooler"
        again.stop()
    finally:
        historian.close()


def test_state_duration_from_text_tag_and_watcher_hook(make_settings) -> None:
    t0 = int(time.time() * 1000) // 1000 * 1000
    settings = make_settings()
    historian = open_historian(settings)
    try:
        _seed(historian, t0)
        service = AlarmService(historian, settings, clock=Clock(t0))
        historian.write(batch([(STATE, t0 + 1000, "idle")]))
        assert service.run_once(t0 + 2000) == []
        rows = service.run_once(t0 + 1000 + 1801_000)
        assert [(r["kind"], r["alarm_id"]) for r in rows] == [("raised", f"idle-long@{STATE}")]
        assert rows[0]["value"] == pytest.approx(1801.0)

        # with a plant watcher, states come from its hook (the text tag is no longer read)
        class Watcher:
            def __init__(self) -> None:
                self.on_state_change: list = []

        hooked = AlarmService(historian, settings, clock=Clock(t0))
        watcher = Watcher()
        hooked.attach(watcher)
        assert watcher.on_state_change == [hooked.on_state_change]
        t1 = t0 + 4_000_000
        watcher.on_state_change[0]("s1/press/l1/m1", t1, "running", True)
        historian.write(batch([(STATE, t1 + 1000, "idle")]))  # ignored: the watcher decides
        back = hooked.run_once(t1 + 2000)
        assert [(r["kind"], r["alarm_id"]) for r in back] == [("returned", f"idle-long@{STATE}")]
        watcher.on_state_change[0]("s1/press/l1/m1", t1 + 3000, "idle", False)  # unplanned
        assert hooked.run_once(t1 + 3000 + 3_600_000) == []

        # a watcher replaying its history after a tick: only each machine's last state counts
        t2 = t1 + 3_700_000
        for i, name in enumerate(["running", "idle", "running", "idle"]):
            watcher.on_state_change[0]("s1/press/l1/m1", t2 + i * 60_000, name, True)
        late = hooked.run_once(t2 + 3 * 60_000 + 1801_000)
        assert [(r["kind"], r["value"]) for r in late] == [("raised", 1801.0)]
        assert hooked.status()["state_feed_collapsed"] == 0  # all were newer than the last tick
        for i, name in enumerate(["running", "idle", "running"]):
            watcher.on_state_change[0]("s1/press/l1/m1", t2 + 100_000 + i * 1000, name, True)
        assert hooked.run_once(t2 + 4_000_000) == []  # older than the engine's data: late
        assert hooked.status()["state_feed_collapsed"] == 2
    finally:
        historian.close()


def test_webhook_delivered_signed(make_settings, receiver) -> None:
    url, got = receiver
    t0 = int(time.time() * 1000) // 1000 * 1000
    settings = make_settings(
        webhooks=[{"name": "ops", "url": url, "secret": SECRET, "min_priority": "high"}]
    )
    historian = open_historian(settings)
    try:
        _seed(historian, t0)
        service = AlarmService(historian, settings, clock=Clock(t0))
        service.sender.start()
        historian.write(batch([(TEMP, t0 + 1000, 120.0)]))
        rows = service.run_once(t0 + 2000)
        assert [r["kind"] for r in rows] == ["raised"]
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        service.sender.stop()
        assert len(got) == 1
        body, headers = got[0]["body"], got[0]["headers"]
        verify_signature(SECRET, body, headers["X-Indunet-Signature"], now_s=time.time())
        doc = json.loads(body)
        assert doc["type"] == "alarm.raised"
        assert doc["event"]["alarm_id"] == f"temp-high@{TEMP}"
        assert doc["event"]["value"] == 120.0
        assert headers["X-Indunet-Delivery"] == doc["id"]
        assert service.sender.status()["delivered"] == 1
    finally:
        historian.close()


def test_bad_rules_and_actions(make_settings) -> None:
    t0 = int(time.time() * 1000) // 1000 * 1000
    bad = [{"id": "typo", "kind": "high", "tag": "s1/press/l1/m1/tmp_c", "limit": 1}]
    settings = make_settings(alarms=bad)
    historian = open_historian(settings)
    try:
        _seed(historian, t0)
        with pytest.raises(ConfigError, match="alarm rule 'typo' field 'tag': unknown tag"):
            AlarmService(historian, settings)
    finally:
        historian.close()
    settings = make_settings()
    historian = open_historian(settings)
    try:
        service = AlarmService(historian, settings, clock=Clock(t0))
        with pytest.raises(AlarmNotFound, match="does not exist"):
            service.acknowledge("nope@s1/press/l1/m1/temp_c", by="li")
        with pytest.raises(AlarmActionError, match="'by'"):
            service.acknowledge(f"temp-high@{TEMP}", by="  ")
        with pytest.raises(AlarmActionError, match="is normal"):
            service.acknowledge(f"temp-high@{TEMP}", by="li")
        with pytest.raises(AlarmRuleError) as err:
            service.add_rules([{"id": "x", "kind": "low", "tag": "s1/a/l/m/nothing", "limit": 1}])
        assert err.value.problems == ["alarm rule 'x' field 'tag': unknown tag 's1/a/l/m/nothing'"]
        with pytest.raises(AlarmRuleError, match=r"'temp-high' field 'id'.*indunet\.toml"):
            service.add_rules([{"id": "temp-high", "kind": "low", "tag": TEMP, "limit": 1}])
        with pytest.raises(DataError, match=r"indunet\.toml"):
            service.delete_rule("temp-high")
        with pytest.raises(AlarmNotFound):
            service.delete_rule("never-added")
        # a rule added through the API is stored and used by the next service
        service.add_rules([{"id": "temp-low", "kind": "low", "tag": TEMP, "limit": 5}])
        later = AlarmService(historian, settings, clock=Clock(t0))
        assert later.rule_sources == {
            "temp-high": "config",
            "idle-long": "config",
            "temp-low": "api",
        }
        later.delete_rule("temp-low")
        assert "temp-low" not in {r.id for r in AlarmService(historian, settings).rules()}
    finally:
        historian.close()


def test_oee_below_target_from_derived_values(make_settings) -> None:
    from indunet.plant.store import PlantStore
    from indunet.plant.watch import recompute_range

    machine = "s1/press/l1/m1"
    hour = 3_600_000
    now = int(time.time() * 1000) // hour * hour
    plant = {
        "machines": [
            {
                "id": machine,
                "power_tag": "power_kw",
                "thresholds": {"off_below": 1.0, "running_above": 10.0},
                "total_counter": {"tag": "parts_total"},
                "ideal_cycle_s": {"p": 60.0},
                "default_product": "p",
            }
        ],
        "sites": {
            "s1": {
                "calendar": {
                    "timezone": "UTC",
                    "shifts": [{"name": "all-day", "start": "00:00", "end": "00:00"}],
                }
            }
        },
        "alarms": [
            {
                "id": "line-oee",
                "kind": "below_target",
                "pattern": "derived/oee/+/+/+",
                "target": 0.5,
                "priority": "medium",
            },
            {
                "id": "machine-oee",
                "kind": "below_target",
                "tag": f"derived/oee/{machine}",
                "target": 0.1,
            },
        ],
    }
    settings = make_settings(**plant)
    historian = open_historian(settings)
    try:
        # 8 h window: running (20 kW, a part a minute) for the first 2 h, then off: OEE = 25 %
        start = now - 8 * hour
        rows = []
        for minute in range(8 * 60):
            t = start + minute * 60_000
            running = minute < 120
            rows += [(f"{machine}/power_kw", t, 20.0 if running else 0.0)]
            rows += [(f"{machine}/parts_total", t, float(min(minute, 120)))]
        historian.write(batch(rows), source="test")
        store = PlantStore(historian, settings.plant)
        recompute_range(store, historian, E, settings.plant.machines[0], start, now)
        service = AlarmService(historian, settings, clock=Clock(now))
        events = service.run_once(now)
        raised = {
            (r["rule_id"], r["source"])
            for r in events
            if r["kind"] == "raised" and r["rule_id"] != "data_quality"  # see the test below
        }
        # the line (25 % < 50 %) is raised; the machine (25 % > 10 %) is not
        assert raised == {("line-oee", "derived/oee/s1/press/l1")}
        line = next(r for r in events if r["rule_id"] == "line-oee")
        assert line["value"] == pytest.approx(0.25, abs=0.02)
        assert service.run_once(now + 1000) == []  # computed once a minute, not every round
    finally:
        historian.close()


def test_implausible_oee_raises_a_data_quality_alarm_naming_the_machine(make_settings) -> None:
    from indunet.plant.store import PlantStore
    from indunet.plant.watch import recompute_range

    slow, fine = "s1/press/l1/m1", "s1/press/l1/m2"
    hour = 3_600_000
    now = int(time.time() * 1000) // hour * hour

    def machine(mid: str, cycle: float) -> dict:
        return {
            "id": mid,
            "power_tag": "power_kw",
            "thresholds": {"off_below": 1.0, "running_above": 10.0},
            "expected_interval_s": 60.0,
            "offline_after_intervals": 3,
            "total_counter": {"tag": "parts_total"},
            "ideal_cycle_s": {"p": cycle},
            "default_product": "p",
        }

    calendar = {"timezone": "UTC", "shifts": [{"name": "all", "start": "00:00", "end": "00:00"}]}
    # both make a part a minute while running; m1's ideal cycle says 3 minutes: P ≈ 300 %
    settings = make_settings(
        machines=[machine(slow, 180.0), machine(fine, 60.0)],
        sites={"s1": {"calendar": calendar}},
        alarms=[],
    )
    historian = open_historian(settings)
    try:
        start = now - 4 * hour
        rows = []
        for minute in range(4 * 60):
            t = start + minute * 60_000
            for m in (slow, fine):
                rows += [(f"{m}/power_kw", t, 20.0), (f"{m}/parts_total", t, float(minute // 2))]
        historian.write(batch(rows), source="test")
        store = PlantStore(historian, settings.plant)
        for m in settings.plant.machines:
            recompute_range(store, historian, E, m, start, now)
        service = AlarmService(historian, settings, clock=Clock(now))
        assert service.rule_sources["data_quality"] == "builtin"
        events = service.run_once(now)
        raised = [r for r in events if r["kind"] == "raised"]
        assert [(r["rule_id"], r["source"]) for r in raised] == [
            ("data_quality", f"derived/data_quality/{slow}")
        ]
        assert raised[0]["value"] == 1.0 and "learn-cycle" in raised[0]["message"]
        [alarm] = service.alarms()
        assert alarm.source.endswith(slow) and str(alarm.state) == "unack"
        with pytest.raises(DataError, match="built in"):
            service.delete_rule("data_quality")
        with pytest.raises(AlarmRuleError, match="data_quality"):
            service.add_rules([{"id": "data_quality", "kind": "high", "tag": f"{slow}/power_kw",
                                "limit": 1.0}])  # fmt: skip
    finally:
        historian.close()
