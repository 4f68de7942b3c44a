"""`check_plant`: each finding on purpose-broken data, and a clean bill for good data."""

from __future__ import annotations

import numpy as np

from indunet.plant.follow import bring_up_to_date
from indunet.plant.integrity import check_plant
from indunet.plant.store import PlantStore
from tests.plant.plant_data import M1, T0, plant, power_profile, write

S = 1000
END = T0 + 2_000 * S


def setup(historian, ideal: float = 10.0):
    cfg = plant(M1).model_copy()
    m = cfg.machines[0].model_copy(update={"ideal_cycle_s": {"p": ideal}})
    cfg = cfg.model_copy(update={"machines": [m]})
    store = PlantStore(historian, cfg)
    ts, v = power_profile(T0, [(600, 8.0), (300, 3.0), (600, 8.0)])
    write(historian, f"{M1}/power_kw", ts, v)
    parts = np.floor(np.cumsum(v > 5.0) / 12.0)  # one part per 12 s of running
    write(historian, f"{M1}/parts_total", ts[::10], parts[::10])
    write(historian, f"{M1}/scrap_total", ts[::10], np.zeros(len(ts[::10])))
    bring_up_to_date(store, historian, "demo", cfg.machines, now_ms=END)
    return store, cfg


def run(store, historian, cfg):
    return check_plant(store, historian, cfg, "demo", start_ms=T0, end_ms=END, now_ms=END)


def test_good_data_is_clean(historian):
    store, cfg = setup(historian)
    assert run(store, historian, cfg) == []


def test_overlap_counter_oee_and_behind_are_found(historian):
    store, cfg = setup(historian, ideal=30.0)  # ideal cycle set too slow: P above 100 %
    store.sql.execute(
        "INSERT INTO plant_states VALUES ('demo', $1, $2, $3, 'idle', NULL)",
        [M1, T0 + 50 * S, T0 + 70 * S],
    )
    write(historian, f"{M1}/parts_total", [T0 + 1_405 * S], [80.0])  # below a mark of 92
    write(historian, f"{M1}/power_kw", [T0 + 300 * S], [0.0])  # late: not followed yet
    kinds = {f.check for f in run(store, historian, cfg)}
    assert {"timeline_overlap", "counter_backwards", "derived_behind"} <= kinds
    # once repaired, OEE can be read again: performance above 100 % is found
    store.sql.execute(
        "DELETE FROM plant_states WHERE enterprise = 'demo' AND start_ms = $1", [T0 + 50 * S]
    )
    found = run(store, historian, cfg)
    assert any(f.check == "oee_out_of_range" and "performance" in f.message for f in found)
