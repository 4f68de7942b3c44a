"""`indunet region …`: the regional resumption monitor."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from indunet.cli.common import (
    DataDir,
    Db,
    Enterprise,
    Json,
    _open,
    _print_rows,
    _settings,
    app,
    guarded,
)
from indunet.config import Settings
from indunet.errors import DataError

region_app = typer.Typer(
    help="Regional resumption monitor: which enterprises are back at work, from electricity use.",
    no_args_is_help=True,
)
app.add_typer(region_app, name="region")
DayOpt = Annotated[str, typer.Option("--date", help="Day, YYYY-MM-DD.")]
ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by", help="Group by: province, city, industry, section, size, above_designated_size."
    ),
]
ThetaOpt = Annotated[
    float | None, typer.Option("--theta", help="θ for this query (default: the settings').")
]
BaselineOpt = Annotated[
    str | None,
    typer.Option(
        "--baseline", help="Normal period START:END (default: the settings').", show_default=False
    ),
]
ProvinceOpt = Annotated[
    str | None, typer.Option("--province", help="Only these provinces (comma list).")
]
CityOpt = Annotated[str | None, typer.Option("--city", help="Only this city.")]
IndustryOpt = Annotated[
    str | None, typer.Option("--industry", help="Only these GB/T 4754 sections/divisions (C, C36).")
]
SizeOpt = Annotated[str | None, typer.Option("--size", help="Only these sizes (large,medium,...).")]
AboveOpt = Annotated[
    bool | None,
    typer.Option(
        "--above/--below", help="Only above (or below) designated size.", show_default=False
    ),
]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV.")]


def _day(raw: str, option: str):
    from datetime import date

    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise DataError(f"option {option}: {raw!r} is not a date (YYYY-MM-DD)") from None


def _region(data_dir: Path | None, *, read_only: bool = False):
    from indunet.region.store import open_region_store

    settings = _settings(data_dir, None)
    return settings, open_region_store(settings.region, settings.data_dir, read_only=read_only)


def _region_today(settings: Settings):
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(settings.region.timezone)).date()


def _region_query(settings: Settings, theta: float | None, baseline: str | None, **filters: Any):
    from indunet.region.rate import Filters, Rule

    period = None
    if baseline:
        start, sep, end = baseline.partition(":")
        if not sep:
            raise DataError(f"option --baseline: {baseline!r} is not START:END")
        period = (_day(start, "--baseline"), _day(end, "--baseline"))
    rule = Rule.from_settings(settings.region, theta=theta, baseline=period)
    return rule, Filters.parse(**filters)


def _print_frame(frame, as_json: bool, as_csv: bool, extra: dict[str, Any]) -> None:
    if as_csv:
        typer.echo(frame.write_csv(), nl=False)
        return
    rows = frame.to_dicts()
    if not as_json:
        if "headline" in extra:
            typer.echo(extra["headline"])
        rows = [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    _print_rows(rows, as_json, extra)


@region_app.command("import-registry")
@guarded
def region_import_registry(
    path: Annotated[Path, typer.Argument(help="Registry CSV (.csv, .csv.gz) or Parquet file.")],
    effective: Annotated[
        str | None,
        typer.Option(help="Changes start on this day (default today; a row's valid_from wins)."),
    ] = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Import enterprises (id, name, province, city, industry, size, ...); changes keep history."""
    settings, store = _region(data_dir)
    try:
        when = _day(effective, "--effective") if effective else _region_today(settings)
        report = store.import_registry(path, effective=when)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        for e in report.errors[:50]:
            typer.echo(f"refused: {path.name}: {e}", err=True)
        for w in report.warnings[:20]:
            typer.echo(f"warning: {w}", err=True)
        typer.echo(
            f"{path}: {report.new} new enterprises, {report.changed} changed, "
            f"{report.unchanged} unchanged, {report.refused} rows refused"
        )
    if report.refused and not (report.new or report.changed or report.unchanged):
        raise typer.Exit(2)


