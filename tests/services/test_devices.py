"""Registry rules that are about state and concurrency rather than the wire."""

import asyncio
from dataclasses import replace

import pytest

from thingport.domain.errors import DeviceKeyExists, DeviceNotFound, DomainError, PermissionDenied
from thingport.domain.models import DeviceStatus, I18nText, Page, Permission
from thingport.services import events
from thingport.services.audit import ATTEMPT, Attempt
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.events import Event
from thingport.store.audit import AuditFilter


def spec(product_key: str, key: str | None = None) -> DeviceSpec:
    return DeviceSpec(product_key, I18nText("d"), "+08:00", device_key=key)


async def test_concurrent_creates_with_one_key_give_one_success(
        services: Services, caller: Caller, service_product: str) -> None:
    results = await asyncio.gather(*(services.devices.create(caller, spec(service_product, "same-key"))
                                     for _ in range(12)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 1
    assert len(failed) == 11 and all(isinstance(f, DeviceKeyExists) for f in failed)
    found, total = await services.devices.search(caller, None, Page(1, 50))
    assert total == 1 and found[0].device.device_key == "same-key"


async def test_concurrent_replaces_to_one_new_key(services: Services, caller: Caller, service_product: str) -> None:
    a = (await services.devices.create(caller, spec(service_product, "dev-a"))).device
    b = (await services.devices.create(caller, spec(service_product, "dev-b"))).device
    results = await asyncio.gather(
        services.devices.replace_key(caller, DeviceRef(a.asset_id), "dev-new"),
        services.devices.replace_key(caller, DeviceRef(b.asset_id), "dev-new"),
        return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["DeviceKeyExists", "DeviceView"]
    keys = {(await services.devices.get(caller, DeviceRef(x.asset_id))).device.device_key for x in (a, b)}
    assert "dev-new" in keys and len(keys) == 2


async def test_concurrent_replaces_of_one_device_never_corrupt(services: Services, caller: Caller,
                                                               service_product: str) -> None:
    d = (await services.devices.create(caller, spec(service_product, "dev-a"))).device
    new_keys = [f"dev-n{i}" for i in range(6)]
    results = await asyncio.gather(*(services.devices.replace_key(caller, DeviceRef(d.asset_id), k)
                                     for k in new_keys), return_exceptions=True)
    assert all(not isinstance(r, BaseException) for r in results)
    final = (await services.devices.get(caller, DeviceRef(d.asset_id))).device
    assert final.device_key in new_keys
    last = [r for r in results if not isinstance(r, BaseException) and r.device.device_key == final.device_key]
    assert last and last[0].device.secret == final.secret  # the secret answered with the key that stuck


async def test_replace_revokes_old_key_and_emits_event(services: Services, caller: Caller,
                                                       service_product: str) -> None:
    seen: list[Event] = []

    async def record(ev: Event) -> None:
        seen.append(ev)

    services.core.bus.subscribe(record)
    d = (await services.devices.create(caller, spec(service_product, "dev-a"))).device
    await services.devices.mark_connected(d.asset_id)
    view = await services.devices.replace_key(caller, DeviceRef(d.asset_id), "dev-b")
    assert view.device.asset_id == d.asset_id and view.device.secret != d.secret
    assert view.device.status is DeviceStatus.INACTIVE
    with pytest.raises(DeviceNotFound):
        await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="dev-a"))
    replaced = [e.payload for e in seen if isinstance(e.payload, events.DeviceReplaced)]
    assert replaced and replaced[0].device_key == "dev-a" and replaced[0].new_device_key == "dev-b"
    assert events.DeviceReplaced in events.SESSION_ENDING


async def test_events_are_written_to_the_outbox(services: Services, caller: Caller, service_product: str) -> None:

    d = (await services.devices.create(caller, spec(service_product))).device
    await services.devices.set_enabled(caller, DeviceRef(d.asset_id), False)
    async with services.core.read() as conn:
        rows = await services.core.events.since(conn, 0)
    kinds = [r.kind for r in rows]
    assert kinds[-2:] == [events.DeviceCreated.KIND, events.DeviceDisabled.KIND]


async def test_failed_transaction_publishes_nothing(services: Services, caller: Caller, service_product: str) -> None:
    seen: list[Event] = []

    async def record(ev: Event) -> None:
        seen.append(ev)

    await services.devices.create(caller, spec(service_product, "dev-a"))
    services.core.bus.subscribe(record)
    with pytest.raises(DomainError):
        await services.devices.create(caller, spec(service_product, "dev-a"))
    assert seen == []


async def test_connectivity_state_machine(services: Services, caller: Caller, service_product: str) -> None:
    d = (await services.devices.create(caller, spec(service_product))).device
    assert d.status is DeviceStatus.INACTIVE and d.active_time is None
    on = await services.devices.mark_connected(d.asset_id)
    assert on is not None and on.status is DeviceStatus.ONLINE and on.active_time and on.last_online_time
    off = await services.devices.mark_disconnected(d.asset_id)
    assert off is not None and off.status is DeviceStatus.OFFLINE and off.last_offline_time
    assert off.active_time == on.active_time  # activation happens once
    await services.devices.set_enabled(caller, DeviceRef(d.asset_id), False)
    assert await services.devices.mark_connected(d.asset_id) is None  # disabled devices cannot come online
    assert await services.devices.mark_connected("nope") is None


async def test_restart_resets_online_devices(services: Services, caller: Caller, service_product: str) -> None:
    d = (await services.devices.create(caller, spec(service_product))).device
    await services.devices.mark_connected(d.asset_id)
    assert await services.devices.reset_online_state() == 1
    after = (await services.devices.get(caller, DeviceRef(d.asset_id))).device
    assert after.status is DeviceStatus.OFFLINE and after.last_offline_time


async def test_read_only_caller(services: Services, caller: Caller, service_product: str) -> None:
    reader = Caller(caller.org_id, "app", frozenset({Permission.DEVICE_READ}))
    with pytest.raises(PermissionDenied):
        await services.devices.create(reader, spec(service_product))


async def test_other_tenant_sees_nothing(services: Services, caller: Caller, service_product: str) -> None:
    d = (await services.devices.create(caller, spec(service_product))).device
    await services.accounts.create_org("Other", "o2")
    other = Caller.operator("o2")
    with pytest.raises(DeviceNotFound):
        await services.devices.get(other, DeviceRef(d.asset_id))
    _, total = await services.devices.search(other, None, Page(1, 10))
    assert total == 0


async def test_concurrent_rotations_with_a_grace_period_have_one_winner(services: Services, caller: Caller,
                                                                         service_product: str) -> None:
    """Four rotations of one device to one key: one wins; the old credential is the one previous, the
    history says so once, and the pair that logs in is never mixed."""
    from tests.services.test_credentials import signed

    d = (await services.devices.create(caller, spec(service_product, "rot-a"))).device
    ref = DeviceRef(d.asset_id)
    results = await asyncio.gather(*(services.devices.replace_key(caller, ref, "rot-b", grace_s=600)
                                     for _ in range(4)), return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1 and sorted(type(r).__name__ for r in results if r not in won) == ["DeviceKeyUnchanged"] * 3
    new = won[0].device
    history = await services.devices.credentials(caller, ref)
    assert [(e.kind, e.device_key, e.end_reason) for e in history] == [
        ("secret", "rot-a", "replaced"), ("secret", "rot-b", None)]
    assert history[0].end_time == new.update_time + 600_000 and history[1].issued_by == "operator"
    conn = services.connectivity
    assert (await conn.login(signed(d), dynamic=True)).grace_end == history[0].end_time
    await conn.login(signed(new), dynamic=True)


async def test_concurrent_rotations_to_different_keys_leave_one_consistent_pair(
        services: Services, caller: Caller, service_product: str) -> None:
    """Rotations of one device queue on its row: the one previous credential is the one the last rotation
    replaced, the earlier ones ended (``superseded``), and exactly the current and previous pairs log in."""
    from tests.services.test_credentials import signed

    d = (await services.devices.create(caller, spec(service_product, "rot-0"))).device
    ref = DeviceRef(d.asset_id)
    results = await asyncio.gather(*(services.devices.replace_key(caller, ref, f"rot-{i}", grace_s=600)
                                     for i in range(1, 5)))
    history = await services.devices.credentials(caller, ref)
    assert [e.end_reason for e in history] == ["superseded"] * 3 + ["replaced", None]
    order = [e.device_key for e in history]
    assert order[0] == "rot-0" and sorted(order[1:]) == ["rot-1", "rot-2", "rot-3", "rot-4"]
    by_key = {r.device.device_key: r.device for r in results}
    conn = services.connectivity
    assert (await conn.login(signed(by_key[order[-1]]), dynamic=True)).grace_end is None
    assert (await conn.login(signed(by_key[order[-2]]), dynamic=True)).grace_end is not None
    for gone in order[1:-2]:
        with pytest.raises(DomainError):
            await conn.login(signed(by_key[gone]), dynamic=True)


async def test_credential_history_names_who_and_never_a_secret(services: Services, caller: Caller,
                                                                service_product: str) -> None:
    d = (await services.devices.create(caller, spec(service_product, "hist-a"))).device
    ref = DeviceRef(d.asset_id)
    first = await services.devices.credentials(caller, ref)
    assert [(e.kind, e.device_key, e.issue_time, e.end_time) for e in first] == [
        ("secret", "hist-a", d.create_time, None)]
    app = Caller(caller.org_id, "app-key-1", caller.permissions)
    new = (await services.devices.replace_key(app, ref, "hist-b")).device
    history = await services.devices.credentials(caller, ref)
    assert [(e.device_key, e.issue_time, e.issued_by, e.end_reason) for e in history] == [
        ("hist-a", None, None, "replaced"), ("hist-b", new.update_time, "app:app-key-1", None)]
    assert history[0].end_time == new.update_time  # no grace: ended at once
    assert all(d.secret not in repr(e) and new.secret not in repr(e) for e in history)
    await services.accounts.create_org("Other", "o-other-h")
    with pytest.raises(DomainError):
        await services.devices.credentials(Caller.operator("o-other-h"), ref)


async def test_a_deleted_devices_credential_history_goes_with_it(services: Services, caller: Caller,
                                                                 service_product: str) -> None:
    kept = (await services.devices.create(caller, spec(service_product, "hist-kept"))).device
    gone = (await services.devices.create(caller, spec(service_product, "hist-gone"))).device
    for d, new_key in ((kept, "hist-kept-2"), (gone, "hist-gone-2")):
        await services.devices.replace_key(caller, DeviceRef(d.asset_id), new_key)
    await services.devices.delete(caller, DeviceRef(gone.asset_id))
    async with services.core.read() as conn:
        rows = {r.asset_id for r in await services.core.credentials.list(conn, caller.org_id, kept.asset_id)}
        rows |= {r.asset_id for r in await services.core.credentials.list(conn, caller.org_id, gone.asset_id)}
    assert rows == {kept.asset_id}


async def test_get_by_key_reads_the_device_and_its_product_in_the_callers_organization(
        services: Services, caller: Caller, service_product: str) -> None:
    """get-device by key is one joined statement outside any transaction (Database.driver): it sees
    what was just committed, gives the product with it, and nothing of another organization."""
    made = await services.devices.create(caller, spec(service_product, "by-key"))
    view = await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="by-key"))
    assert view.device == made.device and view.product == made.product
    await services.accounts.create_org("Other", "o-other")
    with pytest.raises(DeviceNotFound):
        await services.devices.get(Caller.operator("o-other"),
                                   DeviceRef(product_key=service_product, device_key="by-key"))
    with pytest.raises(DeviceNotFound):
        await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="no-such-key"))


