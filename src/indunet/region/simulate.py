"""A simulated nation of enterprises and their daily kWh through the 2020 shutdown and recovery.

The registry's spread over provinces, industries and sizes follows published statistics
(rounded; sources and figures in ``docs/region.md``). Each enterprise uses its normal kWh until
its workers leave for the Spring Festival (25 Jan 2020), drops to standby through the holiday
and the lockdown, and comes back on its own resumption day: not before 10 Feb in most provinces
and 11 Mar in Hubei, later for small and micro firms and for slow provinces. Continuous-process
plants (steel, petrochemicals, power) never stop. Calibrated so that national SME resumption is
≈52 % on 5 Mar 2020 (+≈2 points a day) and above-designated-size firms of the large industrial
provinces pass 90–95 %.

Pure: returns Polars frames; `write_nation` is the only function touching files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from indunet.errors import DataError
from indunet.region.registry import divisions, provinces

__all__ = [
    "CAPITALS",
    "DIVISION_WEIGHTS",
    "PROVINCE_WEIGHTS",
    "Nation",
    "simulate_nation",
    "write_nation",
]

#: industrial enterprises above designated size by province, 2019, thousands (NBS yearbook 2020,
#: rounded; see docs/region.md)
PROVINCE_WEIGHTS: dict[str, float] = {
    "11": 3.0, "12": 5.0, "13": 13.8, "14": 4.4, "15": 3.2, "21": 7.8, "22": 3.0, "23": 3.8,
    "31": 8.2, "32": 45.6, "33": 45.0, "34": 18.4, "35": 17.6, "36": 13.0, "37": 26.8,
    "41": 20.4, "42": 15.6, "43": 16.3, "44": 54.8, "45": 6.6, "46": 0.4, "50": 6.6,
    "51": 14.0, "52": 4.5, "53": 4.3, "54": 0.15, "61": 7.1, "62": 2.1, "63": 0.6,
    "64": 1.2, "65": 3.0,
}  # fmt: skip
CAPITALS: dict[str, str] = {
    "11": "Beijing", "12": "Tianjin", "13": "Shijiazhuang", "14": "Taiyuan", "15": "Hohhot",
    "21": "Shenyang", "22": "Changchun", "23": "Harbin", "31": "Shanghai", "32": "Nanjing",
    "33": "Hangzhou", "34": "Hefei", "35": "Fuzhou", "36": "Nanchang", "37": "Jinan",
    "41": "Zhengzhou", "42": "Wuhan", "43": "Changsha", "44": "Guangzhou", "45": "Nanning",
    "46": "Haikou", "50": "Chongqing", "51": "Chengdu", "52": "Guiyang", "53": "Kunming",
    "54": "Lhasa", "61": "Xi'an", "62": "Lanzhou", "63": "Xining", "64": "Yinchuan",
    "65": "Urumqi",
}  # fmt: skip
#: share of enterprises per GB/T 4754 division, % (NBS 2019 counts by division, rounded)
DIVISION_WEIGHTS: dict[str, float] = {
    "B06": 0.9, "B08": 0.3, "B09": 0.3, "B10": 0.9, "C13": 5.8, "C14": 2.3, "C15": 1.5,
    "C16": 0.03, "C17": 5.0, "C18": 3.9, "C19": 2.2, "C20": 2.3, "C21": 1.7, "C22": 1.8,
    "C23": 1.5, "C24": 2.3, "C25": 0.6, "C26": 6.3, "C27": 2.1, "C28": 0.5, "C29": 5.0,
    "C30": 8.4, "C31": 1.3, "C32": 1.9, "C33": 6.5, "C34": 6.7, "C35": 4.8, "C36": 4.0,
    "C37": 1.2, "C38": 6.7, "C39": 5.0, "C40": 1.2, "C41": 0.5, "C42": 0.6, "C43": 0.2,
    "D44": 2.0, "D45": 0.6, "D46": 0.6,
}  # fmt: skip
SIZE_SHARES = {"large": 0.01, "medium": 0.06, "small": 0.43, "micro": 0.50}
#: share of small firms above the designated size (annual revenue ≥ 20 M yuan)
SMALL_ABOVE_SHARE = 0.35
#: median daily kWh in a normal month, by size
BASE_KWH = {"large": 60_000.0, "medium": 6_000.0, "small": 600.0, "micro": 60.0}
ENERGY_INTENSIVE = {"C25", "C26", "C28", "C30", "C31", "C32", "D44"}
CONTINUOUS = {"C25", "C28", "C31", "C32", "D44", "D45", "D46"}
SPRING_FESTIVAL = date(2020, 1, 25)
RESUME_FROM = date(2020, 2, 10)  # most provinces: not before 24:00 on 9 Feb
HUBEI_FROM = date(2020, 3, 11)  # Hubei: not before 24:00 on 10 Mar
#: provinces that restarted fastest: the five above 95 % on 5 Mar (MIIT), then other coastal ones
FAST = {"44", "33", "37", "32", "43"}
QUICK = {"31", "35", "12", "34", "50"}
SLOW = {"23", "22", "15", "54", "63", "65", "62", "64", "46", "52"}
#: median days from the earliest allowed restart to an enterprise's own, by kind of firm
MEDIAN_DELAY = {"large": 6.0, "medium": 11.0, "small_above": 13.0, "small": 30.5, "micro": 37.0}
DELAY_SIGMA = 0.5
NEVER_BACK = {"large": 0.0, "medium": 0.01, "small_above": 0.01, "small": 0.05, "micro": 0.08}
KEY_FIRMS = 51
KEY_SUPPLIERS = 938


@dataclass(slots=True)
class Nation:
    """A simulated registry and the hidden per-enterprise parameters that drive its kWh."""

    registry: pl.DataFrame
    base: np.ndarray
    leave: np.ndarray  # day index (from 2020-01-01) the workers leave
    resume: np.ndarray  # day index of resumption (large = never)
    standby: np.ndarray
    ramp: np.ndarray
    continuous: np.ndarray
    weekend_dip: np.ndarray
    first_reading: np.ndarray  # day index of the first reading (new enterprises)
    seed: int

    def readings(self, day: date, *, missing: float = 0.01) -> pl.DataFrame:
        """Return one day's readings (enterprise_id, kwh); ``missing`` of them are not reported."""
        rng = np.random.default_rng((self.seed, day.toordinal()))
        d = (day - date(2020, 1, 1)).days
        n = len(self.base)
        before = d < self.leave
        after = d >= self.resume
        ramped = np.minimum(1.0, 0.45 + 0.55 * (d - self.resume) / self.ramp)
        activity = np.where(before, 1.0, np.where(after, ramped, self.standby))
        activity = np.where(self.continuous & ~before & ~after, 0.75, activity)
        if day.weekday() == 6:
            activity = activity * self.weekend_dip
        noise = rng.lognormal(0.0, 0.08, n)
        kwh = np.round(self.base * activity * noise, 1)
        keep = (rng.random(n) >= missing) & (d >= self.first_reading)
        ids = self.registry.get_column("enterprise_id").filter(pl.Series(keep))
        return pl.DataFrame({"enterprise_id": ids, "kwh": kwh[keep]})


