"""X.509 logins over real TLS: issue → log in → revoke → refused → apply again → log in; renew; expired;
another device's and another organization's certificate; a bi-directional product without one."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.support.certs import client_context, csr, device_key, write_identity
from tests.support.device_login import enos_connect
from tests.support.processes import free_port
from tests.support.tls import self_signed
from thingport.connect import embedded
from thingport.connect.mqtt import codec
from thingport.connect.mqtt.client import ConnectRefused, MqttClient
from thingport.crypto import ca as cacrypto
from thingport.domain.models import Device, I18nText, ProductType, now_ms
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.products import ProductSpec
from thingport.store.certificates import CertRecord

HOST = "127.0.0.1"
#: What a refused TLS client sees: TLS 1.3 reports a rejected client certificate on the first read.
HANDSHAKE_REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError, OSError, TimeoutError)


@dataclass
class Tls:
    services: Services
    port: int
    plain_port: int
    server_cert: Path
    tmp: Path

    async def device(self, caller: Caller, *, bidirectional: bool = True) -> Device:
        spec = ProductSpec(I18nText("Meter"), ProductType.DEVICE, "Json", "model1", bidirectional)
        pk = (await self.services.products.create(caller, spec)).product_key
        return (await self.services.devices.create(caller, DeviceSpec(pk, I18nText("d"), "+08:00"))).device

    async def issue(self, caller: Caller, dev: Device, kind: str = "RSA") -> tuple[CertRecord, ssl.SSLContext]:
        key = device_key(kind)
        rec = (await self.services.certificates.apply(caller, DeviceRef(dev.asset_id), csr(key), None,
                                                      "RSA" if kind == "RSA" else "ECC")).record
        return rec, self.context(rec.cert_sn, key, rec.cert_pem)

    def context(self, name: str, key: object, cert_pem: str) -> ssl.SSLContext:
        cert, key_path = write_identity(self.tmp, name, key, cert_pem)  # type: ignore[arg-type]
        return client_context(self.server_cert, cert, key_path)

    async def connect(self, ctx: ssl.SSLContext | None, dev: Device | None = None, *, plain: bool = False,
                      secret: str | None = None) -> MqttClient:
        """A signed EnOS login (the vendor SDK's form) when ``dev`` is given, else a bare CONNECT."""
        if dev is not None:
            cid, user, password = enos_connect(dev.product_key, dev.device_key, secret or dev.secret)
            client = MqttClient(cid, username=user, password=password)
        else:
            client = MqttClient("bare-client")
        await client.connect(HOST, self.plain_port if plain else self.port, ssl_context=ctx, timeout=5)
        return client

    async def refused(self, ctx: ssl.SSLContext | None, dev: Device | None = None, *, plain: bool = False) -> int:
        with pytest.raises(ConnectRefused) as info:
            await self.connect(ctx, dev, plain=plain)
        return info.value.return_code


@pytest.fixture
async def tls(services: Services, tmp_path: Path) -> AsyncIterator[Tls]:
    cert, key = self_signed(tmp_path)
    services.core.settings = replace(services.core.settings, mqtt_port=free_port(), mqtt_tls_port=free_port(),
                                     mqtt_tls_cert=str(cert), mqtt_tls_key=str(key))
    running = await embedded.start(services)
    assert running is not None
    plain_port, tls_port = running.broker.ports
    try:
        yield Tls(services, tls_port, plain_port, cert, tmp_path)
    finally:
        await running.stop()


@pytest.mark.parametrize("kind", ["RSA", "ECC"])
async def test_issue_login_revoke_refused_apply_login(tls: Tls, caller: Caller, kind: str) -> None:
    dev = await tls.device(caller)
    rec, ctx = await tls.issue(caller, dev, kind)
    # the vendor SDK's form: a signed login with the certificate; and the certificate alone
    signed = await tls.connect(ctx, dev)
    await signed.close()
    bare = await tls.connect(ctx)
    await tls.services.certificates.revoke(caller, DeviceRef(dev.asset_id), rec.cert_sn, 1)
    await asyncio.wait_for(bare.closed.wait(), 5)  # revocation ends the live session at once
    assert await tls.refused(ctx, dev) == codec.REFUSED_BAD_USERNAME_PASSWORD
    assert await tls.refused(ctx) == codec.REFUSED_BAD_USERNAME_PASSWORD
    _, fresh = await tls.issue(caller, dev, kind)
    await (await tls.connect(fresh, dev)).close()


async def test_renew_supersedes_the_old_certificate(tls: Tls, caller: Caller) -> None:
    dev = await tls.device(caller)
    key = device_key("ECC")
    old = (await tls.services.certificates.apply(caller, DeviceRef(dev.asset_id), csr(key), None, "ECC")).record
    old_ctx = tls.context("old", key, old.cert_pem)
    session = await tls.connect(old_ctx, dev)
    new = (await tls.services.certificates.renew(caller, DeviceRef(dev.asset_id), old.cert_sn, None, None,
                                                 None)).record
    await asyncio.wait_for(session.closed.wait(), 5)
    assert await tls.refused(old_ctx, dev) == codec.REFUSED_BAD_USERNAME_PASSWORD
    await (await tls.connect(tls.context("new", key, new.cert_pem), dev)).close()


async def test_a_bidirectional_product_needs_the_certificate(tls: Tls, caller: Caller) -> None:
    dev = await tls.device(caller)
    server_only = client_context(tls.server_cert)
    assert await tls.refused(server_only, dev) == codec.REFUSED_BAD_USERNAME_PASSWORD  # TLS, no certificate
    assert await tls.refused(None, dev, plain=True) == codec.REFUSED_BAD_USERNAME_PASSWORD
    other = await tls.device(caller, bidirectional=False)  # password logins on TLS go on working
    await (await tls.connect(server_only, other)).close()
    _, ctx = await tls.issue(caller, dev)
    wrong_secret = MqttClient(*enos_connect(dev.product_key, dev.device_key, "not-the-secret")[:1],
                              username=f"{dev.device_key}&{dev.product_key}", password="x" * 64)
    with pytest.raises(ConnectRefused):  # EnOS checks the signed login too
        await wrong_secret.connect(HOST, tls.port, ssl_context=ctx, timeout=5)


async def test_another_devices_certificate_is_refused(tls: Tls, caller: Caller) -> None:
    mine, theirs = await tls.device(caller), await tls.device(caller)
    _, ctx = await tls.issue(caller, theirs)
    assert await tls.refused(ctx, mine) == codec.REFUSED_BAD_USERNAME_PASSWORD


async def test_another_organizations_certificate_is_refused(tls: Tls, caller: Caller) -> None:
    svc = tls.services
    await svc.accounts.create_org("Other", "o-other")
    await svc.accounts.create_model("o-other", "model1")
    other = Caller.operator("o-other")
    mine, theirs = await tls.device(caller), await tls.device(other)
    _, ctx = await tls.issue(other, theirs)
    assert await tls.refused(ctx, mine) == codec.REFUSED_BAD_USERNAME_PASSWORD
    await (await tls.connect(ctx, theirs)).close()  # the device it was issued for logs in with it


async def test_an_expired_certificate_is_refused(tls: Tls, caller: Caller) -> None:
    """Signed by the organization's CA and on record, but past its end: the TLS handshake fails."""
    dev = await tls.device(caller)
    rec, _ = await tls.issue(caller, dev)  # makes the CA
    svc = tls.services
    async with svc.core.read() as conn:
        ca = await svc.core.certificates.ca(conn, rec.ca_id)
    assert ca is not None
    key = device_key("RSA")
    now = now_ms()
    issued = cacrypto.issue(ca.cert_pem, ca.key_pem, cacrypto.read_csr(csr(key), "RSA"), now - 10 * 86_400_000,
                            now - 86_400_000, cacrypto.serial_number())
    async with svc.core.write(caller.org_id) as tx:
        await svc.core.certificates.insert(tx.conn, replace(rec, cert_sn=str(issued.serial), cert_pem=issued.pem,
                                                            fingerprint=issued.fingerprint,
                                                            not_before=issued.not_before,
                                                            expire_time=issued.not_after))
    ctx = tls.context("expired", key, issued.pem)
    with pytest.raises(HANDSHAKE_REFUSED):
        await tls.connect(ctx, dev)
    # past the TLS layer (a listener that did not check dates), the login refuses it as well
    with pytest.raises(Exception, match="expired"):
        await svc.certificates.login(ssl.PEM_cert_to_DER_cert(issued.pem))


async def test_device_disable_and_delete_end_certificate_sessions(tls: Tls, caller: Caller) -> None:
    dev = await tls.device(caller)
    _, ctx = await tls.issue(caller, dev)
    session = await tls.connect(ctx)
    await tls.services.devices.set_enabled(caller, DeviceRef(dev.asset_id), False)
    await asyncio.wait_for(session.closed.wait(), 5)
    assert await tls.refused(ctx) == codec.REFUSED_BAD_USERNAME_PASSWORD
    await tls.services.devices.set_enabled(caller, DeviceRef(dev.asset_id), True)
    session = await tls.connect(ctx)
    await tls.services.devices.delete(caller, DeviceRef(dev.asset_id))
    await asyncio.wait_for(session.closed.wait(), 5)
    assert await tls.refused(ctx) == codec.REFUSED_BAD_USERNAME_PASSWORD


@pytest.mark.slow  # waits for the period's end and the node's sweep (about two seconds)
async def test_a_renewal_grace_period_keeps_the_old_session_until_it_ends(tls: Tls, caller: Caller) -> None:
    """Thingport's ``gracePeriod`` on Renew: the session on the old certificate goes on, and ends when the
    period does (the node's sweep, every second); then only the new certificate logs in."""
    dev = await tls.device(caller)
    key = device_key("RSA")
    old = (await tls.services.certificates.apply(caller, DeviceRef(dev.asset_id), csr(key), None, "RSA")).record
    old_ctx = tls.context("old-grace", key, old.cert_pem)
    session = await tls.connect(old_ctx, dev)
    new = (await tls.services.certificates.renew(caller, DeviceRef(dev.asset_id), old.cert_sn, None, None, None,
                                                 grace_s=1)).record
    assert await session.subscribe((f"/sys/{dev.product_key}/{dev.device_key}/#", 0)) == (0,)  # still on
    second = await tls.connect(old_ctx)  # the old certificate still logs in (it replaces the session)
    await asyncio.wait_for(session.closed.wait(), 5)
    await asyncio.wait_for(second.closed.wait(), 5)  # the period ended: its session too
    assert now_ms() >= next(r.revoke_time or 0 for r in await tls.services.certificates.list(
        caller, DeviceRef(dev.asset_id)) if r.cert_sn == old.cert_sn)
    assert await tls.refused(old_ctx) == codec.REFUSED_BAD_USERNAME_PASSWORD
    await (await tls.connect(tls.context("new-grace", key, new.cert_pem), dev)).close()


async def test_revoking_a_certificate_ends_only_the_session_using_it(tls: Tls, caller: Caller) -> None:
    dev = await tls.device(caller)
    unused, _ = await tls.issue(caller, dev)
    _, ctx = await tls.issue(caller, dev)
    session = await tls.connect(ctx, dev)
    await tls.services.certificates.revoke(caller, DeviceRef(dev.asset_id), unused.cert_sn, 5)
    assert await session.subscribe((f"/sys/{dev.product_key}/{dev.device_key}/#", 0)) == (0,)
    assert not session.closed.is_set()
    await session.close()
