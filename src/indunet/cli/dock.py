"""`indunet dock …`: supply–demand docking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from indunet.cli.common import Json, _print_rows, app, guarded
from indunet.errors import DataError

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
