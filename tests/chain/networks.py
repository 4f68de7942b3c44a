"""Hand-checked example networks shared by the chain tests (figures worked out in comments)."""

from __future__ import annotations

import copy
from typing import Any

# The NETWORK.json contract example: one site, one product.
CONTRACT: dict[str, Any] = {
    "horizon_weeks": 52,
    "nodes": [
        {
            "id": "A",
            "produces": "a",
            "capacity_per_week": 100,
            "inventory": 300,
            "ttr_weeks": 10,
            "region": "Hubei",
        }
    ],
    "products": [{"item": "P1", "demand_per_week": 100, "margin": 10}],
    "bom": [{"parent": "P1", "child": "a", "qty": 1}],
    "supplies": [{"supplier": "A", "customer": "P1", "item": "a"}],
}

# Two sources of item a (P assembled at the market from a, no supplies = any maker):
#   A: cap 60, no stock, TTR 4, region R1, 10 kWh/unit on a 0.9 kg/kWh grid -> 9 kg/unit
#   B: cap 60, stock 120, TTR 2, region R2, 10 kWh/unit on a 0.3 kg/kWh grid -> 3 kg/unit
#   demand 100/week, margin 10.
# Every site up: 120 >= 100, TTS = horizon 52.
# A down: 60 t + 120 >= 100 t  -> TTS_A = 3 < TTR_A 4: at risk.
#   PI_A over 4 weeks: demand 400, supply 60*4 + 120 = 360, lost 40 * 10 = 400.
# B down: B's stock stays usable: 60 t + 120 >= 100 t -> TTS_B = 3 >= TTR_B 2: not at risk.
#   PI_B over 2 weeks: demand 200, supply 120 + 120 = 240 -> loses nothing (PI 0).
# REI: A 400/400 = 1, B 0. Normal flows split by capacity 50/50 -> HHI 0.5 by supplier/region.
# Carbon of a: (9 + 3) / 2 = 6 kg per unit.
TWO_SOURCES: dict[str, Any] = {
    "horizon_weeks": 52,
    "nodes": [
        {
            "id": "A",
            "produces": "a",
            "capacity_per_week": 60,
            "ttr_weeks": 4,
            "region": "R1",
            "energy_kwh_per_unit": 10,
        },
        {
            "id": "B",
            "produces": "a",
            "capacity_per_week": 60,
            "inventory": 120,
            "ttr_weeks": 2,
            "region": "R2",
            "energy_kwh_per_unit": 10,
        },
    ],
    "products": [{"item": "P", "demand_per_week": 100, "margin": 10}],
    "bom": [{"parent": "P", "child": "a", "qty": 1}],
    "grid_factors": {"R1": 0.9, "R2": 0.3},
}

# A BOM two levels deep: P (made by F) needs 2 s; s (made by S1) needs 3 r (made by R1).
#   R1: cap 1000, no stock, TTR 6, region X, 2 kWh/unit, grid X 0.5 -> 1 kg/unit
#   S1: cap 100, stock 50, TTR 3, region Y, 1 kWh/unit, grid Y 0.8 -> 0.8 + 3*1 = 3.8 kg/unit
#   F:  cap 100, stock 20, TTR 1, region Y, 5 kWh/unit -> 4 + 2*3.8 = 11.6 kg/unit
#   demand P 40/week, margin 5 -> normal flows: F 40, S1 80, R1 240 per week.
# R1 down: s only from S1's stock 50 -> 25 P, plus F's stock 20 = 45 P: 40 t <= 45,
#   TTS 1.125 < TTR 6; PI over 6 weeks: 240 - 45 = 195 lost * 5 = 975.
# S1 down: the same 45 P: TTS 1.125 < 3; PI over 3 weeks: 120 - 45 = 75 * 5 = 375.
# F down: F's stock 20: TTS 0.5 < 1; PI over 1 week: 40 - 20 = 20 * 5 = 100.
# REI: R1 1, S1 375/975, F 100/975.
# Lead times: R1 -> S1 0.5 weeks, S1 -> F 1 week.
# Scenario "item r stops 4 weeks": R1 stops at 0 (no stock), back at 4; S1 gets no r from 0.5,
#   lives on its stock 50/80 = 0.625 weeks -> short at 1.125, r back at 4.5; F gets no s from
#   2.125, stock 20/40 = 0.5 weeks -> short at 2.625, s back at 5.5. P: time-to-impact 2.625,
#   lost 40 * (5.5 - 2.625) = 115 units, margin 575.
# Scenario "region Y stops 2 weeks" (S1 and F): F's stock lasts 0.5 weeks, both back at 2 (+1
#   week lead for S1 -> F, so F's input is back at 3): P short from 0.5 to 3 -> lost 100 units.
TWO_LEVELS: dict[str, Any] = {
    "horizon_weeks": 52,
    "nodes": [
        {
            "id": "R1",
            "produces": "r",
            "capacity_per_week": 1000,
            "ttr_weeks": 6,
            "region": "X",
            "energy_kwh_per_unit": 2,
        },
        {
            "id": "S1",
            "produces": "s",
            "capacity_per_week": 100,
            "inventory": 50,
            "ttr_weeks": 3,
            "region": "Y",
            "energy_kwh_per_unit": 1,
        },
        {
            "id": "F",
            "produces": "P",
            "capacity_per_week": 100,
            "inventory": 20,
            "ttr_weeks": 1,
            "region": "Y",
            "energy_kwh_per_unit": 5,
        },
    ],
    "products": [{"item": "P", "demand_per_week": 40, "margin": 5}],
    "bom": [{"parent": "P", "child": "s", "qty": 2}, {"parent": "s", "child": "r", "qty": 3}],
    "supplies": [
        {"supplier": "R1", "customer": "S1", "item": "r", "lead_time_weeks": 0.5},
        {"supplier": "S1", "customer": "F", "item": "s", "lead_time_weeks": 1},
        {"supplier": "F", "customer": "P", "item": "P"},
    ],
    "grid_factors": {"X": 0.5, "Y": 0.8},
}

# P needs a (two sources A1, A2) and b (single source B): losing B stops P, losing A1 does not.
MIXED: dict[str, Any] = {
    "horizon_weeks": 26,
    "nodes": [
        {"id": "A1", "produces": "a", "capacity_per_week": 80, "ttr_weeks": 2, "region": "Hubei"},
        {"id": "A2", "produces": "a", "capacity_per_week": 80, "ttr_weeks": 2, "region": "Hubei"},
        {"id": "B", "produces": "b", "capacity_per_week": 80, "ttr_weeks": 8, "region": "Jiangsu"},
    ],
    "products": [
        {"item": "P", "demand_per_week": 50, "margin": 4},
        {"item": "Q", "demand_per_week": 50, "margin": 1},
    ],
    "bom": [
        {"parent": "P", "child": "a", "qty": 1},
        {"parent": "P", "child": "b", "qty": 1},
        {"parent": "Q", "child": "a", "qty": 1},
    ],
}


def doc(name: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy to edit."""
    return copy.deepcopy(name)
