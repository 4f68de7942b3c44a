"""The simulated plant."""

from __future__ import annotations

import numpy as np

from indunet.sim.plant import DEMO_MACHINES, simulate


def test_simulation_is_seeded_and_plausible():
    a = simulate(DEMO_MACHINES[:2], 0, 3_600_000, 10_000, seed=1)
    b = simulate(DEMO_MACHINES[:2], 0, 3_600_000, 10_000, seed=1)
    assert a.table.equals(b.table)
    assert len(a) == 2 * 5 * 360  # power, parts, scrap, temperature, running
    power = (
        a.table.filter(
            np.array([t.endswith("press-01/power_kw") for t in a.table.column("tag").to_pylist()])
        )
        .column("value")
        .to_numpy()
    )
    assert power.min() >= 0 and power.max() <= DEMO_MACHINES[0].run_kw * 1.2 + 1e-9
    parts = (
        a.table.filter(
            np.array(
                [t.endswith("press-01/parts_total") for t in a.table.column("tag").to_pylist()]
            )
        )
        .column("value")
        .to_numpy()
    )
    assert np.all(np.diff(parts) >= 0)  # a counter never goes backwards
    scrap = (
        a.table.filter(
            np.array(
                [t.endswith("press-01/scrap_total") for t in a.table.column("tag").to_pylist()]
            )
        )
        .column("value")
        .to_numpy()
    )
    assert np.all(np.diff(scrap) >= 0) and np.all(scrap <= parts)