@region_app.command("import-readings")
@guarded
def region_import_readings(
    path: Annotated[
        Path, typer.Argument(help="CSV/Parquet file (enterprise_id,date,kwh) or a directory.")
    ],
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Import daily kWh; bad rows are kept aside and reported, late corrections replace."""
    settings, store = _region(data_dir)
    try:
        report = store.import_readings(path, today=_region_today(settings))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), default=str))
    else:
        for example in report.examples:
            typer.echo(f"kept aside: {example}", err=True)
        typer.echo(
            f"{path}: stored {report.stored} readings ({report.replaced} replaced earlier ones), "
            f"kept aside {report.quarantined}"
            + (f" {report.reasons}" if report.reasons else "")
            + f"; roll-ups recomputed for {report.rollup_days} days"
        )
    if report.quarantined and not report.stored:
        raise typer.Exit(2)


@region_app.command("derive-readings")
@guarded
def region_derive_readings(
    enterprise_id: Annotated[str, typer.Option("--enterprise-id", help="Registry id.")],
    tag: Annotated[
        list[str], typer.Option("--tag", help="Meter tag site/area/line/machine/tag (repeatable).")
    ],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.")],
    kind: Annotated[
        str, typer.Option(help="interval (kWh per interval), counter or power (kW).")
    ] = "interval",
    min_coverage: Annotated[
        float, typer.Option(min=0, max=1, help="Least share of a day covered.")
    ] = 0.9,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Turn an enterprise's meter tags in the historian into daily kWh readings (summed)."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from indunet.region.readings import MeterKind, daily_from_historian

    try:
        meter = MeterKind(kind)
    except ValueError:
        raise DataError(f"option --kind: {kind!r} is not interval, counter or power") from None
    first, last = _day(start, "--start"), _day(end, "--end")
    settings = _settings(data_dir, db, enterprise)
    zone = ZoneInfo(settings.region.timezone)
    start_ms = int(datetime(first.year, first.month, first.day, tzinfo=zone).timestamp() * 1000)
    stop = last + timedelta(days=1)
    end_ms = int(datetime(stop.year, stop.month, stop.day, tzinfo=zone).timestamp() * 1000)
    historian = _open(settings)
    try:
        daily = daily_from_historian(
            historian,
            settings.enterprise,
            tag,
            start_ms,
            end_ms,
            meter,
            tz=settings.region.timezone,
            min_coverage=min_coverage,
        )
    finally:
        historian.close()
    import pyarrow as pa

    table = pa.table(
        {
            "enterprise_id": [enterprise_id] * daily.days.height,
            "date": daily.days.get_column("date").to_arrow(),
            "kwh": daily.days.get_column("kwh").to_arrow(),
        }
    )
    _, store = _region(data_dir)
    try:
        report = store.load_readings(
            table, source=f"historian:{settings.enterprise}", today=_region_today(settings)
        )
    finally:
        store.close()
    incomplete = [
        {"date": str(d), "kwh": k, "coverage": round(c, 3)}
        for d, k, c in daily.incomplete.iter_rows()
    ]
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "incomplete_days": incomplete}, default=str))
    else:
        for row in incomplete:
            typer.echo(
                f"not stored: {row['date']} covers only {row['coverage']:.0%} of the day", err=True
            )
        typer.echo(
            f"{enterprise_id}: stored {report.stored} daily readings from {len(tag)} tag(s), "
            f"kept aside {report.quarantined}, {len(incomplete)} incomplete days not stored"
        )


@region_app.command("rate")
@guarded
def region_rate(
    day: DayOpt,
    by: ByOpt = None,
    theta: ThetaOpt = None,
    baseline: BaselineOpt = None,
    province: ProvinceOpt = None,
    city: CityOpt = None,
    industry: IndustryOpt = None,
    size: SizeOpt = None,
    above: AboveOpt = None,
    data_dir: DataDir = None,
    as_json: Json = False,
    as_csv: CsvOpt = False,
) -> None:
    """Print per group: enterprises, reporting, resumed, rate, production index, change."""
    from indunet.region.rate import parse_by

    when = _day(day, "--date")
    groups = parse_by(by)
    settings, store = _region(data_dir)
    try:
        rule, filters = _region_query(
            settings,
            theta,
            baseline,
            province=province,
            city=city,
            industry=industry,
            size=size,
            above_designated_size=above,
        )
        frame, source = store.rate(when, groups, filters, rule)
        text = store.headline(when, filters, rule)
    finally:
        store.close()
    extra = {
        "date": str(when),
        "by": groups,
        "rule": rule.as_dict(),
        "filters": filters.as_dict(),
        "source": source,
        "headline": text,
    }
    _print_frame(frame, as_json, as_csv, extra)


@region_app.command("trend")
@guarded
def region_trend(
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.")],
    by: ByOpt = None,
    theta: ThetaOpt = None,
    baseline: BaselineOpt = None,
    province: ProvinceOpt = None,
    industry: IndustryOpt = None,
    size: SizeOpt = None,
    data_dir: DataDir = None,
    as_json: Json = False,
    as_csv: CsvOpt = False,
) -> None:
    """Print the resumption rate of every day in a range, per group."""
    from indunet.region.rate import parse_by

    first, last = _day(start, "--start"), _day(end, "--end")
    groups = parse_by(by)
    settings, store = _region(data_dir)
    try:
        rule, filters = _region_query(
            settings, theta, baseline, province=province, industry=industry, size=size
        )
        frame, source = store.trend(first, last, groups, filters, rule)
    finally:
        store.close()
    extra = {"start": str(first), "end": str(last), "by": groups, "source": source}
    _print_frame(frame, as_json, as_csv, extra)


@region_app.command("not-resumed")
@guarded
def region_not_resumed(
    day: DayOpt,
    state: Annotated[
        str, typer.Option(help="stopped, unknown, not_resumed (both) or resumed.")
    ] = "stopped",
    province: ProvinceOpt = None,
    city: CityOpt = None,
    industry: IndustryOpt = None,
    size: SizeOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Most rows.")] = 100,
    data_dir: DataDir = None,
    as_json: Json = False,
    as_csv: CsvOpt = False,
) -> None:
    """List the enterprises of a group that are not back (biggest first): the call list."""
    when = _day(day, "--date")
    settings, store = _region(data_dir)
    try:
        rule, filters = _region_query(
            settings, None, None, province=province, city=city, industry=industry, size=size
        )
        frame, total = store.enterprises(when, state=state, filters=filters, rule=rule, limit=limit)
    finally:
        store.close()
    _print_frame(frame, as_json, as_csv, {"date": str(when), "state": state, "total": total})


@region_app.command("watchlist")
@guarded
def region_watchlist(
    day: DayOpt,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Show each key enterprise and how many of its suppliers are not back yet."""
    when = _day(day, "--date")
    _, store = _region(data_dir)
    try:
        rows = store.watchlist(when)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"date": str(when), "rows": rows}, default=str))
        return
    for r in rows:
        typer.echo(f"{r['enterprise_id']}: {r['summary']}")
    if not rows:
        typer.echo("(no key enterprises in the registry)")


