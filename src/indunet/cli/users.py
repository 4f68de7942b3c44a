"""`indunet users …` and `indunet keys …`: sign-in and API keys."""

from __future__ import annotations

import json
import sys
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
from indunet.errors import DataError

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
