"""Plant analytics, pure: machine states, shift calendars, part counters, OEE and energy.

Arrays in, dataclasses and arrays out; no sockets, files or databases. The caller reads the
historian (``Historian.series``) and passes ``ts``/``value`` columns in.
"""

from indunet.plant.config import (
    CounterConfig,
    MachineConfig,
    PlannedDowntime,
    PlantConfig,
    Shift,
    ShiftCalendar,
    SiteConfig,
    StopReason,
    StopReasonTree,
    Thresholds,
)
from indunet.plant.states import MachineState, StateTimeline, StateTracker, detect_states

__all__ = [
    "CounterConfig",
    "MachineConfig",
    "MachineState",
    "PlannedDowntime",
    "PlantConfig",
    "Shift",
    "ShiftCalendar",
    "SiteConfig",
    "StateTimeline",
    "StateTracker",
    "StopReason",
    "StopReasonTree",
    "Thresholds",
    "detect_states",
]
