"""Online state, activation and login events written in batches: the end state and the events are
those one write per change would give, in order per device; an activation is committed when
``activate`` returns."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from thingport.domain.models import Device, I18nText
from thingport.services import events
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.store import presence as store
from thingport.store.schema import devices as devices_table
from thingport.store.schema import events as events_table


async def make(services: Services, caller: Caller, product: str, n: int = 1) -> list[Device]:
    return [(await services.devices.create(caller, DeviceSpec(product, I18nText("d"), "+08:00"))).device
            for _ in range(n)]


async def stored(services: Services, asset_id: str) -> Device:
    async with services.core.read() as conn:
        device = await services.core.devices.by_id(conn, asset_id)
    assert device is not None
    return device


async def kinds(services: Services, asset_id: str) -> list[str]:
    """The device's online events in the table, in id order."""
    q = (select(events_table.c.kind).where(events_table.c.asset_id == asset_id,
                                           events_table.c.kind.in_(["device.connected", "device.disconnected"]))
         .order_by(events_table.c.id))
    async with services.core.read() as conn:
        return list((await conn.execute(q)).scalars())


async def test_changes_are_written_in_batches_in_order_per_device(services: Services, caller: Caller,
                                                                  service_product: str) -> None:
    presence = services.connectivity.presence
    devices = await make(services, caller, service_product, 20)
    published: list[events.Event] = []

    async def seen(ev: events.Event) -> None:
        published.append(ev)

    services.core.bus.subscribe(seen)
    for d in devices:
        presence.connected(d.asset_id)
    for d in devices[:10]:  # these leave before their arrival is even written
        presence.disconnected(d.asset_id)
    await presence.flush()
    assert presence.batches <= 2  # 30 changes, not 30 transactions
    for d in devices[:10]:
        got = await stored(services, d.asset_id)
        assert (got.online, bool(got.active_time), bool(got.last_offline_time)) == (False, True, True)
        assert await kinds(services, d.asset_id) == ["device.connected", "device.disconnected"]
    for d in devices[10:]:
        got = await stored(services, d.asset_id)
        assert got.online and got.active_time and got.last_online_time
        assert await kinds(services, d.asset_id) == ["device.connected"]
    # published after the commit, with their row ids, in the table's order
    mine = [ev for ev in published if isinstance(ev.payload, events.DeviceConnected | events.DeviceDisconnected)]
    assert len(mine) == 30 and [ev.id for ev in mine] == sorted(ev.id for ev in mine) and mine[0].id > 0


async def test_the_same_rules_as_one_write_per_change(services: Services, caller: Caller,
                                                      service_product: str) -> None:
    """Online twice is one event; offline while offline none; a disabled or deleted device stays as it is."""
    presence = services.connectivity.presence
    a, disabled, deleted = await make(services, caller, service_product, 3)
    await services.devices.set_enabled(caller, DeviceRef(asset_id=disabled.asset_id), False)
    await services.devices.delete(caller, DeviceRef(asset_id=deleted.asset_id))
    presence.disconnected(a.asset_id)
    for asset_id in (a.asset_id, a.asset_id, disabled.asset_id, deleted.asset_id):
        presence.connected(asset_id)
    await presence.flush()
    assert await kinds(services, a.asset_id) == ["device.connected"]
    assert not (await stored(services, disabled.asset_id)).online
    assert await kinds(services, disabled.asset_id) == []
    assert not await presence.activate(disabled.asset_id)
    assert not await presence.activate(deleted.asset_id)


async def test_an_activation_is_committed_when_activate_returns(services: Services, caller: Caller,
                                                                service_product: str) -> None:
    presence = services.connectivity.presence
    devices = await make(services, caller, service_product, 5)
    assert await asyncio.gather(*(presence.activate(d.asset_id) for d in devices)) == [True] * 5
    for d in devices:  # a fresh read, no flush: each was committed before its activate returned
        got = await stored(services, d.asset_id)
        assert got.active_time and not got.online
    # activation alone is not a login: no event, and a later activation keeps the first time
    first = (await stored(services, devices[0].asset_id)).active_time
    assert await presence.activate(devices[0].asset_id)
    assert (await stored(services, devices[0].asset_id)).active_time == first
    assert await kinds(services, devices[0].asset_id) == []


async def test_a_failed_batch_fails_the_activations_waiting_for_it(services: Services, caller: Caller,
                                                                   service_product: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A login waiting for its activation is refused rather than told it got in; later batches go on."""
    presence = services.connectivity.presence
    (d,) = await make(services, caller, service_product)

    async def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        await presence.activate(d.asset_id)
    assert not (await stored(services, d.asset_id)).active_time
    monkeypatch.undo()
    assert await presence.activate(d.asset_id)
    assert (await stored(services, d.asset_id)).active_time


async def test_the_state_reads_as_every_dialect_sees_it(services: Services, caller: Caller,
                                                        service_product: str) -> None:
    presence = services.connectivity.presence
    (d,) = await make(services, caller, service_product)
    presence.connected(d.asset_id)
    await presence.flush()
    stats = await services.devices.stats(caller, service_product)
    assert (stats.online, stats.inactive) == (1, 0)
    async with services.core.read() as conn:
        online = (await conn.execute(select(devices_table.c.online).where(
            devices_table.c.asset_id == d.asset_id))).scalar_one()
    assert online
