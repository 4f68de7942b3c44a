"""The resumption rule as SQL, and pure summaries of its counts (rates, index, change, headline).

An enterprise has **resumed** on day d when ``kWh(d) > θ × baseline``, where the baseline is its
mean daily kWh over the days with readings in the normal period (at least ``baseline_min_days``
of them, and above zero). Without a baseline or without a reading that day it is **unknown**:
reported separately and never counted as stopped. Per group: resumption rate = resumed /
reporting, production index = Σ kWh(d) / Σ baseline over the reporting enterprises, and the
change against the day before in percentage points.

The SQL is DuckDB's dialect over three tables (``enterprises``, ``readings``, a baseline table)
plus a θ table; the same text runs on Trino/Spark SQL over the Parquet export with small edits
(``docs/region.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from indunet.errors import DataError
from indunet.region.registry import SIZES, divisions, industry_key, province_code, provinces
from indunet.region.settings import RegionSettings

__all__ = [
    "COUNT_COLUMNS",
    "GROUPS",
    "Filters",
    "Rule",
    "counts_sql",
    "dim_counts_sql",
    "enterprise_states_sql",
    "headline",
    "parse_by",
    "summarise",
]

#: group name -> the enterprise columns it groups by (a city is named within its province)
GROUPS: dict[str, tuple[str, ...]] = {
    "province": ("province_code",),
    "city": ("province_code", "city"),
    "industry": ("division",),
    "section": ("section",),
    "size": ("size",),
    "above_designated_size": ("above_designated_size",),
}
#: additive counts every roll-up row carries
COUNT_COLUMNS = ("enterprises", "with_reading", "reporting", "resumed", "kwh", "baseline_kwh")
#: the grain of stored roll-ups; every `GROUPS` combination is a sum over it
ROLLUP_KEYS = ("province_code", "city", "division", "size", "above_designated_size")


def parse_by(raw: str | list[str] | None) -> list[str]:
    """Parse ``province,size`` into group names, checking each one."""
    if raw is None:
        return []
    names = raw.split(",") if isinstance(raw, str) else [p for r in raw for p in r.split(",")]
    out: list[str] = []
    for name in (n.strip() for n in names):
        if not name:
            continue
        if name not in GROUPS:
            raise DataError(f"--by {name!r} is not one of {', '.join(GROUPS)}")
        if name not in out:
            out.append(name)
    return out


def group_columns(by: list[str]) -> list[str]:
    """Return the enterprise columns for group names (without repeats, in order)."""
    cols: list[str] = []
    for name in by:
        for c in GROUPS[name]:
            if c not in cols:
                cols.append(c)
    return cols


@dataclass(frozen=True, slots=True)
class Rule:
    """θ (default and per industry) and the normal period the baselines come from."""

    theta: float = 0.3
    theta_by_industry: tuple[tuple[str, float], ...] = ()
    baseline_start: date = date(2019, 12, 1)
    baseline_end: date = date(2019, 12, 31)
    baseline_min_days: int = 7

    @classmethod
    def from_settings(
        cls,
        settings: RegionSettings,
        *,
        theta: float | None = None,
        baseline: tuple[date, date] | None = None,
    ) -> Rule:
        """Build the rule of the settings, with optional overrides (a CLI or API option)."""
        if theta is not None and not 0 < theta <= 5:
            raise DataError(f"theta {theta} must be in (0, 5]")
        start, end = baseline or (settings.baseline_start, settings.baseline_end)
        if end < start:
            raise DataError(f"baseline end {end} is before its start {start}")
        return cls(
            theta=settings.theta if theta is None else float(theta),
            theta_by_industry=tuple(sorted(settings.theta_by_industry.items())),
            baseline_start=start,
            baseline_end=end,
            baseline_min_days=settings.baseline_min_days,
        )

    def theta_for(self, division: str) -> float:
        """Return θ of a division: its own, else its section's, else the default."""
        specific = dict(self.theta_by_industry)
        return specific.get(division, specific.get(division[:1], self.theta))

    def theta_table(self) -> list[tuple[str, float]]:
        """Return (division, θ) for every GB/T 4754 division."""
        return [(k, self.theta_for(k)) for k in divisions() if len(k) == 3]

    def baseline_key(self) -> tuple[date, date, int]:
        """Return what the baselines depend on."""
        return (self.baseline_start, self.baseline_end, self.baseline_min_days)

    def fingerprint(self) -> str:
        """Return a stable text naming this rule (stored beside the roll-ups it produced)."""
        return json.dumps(
            {
                "theta": self.theta,
                "theta_by_industry": list(self.theta_by_industry),
                "baseline": [str(self.baseline_start), str(self.baseline_end)],
                "baseline_min_days": self.baseline_min_days,
            },
            sort_keys=True,
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the rule for JSON output."""
        return json.loads(self.fingerprint())


@dataclass(slots=True)
class Filters:
    """Which enterprises a query looks at (all of them by default)."""

    provinces: list[str] = field(default_factory=list)
    city: str | None = None
    industries: list[str] = field(default_factory=list)
    sizes: list[str] = field(default_factory=list)
    above_designated_size: bool | None = None

    @classmethod
    def parse(
        cls,
        province: str | list[str] | None = None,
        city: str | None = None,
        industry: str | list[str] | None = None,
        size: str | list[str] | None = None,
        above_designated_size: bool | None = None,
    ) -> Filters:
        """Parse comma lists of provinces, industries (C, C36) and sizes; errors name the field."""

        def items(raw: str | list[str] | None) -> list[str]:
            if raw is None:
                return []
            parts = (
                raw.split(",") if isinstance(raw, str) else [p for r in raw for p in r.split(",")]
            )
            return [p.strip() for p in parts if p.strip()]

        try:
            provs = [province_code(p) for p in items(province)]
        except DataError as exc:
            raise DataError(f"province: {exc}") from exc
        try:
            inds = [industry_key(i) for i in items(industry)]
        except DataError as exc:
            raise DataError(f"industry: {exc}") from exc
        sizes = [s.lower() for s in items(size)]
        for s in sizes:
            if s not in SIZES:
                raise DataError(f"size: {s!r} is not one of {', '.join(SIZES)}")
        return cls(provs, city.strip() if city else None, inds, sizes, above_designated_size)

    def where(self, alias: str = "e") -> tuple[str, dict[str, Any]]:
        """Return a SQL condition on enterprise columns and its named parameters."""
        parts = ["TRUE"]
        params: dict[str, Any] = {}
        if self.provinces:
            parts.append(f"{alias}.province_code IN (SELECT unnest($f_prov))")
            params["f_prov"] = self.provinces
        if self.city:
            parts.append(f"{alias}.city = $f_city")
            params["f_city"] = self.city
        if self.industries:
            parts.append(
                f"({alias}.division IN (SELECT unnest($f_ind)) OR "
                f"{alias}.section IN (SELECT unnest($f_ind)))"
            )
            params["f_ind"] = self.industries
        if self.sizes:
            parts.append(f"{alias}.size IN (SELECT unnest($f_size))")
            params["f_size"] = self.sizes
        if self.above_designated_size is not None:
            parts.append(f"{alias}.above_designated_size = $f_above")
            params["f_above"] = self.above_designated_size
        return " AND ".join(parts), params

    def as_dict(self) -> dict[str, Any]:
        """Return the filters for JSON output."""
        return {
            "province": [provinces()[p].name for p in self.provinces],
            "city": self.city,
            "industry": self.industries,
            "size": self.sizes,
            "above_designated_size": self.above_designated_size,
        }


VALID_ON = (
    "({e}.valid_from IS NULL OR {e}.valid_from <= {d}) "
    "AND ({e}.valid_to IS NULL OR {e}.valid_to > {d})"
)


def counts_sql(
    cols: list[str], where: str, *, baselines: str = "baselines", thetas: str = "thetas"
) -> str:
    """Return SQL counting, per day of ``$days`` (DATE[], within ``$lo``..``$hi``) and group.

    Enterprises valid that day, those with a reading, reporting ones (reading and baseline) and
    resumed ones, with the kWh and baseline kWh of the reporting ones. Enterprises without
    history (no validity bounds) are counted once and repeated per day, so a 150-day query does
    not multiply the registry by 150.
    """
    g = ", ".join(f"e.{c}" for c in cols)
    g_sel = f"{g}, " if cols else ""
    using = ", ".join(["day", *cols])
    c_sel = ", ".join(f"c.{c}" for c in cols)
    c_sel = f"{c_sel}, " if cols else ""
    static = "e.valid_from IS NULL AND e.valid_to IS NULL"
    return f"""
WITH days AS (SELECT CAST(unnest($days) AS DATE) AS day),
reg AS (SELECT * FROM enterprises e WHERE {where}),
stat AS (
  SELECT {g_sel}count(*) AS enterprises FROM reg e WHERE {static} GROUP BY ALL
),
vers AS (
  SELECT d.day, {g_sel}count(*) AS enterprises FROM days d JOIN reg e
  ON NOT ({static}) AND {VALID_ON.format(e="e", d="d.day")} GROUP BY ALL
),
counts AS (
  SELECT day, {", ".join(cols) + ", " if cols else ""}sum(enterprises) AS enterprises FROM (
    SELECT d.day, s.* FROM days d CROSS JOIN stat s
    UNION ALL BY NAME SELECT * FROM vers
  ) GROUP BY ALL
),
reads AS (
  SELECT x.day, {g_sel}
    count(*) AS with_reading,
    count(*) FILTER (WHERE b.kwh > 0) AS reporting,
    count(*) FILTER (WHERE b.kwh > 0 AND x.kwh > t.theta * b.kwh) AS resumed,
    coalesce(sum(x.kwh) FILTER (WHERE b.kwh > 0), 0) AS kwh,
    coalesce(sum(b.kwh) FILTER (WHERE b.kwh > 0), 0) AS baseline_kwh
  FROM readings x
  JOIN reg e ON e.eid = x.eid AND {VALID_ON.format(e="e", d="x.day")}
  LEFT JOIN {baselines} b ON b.eid = x.eid
  JOIN {thetas} t ON t.division = e.division
  WHERE x.day BETWEEN $lo AND $hi AND x.day IN (SELECT day FROM days)
  GROUP BY ALL
)
SELECT c.day, {c_sel}c.enterprises,
  coalesce(r.with_reading, 0) AS with_reading, coalesce(r.reporting, 0) AS reporting,
  coalesce(r.resumed, 0) AS resumed, coalesce(r.kwh, 0) AS kwh,
  coalesce(r.baseline_kwh, 0) AS baseline_kwh
FROM counts c LEFT JOIN reads r USING ({using})
"""


def dim_counts_sql(
    cols: list[str],
    where: str,
    *,
    groups: str = "groups",
    baselines: str | None = None,
    totals: bool = True,
) -> str:
    """Return the same counts as `counts_sql`, read through the ``ent_dim``/``groups`` tables.

    ``ent_dim`` holds one row per registry version with an integer group id ``gid`` (the
    roll-up grain), the stored baseline ``base`` and ``thr`` = stored θ × ``base``; ``groups``
    names each ``gid`` (province, city, division, section, size, above designated size) with
    its ``theta``. A day's readings
    then need one integer hash join instead of joins on the registry, the baselines and the θ
    table. ``baselines`` names another baseline table (a live rule's period) to use instead of
    ``base``. ``where`` is on group columns with alias ``g``. With ``totals`` off, the rows stay
    at the ``gid`` grain (the caller aggregates).
    """
    g_sel = ", ".join(f"g.{c}" for c in cols)
    g_sel = f"{g_sel}, " if g_sel else ""
    static = "v.valid_from IS NULL AND v.valid_to IS NULL"
    if baselines:
        base_join = f"LEFT JOIN {baselines} b ON b.eid = v.eid"
        base = "CASE WHEN b.kwh > 0 THEN b.kwh END"
    else:
        base_join, base = "", "v.base"
    # the stored rule on every group: θ × baseline is stored in ent_dim.thr, no join to groups
    direct = groups == "groups" and not baselines and where.strip() == "TRUE"
    thr = "x.thr" if direct else "g.theta * x.base"
    g_join = "" if direct else "JOIN g USING (gid)"
    counts = (
        "c.enterprises, coalesce(r.with_reading, 0) AS with_reading, "
        "coalesce(r.reporting, 0) AS reporting, coalesce(r.resumed, 0) AS resumed, "
        "coalesce(r.kwh, 0) AS kwh, coalesce(r.baseline_kwh, 0) AS baseline_kwh"
    )
    body = f"""
WITH days AS (SELECT CAST(unnest($days) AS DATE) AS day),
g AS (SELECT * FROM {groups} g WHERE {where}),
sizes AS (
  SELECT d.day, s.gid, s.n AS enterprises FROM days d CROSS JOIN (
    SELECT v.gid, count(*) AS n FROM ent_dim v WHERE {static} GROUP BY v.gid) s
  UNION ALL
  SELECT d.day, v.gid, count(*) FROM days d JOIN ent_dim v
  ON NOT ({static}) AND {VALID_ON.format(e="v", d="d.day")} GROUP BY ALL
),
c AS (SELECT day, gid, sum(enterprises) AS enterprises FROM sizes GROUP BY ALL),
x AS (
  SELECT x.day, v.gid, x.kwh, {base} AS base, v.thr FROM readings x
  JOIN ent_dim v ON v.eid = x.eid AND {VALID_ON.format(e="v", d="x.day")} {base_join}
  WHERE x.day BETWEEN $lo AND $hi AND x.day IN (SELECT day FROM days)
),
r AS (
  SELECT x.day, x.gid, count(*) AS with_reading, count(x.base) AS reporting,
    count(*) FILTER (WHERE x.kwh > {thr}) AS resumed,
    coalesce(sum(x.kwh) FILTER (WHERE x.base IS NOT NULL), 0) AS kwh,
    coalesce(sum(x.base), 0) AS baseline_kwh
  FROM x {g_join} GROUP BY ALL
),
rows AS (
  SELECT c.day, {g_sel}{counts}
  FROM c JOIN g USING (gid) LEFT JOIN r USING (day, gid)
)"""
    if not totals:
        return body + "\nSELECT * FROM rows"
    keys = ", ".join(["day", *cols])
    sums = ", ".join(
        f"sum({c}) AS {c}" if c.endswith("kwh") else f"CAST(sum({c}) AS BIGINT) AS {c}"
        for c in COUNT_COLUMNS
    )
    return body + f"\nSELECT {keys}, {sums} FROM rows GROUP BY {keys}"


def enterprise_states_sql(
    where: str, *, baselines: str = "baselines", thetas: str = "thetas"
) -> str:
    """Return SQL listing each enterprise valid on ``$day`` with its kWh, baseline and state."""
    return f"""
SELECT e.enterprise_id, e.name, e.province_code, e.province, e.city, e.county, e.division,
  e.size, e.above_designated_size, e.key_enterprise, e.chain, e.supplies, e.lat, e.lon,
  x.kwh, b.kwh AS baseline_kwh, t.theta,
  CASE WHEN b.kwh > 0 THEN x.kwh / b.kwh END AS ratio,
  CASE WHEN x.kwh IS NULL OR b.kwh IS NULL OR b.kwh <= 0 THEN 'unknown'
       WHEN x.kwh > t.theta * b.kwh THEN 'resumed' ELSE 'stopped' END AS state,
  CASE WHEN x.kwh IS NULL THEN 'no reading'
       WHEN b.kwh IS NULL OR b.kwh <= 0 THEN 'no baseline' END AS unknown_because
FROM enterprises e
LEFT JOIN readings x ON x.eid = e.eid AND x.day = $day
LEFT JOIN {baselines} b ON b.eid = e.eid
JOIN {thetas} t ON t.division = e.division
WHERE {VALID_ON.format(e="e", d="$day")} AND {where}
"""


def _label_exprs(by: list[str]) -> list[pl.Expr]:
    names = {c: p.name for c, p in provinces().items()}
    out: list[pl.Expr] = []
    if "province_code" in group_columns(by):
        out.append(pl.col("province_code").replace_strict(names, default=None).alias("province"))
    if "division" in group_columns(by):
        out.append(
            pl.col("division")
            .replace_strict({k: v.name for k, v in divisions().items()}, default=None)
            .alias("industry_name")
        )
    if "section" in group_columns(by):
        out.append(
            pl.col("section")
            .replace_strict({k: v.name for k, v in divisions().items()}, default=None)
            .alias("section_name")
        )
    return out


def summarise(counts: pl.DataFrame, by: list[str], days: list[date]) -> pl.DataFrame:
    """Turn per-day group counts into rates, production index and day-over-day change.

    ``counts`` holds ``day``, the group columns and `COUNT_COLUMNS` (several rows per group and
    day are summed, so finer roll-ups can be passed). Rows for the day before the first of
    ``days`` are used for the change and then left out. Rates are in percent.
    """
    cols = group_columns(by)
    agg = counts.group_by(["day", *cols]).agg(
        [pl.col(c).sum().cast(pl.Float64 if c.endswith("kwh") else pl.Int64) for c in COUNT_COLUMNS]
    )
    agg = agg.with_columns(
        pl.when(pl.col("reporting") > 0)
        .then(100.0 * pl.col("resumed") / pl.col("reporting"))
        .otherwise(None)
        .alias("rate"),
        pl.when(pl.col("baseline_kwh") > 0)
        .then(pl.col("kwh") / pl.col("baseline_kwh"))
        .otherwise(None)
        .alias("production_index"),
        (pl.col("enterprises") - pl.col("reporting")).alias("unknown"),
        (pl.col("enterprises") - pl.col("with_reading")).alias("no_reading"),
        (pl.col("with_reading") - pl.col("reporting")).alias("no_baseline"),
        (pl.col("reporting") - pl.col("resumed")).alias("stopped"),
    )
    prev = agg.select(
        (pl.col("day") + pl.duration(days=1)).cast(pl.Date).alias("day"),
        *cols,
        pl.col("rate").alias("previous_rate"),
    )
    out = agg.join(prev, on=["day", *cols], how="left", nulls_equal=True).with_columns(
        (pl.col("rate") - pl.col("previous_rate")).alias("change_pp")
    )
    out = out.filter(pl.col("day").is_in(days)).with_columns(_label_exprs(by))
    order = [
        "day",
        *cols,
        *[c for c in ("province", "industry_name", "section_name") if c in out.columns],
        "enterprises",
        "reporting",
        "resumed",
        "stopped",
        "unknown",
        "no_reading",
        "no_baseline",
        "rate",
        "previous_rate",
        "change_pp",
        "production_index",
        "kwh",
        "baseline_kwh",
    ]
    return out.select(order).sort(["day", *cols], nulls_last=True)


def previous_days(days: list[date]) -> list[date]:
    """Return ``days`` plus the day before each (for the day-over-day change)."""
    return sorted({*days, *(d - timedelta(days=1) for d in days if d > date.min)})


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


def headline(national: dict[str, Any], by_province: list[dict[str, Any]], top: int = 3) -> str:
    """Write the day's sentence: national rate and change, big provinces, thresholds, laggard.

    e.g. "Resumption 52.0 %, +2.2 points (1,144,000 of 2,200,000 reporting); Guangdong 95.3 %,
    Jiangsu 94.1 %, Zhejiang 96.0 %; 12 provinces above 90 %, 5 above 95 %; lowest Hubei 20.4 %."
    """
    rate = national.get("rate")
    change = national.get("change_pp")
    text = f"Resumption {_pct(rate)}"
    if change is not None:
        text += f", {change:+.1f} points"
    text += f" ({national.get('resumed', 0):,} of {national.get('reporting', 0):,} reporting"
    if national.get("unknown"):
        text += f"; {national['unknown']:,} unknown"
    text += ")"
    rated = [p for p in by_province if p.get("rate") is not None]
    if rated:
        big = sorted(rated, key=lambda p: -p["enterprises"])[:top]
        text += "; " + ", ".join(f"{p['province']} {_pct(p['rate'])}" for p in big)
        over90 = sum(p["rate"] > 90 for p in rated)
        over95 = sum(p["rate"] > 95 for p in rated)
        word = "province" if over90 == 1 else "provinces"
        text += f"; {over90} {word} above 90 %, {over95} above 95 %"
        low = min(rated, key=lambda p: p["rate"])
        text += f"; lowest {low['province']} {_pct(low['rate'])}"
    return text + "."