async def test_a_refused_create_inside_a_going_transaction_leaves_the_product_count_alone(
        services: Services, caller: Caller, service_product: str) -> None:
    """The create counts the device on its product first; a create refused after that (here a bad
    key) inside a transaction the caller goes on with takes the count back."""
    async with services.core.write(caller.org_id) as tx:
        with pytest.raises(DomainError):
            await services.devices.create_in(tx, caller, spec(service_product, "bad key!"))
        await services.devices.create_in(tx, caller, spec(service_product, "good-key"))
    async with services.core.read() as conn:
        assert await services.core.products.count_devices(conn, service_product) == 1


async def test_a_refused_create_says_why_in_the_order_of_the_checks_and_counts_nothing(
        services: Services, caller: Caller, service_product: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key and the timezone are checked before the transaction, the product in its one
    statement; a refusal still names what the checks one after the other would have named first:
    no such product, an invalid key, a full product, an invalid timezone."""
    monkeypatch.setattr(services.core, "settings", replace(services.core.settings, product_device_limit=1))
    bad_key, bad_zone = spec(service_product, "a b"), DeviceSpec(service_product, I18nText("d"), "Nowhere/x", "key-1")

    async def refusal(s: DeviceSpec) -> tuple[str, str | None]:
        with pytest.raises(DomainError) as err:
            await services.devices.create(caller, s)
        return type(err.value).__name__, err.value.field

    assert await refusal(spec("no-such", "a b")) == ("ProductNotFound", "productKey")
    assert await refusal(bad_key) == ("InvalidArgument", "deviceKey")
    assert await refusal(bad_zone) == ("InvalidArgument", "timezone")
    await services.devices.create(caller, spec(service_product, "key-0"))
    assert await refusal(bad_key) == ("InvalidArgument", "deviceKey")
    assert await refusal(bad_zone) == ("LimitExceeded", "productKey")
    assert await refusal(spec(service_product, "key-2")) == ("LimitExceeded", "productKey")
    async with services.core.read() as conn:
        assert await services.core.products.count_devices(conn, service_product) == 1


async def test_a_create_writes_its_event_and_audit_record_with_the_device(
        services: Services, caller: Caller, service_product: str) -> None:
    """On PostgreSQL in the create's one statement (riders): the ids come back to the bus and the
    attempt, and a create refused by its key leaves neither row."""
    attempt = Attempt("enos", "r-1", action="devices.create", mutating=True)
    token = ATTEMPT.set(attempt)
    got: list[Event] = []

    async def record(ev: Event) -> None:
        got.append(ev)

    services.core.bus.subscribe(record)
    try:
        view = await services.devices.create(caller, spec(service_product, "key-1"))
        with pytest.raises(DeviceKeyExists):
            await services.devices.create(caller, spec(service_product, "key-1"))
    finally:
        ATTEMPT.reset(token)
    [record] = await services.audit.search(AuditFilter(), 10)
    assert (record.id, record.target, record.org_id) == (attempt.record_id, view.device.asset_id, caller.org_id)
    async with services.core.read() as conn:
        rows = await services.core.events.since(conn, 0)
    [row] = [r for r in rows if r.kind == events.DeviceCreated.KIND]
    assert [(e.id, e.asset_id) for e in got if isinstance(e.payload, events.DeviceCreated)] == [
        (row.id, view.device.asset_id)]
