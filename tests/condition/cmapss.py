"""The C-MAPSS FD001 subset kept in tests/fixtures (engines 1–30 run to failure, 1–20 test)."""

from __future__ import annotations

import gzip
from functools import cache

import numpy as np

from indunet.condition.rul import CycleHistory
from tests.datasets import DATASETS

FOLDER = DATASETS / "nasa_cmapss_fd001"
SENSORS = ("setting1", "setting2", "setting3", *(f"s{i}" for i in range(1, 22)))


@cache
def _table(name: str) -> np.ndarray:
    with gzip.open(FOLDER / name, "rt") as f:
        return np.loadtxt(f)


def engines(name: str) -> list[CycleHistory]:
    """One history per engine of a fixture file."""
    table = _table(name)
    return [
        CycleHistory(f"engine-{int(u)}", rows[:, 1], rows[:, 2:], SENSORS)
        for u in np.unique(table[:, 0])
        for rows in [table[table[:, 0] == u]]
    ]


def train() -> list[CycleHistory]:
    return engines("train_FD001_units1-30.txt.gz")


def held_out() -> tuple[list[CycleHistory], np.ndarray]:
    truth = np.loadtxt(FOLDER / "RUL_FD001_units1-20.txt")
    return engines("test_FD001_units1-20.txt.gz"), truth
