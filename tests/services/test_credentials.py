"""The login credentials in memory: a login reads nothing, and every change that matters applies at
once (the bus's events), a read racing with a change included."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.support.sql import statements
from thingport.app import ensure_initialised
from thingport.cluster.feed import EventFeed
from thingport.crypto import device_sign
from thingport.crypto.keyring import KeyringError
from thingport.domain.errors import DeviceNotFound, DeviceStatusInvalid, InvalidArgument, Unauthenticated
from thingport.domain.models import Device, I18nText, ProductType
from thingport.services import credentials as credentials_module
from thingport.services.connectivity import Credential
from thingport.services.container import Services
from thingport.services.context import Caller, Core
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.events import Event, FeedLost, FeedResumed
from thingport.services.keys import rotate_master_key
from thingport.services.products import ProductPatch, ProductSpec
from thingport.settings import Settings
from thingport.store.db import Database
from thingport.store.schema import devices as devices_table


def signed(device: Device, secret: str | None = None, *, family: str = "enos", secure_mode: str = "2",
           product_key: str | None = None) -> Credential:
    fields = {"clientId": "c1", "productKey": product_key or device.product_key, "timestamp": "1"}
    sign = (device_sign.enos_sign(secret or device.secret, {**fields, "deviceKey": device.device_key}, "sha256")
            if family == "enos" else
            device_sign.alink_sign(secret or device.secret, {**fields, "deviceName": device.device_key}, "sha256"))
    return Credential(product_key or device.product_key, device.device_key, fields, "sha256", sign, secure_mode)


async def device(services: Services, caller: Caller, product: str) -> Device:
    return (await services.devices.create(caller, DeviceSpec(product, I18nText("d"), "+08:00"))).device


async def test_a_login_reads_nothing_once_loaded(services: Services, caller: Caller, service_product: str) -> None:
    devices = [await device(services, caller, service_product) for _ in range(3)]
    conn = services.connectivity
    assert await conn.credentials.load() == 3
    for d in devices:  # the first logins write the activations; the next ones write nothing
        await conn.login(signed(d), dynamic=True)
    with statements(services) as sql:
        for d in devices:
            assert (await conn.login(signed(d), dynamic=True)).device.asset_id == d.asset_id
    assert sql == []
    # a device created since is read once, then kept
    late = await device(services, caller, service_product)
    await conn.login(signed(late), dynamic=True)
    with statements(services) as sql:
        await conn.login(signed(late), dynamic=True)
    assert sql == []


async def test_a_replaced_key_is_refused_at_once(services: Services, caller: Caller, service_product: str) -> None:
    conn = services.connectivity
    d = await device(services, caller, service_product)
    await conn.credentials.load()
    await conn.login(signed(d), dynamic=True)
    view = await services.devices.replace_key(caller, DeviceRef(asset_id=d.asset_id), "new-key-1")
    with pytest.raises(DeviceNotFound):  # the old key names no device any more
        await conn.login(signed(d), dynamic=True)
    new = view.device
    with pytest.raises(Unauthenticated):  # the new key with the old secret
        await conn.login(signed(new, d.secret), dynamic=True)
    login = await conn.login(signed(new), dynamic=True)
    assert login.device.secret == new.secret and login.device.active  # inactive again, activated by this login


async def test_disable_enable_and_delete_apply_at_once(services: Services, caller: Caller,
                                                       service_product: str) -> None:
    conn = services.connectivity
    d = await device(services, caller, service_product)
    await conn.credentials.load()
    await conn.login(signed(d), dynamic=True)
    await services.devices.set_enabled(caller, DeviceRef(asset_id=d.asset_id), False)
    with pytest.raises(DeviceStatusInvalid):
        await conn.login(signed(d), dynamic=True)
    await services.devices.set_enabled(caller, DeviceRef(asset_id=d.asset_id), True)
    await conn.login(signed(d), dynamic=True)
    await services.devices.delete(caller, DeviceRef(asset_id=d.asset_id))
    with pytest.raises(DeviceNotFound):
        await conn.login(signed(d), dynamic=True)


async def test_a_product_change_applies_to_its_devices_at_once(services: Services, caller: Caller) -> None:
    conn = services.connectivity
    spec = ProductSpec(I18nText("Dyn"), ProductType.DEVICE, "Json", "model1", False, dynamic_activate_enabled=True)
    product = await services.products.create(caller, spec)
    d = await device(services, caller, product.product_key)
    await conn.credentials.load()
    def dynamic(on: bool) -> ProductPatch:
        return ProductPatch(I18nText("Dyn"), False, dynamic_activate_enabled=on)

    await services.products.update(caller, product.product_key, dynamic(False))
    with pytest.raises(Unauthenticated):  # the product secret no longer activates
        await conn.login(signed(d, product.secret, secure_mode="3"), dynamic=True)
    await services.products.update(caller, product.product_key, dynamic(True))
    login = await conn.login(signed(d, product.secret, secure_mode="3"), dynamic=True)
    assert login.activating
    with pytest.raises(DeviceStatusInvalid):  # activated now: the product secret is refused for it
        await conn.login(signed(d, product.secret, secure_mode="3"), dynamic=True)


async def test_a_rotated_master_key_reads_everything_again(services: Services, caller: Caller,
                                                           service_product: str) -> None:
    conn = services.connectivity
    devices = [await device(services, caller, service_product) for _ in range(2)]
    await conn.credentials.load()
    await rotate_master_key(services.core)
    assert len(conn.credentials) == 0  # forgotten at once, read again in the background
    for _ in range(100):
        if len(conn.credentials) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(conn.credentials) == 2
    for d in devices:
        await conn.login(signed(d), dynamic=True)


async def test_a_read_that_overlaps_a_change_is_not_kept(services: Services, caller: Caller, service_product: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The read began before the replace committed and ends after its event: its answer may be the old
    secret, so it answers this one login and is not kept for the next."""
    conn = services.connectivity
    d = await device(services, caller, service_product)
    assert await conn.presence.activate(d.asset_id)  # an activating login would see the change when it writes
    reading, proceed = asyncio.Event(), asyncio.Event()
    real = credentials_module.device_logins

    async def slow(*args: Any, **kwargs: Any) -> Any:
        rows = await real(*args, **kwargs)
        reading.set()
        await proceed.wait()
        return rows

    monkeypatch.setattr(credentials_module, "device_logins", slow)
    login = asyncio.create_task(conn.login(signed(d), dynamic=True))  # not loaded: a miss, read
    await reading.wait()
    monkeypatch.setattr(credentials_module, "device_logins", real)
    await services.devices.set_enabled(caller, DeviceRef(asset_id=d.asset_id), False)
    proceed.set()
    await login  # read before the change: that login was decided with what it read
    with pytest.raises(DeviceStatusInvalid):  # the next one reads again
        await conn.login(signed(d), dynamic=True)


