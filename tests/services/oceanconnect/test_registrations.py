"""OceanConnect registrations: what the MQTT front door relies on, expiry, and the batch query."""

from __future__ import annotations

import pytest

from tests.support.sql import statements
from thingport.crypto.oceanconnect import BY_DEVICE_ID, BY_NODE_ID, mqtt_password, verify_mqtt_password
from thingport.domain.errors import DeviceKeyExists, DeviceOnline, DeviceStatusInvalid
from thingport.domain.models import I18nText, Organization
from thingport.services import events
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.oceanconnect.registrations import PASSWORD, VERIFY_CODE, DevicePatchOc, RegistrationSpec
from thingport.store.oceanconnect import DeviceQuery

TS = "2025041401"


async def kinds(services: Services, asset_id: str) -> list[str]:
    async with services.core.read() as conn:
        return [e.kind for e in await services.core.events.since(conn, 0) if e.asset_id == asset_id]


async def device_login(services: Services, ident: str, auth_type: int, secret: str) -> str | None:
    """What the front door does: look the credential up and check the device's password."""
    cred = await services.oceanconnect.registrations.login_credential(ident, auth_type)
    if cred is None or not verify_mqtt_password(cred.secret, TS, mqtt_password(secret, TS)):
        return None
    return cred.asset_id


async def test_device_life(services: Services, caller: Caller, org: Organization) -> None:
    oc = services.oceanconnect.registrations
    reg = await oc.register(caller, RegistrationSpec(VERIFY_CODE, "861234567890123", verify_code="Code-1"))
    did = reg.asset_id
    assert reg.timeout == 180 and reg.verify_code == "Code-1" and len(reg.psk) == 32
    # before the bind: only the nodeId with the verify code works
    assert await oc.login_credential(did, BY_DEVICE_ID) is None
    cred = await oc.login_credential("861234567890123", BY_NODE_ID)
    assert cred is not None and cred.binding and cred.secret == "Code-1" and cred.asset_id == did
    assert await device_login(services, "861234567890123", BY_NODE_ID, "wrong") is None
    bound = await oc.complete_bind(did)
    assert bound.device_id == did and len(bound.secret) == 20 and int(bound.secret, 16) >= 0
    with pytest.raises(DeviceStatusInvalid):
        await oc.complete_bind(did)
    assert await oc.login_credential("861234567890123", BY_NODE_ID) is not None
    assert await device_login(services, did, BY_DEVICE_ID, bound.secret) == did
    assert await device_login(services, did, BY_DEVICE_ID, "Code-1") is None
    await services.devices.mark_connected(did)
    assert (await oc.get(caller, did)).activated
    with pytest.raises(DeviceOnline):
        await oc.refresh_key(caller, did, None, None, None)
    await services.devices.mark_disconnected(did)
    code, timeout = await oc.refresh_key(caller, did, "861234567890999", None, 0)
    assert timeout == 0 and code
    # the old credentials are dead; the device re-binds by its new nodeId and verify code
    assert await device_login(services, did, BY_DEVICE_ID, bound.secret) is None
    assert await oc.login_credential("861234567890123", BY_NODE_ID) is None
    assert await device_login(services, "861234567890999", BY_NODE_ID, code) == did
    again = await oc.complete_bind(did)
    assert again.device_id == did and again.secret != bound.secret and again.node_id == "861234567890999"
    assert await device_login(services, did, BY_DEVICE_ID, again.secret) == did
    view = await services.devices.get(caller, DeviceRef(did))  # the same device through the registry
    assert view.device.device_key == "861234567890999" and (await oc.get(caller, did)).activated
    assert await kinds(services, did) == ["device.created", "device.bound", "device.connected",
                                         "device.disconnected", "device.replaced", "device.bound"]


async def test_password_mode_and_disabled(services: Services, caller: Caller, org: Organization) -> None:
    oc = services.oceanconnect.registrations
    reg = await oc.register(caller, RegistrationSpec(PASSWORD, "mqtt-node-1", secret="0123456789abcdef0123"))
    assert reg.secret == "0123456789abcdef0123" and reg.verify_code is None
    assert await device_login(services, reg.asset_id, BY_DEVICE_ID, "0123456789abcdef0123") == reg.asset_id
    assert await device_login(services, "mqtt-node-1", BY_NODE_ID, "0123456789abcdef0123") == reg.asset_id
    await services.devices.set_enabled(caller, DeviceRef(reg.asset_id), False)
    assert await oc.login_credential(reg.asset_id, BY_DEVICE_ID) is None
    assert await oc.login_credential("x", 1) is None


