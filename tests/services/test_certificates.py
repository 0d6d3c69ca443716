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


async def test_a_renewal_grace_period_ends_exactly_at_its_end(services: Services, caller: Caller,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Thingport's ``gracePeriod``: both certificates log in until the old one's time, not a millisecond after."""
    from thingport.services import certificates as module

    dev = await certifiable(services, caller)
    certs = services.certificates
    ref = DeviceRef(dev.asset_id)
    old = (await certs.apply(caller, ref, csr(device_key("RSA")), None, "RSA")).record
    new = (await certs.renew(caller, ref, old.cert_sn, None, None, None, grace_s=60)).record
    end = next(r.revoke_time for r in await certs.list(caller, ref) if r.cert_sn == old.cert_sn)
    assert end is not None and end - new.issue_time == 60_000
    clock = [end - 1]
    monkeypatch.setattr(module, "now_ms", lambda: clock[0])
    assert (await certs.login(der(old.cert_pem))).cert_sn == old.cert_sn  # just before: both log in
    assert (await certs.login(der(new.cert_pem))).cert_sn == new.cert_sn
    assert module.status_of(old, clock[0]) == module.CertStatus.VALID
    with pytest.raises(InvalidArgument, match="superseded"):  # superseded once: one renewal wins
        await certs.renew(caller, ref, old.cert_sn, None, None, None, grace_s=60)
    clock[0] = end  # at the end: refused, from memory as from the database
    with pytest.raises(Unauthenticated, match="revoked"):
        await certs.login(der(old.cert_pem))
    assert (await certs.login(der(new.cert_pem))).cert_sn == new.cert_sn
    due = await certs.due(end - 1, end)
    assert [(e.asset_id, e.payload.cert_sn) for e in due] == [(dev.asset_id, old.cert_sn)]  # type: ignore[attr-defined]
    assert await certs.due(end, end + 1000) == []
    with pytest.raises(InvalidArgument, match="gracePeriod"):
        await certs.renew(caller, ref, new.cert_sn, None, None, None, grace_s=-1)


async def test_revoking_during_a_grace_period_cuts_it_short(services: Services, caller: Caller) -> None:
    dev = await certifiable(services, caller)
    certs = services.certificates
    ref = DeviceRef(dev.asset_id)
    old = (await certs.apply(caller, ref, csr(device_key("ECC")), None, "ECC")).record
    await certs.renew(caller, ref, old.cert_sn, None, None, None, grace_s=3600)
    assert (await certs.login(der(old.cert_pem))).cert_sn == old.cert_sn
    await certs.revoke(caller, ref, old.cert_sn, 1)
    with pytest.raises(Unauthenticated):
        await certs.login(der(old.cert_pem))
    listed = {r.cert_sn: r for r in await certs.list(caller, ref)}
    assert listed[old.cert_sn].revoke_reason == 1