async def test_a_good_login_costs_one_digest(services: Services, caller: Caller, service_product: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Both families' readings are tried, but the one the device used last time first."""
    conn = services.connectivity
    d = await device(services, caller, service_product)
    await conn.credentials.load()
    calls: list[str] = []
    real_hmac = device_sign.hmac.new
    real_hash = hashlib.new

    def counting_hmac(*args: Any, **kwargs: Any) -> Any:
        calls.append("alink")
        return real_hmac(*args, **kwargs)

    def counting_hash(*args: Any, **kwargs: Any) -> Any:
        calls.append("enos")
        return real_hash(*args, **kwargs)

    good, bad = signed(d, family="alink"), signed(d, "wrong", family="alink")
    monkeypatch.setattr(device_sign.hmac, "new", counting_hmac)
    monkeypatch.setattr(device_sign.hashlib, "new", counting_hash)
    assert (await conn.login(good, dynamic=True)).family == "alink"
    assert calls == ["enos", "alink"]  # first time: EnOS first, as ever
    calls.clear()
    assert (await conn.login(good, dynamic=True)).family == "alink"
    assert calls == ["alink"]
    calls.clear()
    with pytest.raises(Unauthenticated):  # a wrong password still hears both readings
        await conn.login(bad, dynamic=True)
    assert sorted(calls) == ["alink", "enos"]


async def test_a_secret_that_cannot_be_decrypted_keeps_only_its_device_out(
        services: Services, caller: Caller, service_product: str, caplog: pytest.LogCaptureFixture) -> None:
    """The broker still starts; that device's login fails as every login did before the cache."""
    good, bad = await device(services, caller, service_product), await device(services, caller, service_product)
    async with services.core.write() as tx:
        await tx.conn.execute(update(devices_table).where(devices_table.c.asset_id == bad.asset_id)
                              .values(secret_enc="v1:gone:AAAA"))
    conn = services.connectivity
    with caplog.at_level("WARNING"):
        assert await conn.credentials.load() == 1
    assert "1 stored secrets cannot be decrypted" in caplog.text
    await conn.login(signed(good), dynamic=True)
    with pytest.raises(KeyringError):
        await conn.login(signed(bad), dynamic=True)


async def test_a_change_made_by_another_process_applies_within_moments(
        services: Services, settings: Settings, caller: Caller, service_product: str) -> None:
    """A ``thingport`` command (or another node) changes the database from another process, with a
    bus of its own: the event feed brings its events to this bus (thingport/cluster/feed.py)."""
    conn = services.connectivity
    d = await device(services, caller, service_product)
    await conn.credentials.load()
    await conn.login(signed(d), dynamic=True)
    feed = EventFeed(services.core)
    await feed.start()
    keyring, _ = ensure_initialised(settings)
    other = Services.build(Core(settings, keyring, Database(settings.db_url), node_id="elsewhere"))
    try:
        await other.devices.replace_key(caller, DeviceRef(asset_id=d.asset_id), "moved-1")
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            try:
                await conn.login(signed(d), dynamic=True)
            except DeviceNotFound:
                break
            assert asyncio.get_running_loop().time() < deadline, "the other process's replace never applied"
            await asyncio.sleep(feed.poll_s / 5)
    finally:
        await feed.stop()
        await other.core.db.close()


async def test_while_other_writers_cannot_be_seen_every_login_reads_its_device(
        services: Services, caller: Caller, service_product: str) -> None:
    """With the feed lost (the database out of reach), another node's change would go unseen, so
    nothing is kept: a secret changed behind this node's back is in force at the next login; once
    the feed has caught up, records are kept again."""
    conn = services.connectivity
    d = await device(services, caller, service_product)
    await conn.credentials.load()
    await services.core.bus.publish([Event(FeedLost(), "", None)])
    assert len(conn.credentials) == 0
    assert await conn.credentials.load() == 0
    await conn.login(signed(d), dynamic=True)
    with statements(services) as sql:
        await conn.login(signed(d), dynamic=True)
    assert sql
    async with services.core.write() as tx:  # as another node's key refresh would
        await tx.conn.execute(update(devices_table).where(devices_table.c.asset_id == d.asset_id)
                              .values(secret_enc=services.core.keyring.encrypt("changed-elsewhere",
                                                                                 context=f"device:{d.asset_id}")))
    with pytest.raises(Unauthenticated):
        await conn.login(signed(d), dynamic=True)
    assert (await conn.login(signed(d, "changed-elsewhere"), dynamic=True)).device.asset_id == d.asset_id
    await services.core.bus.publish([Event(FeedResumed(), "", None)])
    await conn.login(signed(d, "changed-elsewhere"), dynamic=True)
    with statements(services) as sql:
        await conn.login(signed(d, "changed-elsewhere"), dynamic=True)
    assert sql == []


# --- rotation with a grace period (docs/credentials.md) --------------------------------------------

async def test_a_grace_period_keeps_the_old_credential_until_its_end(services: Services, caller: Caller,
                                                                     service_product: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Both credentials log in until the old one's end, not a millisecond after; from memory as from
    the database (another node's view: nothing kept)."""
    conn = services.connectivity
    old = await device(services, caller, service_product)
    await conn.credentials.load()
    await conn.login(signed(old), dynamic=True)
    new = (await services.devices.replace_key(caller, DeviceRef(old.asset_id), "rolled-1", grace_s=60)).device
    end = new.update_time + 60_000
    clock = [end - 1]
    monkeypatch.setattr(credentials_module, "now_ms", lambda: clock[0])
    for fresh in (False, True):
        if fresh:
            conn.credentials.forget_all()
        clock[0] = end - 1
        login = await conn.login(signed(old), dynamic=True)  # just before: the old key and secret
        assert login.grace_end == end and login.device.asset_id == old.asset_id
        assert (await conn.login(signed(new), dynamic=True)).grace_end is None
        with pytest.raises(Unauthenticated):  # never mixed: the new key with the old secret, and back
            await conn.login(signed(new, old.secret), dynamic=True)
        with pytest.raises(Unauthenticated):
            await conn.login(signed(old, new.secret), dynamic=True)
        clock[0] = end  # at the end: refused
        with pytest.raises(Unauthenticated):
            await conn.login(signed(old), dynamic=True)
        await conn.login(signed(new), dynamic=True)
    assert (await services.devices.get(caller, DeviceRef(old.asset_id))).device.active_time is not None


async def test_a_rotation_ends_the_grace_period_before_it(services: Services, caller: Caller,
                                                          service_product: str) -> None:
    """Never more than one previous credential: a second rotation ends the first one's period at once,
    and a rotation without one ends any."""
    conn = services.connectivity
    first = await device(services, caller, service_product)
    ref = DeviceRef(first.asset_id)
    second = (await services.devices.replace_key(caller, ref, "second", grace_s=3600)).device
    third = (await services.devices.replace_key(caller, ref, "third", grace_s=3600)).device
    with pytest.raises((Unauthenticated, DeviceNotFound)):
        await conn.login(signed(first), dynamic=True)
    assert (await conn.login(signed(second), dynamic=True)).grace_end is not None
    await conn.login(signed(third), dynamic=True)
    fourth = (await services.devices.replace_key(caller, ref, "fourth")).device
    for gone in (second, third):
        with pytest.raises(DeviceNotFound):
            await conn.login(signed(gone), dynamic=True)
    await conn.login(signed(fourth), dynamic=True)


async def test_a_refresh_keeping_the_key_overlaps_too(services: Services, caller: Caller,
                                                      service_product: str) -> None:
    """A rotation that keeps the key (OceanConnect's refresh may): the key logs in with either secret."""
    conn = services.connectivity
    old = await device(services, caller, service_product)
    async with services.core.write(caller.org_id) as tx:
        loaded = await services.devices.load(tx.conn, caller, DeviceRef(old.asset_id), for_update=True)
        await services.devices.replace_key_in(tx, loaded, old.device_key, field="nodeId", grace_s=60)
    new = (await services.devices.get(caller, DeviceRef(old.asset_id))).device
    assert new.device_key == old.device_key and new.secret != old.secret
    assert (await conn.login(signed(old), dynamic=True)).grace_end is not None
    assert (await conn.login(signed(new), dynamic=True)).grace_end is None


async def test_the_previous_secret_survives_a_master_key_rotation(services: Services, caller: Caller,
                                                                  service_product: str) -> None:
    conn = services.connectivity
    old = await device(services, caller, service_product)
    await services.devices.replace_key(caller, DeviceRef(old.asset_id), "rekeyed", grace_s=60)
    async with services.core.read() as c:
        before = (await c.execute(select(devices_table.c.prev_secret_enc))).scalar_one()
    await rotate_master_key(services.core)
    async with services.core.read() as c:
        after = (await c.execute(select(devices_table.c.prev_secret_enc))).scalar_one()
    assert before != after and services.core.keyring.key_id_of(after) == services.core.keyring.primary
    assert old.secret not in before and old.secret not in after
    conn.credentials.forget_all()
    assert (await conn.login(signed(old), dynamic=True)).grace_end is not None


async def test_grace_is_bounded(services: Services, caller: Caller, service_product: str) -> None:
    d = await device(services, caller, service_product)
    for bad in (-1, 30 * 86_400 + 1):
        with pytest.raises(InvalidArgument, match="grace"):
            await services.devices.replace_key(caller, DeviceRef(d.asset_id), "bounded", grace_s=bad)
    await services.devices.replace_key(caller, DeviceRef(d.asset_id), "bounded", grace_s=30 * 86_400)
