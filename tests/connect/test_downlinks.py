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


async def test_a_grace_period_keeps_the_session_until_its_end(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    """The session on the old credential goes on; the sweep ends it at the period's end, not before; the old
    key and secret log in until then; the history notes the last use of each credential."""
    dev = await make_device(service_product)
    client, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    new = (await services.devices.replace_key(caller, DeviceRef(dev.asset_id), "graced", grace_s=600)).device
    end = new.update_time + 600_000
    router = door.door.downlinks
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)  # no kick, still online
    session = door.door.live(dev.asset_id)
    assert session is not None and session.grace_end == end
    assert await router.sweep(end - 1) == 0 and not client.disconnected.is_set()
    second, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))  # the old pair
    assert rc == 0 and await client.wait_disconnected()  # one connection per device, as ever
    assert await router.sweep(end) == 1 and await second.wait_disconnected()
    fresh, rc = await connect(door, enos_connect(service_product, "graced", new.secret))
    assert rc == 0
    assert await router.sweep(end + 10_000) == 0 and not fresh.disconnected.is_set()  # the new one stays
    await door.door.connectivity.presence.flush()
    history = await services.devices.credentials(caller, DeviceRef(dev.asset_id))
    assert [(e.device_key, e.last_used is not None) for e in history] == [(dev.device_key, True), ("graced", True)]
    await fresh.close()


async def test_a_rotation_during_a_grace_period_ends_its_session_at_once(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    ref = DeviceRef(dev.asset_id)
    await services.devices.replace_key(caller, ref, "first-roll", grace_s=600)
    client, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))  # the old pair
    assert rc == 0
    await services.devices.replace_key(caller, ref, "second-roll", grace_s=600)
    assert await client.wait_disconnected()
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 4


@pytest.mark.slow  # waits for the period's end and the node's sweep (about two seconds)
async def test_the_sweep_ends_a_graced_session_by_itself(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await services.devices.replace_key(caller, DeviceRef(dev.asset_id), "short-grace", grace_s=1)
    assert await client.wait_disconnected()
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 4