@region_app.command("quarantine")
@guarded
def region_quarantine(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """List registry and reading rows that were kept aside, with the reason."""
    _, store = _region(data_dir)
    try:
        rows, total = store.quarantine(limit=limit)
    finally:
        store.close()
    _print_rows(rows, as_json, {"total": total})


@region_app.command("export")
@guarded
def region_export(
    out: Annotated[Path, typer.Option("--out", help="Directory for the Parquet files.")],
    data_dir: DataDir = None,
) -> None:
    """Write readings as Parquet partitioned by date (for Trino/Spark) and the registry."""
    _, store = _region(data_dir)
    try:
        counts = store.export_parquet(out)
    finally:
        store.close()
    typer.echo(
        f"wrote {counts['readings']} readings and {counts['registry_versions']} registry rows "
        f"to {out}"
    )


@region_app.command("simulate")
@guarded
def region_simulate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write Parquet files to.")],
    enterprises: Annotated[int, typer.Option(min=1, help="Enterprises in the nation.")] = 50_000,
    start: Annotated[str, typer.Option(help="First day.")] = "2019-12-01",
    end: Annotated[str, typer.Option(help="Last day.")] = "2020-04-30",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2020,
    load: Annotated[bool, typer.Option(help="Also import into the data dir.")] = False,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Simulate a nation's registry and daily kWh through the 2020 shutdown and recovery."""
    from indunet.region.simulate import simulate_nation, write_nation

    first, last = _day(start, "--start"), _day(end, "--end")
    nation = simulate_nation(enterprises, seed=seed)
    counts = write_nation(nation, first, last, out)
    result: dict[str, Any] = {"out": str(out), **counts}
    if load:
        settings, store = _region(data_dir)
        try:
            store.import_registry(out / "registry.parquet", effective=first)
            report = store.import_readings(
                out / "readings", today=max(last, _region_today(settings))
            )
        finally:
            store.close()
        result["loaded"] = report.stored
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(
            f"wrote {counts['enterprises']} enterprises and {counts['readings']} daily readings "
            f"to {out}" + (f"; imported {result['loaded']}" if load else "")
        )
