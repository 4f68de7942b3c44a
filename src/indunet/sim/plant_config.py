"""The demo's plant configuration, built in code for the simulated machines of `sim.live`.

Thresholds come from each machine's power levels in `sim.live.STATES`: off draws 0 (breakdown 2 %
of rated power), idle 8 %, setup 25 % and running 70–100 %. So ``off_below`` sits at 4 % and
``running_above`` at 50 % of the rated power, with a 1 % hysteresis band: setup counts as idle,
a breakdown as off. Energy comes from power (the back-filled history has no meter readings).
Counters are the sim's ``parts_total`` and ``scrap_total``; the ideal cycle is the sim's cycle
time. Every site works three 8-hour shifts in Asia/Shanghai with a 30-minute lunch break.
"""

from __future__ import annotations

from collections.abc import Sequence

from indunet.plant.config import PlantConfig
from indunet.sim.live import SimMachineState

__all__ = ["GRID_KG_CO2_PER_KWH", "PRODUCT", "STATE_REASONS", "demo_plant_config"]

#: China's average grid emission factor (kg CO2 per kWh), about 0.58 in 2022
IDEAL_SHARE = 0.9
GRID_KG_CO2_PER_KWH = 0.58
PRODUCT = "part"

_SHIFTS = [
    {"name": "early", "start": "06:00", "end": "14:00"},
    {
        "name": "day",
        "start": "14:00",
        "end": "22:00",
        "breaks": [{"start": "17:30", "end": "18:00"}],
    },
    {"name": "night", "start": "22:00", "end": "06:00"},
]
_REASONS = [
    {"code": "mechanical", "label": "Mechanical failure"},
    {"code": "electrical", "label": "Electrical failure"},
    {"code": "tooling", "label": "Tool change or breakage", "parent": "mechanical"},
    {"code": "material", "label": "Waiting for material"},
    {"code": "operator", "label": "No operator"},
    {"code": "changeover", "label": "Changeover / setup", "planned": True},
]


#: the sim's reported states that explain a stop by themselves
STATE_REASONS = {"setup": "changeover", "breakdown": "mechanical"}


def demo_plant_config(machines: Sequence[SimMachineState]) -> PlantConfig:
    """Return a validated plant config for the simulated machines."""
    early = dict(_SHIFTS[0], breaks=[{"start": "11:30", "end": "12:00", "name": "lunch"}])
    shifts = [early, *_SHIFTS[1:]]
    sites = sorted({m.path.site for m in machines})
    return PlantConfig.model_validate(
        {
            "machines": [
                {
                    "id": str(m.path),
                    "power_tag": "power_kw",
                    "power_unit": "kW",
                    "rated_kw": round(m.rated_kw, 3),
                    # one message a second live; the back-filled history has 10 s steps
                    "expected_interval_s": 1.0,
                    "offline_after_intervals": 15,
                    "thresholds": {
                        "off_below": round(0.04 * m.rated_kw, 4),
                        "running_above": round(0.5 * m.rated_kw, 4),
                        "hysteresis": round(0.01 * m.rated_kw, 4),
                        "min_dwell_s": 5.0,
                    },
                    "total_counter": {"tag": "parts_total"},
                    "scrap_counter": {"tag": "scrap_total"},
                    # the ideal (best demonstrated) cycle is a little faster than the sim's
                    # average, so performance sits near 90 % as on a real line
                    "ideal_cycle_s": {PRODUCT: round(IDEAL_SHARE * m.cycle_s, 3)},
                    "default_product": PRODUCT,
                    # the sim reports its own state: setup and breakdown propose a stop reason
                    # for stops no operator has explained yet (docs/plant.md)
                    "state_tag": "state",
                    "state_reasons": STATE_REASONS,
                }
                for m in machines
            ],
            "sites": {
                s: {
                    "grid_kg_co2_per_kwh": GRID_KG_CO2_PER_KWH,
                    "calendar": {"timezone": "Asia/Shanghai", "shifts": shifts},
                }
                for s in sites
            },
            "reasons": {"reasons": _REASONS},
        }
    )
