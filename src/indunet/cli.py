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
            "--shared-group",
            "--mqtt-shared-group",
            help="Share the subscription ($share/GROUP/…) among several ingest workers.",
        ),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="MQTT user name (or in the URL).")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="INDUNET_MQTT_PASSWORD",
            help="MQTT password; better in INDUNET_MQTT_PASSWORD than on the command line.",
        ),
    ] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Connect with TLS (as mqtts://).")] = False,
) -> None:
    """Run the HTTP API on the historian, and MQTT ingest when --mqtt-url is given."""
    import uvicorn

    from indunet.api.app import create_app

    settings = load_settings(data_dir=data_dir, db=db, host=host, port=port)
    historian = _open(settings)
    ingest = None
    if mqtt_url:
        from indunet.connect.mqtt import MqttIngest, with_credentials

        ingest = MqttIngest(
            historian,
            with_credentials(mqtt_url, username, password, tls),
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
    alarm_service = watcher = None
    try:
        app = create_app(settings, historian)
        app.state.mqtt = ingest
        watcher = _start_plant_watcher(app, historian, settings)  # when machines are configured
        alarm_service = _start_alarms(app, historian, settings)  # when rules are configured
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=5,  # open event streams (SSE) must not block a stop
        )
    finally:
        if alarm_service:
            alarm_service.stop()
        if watcher:
            watcher.stop()
        if ingest:
            ingest.stop()
        historian.close()


def _demo_login(historian: Any, enterprise: str) -> dict[str, str]:
    """Create (or reset) the demo user with a random password, and a device key for ingest."""
    import secrets

    from indunet.auth.store import AuthStore

    store = AuthStore(historian)
    password = secrets.token_urlsafe(12)
    now = int(time.time() * 1000)
    if store.user("demo") is None:
        store.add_user("demo", password, now_ms=now)
    else:
        store.set_password("demo", password)
    store.grant("demo", enterprise, "admin")
    store.grant("demo", "*", "chain")  # the regional monitor's aggregates too
    device = store.create_key(enterprise, "operator", name="demo ingest", device=True, now_ms=now)
    return {"user": "demo", "password": password, "device_key": device.secret}


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
    nation: Annotated[
        int,
        typer.Option(
            min=0, help="Enterprises of the simulated nation for the regional monitor (0: none)."
        ),
    ] = 20_000,
    edge: Annotated[
        bool,
        typer.Option(
            "--edge/--no-edge",
            help="Also simulate an old press with a clip-on Modbus meter and a servo press PLC "
            "(OPC UA), read by the edge agent.",
        ),
    ] = True,
) -> None:
    """Run the whole platform on embedded defaults: broker, simulated plants, ingest, API."""
    import logging
    import secrets
    import signal
    import tempfile
    import threading

    import pyarrow.compute as pc
    import uvicorn

    from indunet.api.app import create_app
    from indunet.connect.broker import EmbeddedBroker
    from indunet.connect.mqtt import MqttIngest
    from indunet.sim.live import PlantSim, build_plants
    from indunet.sim.plant import SimMachine, simulate
    from indunet.sim.plant_config import demo_plant_config
    from indunet.sim.publish import SimPublisher

    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="indunet-demo-"))
    settings = load_settings(data_dir=data_dir, port=port)
    _check_port(settings.host, settings.port)
    plants = build_plants(sites, machines, seed)
    plant_config = demo_plant_config(plants)
    command_secret = secrets.token_hex(16)  # shared by the platform and the demo's edge agent
    if edge:
        from indunet.sim.edge_devices import old_press_machine

        plant_config = plant_config.model_copy(
            update={
                "machines": [*plant_config.machines, old_press_machine()],
                "command_secret": command_secret,
            }
        )
    settings = settings.model_copy(update={"plant": plant_config})
    historian = _open(settings)
    login = _demo_login(historian, settings.enterprise)  # a demo user and an ingest device key
    from indunet.sim.business import load_demo_business  # stock, orders, trucks, sold machines

    load_demo_business(
        historian, settings.enterprise, [m.path for m in plants], now_ms=int(time.time() * 1000)
    )
    from indunet.sim.chain_demo import load_demo_chain  # the national chain, Hubei scenario

    load_demo_chain(historian, settings.enterprise)
    from indunet.sim.docking_demo import load_docking_demo  # the mask shortage on /docking

    load_docking_demo(historian, settings.enterprise, now_ms=int(time.time() * 1000))
    # history of the same machines, so their charts and OEE have a past: power and part and scrap
    # counters (not temperature: the batch model's would not join the live one smoothly)
    if hours:
        end = int(time.time() * 1000) // 1000 * 1000
        past = tuple(SimMachine(m.path, m.rated_kw * 0.08, m.rated_kw, m.cycle_s) for m in plants)
        batch = simulate(past, end - hours * 3_600_000, end, 10_000, enterprise=settings.enterprise)
        batch.table = batch.table.filter(
            pc.match_substring_regex(
                batch.table.column("tag"), r"/(power_kw|parts_total|scrap_total)$"
            )
        )
        historian.write(batch, source="demo")
    broker = None
    ingest = publisher = alarm_service = watcher = edge_demo = None
    nation_loader: threading.Thread | None = None
    chain_live = None  # the supply chain follows the plant and the regional monitor
    url = f"http://{settings.host}:{settings.port}/"
    server: uvicorn.Server | None = None

    def stop(signum: int, frame: object) -> None:
        # Ctrl+C or SIGTERM: before the server runs, stop at once; once it runs, shut it down
        # gracefully (uvicorn hands the signal back here when it is done)
        if server is None:
            raise KeyboardInterrupt
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
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
        publisher = SimPublisher(PlantSim(plants, seed), mqtt_url, settings.enterprise)
        ingest.start()
        publisher.start()
        if edge:
            from indunet.sim.edge_devices import EdgeDemo

            edge_demo = EdgeDemo(
                mqtt_url, settings.enterprise, Path(data_dir) / "edge", command_secret
            ).start()
        app = create_app(settings, historian)
        app.state.mqtt = ingest
        watcher = _start_plant_watcher(app, historian, settings, history_h=max(hours, 1))
        alarm_service = _start_alarms(app, historian, settings, demo_plants=plants)
        from indunet.chain.live import start_chain_live

        chain_live = start_chain_live(app, historian, settings)  # chain alerts every minute
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                timeout_graceful_shutdown=5,
            )
        )

        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                typer.echo(
                    f"indunet demo is running: {machines} simulated machines on {sites} sites, "
                    f"one message per machine per second\n"
                    f"  open {url}\n"
                    f"    Overview: each site's machines, OEE vs target, energy, alarms, orders, "
                    f"stock and shipments; click a site for its areas, lines and machines\n"
                    f"    a machine: live values, state timeline, OEE losses, stops to explain, "
                    f"alarms to acknowledge, a zoomable chart per tag\n"
                    f"    also Alarms, Energy, Business, Data, Region (a simulated nation, "
                    f"2020), Chain (Hubei stops 4 weeks), Docking (the mask shortage)\n"
                    f"  sign in as user {login['user']} with password {login['password']}\n"
                    f"  API docs {url}docs (API: Authorization: Bearer <key from "
                    f"'indunet keys create'>)\n"
                    f"  HTTP ingest: POST {url}api/v1/ingest with header X-Device-Key: "
                    f"{login['device_key']}\n"
                    + (
                        "  an old press with only a clip-on meter (Modbus) and a servo press "
                        "PLC (OPC UA) come in through the edge agent: line-01 of site-01;\n"
                        "    an operator sets the press speed with POST /api/v1/commands "
                        '{"machine": "site-01/press-shop/line-01/servo-press", '
                        '"tag": "setpoint_spm", "value": 40}\n'
                        if edge
                        else ""
                    )
                    + f"  data {data_dir} (DuckDB), MQTT broker {mqtt_url}\n"
                    f"Ctrl+C stops everything."
                )

        threading.Thread(target=announce, name="demo-announce", daemon=True).start()
        if nation:
            nation_loader = threading.Thread(
                target=_load_demo_nation, args=(app, nation), name="demo-nation", daemon=True
            )
            nation_loader.start()
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if nation_loader is not None:
            # let the nation finish loading: exiting under its DuckDB work aborts the process
            nation_loader.join()
        if chain_live:
            chain_live.stop()
        if alarm_service:
            alarm_service.stop()
        if watcher:
            watcher.stop()
        if publisher:
            publisher.stop()
        if edge_demo:
            edge_demo.stop()
        if ingest:
            ingest.stop()
        if broker:
            # amqtt logs its cancelled broadcast loop as an error with a traceback on a normal stop
            logging.getLogger("amqtt").setLevel(logging.CRITICAL)
            broker.stop()
        historian.close()
    typer.echo("indunet demo stopped.")


