"""The ``thingport`` command: serve, init, operator commands, and a secret decryption helper.

Operator commands work on the database directly (no server needed); each has ``--json`` output
for scripts. Secrets are printed only where the command exists to show them (a new app's secret).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import getpass
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
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
from thingport.services.audit import ATTEMPT, Attempt
from thingport.settings import Settings

T = TypeVar("T")
#: Plain help (no rich markup): `[env …]` and `[default: …]` stay as written, flags read
#: `--json / --no-json`, and every option with a default shows it.
HELP: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None,
                        "context_settings": {"show_default": True, "help_option_names": ["-h", "--help"]}}
cli = typer.Typer(**HELP)  # its help is main_options' docstring
org_cli = typer.Typer(help="Organizations (tenants).", **HELP)
app_cli = typer.Typer(help="Applications (service accounts: app key + secret).", **HELP)
model_cli = typer.Typer(help="Thing models products refer to.", **HELP)
product_cli = typer.Typer(help="Products: create, list, search, get, delete.", **HELP)
device_cli = typer.Typer(help="Devices: create, find, log in, replace a key, disable.", **HELP)
key_cli = typer.Typer(help="The master key that encrypts secrets at rest.", **HELP)
ca_cli = typer.Typer(help="Device CAs that device certificates chain to.", **HELP)
cli.add_typer(org_cli, name="org")
cli.add_typer(app_cli, name="app")
cli.add_typer(model_cli, name="model")
cli.add_typer(product_cli, name="product")
cli.add_typer(device_cli, name="device")
cli.add_typer(key_cli, name="master-key")
cli.add_typer(ca_cli, name="ca")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error is one line, whatever the width


def setting_help(name: str, what: str, default: Any = None) -> str:
    """Help of an option that overrides a setting: its name, variable and default (docs/operations.md)."""
    shown = getattr(Settings(), name) if default is None else default
    return f"{what} (setting {name}, env THINGPORT_{name.upper()}) [default: {shown}]"


DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help=setting_help("data_dir", "Data directory: database, master key, operator token", "./data"),
    show_default=False)]
Config = Annotated[Path | None, typer.Option("--config", help="TOML settings file [env THINGPORT_CONFIG]",
                                             show_default=False)]
AsJson = Annotated[bool, typer.Option("--json/--no-json", help="Print JSON for scripts instead of a table.")]
Org = Annotated[str, typer.Option("--org", help="Organization id.", show_default=False)]
DeviceArg = Annotated[str, typer.Argument(
    help="The device: its asset id, or productKey/deviceKey.", show_default=False, metavar="DEVICE")]


def _version(value: bool) -> None:
    if value:
        from thingport import __version__

        typer.echo(f"thingport {__version__}")
        raise typer.Exit()


@cli.callback()
def main_options(version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True, callback=_version)] = False) -> None:
    """Thingport: IoT device identity, registry and provisioning, speaking the EnOS, OceanConnect and
    Living Platform APIs over HTTP and MQTT.

    `thingport serve` runs the service. The other commands work on its data directory directly
    (they may run beside a running server); every one has --json output for scripts.
    """


def settings_for(data_dir: Path | None, config: Path | None = None, **overrides: Any) -> Settings:
    try:
        return Settings.load(config, data_dir=data_dir, **overrides)
    except (OSError, ValueError) as exc:  # a missing or bad config file, an unknown or malformed setting
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


@contextmanager
def server_lock(settings: Settings, *, wait: bool) -> Iterator[bool]:
    """Held by a running server; operator commands that must not run beside it test it."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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

    command = _command_path()

    async def go() -> T:
        services = await open_services(settings)
        # the command's changes go in the audit trail as the operator's, named by the OS user
        attempt = Attempt("cli", str(uuid.uuid4()), address="local", action=command,
                          actor=f"operator:{getpass.getuser()}", mutating=command.rsplit(" ", 1)[-1] not in READS)
        ATTEMPT.set(attempt)
        try:
            result = await op(services)
        except DomainError as exc:
            attempt.error = exc.message
            raise
        finally:
            await services.audit.finish(attempt, 1 if attempt.error else 0)
            await services.core.db.close()
        return result

    try:
        return asyncio.run(go())
    except DomainError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(2) from exc


#: Commands that change nothing: their failures are not audited (their successes write nothing).
READS = frozenset({"list", "show", "get", "search", "find", "stats", "export", "thingport"})


def _command_path() -> str:
    """``thingport device create``: what the audit trail says a command did."""
    try:  # Typer >= 0.26 carries its own copy of click
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context  # type: ignore[assignment,no-redef,unused-ignore]
    ctx = get_current_context(silent=True)
    words = str(ctx.command_path).split()[1:] if ctx is not None else []
    return " ".join(["thingport", *words])  # the program's name, however it was started


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
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def plain(obj: Any) -> dict[str, Any]:
    d = asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else dict(obj)
    return {k: (sorted(p.value for p in v) if isinstance(v, frozenset) else v) for k, v in d.items()}


@cli.command()
def serve(data_dir: DataDir = None, config: Config = None,
          host: Annotated[str | None, typer.Option(help=setting_help("host", "Listen address"),
                                                   show_default=False)] = None,
          http_port: Annotated[int | None, typer.Option(help=setting_help("http_port", "HTTP port"),
                                                        show_default=False)] = None,
          mqtt_port: Annotated[int | None, typer.Option(
              help=setting_help("mqtt_port", "MQTT port of the embedded broker, 0 = off"), show_default=False)] = None,
          ) -> None:
    """Run the service (HTTP API and MQTT broker).

    HTTP on --http-port, the embedded MQTT broker on --mqtt-port, and MQTT over TLS on the
    mqtt_tls_port setting when mqtt_tls_cert and mqtt_tls_key are set. The first start initialises
    an empty data directory.
    """
    import uvicorn

    from thingport.app import create_app
    from thingport.observe import logs
    from thingport.server import guard_options

    settings = settings_for(data_dir, config, host=host, http_port=http_port, mqtt_port=mqtt_port)
    try:
        logs.configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    with server_lock(settings, wait=False) as got:
        if not got and settings.database_url == "":
            err.print(f"[red]error:[/red] another Thingport server uses {settings.data_dir}")
            raise typer.Exit(1)
        if (busy := busy_port(settings)) is not None:
            err.print(f"[red]error:[/red] {escape(busy)}")
            raise typer.Exit(1)
        # log_config=None: uvicorn's lines go through the one handler logs.configure installed
        uvicorn.run(create_app(settings), host=settings.host, port=settings.http_port, log_config=None,
                    log_level=settings.log_level, access_log=False, **guard_options(settings))


