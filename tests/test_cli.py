"""The ``thingport`` command line, driven in-process (CliRunner) and, for ``serve``, as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from tests.support.processes import free_port, serve_argv, stop, wait_for_health
from thingport.cli import busy_port, cli, server_lock
from thingport.crypto import caller_secret
from thingport.crypto.keyring import Keyring
from thingport.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("THINGPORT_"):
            monkeypatch.delenv(name)
    return tmp_path / "data"


def run(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture
def rsa_key(tmp_path: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "app.key"
    public = tmp_path / "app.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_init_creates_the_data_directory(data_dir: Path) -> None:
    result = run("init", "--data-dir", str(data_dir))
    assert "initialised" in result.stdout
    assert {"master.key", "operator.token", "thingport.db"} <= {p.name for p in data_dir.iterdir()}
    assert (data_dir / "master.key").stat().st_mode & 0o077 == 0
    assert (data_dir / "operator.token").stat().st_mode & 0o077 == 0
    token = (data_dir / "operator.token").read_text()
    run("init", "--data-dir", str(data_dir))  # a second init keeps what exists
    assert (data_dir / "operator.token").read_text() == token


def test_orgs(data_dir: Path) -> None:
    d = str(data_dir)
    [org] = run_json("org", "create", "Acme", "--org-id", "o-acme", "--data-dir", d)
    assert org["org_id"] == "o-acme" and org["name"] == "Acme"
    [other] = run_json("org", "create", "Other", "--data-dir", d)
    listed = run_json("org", "list", "--data-dir", d)
    assert {o["org_id"] for o in listed} == {"o-acme", other["org_id"]}
    dup = run("org", "create", "Again", "--org-id", "o-acme", "--data-dir", d, ok=False)
    assert dup.exit_code == 2 and "o-acme" in dup.stderr
    table = run("org", "list", "--data-dir", d).stdout
    assert "o-acme" in table and "Acme" in table


def test_apps(data_dir: Path, rsa_key: tuple[Path, Path]) -> None:
    d = str(data_dir)
    run("org", "create", "Acme", "--org-id", "o-acme", "--data-dir", d)
    [app] = run_json("app", "create", "--org", "o-acme", "--name", "integration", "--data-dir", d)
    assert app["secret"] and app["app_key"] and app["org_id"] == "o-acme"
    assert "device:full" in app["permissions"] and app["rsa_public_key"] is False
    [reader] = run_json("app", "create", "--org", "o-acme", "--name", "reader", "--permission", "device:read",
                        "--public-key", str(rsa_key[1]), "--data-dir", d)
    assert reader["permissions"] == ["device:read"] and reader["rsa_public_key"] is True

    shown = run("app", "create", "--org", "o-acme", "--name", "[b]table[/b]", "--data-dir", d).stdout
    secret_line = next(line for line in shown.splitlines() if line.startswith("app secret:"))
    assert len(secret_line.split()[2]) == len(app["secret"])  # whole, even on an 80-column terminal
    assert "[b]table[/b]" in shown  # names are text, not rich markup
    run("app", "disable", next(line for line in shown.splitlines() if line.startswith("app key:")).split()[2],
        "--data-dir", d)
    listed = run_json("app", "list", "--org", "o-acme", "--data-dir", d)
    listed = [a for a in listed if a["name"] != "[b]table[/b]"]
    assert {a["app_key"] for a in listed} == {app["app_key"], reader["app_key"]}
    assert all("secret" not in a for a in listed)
    assert app["secret"] not in run("app", "list", "--data-dir", d).stdout

    [disabled] = run_json("app", "disable", app["app_key"], "--data-dir", d)
    assert disabled["disabled"] is True and "secret" not in disabled
    [enabled] = run_json("app", "enable", app["app_key"], "--data-dir", d)
    assert enabled["disabled"] is False
    [keyed] = run_json("app", "set-public-key", app["app_key"], str(rsa_key[1]), "--data-dir", d)
    assert keyed["rsa_public_key"] is True

    # rotating the secret with a grace period (docs/credentials.md): the new one shown once, the old never
    [rolled] = run_json("app", "rotate-secret", app["app_key"], "--grace", "3600", "--data-dir", d)
    assert rolled["secret"] != app["secret"] and rolled["previous_until"] and "previous_secret" not in rolled
    listed = run("app", "list", "--json", "--data-dir", d).stdout
    assert app["secret"] not in listed and rolled["secret"] not in listed and "previous_secret" not in listed
    shown = run("app", "rotate-secret", app["app_key"], "--data-dir", d).stdout
    assert "app secret:" in shown and rolled["secret"] not in shown
    late = run("app", "rotate-secret", app["app_key"], "--grace", "-1", "--data-dir", d, ok=False)
    assert late.exit_code == 2 and "grace" in late.stderr

    bad = run("app", "create", "--org", "o-acme", "--name", "x", "--permission", "root", "--data-dir", d, ok=False)
    assert bad.exit_code == 2 and "permission" in bad.stderr
    bad_pem = rsa_key[1].with_name("bad.pub")
    bad_pem.write_text("not a key")
    bad = run("app", "set-public-key", app["app_key"], str(bad_pem), "--data-dir", d, ok=False)
    assert bad.exit_code == 2 and "publicKey" in bad.stderr
    missing = run("app", "disable", "no-such-app", "--data-dir", d, ok=False)
    assert missing.exit_code == 2 and "no-such-app" in missing.stderr


def test_models(data_dir: Path) -> None:
    d = str(data_dir)
    run("org", "create", "Acme", "--org-id", "o-acme", "--data-dir", d)
    [model] = run_json("model", "create", "--org", "o-acme", "--model-id", "meter", "--name", "Meter", "--data-dir", d)
    assert model["model_id"] == "meter" and model["name"] == "Meter"
    run("model", "create", "--org", "o-acme", "--model-id", "inverter", "--data-dir", d)
    listed = run_json("model", "list", "--org", "o-acme", "--data-dir", d)
    assert {m["model_id"] for m in listed} == {"meter", "inverter"}
    dup = run("model", "create", "--org", "o-acme", "--model-id", "meter", "--data-dir", d, ok=False)
    assert dup.exit_code == 2


def test_master_key_rotate(data_dir: Path) -> None:
    d = str(data_dir)
    run("org", "create", "Acme", "--org-id", "o-acme", "--data-dir", d)
    run("app", "create", "--org", "o-acme", "--name", "integration", "--data-dir", d)
    old = Keyring.load(data_dir / "master.key").primary
    [rotated] = run_json("master-key", "rotate", "--data-dir", d)
    assert rotated["reencrypted"] >= 1 and rotated["key_id"] != old
    ring = Keyring.load(data_dir / "master.key")
    assert list(ring.keys) == [rotated["key_id"]]
    listed = run_json("app", "list", "--data-dir", d)  # still readable under the new key
    assert len(listed) == 1


def test_master_key_rotate_refuses_beside_a_server(data_dir: Path) -> None:
    run("init", "--data-dir", str(data_dir))
    before = (data_dir / "master.key").read_text()
    with server_lock(Settings(data_dir=data_dir), wait=False) as got:
        assert got
        result = run("master-key", "rotate", "--data-dir", str(data_dir), ok=False)
    assert result.exit_code == 1 and "/admin/v1/master-key/rotate" in result.stderr
    assert (data_dir / "master.key").read_text() == before


def test_decrypt_secret(tmp_path: Path, rsa_key: tuple[Path, Path]) -> None:
    private, public = rsa_key
    for plain in ("Z5YtZaQpK5IWocakV7zQ", "[bold]not markup[/bold] :smile: " + "x" * 120):
        secret, session = caller_secret.encrypt(public.read_text(), plain)
        result = run("decrypt-secret", "--private-key", str(private), "--secret", secret, "--session-key", session)
        assert result.stdout == plain + "\n"  # verbatim, unwrapped

    device_secret, device_session = caller_secret.encrypt(public.read_text(), "dev-secret-[1]")
    product_secret, product_session = caller_secret.encrypt(public.read_text(), "prod-secret")
    answer = {"code": 0, "msg": "OK", "data": [
        {"assetId": "a1", "deviceKey": "d1", "deviceSecret": device_secret, "sessionKey": device_session},
        {"productKey": "p1", "productSecret": product_secret, "sessionKey": product_session},
        {"assetId": "a2", "deviceKey": "d2"},
    ]}
    doc = tmp_path / "answer.json"
    doc.write_text(json.dumps(answer))
    decrypted = json.loads(run("decrypt-secret", "--private-key", str(private), "--response", str(doc)).stdout)
    assert decrypted["data"] == [
        {"assetId": "a1", "deviceKey": "d1", "deviceSecret": "dev-secret-[1]"},
        {"productKey": "p1", "productSecret": "prod-secret"},
        {"assetId": "a2", "deviceKey": "d2"},
    ]
    from_stdin = CliRunner().invoke(cli, ["decrypt-secret", "--private-key", str(private), "--response", "-"],
                                    input=json.dumps(answer))
    assert from_stdin.exit_code == 0 and json.loads(from_stdin.stdout) == decrypted

    nothing = run("decrypt-secret", "--private-key", str(private), ok=False)
    assert nothing.exit_code == 2


@pytest.mark.slow
@pytest.mark.subprocess
def test_serve_starts_a_real_server(data_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(serve_argv(data_dir, port), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        r = wait_for_health(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, what="thingport serve")
        assert r.json()["status"] == "ok"
        assert {"master.key", "operator.token", "thingport.db"} <= {p.name for p in data_dir.iterdir()}
        token = (data_dir / "operator.token").read_text().strip()
        orgs = httpx.get(f"http://127.0.0.1:{port}/admin/v1/orgs", headers={"Authorization": f"Bearer {token}"})
        assert orgs.status_code == 200 and orgs.json() == []
        second = subprocess.run(serve_argv(data_dir, free_port()), cwd=ROOT, capture_output=True, timeout=30)
        assert second.returncode == 1 and b"another Thingport server" in second.stderr
    finally:
        stop(proc)
    # uvicorn shuts down cleanly, then re-raises the signal it caught (so the status says SIGTERM).
    assert proc.returncode in (0, -signal.SIGTERM)
    assert proc.stdout is not None and b"Application shutdown complete" in proc.stdout.read()


# --------------------------------------------------------------------------------------------- help

def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_describes_every_command_and_option_in_80_columns() -> None:
    """Issue 15: defaults were missing ("HTTP port ."), flags read `--json <bool>`, commands had no description."""
    root = typer.main.get_command(cli)
    seen = 0
    for path, cmd in _commands(root):
        assert cmd.help, f"thingport {' '.join(path)} has no description"
        shown = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert shown.exit_code == 0, shown.output
        text = shown.stdout
        assert all(len(line) <= 80 for line in text.splitlines()), text
        assert "<bool>" not in text and "..." not in text.split("Commands:")[-1].replace("[ARGS]...", ""), text
        for p in cmd.params:
            if p.name in {"help", "install_completion", "show_completion"}:
                continue
            assert p.help, f"thingport {' '.join(path)}: {p.name} has no help"
            if p.default is not None and not getattr(p, "required", False):
                assert p.show_default is not False, f"thingport {' '.join(path)}: {p.name} hides its default"
        seen += 1
    assert seen > 30
    serve = run("serve", "--help").stdout
    for words in ("[default: 8080]", "[default: 1883]", "env THINGPORT_HTTP_PORT", "mqtt_tls_port"):
        assert words in " ".join(serve.split()), serve
    assert "--json / --no-json" in run("device", "list", "--help").stdout


def test_version() -> None:
    from thingport import __version__

    assert run("--version").stdout == f"thingport {__version__}\n"


# --------------------------------------------------------------------------------------------- busy ports

@pytest.fixture
def listening() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _serve_refused(data_dir: Path, *args: str) -> str:
    result = run("serve", "--data-dir", str(data_dir), *args, ok=False)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()  # one line, not a traceback
    return line


def test_a_busy_port_is_one_line_naming_the_setting(data_dir: Path, listening: int, tmp_path: Path) -> None:
    line = _serve_refused(data_dir, "--http-port", str(listening), "--mqtt-port", str(free_port()))
    assert f"HTTP port {listening}" in line and "--http-port" in line and "http_port setting" in line

    line = _serve_refused(data_dir, "--http-port", str(free_port()), "--mqtt-port", str(listening))
    assert f"MQTT port {listening}" in line and "--mqtt-port" in line and "mqtt_port setting" in line

    config = tmp_path / "tls.toml"
    config.write_text(f'mqtt_tls_cert = "c.pem"\nmqtt_tls_key = "k.pem"\nmqtt_tls_port = {listening}\n')
    line = _serve_refused(data_dir, "--config", str(config), "--http-port", str(free_port()),
                          "--mqtt-port", str(free_port()))
    assert f"MQTT/TLS port {listening}" in line and "mqtt_tls_port setting" in line


def test_busy_port_ignores_what_is_off(listening: int) -> None:
    settings = Settings(http_port=free_port(), mqtt_port=0, mqtt_tls_port=listening)  # no TLS files: no TLS port
    assert busy_port(settings) is None
    assert busy_port(replace(settings, mqtt_port=listening, mqtt_external_url="mqtt://broker:1883")) is None


# --------------------------------------------------------------------------------------------- products, devices

def _org(d: str, *models: str) -> None:
    run("org", "create", "Acme", "--org-id", "o-acme", "--data-dir", d)
    for m in models:
        run("model", "create", "--org", "o-acme", "--model-id", m, "--data-dir", d)


def test_products(data_dir: Path) -> None:
    d = str(data_dir)
    _org(d)
    none = run("product", "create", "--org", "o-acme", "--name", "Meter", "--data-dir", d, ok=False)
    assert none.exit_code == 2 and "thingport model create --org o-acme" in none.stderr
    run("model", "create", "--org", "o-acme", "--model-id", "meter", "--data-dir", d)
    [meter] = run_json("product", "create", "--org", "o-acme", "--name", "Meter", "--tag", "site=north",
                       "--data-dir", d)
    assert meter["model_id"] == "meter" and meter["type"] == "Device" and meter["secret"]
    assert meter["tags"] == {"site": "north"}
    shown = run("product", "create", "--org", "o-acme", "--name", "Hub", "--gateway", "--dynamic-activation",
                "--data-dir", d).stdout
    assert "Gateway" in shown and "product secret: " in shown
    run("model", "create", "--org", "o-acme", "--model-id", "other", "--data-dir", d)
    two = run("product", "create", "--org", "o-acme", "--name", "X", "--data-dir", d, ok=False)
    assert two.exit_code == 2 and "meter, other" in two.stderr

    assert {p["name"] for p in run_json("product", "list", "--org", "o-acme", "--data-dir", d)} == {"Meter", "Hub"}
    [hub] = run_json("product", "list", "--org", "o-acme", 'productType = "Gateway"', "--data-dir", d)
    assert hub["dynamic_activation"] is True and "secret" not in hub
    bad = run("product", "list", "--org", "o-acme", "colour = 1", "--data-dir", d, ok=False)
    assert bad.exit_code == 2 and "colour" in bad.stderr
    [got] = run_json("product", "get", "--org", "o-acme", meter["product_key"], "--show-secret", "--data-dir", d)
    assert got["secret"] == meter["secret"]
    assert "secret" not in run_json("product", "get", "--org", "o-acme", meter["product_key"], "--data-dir", d)[0]
    run("product", "delete", "--org", "o-acme", hub["product_key"], "--data-dir", d)
    gone = run("product", "get", "--org", "o-acme", hub["product_key"], "--data-dir", d, ok=False)
    assert gone.exit_code == 2 and hub["product_key"] in gone.stderr


def test_devices(data_dir: Path) -> None:
    d = str(data_dir)
    _org(d, "meter")
    [product] = run_json("product", "create", "--org", "o-acme", "--name", "Meter", "--data-dir", d)
    pk = product["product_key"]
    [dev] = run_json("device", "create", "--org", "o-acme", "--product", pk, "--key", "meter-0001",
                     "--tag", "site=north", "--timezone", "Europe/Paris", "--data-dir", d)
    assert dev["device_key"] == "meter-0001" and dev["status"] == "inactive" and len(dev["secret"]) == 20
    shown = run("device", "create", "--org", "o-acme", "--product", pk, "--name", "[b]second[/b]",
                "--data-dir", d).stdout
    secret_line = next(line for line in shown.splitlines() if line.startswith("device secret: "))
    assert len(secret_line.split()[2]) == 20 and "[b]second[/b]" in shown
    assert all(len(line) <= 80 for line in shown.splitlines())

    listed = run_json("device", "list", "--org", "o-acme", "--data-dir", d)
    assert len(listed) == 2 and all("secret" not in r for r in listed)
    [north] = run_json("device", "list", "--org", "o-acme", 'deviceTags.site = "north"', "--product", pk,
                       "--data-dir", d)
    assert north["asset_id"] == dev["asset_id"]
    assert run_json("device", "list", "--org", "o-acme", "--product", "nope", "--data-dir", d) == []
    assert "1 of 2 shown" in run("device", "list", "--org", "o-acme", "--limit", "1", "--data-dir", d).stdout

    by_key = run_json("device", "get", "--org", "o-acme", f"{pk}/meter-0001", "--data-dir", d)[0]
    assert by_key == {k: v for k, v in dev.items() if k != "secret"} and by_key["timezone"] == "Europe/Paris"
    [with_secret] = run_json("device", "get", "--org", "o-acme", dev["asset_id"], "--show-secret", "--data-dir", d)
    assert with_secret["secret"] == dev["secret"]

    [replaced] = run_json("device", "replace-key", "--org", "o-acme", dev["asset_id"], "meter-0001-b", "--data-dir", d)
    assert replaced["asset_id"] == dev["asset_id"] and replaced["device_key"] == "meter-0001-b"
    assert replaced["secret"] != dev["secret"] and replaced["tags"] == {"site": "north"}
    old = run("device", "get", "--org", "o-acme", f"{pk}/meter-0001", "--data-dir", d, ok=False)
    assert old.exit_code == 2 and "meter-0001" in old.stderr
    # with a grace period (docs/credentials.md), and the history that records both
    [graced] = run_json("device", "replace-key", "--org", "o-acme", dev["asset_id"], "meter-0001-c", "--grace", "60",
                        "--data-dir", d)
    assert graced["device_key"] == "meter-0001-c" and graced["secret"] != replaced["secret"]
    too_long = run("device", "replace-key", "--org", "o-acme", dev["asset_id"], "meter-0001-d", "--grace",
                   str(31 * 86_400), "--data-dir", d, ok=False)
    assert too_long.exit_code == 2 and "grace" in too_long.stderr
    history = run_json("device", "credentials", "--org", "o-acme", dev["asset_id"], "--data-dir", d)
    assert [(h["device_key"], h["end_reason"]) for h in history] == [
        ("meter-0001", "replaced"), ("meter-0001-b", "replaced"), ("meter-0001-c", None)]
    assert history[1]["end_time"] - history[2]["issue_time"] == 60_000
    assert all(h["issued_by"].startswith("operator:") for h in history[1:])  # the audit trail's actor
    assert replaced["secret"] not in run("device", "credentials", "--org", "o-acme", dev["asset_id"],
                                         "--data-dir", d).stdout

    [disabled] = run_json("device", "disable", "--org", "o-acme", dev["asset_id"], "--data-dir", d)
    assert disabled["status"] == "disabled"
    again = run("device", "disable", "--org", "o-acme", dev["asset_id"], "--data-dir", d, ok=False)
    assert again.exit_code == 2 and "already disabled" in again.stderr
    assert run_json("device", "enable", "--org", "o-acme", dev["asset_id"], "--data-dir", d)[0]["status"] == "inactive"

    run("device", "delete", "--org", "o-acme", dev["asset_id"], "--data-dir", d)
    assert len(run_json("device", "list", "--org", "o-acme", "--data-dir", d)) == 1
    busy = run("product", "delete", "--org", "o-acme", pk, "--data-dir", d, ok=False)
    assert busy.exit_code == 2 and "still has 1 devices" in busy.stderr


def test_changes_beside_a_running_server_say_what_happens_to_an_open_session(data_dir: Path) -> None:
    d = str(data_dir)
    _org(d, "meter")
    [product] = run_json("product", "create", "--org", "o-acme", "--name", "Meter", "--data-dir", d)
    [dev] = run_json("device", "create", "--org", "o-acme", "--product", product["product_key"], "--data-dir", d)
    with server_lock(Settings(data_dir=data_dir), wait=False):
        changed = run("device", "disable", "--org", "o-acme", dev["asset_id"], "--data-dir", d)
    assert "closes an MQTT session of this device that is open now within 250 ms" in changed.stderr
    assert "note" not in run("device", "enable", "--org", "o-acme", dev["asset_id"], "--data-dir", d).stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_device_connect(data_dir: Path, tmp_path: Path) -> None:
    """Log in, be refused with an old secret, be told when the server ends the session."""
    from tests.support.live_server import live_server

    settings = Settings(data_dir=data_dir, mqtt_port=free_port())
    d, port = str(data_dir), str(settings.mqtt_port)
    _org(d, "meter")
    [product] = run_json("product", "create", "--org", "o-acme", "--name", "Meter", "--data-dir", d)
    pk = product["product_key"]
    [dev] = run_json("device", "create", "--org", "o-acme", "--product", pk, "--key", "meter-1", "--data-dir", d)
    with live_server(settings):
        ok = run("device", "connect", "--org", "o-acme", f"{pk}/meter-1", "--duration", "0.2", "--mqtt-port", port,
                 "--data-dir", d)
        assert "connected: the login was accepted" in ok.stdout and "left after 0.2 s" in ok.stdout

        refused = run("device", "connect", "--org", "o-acme", f"{pk}/meter-1", "--secret", "wrong" * 4,
                      "--mqtt-port", port, "--data-dir", d, ok=False)
        assert refused.exit_code == 1 and "refused: CONNACK 4, bad user name or password" in refused.stdout

        # A first session in another process; a second login of the device takes over, ending the first.
        first = subprocess.Popen([str(Path(sys.executable).with_name("thingport")), "device", "connect", "--org",
                                  "o-acme", dev["asset_id"], "--duration", "20", "--mqtt-port", port,
                                  "--data-dir", d], stdout=subprocess.PIPE, text=True,
                                 env={k: v for k, v in os.environ.items() if not k.startswith("THINGPORT_")})
        try:
            assert first.stdout is not None
            assert "connecting" in first.stdout.readline() and "connected" in first.stdout.readline()
            run("device", "connect", "--org", "o-acme", dev["asset_id"], "--duration", "0.2", "--mqtt-port", port,
                "--data-dir", d)
            rest = first.communicate(timeout=15)[0]
        finally:
            stop(first)
        assert first.returncode == 1 and "the server closed the session" in rest

    closed = run("device", "connect", "--org", "o-acme", f"{pk}/meter-1", "--mqtt-port", port, "--data-dir", d,
                 ok=False)
    assert closed.exit_code == 1 and "cannot connect to 127.0.0.1" in closed.stdout


def test_ca_commands_and_certificate_history(data_dir: Path, tmp_path: Path) -> None:
    """``thingport ca list|bundle|rotate|import`` and ``device certificates`` (docs/certificates.md)."""
    import asyncio

    from tests.support.certs import csr, device_key
    from thingport.app import open_services
    from thingport.crypto import ca as cacrypto
    from thingport.domain.models import I18nText, ProductType, now_ms
    from thingport.services.context import Caller
    from thingport.services.devices import DeviceRef, DeviceSpec
    from thingport.services.products import ProductSpec
    from thingport.settings import Settings

    d = str(data_dir)
    run("org", "create", "Acme", "--org-id", "o1", "--data-dir", d)
    run("model", "create", "--org", "o1", "--model-id", "m1", "--data-dir", d)
    bundle = run("ca", "bundle", "--org", "o1", "--data-dir", d).stdout
    assert bundle.count("BEGIN CERTIFICATE") == 2
    rotated = run_json("ca", "rotate", "--org", "o1", "--authority", "ECC", "--data-dir", d)
    assert rotated[0]["authority"] == "ECC" and rotated[0]["signing"]
    listed = run_json("ca", "list", "--org", "o1", "--data-dir", d)
    assert sorted((c["authority"], c["signing"]) for c in listed) == [("ECC", False), ("ECC", True), ("RSA", True)]
    cert_pem, key_pem = cacrypto.new_ca("RSA", "mine", now_ms())
    (tmp_path / "ca.crt").write_text(cert_pem)
    (tmp_path / "ca.key").write_text(key_pem)
    imported = run_json("ca", "import", "--org", "o1", "--cert", str(tmp_path / "ca.crt"), "--key",
                        str(tmp_path / "ca.key"), "--data-dir", d)
    assert imported[0]["imported"] and imported[0]["certificate"] == cert_pem
    refused = run("ca", "import", "--org", "o1", "--cert", str(tmp_path / "ca.key"), "--key",
                  str(tmp_path / "ca.key"), "--data-dir", d, ok=False)
    assert refused.exit_code == 2 and "certificate" in refused.output

    async def issue() -> tuple[str, str]:
        """A device of a bi-directional product with a certificate, made through the services."""
        services = await open_services(Settings(data_dir=data_dir))
        caller = Caller.operator("o1")
        try:
            spec = ProductSpec(I18nText("Meter"), ProductType.DEVICE, "Json", "m1", True)
            pk = (await services.products.create(caller, spec)).product_key
            asset = (await services.devices.create(caller, DeviceSpec(pk, I18nText("d"), "+00:00"))).device.asset_id
            new = await services.certificates.apply(caller, DeviceRef(asset), csr(device_key("RSA")), 30, "RSA")
            return asset, new.record.cert_sn
        finally:
            await services.core.db.close()

    asset, sn = asyncio.run(issue())
    history = run_json("device", "certificates", "--org", "o1", asset, "--data-dir", d)
    assert [(h["cert_sn"], h["status"], h["issued_by"], h["authority"]) for h in history] == [
        (sn, "valid", "operator", "RSA")]
def test_commands_are_audited_as_the_os_user(data_dir: Path) -> None:
    import getpass

    from thingport.cli import run_op
    from thingport.store.audit import AuditFilter

    d = str(data_dir)
    run_json("org", "create", "Acme", "--org-id", "o-acme", "--data-dir", d)
    run("org", "create", "Again", "--org-id", "o-acme", "--data-dir", d, ok=False)
    run_json("org", "list", "--data-dir", d)
    records = run_op(Settings(data_dir=data_dir), lambda s: s.audit.search(AuditFilter(), 10))
    assert [(r.channel, r.action, r.actor, r.target, r.outcome) for r in records] == [
        ("cli", "thingport org create", f"operator:{getpass.getuser()}", "", "failed"),
        ("cli", "thingport org create", f"operator:{getpass.getuser()}", "o-acme", "ok")]
    assert "o-acme exists" in records[0].error
