"""The MQTT front door on an embedded broker (ephemeral port) over the test services."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_product
from tests.support import mosquitto
from tests.support.device_login import enos_connect
from tests.support.mqtt_client import Device as MqttDevice
from thingport.connect.external import BrokerUrl, ExternalBroker, MqttLink
from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.broker import Broker
from thingport.domain.models import Device, DeviceStatus, I18nText, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.products import ProductSpec


@pytest.fixture
def broker_port(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of its own (external-broker mode)."""
    if mosquitto.binary() is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it: apt-get install mosquitto)")
    with mosquitto.running(tmp_path) as port:
        yield port


@dataclass
class Door:
    door: FrontDoor
    broker: Broker

    @property
    def port(self) -> int:
        return self.broker.port

    async def client(self, client_id: str, username: str, password: str) -> MqttDevice:
        return MqttDevice(self.port, client_id, username=username, password=password)


@contextlib.asynccontextmanager
async def embedded(front: FrontDoor) -> AsyncIterator[Door]:
    """The front door behind an embedded broker on an ephemeral port."""
    broker = Broker(front)
    front.attach(broker)
    await broker.start("127.0.0.1", 0)
    try:
        yield Door(front, broker)
    finally:
        await broker.stop()
        front.close()
        await front.connectivity.presence.flush()


@pytest.fixture
async def door(services: Services) -> AsyncIterator[Door]:
    async with embedded(FrontDoor(services)) as d:
        yield d


MakeDevice = Callable[..., Awaitable[Device]]


@pytest.fixture
def make_device(services: Services, caller: Caller) -> MakeDevice:
    async def make(product_key: str, key: str | None = None) -> Device:
        spec = DeviceSpec(product_key, I18nText(key or "device"), "+08:00", device_key=key)
        return (await services.devices.create(caller, spec)).device
    return make


@pytest.fixture
async def gateway_product(services: Services, caller: Caller) -> str:
    return await make_product(services, caller, ProductType.GATEWAY)


@pytest.fixture
async def dynamic_product(services: Services, caller: Caller) -> str:
    spec = ProductSpec(I18nText("Dynamic"), ProductType.DEVICE, "Json", "model1", False,
                       dynamic_activate_enabled=True)
    return (await services.products.create(caller, spec)).product_key


def request(method: str, params: Any, rid: str = "1") -> bytes:
    return json.dumps({"id": rid, "version": "1.0", "method": method, "params": params}).encode()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def status_is(services: Services, caller: Caller, asset_id: str, status: DeviceStatus) -> None:
    async def check() -> bool:
        return (await services.devices.get(caller, DeviceRef(asset_id=asset_id))).device.status is status
    await eventually(check)


async def connect(door: Door, fields: tuple[str, str, str]) -> tuple[MqttDevice, int]:
    client = await door.client(*fields)
    return client, await client.connect()


async def reply_to(client: MqttDevice, topic: str) -> dict[str, Any]:
    while True:
        msg = await client.receive()
        if msg.topic == topic:
            return dict(json.loads(msg.payload))


async def enos_gateway(door: Door, gw: Device, pk: str) -> MqttDevice:
    client, rc = await connect(door, enos_connect(pk, gw.device_key, gw.secret))
    assert rc == 0
    return client


# --- external-broker mode: Thingport nodes behind a Mosquitto of their own ---------------------

async def start_node(services: Services, port: int, name: str) -> ExternalBroker:
    node = ExternalBroker(FrontDoor(services), MqttLink(BrokerUrl("127.0.0.1", port, False), "thingport", name))
    await node.start()
    return node


@pytest.fixture
async def node(services: Services, broker_port: int) -> AsyncIterator[ExternalBroker]:
    n = await start_node(services, broker_port, "thingport-a")
    yield n
    await n.stop()


async def gateway_client(port: int, gw: Device, gateway_product: str) -> MqttDevice:
    client = MqttDevice(port, f"gw-{gw.device_key}")
    assert await client.connect() == 0
    await client.subscribe((f"/sys/{gateway_product}/{gw.device_key}/#", 1),
                           (f"/ext/session/{gateway_product}/{gw.device_key}/#", 1))
    return client
