"""The console's read-only views: counts per product, the push backlog, a device's events and family,
Living accounts; each within the caller's organization."""

import pytest

from thingport.domain.errors import DeviceNotFound, PermissionDenied
from thingport.domain.models import Application, I18nText, Organization, Permission
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.store.oceanconnect import Subscription


def spec(product_key: str, key: str) -> DeviceSpec:
    return DeviceSpec(product_key, I18nText(key), "+08:00", device_key=key)


async def test_counts_per_product(services: Services, caller: Caller, service_product: str,
                                  gateway_product: str) -> None:
    a = (await services.devices.create(caller, spec(service_product, "meter-1"))).device
    await services.devices.create(caller, spec(service_product, "meter-2"))
    await services.devices.mark_connected(a.asset_id)
    counts = {c.product.product_key: c.stats for c in await services.overview.product_counts(caller)}
    assert set(counts) == {service_product, gateway_product}
    s = counts[service_product]
    assert (s.total, s.online, s.inactive) == (2, 1, 1)
    assert counts[gateway_product].total == 0
    reader = Caller(caller.org_id, "app", frozenset({Permission.PRODUCT_CREATE}))
    with pytest.raises(PermissionDenied):
        await services.overview.product_counts(reader)
    other = await services.accounts.create_org("Other", "o-other")
    assert await services.overview.product_counts(Caller.operator(other.org_id)) == []


async def test_push_backlog_per_subscription(services: Services, org: Organization, app: Application) -> None:
    core = services.core
    async with core.write() as tx:
        await core.oceanconnect.insert_subscription(tx.conn, Subscription("s1", org.org_id, app.app_key, "deviceAdded",
                                                                          "https://example.com/cb", "HTTP", 1))
        await core.oceanconnect.enqueue(tx.conn, [
            {"subscription_id": "s1", "callback_url": "https://example.com/cb", "body": "{}", "attempts": n,
             "next_attempt_time": 0, "last_error": err, "create_time": t}
            for n, err, t in [(0, None, 1_000), (3, "HTTP 503", 4_000)]])
    queue = await services.overview.push_queue(now=10_000)
    assert (queue.depth, queue.oldest_age_ms) == (2, 9_000)
    b = queue.by_subscription["s1"]
    assert (b.waiting, b.oldest_time, b.max_attempts, b.last_error) == (2, 1_000, 3, "HTTP 503")
    assert [s.subscription_id for s in await services.overview.subscriptions(org.org_id)] == ["s1"]
    assert await services.overview.subscriptions("o-nobody") == []
    async with core.write() as tx:
        for p in await core.oceanconnect.claim(tx.conn, 10_000, 20_000, 10):
            await core.oceanconnect.delivered(tx.conn, p.id)
    assert (await services.overview.push_queue(now=10_000)).oldest_age_ms is None


async def test_timeline_and_family(services: Services, caller: Caller, service_product: str,
                                   gateway_product: str) -> None:
    gw = (await services.devices.create(caller, spec(gateway_product, "gw-1"))).device
    sub = (await services.devices.create(caller, spec(service_product, "sub-1"))).device
    await services.topology.add_sub_devices(caller, DeviceRef(gw.asset_id), [DeviceRef(sub.asset_id)])
    await services.devices.set_enabled(caller, DeviceRef(sub.asset_id), False)
    kinds = [e.kind for e in await services.overview.timeline(caller, DeviceRef(sub.asset_id))]
    assert kinds[0] == "device.disabled" and kinds[-1] == "device.created"
    assert len(await services.overview.timeline(caller, DeviceRef(sub.asset_id), limit=1)) == 1
    family = await services.overview.family(caller, DeviceRef(gw.asset_id))
    assert family.gateway is None and [d.asset_id for d in family.sub_devices] == [sub.asset_id]
    family = await services.overview.family(caller, DeviceRef(sub.asset_id))
    assert family.gateway is not None and family.gateway.asset_id == gw.asset_id and family.sub_devices == []
    stranger = Caller.operator((await services.accounts.create_org("Other", "o-other")).org_id)
    with pytest.raises(DeviceNotFound):
        await services.overview.timeline(stranger, DeviceRef(sub.asset_id))
    with pytest.raises(DeviceNotFound):
        await services.overview.family(stranger, DeviceRef(gw.asset_id))


async def test_living_users_with_homes_and_bindings(services: Services, org: Organization) -> None:
    await services.living.create_user(org.org_id, "alice")
    users = await services.overview.living_users(org.org_id)
    assert [(u.user.login, u.homes, u.bindings) for u in users] == [("alice", [], [])]
    assert await services.overview.living_users("o-nobody") == []
