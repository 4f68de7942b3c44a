"""A hand-checked fixture: six enterprises, a December baseline and two days in March 2020.

| id | province  | city     | ind. | size   | Dec baseline        | 1 Mar | 2 Mar                |
|----|-----------|----------|------|--------|---------------------|-------|----------------------|
| E1 | Guangdong | Shenzhen | C39  | small  | 90, 110 → 100       | 50 R  | 20 S                 |
| E2 | Guangdong | Shenzhen | C31  | medium | 200, 200 → 200 θ0.5 | 80 S  | 150 R                |
| E3 | Hubei     | Wuhan    | C36  | large  | 1000, 1000 → 1000   | —  U  | 400 R                |
| E4 | Hubei     | Wuhan    | C36  | small  | none                | 50 U  | 50 U                 |
| E5 | Hubei     | Xiaogan  | C17  | micro  | 10, 10 → 10         | 3 S   | 2, corrected to 5 R  |
| E6 | Guangdong | Dongguan | C39  | small  | one day only: none  | 100 U | —  U                 |

R resumed, S stopped, U unknown (θ = 0.3, C31 θ = 0.5, at least 2 baseline days). E5 on 1 Mar
is exactly θ × baseline (3 = 0.3 × 10), which is not *more than*, so stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from indunet.region.settings import RegionSettings
from indunet.region.store import RegionStore

HEADER = (
    "enterprise_id,name,province,city,county,industry,size,above_designated_size,lat,lon,"
    "key_enterprise,chain,supplies\n"
)
REGISTRY = (
    HEADER
    + """E1,Pearl Electronics,Guangdong,Shenzhen,Nanshan,C3911,small,false,22.5,113.9,false,,E3
E2,South Steel,广东省,Shenzhen,Bao'an,31,medium,true,22.6,113.8,false,,E3
E3,Wuhan Motors,Hubei,Wuhan,Caidian,C36,large,true,30.5,114.1,true,auto,
E4,Wuhan Parts,42,Wuhan,Hannan,3670,small,,,,false,auto,E3
E5,Xiaogan Textiles,湖北,Xiaogan,,C17,micro,,,,,,
E6,Dongguan Plastics,guangdong,Dongguan,,C39,small,,,,,,
"""
)

READINGS = """enterprise_id,date,kwh
E1,2019-12-01,90
E1,2019-12-02,110
E2,2019-12-01,200
E2,2019-12-02,200
E3,2019-12-01,1000
E3,2019-12-02,1000
E5,2019-12-01,10
E5,2019-12-02,10
E6,2019-12-01,100
E1,2020-03-01,50
E2,2020-03-01,80
E4,2020-03-01,50
E5,2020-03-01,3
E6,2020-03-01,100
E1,2020-03-02,20
E2,2020-03-02,150
E3,2020-03-02,400
E4,2020-03-02,50
E5,2020-03-02,2
"""

CORRECTION = "enterprise_id,date,kwh\nE5,2020-03-02,5\n"
TODAY = date(2020, 4, 30)
MAR1, MAR2 = date(2020, 3, 1), date(2020, 3, 2)


def fixture_settings(**overrides: object) -> RegionSettings:
    """Return the fixture's rule: θ 0.3, C31 θ 0.5, baseline Dec 2019, at least 2 days."""
    values: dict = {
        "theta_by_industry": {"C31": 0.5},
        "baseline_start": date(2019, 12, 1),
        "baseline_end": date(2019, 12, 31),
        "baseline_min_days": 2,
    }
    values.update(overrides)
    return RegionSettings(**values)


def write(path: Path, text: str) -> Path:
    """Write a text file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., RegionStore]]:
    """Open region stores on temporary files; all are closed afterwards."""
    opened: list[RegionStore] = []

    def make(settings: RegionSettings | None = None, name: str = "region.duckdb") -> RegionStore:
        store = RegionStore(settings or fixture_settings(), tmp_path / name)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def loaded(make_store, tmp_path: Path) -> RegionStore:
    """The fixture's registry and readings (before E5's correction) in a store."""
    store = make_store()
    report = store.import_registry(write(tmp_path / "reg.csv", REGISTRY), effective=TODAY)
    assert report.errors == [] and report.new == 6
    store.import_readings(write(tmp_path / "readings.csv", READINGS), today=TODAY)
    return store