def busy_port(settings: Settings) -> str | None:
    """Why ``serve`` could not open one of its ports (naming the setting to change), or None.

    Checked before the server starts, so a taken port is one line instead of a failed start-up's
    traceback. Bound as the server binds (SO_REUSEADDR), so a port in TIME_WAIT counts as free.
    """
    ports = [(settings.http_port, "HTTP", "--http-port N or the http_port setting")]
    if not settings.mqtt_external_url:
        if settings.mqtt_port > 0:
            ports.append((settings.mqtt_port, "MQTT",
                          "--mqtt-port N or the mqtt_port setting (0 turns the plain MQTT listener off)"))
        if settings.mqtt_tls_cert and settings.mqtt_tls_key:
            ports.append((settings.mqtt_tls_port, "MQTT/TLS", "the mqtt_tls_port setting"))
    for port, what, change in ports:
        try:
            infos = socket.getaddrinfo(settings.host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            return f"cannot listen on {settings.host}: {exc.strerror}; change the host setting (--host)"
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(address)
                except OSError as exc:
                    if exc.errno == errno.EADDRNOTAVAIL:
                        return f"{settings.host} is not an address of this machine; change --host or the host setting"
                    reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
                    return f"{what} port {port} on {settings.host} {reason}; choose another with {change}"
    return None


@cli.command()
def init(data_dir: DataDir = None, config: Config = None) -> None:
    """Create the data directory and database (serve does too).

    The master key, the operator token and the database schema; what exists is kept.
    """
    settings = settings_for(data_dir, config)
    run_op(settings, lambda s: asyncio.sleep(0))
    out.print(f"initialised {settings.data_dir} (operator token in {settings.operator_token_file})")


@org_cli.command("create")
def org_create(name: Annotated[str, typer.Argument(help="Display name.", show_default=False)],
               org_id: Annotated[str | None, typer.Option(
                   "--org-id", help="Organization id (letters, digits, - and _) [default: generated]",
                   show_default=False)] = None,
               data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Create an organization (the orgId API calls name)."""
    org = run_op(settings_for(data_dir), lambda s: s.accounts.create_org(name, org_id))
    emit([plain(org)], as_json, ["org_id", "name", "create_time"])


@org_cli.command("list")
def org_list(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List the organizations."""
    orgs = run_op(settings_for(data_dir), lambda s: s.accounts.list_orgs())
    emit([plain(o) for o in orgs], as_json, ["org_id", "name", "create_time"])


@app_cli.command("create")
def app_create(
    org: Org,
    name: Annotated[str, typer.Option("--name", help="Display name.", show_default=False)],
    permission: Annotated[list[str] | None, typer.Option(
        "--permission", help="device:full, device:read, product:create, product:update, product:delete "
                             "(repeat the option) [default: all]", show_default=False)] = None,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="RSA public key PEM file, for v2.4 secrets encrypted for the app.",
        show_default=False)] = None,
    data_dir: DataDir = None, as_json: AsJson = False,
) -> None:
    """Create an application; its secret is shown this once."""
    from thingport.dialects.admin.routes import parse_permissions

    pem = public_key.read_text() if public_key else None
    app = run_op(settings_for(data_dir), lambda s: s.accounts.create_app(
        org, name, parse_permissions(permission) if permission else None, pem))
    row = {**_app_row(app), "secret": app.secret}
    row["rsa_public_key"] = bool(pem)
    if as_json:
        emit([row], as_json, [])
        return
    emit([row], False, ["app_key", "org_id", "name", "permissions", "rsa_public_key"])
    # On lines of their own so a narrow terminal cannot cut them; the secret is never shown again.
    typer.echo(f"app key:    {app.app_key}\napp secret: {app.secret}  (shown only this once: store it now)")


