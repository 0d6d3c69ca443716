"""Nodes on one database: each owns the online state of its devices, a dead node's devices go
offline, a node catches up on what it missed while down, and /ready says whether to send it traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from tests.cluster.test_feed import Seen, _spec
from thingport.app import ensure_initialised
from thingport.cluster.nodes import Node, readiness
from thingport.domain.models import Device, I18nText
from thingport.services import events
from thingport.services.container import Services
from thingport.services.context import Caller, Core
from thingport.services.devices import DeviceSpec
from thingport.settings import Settings
from thingport.store.db import Database
from thingport.store.schema import cluster_nodes, devices


async def open_node(settings: Settings, node_id: str) -> Services:
    keyring, _ = ensure_initialised(settings)
    return Services.build(Core(settings, keyring, Database(settings.db_url), node_id=node_id))


@pytest.fixture
async def two(settings: Settings, services: Services) -> AsyncIterator[tuple[Services, Services]]:
    """Nodes "a" and "b" on the test database (``services`` made it)."""
    a, b = await open_node(settings, "a"), await open_node(settings, "b")
    yield a, b
    for svc in (a, b):
        svc.connectivity.credentials.close()
        await svc.core.db.close()


async def online_devices(svc: Services, caller: Caller, product: str, count: int) -> list[Device]:
    """``count`` devices logged in through ``svc``'s broker (the presence batches record the node)."""
    made = [(await svc.devices.create(caller, DeviceSpec(product, I18nText("d"), "+08:00"))).device
            for _ in range(count)]
    for d in made:
        svc.connectivity.presence.connected(d.asset_id)
    await svc.connectivity.presence.flush()
    return made


async def online_of(svc: Services) -> dict[str, str | None]:
    async with svc.core.read() as conn:
        rows = await conn.execute(select(devices.c.asset_id, devices.c.online_node).where(devices.c.online))
        return {r[0]: r[1] for r in rows}


async def test_a_starting_node_sets_offline_only_its_own_devices(
        two: tuple[Services, Services], caller: Caller, service_product: str) -> None:
    a, b = two
    node_b = Node(b.core)
    await node_b.start()
    mine = await online_devices(a, caller, service_product, 2)  # a's earlier run
    theirs = await online_devices(b, caller, service_product, 3)
    assert set((await online_of(a)).values()) == {"a", "b"}
    node_a = Node(a.core)
    try:
        assert await node_a.start() == 2  # b is alive: its devices stay online
        assert await online_of(a) == {d.asset_id: "b" for d in theirs}
        assert not {d.asset_id for d in mine} & (await online_of(a)).keys()
    finally:
        await node_a.stop()
        await node_b.stop()


async def test_alone_a_starting_node_also_sets_offline_devices_no_node_holds(
        two: tuple[Services, Services], caller: Caller, service_product: str) -> None:
    a, _ = two
    [d] = await online_devices(a, caller, service_product, 1)
    async with a.core.write() as tx:  # as an older version (or an external broker's hook) left it
        await tx.conn.execute(update(devices).where(devices.c.asset_id == d.asset_id).values(online_node=None))
    node = Node(a.core)
    try:
        assert await node.start() == 1
    finally:
        await node.stop()


async def test_a_dead_nodes_devices_go_offline_once(
        two: tuple[Services, Services], caller: Caller, service_product: str) -> None:
    a, b = two
    node_b, node_a = Node(b.core), Node(a.core)
    await node_b.start()
    await online_devices(b, caller, service_product, 2)
    await node_b.stop()
    await node_a.start()
    try:
        assert await node_a.beat() == []  # b was heard from just now
        async with a.core.write() as tx:  # b's last heartbeat, long ago
            await tx.conn.execute(update(cluster_nodes).where(cluster_nodes.c.node_id == "b")
                                  .values(heartbeat_time=tx.now - int(a.core.settings.node_dead_after_s * 1000) - 1))
        assert len(await online_of(a)) == 2
        assert await node_a.beat() == ["b"]
        assert await online_of(a) == {}
        assert await node_a.beat() == []  # swept once
    finally:
        await node_a.stop()


async def test_a_node_catches_up_on_what_it_missed_while_down(
        two: tuple[Services, Services], caller: Caller) -> None:
    a, b = two
    node_b = Node(b.core)
    await node_b.start()
    await node_b.stop()
    await a.products.create(caller, _spec())  # while b is down
    seen = Seen(b.core.bus)
    node_b = Node(b.core)
    await node_b.start()
    try:
        [ev] = await seen.until(events.ProductCreated)
        assert ev.foreign and ev.node_id == "a"
    finally:
        await node_b.stop()


async def test_ready_needs_the_database_its_migrations_and_the_broker(services: Services) -> None:
    found = await readiness(services.core, lambda: True)
    assert found.ready and found.checks == {"database": "ok", "migrations": "ok", "broker": "ok"}
    assert (await readiness(services.core, lambda: None)).checks.keys() == {"database", "migrations"}
    assert not (await readiness(services.core, lambda: False)).ready
    gone = Core(services.core.settings, services.core.keyring,
                Database("postgresql+asyncpg://nobody:x@127.0.0.1:9/none"))
    try:
        found = await readiness(gone, lambda: True)
    finally:
        await gone.db.close()
    assert not found.ready and found.checks["database"].startswith("unreachable")
