"""The `indunet` command line (Typer). Exit codes: 0 ok, 1 temporary failure, 2 bad input."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from indunet.config import Settings, load_settings
from indunet.errors import ConfigError, DataError, IndunetError, TemporaryError

app = typer.Typer(
    help="indunet: connect machines, keep their data in a historian, and serve it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(help="Import machine data from files.", no_args_is_help=True)
query_app = typer.Typer(help="Read data out of the historian.", no_args_is_help=True)
historian_app = typer.Typer(
    help="Historian upkeep: retention and compaction.", no_args_is_help=True
)
app.add_typer(import_app, name="import")
app.add_typer(query_app, name="query")
app.add_typer(historian_app, name="historian")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./indunet-data).", show_default=False),
]
Db = Annotated[
    str | None,
    typer.Option("--db", help="Historian URL: postgresql://… (default: embedded DuckDB)."),
]
Enterprise = Annotated[str | None, typer.Option("--enterprise", help="Enterprise (tenant).")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn indunet errors into a one-line message and exit code 2 (bad input) or 1 (retry)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataError, ConfigError) as exc:
            _fail(str(exc), 2)
        except TemporaryError as exc:
            _fail(str(exc), 1)
        except IndunetError as exc:
            _fail(str(exc), 1)

    return wrapper


def _settings(data_dir: Path | None, db: str | None, enterprise: str | None = None) -> Settings:
    return load_settings(data_dir=data_dir, db=db, enterprise=enterprise)


def _open(settings: Settings):
    from indunet.store import open_historian

    return open_historian(settings)


def _time(raw: str | None, default: int, name: str) -> int:
    from indunet.ingest.values import TimeParser

    if raw is None:
        return default
    try:
        return TimeParser(now_ms=int(time.time() * 1000), max_future_ms=10**15).parse(raw)
    except DataError as exc:
        raise DataError(f"option {name}: {exc}") from exc


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _print_rows(rows: list[dict[str, Any]], as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        typer.echo(json.dumps({**(extra or {}), "rows": rows}, default=str))
        return
    if not rows:
        typer.echo("(no rows)")
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows[:500])) for c in cols}
    typer.echo("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        typer.echo("  ".join(str(r[c]).ljust(widths[c]) for c in cols))


# ---------------------------------------------------------------------------- serve / demo
@app.command()
@guarded
def serve(
    data_dir: DataDir = None,
    db: Db = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            "--mqtt-url",
            help="Ingest indunet/v1/# from this broker, mqtt[s]://user:pass@host:port.",
        ),
    ] = None,
    mqtt_client_id: Annotated[
        str, typer.Option("--mqtt-client-id", help="Client id of the persistent MQTT session.")
    ] = "indunet-ingest",
    sparkplug_groups: Annotated[
        str | None,
        typer.Option(
            "--sparkplug-groups",
            help="Host only these Sparkplug groups (comma list); shards Sparkplug hosting by group "
            "id across workers. Default: all groups.",
        ),
    ] = None,
    mqtt_shared_group: Annotated[
        str | None,
        typer.Option(
            "--mqtt-shared-group",
            help="Share the subscription ($share/GROUP/…) among several ingest workers.",
        ),
    ] = None,
) -> None:
    """Run the HTTP API on the historian, and MQTT ingest when --mqtt-url is given."""
    import uvicorn

    from indunet.api.app import create_app

    settings = load_settings(data_dir=data_dir, db=db, host=host, port=port)
    historian = _open(settings)
    ingest = None
    if mqtt_url:
        from indunet.connect.mqtt import MqttIngest

        ingest = MqttIngest(
            historian,
            mqtt_url,
            client_id=mqtt_client_id,
            max_future_s=settings.max_future_s,
            shared_group=mqtt_shared_group,
            sparkplug_groups=None
            if sparkplug_groups is None
            else [g.strip() for g in sparkplug_groups.split(",") if g.strip()],
            payload_limit=settings.deadletter_payload_bytes,
        )
        ingest.start()
        typer.echo(f"ingesting {ingest.topic} from {ingest.host}:{ingest.port}")
    typer.echo(f"indunet serving on http://{settings.host}:{settings.port} ({historian.backend})")
    try:
        app = create_app(settings, historian)
        app.state.mqtt = ingest
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        if ingest:
            ingest.stop()
        historian.close()


@app.command()
@guarded
def demo(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option("--mqtt-url", help="Use this broker instead of the embedded one."),
    ] = None,
    sites: Annotated[int, typer.Option(min=1, max=100, help="Simulated sites.")] = 3,
    machines: Annotated[int, typer.Option(min=1, max=10_000, help="Simulated machines.")] = 30,
    hours: Annotated[
        int, typer.Option(min=0, max=24 * 30, help="Hours of back-filled history.")
    ] = 24,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 7,
) -> None:
    """Run the whole platform on embedded defaults: broker, simulated plants, ingest, API."""
    import tempfile

    import uvicorn

    from indunet.api.app import create_app
    from indunet.connect.broker import EmbeddedBroker
    from indunet.connect.mqtt import MqttIngest
    from indunet.sim.live import PlantSim, build_plants
    from indunet.sim.plant import DEMO_MACHINES, simulate
    from indunet.sim.publish import SimPublisher

    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="indunet-demo-"))
    settings = load_settings(data_dir=data_dir, port=port)
    historian = _open(settings)
    if hours:
        end = int(time.time() * 1000) // 1000 * 1000
        batch = simulate(
            DEMO_MACHINES, end - hours * 3_600_000, end, 10_000, enterprise=settings.enterprise
        )
        historian.write(batch, source="demo")
    broker = None
    if mqtt_url is None:
        broker = EmbeddedBroker()
        broker.start()
        mqtt_url = broker.url
    ingest = MqttIngest(
        historian,
        mqtt_url,
        client_id="indunet-demo-ingest",
        mqtt_version=4 if broker else 5,
        max_future_s=settings.max_future_s,
    )
    publisher = SimPublisher(
        PlantSim(build_plants(sites, machines, seed), seed), mqtt_url, settings.enterprise
    )
    try:
        ingest.start()
        publisher.start()
        typer.echo(
            f"indunet demo: data in {data_dir}, broker {mqtt_url}, "
            f"{machines} simulated machines on {sites} sites publishing every second"
        )
        typer.echo(
            f"open http://{settings.host}:{settings.port}/ — latest values of every tag; "
            f"API docs at /docs; Ctrl+C stops"
        )
        app = create_app(settings, historian)
        app.state.mqtt = ingest
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        publisher.stop()
        ingest.stop()
        if broker:
            broker.stop()
        historian.close()


@app.command()
@guarded
def simulate(
    mqtt_url: Annotated[str, typer.Option("--mqtt-url", help="Broker to publish to.")],
    sites: Annotated[int, typer.Option(min=1, max=1000, help="Simulated sites.")] = 3,
    machines: Annotated[int, typer.Option(min=1, max=100_000, help="Simulated machines.")] = 60,
    rate: Annotated[
        float, typer.Option(min=0.01, max=1000, help="Payloads per machine per second.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    enterprise: Enterprise = None,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds (default: Ctrl+C).")
    ] = None,
) -> None:
    """Publish simulated plants (JSON contract, QoS 1) to an MQTT broker."""
    from indunet.sim.live import PlantSim, build_plants
    from indunet.sim.publish import SimPublisher

    settings = load_settings(enterprise=enterprise)
    publisher = SimPublisher(
        PlantSim(build_plants(sites, machines, seed), seed), mqtt_url, settings.enterprise, rate
    )
    publisher.start()
    typer.echo(f"simulating {machines} machines on {sites} sites to {mqtt_url}; Ctrl+C stops")
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        publisher.stop()
    typer.echo(f"published {publisher.sent} messages")


# ---------------------------------------------------------------------------- import
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
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Print a tag's raw, bucketed or downsampled points."""
    from indunet.store.base import AGGREGATES

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
    _print_rows(table.to_pylist(), as_json, {"tag": tag, "start_ms": start_ms, "end_ms": end_ms})


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
    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        rows = historian.latest(settings.enterprise, prefix).to_pylist()
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
    _print_rows(rows, as_json)


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


