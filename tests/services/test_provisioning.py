"""The device-side provisioning functions the MQTT front door calls, and the permit-join rule."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.conftest import make_product
from thingport.crypto import awss
from thingport.domain.errors import DeviceNotFound, InvalidArgument, PermitJoinClosed
from thingport.domain.models import I18nText, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.living_accounts import EndUser, MetaPatch
from thingport.services.provisioning import CipherRequest
from thingport.store.living_accounts import Binding
from thingport.store.provisioning import Permit
from thingport.store.schema import living_permits

RANDOM = "0f" * 16


async def device(services: Services, caller: Caller, pk: str, name: str) -> str:
    return (await services.devices.create(caller, DeviceSpec(pk, I18nText(name), "+08:00", name))).device.asset_id


async def test_enrollee_reports_keep_only_verified_unbound_same_org_devices(services: Services, caller: Caller,
                                                                           service_product: str) -> None:
    prov = services.provisioning
    hub, bulb, bound = [await device(services, caller, service_product, n) for n in ("hub-1", "bulb-1", "bound-1")]
    secret = (await services.products.get(caller, service_product)).secret
    other_org = await services.accounts.create_org("Other", "o-other")
    await services.accounts.create_model(other_org.org_id, "model1")
    foreign_pk = await make_product(services, Caller.operator(other_org.org_id))
    await device(services, Caller.operator(other_org.org_id), foreign_pk, "far-1")
    foreign_secret = (await services.products.get(Caller.operator(other_org.org_id), foreign_pk)).secret
    user = await services.living.create_user(caller.org_id, "u")
    home = await services.living.create_home(EndUser(user.identity_id, caller.org_id, "app"), "h")
    async with services.core.write() as tx:
        binding = Binding(bound, user.identity_id, caller.org_id, home.home_id, True, 1)
        await services.core.living_accounts.put_binding(tx.conn, binding)
    device_secret = (await services.devices.get(caller, DeviceRef(asset_id=bulb))).device.secret
    payloads = [
        awss.build_enrollee_ie("bulb-1", service_product, bytes(16), device_secret, security=4),  # per-device: ok
        awss.build_enrollee_ie("bound-1", service_product, bytes(16), secret),  # already bound
        awss.build_enrollee_ie("far-1", foreign_pk, bytes(16), foreign_secret),  # another organization
        awss.build_enrollee_ie("ghost-1", service_product, bytes(16), secret),  # unknown
        awss.build_enrollee_ie("hub-1", service_product, bytes(16), secret),  # the registrar itself
        awss.build_enrollee_ie("bulb-1", service_product, bytes(16), secret, security=5),  # unknown security
    ]
    accepted = await prov.report_enrollees(hub, payloads, ssid="s", bssid="b", rssi=-3, reporter_type=1)
    assert accepted == [{"productKey": service_product, "deviceName": "bulb-1", "timeout": 60}]
    async with services.core.read() as conn:
        row = await services.core.provisioning.get_enrollee(conn, hub, bulb)
    assert row is not None and (row.type, row.status, row.rssi) == (1, 0, "-3")
    with pytest.raises(InvalidArgument, match=r"params\.type"):
        await prov.report_enrollees(hub, [], reporter_type=7)
    with pytest.raises(DeviceNotFound):
        await prov.report_enrollees("missing", payloads)


async def test_registrar_cipher_needs_a_checked_in_enrollee(services: Services, caller: Caller,
                                                            service_product: str) -> None:
    hub = await device(services, caller, service_product, "hub-2")
    await device(services, caller, service_product, "bulb-2")
    secret = (await services.products.get(caller, service_product)).secret
    await services.provisioning.report_enrollees(hub, [awss.build_enrollee_ie("bulb-2", service_product, bytes(16),
                                                                              secret)])
    req = CipherRequest(service_product, "bulb-2", 3, RANDOM)
    with pytest.raises(InvalidArgument, match="random"):  # the request's form first, whatever the enrollee
        await services.provisioning.registrar_cipher(hub, CipherRequest(service_product, "bulb-2", 3, "xyz"))
    with pytest.raises(DeviceNotFound, match="check in"):  # found, but the app has not started provisioning it
        await services.provisioning.registrar_cipher(hub, req)
    async with services.core.write() as tx:
        enrollee = await services.core.devices.get(tx.conn, caller.org_id, product_key=service_product,
                                                   device_key="bulb-2")
        assert enrollee is not None
        await services.core.provisioning.set_enrollee_status(tx.conn, hub, enrollee.asset_id, 1, tx.now)
    got = await services.provisioning.registrar_cipher(hub, req)
    assert got["secret"] == awss.cipher_key(secret, bytes.fromhex(RANDOM))
    with pytest.raises(InvalidArgument, match="cipherType"):
        await services.provisioning.registrar_cipher(hub, CipherRequest(service_product, "bulb-2", 9, RANDOM))


async def test_permit_join_windows(services: Services, caller: Caller, service_product: str) -> None:
    gw_pk = await make_product(services, caller, ProductType.GATEWAY)
    gw = await device(services, caller, gw_pk, "gw-9")
    other_pk = await make_product(services, caller)
    prov = services.provisioning
    await prov.check_join(gw, service_product)  # products that do not require permit-join always may
    await services.living.set_product_meta(caller.org_id, service_product, MetaPatch(require_permit_join=True))
    with pytest.raises(PermitJoinClosed, match="productKey"):
        await prov.check_join(gw, service_product)
    async with services.core.write() as tx:
        await services.core.provisioning.put_permit(tx.conn, Permit(gw, other_pk, 30, tx.now))
    with pytest.raises(PermitJoinClosed):  # the open window names another product
        await prov.check_join(gw, service_product)
    async with services.core.write() as tx:
        await services.core.provisioning.put_permit(tx.conn, Permit(gw, None, 30, tx.now))
    await prov.check_join(gw, service_product)
    async with services.core.write() as tx:  # the 30 s have passed
        await tx.conn.execute(update(living_permits).values(open_time=living_permits.c.open_time - 31_000))
    with pytest.raises(PermitJoinClosed):
        await prov.check_join(gw, service_product)


async def test_product_metadata_rules(services: Services, caller: Caller, service_product: str) -> None:
    living = services.living
    meta = await living.set_product_meta(caller.org_id, service_product, MetaPatch(
        status="published", net_type=4, category_key="Light", category_id=3, bind_window_s=30))
    assert (meta.status, meta.net_type, meta.category_key, meta.bind_window_s) == (1, 4, "Light", 30)
    assert (await living.product_meta(caller.org_id, service_product)) == meta
    for patch, field in [(MetaPatch(status="live"), "status"), (MetaPatch(net_type=2), "netType"),
                         (MetaPatch(node_type=1), "nodeType"), (MetaPatch(bind_window_s=0), "bindWindowS"),
                         (MetaPatch(category_id=-1), "categoryId")]:
        with pytest.raises(InvalidArgument, match=field):
            await living.set_product_meta(caller.org_id, service_product, patch)
    await services.accounts.create_org("Other", "o-other")
    with pytest.raises(Exception, match="productKey"):  # another organization's product is unknown there
        await living.set_product_meta("o-other", service_product, MetaPatch(status="published"))


async def test_report_bind_token_keeps_only_the_latest(services: Services, caller: Caller,
                                                       service_product: str) -> None:
    d = await device(services, caller, service_product, "tok-1")
    await services.provisioning.report_bind_token(d, "A" * 32)
    await services.provisioning.report_bind_token(d, "c" * 32)
    async with services.core.read() as conn:
        assert await services.core.provisioning.bind_token(conn, "A" * 32) is None
        found = await services.core.provisioning.bind_token(conn, "C" * 32)  # hex case does not matter
    assert found is not None and found.asset_id == d
    with pytest.raises(DeviceNotFound):
        await services.provisioning.report_bind_token("missing", "A" * 32)