async def test_expiry(services: Services, caller: Caller, org: Organization) -> None:
    oc = services.oceanconnect.registrations
    never = await oc.register(caller, RegistrationSpec(VERIFY_CODE, "node-never", timeout=0))
    fresh = await oc.register(caller, RegistrationSpec(VERIFY_CODE, "node-fresh", timeout=5))
    refreshed = await oc.register(caller, RegistrationSpec(VERIFY_CODE, "node-refreshed"))
    await oc.complete_bind(refreshed.asset_id)
    await oc.refresh_key(caller, refreshed.asset_id, None, "again", 5)
    far = 10**15
    assert await oc.expire(far) == 2
    # a never-bound registration is gone with its device; a refreshed one keeps its device
    assert [v.device.asset_id for v in (await oc.search(caller, DeviceQuery(), 0, 50))[0]] == [
        refreshed.asset_id, never.asset_id]
    assert await kinds(services, fresh.asset_id) == ["device.created", "device.bind_expired", "device.deleted"]
    assert (await kinds(services, refreshed.asset_id))[-1] == "device.bind_expired"
    lapsed = await oc.login_credential("node-refreshed", BY_NODE_ID)  # no verify code any more
    assert lapsed is not None and not lapsed.binding and lapsed.secret != "again"
    assert await oc.login_credential("node-never", BY_NODE_ID) is not None
    assert await oc.expire(far) == 0



async def test_search_reads_a_page_at_once(services: Services, caller: Caller, org: Organization) -> None:
    oc = services.oceanconnect.registrations
    made = [(await oc.register(caller, RegistrationSpec(PASSWORD, f"page-{i:02}"))).asset_id for i in range(6)]
    with statements(services) as small:
        page, total = await oc.search(caller, DeviceQuery(ascending=True), 0, 2)
    with statements(services) as large:
        everything, _ = await oc.search(caller, DeviceQuery(ascending=True), 0, 50)
    assert total == 6 and [v.device.asset_id for v in page] == made[:2]
    assert [v.device.asset_id for v in everything] == made
    assert all(v.reg is not None and v.node_id == f"page-{i:02}" for i, v in enumerate(everything))
    assert len(large) == len(small)  # the count, the ids, then devices, products, registrations


async def test_mute_is_the_registry_rule(services: Services, caller: Caller, org: Organization) -> None:
    """OceanConnect's mute disables like the registry: offline at once, ``device.disabled``; the same
    value again changes nothing (no error, unlike the registry's own call)."""
    oc = services.oceanconnect.registrations
    did = (await oc.register(caller, RegistrationSpec(PASSWORD, "mute-node"))).asset_id
    await services.devices.mark_connected(did)
    await oc.modify(caller, did, DevicePatchOc(name="muted", enabled=False))
    device = (await oc.get(caller, did)).device
    assert not device.enabled and not device.online and device.last_offline_time is not None
    assert device.name.default == "muted"
    await oc.modify(caller, did, DevicePatchOc(enabled=False))
    with pytest.raises(DeviceStatusInvalid):
        await services.devices.set_enabled(caller, DeviceRef(did), False)
    await oc.modify(caller, did, DevicePatchOc(enabled=True))
    assert (await kinds(services, did))[1:] == ["device.connected", "device.disabled", "device.updated",
                                                "device.updated", "device.enabled", "device.updated"]


async def test_refresh_is_the_registry_key_rule(services: Services, caller: Caller, org: Organization) -> None:
    """A refresh replaces the key like the registry (new secret, ``device.replaced``, the key unique in
    the product) but keeps the activation, which the bind decides."""
    oc = services.oceanconnect.registrations
    did = (await oc.register(caller, RegistrationSpec(VERIFY_CODE, "refresh-node"))).asset_id
    await oc.complete_bind(did)
    await services.devices.mark_connected(did)
    await services.devices.mark_disconnected(did)
    product_key = (await oc.get(caller, did)).device.product_key
    await services.devices.create(caller, DeviceSpec(product_key, I18nText("other"), "UTC", "taken-key"))
    with pytest.raises(DeviceKeyExists) as taken:
        await oc.refresh_key(caller, did, "taken-key", None, None)
    assert taken.value.field == "nodeId" and taken.value.message == "nodeId: taken-key is used by another device"
    before = (await oc.get(caller, did)).device
    await oc.refresh_key(caller, did, "refreshed-node", None, None)
    view = await oc.get(caller, did)
    assert view.activated and view.device.active_time == before.active_time
    assert view.device.device_key == "refreshed-node" and view.device.secret != before.secret
    async with services.core.read() as conn:
        replaced = [events.decode(e) for e in await services.core.events.since(conn, 0) if e.kind == "device.replaced"]
    assert [e.payload for e in replaced if e] == [
        events.DeviceReplaced(product_key=product_key, device_key="refresh-node", new_device_key="refreshed-node")]
