"""`indunet chain …`: supply-chain resilience."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

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