def _load_demo_nation(app: Any, enterprises: int) -> None:
    """Simulate a nation through the 2020 shutdown and load it for the regional monitor's API."""
    from datetime import date

    from indunet.region.simulate import simulate_nation, write_nation
    from indunet.region.store import open_region_store

    settings: Settings = app.state.settings
    out = settings.data_dir / "nation"
    app.state.region_loading = True  # the /region pages say "still loading" meanwhile
    try:
        first, last = date(2019, 12, 1), date(2020, 4, 30)
        write_nation(simulate_nation(enterprises, seed=2020), first, last, out)
        store = open_region_store(settings.region, settings.data_dir)
        store.import_registry(out / "registry.parquet", effective=first)
        store.import_readings(out / "readings", today=max(last, _region_today(settings)))
    except Exception as exc:  # the demo goes on without the regional data
        typer.echo(f"regional demo data could not be loaded: {exc}", err=True)
        return
    finally:
        app.state.region_loading = False
    if getattr(app.state, "region_store", None) is None:
        app.state.region_store = store
    else:
        store.close()
    typer.echo(
        f"  regional monitor: {enterprises} simulated enterprises, Dec 2019 - Apr 2020; try "
        f"/region?date=2020-03-05 (page) or /api/v1/region/rate?date=2020-03-05&by=province"
    )


