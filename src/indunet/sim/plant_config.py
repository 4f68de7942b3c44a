"""The demo's plant configuration, built in code for the simulated machines of `sim.live`.

Thresholds come from each machine's power levels in `sim.live.STATES`: off draws 0 (breakdown 2 %
of rated power), idle 8 %, setup 25 % and running 70–100 %. So ``off_below`` sits at 4 % and
``running_above`` at 50 % of the rated power, with a 1 % hysteresis band: setup counts as idle,
a breakdown as off. Energy comes from power (the back-filled history has no meter readings).
Counters are the sim's ``parts_total`` and ``scrap_total``; the ideal cycle is the sim's cycle
time. Every site works three 8-hour shifts in Asia/Shanghai with a 30-minute lunch break.

For `indunet demo`, `demo_condition` adds condition monitoring: three anomaly monitors (current
surges on every machine's power, the spindles' vibration and temperature) and one RUL asset
class, ``spindle``, for the machining machines (`indunet.sim.wear`), fitted on simulated runs to
failure written into a folder of the data dir.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from indunet.plant.config import PlantConfig
from indunet.sim.live import SimMachineState

__all__ = [
    "DEMO_MONITORS",
    "GRID_KG_CO2_PER_KWH",
    "PRODUCT",
    "STATE_REASONS",
    "demo_condition",
    "demo_plant_config",
]

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


#: the demo's anomaly monitors: streaming detectors that learn each tag's range from the
#: back-filled history (hours of it, so they may alarm at once) and alarm on the sim's episodes
DEMO_MONITORS = [
    {
        "id": "power-surge",
        "kind": "stream",
        "pattern": "+/+/+/+/power_kw",
        "message": "current surge: power far above the machine's usual range",
        "threshold": 0.9,  # new extremes only, not an unusual but known level
        "min_history_s": 1800.0,
        "history_s": 7200.0,
    },
    {
        "id": "spindle-vibration",
        "kind": "stream",
        "pattern": "+/machining/+/+/spindle_vib_mm_s",
        "priority": "high",
        "message": "spindle vibration out of its usual range",
        "min_history_s": 1800.0,
        "history_s": 6 * 3600.0,  # one reading a minute back-filled: 360 to learn from
    },
    {
        "id": "spindle-temperature",
        "kind": "stream",
        "pattern": "+/machining/+/+/spindle_temp_c",
        "message": "spindle temperature out of its usual range",
        "min_history_s": 1800.0,
        "history_s": 6 * 3600.0,
    },
]


def demo_condition(
    config: PlantConfig, machines: Sequence[SimMachineState], runs_dir: Path
) -> PlantConfig:
    """Return ``config`` with the demo's anomaly monitors and, when some machines have a
    spindle (the machining area), the ``spindle`` RUL asset class fitted on ``runs_dir``."""
    from indunet.sim.backfill import SPINDLE_AREA
    from indunet.sim.wear import CYCLE_S, SENSORS

    spindles = [str(m.path) for m in machines if m.path.area == SPINDLE_AREA]
    rul = []
    if spindles:
        rul = [
            {
                "asset_class": "spindle",
                "machines": spindles,
                "sensors": list(SENSORS),
                "cycle_s": CYCLE_S,  # one cycle: an operating hour
                "runs_dir": str(runs_dir),
                "horizon": 24,  # alarm a day ahead
                "cap": 100,
                "trees": 150,  # a small model: fitted in a second or two
                "every_s": 60,
            }
        ]
    doc = config.model_dump(mode="json", exclude_unset=True)
    return PlantConfig.model_validate({**doc, "monitors": DEMO_MONITORS, "rul": rul})
