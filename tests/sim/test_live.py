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


def test_spindles_report_their_wear_and_episodes_come_only_when_asked():
    from indunet.sim.wear import Spindle

    plain = _run(5, 3600, every_s=10)
    machines = build_plants(2, 6, seed=5)
    machines[2].spindle = Spindle(install_ms=T0 - 100 * 3_600_000, life_h=120.0, vib0=2, temp0=36)
    sim = PlantSim(machines, seed=5)
    steps = [sim.step(T0 + k * 1000) for k in range(0, 3600, 10)]
    # the spindle adds its two readings; the other payloads are as without it
    for k, step in enumerate(steps):
        for i, (path, payload) in enumerate(step):
            if i == 2:
                assert 2 < payload["spindle_vib_mm_s"] < 6 and 35 < payload["spindle_temp_c"] < 60
            else:
                assert json.dumps([str(path), payload], sort_keys=True) == plain[k * 6 + i]
    assert all("spindle_vib_mm_s" not in p for _, p in steps[0][:2])


def test_anomaly_episodes_surge_the_power_or_knock_the_spindle():
    from indunet.sim.wear import Spindle

    machines = build_plants(2, 6, seed=9)
    for m in machines[:3]:
        m.spindle = Spindle(install_ms=T0, life_h=200.0, vib0=2.0, temp0=36.0)
    sim = PlantSim(machines, seed=9, anomalies_per_h=60)
    surges = knocks = 0
    first = None
    for k in range(0, 4 * 3600):
        for m, (_, payload) in zip(machines, sim.step(T0 + k * 1000), strict=True):
            if payload["power_kw"] > m.rated_kw * 1.3:
                surges += 1
                assert m.episode is not None and m.episode[0] == "surge"
                first = k if first is None else first
            if payload.get("spindle_vib_mm_s", 0) > 5.5:
                knocks += 1
                first = k if first is None else first
    assert surges > 0 and knocks > 0
    assert first is not None and 60 <= first <= 160  # the first a minute or two in
    quiet = PlantSim(build_plants(2, 6, seed=9), seed=9)
    for k in range(0, 3600, 5):
        for _, payload in quiet.step(T0 + k * 1000):
            assert "spindle_vib_mm_s" not in payload
    assert all(m.episode is None for m in quiet.machines)
