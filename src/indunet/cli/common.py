"""Shared parts of the CLI: the root app, common options and output helpers."""

from __future__ import annotations

import json
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
    rich_markup_mode=None,  # help texts name [sections] of indunet.toml: print them as written
)
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


#: columns holding epoch ms that tables print as ISO 8601 times
TIME_COLUMNS = ("ts", "start_ms", "end_ms", "since_ms", "first_ts", "last_ts")


def readable_rows(
    rows: list[dict[str, Any]], timezone: str = "UTC", *, epoch: bool = False
) -> list[dict[str, Any]]:
    """Return rows for a table: times as ISO 8601 in ``timezone`` (unless ``epoch``), no None.

    Columns empty in every row (``text`` of a numeric tag) are left out; a missing value in
    a kept column prints as an empty cell.
    """
    from zoneinfo import ZoneInfo

    if not rows:
        return rows
    zone = ZoneInfo(timezone)
    keep = [c for c in rows[0] if any(r.get(c) is not None for r in rows)]
    out = []
    for r in rows:
        row: dict[str, Any] = {}
        for c in keep:
            v = r.get(c)
            if v is None:
                v = ""
            elif c in TIME_COLUMNS and not epoch and isinstance(v, int):
                v = (
                    datetime.fromtimestamp(v / 1000, UTC)
                    .astimezone(zone)
                    .isoformat(timespec="milliseconds")
                )
            row[c] = v
        out.append(row)
    return out


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
