"""Machine data in and out: `import`, `query`, `tags`, `declare`, `deadletters`, `historian`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from indunet.cli.common import (
    DataDir,
    Db,
    Enterprise,
    Json,
    _iso,
    _open,
    _print_rows,
    _settings,
    _time,
    app,
    guarded,
    readable_rows,
)
from indunet.errors import ConfigError, DataError

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
import_app = typer.Typer(help="Import machine data from files.", no_args_is_help=True)
query_app = typer.Typer(help="Read data out of the historian.", no_args_is_help=True)
historian_app = typer.Typer(
    help="Historian upkeep: retention and compaction.", no_args_is_help=True
)
app.add_typer(import_app, name="import")
app.add_typer(query_app, name="query")
app.add_typer(historian_app, name="historian")


def _import(
    path: Path,
    machine: str | None,
    time_column: str | None,
    time_format: str | None,
    timezone: str | None,
    long: bool,
    midnight_ends_day: bool,
    data_dir: Path | None,
    db: str | None,
    enterprise: str | None,
    as_json: bool,
) -> None:
    from indunet.ingest.tabular import TableSpec, read_table
    from indunet.ingest.values import TimeParser, zone
    from indunet.uns import MachinePath

    settings = _settings(data_dir, db, enterprise)
    if long and machine:
        raise DataError("give either --machine (wide table) or --long, not both")
    spec = TableSpec(
        enterprise=settings.enterprise,
        times=TimeParser(
            now_ms=int(time.time() * 1000),
            max_future_ms=settings.max_future_s * 1000,
            fmt=time_format,
            tz=zone(timezone),
            midnight_ends_day=midnight_ends_day,
        ),
        machine=MachinePath.parse(machine) if machine else None,
        time_column=time_column,
        long=long,
        payload_limit=settings.deadletter_payload_bytes,
    )
    chunks = read_table(path, spec)
    first = next(chunks)  # raises DataError for unusable files before the historian opens
    historian = _open(settings)
    stored = rejected = 0
    reasons: list[str] = []
    source = f"import:{path.name}"
    try:
        for chunk in _chain(first, chunks):
            result = historian.write(chunk.batch, source=source)
            if chunk.rejected:
                historian.add_dead_letters(chunk.rejected, settings.enterprise)
            stored += result.stored
            bad = chunk.rejected + result.rejected
            rejected += len(bad)
            reasons.extend(d.reason for d in bad[: max(0, 20 - len(reasons))])
    finally:
        historian.close()
    if as_json:
        typer.echo(
            json.dumps(
                {"file": str(path), "stored": stored, "rejected": rejected, "errors": reasons}
            )
        )
    else:
        typer.echo(f"{path}: stored {stored} points, rejected {rejected}")
        for r in reasons:
            typer.echo(f"  rejected: {r}")
        if rejected > len(reasons):
            typer.echo(f"  … {rejected - len(reasons)} more; see `indunet deadletters`")
    if not stored:  # bad input: exit 2, the count and where the reasons are
        if not rejected:
            raise DataError(f"{path}: no data rows, nothing stored")
        raise DataError(
            f"{path}: nothing could be stored, {rejected} refused (reasons: "
            f"`indunet deadletters --source {source}`)"
        )


def _chain(first, rest):
    yield first
    yield from rest


MachineOpt = Annotated[
    str | None,
    typer.Option("--machine", help="SITE/AREA/LINE/MACHINE the columns of a wide table belong to."),
]
TimeColumn = Annotated[
    str | None, typer.Option("--time-column", help="Time column (default: the first column).")
]
TimeFormat = Annotated[
    str | None,
    typer.Option(
        "--time-format",
        help="strptime pattern, e.g. '%d/%m/%Y %H:%M' (default: epoch ms or RFC 3339).",
    ),
]
Timezone = Annotated[
    str | None, typer.Option("--timezone", help="IANA zone of times without offset (default UTC).")
]
Long = Annotated[bool, typer.Option("--long", help="Long table with columns tag,ts,value.")]
MidnightEndsDay = Annotated[
    bool,
    typer.Option(
        "--midnight-ends-day",
        help="A time of 00:00 means 24:00 of its date (interval-end meter exports).",
    ),
]


def import_table(
    path: Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz) or Parquet (.parquet) file.")],
    machine: MachineOpt = None,
    time_column: TimeColumn = None,
    time_format: TimeFormat = None,
    timezone: Timezone = None,
    long: Long = False,
    midnight_ends_day: MidnightEndsDay = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Import a wide table (one column per tag of --machine) or a long one (--long)."""
    _import(
        path,
        machine,
        time_column,
        time_format,
        timezone,
        long,
        midnight_ends_day,
        data_dir,
        db,
        enterprise,
        as_json,
    )