@app_cli.command("list")
def app_list(org: Annotated[str | None, typer.Option("--org", help="Only this organization's [default: all]",
                                                     show_default=False)] = None,
             data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List applications (never their secrets)."""
    apps = run_op(settings_for(data_dir), lambda s: s.accounts.list_apps(org))
    rows = [{**_app_row(a), "rsa_public_key": bool(a.rsa_public_key)} for a in apps]
    emit(rows, as_json, ["app_key", "org_id", "name", "permissions", "disabled", "rsa_public_key"])


def _app_change(app_key: str, data_dir: Path | None, as_json: bool, op: Callable[[Any], Awaitable[Any]]) -> None:
    app = run_op(settings_for(data_dir), op)
    row = _app_row(app)
    row["rsa_public_key"] = bool(app.rsa_public_key)
    emit([row], as_json, ["app_key", "org_id", "name", "permissions", "disabled", "rsa_public_key"])


def _app_row(app: Any) -> dict[str, Any]:
    """An application as the CLI shows it: never a secret (the current one, or the previous one of a
    rotation's grace period), only when the previous one stops signing."""
    return {k: v for k, v in plain(app).items() if k not in ("secret", "previous_secret")}


AppKey = Annotated[str, typer.Argument(help="The application's app key.", show_default=False)]


@app_cli.command("rotate-secret")
def app_rotate_secret(app_key: AppKey,
                      grace: Annotated[int, typer.Option(
                          "--grace", help="Seconds the old secret keeps signing (at most 30 days).")] = 0,
                      data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Give an application a new secret, shown this once.

    The old secret stops signing and its access tokens are revoked; with --grace, both keep working
    for that many seconds, so an integration can roll its secret with no failed call
    (docs/credentials.md).
    """
    app = run_op(settings_for(data_dir), lambda s: s.accounts.rotate_app_secret(app_key, grace_s=grace))
    row = {**_app_row(app), "secret": app.secret}
    if as_json:
        emit([row], as_json, [])
        return
    emit([row], False, ["app_key", "org_id", "name", "previous_until"])
    typer.echo(f"app secret: {app.secret}  (shown only this once: store it now)")


@app_cli.command("disable")
def app_disable(app_key: AppKey, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Disable an application: its calls are refused."""
    _app_change(app_key, data_dir, as_json, lambda s: s.accounts.set_app_disabled(app_key, True))


@app_cli.command("enable")
def app_enable(app_key: AppKey, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Enable a disabled application."""
    _app_change(app_key, data_dir, as_json, lambda s: s.accounts.set_app_disabled(app_key, False))


@app_cli.command("set-public-key")
def app_set_public_key(app_key: AppKey,
                       public_key: Annotated[Path, typer.Argument(help="RSA public key PEM file.",
                                                                  show_default=False)],
                       data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Set an application's RSA public key.

    v2.4 answers encrypt secrets for the application with it.
    """
    pem = public_key.read_text()
    _app_change(app_key, data_dir, as_json, lambda s: s.accounts.set_app_public_key(app_key, pem))


@model_cli.command("create")
def model_create(org: Org,
                 model_id: Annotated[str, typer.Option("--model-id", help="Model id products name.",
                                                       show_default=False)],
                 name: Annotated[str | None, typer.Option("--name", help="Display name [default: the id]",
                                                          show_default=False)] = None,
                 data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Register a thing model id.

    Products must name one; Thingport keeps no model content.
    """
    model = run_op(settings_for(data_dir), lambda s: s.accounts.create_model(org, model_id, name))
    emit([plain(model)], as_json, ["org_id", "model_id", "name"])


@model_cli.command("list")
def model_list(org: Org, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List an organization's thing models."""
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


# --- products and devices: the registry, through the same services as the APIs ------------------

def _operator(org: str) -> Any:
    from thingport.services.context import Caller

    return Caller.operator(org)


def _expr(source: str | None, catalogue: str) -> Any:
    from thingport.domain import expression

    return expression.parse(source or None, getattr(expression, catalogue))


def _tags(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    from thingport.domain import validate

    pairs = {k: v for k, _, v in (item.partition("=") for item in values)}
    return validate.tags(pairs, field="--tag")


def product_row(p: Any, *, secret: bool = False) -> dict[str, Any]:
    row = {"product_key": p.product_key, "name": p.name.default, "type": p.product_type.value,
           "model_id": p.model_id, "data_format": p.data_format,
           "dynamic_activation": p.dynamic_activate_enabled, "tags": p.tags, "description": p.description,
           "create_time": p.create_time}
    return {**row, "secret": p.secret} if secret else row


PRODUCT_COLUMNS = ["product_key", "name", "type", "model_id"]


def device_row(v: Any, *, secret: bool = False) -> dict[str, Any]:
    d = v.device
    row = {"asset_id": d.asset_id, "product_key": d.product_key, "device_key": d.device_key,
           "name": d.name.default, "status": d.status.value, "timezone": d.timezone, "tags": d.tags,
           "attributes": d.attributes, "gateway": d.gateway_asset_id, "create_time": d.create_time,
           "active_time": d.active_time, "last_online_time": d.last_online_time,
           "last_offline_time": d.last_offline_time}
    return {**row, "secret": d.secret} if secret else row


DEVICE_COLUMNS = ["asset_id", "product_key", "device_key", "name", "status"]


def device_ref(device: str) -> Any:
    """``assetId`` or ``productKey/deviceKey`` (device keys cannot contain ``/``)."""
    from thingport.services.devices import DeviceRef

    pk, slash, dk = device.partition("/")
    return DeviceRef(product_key=pk, device_key=dk) if slash else DeviceRef(asset_id=device)


def _tell_running_server(settings: Settings) -> None:
    """A change made here reaches a running server through the events it reads from the database
    (``event_poll_ms`` on SQLite): say so, as the session does not end with this command."""
    with server_lock(settings, wait=False) as got:
        if not got:
            err.print(f"note: a server is running; it closes an MQTT session of this device that is open now "
                      f"within {settings.event_poll_ms} ms, when it reads this change")


Search = Annotated[str | None, typer.Argument(
    help='An EnOS search expression, e.g. \'deviceTags.site = "north" and status = "online"\' '
         "(docs/enos.md, Search) [default: all]", show_default=False, metavar="EXPRESSION")]
PageSize = Annotated[int, typer.Option("--limit", help="At most this many rows (newest first).")]


@product_cli.command("list")
def product_list(org: Org, expression: Search = None, limit: PageSize = 100, data_dir: DataDir = None,
                 as_json: AsJson = False) -> None:
    """List or search an organization's products.

    Search fields: productKey, productName, productType, modelId, productTags.KEY.
    """
    from thingport.domain.models import Page

    found, _ = run_op(settings_for(data_dir), lambda s: s.products.search(
        _operator(org), _expr(expression, "PRODUCT_FIELDS"), Page(1, limit)))
    emit([product_row(p) for p in found], as_json, PRODUCT_COLUMNS)


@product_cli.command("get")
def product_get(org: Org, product_key: Annotated[str, typer.Argument(help="Product key.", show_default=False)],
                show_secret: Annotated[bool, typer.Option("--show-secret/--no-show-secret",
                                                          help="Also print the product secret.")] = False,
                data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Show one product."""
    p = run_op(settings_for(data_dir), lambda s: s.products.get(_operator(org), product_key))
    emit([product_row(p, secret=show_secret)], as_json, [*PRODUCT_COLUMNS, "tags"])
    if show_secret and not as_json:
        typer.echo(f"product secret: {p.secret}")


@product_cli.command("create")
def product_create(
    org: Org,
    name: Annotated[str, typer.Option("--name", help="Display name.", show_default=False)],
    model: Annotated[str | None, typer.Option(
        "--model", help="Thing model id (thingport model create) [default: the organization's only model]",
        show_default=False)] = None,
    gateway: Annotated[bool, typer.Option("--gateway/--device", help="A gateway product (its devices may have "
                                          "sub-devices) or a device product.")] = False,
    dynamic_activation: Annotated[bool, typer.Option(
        "--dynamic-activation/--no-dynamic-activation",
        help="Devices may log in with the product secret once, to get their own.")] = False,
    data_format: Annotated[str, typer.Option("--data-format", help="Json or Custom.")] = "Json",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeat the option).",
                                                  show_default=False)] = None,
    description: Annotated[str | None, typer.Option(help="Description.", show_default=False)] = None,
    data_dir: DataDir = None, as_json: AsJson = False,
) -> None:
    """Create a product; prints its key and secret."""
    from thingport.domain.errors import InvalidArgument
    from thingport.domain.models import I18nText, ProductType
    from thingport.services.products import ProductSpec

    async def op(s: Any) -> Any:
        model_id = model
        if model_id is None:
            models = [m.model_id for m in await s.accounts.list_models(org)]
            if len(models) != 1:
                raise InvalidArgument("--model: name the product's thing model (" + (
                    f"one of {', '.join(models)})" if models else
                    f"organization {org} has none yet: thingport model create --org {org} --model-id ID)"))
            model_id = models[0]
        spec = ProductSpec(I18nText(name), ProductType.GATEWAY if gateway else ProductType.DEVICE, data_format,
                           model_id, False, description, dynamic_activation, _tags(tag))
        return await s.products.create(_operator(org), spec)

    p = run_op(settings_for(data_dir), op)
    emit([product_row(p, secret=True)], as_json, PRODUCT_COLUMNS)
    if not as_json:  # on a line of its own, whole on any terminal width
        typer.echo(f"product secret: {p.secret}  (for dynamic activation; product get --show-secret shows it)")


@product_cli.command("delete")
def product_delete(org: Org, product_key: Annotated[str, typer.Argument(help="Product key.", show_default=False)],
                   data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Delete a product that has no devices left."""
    run_op(settings_for(data_dir), lambda s: s.products.delete(_operator(org), product_key))
    emit([{"product_key": product_key, "deleted": True}], as_json, ["product_key", "deleted"])


@device_cli.command("list")
def device_list(org: Org, expression: Search = None,
                product: Annotated[str | None, typer.Option("--product", help="Only this product's devices.",
                                                            show_default=False)] = None,
                limit: PageSize = 100, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List or search an organization's devices.

    Search fields: assetId, productKey, deviceKey, modelId, productType, timezone, deviceName,
    status (inactive, online, offline, disabled), deviceTags.KEY, deviceAttributes.KEY.
    """
    from thingport.domain.models import Page

    where = " and ".join(x for x in (f'productKey = "{product}"' if product else "",
                                     f"({expression})" if expression else "") if x)
    found, total = run_op(settings_for(data_dir), lambda s: s.devices.search(
        _operator(org), _expr(where, "DEVICE_FIELDS"), Page(1, limit)))
    emit([device_row(v) for v in found], as_json, DEVICE_COLUMNS)
    if not as_json and total > len(found):
        typer.echo(f"{len(found)} of {total} shown; --limit shows more")


@device_cli.command("get")
def device_get(org: Org, device: DeviceArg,
               show_secret: Annotated[bool, typer.Option("--show-secret/--no-show-secret",
                                                         help="Also print the device secret.")] = False,
               data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Show one device."""
    v = run_op(settings_for(data_dir), lambda s: s.devices.get(_operator(org), device_ref(device)))
    emit([device_row(v, secret=show_secret)], as_json, [*DEVICE_COLUMNS, "tags"])
    if show_secret and not as_json:
        typer.echo(f"device secret: {v.device.secret}")


@device_cli.command("create")
def device_create(
    org: Org,
    product: Annotated[str, typer.Option("--product", help="Product key.", show_default=False)],
    key: Annotated[str | None, typer.Option("--key", help="Device key, 4-64 of letters, digits, - _ . : "
                                            "[default: generated]", show_default=False)] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name [default: the device key]",
                                             show_default=False)] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="+HH:MM or an IANA zone name.")] = "+00:00",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeat the option).",
                                                  show_default=False)] = None,
    data_dir: DataDir = None, as_json: AsJson = False,
) -> None:
    """Create a device; prints its secret.

    The asset id, product key, device key and device secret are what the device logs in with.
    """
    from thingport.domain.models import I18nText
    from thingport.services.devices import DeviceSpec

    async def op(s: Any) -> Any:
        spec = DeviceSpec(product, I18nText(name or key or "device"), timezone, key, tags=_tags(tag))
        return await s.devices.create(_operator(org), spec, key_version="v2.1")

    v = run_op(settings_for(data_dir), op)
    _show_device_secret(v, as_json)


@device_cli.command("replace-key")
def device_replace_key(org: Org, device: DeviceArg,
                       new_key: Annotated[str, typer.Argument(help="The new device key.", show_default=False)],
                       grace: Annotated[int, typer.Option(
                           "--grace", help="Seconds the old key and secret keep logging in (at most 30 days).")] = 0,
                       data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Give a device a new key and secret (EnOS Replace Device).

    The asset id, tags and topology stay; the old key and secret stop working; the device is
    inactive until it logs in again. With --grace, the old ones keep logging in (and a session on
    them goes on) for that many seconds, and the device stays active (docs/credentials.md).
    """
    settings = settings_for(data_dir)
    v = run_op(settings, lambda s: s.devices.replace_key(_operator(org), device_ref(device), new_key, grace_s=grace))
    _tell_running_server(settings)
    _show_device_secret(v, as_json)


def _show_device_secret(v: Any, as_json: bool) -> None:
    emit([device_row(v, secret=True)], as_json, DEVICE_COLUMNS)
    if not as_json:  # on a line of its own, whole on any terminal width
        typer.echo(f"device secret: {v.device.secret}")


def _set_enabled(org: str, device: str, enabled: bool, data_dir: Path | None, as_json: bool) -> None:
    settings = settings_for(data_dir)

    async def op(s: Any) -> Any:
        await s.devices.set_enabled(_operator(org), device_ref(device), enabled)
        return await s.devices.get(_operator(org), device_ref(device))

    v = run_op(settings, op)
    if not enabled:
        _tell_running_server(settings)
    emit([device_row(v)], as_json, DEVICE_COLUMNS)


@device_cli.command("enable")
def device_enable(org: Org, device: DeviceArg, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Enable a disabled device: it may log in again."""
    _set_enabled(org, device, True, data_dir, as_json)


@device_cli.command("disable")
def device_disable(org: Org, device: DeviceArg, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Disable a device: its logins are refused until it is enabled."""
    _set_enabled(org, device, False, data_dir, as_json)


@device_cli.command("delete")
def device_delete(org: Org, device: DeviceArg, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Delete a device.

    A gateway's sub-devices stay, without a gateway.
    """
    settings = settings_for(data_dir)
    d = run_op(settings, lambda s: s.devices.delete(_operator(org), device_ref(device)))
    _tell_running_server(settings)
    emit([{"asset_id": d.asset_id, "product_key": d.product_key, "device_key": d.device_key, "deleted": True}],
         as_json, ["asset_id", "product_key", "device_key", "deleted"])


#: Failed rows a person sees listed after an import; ``--json`` gives a script the first 1,000.
SHOWN_ERRORS = 20
Format = Annotated[str | None, typer.Option(
    "--format", help="csv or jsonl [default: from the file name's extension]", show_default=False)]


@device_cli.command("import")
def device_import(
    org: Org,
    product: Annotated[str, typer.Option("--product", help="The product the devices join.", show_default=False)],
    file: Annotated[Path, typer.Argument(help="CSV with a header row, or JSON Lines ('-' for stdin with --format).",
                                         show_default=False)],
    fmt: Format = None,
    private_key: Annotated[Path | None, typer.Option(
        "--private-key", help="RSA private key (PEM) that decrypts the secrets of an export made with "
                              "--with-secrets.", show_default=False)] = None,
    data_dir: DataDir = None, as_json: AsJson = False,
) -> None:
    """Create many devices from a file (docs/import.md).

    Fields: deviceKey, name, nameI18n, timezone, tags, attributes, description, secret (generated
    when absent). Good rows go in, bad ones are listed with their line; a device key the product
    has already is left as it is, so running the same file again is safe.
    """
    from thingport.services import bulk

    pem = private_key.read_text() if private_key else None
    settings = settings_for(data_dir)
    try:
        fmt_name = bulk.format_of(fmt or file.name)
        handle = sys.stdin.buffer if str(file) == "-" else file.open("rb")
    except (DomainError, OSError) as exc:
        err.print(f"[red]error:[/red] {escape(getattr(exc, 'message', None) or str(exc))}")
        raise typer.Exit(2) from exc
    total = None if handle is sys.stdin.buffer else os.fstat(handle.fileno()).st_size
    done = [0]

    def lines() -> Iterator[str]:  # counted in bytes, for the progress bar
        for raw in handle:
            done[0] += len(raw)
            yield raw.decode("utf-8", "surrogateescape")  # a bad byte: its row fails, naming the field

    show = not as_json and err.is_terminal
    with handle, _progress(show, total) as advance:
        report = run_op(settings, lambda s: s.bulk.import_devices(
            _operator(org), product, bulk.read_rows(lines(), fmt_name, private_key=pem),
            progress=lambda r: advance(done[0], r), batch_size=bulk.COMMAND_BATCH, big_cache=True))
    summary = report.as_json()
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        typer.echo(f"created {report.created}, existing {report.existing}, failed {report.failed}")
        for e in report.errors[:SHOWN_ERRORS]:
            typer.echo(f"line {e.line}: {e.message}")
        if report.failed > SHOWN_ERRORS:
            typer.echo(f"... and {report.failed - SHOWN_ERRORS} more failed rows (--json lists the first "
                       f"{len(report.errors)})")
    if report.failed:
        raise typer.Exit(1)


@contextmanager
def _progress(show: bool, total: int | None) -> Iterator[Callable[[int, Any], None]]:
    """A rich progress bar on a terminal (bytes read, rows created, rate, time left); nothing else."""
    if not show:
        yield lambda _done, _report: None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(TextColumn("importing"), BarColumn(), TaskProgressColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), TextColumn("{task.fields[rows]}"), console=err, transient=True) as bar:
        task = bar.add_task("import", total=total, rows="")
        started = time.monotonic()

        def advance(done: int, report: Any) -> None:
            rate = report.created / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, rows=f"{report.created} created ({rate:,.0f}/s), "
                                                  f"{report.existing} existing, {report.failed} failed")

        yield advance


@device_cli.command("export")
def device_export(
    org: Org,
    product: Annotated[str | None, typer.Option("--product", help="Only this product's devices.",
                                                show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write [default: stdout]",
                                                show_default=False)] = None,
    with_secrets: Annotated[bool, typer.Option(
        "--with-secrets/--no-secrets", help="Also write each secret, encrypted for --public-key as EnOS v2.4 "
                                            "returns secrets (secret + sessionKey).")] = False,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="RSA public key (PEM) to encrypt "
                                                    "the secrets for.", show_default=False)] = None,
    data_dir: DataDir = None,
) -> None:
    """Write devices as JSON Lines or CSV, streamed (docs/import.md).

    The file imports back (thingport device import); thingport decrypt-secret or import's
    --private-key reads the secrets.
    """
    from thingport.services import bulk

    try:
        fmt_name = bulk.format_of(fmt)
        if with_secrets and public_key is None:
            raise DomainError("--with-secrets: give --public-key, the RSA key to encrypt the secrets for")
        pem = bulk.check_public_key(public_key.read_text()) if with_secrets and public_key else None
    except (DomainError, OSError) as exc:
        err.print(f"[red]error:[/red] {escape(getattr(exc, 'message', None) or str(exc))}")
        raise typer.Exit(2) from exc
    write = bulk.export_lines(fmt_name, pem is not None)

    async def op(s: Any) -> int:
        count = 0
        with (output.open("w", encoding="utf-8", newline="") if output else nullcontext(sys.stdout)) as sink:
            sink.write(write(None))
            async for d in s.bulk.export(_operator(org), product):
                sink.write(write(bulk.export_record(d, pem)))
                count += 1
        return count

    count = run_op(settings_for(data_dir), op)
    if output is not None:
        err.print(f"{count} devices written to {output}")


