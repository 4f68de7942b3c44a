"""The live plant simulator (pure)."""

from __future__ import annotations

from indunet.sim.live import STATES, PlantSim, build_plants


def test_plants_are_spread_over_sites_and_deterministic():
    a = build_plants(3, 12, seed=1)
    assert len({m.path.site for m in a}) == 3
    assert [m.rated_kw for m in a] == [m.rated_kw for m in build_plants(3, 12, seed=1)]


def test_a_day_of_steps_gives_consistent_counters_and_power():
    machines = build_plants(2, 6, seed=3)
    sim = PlantSim(machines, seed=3)
    t0 = 1_700_000_000_000
    last: dict[str, dict] = {}
    states = set()
    for k in range(0, 86_400, 30):
        for path, payload in sim.step(t0 + k * 1000):
            prev = last.get(str(path))
            states.add(payload["state"])
            rated = next(m.rated_kw for m in machines if m.path == path)
            share = STATES[payload["state"]][1]
            assert 0 <= payload["power_kw"] <= rated * share * 1.3 + 1e-9
            if prev:
                assert payload["parts_total"] >= prev["parts_total"]  # counters never go back
                assert payload["energy_kwh"] >= prev["energy_kwh"]
                assert payload["scrap_total"] <= payload["parts_total"]
            last[str(path)] = payload
    assert {"running", "idle"} <= states
    assert all(p["parts_total"] > 0 for p in last.values())
