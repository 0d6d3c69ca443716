"""A throw-away Thingport for tests: free ports, the embedded MQTT broker, SQLite in a temporary
directory, and helpers that make organizations, applications, products and devices with their
credentials (docs/testing.md).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from thingport.testing.enos import EnosClient

Mode = Literal["process", "thread"]


@dataclass(frozen=True, slots=True)
class App:
    """An application (EnOS appKey/appSecret, also OceanConnect appId/secret and the Living app key)."""

    org_id: str
    app_key: str
    secret: str = field(repr=False)
    #: PEM of the RSA private key v2.4 secrets are encrypted for, when made with ``rsa_key=True``.
    private_key_pem: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Product:
    org_id: str
    product_key: str
    secret: str = field(repr=False)
    gateway: bool
    #: The application that made it (devices of it are made with the same one).
    app: App


@dataclass(frozen=True, slots=True)
class Device:
    """A device and what it logs in with: product key, device key (Alibaba deviceName) and secret."""

    org_id: str
    asset_id: str
    product_key: str
    device_key: str
    secret: str = field(repr=False)

    def enos_login(self, timestamp: str | None = None) -> tuple[str, str, str]:
        """MQTT client id, user name and password of an EnOS static login (sha256), for plain MQTT clients."""
        from thingport.connect.sim import SimDevice, enos_login

        return enos_login(SimDevice(self.product_key, self.device_key, self.secret), timestamp)


class ThingportServer:
    """A running Thingport: ``url`` (HTTP: every dialect and the admin API), ``mqtt_host`` and
    ``mqtt_port`` (the embedded broker), ``operator_token`` and ``data_dir``."""

    def __init__(self, url: str, mqtt_port: int, operator_token: str, data_dir: Path) -> None:
        self.url = url
        self.mqtt_host = "127.0.0.1"
        self.mqtt_port = mqtt_port
        self.operator_token = operator_token
        self.data_dir = data_dir
        self._http = httpx.Client(base_url=url, timeout=30.0,
                                  headers={"Authorization": f"Bearer {operator_token}"})
        self._clients: dict[str, EnosClient] = {}
        self._default_app: App | None = None
        self._default_product: Product | None = None
        self._lock = threading.Lock()

    @property
    def mqtt_url(self) -> str:
        """``tcp://127.0.0.1:PORT``, the form the EnOS device SDKs take."""
        return f"tcp://{self.mqtt_host}:{self.mqtt_port}"

    # --- the admin API -----------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/admin/v1{path}`` as the operator; raises on an answer other than 2xx."""
        r = self._http.request(method, f"/admin/v1{path}", json=body)
        if not r.is_success:
            raise AssertionError(f"{method} /admin/v1{path}: {r.status_code} {r.text}")
        return r.json() if r.content else None

    def create_org(self, name: str = "Test", *, org_id: str | None = None, model_id: str = "model") -> str:
        """A new organization with one thing model (``model_id``); returns its id."""
        org = self.admin("POST", "/orgs", {"name": name, **({"orgId": org_id} if org_id else {})})
        self.admin("POST", f"/orgs/{org['orgId']}/models", {"modelId": model_id})
        return str(org["orgId"])

    def create_app(self, org_id: str | None = None, *, name: str = "test", permissions: list[str] | None = None,
                   rsa_key: bool = False) -> App:
        """An application with every permission (or ``permissions``), in ``org_id`` or a new organization.

        ``rsa_key=True`` gives it an RSA key pair: v2.4 ``requireSecret`` answers are encrypted for it and
        ``App.private_key_pem`` decrypts them (``thingport.crypto.caller_secret.decrypt``).
        """
        org_id = org_id or self.create_org()
        body: dict[str, Any] = {"name": name}
        if permissions is not None:
            body["permissions"] = permissions
        private_pem = None
        if rsa_key:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()).decode()
            body["publicKey"] = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        app = self.admin("POST", f"/orgs/{org_id}/apps", body)
        return App(org_id, app["appKey"], app["appSecret"], private_pem)

    # --- the EnOS API --------------------------------------------------------------------------
    def enos(self, app: App | None = None) -> EnosClient:
        """An EnOS Connect Service client signing as ``app`` (default: :meth:`default_app`)."""
        app = app or self.default_app()
        with self._lock:
            if app.app_key not in self._clients:
                self._clients[app.app_key] = EnosClient(self.url, app.app_key, app.secret, app.org_id)
            return self._clients[app.app_key]

    def default_app(self) -> App:
        """One application (in its own organization) shared by the helpers called without one."""
        with self._lock:
            app = self._default_app
        if app is None:
            app = self.create_app()
            with self._lock:
                self._default_app = self._default_app or app
                app = self._default_app
        return app

    def create_product(self, app: App | None = None, *, name: str = "Test product", gateway: bool = False,
                       dynamic_activation: bool = False, model_id: str | None = None) -> Product:
        """A product made through the EnOS API by ``app`` (default: :meth:`default_app`)."""
        app = app or self.default_app()
        if model_id is None:
            models = self.admin("GET", f"/orgs/{app.org_id}/models")
            model_id = str(models[0]["modelId"]) if models else None
            if model_id is None:
                model_id = "model"
                self.admin("POST", f"/orgs/{app.org_id}/models", {"modelId": model_id})
        client = self.enos(app)
        body = {"productName": {"defaultValue": name}, "productType": "Gateway" if gateway else "Device",
                "dataFormat": "Json", "modelId": model_id, "biDirectionalAuth": False,
                "dynamicActivateEnabled": dynamic_activation}
        key = str(client.data("POST", "/connect-service/v2.1/products", {"action": "create"}, body))
        got = client.data("GET", "/connect-service/v2.1/products", {"action": "get", "productKey": key})
        return Product(app.org_id, key, got["productSecret"], gateway, app)

    def create_device(self, product: Product | None = None, *, device_key: str | None = None,
                      name: str | None = None, timezone: str = "+00:00", tags: dict[str, str] | None = None) -> Device:
        """A device of ``product`` (default: one product shared by such calls) made through the EnOS API."""
        if product is None:
            with self._lock:
                product = self._default_product
            if product is None:
                product = self.create_product()
                with self._lock:
                    self._default_product = self._default_product or product
                    product = self._default_product
        body: dict[str, Any] = {"productKey": product.product_key, "timezone": timezone,
                                "deviceName": {"defaultValue": name or device_key or "test device"}}
        if device_key is not None:
            body["deviceKey"] = device_key
        if tags:
            body["deviceTags"] = tags
        made = self.enos(product.app).data("POST", "/connect-service/v2.1/devices", {"action": "create"}, body)
        return Device(product.org_id, made["assetId"], made["productKey"], made["deviceKey"], made["deviceSecret"])

    def wait_for_status(self, device: Device, status: str, *, app: App | None = None,
                        timeout_s: float = 10.0) -> dict[str, Any]:
        """The device (EnOS v2.1 get) once its ``status`` is ``online``/``offline``/``inactive``.

        Online state is written in batches a few milliseconds after a login or a disconnect, so a
        test that reads it right after its client left may still see the state before.
        """
        client = self.enos(app)
        deadline = time.monotonic() + timeout_s
        while True:
            got: dict[str, Any] = client.data("GET", "/connect-service/v2.1/devices",
                                              {"action": "get", "assetId": device.asset_id})
            if got["status"] == status:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"device {device.asset_id} still {got['status']} after {timeout_s} s, "
                                     f"not {status}")
            time.sleep(0.02)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._http.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(settings: dict[str, Any]) -> str:
    lines = []
    for key, value in settings.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")
    return "\n".join(lines) + "\n"


