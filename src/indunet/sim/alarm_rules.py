"""Alarm rules for the demo's simulated machines (tag names from `indunet.sim.live`).

Every simulated machine reports ``power_kw``, ``energy_kwh``, ``parts_total``, ``good_total``,
``scrap_total``, ``temp_c`` and ``state`` once a second. Running machines warm towards 60 °C,
idle ones cool towards 28 °C; power jumps from about 8 % to 100 % of the rated load when a
machine starts running.
"""

from __future__ import annotations

from typing import Any

from indunet.sim.live import SimMachineState

__all__ = ["DEMO_TAGS", "demo_alarm_rules", "demo_known_tags"]

DEMO_TAGS = (
    "power_kw",
    "energy_kwh",
    "parts_total",
    "good_total",
    "scrap_total",
    "temp_c",
    "state",
)


def demo_alarm_rules() -> list[dict[str, Any]]:
    """Return the demo rules: hot machine, power surge, stale data, long idle, low line OEE."""
    return [
        {
            "id": "line-oee-low",
            "kind": "below_target",
            "pattern": "derived/oee/+/+/+",
            "target": 0.5,
            "deadband": 0.02,
            "priority": "medium",
            "message": "Line OEE over the last 8 h is below 50 %; see the stop reasons.",
        },
        {
            "id": "temp-high",
            "kind": "high",
            "pattern": "+/+/+/+/temp_c",
            "limit": 57.0,
            "deadband": 2.0,
            "on_delay_s": 30,
            "off_delay_s": 60,
            "priority": "high",
            "escalate_after_s": 900,
            "message": "Machine is running hot; check coolant and load.",
        },
        {
            "id": "power-surge",
            "kind": "rate",
            "pattern": "+/+/+/+/power_kw",
            "max_rate": 25.0,
            "per_s": 1,
            "direction": "up",
            "off_delay_s": 30,
            "priority": "low",
            "message": "Power rose faster than 25 kW/s (a heavy start).",
        },
        {
            "id": "data-stale",
            "kind": "stale",
            "pattern": "+/+/+/+/power_kw",
            "max_age_s": 30,
            "priority": "medium",
            "message": "No power reading for 30 s; check the meter and the network.",
        },
        {
            "id": "idle-in-shift",
            "kind": "state_duration",
            "pattern": "+/+/+/+/state",
            "state": "idle",
            "max_duration_s": 1800,
            "planned_only": True,
            "priority": "medium",
            "message": "Idle for more than 30 min in a planned shift.",
        },
    ]


def demo_known_tags(machines: list[SimMachineState]) -> set[str]:
    """Return every tag the simulated machines report (rules are checked against them)."""
    return {f"{m.path}/{tag}" for m in machines for tag in DEMO_TAGS}
