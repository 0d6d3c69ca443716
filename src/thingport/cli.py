"""The ``thingport`` command: serve, init, operator commands, and a secret decryption helper.

Operator commands work on the database directly (no server needed); each has ``--json`` output
for scripts. Secrets are printed only where the command exists to show them (a new app's secret).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from thingport.crypto import caller_secret
from thingport.domain.errors import DomainError
from thingport.settings import Settings

T = TypeVar("T")
cli = typer.Typer(help="Thingport: IoT device identity, registry and provisioning.", no_args_is_help=True)
org_cli = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
app_cli = typer.Typer(help="Applications (service accounts: app key + secret).", no_args_is_help=True)
model_cli = typer.Typer(help="Thing models products refer to.", no_args_is_help=True)
key_cli = typer.Typer(help="The master key that encrypts secrets at rest.", no_args_is_help=True)
cli.add_typer(org_cli, name="org")
cli.add_typer(app_cli, name="app")
cli.add_typer(model_cli, name="model")
cli.add_typer(key_cli, name="master-key")
out = Console()
err = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env THINGPORT_DATA_DIR].")]
Config = Annotated[Path | None, typer.Option("--config", help="TOML settings file [env THINGPORT_CONFIG].")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def settings_for(data_dir: Path | None, config: Path | None = None, **overrides: Any) -> Settings:
    try:
        return Settings.load(config, data_dir=data_dir, **overrides)
    except (OSError, ValueError) as exc:  # a missing or bad config file, an unknown or malformed setting
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


@contextmanager
def server_lock(settings: Settings, *, wait: bool) -> Iterator[bool]:
    """Held by a running server; operator commands that must not run beside it test it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            yield True
        except BlockingIOError:
            yield False
    finally:
        os.close(fd)


def run_op(settings: Settings, op: Callable[[Any], Awaitable[T]]) -> T:
    """Run one operation against the services, mapping domain errors to a clear exit."""
    from thingport.app import open_services

    async def go() -> T:
        services = await open_services(settings)
        try:
            return await op(services)
        finally:
            await services.core.db.close()

    try:
        return asyncio.run(go())
    except DomainError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from exc


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        out.print_json(json.dumps(rows))
        return
    # Cells are folded, never cut with an ellipsis, and shown as text (no rich markup).
    table = Table(*(Column(c, overflow="fold") for c in columns))
    for r in rows:
        table.add_row(*(Text(_cell(r.get(c, ""))) for c in columns))
    out.print(table)


