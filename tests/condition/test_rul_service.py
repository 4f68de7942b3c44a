"""The RUL service on a real historian (DuckDB file and PostgreSQL) with the real alarm service."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pyarrow as pa
import pytest

from indunet.condition.rul_service import RulService, RulStore
from indunet.plant.alarm_service import AlarmService
from indunet.store import open_historian
from tests.condition import rul_plant as fleet
from tests.conftest import PG_URL

E = "acme"
ALARM = f"rul:{fleet.CLASS}@derived/rul/{fleet.CLASS}/{fleet.WORN}"


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture(params=["duckdb", "postgresql"])
def make_settings(request: pytest.FixtureRequest, settings_factory, tmp_path):
    extra: dict = {}
    if request.param == "postgresql":
        extra = {"db": PG_URL, "pg_schema": request.getfixturevalue("pg_schema")}
    runs = fleet.write_runs(tmp_path / "runs")

    def make(**rul):
        return settings_factory(enterprise=E, plant=fleet.plant(runs, **rul), **extra)

    return make


def test_estimates_stored_and_alarm_raised_then_acknowledged(make_settings) -> None:
    settings = make_settings()
    historian = open_historian(settings)
    try:
        batch, now = fleet.sensor_batch(E)
        historian.write(batch)
        clock = Clock(now)
        alarms = AlarmService(historian, settings, clock=clock)
        service = RulService(historian, settings, alarms=alarms, clock=clock)
        rows = {r["machine"]: r for r in service.run_once(now)}
        assert rows[fleet.WORN]["status"] == "ok"
        assert rows[fleet.WORN]["rul"] < fleet.HORIZON  # truth: 16 cycles
        assert rows[fleet.WORN]["low"] <= rows[fleet.WORN]["rul"] <= rows[fleet.WORN]["high"]
        assert rows[fleet.HEALTHY]["status"] == "ok" and rows[fleet.HEALTHY]["rul"] > 60
        assert rows[fleet.HEALTHY]["cycles_seen"] == 31  # test engine 1 has 31 cycles
        for machine in (fleet.YOUNG, fleet.SILENT):
            assert rows[machine]["status"] == "insufficient_history"
            assert rows[machine]["rul"] is None
            assert "insufficient history" in rows[machine]["message"]

        # stored, lowest RUL first, the machines without an estimate last
        stored = RulStore(historian).estimates(E)
        assert [r["machine"] for r in stored][:2] == [fleet.WORN, fleet.HEALTHY]
        assert RulStore(historian).estimates("other-enterprise") == []
        # a machine taken out of [[plant.rul]] loses its stored estimate at the next round
        fewer = make_settings(machines=[fleet.WORN, fleet.HEALTHY])
        RulService(historian, fewer).run_once(now)
        assert {r["machine"] for r in RulStore(historian).estimates(E)} == {
            fleet.WORN,
            fleet.HEALTHY,
        }

        # one alarm, for the worn engine only; raised once however often it is estimated
        active = {a.alarm_id: a for a in alarms.alarms()}
        assert list(active) == [ALARM]
        assert active[ALARM].state == "unack" and active[ALARM].priority == "high"
        clock.ms = now + 60_000
        service.run_once(now + 60_000)
        events = alarms.store.events(E, alarm_id=ALARM)
        assert [e["kind"] for e in events] == ["raised"]
        rows = alarms.acknowledge(ALARM, by="maintenance planner", comment="borescope booked")
        assert [r["kind"] for r in rows] == ["acknowledged"]
        assert {a.alarm_id: a for a in alarms.alarms()}[ALARM].state == "acked"
        assert [e["kind"] for e in alarms.store.events(E, alarm_id=ALARM)] == [
            "raised",
            "acknowledged",
        ]
    finally:
        historian.close()


def test_a_class_without_usable_runs_says_so(make_settings, tmp_path) -> None:
    empty = tmp_path / "no-runs"
    empty.mkdir()
    settings = make_settings(runs_dir=str(empty))
    historian = open_historian(settings)
    try:
        rows = RulService(historian, settings).run_once(fleet.T0)
        assert {r["status"] for r in rows} == {"no_model"}
        assert "no run-to-failure CSV file" in rows[0]["message"]
    finally:
        historian.close()


def test_a_malformed_run_file_is_named(make_settings, tmp_path) -> None:
    runs = fleet.write_runs(tmp_path / "some-bad")
    bad = runs / "engine-3.csv"
    lines = bad.read_text().splitlines()
    lines[7] = lines[7].replace(",", ",n/a,", 1).replace(",n/a,", ",n/a", 1)
    bad.write_text("\n".join(lines) + "\n")
    settings = make_settings(runs_dir=str(runs))
    historian = open_historian(settings)
    try:
        rows = RulService(historian, settings).run_once(fleet.T0)
        assert {r["status"] for r in rows} == {"no_model"}
        assert "engine-3.csv line 8" in rows[0]["message"] and "n/a" in rows[0]["message"]
    finally:
        historian.close()


def test_runs_to_failure_from_the_historian(make_settings) -> None:
    # the same 8 training engines as the CSV files, kept as retired machines' tags instead
    probe = make_settings()
    historian = open_historian(probe)
    try:
        runs_batch, runs = fleet.history_runs(E)
        historian.write(runs_batch)
        batch, now = fleet.sensor_batch(E)
        historian.write(batch)
        from_csv = {r["machine"]: r for r in RulService(historian, probe).run_once(now)}
        settings = make_settings(runs_dir=None, runs=runs)
        service = RulService(historian, settings)
        rows = {r["machine"]: r for r in service.run_once(now)}
        model = service.model(settings.plant.rul[0])
        assert model.training_assets == 8 and model.training_rows == sum(
            r.cycles.size for r in fleet.cmapss.train()[:8]
        )
        for machine in (fleet.WORN, fleet.HEALTHY):
            assert rows[machine]["status"] == "ok"
            assert abs(rows[machine]["rul"] - from_csv[machine]["rul"]) < 5  # CSV: 6 digits
        assert rows[fleet.WORN]["rul"] < fleet.HORIZON
    finally:
        historian.close()


def test_serve_starts_the_rul_service_after_the_alarms(make_settings) -> None:
    """The wiring of ``indunet serve``: alarms start for the built-in RUL rules, the RUL service
    estimates in its thread and feeds them."""
    from indunet.cli.plant import _start_alarms, _start_rul

    settings = make_settings()
    historian = open_historian(settings)
    app = SimpleNamespace(state=SimpleNamespace())
    started: list = []
    try:
        batch, _ = fleet.sensor_batch(E)
        historian.write(batch)  # readings from 2026-05-28 on, hourly: all cycles complete now
        started.append(_start_alarms(app, historian, settings))
        assert started[0] is not None and app.state.alarms is started[0]
        started.append(_start_rul(app, historian, settings))
        deadline = time.monotonic() + 60
        while not any(a.alarm_id == ALARM for a in app.state.alarms.alarms()):
            assert time.monotonic() < deadline, "no RUL alarm raised"
            time.sleep(0.05)
        assert RulStore(historian).estimates(E)[0]["machine"] == fleet.WORN
    finally:
        for service in reversed(started):
            if service is not None:
                service.stop()
        historian.close()


def test_period_means_come_from_the_database(make_settings) -> None:
    settings = make_settings()
    historian = open_historian(settings)
    try:
        tag = f"{fleet.WORN}/s2"
        ts = [fleet.T0 + k * fleet.HOUR // 4 for k in range(12)]  # 4 readings an hour, 3 hours
        batch, _ = fleet.sensor_batch(E)
        rows = batch.table.slice(0, 0).to_pylist()
        rows = [{"tag": tag, "ts": t, "value": float(k), "text": None, "quality": 0}
                for k, t in enumerate(ts)]  # fmt: skip
        batch.table = pa.Table.from_pylist(rows, schema=batch.table.schema)
        historian.write(batch)
        service = RulService(historian, settings)
        starts, means = service._period_means(tag, 0, fleet.T0 + 3 * fleet.HOUR, fleet.HOUR)
        assert starts.tolist() == [fleet.T0, fleet.T0 + fleet.HOUR, fleet.T0 + 2 * fleet.HOUR]
        assert means.tolist() == [1.5, 5.5, 9.5]
        # the running hour is left out; a tag never written gives nothing
        history = service._cycles(
            settings.plant.rul[0],
            fleet.WORN,
            0,
            fleet.T0 + 3 * fleet.HOUR,
            fleet.T0 + 2 * fleet.HOUR + 5,
        )
        assert history.cycles.tolist() == [1, 2]
        assert service._period_means(f"{fleet.WORN}/nothing", 0, fleet.T0, fleet.HOUR)[0].size == 0
    finally:
        historian.close()
