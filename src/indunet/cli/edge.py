"""`indunet edge …`: the edge agent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from indunet.cli.common import Json, _print_rows, app, guarded
from indunet.errors import ConfigError

edge_app = typer.Typer(
    help="Edge agent: read OPC UA / Modbus devices, buffer, publish to MQTT.", no_args_is_help=True
)
app.add_typer(edge_app, name="edge")
EdgeConfigOpt = Annotated[Path, typer.Option("--config", help="The edge.toml file.")]


@edge_app.command("run")
@guarded
def edge_run(
    config: EdgeConfigOpt = Path("edge.toml"),
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also the protocol libraries' details (debug).")
    ] = False,
) -> None:
    """Run the edge agent until Ctrl-C."""
    from indunet.edge.config import load_edge_config
    from indunet.edge.service import configure_logging, run_agent

    configure_logging(verbose)
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