@device_cli.command("certificates")
def device_certificates(org: Org, device: DeviceArg, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """A device's certificate history.

    The history the admin API gives too (docs/certificates.md).
    """
    from thingport.domain.models import now_ms
    from thingport.services.certificates import status_name

    found = run_op(settings_for(data_dir), lambda s: s.certificates.list(_operator(org), device_ref(device)))
    now = now_ms()
    rows = [{"cert_sn": r.cert_sn, "authority": r.authority, "status": status_name(r, now),
             "issue_time": r.issue_time, "issued_by": r.issue_by or "operator", "expire_time": r.expire_time,
             "revoke_time": r.revoke_time, "revoke_reason": r.revoke_reason, "subject": r.subject} for r in found]
    emit(rows, as_json, ["cert_sn", "authority", "status", "issue_time", "issued_by", "expire_time", "revoke_time"])


@device_cli.command("credentials")
def device_credentials(org: Org, device: DeviceArg, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """A device's credential history.

    Each secret and certificate: issued when and by whom, last used, ended when and why; never a
    secret. The history the admin API gives too (docs/credentials.md).
    """
    found = run_op(settings_for(data_dir), lambda s: s.devices.credentials(_operator(org), device_ref(device)))
    rows = [{"kind": e.kind, "id": e.id, "device_key": e.device_key, "issue_time": e.issue_time,
             "issued_by": e.issued_by, "last_used": e.last_used, "end_time": e.end_time, "end_reason": e.end_reason}
            for e in found]
    emit(rows, as_json, ["kind", "id", "device_key", "issue_time", "issued_by", "last_used", "end_time",
                         "end_reason"])


CA_COLUMNS = ["ca_id", "authority", "signing", "imported", "not_after"]


def _ca_row(c: Any) -> dict[str, Any]:
    return {"ca_id": c.ca_id, "authority": c.authority, "signing": c.retire_time is None, "imported": c.imported,
            "not_after": c.not_after, "create_time": c.create_time, "retire_time": c.retire_time,
            "certificate": c.cert_pem}


Authority = Annotated[str, typer.Option("--authority", help="RSA (RSA-2048) or ECC (prime256v1).")]


@ca_cli.command("list")
def ca_list(org: Org, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """The organization's device CAs, newest first.

    A retired CA vouches for what it signed until it expires.
    """
    cas = run_op(settings_for(data_dir), lambda s: s.certificates.cas(_operator(org)))
    emit([_ca_row(c) for c in cas], as_json, CA_COLUMNS)


@ca_cli.command("bundle")
def ca_bundle(org: Org, data_dir: DataDir = None) -> None:
    """Print the PEM bundle of the device CAs.

    Every CA that vouches for a certificate now; the RSA and ECC ones are made if missing.
    """
    from thingport.crypto.ca import AUTHORITIES

    async def op(s: Any) -> list[str]:
        for authority in AUTHORITIES:
            await s.certificates.ca(_operator(org), authority)
        result: list[str] = await s.certificates.trusted(_operator(org))
        return result

    typer.echo("".join(run_op(settings_for(data_dir), op)), nl=False)


@ca_cli.command("rotate")
def ca_rotate(org: Org, authority: Authority = "RSA", data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Make a new signing CA.

    Certificates the old one signed stay valid until they expire.
    """
    from thingport.services.certificates import authority_of

    settings = settings_for(data_dir)
    c = run_op(settings, lambda s: s.certificates.rotate_ca(_operator(org), authority_of(authority, "--authority")))
    _tell_running_server_ca(settings)
    emit([_ca_row(c)], as_json, CA_COLUMNS)


@ca_cli.command("import")
def ca_import(org: Org,
              cert: Annotated[Path, typer.Option("--cert", help="The CA certificate (PEM).", show_default=False)],
              key: Annotated[Path, typer.Option("--key", help="Its private key (PEM, unencrypted).",
                                                show_default=False)],
              data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Import the operator's own CA.

    It becomes the signing CA of its kind; its key is stored encrypted.
    """
    try:
        cert_pem, key_pem = cert.read_text(), key.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    settings = settings_for(data_dir)
    c = run_op(settings, lambda s: s.certificates.import_ca(_operator(org), cert_pem, key_pem))
    _tell_running_server_ca(settings)
    emit([_ca_row(c)], as_json, CA_COLUMNS)


def _tell_running_server_ca(settings: Settings) -> None:
    with server_lock(settings, wait=False) as got:
        if not got:
            err.print("note: a server is running; its TLS listener trusts this CA after a restart (the same change "
                      "through its admin API applies at once)")


MqttHost = Annotated[str, typer.Option(help="Broker host.")]
MqttPort = Annotated[int | None, typer.Option(
    help=setting_help("mqtt_port", "Broker port"), show_default=False)]

#: CONNACK return codes (MQTT 3.1.1 §3.2.2.3) as a device sees them from Thingport (docs/mqtt.md).
CONNACK = {1: "unacceptable protocol version", 2: "client id not readable by any login scheme",
           3: "server unavailable",
           4: "bad user name or password (wrong secret, or an unknown, disabled or deleted device)",
           5: "not authorised (too many failed logins from this address and user name; wait a minute)"}


@device_cli.command("connect")
def device_connect(
    org: Org, device: DeviceArg,
    secret: Annotated[str | None, typer.Option(help="Log in with this secret [default: the device's own]",
                                               show_default=False)] = None,
    mqtt_host: MqttHost = "127.0.0.1", mqtt_port: MqttPort = None,
    duration: Annotated[float, typer.Option(help="Seconds to stay connected; 0 = until Ctrl-C.")] = 0,
    data_dir: DataDir = None, config: Config = None,
) -> None:
    """Log a device in over MQTT and stay connected.

    It logs in as its firmware would (EnOS static login, sha256 signature) and prints what
    happens: the answer to the login, messages the platform sends it, the server closing its
    session. Exit status 1 if the login is refused or the server ends the session.

    With --secret and DEVICE as productKey/deviceKey the database is not read, so a device's old
    credentials can be tried after its key was replaced.
    """
    from thingport.connect import sim as simulation
    from thingport.connect.mqtt.client import ConnectRefused, MqttClient

    settings = settings_for(data_dir, config)
    ref = device_ref(device)
    if secret is not None and ref.device_key:
        pk, dk = ref.product_key, ref.device_key
    else:
        v = run_op(settings, lambda s: s.devices.get(_operator(org), ref))
        pk, dk, secret = v.device.product_key, v.device.device_key, secret or v.device.secret
    client_id, user, password = simulation.enos_login(simulation.SimDevice(pk, dk, secret))
    port = mqtt_port or settings.mqtt_port
    say = typer.echo

    async def go() -> int:
        client = MqttClient(client_id, username=user, password=password, keep_alive=60,
                            on_message=lambda t, p: say(f"message on {t}: {p.decode(errors='replace')}"))
        say(f"connecting to {mqtt_host}:{port} as {user} (EnOS static login, sha256)")
        try:
            await client.connect(mqtt_host, port)
        except ConnectRefused as exc:
            say(f"refused: CONNACK {exc.return_code}, {CONNACK.get(exc.return_code, 'refused')}")
            return 1
        except (OSError, TimeoutError) as exc:
            say(f"cannot connect to {mqtt_host}:{port}: {exc or 'timed out'} (is `./run serve` running? "
                "--mqtt-port names another port)")
            return 1
        start = time.monotonic()
        say("connected: the login was accepted (CONNACK 0); the device is online" +
            (f"; staying {duration:g} s" if duration else "; Ctrl-C to leave"))
        try:
            await asyncio.wait_for(client.closed.wait(), duration or None)
        except TimeoutError:
            await client.close()
            say(f"left after {duration:g} s (DISCONNECT); the device is offline")
            return 0
        say(f"the server closed the session after {time.monotonic() - start:.1f} s (the device was replaced, "
            "disabled or deleted, or logged in elsewhere)")
        return 1

    try:
        code = asyncio.run(go())
    except KeyboardInterrupt:
        say("left (Ctrl-C)")
        code = 0
    raise typer.Exit(code)


@cli.command()
def sim(org_id: Annotated[str, typer.Option("--org", help="Organization the simulated devices belong to.",
                                            show_default=False)],
        devices: Annotated[int, typer.Option(help="Directly connected devices.")] = 10,
        gateways: Annotated[int, typer.Option(help="Gateways, each logging its sub-devices in.")] = 0,
        subs: Annotated[int, typer.Option("--subs-per-gateway", help="Sub-devices per gateway.")] = 0,
        mqtt_host: MqttHost = "127.0.0.1", mqtt_port: MqttPort = None,
        duration: Annotated[float, typer.Option(help="Seconds to stay connected; 0 = until Ctrl-C.")] = 0,
        concurrency: Annotated[int, typer.Option(help="Logins in flight at once.")] = 100,
        cleanup: Annotated[bool, typer.Option(
            "--cleanup/--no-cleanup", help="At the end, delete the simulator's products and devices.")] = False,
        data_dir: DataDir = None, config: Config = None, as_json: AsJson = False) -> None:
    """Simulate many devices logging in over MQTT.

    Devices, and gateways logging their sub-devices in, stay connected. They belong to the
    simulator's own products (tagged thingport-sim), which later runs reuse with their devices;
    --cleanup deletes them. A live table shows the logins while they run.
    """
    from rich.live import Live

    from thingport.connect import sim as simulation

    settings = settings_for(data_dir, config)
    fleet = run_op(settings, lambda s: simulation.create_fleet(s, org_id, devices=devices, gateways=gateways,
                                                               subs_per_gateway=subs))
    port = mqtt_port or settings.mqtt_port
    result = simulation.StormResult([], 0, 0, 0, 0, 0.0)
    begun = time.monotonic()
    phase = ["logging in"]

    def table() -> Table:
        now = max(time.monotonic() - begun, 1e-9)
        live = sum(not c.closed.is_set() for c in result.clients)
        t = Table("phase", "connected", "sub-devices", "refused", "failed", "logins/s", "seconds",
                  title=f"thingport sim: {len(fleet)} devices -> {mqtt_host}:{port}")
        rate = result.logins_per_s if result.seconds else result.connected / now
        t.add_row(phase[0], str(live), str(result.sub_logins), str(result.refused), str(result.failed),
                  f"{rate:.0f}", f"{now:.1f}")
        return t

    async def go() -> None:
        with Live(table(), console=out, refresh_per_second=4) if not as_json else nullcontext(Quiet()) as screen:
            task = asyncio.create_task(simulation.storm(mqtt_host, port, fleet, concurrency=concurrency,
                                                        result=result))
            try:
                while not task.done():
                    screen.update(table())
                    await asyncio.wait({task}, timeout=0.25)
                await task
                phase[0] = "connected" if not duration else f"connected for {duration:g} s"
                end = time.monotonic() + duration if duration else float("inf")
                while time.monotonic() < end and any(not c.closed.is_set() for c in result.clients):
                    screen.update(table())
                    await asyncio.sleep(min(0.25, max(end - time.monotonic(), 0)))
                phase[0] = "done"
                screen.update(table())
            finally:
                await result.close()

    class Quiet:
        def update(self, _: Table) -> None:
            pass

    interrupted = False
    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        interrupted = True
    if not as_json and not out.is_terminal:
        out.line()  # a terminal's live table ends with one
    held = time.monotonic() - begun - result.seconds
    summary = {"devices": len(fleet), "connected": result.connected, "refused": result.refused,
               "failed": result.failed, "subDeviceLogins": result.sub_logins,
               "loginSeconds": round(result.seconds, 3), "loginsPerSecond": round(result.logins_per_s, 1),
               "heldSeconds": round(max(held, 0), 1)}
    if cleanup:
        removed, products = run_op(settings, lambda s: simulation.remove_fleet(s, org_id))
        summary.update(removedDevices=removed, removedProducts=products)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        typer.echo(f"{result.connected} of {len(fleet)} devices logged in, in {result.seconds:.2f} s "
                   f"({result.logins_per_s:.0f} logins/s)\n"
                   f"{result.sub_logins} sub-devices logged in through their gateways; {result.refused} refused, "
                   f"{result.failed} failed\nconnected for {max(held, 0):.1f} s, then "
                   f"{'interrupted (Ctrl-C)' if interrupted else 'disconnected'}")
        if cleanup:
            typer.echo(f"removed {summary['removedDevices']} devices and {summary['removedProducts']} products")
    if result.refused or result.failed:
        raise typer.Exit(1)


@cli.command("decrypt-secret")
def decrypt_secret(
    private_key: Annotated[Path, typer.Option("--private-key", help="The application's RSA private key (PEM).",
                                              show_default=False)],
    response: Annotated[Path | None, typer.Option("--response", help="A v2.4 JSON response ('-' for stdin).",
                                                  show_default=False)] = None,
    secret: Annotated[str | None, typer.Option("--secret", help="An encrypted deviceSecret/productSecret.",
                                               show_default=False)] = None,
    session_key: Annotated[str | None, typer.Option("--session-key", help="The sessionKey beside it.",
                                                    show_default=False)] = None,
) -> None:
    """Decrypt the secrets of a v2.4 requireSecret answer.

    With the application's private key: a whole saved answer (--response) or one value.
    """
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
living_cli = typer.Typer(help="Living Platform users, auth codes, product metadata.", **HELP)
living_user_cli = typer.Typer(help="End users of an organization.", **HELP)
living_product_cli = typer.Typer(help="Living metadata of products.", **HELP)
cli.add_typer(living_cli, name="living")
living_cli.add_typer(living_user_cli, name="user")
living_cli.add_typer(living_product_cli, name="product")
IdentityId = Annotated[str, typer.Argument(help="The user's identity id.", show_default=False)]


@living_user_cli.command("create")
def living_user_create(org: Org, login: Annotated[str, typer.Option("--login", help="The user's login name.",
                                                                    show_default=False)],
                       data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Create an end user.

    What the app's own account system maps its user to.
    """
    user = run_op(settings_for(data_dir), lambda s: s.living.create_user(org, login))
    emit([plain(user)], as_json, ["identity_id", "org_id", "login", "create_time"])


@living_user_cli.command("list")
def living_user_list(org: Org, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List an organization's end users."""
    users = run_op(settings_for(data_dir), lambda s: s.living.list_users(org))
    emit([plain(u) for u in users], as_json, ["identity_id", "org_id", "login", "create_time"])


@living_user_cli.command("auth-code")
def living_auth_code(identity_id: IdentityId, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Mint a single-use auth code for /account/createSessionByAuthCode."""
    code, expire = run_op(settings_for(data_dir), lambda s: s.living.mint_auth_code(identity_id))
    if as_json:
        emit([{"auth_code": code, "identity_id": identity_id, "expire_time": expire}], True, [])
        return
    typer.echo(f"auth code: {code}  (single use, expires at {expire} ms)")


@living_user_cli.command("logout")
def living_logout(identity_id: IdentityId, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """End every session (iotToken and refreshToken) of a user."""
    ended = run_op(settings_for(data_dir), lambda s: s.living.end_sessions(identity_id))
    emit([{"identity_id": identity_id, "ended": ended}], as_json, ["identity_id", "ended"])


def _opt(help_text: str) -> Any:
    return typer.Option(help=help_text + " [default: unchanged]", show_default=False)


@living_product_cli.command("set")
def living_product_set(
    org: Org,
    product_key: Annotated[str, typer.Option("--product-key", help="Product key.", show_default=False)],
    status: Annotated[str | None, _opt("development or published")] = None,
    net_type: Annotated[int | None, _opt("0 LoRa, 3 Wi-Fi, 4 ZigBee, 5 BT, 6 cellular, 7 Ethernet, 8 other")] = None,
    category_key: Annotated[str | None, _opt("Category key, e.g. Light")] = None,
    category_name: Annotated[str | None, _opt("Category name")] = None,
    category_id: Annotated[int | None, _opt("Category id")] = None,
    bind_window: Annotated[int | None, _opt("Time-window bind: seconds after a device connects")] = None,
    require_permit_join: Annotated[bool | None, typer.Option(
        "--require-permit-join/--no-require-permit-join",
        help="Sub-devices join a gateway only while it permits joining [default: unchanged]",
        show_default=False)] = None,
    data_dir: DataDir = None, as_json: AsJson = False,
) -> None:
    """Set the Living metadata of a product.

    What the provisioning APIs show and check: status, network type, category, bind window.
    """
    from thingport.services.living_accounts import MetaPatch

    patch = MetaPatch(status, net_type, None, category_key, category_name, category_id, bind_window,
                      require_permit_join)
    meta = run_op(settings_for(data_dir), lambda s: s.living.set_product_meta(org, product_key, patch))
    emit([plain(meta)], as_json, ["product_key", "status", "net_type", "category_key"])


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
