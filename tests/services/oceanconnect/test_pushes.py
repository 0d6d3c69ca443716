"""The push outbox: each event is rendered with its device as fan-out finds it, a batch at a time."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from sqlalchemy import select, update

from tests.support.sql import statements
from thingport.domain.models import Organization, now_ms
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.events import Event
from thingport.services.oceanconnect.pushes import LEASE_MARGIN_S
from thingport.services.oceanconnect.registrations import PASSWORD, RegistrationSpec
from thingport.services.oceanconnect.views import OcView
from thingport.store.schema import oc_pushes


def everything(ev: Event, view: OcView | None) -> tuple[str, dict[str, Any]] | None:
    """A renderer that pushes every device event, with the nodeId of the device it was shown."""
    if ev.asset_id is None:
        return None
    return "deviceAdded", {"kind": ev.kind, "deviceId": ev.asset_id, "nodeId": view.node_id if view else None}


async def subscriber(services: Services, org: Organization) -> Caller:
    app = await services.accounts.create_app(org.org_id, "listener")
    caller = services.accounts.caller(app)
    await services.oceanconnect.subscriptions.subscribe(caller, "deviceAdded", "http://callback.test/", "HTTP")
    return caller


async def test_each_event_is_rendered_with_its_device(services: Services, org: Organization) -> None:
    caller = await subscriber(services, org)
    regs, pushes = services.oceanconnect.registrations, services.oceanconnect.pushes
    kept = (await regs.register(caller, RegistrationSpec(PASSWORD, "kept-node"))).asset_id
    gone = (await regs.register(caller, RegistrationSpec(PASSWORD, "gone-node"))).asset_id
    await regs.delete(caller, gone, cascade=False)
    assert await pushes.fan_out(everything) == 3 and await pushes.queued() == 3
    bodies = [json.loads(p.body) for p in await pushes.claim()]
    # a device deleted before fan-out is rendered without a view (the dialect falls back to the event)
    assert bodies == [{"kind": "device.created", "deviceId": kept, "nodeId": "kept-node"},
                      {"kind": "device.created", "deviceId": gone, "nodeId": None},
                      {"kind": "device.deleted", "deviceId": gone, "nodeId": None}]
    assert await pushes.fan_out(everything) == 0


async def test_fan_out_reads_the_devices_of_a_batch_at_once(services: Services, org: Organization) -> None:
    caller = await subscriber(services, org)
    regs, pushes = services.oceanconnect.registrations, services.oceanconnect.pushes
    await pushes.fan_out(everything)  # the cursor starts
    await regs.register(caller, RegistrationSpec(PASSWORD, "one-node"))
    with statements(services) as one:
        assert await pushes.fan_out(everything) == 1
    for i in range(5):
        await regs.register(caller, RegistrationSpec(PASSWORD, f"more-{i}"))
    with statements(services) as five:
        assert await pushes.fan_out(everything) == 5
    assert len(five) == len(one)


class Teleported(msgspec.Struct):
    """A payload of a kind this node does not know, as a newer node could have written it."""

    where: str


async def test_fan_out_passes_over_events_it_cannot_read(services: Services, org: Organization) -> None:
    caller = await subscriber(services, org)
    regs, pushes = services.oceanconnect.registrations, services.oceanconnect.pushes
    await pushes.fan_out(everything)  # the cursor starts
    async with services.core.write(org.org_id) as tx:
        await services.core.events.append(tx.conn, org.org_id, "device.teleported", "a1", Teleported("moon"), tx.now)
        await services.core.events.append(tx.conn, org.org_id, "device.created", "a2", Teleported("moon"), tx.now)
    kept = (await regs.register(caller, RegistrationSpec(PASSWORD, "kept-node"))).asset_id
    assert await pushes.fan_out(everything) == 1
    assert [json.loads(p.body)["deviceId"] for p in await pushes.claim()] == [kept]
    assert await pushes.fan_out(everything) == 0  # the cursor is past all three


async def leases(services: Services) -> dict[int, tuple[int, int]]:
    """Each queued push's (next attempt time, attempt number)."""
    async with services.core.read() as conn:
        rows = await conn.execute(select(oc_pushes.c.id, oc_pushes.c.next_attempt_time, oc_pushes.c.attempts))
        return {r[0]: (r[1], r[2]) for r in rows}


async def test_each_answer_renews_the_lease_of_the_pushes_behind_it_but_not_a_claim_taken_over(
        services: Services, org: Organization) -> None:
    caller = await subscriber(services, org)
    regs, pushes = services.oceanconnect.registrations, services.oceanconnect.pushes
    for i in range(3):
        await regs.register(caller, RegistrationSpec(PASSWORD, f"leased-{i}"))
    assert await pushes.fan_out(everything) == 3
    first, second, third = await pushes.claim()
    async with services.core.write(audited=False) as tx:
        # the second's lease about to run out; the third taken over by another worker (numbered higher)
        await tx.conn.execute(update(oc_pushes).where(oc_pushes.c.id == second.id).values(next_attempt_time=1))
        await tx.conn.execute(update(oc_pushes).where(oc_pushes.c.id == third.id)
                              .values(next_attempt_time=1, attempts=third.attempts + 1))
    started = now_ms()
    await pushes.delivered(first, [second, third])
    after = await leases(services)
    assert first.id not in after
    timeout_s = services.core.settings.oceanconnect_push_timeout_s
    assert after[second.id][0] >= started + (timeout_s + LEASE_MARGIN_S) * 1000
    assert after[third.id] == (1, third.attempts + 1)