def _cell(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def plain(obj: Any) -> dict[str, Any]:
    d = asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else dict(obj)
    return {k: (sorted(p.value for p in v) if isinstance(v, frozenset) else v) for k, v in d.items()}


@cli.command()
def serve(data_dir: DataDir = None, config: Config = None,
          host: Annotated[str | None, typer.Option(help="Listen address [env THINGPORT_HOST].")] = None,
          http_port: Annotated[int | None, typer.Option(help="HTTP port [env THINGPORT_HTTP_PORT].")] = None,
          mqtt_port: Annotated[int | None, typer.Option(
              help="MQTT port of the embedded broker, 0 = off [env THINGPORT_MQTT_PORT].")] = None,
          ) -> None:
    """Run the service (initialises an empty data directory on first start)."""
    import logging

    import uvicorn

    from thingport.app import create_app
    from thingport.server import guard_options

    settings = settings_for(data_dir, config, host=host, http_port=http_port, mqtt_port=mqtt_port)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with server_lock(settings, wait=False) as got:
        if not got and settings.database_url == "":
            err.print(f"[red]error:[/red] another Thingport server uses {settings.data_dir}")
            raise typer.Exit(1)
        uvicorn.run(create_app(settings), host=settings.host, port=settings.http_port,
                    log_level=settings.log_level, access_log=False, **guard_options(settings))


@cli.command()
def init(data_dir: DataDir = None, config: Config = None) -> None:
    """Create the data directory, master key, operator token and database schema."""
    settings = settings_for(data_dir, config)
    run_op(settings, lambda s: asyncio.sleep(0))
    out.print(f"initialised {settings.data_dir} (operator token in {settings.operator_token_file})")


@org_cli.command("create")
def org_create(name: str, org_id: Annotated[str | None, typer.Option("--org-id")] = None,
               data_dir: DataDir = None, as_json: AsJson = False) -> None:
    org = run_op(settings_for(data_dir), lambda s: s.accounts.create_org(name, org_id))
    emit([plain(org)], as_json, ["org_id", "name", "create_time"])


@org_cli.command("list")
def org_list(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    orgs = run_op(settings_for(data_dir), lambda s: s.accounts.list_orgs())
    emit([plain(o) for o in orgs], as_json, ["org_id", "name", "create_time"])


@app_cli.command("create")
def app_create(
    org: Annotated[str, typer.Option("--org", help="Organization id.")],
    name: Annotated[str, typer.Option("--name")],
    permission: Annotated[list[str] | None, typer.Option(
        "--permission", help="device:full, device:read, product:create, product:update, product:delete "
                             "(repeat; default all).")] = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="RSA public key PEM file.")] = None,
    data_dir: DataDir = None, as_json: AsJson = False,
) -> None:
    """Create an application; its secret is shown this once."""
    from thingport.dialects.admin.routes import parse_permissions

    pem = public_key.read_text() if public_key else None
    app = run_op(settings_for(data_dir), lambda s: s.accounts.create_app(
        org, name, parse_permissions(permission) if permission else None, pem))
    row = plain(app)
    row["rsa_public_key"] = bool(pem)
    if as_json:
        emit([row], as_json, [])
        return
    emit([row], False, ["app_key", "org_id", "name", "permissions", "rsa_public_key"])
    # On lines of their own so a narrow terminal cannot cut them; the secret is never shown again.
    typer.echo(f"app key:    {app.app_key}\napp secret: {app.secret}  (shown only this once: store it now)")


@app_cli.command("list")
def app_list(org: Annotated[str | None, typer.Option("--org")] = None, data_dir: DataDir = None,
             as_json: AsJson = False) -> None:
    apps = run_op(settings_for(data_dir), lambda s: s.accounts.list_apps(org))
    rows = [{**{k: v for k, v in plain(a).items() if k != "secret"}, "rsa_public_key": bool(a.rsa_public_key)}
            for a in apps]
    emit(rows, as_json, ["app_key", "org_id", "name", "permissions", "disabled", "rsa_public_key"])


def _app_change(app_key: str, data_dir: Path | None, as_json: bool, op: Callable[[Any], Awaitable[Any]]) -> None:
    app = run_op(settings_for(data_dir), op)
    row = {k: v for k, v in plain(app).items() if k != "secret"}
    row["rsa_public_key"] = bool(app.rsa_public_key)
    emit([row], as_json, ["app_key", "org_id", "name", "permissions", "disabled", "rsa_public_key"])


