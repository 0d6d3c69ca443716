"""The ``thingport`` command line, driven in-process (CliRunner) and, for ``serve``, as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from tests.support.processes import free_port, serve_argv, stop, wait_for_health
from thingport.cli import cli, server_lock
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
