"""The `indunet` command line (Typer). Exit codes: 0 ok, 1 temporary failure, 2 bad input.

One module per command group; importing them (in the order `--help` lists them) registers
their commands on `app`.
"""

from __future__ import annotations

import importlib
import sys

from indunet.cli.common import app

__all__ = ["app", "main"]

GROUPS = ("run", "data", "plant", "dock", "chain", "region", "edge", "broker", "users")
for _group in GROUPS:
    importlib.import_module(f"indunet.cli.{_group}")


def main() -> None:
    """Run the CLI."""
    app(prog_name="indunet")


if __name__ == "__main__":
    sys.exit(main())
