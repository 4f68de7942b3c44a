"""Start the platform: `serve`, `demo` and `simulate`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from indunet.cli.common import DataDir, Db, Enterprise, _open, app, guarded
from indunet.cli.plant import _start_alarms, _start_plant_watcher, _start_reports, _start_rul
from indunet.cli.region import _region_today
from indunet.config import Settings, load_settings
from indunet.errors import ConfigError, TemporaryError


def mqtt_ingest(historian: Any, url: str, settings: Settings, **options: Any) -> Any:
    """Return an `MqttIngest` on ``url`` with the settings' Sparkplug host id and mapping."""
    from indunet.connect.mqtt import MqttIngest

    sp = settings.sparkplug
    return MqttIngest(
        historian,
        url,
        max_future_s=settings.max_future_s,
        payload_limit=settings.deadletter_payload_bytes,
        sparkplug=sp.mapping(settings.enterprise),
        host_id=sp.host_id,
        clean_start=sp.clean_session,
        **options,
    )


@app.command()
@guarded
def serve(
    data_dir: DataDir = None,
    db: Db = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
    mqtt_url: Annotated[
        list[str] | None,
        typer.Option(
            "--mqtt-url",
            help="Ingest indunet/v1/# from this broker, mqtt[s]://user:pass@host:port; repeat "
            "it to host Sparkplug on several brokers (a STATE on each).",
        ),
    ] = None,
    mqtt_client_id: Annotated[
        str, typer.Option("--mqtt-client-id", help="Client id of the persistent MQTT session.")
    ] = "indunet-ingest",
    sparkplug_host_id: Annotated[
        str | None,
        typer.Option(
            "--sparkplug-host-id",
            help="Sparkplug host id (STATE on spBv1.0/STATE/ID); default: sparkplug.host_id.",
        ),
    ] = None,
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
    decode_workers: Annotated[
        int | None,
        typer.Option(
            "--decode-workers",
            min=0,
            max=32,
            help="Decode the JSON tree in N worker processes on a shared subscription, one "
            "writer here ([ingest] decode_workers; 0: in this process).",
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
    uplink: Annotated[
        str | None,
        typer.Option(
            "--uplink",
            help="Send this plant's aggregates to a regional broker, mqtt[s]://user:pass@host:port "
            "([uplink] url; docs/federation.md).",
        ),
    ] = None,
    uplink_enterprise: Annotated[
        str | None,
        typer.Option(
            "--uplink-enterprise",
            help="The enterprise's id in the regional registry (default: the plant's enterprise).",
        ),
    ] = None,
    federation_url: Annotated[
        str | None,
        typer.Option(
            "--federation-url",
            help="Regional instance: consume plants' uplinks (indunet/uplink/v1/#) from this "
            "broker into the resumption monitor ([federation] url).",
        ),
    ] = None,
    federation_share: Annotated[
        str | None,
        typer.Option(
            "--federation-share",
            help="Regional worker: consume the uplinks on an MQTT 5 shared subscription of this "
            "group, so several workers split them ([federation] shared_group; give each "
            "worker its own [federation] client_id).",
        ),
    ] = None,
    federation_client_id: Annotated[
        str | None,
        typer.Option(
            "--federation-client-id",
            help="The regional consumer's persistent MQTT session id ([federation] client_id).",
        ),
    ] = None,
) -> None:
    """Run the HTTP API on the historian, and MQTT ingest when --mqtt-url is given."""
    import logging

    import uvicorn

    from indunet.api.app import create_app
    from indunet.store import open_historian

    # one line per event: our INFO (connected, back after an outage), the libraries' WARNING
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("indunet").setLevel(logging.INFO)
    settings = load_settings(data_dir=data_dir, db=db, host=host, port=port)
    _federation_options(
        settings, uplink, uplink_enterprise, federation_url, federation_share, federation_client_id
    )
    if sparkplug_host_id is not None:
        from indunet.connect.mqtt import check_host_id

        settings.sparkplug.host_id = check_host_id(sparkplug_host_id)
    # a plant's boot order is not ours: a database that is not up yet is waited for (/ready 503)
    if decode_workers is not None:
        settings.ingest.decode_workers = decode_workers
    workers_count = settings.ingest.decode_workers
    historian = open_historian(settings, wait=True)
    ingests: list[Any] = []  # each with its decode workers (a DecodeWorkers) after it, if any
    try:
        for url in mqtt_url or []:  # one host connection per broker, each with its own STATE
            from indunet.connect.mqtt import with_credentials

            full_url = with_credentials(url, username, password, tls)
            if workers_count:  # the JSON tree in worker processes, Sparkplug stays here
                from indunet.connect.decode_workers import DecodeWorkers

                workers = DecodeWorkers(
                    historian,
                    full_url,
                    count=workers_count,
                    client_id=mqtt_client_id,
                    shared_group=mqtt_shared_group,
                    max_future_s=settings.max_future_s,
                    payload_limit=settings.deadletter_payload_bytes,
                )
                workers.start()
                ingests.append(workers)
                # their first subscription: a shared one gets nothing published before it
                if not workers.wait_subscribed(15):
                    typer.echo("decode workers not subscribed yet (broker down?); they keep trying")
                typer.echo(
                    f"ingesting {workers.topic} in {workers_count} decode workers "
                    f"({', '.join(workers.client_ids())})"
                )
            ingest = mqtt_ingest(
                historian,
                full_url,
                settings,
                client_id=mqtt_client_id,
                shared_group=mqtt_shared_group,
                json_topics=not workers_count,
                sparkplug_groups=None
                if sparkplug_groups is None
                else [g.strip() for g in sparkplug_groups.split(",") if g.strip()],
            )
            ingest.start(wait=True)  # a broker that is not up yet is waited for, too
            ingests.append(ingest)
            typer.echo(f"ingesting {ingest.topic} from {ingest.host}:{ingest.port}")
    except BaseException:
        for ingest in ingests:
            ingest.stop()
        historian.close()
        raise
    ingest = next((i for i in ingests if hasattr(i, "state_topic")), None)  # the host ingest
    typer.echo(f"indunet serving on http://{settings.host}:{settings.port} ({historian.backend})")
    running: list[Any] = []  # the plant watcher, the alarm service and reports, once started
    stopping = threading.Event()
    starter: threading.Thread | None = None
    app: Any = None

    def answers() -> bool:
        try:
            historian.tags(settings.enterprise, "", limit=1)  # the /ready probe
        except TemporaryError:
            return False
        return True

    def start_analytics() -> None:
        """Start what needs the database at start-up, as soon as it answers."""
        while not stopping.is_set() and not answers():
            stopping.wait(0.5)
        if stopping.is_set():
            return
        # when machines are configured / alarm rules are / reports or Andon are
        running.append(_start_plant_watcher(app, historian, settings))
        running.append(_start_alarms(app, historian, settings))
        running.append(_start_rul(app, historian, settings))  # after: it feeds the alarms
        running.append(_start_reports(app, historian, settings))
        running.append(_start_uplink(app, historian, settings))  # last: it reads the watcher
        running.append(_start_federation(app, historian, settings))

    compactor: Any = None
    try:
        compactor = _start_compactor(historian, settings)
        app = create_app(settings, historian)
        app.state.mqtt = ingest
        app.state.compactor = compactor
        if answers():
            start_analytics()  # before the app serves, as always
        else:  # once the database answers (the app's start-up is long done by then)
            starter = threading.Thread(target=start_analytics, name="start-analytics", daemon=True)
            starter.start()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,  # nothing is logged at "warning"; off, its arguments are not built
            timeout_graceful_shutdown=5,  # open event streams (SSE) must not block a stop
            proxy_headers=False,  # X-Forwarded-For: only from auth.trusted_proxies (auth.web)
            server_header=False,
        )
    finally:
        stopping.set()
        if starter is not None:
            starter.join(timeout=30)
        sender = getattr(getattr(app, "state", None), "report_webhooks", None)
        if sender is not None:
            sender.stop()
        for service in reversed(running):  # reports, the alarm service, then the watcher
            if service:
                service.stop()
        for ingest in ingests:
            ingest.stop()
        if compactor is not None:
            compactor.stop()
        historian.close()


def _start_compactor(historian: Any, settings: Settings) -> Any:
    """Start compacting closed hours in the background (the embedded DuckDB); else None."""
    if not settings.compaction.enabled or historian.backend != "duckdb":
        return None
    from indunet.store.compaction import HourCompactor

    compactor = HourCompactor(historian, settings.compaction)
    compactor.start()
    return compactor


def _federation_options(
    settings: Settings,
    uplink: str | None,
    enterprise: str | None,
    federation_url: str | None,
    share: str | None = None,
    client_id: str | None = None,
) -> None:
    """Apply --uplink, --uplink-enterprise, --federation-url/-share/-client-id (checked)."""
    from indunet.federation.settings import FederationSettings, UplinkSettings

    up = settings.uplink.model_dump()
    up.update({k: v for k, v in (("url", uplink), ("enterprise", enterprise)) if v is not None})
    fed = settings.federation.model_dump()
    if federation_url is not None:
        fed["url"] = federation_url
    if share is not None:
        fed["shared_group"] = share
    if client_id is not None:
        fed["client_id"] = client_id
    try:
        settings.uplink = UplinkSettings.model_validate(up)
        settings.federation = FederationSettings.model_validate(fed)
    except ValueError as exc:
        raise ConfigError(f"uplink/federation option: {exc}") from exc
    if settings.uplink.enterprise and not settings.uplink.url:
        raise ConfigError("--uplink-enterprise needs --uplink (or [uplink] url)")


def _start_uplink(app: Any, historian: Any, settings: Settings) -> Any:
    """Start the plant's uplink when [uplink] url (or --uplink) is set; else None."""
    if not settings.uplink.url:
        return None
    from indunet.federation.uplink import PlantUplink

    service = PlantUplink(historian, settings, watcher=getattr(app.state, "plant_watcher", None))
    service.start()
    app.state.uplink = service
    typer.echo(
        f"uplink: {service.uplink_enterprise}'s aggregates to {settings.uplink.url.split('@')[-1]} "
        f"every {settings.uplink.interval_s:g} s"
    )
    return service


def _start_federation(app: Any, historian: Any, settings: Settings) -> Any:
    """Start the regional uplink consumer when [federation] url (or --federation-url) is set."""
    if not settings.federation.url:
        return None
    from indunet.api.routes.region import region_store_of
    from indunet.chain.live import start_chain_live
    from indunet.federation.regional import UplinkConsumer

    consumer = UplinkConsumer(historian, settings, lambda: region_store_of(app))
    consumer.start()
    app.state.uplink_consumer = consumer
    # the chain's sites follow the uplinked plants' machine states (woken by each change)
    chain_live = start_chain_live(app, historian, settings)
    typer.echo(f"federation: consuming {consumer.topic} into the resumption monitor and chain")

    class _Both:
        def stop(self) -> None:
            chain_live.stop()
            consumer.stop()

    return _Both()


def _demo_login(historian: Any, enterprise: str, data_dir: Path) -> dict[str, str]:
    """Return the demo user's password and an ingest device key, the same on every restart.

    They are kept in ``demo-login.json`` (mode 600) in the data dir; when the file is missing or
    no longer matches (a user reset the password, revoked the key), fresh ones are made.
    """
    import secrets

    from indunet.auth.store import AuthStore

    store = AuthStore(historian)
    kept = data_dir / "demo-login.json"
    now = int(time.time() * 1000)
    try:
        login = json.loads(kept.read_text())
        key_id = str(login["device_key"]).split("_")[1]
        key = store.key(key_id)
        if (
            store.check_password("demo", str(login["password"]))
            and key is not None
            and key["revoked_ms"] is None
        ):
            return {k: str(login[k]) for k in ("user", "password", "device_key")}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        pass
    password = secrets.token_urlsafe(12)
    if store.user("demo") is None:
        store.add_user("demo", password, now_ms=now)
    else:
        store.set_password("demo", password)
    store.grant("demo", enterprise, "admin")
    store.grant("demo", "*", "chain")  # the regional monitor's aggregates too
    device = store.create_key(enterprise, "operator", name="demo ingest", device=True, now_ms=now)
    login = {"user": "demo", "password": password, "device_key": device.secret}
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.touch(mode=0o600)
    kept.write_text(json.dumps(login))
    return login


def _demo_broker_logins(
    enterprise: str, data_dir: Path, federated: list[str] | None = None
) -> tuple[Any, dict[str, str]]:
    """Return the demo broker's tenant spec and its users' passwords, the same on every restart.

    One enterprise (the demo's): the ingest reads everything, the simulator and the edge agent
    write only under ``indunet/v1/{enterprise}/#``. With ``federated`` enterprises (``demo
    --federation``), each gets an uplink user ``{name}-uplink`` (its uplink topics only) and the
    region's consumer ``indunet-region`` reads them. The passwords are kept in
    ``demo-broker.json`` (mode 600) in the data dir; fresh ones when it is missing or unfit.
    """
    import secrets

    from indunet.connect.broker_acl import parse_tenants

    doc: dict[str, Any] = {
        "ingest": {"user": "indunet-ingest"},
        "enterprises": {enterprise: {"users": [f"{enterprise}-sim", f"{enterprise}-edge"]}},
    }
    if federated:
        doc["region"] = {"user": "indunet-region"}
        for name in federated:
            doc["enterprises"][name] = {"uplink_users": [f"{name}-uplink"]}
    spec = parse_tenants(doc)
    kept = data_dir / "demo-broker.json"
    try:
        logins = json.loads(kept.read_text())
        if (
            isinstance(logins, dict)
            and sorted(logins) == sorted(spec.users())
            and all(isinstance(p, str) and len(p) >= 16 for p in logins.values())
        ):
            return spec, logins
    except (OSError, ValueError, TypeError):
        pass
    logins = {user: secrets.token_urlsafe(18) for user in spec.users()}
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.touch(mode=0o600)
    kept.chmod(0o600)
    kept.write_text(json.dumps(logins))
    return spec, logins


@app.command()
@guarded
def demo(
    data_dir: DataDir = None,
    db: Db = None,
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
    federation: Annotated[
        bool,
        typer.Option(
            "--federation/--no-federation",
            help="Also run three small plant instances (own DuckDB each) that uplink their "
            "figures live to this instance as their region (docs/federation.md).",
        ),
    ] = False,
) -> None:
    """Run the whole platform on embedded defaults: broker, simulated plants, ingest, API."""
    import logging
    import secrets
    import signal
    import tempfile
    import threading

    import uvicorn

    from indunet.api.app import create_app
    from indunet.connect.broker import EmbeddedBroker
    from indunet.connect.broker_acl import hash_password
    from indunet.connect.mqtt import with_credentials
    from indunet.sim.backfill import backfill_history, backfill_spindles, carry_on_counters
    from indunet.sim.live import PlantSim, build_plants
    from indunet.sim.plant_config import demo_condition, demo_plant_config
    from indunet.sim.publish import SimPublisher
    from indunet.sim.wear import write_training_runs

    if federation and mqtt_url is not None:
        raise ConfigError("--federation runs on the embedded broker: leave out --mqtt-url")
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="indunet-demo-"))
    settings = load_settings(data_dir=data_dir, port=port, db=db)
    _check_port(settings.host, settings.port)
    plants = build_plants(sites, machines, seed)
    # condition monitoring: anomaly monitors, and spindles' RUL learnt from simulated runs to
    # failure (written once into the data dir, where `[[plant.rul]]` runs_dir would point)
    runs_dir = Path(data_dir) / "rul-runs"
    write_training_runs(runs_dir)
    plant_config = demo_condition(demo_plant_config(plants), plants, runs_dir)
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
    # a demo user and an ingest device key, kept across restarts on the same data dir
    login = _demo_login(historian, settings.enterprise, Path(data_dir))
    from indunet.sim.business import load_demo_business  # stock, orders, trucks, sold machines

    load_demo_business(
        historian, settings.enterprise, [m.path for m in plants], now_ms=int(time.time() * 1000)
    )
    from indunet.sim.chain_demo import load_demo_chain  # the national chain, Hubei scenario

    load_demo_chain(historian, settings.enterprise)
    from indunet.sim.docking_demo import load_docking_demo  # the mask shortage on /docking

    load_docking_demo(historian, settings.enterprise, now_ms=int(time.time() * 1000))
    # history of the same machines, so their charts and OEE have a past: only what is missing
    # (a restart on a kept data dir fills the gap since it stopped and rewrites nothing)
    if hours:
        backfill_history(
            historian, settings.enterprise, plants, hours=hours, now_ms=int(time.time() * 1000)
        )
    carry_on_counters(historian, settings.enterprise, plants)  # counters never fall back
    # the machining machines' spindles, each worn to its own age, with their life so far
    backfill_spindles(
        historian, settings.enterprise, plants, now_ms=int(time.time() * 1000), history=bool(hours)
    )
    broker = None
    ingest = publisher = alarm_service = watcher = edge_demo = rul_service = None
    nation_loader: threading.Thread | None = None
    chain_live = None  # the supply chain follows the plant and the regional monitor
    uplink_consumer = None
    fed_plants: list[Any] = []
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
        # each client's URL: with its own login on the embedded broker, which confines it to
        # its topics (the same rule as `indunet broker acl`); the given broker's URL otherwise
        client_urls = dict.fromkeys(("ingest", "sim", "edge"), mqtt_url)
        if mqtt_url is None:
            ent = settings.enterprise
            from indunet.sim.federation_demo import DEMO_ENTERPRISES

            federated = sorted(DEMO_ENTERPRISES) if federation else None
            spec, logins = _demo_broker_logins(ent, Path(data_dir), federated)
            broker = EmbeddedBroker(
                tenants=spec, password_hashes={u: hash_password(p) for u, p in logins.items()}
            )
            broker.start()
            mqtt_url = broker.url  # shown: no login in it
            for client, user in (
                ("ingest", spec.ingest_user),
                ("sim", f"{ent}-sim"),
                ("edge", f"{ent}-edge"),
            ):
                client_urls[client] = with_credentials(broker.url, user, logins[user])
        ingest = mqtt_ingest(
            historian,
            client_urls["ingest"],
            settings,
            client_id="indunet-demo-ingest",
            mqtt_version=4 if broker else 5,
        )
        # a few anomaly episodes an hour (current surges, spindle knocks) for the monitors
        sim = PlantSim(plants, seed, anomalies_per_h=DEMO_ANOMALIES_PER_H)
        publisher = SimPublisher(sim, client_urls["sim"], settings.enterprise)
        ingest.start()
        publisher.start()
        if edge:
            from indunet.sim.edge_devices import EdgeDemo

            edge_demo = EdgeDemo(
                client_urls["edge"], settings.enterprise, Path(data_dir) / "edge", command_secret
            ).start()
        app = create_app(settings, historian)
        app.state.mqtt = ingest
        watcher = _start_plant_watcher(app, historian, settings, history_h=max(hours, 1))
        alarm_service = _start_alarms(app, historian, settings, demo_plants=plants)
        rul_service = _start_rul(app, historian, settings)  # after: it feeds the alarms
        if federation and broker is not None:  # plants of their own, uplinking to this region
            from indunet.federation.regional import UplinkConsumer
            from indunet.federation.settings import FederationSettings
            from indunet.sim.federation_demo import start_demo_plants

            settings.federation = FederationSettings(
                url=with_credentials(broker.url, "indunet-region", logins["indunet-region"]),
                client_id="indunet-demo-region",
            )

            def region() -> Any:  # the nation's store once loaded (its loader owns it until then)
                if getattr(app.state, "region_loading", False) or not nation:
                    return None
                return getattr(app.state, "region_store", None)

            uplink_consumer = UplinkConsumer(historian, settings, region)
            uplink_consumer.start()
            app.state.uplink_consumer = uplink_consumer
            fed_plants = start_demo_plants(Path(data_dir), broker.url, logins)
            app.state.fed_plants = fed_plants
        from indunet.chain.live import start_chain_live

        chain_live = start_chain_live(app, historian, settings)  # chain alerts every minute
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                timeout_graceful_shutdown=5,
                proxy_headers=False,  # X-Forwarded-For: only from auth.trusted_proxies
                server_header=False,
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
                    f"    Fleet: machines ranked by remaining useful life (the machining "
                    f"machines' spindles wear out) and anomaly score (now and then a current "
                    f"surge or a spindle knock)\n"
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
                    + f"  data {data_dir} ({historian.backend}), MQTT broker {mqtt_url}"
                    + (
                        f" (tenant logins in {Path(data_dir) / 'demo-broker.json'})\n"
                        if broker
                        else "\n"
                    )
                    + (
                        f"  federation: {len(fed_plants)} plants of their own "
                        f"({', '.join(p.name for p in fed_plants)}; data in "
                        f"{Path(data_dir) / 'plants'}) uplink their figures every 10 s: "
                        f"{url}api/v1/federation/sites\n"
                        if fed_plants
                        else ""
                    )
                    + "Ctrl+C stops everything."
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
        for plant in fed_plants:
            plant.stop()
        if uplink_consumer is not None:
            uplink_consumer.stop()
        if rul_service:
            rul_service.stop()
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


#: anomaly episodes the demo's simulator plays per hour, over all machines
DEMO_ANOMALIES_PER_H = 6.0


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
    plants = getattr(app.state, "fed_plants", None)
    if plants:  # the demo's own plants uplink: the region registers them (docs/federation.md)
        from indunet.sim.federation_demo import register_demo_plants

        try:
            names = register_demo_plants(
                app.state.region_store, plants, getattr(app.state, "uplink_consumer", None)
            )
            typer.echo(f"region: registered the uplinking plants {', '.join(names)}")
        except Exception as exc:  # the demo goes on; the page lists them as unregistered
            typer.echo(f"the demo plants could not be registered: {exc}", err=True)
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