# ---------------------------------------------------------------------------- plant: business
plant_app = typer.Typer(
    help="Plant analytics and the business data beside it (inventory, orders, shipments).",
    no_args_is_help=True,
)
app.add_typer(plant_app, name="plant")
BUSINESS_KINDS = "items, inventory, purchase_orders, sales_orders, production_orders, shipments"


def _business(settings: Settings):
    from indunet.business.store import BusinessStore

    historian = _open(settings)
    return historian, BusinessStore(historian)


@plant_app.command("import")
@guarded
def plant_import(
    kind: Annotated[str, typer.Argument(help=f"What the file holds: {BUSINESS_KINDS}.")],
    path: Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz), Excel (.xlsx) or JSON file.")],
    timezone: Annotated[
        str | None, typer.Option(help="IANA zone of times without an offset (default UTC).")
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Import an ERP or warehouse export; refused rows are listed and kept as dead letters."""
    from indunet.business.files import read_rows
    from indunet.business.records import BusinessKind

    try:
        business_kind = BusinessKind(kind)
    except ValueError:
        raise DataError(f"unknown kind {kind!r}; use one of {BUSINESS_KINDS}") from None
    rows, warnings, first_row = read_rows(path, business_kind)
    settings = _settings(data_dir, db, enterprise)
    historian, store = _business(settings)
    try:
        report = store.load(
            settings.enterprise,
            business_kind,
            rows,
            source=path.name,
            now_ms=int(time.time() * 1000),
            tz=timezone,
            warnings=warnings,
            first_row=first_row,
        )
    finally:
        historian.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for refused in report.refused[:50]:
            typer.echo(f"refused: {refused['ref']}: {refused['reason']}", err=True)
        typer.echo(
            f"stored {report.stored} {business_kind.value} rows, refused {len(report.refused)}"
        )
    if report.refused and not report.stored:
        raise typer.Exit(2)


def _business_view(
    kind: str, data_dir: Path | None, db: str | None, enterprise: str | None
) -> list[dict[str, Any]]:
    settings = _settings(data_dir, db, enterprise)
    historian, store = _business(settings)
    try:
        return store.view(settings.enterprise, kind, now_ms=int(time.time() * 1000))
    finally:
        historian.close()


def _with_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Show epoch-ms fields as UTC times for people."""
    return [
        {
            k: _iso(v) if isinstance(v, int) and (k.endswith("_at") or k in {"as_of", "eta"}) else v
            for k, v in r.items()
        }
        for r in rows
    ]


@plant_app.command("inventory")
@guarded
def plant_inventory(
    below_cover: Annotated[bool, typer.Option(help="Only items below their cover.")] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show the newest stock per item and warehouse with its days of cover."""
    rows = _business_view("inventory", data_dir, db, enterprise)
    if below_cover:
        rows = [r for r in rows if r["below_cover"]]
    _print_rows(rows if as_json else _with_times(rows), as_json)


@plant_app.command("orders")
@guarded
def plant_orders(
    kind: Annotated[
        str, typer.Option(help="purchase (incoming materials), sales or production.")
    ] = "purchase",
    late: Annotated[bool, typer.Option(help="Only late orders.")] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show orders with progress and lateness."""
    if kind not in {"purchase", "sales", "production"}:
        raise DataError(f"--kind {kind!r}: use purchase, sales or production")
    rows = _business_view(f"{kind}_orders", data_dir, db, enterprise)
    if late:
        rows = [r for r in rows if r["late"]]
    _print_rows(rows if as_json else _with_times(rows), as_json)


@plant_app.command("shipments")
@guarded
def plant_shipments(
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show shipments and vehicles: planned, on the road, arrived, late."""
    rows = _business_view("shipments", data_dir, db, enterprise)
    _print_rows(rows if as_json else _with_times(rows), as_json)


def main() -> None:
    """Run the CLI."""
    app(prog_name="indunet")


if __name__ == "__main__":
    sys.exit(main())
