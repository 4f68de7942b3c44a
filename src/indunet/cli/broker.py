"""`indunet broker …`: configuration for an external MQTT broker (Mosquitto)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indunet.cli.common import app, guarded

broker_app = typer.Typer(
    help="External MQTT broker (Mosquitto) configuration.", no_args_is_help=True
)
app.add_typer(broker_app, name="broker")


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
