"""The certificate service on both backends: CA rotation keeps what was issued, the master key rotation
keeps CA keys readable, concurrent renewals of one certificate give one winner, and certificate logins
follow revocation and the device."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from sqlalchemy import select

from tests.support.certs import csr, device_key
from thingport.domain.errors import DomainError, InvalidArgument, Unauthenticated
from thingport.domain.models import Device, I18nText, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.keys import rotate_master_key
from thingport.services.products import ProductSpec
from thingport.store.schema import device_cas


async def certifiable(services: Services, caller: Caller) -> Device:
    spec = ProductSpec(I18nText("Meter"), ProductType.DEVICE, "Json", "model1", True)
    pk = (await services.products.create(caller, spec)).product_key
    return (await services.devices.create(caller, DeviceSpec(pk, I18nText("d"), "+00:00"))).device


def der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem)


async def test_a_rotated_ca_still_vouches_for_what_it_signed(services: Services, caller: Caller) -> None:
    dev = await certifiable(services, caller)
    certs = services.certificates
    before = (await certs.apply(caller, DeviceRef(dev.asset_id), csr(device_key("RSA")), None, "RSA")).record
    await certs.rotate_ca(caller, "RSA")
    after = (await certs.apply(caller, DeviceRef(dev.asset_id), csr(device_key("RSA")), None, "RSA")).record
    assert before.ca_id != after.ca_id and before.issuer != after.issuer
    for rec in (before, after):
        assert (await certs.login(der(rec.cert_pem))).asset_id == dev.asset_id
    assert len(await certs.trusted(caller)) == 2


async def test_ca_keys_survive_a_master_key_rotation(services: Services, caller: Caller) -> None:
    dev = await certifiable(services, caller)
    await services.certificates.ca(caller, "ECC")
    async with services.core.read() as conn:
        before = (await conn.execute(select(device_cas.c.key_enc))).scalar_one()
    assert "PRIVATE" not in before and before.startswith("v1:")
    await rotate_master_key(services.core)
    async with services.core.read() as conn:
        after = (await conn.execute(select(device_cas.c.key_enc))).scalar_one()
    assert after != before and services.core.keyring.key_id_of(after) == services.core.keyring.primary
    new = await services.certificates.apply(caller, DeviceRef(dev.asset_id), csr(device_key("ECC")), 1, "ECC")
    assert new.record.valid_day == 1 and new.ca_pem.startswith("-----BEGIN CERTIFICATE-----")


async def test_concurrent_renewals_of_one_certificate_have_one_winner(services: Services, caller: Caller) -> None:
    dev = await certifiable(services, caller)
    certs = services.certificates
    first = (await certs.apply(caller, DeviceRef(dev.asset_id), csr(device_key("RSA")), None, "RSA")).record
    results = await asyncio.gather(*(certs.renew(caller, DeviceRef(dev.asset_id), first.cert_sn, None, None, None)
                                     for _ in range(4)), return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and all(isinstance(e, DomainError) and e.field == "certSn" for e in lost), results
    listed = await certs.list(caller, DeviceRef(dev.asset_id))
    assert sorted(r.revoke_time is None for r in listed) == [False, True]


async def test_logins_follow_revocation_and_the_device(services: Services, caller: Caller) -> None:
    dev = await certifiable(services, caller)
    certs = services.certificates
    rec = (await certs.apply(caller, DeviceRef(dev.asset_id), csr(device_key("ECC")), None, "ECC")).record
    login = await certs.login(der(rec.cert_pem))
    assert (login.product_key, login.device_key) == (dev.product_key, dev.device_key)
    await services.devices.replace_key(caller, DeviceRef(dev.asset_id), "new-key")
    assert (await certs.login(der(rec.cert_pem))).device_key == "new-key"  # the record follows the device
    await certs.revoke(caller, DeviceRef(dev.asset_id), rec.cert_sn, 0)
    with pytest.raises(Unauthenticated, match="certificate"):
        await certs.login(der(rec.cert_pem))
    with pytest.raises(InvalidArgument, match="reason"):
        await certs.revoke(caller, DeviceRef(dev.asset_id), rec.cert_sn, 2)


async def test_another_organization_sees_nothing(services: Services, caller: Caller) -> None:
    dev = await certifiable(services, caller)
    rec = (await services.certificates.apply(caller, DeviceRef(dev.asset_id), csr(device_key("RSA")), None,
                                             "RSA")).record
    await services.accounts.create_org("Other", "o-other")
    other = Caller.operator("o-other")
    with pytest.raises(DomainError):
        await services.certificates.list(other, DeviceRef(dev.asset_id))
    with pytest.raises(DomainError):
        await services.certificates.revoke(other, DeviceRef(dev.asset_id), rec.cert_sn, 0)
    assert await services.certificates.cas(other) == []
