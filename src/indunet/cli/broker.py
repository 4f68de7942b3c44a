"""`indunet broker …`: configuration for an external Mosquitto broker."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from indunet.cli.common import app, guarded

broker_app = typer.Typer(
    help="Configure an external MQTT broker (Mosquitto): durability and tenants.",
    no_args_is_help=True,
)
app.add_typer(broker_app, name="broker")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@broker_app.command("acl")
def broker_acl(
    tenants: Annotated[
        Path,
        typer.Argument(
            help="TOML: [ingest] user, [region] user, [enterprises.NAME] sparkplug_groups, "
            "users, uplink_users."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for passwd, acl, credentials.json.")
    ] = Path("broker"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON.")
    ] = False,
) -> None:
    """Write a Mosquitto password file and ACL file confining each enterprise to its topics.

    Passwords of users new to ``credentials.json`` are generated (kept on later runs); use
    ``password_file`` and ``acl_file`` in mosquitto.conf with ``allow_anonymous false``.
    """
    import secrets

    from indunet.connect.broker_acl import acl_text, hash_password, parse_tenants
    from indunet.errors import DataError

    try:
        doc = tomllib.loads(tenants.read_text(encoding="utf-8"))
        spec = parse_tenants(doc)
    except OSError as exc:
        _fail(f"{tenants}: {exc.strerror or exc}")
    except tomllib.TOMLDecodeError as exc:
        _fail(f"{tenants}: not valid TOML: {exc}")
    except DataError as exc:
        _fail(f"{tenants}: {exc}")
    out.mkdir(parents=True, exist_ok=True)
    cred_file = out / "credentials.json"
    known = json.loads(cred_file.read_text()) if cred_file.exists() else {}
    creds = {u: known.get(u) or secrets.token_urlsafe(24) for u in spec.users()}
    old = os.umask(0o077)
    try:
        cred_file.write_text(json.dumps(creds, indent=2) + "\n")
        (out / "passwd").write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in creds.items()))
        (out / "acl").write_text(acl_text(spec))
    finally:
        os.umask(old)
    conf = (
        f"allow_anonymous false\npassword_file {(out / 'passwd').resolve()}\n"
        f"acl_file {(out / 'acl').resolve()}\n"
    )
    (out / "mosquitto-auth.conf").write_text(conf)
    summary = {
        "users": len(creds),
        "enterprises": sorted(spec.enterprises),
        "files": [
            str(out / n) for n in ("passwd", "acl", "credentials.json", "mosquitto-auth.conf")
        ],
    }
    typer.echo(json.dumps(summary) if as_json else f"wrote {', '.join(summary['files'])}")


@broker_app.command("config")
@guarded
def broker_config(
    persistence_dir: Annotated[
        Path, typer.Option("--persistence-dir", help="Where Mosquitto keeps mosquitto.db.")
    ] = Path("/var/lib/mosquitto"),
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (default: print it).")
    ] = None,
    port: Annotated[int, typer.Option(help="Listener port.")] = 1883,
    bind: Annotated[str, typer.Option(help="Listener address.")] = "0.0.0.0",
    max_queued_messages: Annotated[
        int, typer.Option(help="Messages kept per away subscriber (0: no limit).")
    ] = 1_000_000,
    max_queued_bytes: Annotated[
        int, typer.Option(help="Bytes kept per away subscriber (0: no limit).")
    ] = 0,
    max_inflight_messages: Annotated[
        int, typer.Option(help="QoS 1 messages in flight to a subscriber.")
    ] = 20_000,
    session_expiry: Annotated[
        str, typer.Option(help="persistent_client_expiration: how long an away session is kept.")
    ] = "14d",
    password_file: Annotated[Path | None, typer.Option(help="A mosquitto_passwd file.")] = None,
    acl_file: Annotated[Path | None, typer.Option(help="A Mosquitto ACL file.")] = None,
    allow_anonymous: Annotated[
        bool, typer.Option(help="Let clients in without a user name (closed networks only).")
    ] = False,
    user: Annotated[
        str | None, typer.Option(help="Unix user Mosquitto runs as (must own the persistence dir).")
    ] = None,
) -> None:
    """Write a mosquitto.conf for at-least-once delivery: nothing acknowledged lost in a crash."""
    from indunet.connect.mosquitto import MosquittoSettings, render_mosquitto_conf

    text = render_mosquitto_conf(
        MosquittoSettings(
            persistence_dir=persistence_dir,
            port=port,
            bind=bind,
            max_queued_messages=max_queued_messages,
            max_queued_bytes=max_queued_bytes,
            max_inflight_messages=max_inflight_messages,
            persistent_client_expiration=session_expiry,
            allow_anonymous=allow_anonymous,
            password_file=password_file,
            acl_file=acl_file,
            run_as_user=user,
        )
    )
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text)
    typer.echo(f"wrote {out}", err=True)
