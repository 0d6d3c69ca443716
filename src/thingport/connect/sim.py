"""Simulated devices: many EnOS-signed MQTT logins that stay connected, for demos and load.

``thingport sim`` and the connect-storm benchmark both use :func:`storm`: it logs devices in
with bounded concurrency, optionally has each gateway log its sub-devices in (``combine/login``),
and reports how long the logins took.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from thingport.connect.mqtt.client import ConnectRefused, MqttClient
from thingport.crypto.device_sign import enos_sign
from thingport.domain.errors import DomainError
from thingport.domain.models import Device, I18nText, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.products import ProductSpec

SIGN_METHOD = "sha256"


@dataclass(frozen=True, slots=True)
class SimDevice:
    product_key: str
    device_key: str
    secret: str = field(repr=False)
    subs: tuple[SimDevice, ...] = ()


def enos_login(dev: SimDevice, timestamp: str | None = None) -> tuple[str, str, str]:
    """Client id, user name and password of an EnOS static (securemode=2) login."""
    ts = timestamp or str(int(time.time() * 1000))
    fields = {"clientId": dev.device_key, "deviceKey": dev.device_key, "productKey": dev.product_key,
              "timestamp": ts}
    password = enos_sign(dev.secret, fields, SIGN_METHOD)
    client_id = f"{dev.device_key}|securemode=2,signmethod={SIGN_METHOD},timestamp={ts}|"
    return client_id, f"{dev.device_key}&{dev.product_key}", password


@dataclass(slots=True)
class StormResult:
    clients: list[MqttClient]
    connected: int
    refused: int
    failed: int
    sub_logins: int
    seconds: float

    @property
    def logins_per_s(self) -> float:
        return self.connected / self.seconds if self.seconds else 0.0

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)


async def storm(host: str, port: int, devices: Sequence[SimDevice], *, concurrency: int = 100,
                credentials: dict[str, tuple[str, str, str]] | None = None, keep_alive: int = 120) -> StormResult:
    """Log every device in; ``credentials`` (device key → client id, user, password) overrides signing."""
    sem = asyncio.Semaphore(concurrency)
    result = StormResult([], 0, 0, 0, 0, 0.0)

    async def one(dev: SimDevice) -> None:
        client_id, user, password = (credentials or {}).get(dev.device_key) or enos_login(dev)
        client = MqttClient(client_id, username=user, password=password, keep_alive=keep_alive)
        async with sem:
            try:
                await client.connect(host, port)
            except ConnectRefused:
                result.refused += 1
                return
            except (OSError, TimeoutError):
                result.failed += 1
                return
        result.clients.append(client)
        result.connected += 1
        if dev.subs:
            accepted = await _login_subs(client, dev)  # not `+= await`: that reads the total before awaiting
            result.sub_logins += accepted

    start = time.perf_counter()
    await asyncio.gather(*(one(d) for d in devices))
    result.seconds = time.perf_counter() - start
    return result


async def _login_subs(client: MqttClient, gateway: SimDevice) -> int:
    """``combine/login`` each sub-device through its gateway; returns how many were accepted."""
    topic = f"/ext/session/{gateway.product_key}/{gateway.device_key}/combine/login"
    replies: asyncio.Queue[bytes] = asyncio.Queue()
    client.on_message = lambda t, p: replies.put_nowait(p) if t == topic + "_reply" else None
    accepted = 0
    for i, sub in enumerate(gateway.subs):
        ts = str(int(time.time() * 1000))
        fields = {"clientId": sub.device_key, "deviceKey": sub.device_key, "productKey": sub.product_key,
                  "timestamp": ts}
        params = {**fields, "signMethod": SIGN_METHOD, "sign": enos_sign(sub.secret, fields, SIGN_METHOD),
                  "secureMode": "2"}
        await client.publish(topic, json.dumps({"id": str(i), "version": "1.0", "method": "combine.login",
                                                "params": params}).encode())
        try:
            reply = json.loads(await asyncio.wait_for(replies.get(), 10))
        except TimeoutError:
            continue
        accepted += reply.get("code") == 200
    return accepted


async def create_fleet(services: Services, org_id: str, *, devices: int, gateways: int = 0,
                       subs_per_gateway: int = 0, model_id: str | None = None) -> list[SimDevice]:
    """New products and devices in ``org_id`` for a simulation; gateways get their sub-devices."""
    caller = Caller.operator(org_id)
    models = await services.accounts.list_models(org_id)
    model = model_id or (models[0].model_id if models else
                         (await services.accounts.create_model(org_id, "sim-model")).model_id)

    async def product(kind: ProductType) -> str:
        spec = ProductSpec(I18nText(f"sim {kind.value.lower()}"), kind, "Json", model, False)
        return (await services.products.create(caller, spec)).product_key

    async def make(pk: str, n: int) -> list[Device]:
        out: list[Device] = []
        for start in range(0, n, services.core.settings.max_batch_size):
            count = min(services.core.settings.max_batch_size, n - start)
            specs: list[DeviceSpec | DomainError] = [DeviceSpec(pk, I18nText("sim"), "+00:00")
                                                     for _ in range(count)]
            for r in await services.devices.batch_create(caller, specs):
                if isinstance(r, DomainError):
                    raise r
                out.append(r.device)
        return out

    fleet: list[SimDevice] = []
    if devices:
        fleet += [SimDevice(d.product_key, d.device_key, d.secret) for d in await make(await product(
            ProductType.DEVICE), devices)]
    if gateways:
        gw_pk = await product(ProductType.GATEWAY)
        sub_pk = await product(ProductType.DEVICE) if subs_per_gateway else ""
        for gw in await make(gw_pk, gateways):
            subs = await make(sub_pk, subs_per_gateway) if subs_per_gateway else []
            if subs:
                await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id),
                                                        [DeviceRef(asset_id=s.asset_id) for s in subs])
            fleet.append(SimDevice(gw.product_key, gw.device_key, gw.secret,
                                   tuple(SimDevice(s.product_key, s.device_key, s.secret) for s in subs)))
    return fleet
