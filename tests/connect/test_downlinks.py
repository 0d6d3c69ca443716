"""Registry events reaching devices on the embedded broker: replaced, disabled and deleted devices are
told and closed."""

from __future__ import annotations

import json

import pytest

from tests.connect.conftest import Door, MakeDevice, connect, status_is
from tests.support.device_login import enos_connect
from thingport.domain.models import DeviceStatus
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef


async def test_replace_closes_the_session_and_only_the_new_secret_works(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    view = await services.devices.replace_key(caller, DeviceRef(asset_id=dev.asset_id), "new-key")
    assert await client.wait_disconnected()
    await status_is(services, caller, dev.asset_id, DeviceStatus.INACTIVE)
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 4
    assert (await connect(door, enos_connect(service_product, "new-key", dev.secret)))[1] == 4
    fresh, rc = await connect(door, enos_connect(service_product, "new-key", view.device.secret))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await fresh.close()


@pytest.mark.parametrize("action", ["disable", "delete"])
async def test_disable_and_delete_are_notified_then_the_session_closes(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice,
        action: str) -> None:
    dev = await make_device(service_product)
    client, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    ref = DeviceRef(asset_id=dev.asset_id)
    if action == "disable":
        await services.devices.set_enabled(caller, ref, False)
    else:
        await services.devices.delete(caller, ref)
    msg = await client.receive()
    assert msg.topic == f"/sys/{service_product}/{dev.device_key}/thing/{action}"
    assert json.loads(msg.payload)["method"] == f"thing.{action}"
    assert await client.wait_disconnected()
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 4
