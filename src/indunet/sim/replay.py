"""Replay real public datasets as machines in the namespace (pure mapping, plus file reading).

Each dataset in `DATASETS` becomes one machine whose rows are machine payloads of the JSON
contract. The mapping functions (`steel_messages`, `cnc_messages`, `metropt_messages`) take
rows as dicts of strings and return `ReplayMessage`s; `read_dataset` opens the files.
`replay_offset_ms` moves the original timestamps next to the wall clock; the pacing and the
MQTT publishing are in `indunet.sim.publish`.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from indunet.errors import ConfigError, DataError
from indunet.ingest.values import zone
from indunet.uns import MachinePath

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "ReplayMessage",
    "cnc_messages",
    "dataset_root",
    "metropt_messages",
    "read_dataset",
    "replay_offset_ms",
    "steel_messages",
]

JsonValue = float | bool | str


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """One row of a dataset: its machine, its original time (epoch ms) and its tag values."""

    machine: MachinePath
    ts_ms: int
    values: dict[str, JsonValue]

    def payload(self, offset_ms: int = 0) -> dict[str, JsonValue | int]:
        """Return the JSON-contract payload, with the timestamp moved by ``offset_ms``."""
        return {"timestamp_ms": self.ts_ms + offset_ms, **self.values}


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """A dataset that can be replayed: its folder, machine, tag units and source."""

    folder: str
    machine: MachinePath
    units: dict[str, str | None]
    source: str


# ---------------------------------------------------------------------------- steel
_STEEL_COLUMNS = {
    "Usage_kWh": ("usage_kwh", "kWh"),
    "Lagging_Current_Reactive.Power_kVarh": ("lagging_reactive_kvarh", "kVArh"),
    "Leading_Current_Reactive_Power_kVarh": ("leading_reactive_kvarh", "kVArh"),
    "CO2(tCO2)": ("co2_t", "tCO2"),
    "Lagging_Current_Power_Factor": ("lagging_power_factor_pct", "%"),
    "Leading_Current_Power_Factor": ("leading_power_factor_pct", "%"),
}
_STEEL_TZ = "Asia/Seoul"  # DAEWOO Steel, Gwangyang; no daylight saving in 2018
STEEL_MACHINE = MachinePath("gwangyang", "steel-works", "main-supply", "plant-meter")

# ---------------------------------------------------------------------------- cnc
_AXES = {"X1": "x_axis", "Y1": "y_axis", "Z1": "z_axis", "S1": "spindle"}
_AXIS_SIGNALS = {
    "ActualPosition": ("actual_position_mm", "mm"),
    "ActualVelocity": ("actual_velocity_mm_s", "mm/s"),
    "ActualAcceleration": ("actual_acceleration_mm_s2", "mm/s²"),
    "CommandPosition": ("command_position_mm", "mm"),
    "CommandVelocity": ("command_velocity_mm_s", "mm/s"),
    "CommandAcceleration": ("command_acceleration_mm_s2", "mm/s²"),
    "CurrentFeedback": ("current_feedback_a", "A"),
    "DCBusVoltage": ("dc_bus_voltage_v", "V"),
    "OutputCurrent": ("output_current_a", "A"),
    "OutputVoltage": ("output_voltage_v", "V"),
    "OutputPower": ("output_power_kw", "kW"),
    "SystemInertia": ("system_inertia_kg_m2", "kg·m²"),
}
_CNC_OTHER = {
    "M1_CURRENT_PROGRAM_NUMBER": ("program_number", None),
    "M1_sequence_number": ("gcode_line", None),
    "M1_CURRENT_FEEDRATE": ("feed_rate_mm_s", "mm/s"),
}
_NO_SIGNAL = {
    "X1": {"SystemInertia"},
    "Y1": {"SystemInertia"},
    "Z1": {"SystemInertia", "OutputPower"},
}
#: the 47 numeric columns of experiment_NN.csv, in file order (then Machining_Process)
CNC_COLUMNS = tuple(
    f"{axis}_{signal}"
    for axis in _AXES
    for signal in _AXIS_SIGNALS
    if signal not in _NO_SIGNAL.get(axis, set())
) + tuple(_CNC_OTHER)
CNC_MACHINE = MachinePath("ann-arbor", "smart-lab", "cnc-cell", "cnc-mill")
CNC_SAMPLE_MS = 100
CNC_GAP_MS = 60_000  # between two experiments (the source gives no time of day)
#: the dataset has no clock time; with --keep-time experiment 1 starts here (April 2018)
CNC_EPOCH_MS = int(datetime(2018, 4, 1, tzinfo=UTC).timestamp() * 1000)


def _cnc_tag(column: str) -> tuple[str, str | None]:
    if column in _CNC_OTHER:
        return _CNC_OTHER[column]
    axis, _, signal = column.partition("_")
    if axis in _AXES and signal in _AXIS_SIGNALS:
        name, unit = _AXIS_SIGNALS[signal]
        return f"{_AXES[axis]}_{name}", unit
    raise DataError(f"column {column!r} is not a known CNC mill channel")


# ---------------------------------------------------------------------------- metropt
_METROPT_ANALOG = {
    "TP2": ("tp2_pressure_bar", "bar"),
    "TP3": ("tp3_pressure_bar", "bar"),
    "H1": ("h1_pressure_bar", "bar"),
    "DV_pressure": ("dv_pressure_bar", "bar"),
    "Reservoirs": ("reservoirs_pressure_bar", "bar"),
    "Oil_temperature": ("oil_temperature_c", "°C"),
    "Motor_current": ("motor_current_a", "A"),
}
_METROPT_DIGITAL = {
    "COMP": "comp_no_air_intake",
    "DV_eletric": "dv_electric_loaded",
    "Towers": "towers",
    "MPG": "mpg",
    "LPS": "lps_low_pressure",
    "Pressure_switch": "pressure_switch",
    "Oil_level": "oil_level_low",
    "Caudal_impulses": "caudal_impulses",
}
_METROPT_TZ = "Europe/Lisbon"  # Porto metro
METROPT_MACHINE = MachinePath("porto", "metro-depot", "train-apu", "air-compressor")

DATASETS: dict[str, DatasetSpec] = {
    "steel_industry": DatasetSpec(
        "steel_industry",
        STEEL_MACHINE,
        {
            "power_kw": "kW",
            **dict(_STEEL_COLUMNS.values()),
            "load_type": None,
        },
        "DAEWOO Steel via UCI #851 (CC BY 4.0); 15-min plant meter, 2018",
    ),
    "cnc_mill_tool_wear": DatasetSpec(
        "cnc_mill_tool_wear",
        CNC_MACHINE,
        {
            **dict(_cnc_tag(column) for column in CNC_COLUMNS),
            "machining_process": None,
            "experiment": None,
            "tool_condition": None,
        },
        "University of Michigan SMART lab via Kaggle (CC0); 18 milling runs at 100 ms",
    ),
    "metropt3_air_compressor": DatasetSpec(
        "metropt3_air_compressor",
        METROPT_MACHINE,
        {**dict(_METROPT_ANALOG.values()), **{n: None for n in _METROPT_DIGITAL.values()}},
        "MetroPT-3, INESC TEC via UCI #791 (CC BY 4.0); first 1,000 rows, ~10 s",
    ),
}


def _number(raw: str | None, where: str) -> float:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise DataError(f"{where}: {raw!r} is not a finite number")
    return value


def _local_ms(text: str, fmt: str, tz: str, where: str) -> datetime:
    try:
        naive = datetime.strptime(text, fmt)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {text!r} is not a time like {fmt}") from exc
    return naive.replace(tzinfo=zone(tz))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def steel_messages(
    rows: Iterable[dict[str, str]], source: str = "steel"
) -> Iterator[ReplayMessage]:
    """Map Steel_industry_data rows; the 24:00 interval (written ``00:00``, NSM 0) gets +1 day."""
    for line, row in enumerate(rows, start=2):
        where = f"{source} line {line}"
        moment = _local_ms(row.get("date", ""), "%d/%m/%Y %H:%M", _STEEL_TZ, f"{where} date")
        nsm = _number(row.get("NSM"), f"{where} NSM")
        if nsm == 0:  # interval ending at midnight: written as 00:00 of the day it ends
            moment += timedelta(days=1)
        elif nsm != moment.hour * 3600 + moment.minute * 60:
            raise DataError(f"{where}: NSM {nsm:g} does not match the time {row['date']!r}")
        values: dict[str, JsonValue] = {}
        for column, (tag, _unit) in _STEEL_COLUMNS.items():
            values[tag] = _number(row.get(column), f"{where} {column}")
        values["power_kw"] = round(values["usage_kwh"] * 4, 4)  # 15-min energy -> mean kW
        values["load_type"] = str(row.get("Load_Type") or "")
        yield ReplayMessage(STEEL_MACHINE, _ms(moment), values)


def cnc_messages(
    experiments: Iterable[tuple[int, list[dict[str, str]]]],
    conditions: dict[int, str] | None = None,
    start_ms: int = CNC_EPOCH_MS,
) -> Iterator[ReplayMessage]:
    """Map CNC mill runs (experiment number, rows) one after another at 100 ms per row."""
    conditions = conditions or {}
    t = start_ms
    expected = {*CNC_COLUMNS, "Machining_Process"}
    for number, rows in experiments:
        if rows and set(rows[0]) != expected:
            missing = ", ".join(sorted(expected - set(rows[0]))) or "none"
            extra = ", ".join(sorted(str(c) for c in set(rows[0]) - expected)) or "none"
            raise DataError(
                f"experiment_{number:02d} header: missing columns {missing}; unknown {extra}"
            )
        for line, row in enumerate(rows, start=2):
            where = f"experiment_{number:02d} line {line}"
            values: dict[str, JsonValue] = {}
            for column, raw in row.items():
                if column == "Machining_Process":
                    values["machining_process"] = str(raw or "")
                    continue
                tag, _unit = _cnc_tag(str(column))
                values[tag] = _number(raw, f"{where} {column}")
            values["experiment"] = float(number)
            if number in conditions:
                values["tool_condition"] = conditions[number]
            yield ReplayMessage(CNC_MACHINE, t, values)
            t += CNC_SAMPLE_MS
        t += CNC_GAP_MS


def metropt_messages(
    rows: Iterable[dict[str, str]], source: str = "metropt3"
) -> Iterator[ReplayMessage]:
    """Map MetroPT-3 rows: pressures, oil temperature, motor current and 0/1 signals."""
    for line, row in enumerate(rows, start=2):
        where = f"{source} line {line}"
        moment = _local_ms(
            row.get("timestamp", ""), "%Y-%m-%d %H:%M:%S", _METROPT_TZ, f"{where} timestamp"
        )
        values: dict[str, JsonValue] = {}
        for column, (tag, _unit) in _METROPT_ANALOG.items():
            values[tag] = _number(row.get(column), f"{where} {column}")
        for column, tag in _METROPT_DIGITAL.items():
            bit = _number(row.get(column), f"{where} {column}")
            if bit not in (0.0, 1.0):
                raise DataError(f"{where} {column}: {row.get(column)!r} is not 0 or 1")
            values[tag] = bit == 1.0
        yield ReplayMessage(METROPT_MACHINE, _ms(moment), values)


def replay_offset_ms(first_ms: int, last_ms: int, start_ms: int, speed: float) -> int:
    """Return how far to move timestamps so no point is ever ahead of its publishing time.

    Row ``i`` is published at ``start + (t_i - t_0) / speed``. The offset puts the first row
    at ``start`` when the replay is slower than real time, and the last row at the moment it
    is published when it is faster (``speed`` 0 = at once: the last row at ``start``).
    """
    if speed < 0:
        raise ConfigError(f"replay speed must be 0 (as fast as possible) or more, got {speed}")
    span = last_ms - first_ms
    lag = span if speed == 0 else max(span - span / speed, 0.0)
    return start_ms - first_ms - math.ceil(lag)


# ---------------------------------------------------------------------------- files
def dataset_root(path: Path) -> Path:
    """Return the datasets folder, or raise `ConfigError` saying how to point at it."""
    if not path.is_dir():
        raise ConfigError(
            f"datasets folder {path} does not exist; pass --datasets PATH "
            "(the folder holding steel_industry/, cnc_mill_tool_wear/ …)"
        )
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"dataset file {path} is missing")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def read_dataset(name: str, root: Path, limit: int | None = None) -> list[ReplayMessage]:
    """Read dataset ``name`` under ``root`` into messages (at most ``limit`` rows)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    folder = dataset_root(root) / DATASETS[name].folder
    if name == "steel_industry":
        found: Iterable[ReplayMessage] = steel_messages(
            _rows(folder / "Steel_industry_data.csv.gz"), "Steel_industry_data.csv"
        )
    elif name == "metropt3_air_compressor":
        found = metropt_messages(
            _rows(folder / "MetroPT3_AirCompressor_first1000rows.csv"), "MetroPT3 csv"
        )
    else:
        conditions = {
            int(_number(r.get("No"), f"train.csv line {i}")): str(r.get("tool_condition"))
            for i, r in enumerate(_rows(folder / "train.csv"), start=2)
        }
        numbers = sorted(conditions)

        def runs() -> Iterator[tuple[int, list[dict[str, str]]]]:
            for n in numbers:
                yield n, _rows(folder / f"experiment_{n:02d}.csv.gz")

        found = cnc_messages(runs(), conditions)
    out: list[ReplayMessage] = []
    for message in found:
        if limit is not None and len(out) >= limit:
            break
        out.append(message)
    return out