@app_cli.command("disable")
def app_disable(app_key: str, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    _app_change(app_key, data_dir, as_json, lambda s: s.accounts.set_app_disabled(app_key, True))


@app_cli.command("enable")
def app_enable(app_key: str, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    _app_change(app_key, data_dir, as_json, lambda s: s.accounts.set_app_disabled(app_key, False))


@app_cli.command("set-public-key")
def app_set_public_key(app_key: str, public_key: Path, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    pem = public_key.read_text()
    _app_change(app_key, data_dir, as_json, lambda s: s.accounts.set_app_public_key(app_key, pem))


@model_cli.command("create")
def model_create(org: Annotated[str, typer.Option("--org")], model_id: Annotated[str, typer.Option("--model-id")],
                 name: Annotated[str | None, typer.Option("--name")] = None, data_dir: DataDir = None,
                 as_json: AsJson = False) -> None:
    model = run_op(settings_for(data_dir), lambda s: s.accounts.create_model(org, model_id, name))
    emit([plain(model)], as_json, ["org_id", "model_id", "name"])


@model_cli.command("list")
def model_list(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None, as_json: AsJson = False) -> None:
    models = run_op(settings_for(data_dir), lambda s: s.accounts.list_models(org))
    emit([plain(m) for m in models], as_json, ["org_id", "model_id", "name"])


@key_cli.command("rotate")
def master_key_rotate(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Rotate the master key and re-encrypt every secret. A running server rotates via the admin API."""
    from thingport.services.keys import rotate_master_key

    settings = settings_for(data_dir)
    with server_lock(settings, wait=False) as got:
        if not got:
            err.print("[red]error:[/red] a server is running on this data directory; rotate through it: "
                      "POST /admin/v1/master-key/rotate")
            raise typer.Exit(1)
        kid, count = run_op(settings, lambda s: rotate_master_key(s.core))
    emit([{"key_id": kid, "reencrypted": count}], as_json, ["key_id", "reencrypted"])


@cli.command()
def sim(org_id: Annotated[str, typer.Option("--org", help="Organization the simulated devices belong to.")],
        devices: Annotated[int, typer.Option(help="Directly connected devices.")] = 10,
        gateways: Annotated[int, typer.Option(help="Gateways, each logging its sub-devices in.")] = 0,
        subs: Annotated[int, typer.Option("--subs-per-gateway", help="Sub-devices per gateway.")] = 0,
        mqtt_host: Annotated[str, typer.Option(help="Broker host.")] = "127.0.0.1",
        mqtt_port: Annotated[int | None, typer.Option(help="Broker port [default: the mqtt_port setting].")] = None,
        duration: Annotated[float, typer.Option(help="Seconds to stay connected; 0 = until Ctrl-C.")] = 0,
        concurrency: Annotated[int, typer.Option(help="Logins in flight at once.")] = 100,
        data_dir: DataDir = None, config: Config = None, as_json: AsJson = False) -> None:
    """Simulate devices (and gateways with sub-devices) of new products logging in and staying connected."""
    from thingport.connect import sim as simulation

    settings = settings_for(data_dir, config)
    fleet = run_op(settings, lambda s: simulation.create_fleet(s, org_id, devices=devices, gateways=gateways,
                                                               subs_per_gateway=subs))

    async def go() -> dict[str, Any]:
        result = await simulation.storm(mqtt_host, mqtt_port or settings.mqtt_port, fleet, concurrency=concurrency)
        summary = {"connected": result.connected, "refused": result.refused, "failed": result.failed,
                   "subDeviceLogins": result.sub_logins, "seconds": round(result.seconds, 3),
                   "loginsPerSecond": round(result.logins_per_s, 1)}
        if not as_json:
            out.print(summary)
            out.print("connected; Ctrl-C to stop" if not duration else f"staying connected for {duration:g} s")
        try:
            await asyncio.sleep(duration or float("inf"))
        finally:
            await result.close()
        return summary

    try:
        summary = asyncio.run(go())
    except KeyboardInterrupt:
        return
    if as_json:
        out.print_json(json.dumps(summary))


@cli.command("decrypt-secret")
def decrypt_secret(
    private_key: Annotated[Path, typer.Option("--private-key", help="The application's RSA private key (PEM).")],
    response: Annotated[Path | None, typer.Option("--response", help="A v2.4 JSON response ('-' for stdin).")] = None,
    secret: Annotated[str | None, typer.Option("--secret", help="An encrypted deviceSecret/productSecret.")] = None,
    session_key: Annotated[str | None, typer.Option("--session-key")] = None,
) -> None:
    """Decrypt the secrets of a v2.4 ``requireSecret=true`` answer with the application's private key."""
    pem = private_key.read_text()
    if secret and session_key:
        typer.echo(caller_secret.decrypt(pem, secret, session_key))  # verbatim: no markup, no wrapping
        return
    if response is None:
        err.print("[red]error:[/red] give --response, or --secret with --session-key")
        raise typer.Exit(2)
    doc = json.loads(sys.stdin.read() if str(response) == "-" else response.read_text())
    out.print_json(json.dumps(_decrypt_tree(doc, pem)))


def _decrypt_tree(node: Any, pem: str) -> Any:
    if isinstance(node, list):
        return [_decrypt_tree(n, pem) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _decrypt_tree(v, pem) for k, v in node.items()}
    session = node.get("sessionKey")
    for name in ("deviceSecret", "productSecret"):
        if isinstance(session, str) and isinstance(node.get(name), str):
            node[name] = caller_secret.decrypt(pem, node[name], session)
    node.pop("sessionKey", None) if isinstance(session, str) else None
    return node


# --- Living Platform: end users, auth codes, product metadata -----------------------------------
living_cli = typer.Typer(help="Living Platform end users, auth codes and product metadata.", no_args_is_help=True)
living_user_cli = typer.Typer(help="End users of an organization.", no_args_is_help=True)
living_product_cli = typer.Typer(help="Living metadata of products.", no_args_is_help=True)
cli.add_typer(living_cli, name="living")
living_cli.add_typer(living_user_cli, name="user")
living_cli.add_typer(living_product_cli, name="product")


@living_user_cli.command("create")
def living_user_create(org: Annotated[str, typer.Option("--org")], login: Annotated[str, typer.Option("--login")],
                       data_dir: DataDir = None, as_json: AsJson = False) -> None:
    user = run_op(settings_for(data_dir), lambda s: s.living.create_user(org, login))
    emit([plain(user)], as_json, ["identity_id", "org_id", "login", "create_time"])


@living_user_cli.command("list")
def living_user_list(org: Annotated[str, typer.Option("--org")], data_dir: DataDir = None,
                     as_json: AsJson = False) -> None:
    users = run_op(settings_for(data_dir), lambda s: s.living.list_users(org))
    emit([plain(u) for u in users], as_json, ["identity_id", "org_id", "login", "create_time"])


@living_user_cli.command("auth-code")
def living_auth_code(identity_id: str, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Mint a single-use auth code for /account/createSessionByAuthCode."""
    code, expire = run_op(settings_for(data_dir), lambda s: s.living.mint_auth_code(identity_id))
    if as_json:
        emit([{"auth_code": code, "identity_id": identity_id, "expire_time": expire}], True, [])
        return
    typer.echo(f"auth code: {code}  (single use, expires at {expire} ms)")


@living_user_cli.command("logout")
def living_logout(identity_id: str, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """End every session (iotToken and refreshToken) of a user."""
    ended = run_op(settings_for(data_dir), lambda s: s.living.end_sessions(identity_id))
    emit([{"identity_id": identity_id, "ended": ended}], as_json, ["identity_id", "ended"])


@living_product_cli.command("set")
def living_product_set(
    org: Annotated[str, typer.Option("--org")], product_key: Annotated[str, typer.Option("--product-key")],
    status: Annotated[str | None, typer.Option(help="development or published")] = None,
    net_type: Annotated[int | None, typer.Option(help="0 LoRa, 3 Wi-Fi, 4 ZigBee, 5 BT, 6 cellular, "
                                                      "7 Ethernet, 8 other")] = None,
    category_key: Annotated[str | None, typer.Option()] = None,
    category_name: Annotated[str | None, typer.Option()] = None,
    category_id: Annotated[int | None, typer.Option()] = None,
    bind_window: Annotated[int | None, typer.Option(help="time-window bind, seconds after connect")] = None,
    require_permit_join: Annotated[bool | None, typer.Option("--require-permit-join/--no-require-permit-join")
                                   ] = None,
    data_dir: DataDir = None, as_json: AsJson = False,
) -> None:
    from thingport.services.living_accounts import MetaPatch

    patch = MetaPatch(status, net_type, None, category_key, category_name, category_id, bind_window,
                      require_permit_join)
    meta = run_op(settings_for(data_dir), lambda s: s.living.set_product_meta(org, product_key, patch))
    emit([plain(meta)], as_json, ["product_key", "status", "net_type", "category_key", "bind_window_s",
                                  "require_permit_join"])


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