def _check_port(host: str, port: int) -> None:
    """Refuse to start when the HTTP port is already taken (clear message, exit code 2)."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} on {host} is in use ({exc.strerror}); stop what uses it or choose "
                "another with --port"
            ) from exc


@app.command()
@guarded
def simulate(
    mqtt_url: Annotated[str, typer.Option("--mqtt-url", help="Broker to publish to.")],
    sites: Annotated[int, typer.Option(min=1, max=1000, help="Simulated sites.")] = 3,
    machines: Annotated[int, typer.Option(min=1, max=100_000, help="Simulated machines.")] = 60,
    rate: Annotated[
        float, typer.Option(min=0.01, max=1000, help="Payloads per machine per second.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same plants.")] = 7,
    enterprise: Enterprise = None,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds (default: Ctrl+C).")
    ] = None,
    sparkplug: Annotated[
        bool,
        typer.Option(
            "--sparkplug", help="Act as Sparkplug B edge nodes (one per site, machines as devices)."
        ),
    ] = False,
    group: Annotated[
        str | None, typer.Option("--group", help="Sparkplug group id (default: the enterprise).")
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option(
            "--replay",
            help="Replay a real dataset instead: steel_industry, cnc_mill_tool_wear or "
            "metropt3_air_compressor.",
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0, help="Replay speed, × real time; 0 = as fast as possible.")
    ] = 1.0,
    keep_time: Annotated[
        bool, typer.Option("--keep-time", help="Replay with the original timestamps.")
    ] = False,
    datasets: Annotated[
        Path,
        typer.Option("--datasets", help="Folder holding the datasets (for --replay)."),
    ] = Path("../shared/datasets"),
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many rows.")] = None,
) -> None:
    """Publish simulated plants (JSON contract QoS 1, or Sparkplug B) or replay a dataset.

    Machines go off, idle, setup, running and breakdown for durations drawn from distributions;
    they report power, an energy meter, part counters (total, good, scrap), temperature and
    their state. See docs/simulator.md.
    """
    from indunet.sim.live import PlantSim, build_plants
    from indunet.sim.publish import ReplayPublisher, SimPublisher, SparkplugSimPublisher

    settings = load_settings(enterprise=enterprise)
    if replay is not None:
        from indunet.sim.replay import read_dataset

        if sparkplug:
            raise ConfigError("--replay publishes the JSON contract; drop --sparkplug")
        rows = read_dataset(replay, datasets, limit)
        replayer = ReplayPublisher(
            rows, mqtt_url, settings.enterprise, speed=speed, keep_time=keep_time
        )
        typer.echo(f"replaying {len(rows)} rows of {replay} to {mqtt_url} at speed {speed:g}")
        try:
            replayer.run()
        except KeyboardInterrupt:
            replayer.stop()
        typer.echo(f"published {replayer.sent} messages, {replayer.acked} acknowledged")
        return
    sim = PlantSim(build_plants(sites, machines, seed), seed)
    publisher: SimPublisher | SparkplugSimPublisher
    if sparkplug:
        publisher = SparkplugSimPublisher(sim, mqtt_url, group or settings.enterprise, rate)
    else:
        publisher = SimPublisher(sim, mqtt_url, settings.enterprise, rate)
    publisher.start()
    kind = "Sparkplug B" if sparkplug else "JSON"
    typer.echo(
        f"simulating {machines} machines on {sites} sites to {mqtt_url} ({kind}); Ctrl+C stops"
    )
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
BUSINESS_KINDS = (
    "items, inventory, purchase_orders, sales_orders, production_orders, shipments, "
    "customer_equipment"
)


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


# ---------------------------------------------------------------------------- plant: alarms
def _start_alarms(app: Any, historian: Any, settings: Settings, demo_plants: Any = None) -> Any:
    """Start the alarm service when rules exist (config, API, or the demo's); else None."""
    from indunet.api.routes.alarms import start_alarm_service
    from indunet.plant.alarm_service import AlarmStore

    extra: dict[str, Any] = {}
    if demo_plants is not None:
        from indunet.sim.alarm_rules import demo_alarm_rules, demo_known_tags

        extra = {"extra_rules": demo_alarm_rules(), "known_tags": demo_known_tags(demo_plants)}
    elif not settings.plant.alarms and not AlarmStore(historian).rule_docs(settings.enterprise):
        return None
    service = start_alarm_service(app, historian, settings, **extra)
    watcher = getattr(app.state, "plant_watcher", None)
    if watcher is not None:  # machine states from the plant watcher feed state-duration rules
        service.attach(watcher)
    typer.echo(f"alarms: {len(service.rules())} rules evaluated every {service.interval_s:g} s")
    return service


def _alarm_action(settings: Settings, act: Callable[[Any], list[dict[str, Any]]]) -> list[dict]:
    """Apply an operator action to the stored alarm snapshot (no running service needed)."""
    from indunet.plant.alarm_service import AlarmService
    from indunet.plant.alarms import AlarmActionError

    historian = _open(settings)
    try:
        return act(AlarmService(historian, settings))
    except AlarmActionError as exc:
        raise DataError(str(exc)) from exc
    finally:
        historian.close()


@plant_app.command("alarms")
@guarded
def plant_alarms(
    active: Annotated[
        bool, typer.Option("--active", help="Only alarms whose condition holds now.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """List alarms not in the normal state (unack, acked, returned, shelved, …), newest first."""
    settings = _settings(data_dir, db, enterprise)
    alarms = _alarm_action(settings, lambda s: [a.to_dict() for a in s.alarms()])
    if active:
        alarms = [a for a in alarms if a["active"]]
    alarms.sort(key=lambda a: -(a["raised_ms"] or 0))
    if as_json:
        _print_rows(alarms, True)
        return
    cols = ("alarm_id", "state", "priority", "value", "raised_ms", "acked_by", "shelved_until_ms")
    _print_rows(
        [
            {c: _iso(a[c]) if c.endswith("_ms") and a[c] is not None else a[c] for c in cols}
            for a in alarms
        ],
        False,
    )


@plant_app.command("ack")
@guarded
def plant_ack(
    alarm_id: Annotated[str, typer.Argument(help="RULE@TAG, as `indunet plant alarms` shows.")],
    by: Annotated[str, typer.Option("--by", help="Operator name.")],
    comment: Annotated[str | None, typer.Option(help="Why, or what was done.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Acknowledge an alarm (stored; a running service picks it up at its next start)."""
    settings = _settings(data_dir, db, enterprise)
    events = _alarm_action(settings, lambda s: s.acknowledge(alarm_id, by=by, comment=comment))
    _print_rows(events if as_json else _with_times(events), as_json)


@plant_app.command("shelve")
@guarded
def plant_shelve(
    alarm_id: Annotated[str, typer.Argument(help="RULE@TAG, as `indunet plant alarms` shows.")],
    until: Annotated[str, typer.Option("--until", help="End: epoch ms or RFC 3339.")],
    by: Annotated[str, typer.Option("--by", help="Operator name.")],
    reason: Annotated[str | None, typer.Option(help="Why it is shelved.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Shelve an alarm until a time (at most the rule's max_shelve_s ahead)."""
    until_ms = _time(until, 0, "--until")
    settings = _settings(data_dir, db, enterprise)
    events = _alarm_action(
        settings, lambda s: s.shelve(alarm_id, until_ms=until_ms, by=by, comment=reason)
    )
    _print_rows(events if as_json else _with_times(events), as_json)


# ---------------------------------------------------------------------------- plant: analytics
def _start_plant_watcher(app: Any, historian: Any, settings: Settings, history_h: int = 168) -> Any:
    """Start the plant watcher when machines are configured (file or API); else None."""
    from indunet.plant.watch import PlantWatcher

    watcher = PlantWatcher(historian, settings, history_ms=history_h * 3_600_000)
    if not watcher.plant.machines:
        return None
    watcher.start()
    app.state.plant_watcher = watcher
    typer.echo(f"plant: watching {len(watcher.plant.machines)} machines every 2 s")
    return watcher


def _plant_session(data_dir: Path | None, db: str | None, enterprise: str | None):
    from indunet.plant.store import PlantStore

    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        store = PlantStore(historian, settings.plant)
        return settings, historian, store, store.effective(settings.enterprise)
    except BaseException:
        historian.close()
        raise


def _plant_range(start: str | None, end: str | None) -> tuple[int, int]:
    hi = _time(end, int(time.time() * 1000), "--end")
    lo = _time(start, hi - 86_400_000, "--start")
    if hi <= lo:
        raise DataError(f"--end ({_iso(hi)}) must be after --start ({_iso(lo)})")
    return lo, hi


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


Start = Annotated[str | None, typer.Option(help="Epoch ms or RFC 3339 (default: end - 24 h).")]
End = Annotated[str | None, typer.Option(help="Epoch ms or RFC 3339 (default: now).")]


@plant_app.command("machines")
@guarded
def plant_machines(
    prefix: Annotated[str | None, typer.Option(help="Only machines under this path.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """List the configured machines with their newest stored state."""
    from indunet.plant.report import scope_machines

    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        sources = store.machine_sources(settings.enterprise)
        rows = []
        for m in scope_machines(plant, prefix) if plant.machines else []:
            last = store.last_segment(settings.enterprise, m.id)
            rows.append(
                {
                    "id": m.id,
                    "line": m.line,
                    "source": sources.get(m.id, "file"),
                    "power_tag": m.power_tag,
                    "last_state": last[2] if last else None,
                    "since": (last[0] if as_json else _iso(last[0])) if last else None,
                }
            )
    finally:
        historian.close()
    _print_rows(rows, as_json)


@plant_app.command("states")
@guarded
def plant_states(
    machine: Annotated[str, typer.Argument(help="Machine id site/area/line/machine.")],
    start: Start = None,
    end: End = None,
    recompute: Annotated[
        bool, typer.Option(help="Recompute the range from the historian first, and store it.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show a machine's stored state timeline (optionally recomputed from power data)."""
    from indunet.plant.watch import recompute_range

    lo, hi = _plant_range(start, end)
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        cfg = plant.machine(machine.strip("/"))
        if recompute:
            recompute_range(store, historian, settings.enterprise, cfg, lo, hi)
        tl = store.timeline(settings.enterprise, cfg.id, lo, hi)
    finally:
        historian.close()
    names = ("off", "idle", "running", "offline")
    rows = [
        {
            "start": int(s) if as_json else _iso(int(s)),
            "end": int(e) if as_json else _iso(int(e)),
            "state": names[st],
            "reason": r,
            "minutes": round((int(e) - int(s)) / 60_000, 2),
        }
        for s, e, st, r in zip(tl.start_ms, tl.end_ms, tl.state, tl.reasons(), strict=True)
    ]
    _print_rows(rows, as_json, {"machine": cfg.id, "ms_by_state": tl.ms_by_state()})


@plant_app.command("oee")
@guarded
def plant_oee(
    scope: Annotated[str, typer.Argument(help="Machine, line, area or site prefix ('' = all).")],
    start: Start = None,
    end: End = None,
    by: Annotated[str, typer.Option(help="Group by none, shift or day.")] = "none",
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show OEE (ISO 22400-2) with its time elements and counts, per group and in total."""
    from indunet.plant.report import oee_report

    lo, hi = _plant_range(start, end)
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        ent = settings.enterprise
        result = oee_report(store, historian, plant, ent, scope, lo, hi, by=by)
    finally:
        historian.close()
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    rows = [{"group": g["label"], **_oee_cols(g)} for g in result["groups"]]
    rows.append({"group": "total", **_oee_cols(result["total"])})
    _print_rows(rows, False)
    for warning in result["total"]["warnings"][:20]:
        typer.echo(f"warning: {warning}", err=True)


def _oee_cols(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "planned_h": round(e["pbt_ms"] / 3_600_000, 2),
        "running_h": round(e["apt_ms"] / 3_600_000, 2),
        "produced": e["produced"],
        "good": e["good"],
        "A": _pct(e["availability"]),
        "P": _pct(e["performance"]),
        "Q": _pct(e["quality"]),
        "OEE": _pct(e["oee"]),
    }


@plant_app.command("energy")
@guarded
def plant_energy(
    scope: Annotated[str, typer.Argument(help="Machine, line, area or site prefix ('' = all).")],
    start: Start = None,
    end: End = None,
    bucket: Annotated[str, typer.Option(help="hour, day or shift.")] = "hour",
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Show kWh per bucket, idle/off energy, kWh per good part and CO2."""
    from indunet.plant.report import energy_report

    lo, hi = _plant_range(start, end)
    settings, historian, store, plant = _plant_session(data_dir, db, enterprise)
    try:
        ent = settings.enterprise
        result = energy_report(store, historian, plant, ent, scope, lo, hi, bucket=bucket)
    finally:
        historian.close()
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    rows = [
        {
            "bucket": b["label"] or _iso(b["start_ms"]),
            "kwh": round(b["kwh"], 3),
            "idle_kwh": round(b["idle_kwh"], 3),
            "off_kwh": round(b["off_kwh"], 3),
            "kwh_per_good_part": "-"
            if b["kwh_per_good_part"] is None
            else round(b["kwh_per_good_part"], 4),
            "co2_kg": round(b["co2_kg"], 3),
        }
        for b in result["buckets"]
    ]
    t = result["total"]
    rows.append(
        {
            "bucket": "total",
            "kwh": round(t["kwh"], 3),
            "idle_kwh": round(t["idle_kwh"], 3),
            "off_kwh": round(t["off_kwh"], 3),
            "kwh_per_good_part": "-"
            if t["kwh_per_good_part"] is None
            else round(t["kwh_per_good_part"], 4),
            "co2_kg": round(t["co2_kg"], 3),
        }
    )
    _print_rows(rows, False)


@plant_app.command("learn-thresholds")
@guarded
def plant_learn_thresholds(
    machine: Annotated[str, typer.Argument(help="Machine id site/area/line/machine.")],
    start: Annotated[
        str | None, typer.Option(help="Epoch ms or RFC 3339 (default: end - 7 days).")
    ] = None,
    end: End = None,
    tag: Annotated[
        str | None, typer.Option(help="Power tag when the machine is not configured yet.")
    ] = None,
    min_dwell_s: Annotated[float, typer.Option(min=0, help="Minimum dwell to propose.")] = 0.0,
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
    as_json: Json = False,
) -> None:
    """Propose off/idle/running thresholds from the power history, as a TOML snippet."""
    from indunet.plant.config import MachineConfig
    from indunet.plant.states import learn_thresholds
    from indunet.plant.watch import power_points

    hi = _time(end, int(time.time() * 1000), "--end")
    lo = _time(start, hi - 7 * 86_400_000, "--start")
    if hi <= lo:
        raise DataError(f"--end ({_iso(hi)}) must be after --start ({_iso(lo)})")
    settings, historian, _, plant = _plant_session(data_dir, db, enterprise)
    try:
        machine = machine.strip("/")
        try:
            cfg = plant.machine(machine)
            if tag is not None:
                cfg = cfg.model_copy(update={"power_tag": tag})
        except DataError:
            if tag is None:
                raise DataError(
                    f"machine {machine!r} is not configured; name its power tag with --tag"
                ) from None
            cfg = MachineConfig(id=machine, power_tag=tag)
        ts, v = power_points(historian, settings.enterprise, cfg, lo, hi)
    finally:
        historian.close()
    if not len(ts):
        raise DataError(
            f"{cfg.id}/{cfg.power_tag}: no power data between {_iso(lo)} and {_iso(hi)}"
        )
    proposal = learn_thresholds(v, min_dwell_s=min_dwell_s, machine=cfg.id)
    th = proposal.thresholds
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "machine": cfg.id,
                    "samples": len(ts),
                    "thresholds": th.model_dump(),
                    "centres": proposal.centres,
                    "shares": proposal.shares,
                    "note": proposal.note,
                }
            )
        )
        return
    typer.echo(f"# {proposal.note}; {len(ts)} samples, cluster centres {proposal.centres}")
    typer.echo("[[plant.machines]]")
    typer.echo(f'id = "{cfg.id}"')
    typer.echo(f'power_tag = "{cfg.power_tag}"')
    typer.echo(f'power_unit = "{cfg.power_unit}"')
    typer.echo(
        f"thresholds = {{ off_below = {th.off_below:.6g}, running_above = {th.running_above:.6g}, "
        f"hysteresis = {th.hysteresis:.6g}, min_dwell_s = {th.min_dwell_s:g} }}"
    )


# ---------------------------------------------------------------------------- dock
dock_app = typer.Typer(
    help="Supply–demand docking: allocate stock and spare capacity to shortages.",
    no_args_is_help=True,
)
app.add_typer(dock_app, name="dock")


def _problem_file(path: Path):
    from indunet.docking.problem import load_problem

    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not valid JSON: {exc}") from exc
    return load_problem(doc)


@dock_app.command("solve")
@guarded
def dock_solve(
    problem_path: Annotated[Path, typer.Argument(help="PROBLEM.json: requests, offers, lanes.")],
    objective: Annotated[
        str, typer.Option(help="cost (least cost + penalties) or fair (max-min fill, then cost).")
    ] = "cost",
    as_json: Json = False,
) -> None:
    """Allocate offers to requests and explain every unmet quantity."""
    from indunet.docking.solver import SolverError, solve

    if objective not in {"cost", "fair"}:
        raise DataError(f"--objective {objective!r}: use cost or fair")
    problem = _problem_file(problem_path)
    try:
        result = solve(problem, objective).as_dict()
    except SolverError as exc:
        raise DataError(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result))
        return
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(
        f"total cost {result['total_cost']:g} (transport {result['transport_cost']:g}, "
        f"unmet penalties {result['penalty_cost']:g}, conversions {result['conversion_cost']:g}); "
        f"lowest fill rate {result['min_fill_rate']}"
    )
    _print_rows(result["allocations"], False)
    for c in result["conversions"]:
        typer.echo(
            f"convert {c['offer']} on day {c['day']} (producing from {c['producing_from_day']})"
        )
    for u in result["unmet"]:
        typer.echo(f"unmet {u['request']}: {u['quantity']:g} — {'; '.join(u['reasons'])}")


@dock_app.command("rank")
@guarded
def dock_rank(
    problem_path: Annotated[Path, typer.Argument(help="PROBLEM.json with requests and offers.")],
    request_id: Annotated[str, typer.Option("--request", help="The request to find offers for.")],
    top: Annotated[int, typer.Option(min=1, max=1000, help="How many candidates.")] = 10,
    as_json: Json = False,
) -> None:
    """Rank candidate offers for one request (item match, distance, lead time, live status)."""
    from indunet.docking.ranking import OfferIndex

    problem = _problem_file(problem_path)
    wanted = next((r for r in problem.requests if r.id == request_id), None)
    if wanted is None:
        raise DataError(f"--request {request_id!r} is not in {problem_path.name}")
    _print_rows(OfferIndex.build(problem.offers).rank(wanted, top=top), as_json)


@dock_app.command("transfer")
@guarded
def dock_transfer(
    path: Annotated[Path, typer.Argument(help="FILE.json: enterprises and regions' offers.")],
    top: Annotated[int, typer.Option(min=1, max=100, help="Regions per enterprise.")] = 5,
    as_json: Json = False,
) -> None:
    """Match enterprises wanting to move or add capacity with regions (transparent score)."""
    from indunet.docking.transfer import WEIGHTS, load_transfer, match_transfer

    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not valid JSON: {exc}") from exc
    rows = match_transfer(*load_transfer(doc), top=top)
    if as_json:
        typer.echo(json.dumps({"weights": WEIGHTS, "rows": rows}))
        return
    for m in rows:
        typer.echo(f"{m['enterprise']} ({m['industry']}, wants to {m['wants']} capacity):")
        for c in m["candidates"]:
            parts = " ".join(f"{k} {v:.2f}" for k, v in c["components"].items())
            note = "fits" if c["fits"] else "; ".join(c["shortfalls"])
            typer.echo(f"  {c['region']}: score {c['score']:.3f} ({parts}) — {note}")


# ---------------------------------------------------------------------------- chain
chain_app = typer.Typer(
    help="Supply-chain resilience: stuck points, disruptions, TTS/TTR, carbon.",
    no_args_is_help=True,
)
app.add_typer(chain_app, name="chain")
NetworkArg = Annotated[
    Path, typer.Argument(help="NETWORK.json, or a CSV bundle directory (nodes.csv, products.csv…).")
]


def _chain_graph(path: Path):
    from indunet.chain.graph import build_supply_graph
    from indunet.chain.network import load_network

    network = load_network(path)
    for warning in network.warnings[:20]:
        typer.echo(f"warning: {warning}", err=True)
    return build_supply_graph(network)


@chain_app.command("resilience")
@guarded
def chain_resilience(
    network: NetworkArg,
    down: Annotated[
        list[str] | None, typer.Option("--down", help="Site already down (repeatable).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Print TTS, TTR, performance impact, REI and at-risk for every site (HiGHS LPs)."""
    from indunet.chain.resilience import resilience_table

    table = resilience_table(_chain_graph(network), down=down or [])
    for warning in table["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        typer.echo(json.dumps({"nodes": table["nodes"]}))
    else:
        _print_rows(table["nodes"], False)


@chain_app.command("stuck-points")
@guarded
def chain_stuck_points(
    network: NetworkArg,
    limit: Annotated[int, typer.Option(min=1, help="Entries to show.")] = 50,
    as_json: Json = False,
) -> None:
    """Print the ranked stuck-point list: critical sites, single sources, concentration."""
    from indunet.chain.graph import stuck_points

    rows = stuck_points(_chain_graph(network), limit=limit)
    if as_json:
        typer.echo(json.dumps({"stuck_points": rows}))
        return
    for row in rows:
        typer.echo(f"{row['rank']:>3}. [{row['kind']}] {row['reason']}")


@chain_app.command("disrupt")
@guarded
def chain_disrupt(
    network: NetworkArg,
    weeks: Annotated[float, typer.Option(help="How long the outage lasts, in weeks.")],
    region: Annotated[str | None, typer.Option(help="Region that stops.")] = None,
    site: Annotated[list[str] | None, typer.Option(help="Site that stops (repeatable).")] = None,
    item: Annotated[str | None, typer.Option(help="Item whose makers all stop.")] = None,
    name: Annotated[str, typer.Option(help="Scenario name.")] = "",
    as_json: Json = False,
) -> None:
    """Run "region R / sites / item stops for W weeks": products hit, time-to-impact, losses."""
    from indunet.chain.disruption import parse_scenario, run_scenario

    scenario = parse_scenario(
        {"name": name, "region": region, "sites": site or [], "item": item, "weeks": weeks}
    )
    result = run_scenario(_chain_graph(network), scenario)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['label']}: {result['stopped_sites']} sites stopped, "
        f"{result['products_hit']} products hit, lost demand {result['lost_demand']:g} "
        f"(margin {result['lost_margin']:g})"
    )
    _print_rows([r for r in result["products"] if r["hit"]], False)


@chain_app.command("carbon")
@guarded
def chain_carbon(network: NetworkArg, as_json: Json = False) -> None:
    """Print kg CO2 per unit of each item (per maker) and of each product."""
    from indunet.chain.carbon import carbon_report

    report = carbon_report(_chain_graph(network))
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_rows(
        [
            {
                "item": r["item"],
                "source": s["id"],
                "region": s["region"],
                "kg_co2": s["kg_co2_per_unit"],
            }
            for r in report["items"]
            for s in r["sources"]
        ],
        False,
    )


@chain_app.command("import")
@guarded
def chain_import(
    network: NetworkArg,
    name: Annotated[str, typer.Option(help="Name to store the network under.")],
    data_dir: DataDir = None,
    db: Db = None,
    enterprise: Enterprise = None,
) -> None:
    """Validate a network and store it for the enterprise (API and pages read it from there)."""
    from indunet.chain.network import load_network
    from indunet.chain.store import ChainStore

    parsed = load_network(network)
    settings = _settings(data_dir, db, enterprise)
    historian = _open(settings)
    try:
        ChainStore(historian).save_network(
            settings.enterprise, name, parsed, now_ms=int(time.time() * 1000)
        )
    finally:
        historian.close()
    typer.echo(
        f"stored network {name!r}: {len(parsed.nodes)} sites, {len(parsed.products)} products"
    )


# ---------------------------------------------------------------------------- region
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


# ---------------------------------------------------------------------------- edge agent
edge_app = typer.Typer(
    help="Edge agent: read OPC UA / Modbus devices, buffer, publish to MQTT.", no_args_is_help=True
)
app.add_typer(edge_app, name="edge")
EdgeConfigOpt = Annotated[Path, typer.Option("--config", help="The edge.toml file.")]


@edge_app.command("run")
@guarded
def edge_run(config: EdgeConfigOpt = Path("edge.toml")) -> None:
    """Run the edge agent until Ctrl-C."""
    import logging

    from indunet.edge.config import load_edge_config
    from indunet.edge.service import run_agent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_edge_config(config)
    for p in cfg.problems:
        typer.echo(f"warning: {p.message}", err=True)
    if not cfg.devices:
        raise ConfigError(f"{config}: no device can run")
    typer.echo(f"edge agent: {len(cfg.devices)} device(s), publishing to {cfg.broker.url}")
    run_agent(cfg)


@edge_app.command("check")
@guarded
def edge_check(config: EdgeConfigOpt = Path("edge.toml"), as_json: Json = False) -> None:
    """Validate the config, connect once and print each tag's value, quality and latency."""
    from indunet.edge.config import load_edge_config
    from indunet.edge.service import check_devices

    cfg = load_edge_config(config)
    rows = check_devices(cfg)
    _print_rows(rows, as_json)
    if any(r["quality"] != "GOOD" for r in rows):
        raise typer.Exit(2 if cfg.problems else 1)


@edge_app.command("browse")
@guarded
def edge_browse(
    endpoint: Annotated[str, typer.Argument(help="opc.tcp://host:port/path")],
    out: Annotated[Path | None, typer.Option("--out", help="Write a starter edge.toml.")] = None,
    root: Annotated[str, typer.Option(help="Node to start at.")] = "i=85",
    machine: Annotated[str, typer.Option(help="Machine path for the starter config.")] = (
        "site/area/line/plc"
    ),
) -> None:
    """Browse an OPC UA server's variables and write a starter config."""
    from indunet.edge.service import browse_to_config

    t0 = time.perf_counter()
    count, text = browse_to_config(endpoint, out, root, machine)
    took = time.perf_counter() - t0
    if out is None:
        typer.echo(text)
    typer.echo(f"{count} variables browsed in {took:.2f} s", err=True)


@edge_app.command("status")
@guarded
def edge_status(config: EdgeConfigOpt = Path("edge.toml"), as_json: Json = False) -> None:
    """Show each device's health and the buffer of a running agent."""
    from indunet.edge.config import load_edge_config
    from indunet.edge.service import read_status

    status = read_status(load_edge_config(config))
    if as_json:
        typer.echo(json.dumps(status))
        return
    rows = [
        {
            k: d.get(k)
            for k in (
                "device",
                "machine",
                "protocol",
                "connected",
                "errors",
                "last_good_ms",
                "last_error",
            )
        }
        for d in status["devices"]
    ]
    _print_rows(rows, False)
    b = status["buffer"]
    typer.echo(
        f"buffer: {b['rows']} rows, {b['fill']:.1%} full, {b['dropped']} dropped; "
        f"publisher connected: {status['publisher']['connected']}"
    )


# ---------------------------------------------------------------------------- users / keys
users_app = typer.Typer(
    help="Accounts: users and their roles per enterprise (run while the server is stopped "
    "when it uses the embedded DuckDB file).",
    no_args_is_help=True,
)
keys_app = typer.Typer(
    help="API keys for programs and device keys for ingest; secrets are shown once.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
RoleOpt = Annotated[str, typer.Option("--role", help="viewer, operator, admin (or chain).")]
SiteOpt = Annotated[str | None, typer.Option("--site", help="Limit the grant to one site.")]


def _auth_store(data_dir: Path | None, db: str | None):
    from indunet.auth.store import AuthStore

    historian = _open(_settings(data_dir, db))
    return historian, AuthStore(historian)


def _role(role: str) -> str:
    from indunet.auth.model import Role

    if role.strip().lower() == "chain":
        return "chain"
    try:
        return Role.parse(role).name
    except ValueError as exc:
        raise DataError(f"option --role: {exc}") from exc


@users_app.command("add")
@guarded
def users_add(
    name: Annotated[str, typer.Argument(help="User name.")],
    enterprise: Annotated[str, typer.Option("--enterprise", help="Enterprise (tenant).")],
    role: RoleOpt = "viewer",
    site: SiteOpt = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDir = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a user with a role in an enterprise (a random password is printed if none given)."""
    import secrets

    role = _role(role)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    generated = password is None
    if generated:
        password = secrets.token_urlsafe(12)
    historian, store = _auth_store(data_dir, db)
    try:
        store.add_user(name, password, now_ms=int(time.time() * 1000))
        store.grant(name, enterprise, role, site)
    finally:
        historian.close()
    out = {"name": name, "enterprise": enterprise, "role": role, "site": site}
    if generated:
        out["password"] = password
    if as_json:
        typer.echo(json.dumps(out))
        return
    typer.echo(f"user {name}: {role} of {enterprise}" + (f", site {site}" if site else ""))
    if generated:
        typer.echo(f"password (shown once): {password}")


@users_app.command("grant")
@guarded
def users_grant(
    name: Annotated[str, typer.Argument(help="User name.")],
    enterprise: Annotated[str, typer.Option("--enterprise", help="Enterprise (tenant).")] = "*",
    role: RoleOpt = "viewer",
    site: SiteOpt = None,
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Give a user a role in an enterprise (replacing any), or --role chain (aggregates only)."""
    role = _role(role)
    if role != "chain" and enterprise == "*":
        raise DataError("option --enterprise is needed for the viewer, operator and admin roles")
    historian, store = _auth_store(data_dir, db)
    try:
        store.grant(name, enterprise, role, site)
    finally:
        historian.close()
    where = "every enterprise's aggregates" if role == "chain" else enterprise
    typer.echo(f"user {name}: {role} of {where}")


@users_app.command("list")
@guarded
def users_list(
    enterprise: Enterprise = None, data_dir: DataDir = None, db: Db = None, as_json: Json = False
) -> None:
    """List users (of one enterprise, or all) with their grants."""
    historian, store = _auth_store(data_dir, db)
    try:
        users = store.users(enterprise)
    finally:
        historian.close()
    rows = [
        {
            "name": u["name"],
            "disabled": u["disabled"],
            "grants": ", ".join(
                f"{g['role']}@{g['enterprise']}" + (f"/{g['site']}" if g["site"] else "")
                for g in u["grants"]
            ),
        }
        for u in users
    ]
    _print_rows(rows, as_json)


@users_app.command("disable")
@guarded
def users_disable(
    name: Annotated[str, typer.Argument(help="User name.")],
    enable: Annotated[bool, typer.Option("--enable", help="Enable the user again.")] = False,
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Disable a user (their sessions end at once), or enable them again."""
    historian, store = _auth_store(data_dir, db)
    try:
        store.set_disabled(name, not enable)
    finally:
        historian.close()
    typer.echo(f"user {name}: {'enabled' if enable else 'disabled'}")


@keys_app.command("create")
@guarded
def keys_create(
    enterprise: Annotated[str, typer.Option("--enterprise", help="Enterprise (tenant).")] = "*",
    role: RoleOpt = "viewer",
    device: Annotated[
        bool, typer.Option("--device", help="A device key: ingest into the enterprise only.")
    ] = False,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "",
    data_dir: DataDir = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Issue an API key (Authorization: Bearer) or a device key (X-Device-Key)."""
    role = _role(role)
    if role != "chain" and enterprise == "*":
        raise DataError("option --enterprise is needed for the viewer, operator and admin roles")
    historian, store = _auth_store(data_dir, db)
    try:
        issued = store.create_key(
            enterprise, role, name=name, device=device, now_ms=int(time.time() * 1000)
        )
    finally:
        historian.close()
    header = "X-Device-Key" if device else "Authorization: Bearer"
    if as_json:
        typer.echo(json.dumps({**issued.__dict__, "header": header}))
        return
    typer.echo(f"key {issued.key_id}: {issued.role} of {issued.enterprise}")
    typer.echo(f"secret (shown once; send as {header}): {issued.secret}")


@keys_app.command("list")
@guarded
def keys_list(
    enterprise: Enterprise = None, data_dir: DataDir = None, db: Db = None, as_json: Json = False
) -> None:
    """List keys (never their secrets), with their last use and revocation."""
    historian, store = _auth_store(data_dir, db)
    try:
        rows = store.keys(enterprise)
    finally:
        historian.close()
    _print_rows(rows, as_json)


@keys_app.command("revoke")
@guarded
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from keys list).")],
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Revoke a key at once."""
    historian, store = _auth_store(data_dir, db)
    try:
        if not store.revoke_key(key_id, now_ms=int(time.time() * 1000)):
            raise DataError(f"key {key_id!r} does not exist or is already revoked")
    finally:
        historian.close()
    typer.echo(f"key {key_id}: revoked")


def main() -> None:
    """Run the CLI."""
    app(prog_name="indunet")


if __name__ == "__main__":
    sys.exit(main())
