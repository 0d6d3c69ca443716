"""Read-only views across services for the operator's console: fleet counts per product, the push
backlog, a device's recent events and topology, an organization's Living accounts and OceanConnect
subscriptions.

The console is one more dialect and calls services like the others; these queries exist because
no vendor API asks them (the EnOS and OceanConnect ones are per application, these per organization
or per deployment). Everything here reads, and answers only what the operator may see anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from thingport.domain.models import Device, DeviceStats, Page, Permission, Product
from thingport.services import events
from thingport.services.context import Caller, Core
from thingport.services.devices import DeviceRef, DeviceService
from thingport.store.living_accounts import Binding, Home, User
from thingport.store.oceanconnect import PushBacklog, Subscription

#: How many of a kind a console page lists at most (products per organization, users, their homes …).
LIST_LIMIT = 200


@dataclass(frozen=True, slots=True)
class ProductCount:
    product: Product
    stats: DeviceStats


@dataclass(frozen=True, slots=True)
class PushQueue:
    """The OceanConnect push outbox: pushes waiting, the oldest one's age, and per subscription."""

    depth: int
    oldest_age_ms: int | None
    by_subscription: dict[str, PushBacklog]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    id: int
    kind: str
    time: int
    #: the event's payload as stored (JSON): device keys, never a secret
    detail: str


@dataclass(frozen=True, slots=True)
class Family:
    """A device's place in a gateway topology: its gateway (if any) and its sub-devices."""

    gateway: Device | None
    sub_devices: list[Device]
    sub_total: int


@dataclass(frozen=True, slots=True)
class LivingUser:
    user: User
    homes: list[Home]
    bindings: list[Binding]


class OverviewService:
    def __init__(self, core: Core, devices: DeviceService) -> None:
        self.core = core
        self.devices = devices

    async def product_counts(self, caller: Caller) -> list[ProductCount]:
        """Every product of the caller's organization (at most :data:`LIST_LIMIT`) with its device counts."""
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            products, _ = await self.core.products.search(conn, caller.org_id, None, Page(1, LIST_LIMIT))
            return [ProductCount(p, await self.core.devices.stats(conn, caller.org_id, p.product_key))
                    for p in products]

    async def push_queue(self, now: int) -> PushQueue:
        async with self.core.read() as conn:
            backlog = await self.core.oceanconnect.push_backlog(conn)
        oldest = min((b.oldest_time for b in backlog), default=None)
        return PushQueue(sum(b.waiting for b in backlog), None if oldest is None else max(0, now - oldest),
                         {b.subscription_id: b for b in backlog})

    async def subscriptions(self, org_id: str) -> list[Subscription]:
        async with self.core.read() as conn:
            return await self.core.oceanconnect.org_subscriptions(conn, {org_id})

    async def timeline(self, caller: Caller, ref: DeviceRef, limit: int = 50) -> list[TimelineEntry]:
        """The device's newest events (the outbox rows about it), newest first."""
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            device = await self.devices.load(conn, caller, ref)
            rows = await self.core.events.recent_of(conn, caller.org_id, device.asset_id, limit)
        # a kind this node cannot read (a newer node wrote it) is passed over, as the push fan-out does
        return [TimelineEntry(r.id, r.kind, r.create_time, r.payload) for r in rows if r.kind in events.KINDS]

    async def family(self, caller: Caller, ref: DeviceRef) -> Family:
        """The device's gateway and, for a gateway, its first :data:`LIST_LIMIT` sub-devices."""
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            view = await self.devices.view_of(conn, caller, await self.devices.load(conn, caller, ref))
            gateway = None
            if view.device.gateway_asset_id:
                gateway = await self.core.devices.get(conn, caller.org_id, asset_id=view.device.gateway_asset_id)
            subs: list[Device] = []
            total = 0
            if view.product.is_gateway:
                subs, total = await self.core.devices.search(conn, caller.org_id, None, Page(1, LIST_LIMIT),
                                                             gateway_asset_id=view.device.asset_id)
        return Family(gateway, subs, total)

    async def living_users(self, org_id: str) -> list[LivingUser]:
        """The organization's app users with their homes and bindings (each at most :data:`LIST_LIMIT`)."""
        page = Page(1, LIST_LIMIT)
        store = self.core.living_accounts
        async with self.core.read() as conn:
            users = (await store.list_users(conn, org_id))[:LIST_LIMIT]
            return [LivingUser(u, (await store.homes_of(conn, u.identity_id, page))[0],
                               (await store.bindings_of_user(conn, u.identity_id, page))[0]) for u in users]