import_app.command("csv")(guarded(import_table))
import_app.command("parquet")(guarded(import_table))


# ---------------------------------------------------------------------------- query
@query_app.command("series")
@guarded
def query_series(
    tag: Annotated[str, typer.Argument(help="site/area/line/machine/tag")],
    start: Annotated[
        str | None, typer.Option(help="Epoch ms or RFC 3339 (default end-1d).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Epoch ms or RFC 3339, exclusive (now).")] = None,
    buckets: Annotated[int | None, typer.Option(min=1, help="Aggregate into N buckets.")] = None,
    agg: Annotated[
        list[str] | None, typer.Option(help="min, max, avg, first, last, count (repeatable).")
    ] = None,
    downsample: Annotated[
        str | None, typer.Option(help="m4 or lttb: chart-faithful points.")
    ] = None,
    points: Annotated[int, typer.Option(help="Points for --downsample.")] = 1000,
    limit: Annotated[int, typer.Option(help="Most raw points to print.")] = 100_000,
    epoch: Annotated[
        bool, typer.Option("--epoch", help="Print times as epoch ms, not ISO 8601.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Print a tag's raw, bucketed or downsampled points.

    The table shows times in ISO 8601 in the time zone of the tag's site (its shift calendar;
    UTC when the site has none) and leaves columns out that are empty in every row; ``--epoch``
    prints epoch ms. ``--json`` keeps epoch ms (``ts``, ``start_ms``) for programs.
    """
    from indunet.store.base import AGGREGATES, exact_integers

    settings = _settings(data_dir, db, enterprise)
    end_ms = _time(end, int(time.time() * 1000), "--end")
    start_ms = _time(start, end_ms - 86_400_000, "--start")
    for a in agg or []:
        if a not in AGGREGATES:
            raise DataError(f"--agg {a!r} is not one of {', '.join(AGGREGATES)}")
    historian = _open(settings)
    try:
        if buckets:
            table = historian.buckets(settings.enterprise, tag, start_ms, end_ms, buckets)
            table = table.select(["start_ms", *(agg or AGGREGATES)])
        elif downsample:
            table = historian.downsample(
                settings.enterprise, tag, start_ms, end_ms, points, method=downsample
            )
        else:
            table = historian.series(settings.enterprise, tag, start_ms, end_ms, limit=limit)
    finally:
        historian.close()
    extra = {"tag": tag, "start_ms": start_ms, "end_ms": end_ms}
    rows = exact_integers(table.to_pylist())
    if not as_json:
        site = tag.strip("/").split("/", 1)[0]
        zone = settings.plant.site(site).calendar.timezone
        rows = readable_rows(rows, zone, epoch=epoch)
    _print_rows(rows, as_json, extra)


@query_app.command("latest")
@guarded
def query_latest(
    prefix: Annotated[str, typer.Argument(help="Namespace prefix, e.g. site/area.")] = "",
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Print the newest value of every tag under a prefix."""
    from indunet.store.base import exact_integers

    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        rows = exact_integers(historian.latest(settings.enterprise, prefix).to_pylist())
    finally:
        historian.close()
    if not as_json:
        for r in rows:
            r["ts"] = _iso(r["ts"])
    _print_rows(rows, as_json, {"prefix": prefix})


# ---------------------------------------------------------------------------- tags
@app.command("tags")
@guarded
def tags_list(
    # an option, not an argument: a group's optional argument would swallow the sub-command
    # name (`indunet tags declare …` would list the prefix "declare")
    prefix: Annotated[str, typer.Argument(help="Namespace prefix, e.g. site/area.")] = "",
    search: Annotated[str | None, typer.Option(help="Only tags whose path contains this.")] = None,
    tree: Annotated[bool, typer.Option(help="Print the asset tree.")] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """List tags under a prefix, search them, or print the asset tree."""
    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        if tree:
            result = historian.tree(settings.enterprise, prefix)
            typer.echo(json.dumps(result, indent=None if as_json else 2))
            return
        rows = [t.as_dict() for t in historian.tags(settings.enterprise, prefix, search=search)]
    finally:
        historian.close()
    _print_rows(rows, as_json, {"prefix": prefix})


@app.command("declare")
@guarded
def tags_declare(
    tag: Annotated[str, typer.Argument(help="site/area/line/machine/tag")],
    data_type: Annotated[str, typer.Option("--type", help="number, boolean or string.")] = "number",
    unit: Annotated[str | None, typer.Option(help="Unit, e.g. kW.")] = None,
    description: Annotated[str | None, typer.Option(help="What the tag measures.")] = None,
    interval_ms: Annotated[
        int | None, typer.Option(min=1, help="Expected interval between values, ms.")
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
) -> None:
    """Declare a tag with its metadata before data arrives (or update the metadata)."""
    from indunet.model import DataType
    from indunet.store import TagSpec

    try:
        dtype = DataType(data_type)
    except ValueError:
        raise DataError(f"--type {data_type!r} is not one of number, boolean, string") from None
    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        historian.declare_tags(
            settings.enterprise, [TagSpec(tag, dtype, unit, description, interval_ms, "declared")]
        )
    finally:
        historian.close()
    typer.echo(f"declared {tag}")


# ---------------------------------------------------------------------------- dead letters
@app.command()
@guarded
def deadletters(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    source: Annotated[str | None, typer.Option(help="Only from this source.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """List input that could not be stored, with the reason."""
    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        rows = historian.dead_letters(settings.enterprise, limit=limit, source=source)
    finally:
        historian.close()
    if not as_json:  # one line per letter: control characters (old binary payloads) escaped
        for r in rows:
            for key in ("reason", "ref", "payload"):
                if isinstance(r.get(key), str):
                    r[key] = _printable(r[key])
    _print_rows(rows, as_json)


def _printable(text: str) -> str:
    """Return ``text`` with control characters as ``\\xNN`` escapes (a table stays a table)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# ---------------------------------------------------------------------------- upkeep
@historian_app.command("retention")
@guarded
def historian_retention(
    data_dir: DataDir = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Apply the retention rules of the settings: roll up and delete old raw points."""
    settings = _settings(data_dir, db)
    if not settings.retention:
        raise ConfigError("no retention rules; add [[retention]] prefix/raw_days to indunet.toml")
    historian = _open(settings)
    try:
        result = historian.apply_retention(settings.retention)
    finally:
        historian.close()
    typer.echo(json.dumps(result) if as_json else ", ".join(f"{k} {v}" for k, v in result.items()))


@historian_app.command("compact")
@guarded
def historian_compact(
    before: Annotated[
        str | None, typer.Option(help="Only points before this time (default: all).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Re-sort the embedded historian by tag and time so single-tag reads stay fast."""
    settings = _settings(data_dir, None)
    if settings.db:
        raise ConfigError("compaction is for the embedded DuckDB historian only")
    historian = _open(settings)
    try:
        n = historian.compact(None, _time(before, 2**62, "--before") if before else None)
    finally:
        historian.close()
    typer.echo(f"compacted {n} points")
