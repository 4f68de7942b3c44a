"""Enterprise registry rows: read, check and normalise them, with errors naming row and field.

Pure code (Polars expressions over whole columns); storing versions with validity intervals is
`indunet.region.store`'s job. Province names follow GB/T 2260, industry codes GB/T 4754-2017
(tables in ``data/``, sources in ``data/SOURCES.md``).
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import polars as pl

from indunet.errors import DataError

__all__ = [
    "REGISTRY_COLUMNS",
    "REQUIRED_COLUMNS",
    "SIZES",
    "Industry",
    "Province",
    "RegistryCheck",
    "RowError",
    "check_registry",
    "divisions",
    "industry_key",
    "province_code",
    "provinces",
    "read_registry_file",
]

REQUIRED_COLUMNS = ("enterprise_id", "name", "province", "city", "industry", "size")
OPTIONAL_COLUMNS = (
    "county",
    "above_designated_size",
    "lat",
    "lon",
    "key_enterprise",
    "chain",
    "supplies",
    "valid_from",
)
#: the normalised columns `check_registry` returns (besides ``row``)
REGISTRY_COLUMNS = (
    "enterprise_id",
    "name",
    "province_code",
    "province",
    "city",
    "county",
    "industry",
    "division",
    "section",
    "size",
    "above_designated_size",
    "lat",
    "lon",
    "key_enterprise",
    "chain",
    "supplies",
    "valid_from",
)
SIZES = ("large", "medium", "small", "micro")
_SIZE_WORDS = {
    **{s: s for s in SIZES},
    "大型": "large",
    "中型": "medium",
    "小型": "small",
    "微型": "micro",
}
_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
_INDUSTRY = re.compile(r"^([A-T])?(\d{2})(\d{0,2})$")


@dataclass(frozen=True, slots=True)
class Province:
    """A mainland province-level division (GB/T 2260 code, standard names)."""

    code: str
    name: str
    name_zh: str


@dataclass(frozen=True, slots=True)
class Industry:
    """A GB/T 4754-2017 section (``C``) or division (``C36``)."""

    code: str
    section: str
    name: str
    name_zh: str


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of one input row: where (row, field) and what."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, field {self.field}: {self.message}"


@dataclass(slots=True)
class RegistryCheck:
    """Accepted rows (normalised) and the refused ones with every error found."""

    rows: pl.DataFrame
    errors: list[RowError] = field(default_factory=list)
    refused: pl.DataFrame | None = None


def _data(name: str) -> str:
    return resources.files("indunet.region").joinpath("data", name).read_text(encoding="utf-8")


@cache
def provinces() -> dict[str, Province]:
    """Return the 31 provinces by code (constant reference data, read once)."""
    rows = list(csv.DictReader(_data("provinces.csv").splitlines()))
    return {r["code"]: Province(r["code"], r["name"], r["name_zh"]) for r in rows}


@cache
def _province_lookup() -> dict[str, str]:
    out: dict[str, str] = {}
    for r in csv.DictReader(_data("provinces.csv").splitlines()):
        keys = [r["code"], r["code"] + "0000", r["name"], r["name_zh"], r["short_zh"]]
        keys += [a for a in r["aliases"].split(";") if a]
        for k in keys:
            out[k.strip().lower()] = r["code"]
    return out


def province_code(raw: str) -> str:
    """Return the GB/T 2260 code of a province given by code, English or Chinese name."""
    code = _province_lookup().get(raw.strip().lower())
    if code is None:
        raise DataError(
            f"{raw!r} is not a mainland province; use a name like Guangdong, 广东省 or code 44"
        )
    return code


@cache
def divisions() -> dict[str, Industry]:
    """Return GB/T 4754-2017 sections and divisions keyed ``C`` / ``C36``."""
    out: dict[str, Industry] = {}
    for r in csv.DictReader(_data("gbt4754_2017.csv").splitlines()):
        key = r["code"] if r["code"].isalpha() else r["section"] + r["code"]
        out[key] = Industry(key, r["section"], r["name"], r["name_zh"])
    return out


def industry_key(raw: str) -> str:
    """Normalise a section (``C``) or division (``36``, ``C36``) code; finer digits are cut."""
    text = raw.strip().upper()
    if text in divisions() and len(text) == 1:
        return text
    m = _INDUSTRY.match(text)
    if not m:
        raise DataError(f"{raw!r} is not a GB/T 4754 code (e.g. C, C36, 36 or C3670)")
    section = _division_section().get(m.group(2))
    if section is None:
        raise DataError(f"{raw!r}: division {m.group(2)} does not exist in GB/T 4754-2017")
    if m.group(1) and m.group(1) != section:
        raise DataError(f"{raw!r}: division {m.group(2)} belongs to section {section}")
    return section + m.group(2)


@cache
def _division_section() -> dict[str, str]:
    return {k[1:]: v.section for k, v in divisions().items() if len(k) == 3}


# --------------------------------------------------------------------------- reading files
def read_registry_file(path: Path) -> tuple[pl.DataFrame, list[RowError]]:
    """Read a registry CSV (.csv, .csv.gz) or Parquet file as text columns plus ``row``.

    ``row`` is the file line for CSV (header = line 1) and the 1-based row for Parquet. Lines
    with the wrong number of fields come back as errors, not as rows.
    """
    if not path.exists():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            df = pl.read_parquet(path)
        except Exception as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
        df = df.with_columns(_as_text(df)).with_row_index("row", offset=1)
        return df.with_columns(pl.col("row").cast(pl.Int64)), []
    if not name.endswith((".csv", ".csv.gz")):
        raise DataError(f"{path}: use a .csv, .csv.gz or .parquet file")
    return _read_csv(path)


def _as_text(df: pl.DataFrame) -> list[pl.Expr]:
    out = []
    for name, dtype in df.schema.items():
        if dtype == pl.List(pl.String):
            out.append(pl.col(name).list.join(";"))
        elif dtype != pl.String:
            out.append(pl.col(name).cast(pl.String))
    return out


def _read_csv(path: Path) -> tuple[pl.DataFrame, list[RowError]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    errors: list[RowError] = []
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise DataError(f"{path}: the file is empty (no header line)")
            columns: list[list[str]] = [[] for _ in header]
            rows: list[int] = []
            for line, fields in enumerate(reader, start=2):
                if not fields:
                    continue
                if len(fields) != len(header):
                    errors.append(
                        RowError(
                            line, "*", f"has {len(fields)} fields, the header has {len(header)}"
                        )
                    )
                    continue
                rows.append(line)
                for col, value in zip(columns, fields, strict=True):
                    col.append(value)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: broken CSV ({exc})") from exc
    data = {h: pl.Series(h, c, pl.String) for h, c in zip(header, columns, strict=True)}
    df = pl.DataFrame(data).with_columns(pl.Series("row", rows, pl.Int64))
    return df, errors


# --------------------------------------------------------------------------- checking
def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def _bool(col: str) -> pl.Expr:
    text = pl.col(col).str.strip_chars().str.to_lowercase()
    return (
        pl.when(text.is_in(list(_TRUE)))
        .then(True)
        .when(text.is_in(list(_FALSE)))
        .then(False)
        .otherwise(None)
    )


def check_registry(df: pl.DataFrame) -> RegistryCheck:
    """Check and normalise registry rows (text columns + ``row``); every error is reported."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"registry: missing column(s) {', '.join(missing)}; required are "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    for c in OPTIONAL_COLUMNS:
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(c))
    if "row" not in df.columns:
        df = df.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    trimmed = [pl.col(c).str.strip_chars() for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
    df = df.with_columns(trimmed)

    lookup = _province_lookup()
    div_section = _division_section()
    parts = pl.col("industry").str.to_uppercase().str.extract_groups(_INDUSTRY.pattern)
    df = df.with_columns(
        pl.col("province")
        .str.to_lowercase()
        .replace_strict(lookup, default=None, return_dtype=pl.String)
        .alias("province_code"),
        parts.struct.field("1").alias("_sec_given"),
        parts.struct.field("2").alias("_div"),
        parts.struct.field("3").alias("_class"),
        pl.col("size").str.to_lowercase().replace_strict(_SIZE_WORDS, default=None).alias("_size"),
        pl.col("lat").cast(pl.Float64, strict=False).alias("_lat"),
        pl.col("lon").cast(pl.Float64, strict=False).alias("_lon"),
        _bool("above_designated_size").alias("_above"),
        _bool("key_enterprise").alias("_key"),
        pl.col("valid_from").str.to_date("%Y-%m-%d", strict=False).alias("_valid_from"),
        pl.col("supplies")
        .fill_null("")
        .str.split(";")
        .list.eval(pl.element().str.strip_chars().filter(pl.element() != ""))
        .alias("_supplies"),
    )
    df = df.with_columns(
        pl.col("_div")
        .replace_strict(div_section, default=None, return_dtype=pl.String)
        .alias("_section")
    )
    checks: list[tuple[str, pl.Expr, pl.Expr]] = [
        ("enterprise_id", _blank("enterprise_id"), pl.lit("missing")),
        (
            "enterprise_id",
            ~_blank("enterprise_id") & ~pl.col("enterprise_id").str.contains(ID_PATTERN),
            pl.format(
                "{} is not an id (letters, digits, _ . : -, at most 64)", pl.col("enterprise_id")
            ),
        ),
        ("name", _blank("name"), pl.lit("missing")),
        ("province", _blank("province"), pl.lit("missing")),
        (
            "province",
            ~_blank("province") & pl.col("province_code").is_null(),
            pl.format(
                "'{}' is not a mainland province (use a name like Guangdong, 广东省 or code 44)",
                pl.col("province"),
            ),
        ),
        ("city", _blank("city"), pl.lit("missing")),
        ("industry", _blank("industry"), pl.lit("missing")),
        (
            "industry",
            ~_blank("industry") & (pl.col("_div").is_null() | pl.col("_section").is_null()),
            pl.format(
                "'{}' is not a GB/T 4754-2017 division (e.g. C36 or C3670)", pl.col("industry")
            ),
        ),
        (
            "industry",
            pl.col("_sec_given").is_not_null()
            & pl.col("_section").is_not_null()
            & (pl.col("_sec_given") != pl.col("_section")),
            pl.format(
                "'{}': division {} belongs to section {}",
                pl.col("industry"),
                pl.col("_div"),
                pl.col("_section"),
            ),
        ),
        ("size", _blank("size"), pl.lit("missing")),
        (
            "size",
            ~_blank("size") & pl.col("_size").is_null(),
            pl.format("'{}' is not one of large, medium, small, micro", pl.col("size")),
        ),
        (
            "above_designated_size",
            ~_blank("above_designated_size") & pl.col("_above").is_null(),
            pl.format("'{}' is not true/false", pl.col("above_designated_size")),
        ),
        (
            "key_enterprise",
            ~_blank("key_enterprise") & pl.col("_key").is_null(),
            pl.format("'{}' is not true/false", pl.col("key_enterprise")),
        ),
        (
            "lat",
            ~_blank("lat") & ~pl.col("_lat").is_between(3.0, 54.0).fill_null(False),
            pl.format("'{}' is not a latitude in China (3 to 54)", pl.col("lat")),
        ),
        (
            "lon",
            ~_blank("lon") & ~pl.col("_lon").is_between(73.0, 136.0).fill_null(False),
            pl.format("'{}' is not a longitude in China (73 to 136)", pl.col("lon")),
        ),
        (
            "valid_from",
            ~_blank("valid_from") & pl.col("_valid_from").is_null(),
            pl.format("'{}' is not a date (YYYY-MM-DD)", pl.col("valid_from")),
        ),
        (
            "supplies",
            ~pl.col("_supplies").list.eval(pl.element().str.contains(ID_PATTERN)).list.all(),
            pl.format("'{}' is not a ;-separated list of enterprise ids", pl.col("supplies")),
        ),
    ]
    flags = df.select(
        pl.col("row"),
        *[
            pl.when(cond.fill_null(False)).then(msg).otherwise(None).alias(f"_e{i}")
            for i, (_, cond, msg) in enumerate(checks)
        ],
    )
    errors: list[RowError] = []
    bad_rows: set[int] = set()
    for i, (field_name, _, _) in enumerate(checks):
        hits = flags.filter(pl.col(f"_e{i}").is_not_null()).select("row", f"_e{i}")
        for row, message in hits.iter_rows():
            errors.append(RowError(row, field_name, message))
            bad_rows.add(row)
    # the same enterprise twice with the same start of validity: the later row wins
    dup = (
        df.filter(~pl.col("row").is_in(list(bad_rows)))
        .with_columns(
            pl.col("row").max().over("enterprise_id", "_valid_from").alias("_kept"),
        )
        .filter(pl.col("row") != pl.col("_kept"))
    )
    for row, eid, kept in dup.select("row", "enterprise_id", "_kept").iter_rows():
        errors.append(
            RowError(row, "enterprise_id", f"{eid} appears again in row {kept}, which is kept")
        )
        bad_rows.add(row)
    errors.sort(key=lambda e: (e.row, e.field))
    is_bad = pl.col("row").is_in(list(bad_rows))
    good = df.filter(~is_bad).select(
        pl.col("row"),
        pl.col("enterprise_id"),
        pl.col("name"),
        pl.col("province_code"),
        pl.col("province_code")
        .replace_strict({c: p.name for c, p in provinces().items()}, default=None)
        .alias("province"),
        pl.col("city"),
        pl.col("county").fill_null(""),
        (pl.col("_section") + pl.col("_div") + pl.col("_class").fill_null("")).alias("industry"),
        (pl.col("_section") + pl.col("_div")).alias("division"),
        pl.col("_section").alias("section"),
        pl.col("_size").alias("size"),
        pl.col("_above")
        .fill_null(pl.col("_size").is_in(["large", "medium"]))
        .alias("above_designated_size"),
        pl.col("_lat").alias("lat"),
        pl.col("_lon").alias("lon"),
        pl.col("_key").fill_null(False).alias("key_enterprise"),
        pl.col("chain").fill_null(""),
        pl.col("_supplies").alias("supplies"),
        pl.col("_valid_from").alias("valid_from"),
    )
    refused = df.filter(is_bad).select("row", *[c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)])
    return RegistryCheck(rows=good, errors=errors, refused=refused)