@contextmanager
def start_server(directory: Path, *, mode: Mode = "process", settings: dict[str, Any] | None = None,
                 timeout_s: float = 60.0) -> Iterator[ThingportServer]:
    """Run Thingport until the block ends: ``process`` is ``thingport serve`` as a child process,
    ``thread`` the same application under uvicorn in a thread of this process.

    ``directory`` holds the data directory (SQLite, master key), ``thingport.toml`` and ``serve.log``.
    ``settings`` (docs/operations.md) override the defaults; ports are free ones unless given there.
    """
    directory.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(3):  # a free port can be taken between choosing and binding it; choose again
        values: dict[str, Any] = {"data_dir": str(directory / "data"), "host": "127.0.0.1",
                                  "http_port": free_port(), "mqtt_port": free_port(),
                                  "operator_token": secrets.token_urlsafe(24), "log_level": "warning",
                                  **(settings or {})}
        from thingport.cli import busy_port
        from thingport.settings import Settings

        if busy_port(Settings.load(None, env={}, **values)) is not None:
            continue
        try:
            starter = _process if mode == "process" else _thread
            with starter(directory, values, timeout_s) as server:
                yield server
            return
        except _PortTaken as exc:
            last = exc
    raise RuntimeError(f"Thingport could not start: {last or 'no free ports'}")


class _PortTaken(Exception):
    pass


def _wait_for_health(url: str, alive: Any, log: Path | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if not alive():
            text = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
            if "is in use" in text:
                raise _PortTaken(text.strip().splitlines()[-1])
            raise RuntimeError(f"thingport serve stopped during start-up; its output:\n{text}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Thingport did not answer {url}/health within {timeout_s:g} s")
        time.sleep(0.05)


@contextmanager
def _process(directory: Path, values: dict[str, Any], timeout_s: float) -> Iterator[ThingportServer]:
    config = directory / "thingport.toml"
    config.write_text(_toml(values))
    log = directory / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINGPORT_")}  # the TOML file alone decides
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "thingport.cli", "serve", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=directory)
    url = f"http://127.0.0.1:{values['http_port']}"
    server = None
    try:
        _wait_for_health(url, lambda: proc.poll() is None, log, timeout_s)
        server = ThingportServer(url, int(values["mqtt_port"]), str(values["operator_token"]), Path(values["data_dir"]))
        yield server
    finally:
        if server is not None:
            server.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def _thread(directory: Path, values: dict[str, Any], timeout_s: float) -> Iterator[ThingportServer]:
    import uvicorn

    from thingport.app import create_app
    from thingport.settings import Settings

    config = directory / "thingport.toml"
    config.write_text(_toml(values))
    settings = Settings.load(config, env={})
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.host, port=settings.http_port,
                                           log_level=settings.log_level, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"thingport-{settings.http_port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.http_port}"
    handle = None
    try:
        _wait_for_health(url, thread.is_alive, None, timeout_s)
        handle = ThingportServer(url, settings.mqtt_port, settings.operator_token, settings.data_dir)
        yield handle
    finally:
        if handle is not None:
            handle.close()
        server.should_exit = True
        thread.join(timeout=15)
