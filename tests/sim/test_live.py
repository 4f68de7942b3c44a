"""The live plant simulator (pure)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indunet.sim.live import STATES, PlantSim, build_plants

T0 = 1_700_000_000_000


def _run(seed: int, seconds: int, every_s: int = 30, machines: int = 6) -> list[str]:
    sim = PlantSim(build_plants(2, machines, seed=seed), seed=seed)
    return [
        json.dumps([str(path), payload], sort_keys=True)
        for k in range(0, seconds, every_s)
        for path, payload in sim.step(T0 + k * 1000)
    ]


def test_plants_are_spread_over_sites_and_deterministic():
    a = build_plants(3, 12, seed=1)
    assert len({m.path.site for m in a}) == 3
    assert [m.rated_kw for m in a] == [m.rated_kw for m in build_plants(3, 12, seed=1)]


def test_same_seed_gives_the_identical_payload_sequence():
    assert _run(5, 7200) == _run(5, 7200)
    assert _run(5, 7200) != _run(6, 7200)


def test_a_day_of_steps_gives_consistent_counters_and_power():
    machines = build_plants(2, 6, seed=3)
    sim = PlantSim(machines, seed=3)
    last: dict[str, dict] = {}
    states = set()
    for k in range(0, 86_400, 30):
        for path, payload in sim.step(T0 + k * 1000):
            prev = last.get(str(path))
            states.add(payload["state"])
            rated = next(m.rated_kw for m in machines if m.path == path)
            share = STATES[payload["state"]].load_share
            assert 0 <= payload["power_kw"] <= rated * share * 1.3 + 1e-9
            if payload["state"] == "off":
                assert payload["power_kw"] == 0
            assert payload["good_total"] + payload["scrap_total"] == payload["parts_total"]
            assert payload["scrap_total"] >= 0
            assert 15 < payload["temp_c"] < 70
            if prev:
                assert payload["parts_total"] >= prev["parts_total"]  # counters never go back
                assert payload["scrap_total"] >= prev["scrap_total"]
                assert payload["energy_kwh"] >= prev["energy_kwh"]
                if payload["state"] != "running" and prev["state"] != "running":
                    assert payload["parts_total"] == prev["parts_total"]
            last[str(path)] = payload
    assert states == set(STATES)  # every state is visited in a day over six machines
    assert all(p["parts_total"] > 0 for p in last.values())
    assert sum(p["scrap_total"] for p in last.values()) > 0


def test_state_durations_follow_their_distributions():
    rng = np.random.default_rng(0)
    for state, spec in STATES.items():
        d = np.array([spec.draw_s(rng) for _ in range(4000)])
        assert d.min() >= 1.0
        assert d.mean() == pytest.approx(spec.mean_s, rel=0.1), state
        expected_cv = 1.0 if spec.distribution == "exponential" else spec.cv
        assert d.std() / d.mean() == pytest.approx(expected_cv, rel=0.2), state


def test_a_simulated_week_logs_state_changes_with_drawn_durations():
    machines = build_plants(1, 4, seed=11)
    sim = PlantSim(machines, seed=11)
    for k in range(0, 7 * 86_400, 60):
        sim.step(T0 + k * 1000)
    for m in machines:
        changes = [(t2 - t1) / 1000 for (t1, _), (t2, _) in zip(m.log, m.log[1:], strict=False)]
        assert len(changes) > 20
        assert min(changes) >= 1.0
        assert len(set(changes)) == len(changes)  # drawn, not fixed
        assert all(a != b for (_, a), (_, b) in zip(m.log, m.log[1:], strict=False))


def test_every_state_has_a_valid_transition_table():
    for name, spec in STATES.items():
        assert spec.next_states, name
        assert sum(p for _, p in spec.next_states) == pytest.approx(1.0)
        assert all(n in STATES for n, _ in spec.next_states)