def _pick(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    keys = np.array(list(weights))
    p = np.array(list(weights.values()), dtype=np.float64)
    return keys[rng.choice(len(keys), size=n, p=p / p.sum())]


def simulate_nation(enterprises: int, *, seed: int = 2020) -> Nation:
    """Build a registry of ``enterprises`` firms and their resumption parameters."""
    if enterprises < 1:
        raise DataError("--enterprises must be at least 1")
    rng = np.random.default_rng(seed)
    n = enterprises
    prov = _pick(rng, PROVINCE_WEIGHTS, n)
    div = _pick(rng, DIVISION_WEIGHTS, n)
    size = _pick(rng, SIZE_SHARES, n)
    above = (
        (size == "large")
        | (size == "medium")
        | ((size == "small") & (rng.random(n) < SMALL_ABOVE_SHARE))
    )
    kind = np.where((size == "small") & above, "small_above", size)
    # cities: the capital takes a third, the rest spread over numbered prefectures
    n_cities = {p: max(2, round(w / 3)) for p, w in PROVINCE_WEIGHTS.items()}
    city_no = np.where(
        rng.random(n) < 1 / 3, 0, rng.integers(1, 1_000_000, n) % np.vectorize(n_cities.get)(prov)
    )
    names = {c: p.name for c, p in provinces().items()}
    city = np.where(
        city_no == 0,
        np.vectorize(CAPITALS.get)(prov),
        np.char.add(
            np.char.add(np.vectorize(names.get)(prov), " city "),
            np.char.zfill(city_no.astype(str), 2),
        ),
    )
    base = np.vectorize(BASE_KWH.get)(size) * rng.lognormal(0.0, 0.7, n)
    base = base * np.where(np.isin(div, list(ENERGY_INTENSIVE)), 3.0, 1.0)
    jan1 = date(2020, 1, 1)
    leave = (SPRING_FESTIVAL - jan1).days - rng.integers(2, 14, n)
    earliest = np.where(prov == "42", (HUBEI_FROM - jan1).days, (RESUME_FROM - jan1).days)
    speed = np.select(
        [np.isin(prov, list(FAST)), np.isin(prov, list(QUICK)), np.isin(prov, list(SLOW))],
        [0.72, 0.85, 1.3],
        1.0,
    )
    speed = np.where(prov == "42", 1.2, speed)
    median = np.vectorize(MEDIAN_DELAY.get)(kind) * speed
    delay = np.floor(rng.lognormal(np.log(median), DELAY_SIGMA))
    resume = earliest + delay.astype(np.int64)
    never = rng.random(n) < np.vectorize(NEVER_BACK.get)(kind)
    resume = np.where(never, 10_000, resume)
    continuous = np.isin(div, list(CONTINUOUS)) | (
        np.isin(div, ["C26", "C30"]) & np.isin(size, ["large", "medium"])
    )
    ramp = np.where(size == "large", 7.0, np.where(size == "medium", 10.0, 14.0))
    ramp = ramp * rng.uniform(0.7, 1.5, n)
    standby = rng.uniform(0.03, 0.2, n)
    weekend_dip = np.where(continuous | (size == "large"), 1.0, rng.uniform(0.75, 0.95, n))
    # 1 % are new: registered, with readings only from February (no December baseline)
    first = np.where(rng.random(n) < 0.01, (date(2020, 2, 1) - jan1).days, -10_000)
    ids = pl.Series("enterprise_id", np.arange(1, n + 1)).cast(pl.String).str.zfill(7)
    ids = ("E" + ids).alias("enterprise_id")
    sections = np.array([d[0] for d in div])
    key, supplies = _key_firms(rng, n, size, div)
    jitter_lat = rng.normal(0, 0.8, n)
    registry = pl.DataFrame(
        {
            "enterprise_id": ids,
            "name": pl.Series(city).cast(pl.String)
            + " "
            + pl.Series(np.vectorize(lambda d: divisions()[d].name.split(",")[0])(div))
            + " Co. "
            + ids.str.slice(1),
            "province": pl.Series(np.vectorize(names.get)(prov)),
            "city": pl.Series(city).cast(pl.String),
            "county": pl.Series([""] * n),
            "industry": pl.Series(div),
            "size": pl.Series(size),
            "above_designated_size": pl.Series(above),
            "lat": np.round(np.vectorize(_CENTRES_LAT.get)(prov) + jitter_lat, 4),
            "lon": np.round(np.vectorize(_CENTRES_LON.get)(prov) + rng.normal(0, 0.8, n), 4),
            "key_enterprise": pl.Series(key),
            "chain": pl.Series(np.where(key | (supplies != ""), sections, "")),
            "supplies": pl.Series(supplies),
        }
    )
    return Nation(
        registry,
        base,
        leave,
        resume,
        standby,
        ramp,
        continuous,
        weekend_dip,
        first,
        seed,
    )


def _key_firms(
    rng: np.random.Generator, n: int, size: np.ndarray, div: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mark key firms (51 in up to 25 industries, like MIIT's list) and give them suppliers."""
    scale = min(1.0, n / 200_000)
    n_keys = max(1, round(KEY_FIRMS * scale))
    n_sup = max(3, round(KEY_SUPPLIERS * scale))
    key = np.zeros(n, dtype=bool)
    big = np.flatnonzero((size == "large") | (size == "medium"))
    pool = big if len(big) >= n_keys else np.arange(n)
    chosen = rng.choice(pool, size=min(n_keys, len(pool)), replace=False)
    key[chosen] = True
    supplies = np.full(n, "", dtype=object)
    others = np.flatnonzero(~key)
    if len(others) and len(chosen):
        sup = rng.choice(others, size=min(n_sup, len(others)), replace=False)
        target = chosen[rng.integers(0, len(chosen), len(sup))]
        supplies[sup] = np.char.add("E", np.char.zfill((target + 1).astype(str), 7))
    return key, supplies.astype(str)


#: rough centre of each province (lat, lon) for map points
_CENTRES = {
    "11": (40.2, 116.4), "12": (39.3, 117.3), "13": (38.0, 114.5), "14": (37.6, 112.3),
    "15": (42.0, 113.0), "21": (41.3, 122.6), "22": (43.7, 125.8), "23": (46.8, 127.8),
    "31": (31.2, 121.5), "32": (32.9, 119.5), "33": (29.2, 120.1), "34": (31.8, 117.2),
    "35": (26.1, 118.2), "36": (27.6, 115.7), "37": (36.4, 118.2), "41": (33.9, 113.5),
    "42": (30.9, 112.3), "43": (27.6, 111.7), "44": (23.3, 113.5), "45": (23.8, 108.8),
    "46": (19.2, 109.7), "50": (29.9, 107.0), "51": (30.6, 103.0), "52": (26.8, 106.9),
    "53": (25.0, 101.5), "54": (30.0, 91.1), "61": (35.2, 108.9), "62": (36.1, 103.8),
    "63": (36.6, 101.8), "64": (37.3, 106.2), "65": (43.8, 87.6),
}  # fmt: skip
_CENTRES_LAT = {k: v[0] for k, v in _CENTRES.items()}
_CENTRES_LON = {k: v[1] for k, v in _CENTRES.items()}


def days_between(start: date, end: date) -> Iterator[date]:
    """Yield every day from ``start`` to ``end`` inclusive."""
    for i in range((end - start).days + 1):
        yield start + timedelta(days=i)


def write_nation(
    nation: Nation, start: date, end: date, out: Path, *, missing: float = 0.01
) -> dict[str, int]:
    """Write ``registry.parquet`` and ``readings/date=YYYY-MM-DD/part-0.parquet`` under ``out``."""
    if end < start:
        raise DataError(f"--end {end} is before --start {start}")
    out.mkdir(parents=True, exist_ok=True)
    nation.registry.write_parquet(out / "registry.parquet")
    rows = 0
    for day in days_between(start, end):
        part = out / "readings" / f"date={day.isoformat()}"
        part.mkdir(parents=True, exist_ok=True)
        frame = nation.readings(day, missing=missing)
        frame.write_parquet(part / "part-0.parquet", compression="zstd", statistics=False)
        rows += frame.height
    return {"enterprises": nation.registry.height, "readings": rows}
