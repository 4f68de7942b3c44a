"""The demo's plant config: it validates, and a simulated run through the watcher gives states."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from indunet.plant.report import oee_report
from indunet.plant.watch import PlantWatcher
from indunet.sim.live import PlantSim, build_plants
from indunet.sim.plant_config import demo_plant_config
from tests.plant.plant_data import write


def test_demo_config_validates_with_sim_levels():
    plants = build_plants(3, 12, seed=7)
    cfg = demo_plant_config(plants)
    assert len(cfg.machines) == 12 and set(cfg.sites) == {"site-01", "site-02", "site-03"}
    for m, sim in zip(cfg.machines, plants, strict=True):
        th = m.thresholds
        # idle (8 %) and setup (25 %) sit inside the idle band, running (≥ 70 %) above it
        assert th.off_below + th.hysteresis < 0.08 * sim.rated_kw
        assert 0.25 * sim.rated_kw < th.running_above - th.hysteresis < 0.7 * 0.9 * sim.rated_kw
        assert m.ideal_cycle() == round(0.9 * sim.cycle_s, 3)
    cal = cfg.site("site-01").calendar
    assert cal.timezone == "Asia/Shanghai" and [s.name for s in cal.shifts] == [
        "early",
        "day",
        "night",
    ]
    assert "changeover" in cfg.reasons


def test_simulated_run_through_the_watcher(historian):
    plants = build_plants(1, 6, seed=11)
    cfg = demo_plant_config(plants)
    settings = historian.settings.model_copy(update={"plant": cfg})
    sim = PlantSim(plants, seed=11)
    t0 = int(datetime(2026, 6, 1, 22, 0, tzinfo=UTC).timestamp() * 1000)  # 06:00 in Shanghai
    cols: dict[str, tuple[list[int], list[float]]] = {}
    for now in range(t0, t0 + 5 * 3_600_000, 2000):
        for path, payload in sim.step(now):
            for tag in ("power_kw", "parts_total", "scrap_total"):
                ts, vs = cols.setdefault(f"{path}/{tag}", ([], []))
                ts.append(now)
                vs.append(float(payload[tag]))
    for tag, (ts, vs) in cols.items():
        write(historian, tag, np.array(ts), np.array(vs))
    end = t0 + 5 * 3_600_000
    watcher = PlantWatcher(historian, settings, history_ms=6 * 3_600_000)
    watcher.tick(end + 60_000)  # a minute after the data: every machine is offline now
    seen = set()
    for m in cfg.machines:
        tl = watcher.store.timeline("demo", m.id, t0, end + 60_000)
        seen |= {int(s) for s in tl.state}
        assert watcher.current(m.id)[0] == "offline"
    assert {0, 1, 2} <= seen  # off, idle and running all occur
    r = oee_report(watcher.store, historian, cfg, "demo", "site-01", t0, end, by="shift")
    early = r["groups"][0]
    assert early["label"] == "2026-06-02 early" and early["machines"] == 6
    assert early["oee"] is not None and 0 < early["oee"] <= 1
    assert early["apt_ms"] + sum(early["stop_ms"].values()) == early["pbt_ms"]


def test_demo_condition_adds_monitors_and_the_spindle_class(tmp_path):
    from indunet.condition.monitors import pattern_matches
    from indunet.sim.plant_config import demo_condition

    plants = build_plants(3, 12, seed=7)
    cfg = demo_condition(demo_plant_config(plants), plants, tmp_path / "runs")
    assert [m.id for m in cfg.monitors] == [
        "power-surge", "spindle-vibration", "spindle-temperature",
    ]  # fmt: skip
    assert len(cfg.machines) == 12 and cfg.sites == demo_plant_config(plants).sites
    (spindle,) = cfg.rul
    machining = [str(m.path) for m in plants if m.path.area == "machining"]
    assert spindle.machines == machining and len(machining) == 3
    assert spindle.runs_dir == tmp_path / "runs" and spindle.cycle_s == 3600
    assert spindle.horizon < spindle.cap
    vib = cfg.monitors[1]
    assert all(pattern_matches(vib.pattern, f"{m}/spindle_vib_mm_s") for m in machining)
    assert not pattern_matches(vib.pattern, f"{plants[0].path}/spindle_vib_mm_s")  # press-shop
    # no machining machine: monitors, but no asset class to fit
    few = build_plants(3, 3, seed=7)
    assert demo_condition(demo_plant_config(few), few, tmp_path).rul == []
