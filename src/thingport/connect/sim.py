"""Simulated devices: many EnOS-signed MQTT logins that stay connected, for demos and load.

``thingport sim`` and the connect-storm benchmark both use :func:`storm`: it logs devices in
with bounded concurrency, optionally has each gateway log its sub-devices in (``combine/login``),
and reports how long the logins took. :func:`create_fleet` reuses the simulator's products (and
their devices) from earlier runs in the organization, and :func:`remove_fleet` deletes them.
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
from thingport.domain.expression import DEVICE_FIELDS, PRODUCT_FIELDS
from thingport.domain.expression import parse as parse_expr
from thingport.domain.models import Device, I18nText, Page, ProductType
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
                credentials: dict[str, tuple[str, str, str]] | None = None, keep_alive: int = 120,
                result: StormResult | None = None) -> StormResult:
    """Log every device in; ``credentials`` (device key → client id, user, password) overrides signing.

    ``result``, when given, is filled in as logins complete (a caller can show progress from it).
    """
    sem = asyncio.Semaphore(concurrency)
    result = result if result is not None else StormResult([], 0, 0, 0, 0, 0.0)

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


#: The product tag that marks the simulator's products, and its value per role.
SIM_TAG = "thingport-sim"
ROLES = {"device": ProductType.DEVICE, "gateway": ProductType.GATEWAY, "sub-device": ProductType.DEVICE}


async def create_fleet(services: Services, org_id: str, *, devices: int, gateways: int = 0,
                       subs_per_gateway: int = 0, model_id: str | None = None) -> list[SimDevice]:
    """Devices for a simulation in ``org_id``; gateways get their sub-devices.

    The simulator's products (tagged ``thingport-sim``) and their devices are reused from earlier
    runs, and only what is missing is created, so repeated runs do not pile up products or devices.
    """
    caller = Caller.operator(org_id)
    products = await _sim_products(services, org_id)

    async def product(role: str) -> str:
        if role not in products:
            models = await services.accounts.list_models(org_id)
            model = model_id or (models[0].model_id if models else
                                 (await services.accounts.create_model(org_id, "sim-model")).model_id)
            spec = ProductSpec(I18nText(f"sim {role}"), ROLES[role], "Json", model, False, tags={SIM_TAG: role})
            products[role] = (await services.products.create(caller, spec)).product_key
        return products[role]

    async def existing(pk: str, n: int, gateway: Device | None = None) -> list[Device]:
        """Up to ``n`` enabled devices of product ``pk`` (under ``gateway``) from earlier runs."""
        expr = parse_expr(f'productKey = "{pk}" and status != "disabled"', DEVICE_FIELDS)
        ref = DeviceRef(asset_id=gateway.asset_id) if gateway is not None else None
        found: list[Device] = []
        page = Page(1, services.core.settings.max_page_size)
        while len(found) < n:
            views, total = await services.devices.search(caller, expr, page, gateway=ref)
            found += [v.device for v in views]
            if page.number * page.size >= total:
                break
            page = Page(page.number + 1, page.size)
        return found[:n]

    async def make(pk: str, n: int, have: list[Device]) -> list[Device]:
        out = list(have)
        for start in range(len(out), n, services.core.settings.max_batch_size):
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
        pk = await product("device")
        made = await make(pk, devices, await existing(pk, devices))
        fleet += [SimDevice(d.product_key, d.device_key, d.secret) for d in made]
    if gateways:
        gw_pk = await product("gateway")
        sub_pk = await product("sub-device") if subs_per_gateway else ""
        for gw in await make(gw_pk, gateways, await existing(gw_pk, gateways)):
            subs: list[Device] = []
            if subs_per_gateway:
                have = await existing(sub_pk, subs_per_gateway, gw)
                subs = await make(sub_pk, subs_per_gateway, have)
                added = [DeviceRef(asset_id=s.asset_id) for s in subs[len(have):]]
                if added:
                    await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id), added)
            fleet.append(SimDevice(gw.product_key, gw.device_key, gw.secret,
                                   tuple(SimDevice(s.product_key, s.device_key, s.secret) for s in subs)))
    return fleet


async def remove_fleet(services: Services, org_id: str) -> tuple[int, int]:
    """Delete the simulator's products in ``org_id`` and every device in them; (devices, products)."""
    caller = Caller.operator(org_id)
    products = await _sim_products(services, org_id)
    removed = 0
    for role in ("sub-device", "device", "gateway"):  # sub-devices before the gateways they belong to
        if role not in products:
            continue
        expr = parse_expr(f'productKey = "{products[role]}"', DEVICE_FIELDS)
        while True:
            views, _ = await services.devices.search(caller, expr, Page(1, services.core.settings.max_page_size))
            if not views:
                break
            for v in views:
                await services.devices.delete(caller, DeviceRef(asset_id=v.device.asset_id))
                removed += 1
        await services.products.delete(caller, products[role])
    return removed, len(products)


async def _sim_products(services: Services, org_id: str) -> dict[str, str]:
    """role → product key of the simulator's products in ``org_id``."""
    found, _ = await services.products.search(Caller.operator(org_id),
                                              parse_expr(f"exists(productTags.{SIM_TAG})", PRODUCT_FIELDS),
                                              Page(1, 100))
    return {p.tags[SIM_TAG]: p.product_key for p in sorted(found, key=lambda p: p.create_time)
            if p.tags.get(SIM_TAG) in ROLES}
