"""Device certificates: each organization's CAs, issuing, renewing, revoking, and certificate logins.

An organization has at most one *signing* CA per authority (RSA, ECC), made on first use or imported
by the operator. Rotating it retires the old one from signing only: it still vouches for what it
signed until it expires, so no issued certificate stops working because its CA was rotated.

A certificate login (:meth:`CertificateService.login`) is decided from what the certificate's
fingerprint names in the database, kept in the login cache (``services/credentials.py``) until the
device changes or the certificate is revoked (``device.certificate_revoked`` forgets it, as
``device.replaced`` forgets a secret). Revocation is a column, so every node sees it; where the
cache keeps nothing (a shared PostgreSQL), each login reads it.
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto import ca as cacrypto
from thingport.crypto.ca import Authority, CertificateError, Request
from thingport.domain import limits, validate
from thingport.domain.errors import Conflict, InvalidArgument, NotFound, Unauthenticated
from thingport.domain.models import Device, Permission, now_ms
from thingport.services import events
from thingport.services.context import Caller, Core, Tx
from thingport.services.credentials import Credentials
from thingport.services.devices import DeviceRef, DeviceService
from thingport.store.certificates import CertRecord, DeviceCa

DAY_MS = 86_400_000
#: EnOS's default validity, days (docs/reference/enos.md §10.1).
DEFAULT_VALID_DAY = 730
#: RevokeReason values EnOS accepts (RFC 5280's, without 2, 7 and 8).
REVOKE_REASONS = frozenset({0, 1, 3, 4, 5, 6, 9})
SUPERSEDED = 4
#: The longest grace period a renewal may give the old certificate (Thingport's ``gracePeriod``), seconds.
MAX_GRACE_S = limits.MAX_GRACE_S


class CertStatus:
    """``certStatus`` as EnOS numbers it (docs/reference/enos.md §10.1)."""

    VALID = 0
    REVOKED = 1
    EXPIRED = 2


def status_of(rec: CertRecord, now: int) -> int:
    """A renewal with a grace period sets ``revoke_time`` ahead: valid until then."""
    if rec.revoke_time is not None and rec.revoke_time <= now:
        return CertStatus.REVOKED
    return CertStatus.EXPIRED if rec.expire_time <= now else CertStatus.VALID


def status_name(rec: CertRecord, now: int) -> str:
    """The status in words, for operators (the EnOS API gives the number)."""
    return ("valid", "revoked", "expired")[status_of(rec, now)]


@dataclass(frozen=True, slots=True)
class CaView:
    """What an operator sees of a CA: never its key."""

    ca_id: str
    org_id: str
    authority: str
    cert_pem: str
    not_after: int
    imported: bool
    create_time: int
    retire_time: int | None

    @classmethod
    def of(cls, ca: DeviceCa) -> CaView:
        return cls(ca.ca_id, ca.org_id, ca.authority, ca.cert_pem, ca.not_after, ca.imported, ca.create_time,
                   ca.retire_time)


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """A certificate just issued, and the CA certificate that signed it (for the device's chain)."""

    record: CertRecord
    ca_pem: str


@dataclass(frozen=True, slots=True)
class CertLogin:
    """What a certificate proves: which device, until when, under which CA (kept by the login cache)."""

    cert_sn: str
    org_id: str
    asset_id: str
    product_key: str
    device_key: str
    expire_time: int
    not_before: int
    ca_pem: str
    #: When a renewal's grace period ends it (None: not superseded).
    revoke_time: int | None = None


def authority_of(value: str | None, field: str = "issueAuthority") -> Authority:
    if value is None or value == "":
        return "RSA"
    if value not in cacrypto.AUTHORITIES:
        raise InvalidArgument(f"{field}: must be RSA or ECC, not {value!r}", field=field)
    return "RSA" if value == "RSA" else "ECC"


class CertificateService:
    def __init__(self, core: Core, devices: DeviceService, credentials: Credentials) -> None:
        self.core = core
        self.devices = devices
        self.credentials = credentials

    # --- CAs --------------------------------------------------------------------------------

    async def ca(self, caller: Caller, authority: Authority) -> CaView:
        """The organization's signing CA of this kind, made now if it has none."""
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            found = await self.core.certificates.signing_ca(conn, caller.org_id, authority)
        if found is not None and found.not_after > now_ms():
            return CaView.of(found)
        async with self.core.write(caller.org_id) as tx:
            return CaView.of(await self._signing_ca(tx, caller.org_id, authority))

    async def cas(self, caller: Caller) -> list[CaView]:
        """Every CA of the organization, newest first: the signing ones, and the retired ones that
        still vouch for what they signed (until ``not_after``)."""
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            return [CaView.of(ca) for ca in await self.core.certificates.cas_of(conn, caller.org_id)]

    async def trusted(self, caller: Caller) -> list[str]:
        """Every CA certificate of the organization that still vouches for a certificate: what its
        devices' servers-side peers (and the operator) trust."""
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            return await self.core.certificates.trusted_pems(conn, now_ms(), caller.org_id)

    async def all_trusted(self) -> list[str]:
        """Every organization's CAs that still vouch: what the TLS listener asks client chains to end in."""
        async with self.core.read() as conn:
            return await self.core.certificates.trusted_pems(conn, now_ms())

    async def rotate_ca(self, caller: Caller, authority: Authority) -> CaView:
        """A new signing CA; the old one keeps vouching for its certificates until it expires."""
        caller.require(Permission.DEVICE_FULL)
        async with self.core.write(caller.org_id) as tx:
            await self.core.certificates.signing_ca(tx.conn, caller.org_id, authority, for_update=True)
            await self.core.certificates.retire_cas(tx.conn, caller.org_id, authority, tx.now)
            cert_pem, key_pem = cacrypto.new_ca(authority, caller.org_id, tx.now)
            return CaView.of(await self._insert_ca(tx, caller.org_id, authority, cert_pem, key_pem, imported=False))

    async def import_ca(self, caller: Caller, cert_pem: str, key_pem: str) -> CaView:
        """The operator's own CA becomes the signing CA of its kind (RSA-2048 or P-256)."""
        caller.require(Permission.DEVICE_FULL)
        try:
            info = cacrypto.read_ca(cert_pem, key_pem)
        except CertificateError as exc:
            raise InvalidArgument(str(exc), field=str(exc).split(":", 1)[0]) from exc
        if info.not_after <= now_ms():
            raise InvalidArgument("certificate: has expired", field="certificate")
        async with self.core.write(caller.org_id) as tx:
            await self.core.certificates.retire_cas(tx.conn, caller.org_id, info.authority, tx.now)
            return CaView.of(await self._insert_ca(tx, caller.org_id, info.authority, cert_pem, key_pem,
                                                   imported=True, not_after=info.not_after))

    async def _signing_ca(self, tx: Tx, org_id: str, authority: Authority) -> DeviceCa:
        store = self.core.certificates
        found = await store.signing_ca(tx.conn, org_id, authority, for_update=True)
        if found is not None and found.not_after > tx.now:
            return found
        if found is not None:  # expired: a new one signs from now on
            await store.retire_cas(tx.conn, org_id, authority, tx.now)
        cert_pem, key_pem = cacrypto.new_ca(authority, org_id, tx.now)
        return await self._insert_ca(tx, org_id, authority, cert_pem, key_pem, imported=False)

    async def _insert_ca(self, tx: Tx, org_id: str, authority: str, cert_pem: str, key_pem: str, *,
                         imported: bool, not_after: int | None = None) -> DeviceCa:
        if await self.core.accounts.get_org(tx.conn, org_id) is None:
            raise NotFound(f"orgId: organization {org_id} does not exist", field="orgId")
        if not_after is None:
            not_after = cacrypto.read_ca(cert_pem, key_pem).not_after
        ca = DeviceCa(f"ca-{secrets.token_hex(8)}", org_id, authority, cert_pem, key_pem, not_after, imported, tx.now,
                      None)
        await self.core.certificates.insert_ca(tx.conn, ca)
        await tx.emit(events.DeviceCaAdded(ca_id=ca.ca_id, authority=authority, cert_pem=cert_pem), org_id=org_id)
        return ca

    # --- the Certificate APIs ---------------------------------------------------------------

    async def apply(self, caller: Caller, ref: DeviceRef, csr_pem: str, valid_day: int | None,
                    authority: Authority) -> IssuedCert:
        """Issue a certificate for the device's CSR (EnOS Apply Certificate)."""
        caller.require(Permission.DEVICE_FULL)
        csr = self._csr(csr_pem, authority)
        async with self.core.write(caller.org_id) as tx:
            device = await self._certifiable(tx.conn, caller, ref)
            return await self._issue(tx, caller, device, csr, valid_day, authority)

    async def renew(self, caller: Caller, ref: DeviceRef, cert_sn: str, csr_pem: str | None, valid_day: int | None,
                    authority: Authority | None, *, grace_s: int = 0) -> IssuedCert:
        """A new certificate in place of a valid one, which is revoked as superseded (EnOS Renew
        Certificate); without a CSR, the old certificate's key and subject are certified again.

        ``grace_s`` (Thingport's ``gracePeriod``; 0, the vendor's behaviour, by default): the old
        certificate stays valid that long, so a fleet can move over without a failed login; then it is
        refused and the session using it ends. A certificate can be superseded once.
        """
        caller.require(Permission.DEVICE_FULL)
        validate.grace(grace_s, field="gracePeriod")
        async with self.core.write(caller.org_id) as tx:
            device = await self._certifiable(tx.conn, caller, ref)
            old = await self._own(tx.conn, caller, device, cert_sn, for_update=True)
            if old.revoke_time is not None or status_of(old, tx.now) != CertStatus.VALID:
                raise InvalidArgument(f"certSn: certificate {cert_sn} is not valid (revoked, superseded or "
                                      "expired)", field="certSn")
            kind: Authority = authority or authority_of(old.authority)
            if csr_pem:
                csr = self._csr(csr_pem, kind)
            elif kind != old.authority:
                raise InvalidArgument(f"csr: is required to change issueAuthority from {old.authority} to {kind}",
                                      field="csr")
            else:
                csr = cacrypto.request_of_cert(old.cert_pem)
            new = await self._issue(tx, caller, device, csr, valid_day, kind)
            await self._revoke(tx, caller, device, old, SUPERSEDED, at=tx.now + grace_s * 1000)
            return new

    async def revoke(self, caller: Caller, ref: DeviceRef, cert_sn: str, reason: int) -> None:
        caller.require(Permission.DEVICE_FULL)
        if reason not in REVOKE_REASONS:
            known = ", ".join(map(str, sorted(REVOKE_REASONS)))
            raise InvalidArgument(f"reason: {reason} is not a RevokeReason ({known})", field="reason")
        async with self.core.write(caller.org_id) as tx:
            device = await self.devices.load(tx.conn, caller, ref)
            rec = await self._own(tx.conn, caller, device, cert_sn, for_update=True)
            status = status_of(rec, tx.now)
            if status != CertStatus.VALID:
                what = "already revoked" if status == CertStatus.REVOKED else "expired"
                raise InvalidArgument(f"certSn: certificate {cert_sn} is {what}", field="certSn")
            await self._revoke(tx, caller, device, rec, reason)

    async def list(self, caller: Caller, ref: DeviceRef) -> list[CertRecord]:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            device = await self.devices.load(conn, caller, ref)
            return await self.core.certificates.of_device(conn, caller.org_id, device.asset_id)

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _csr(pem: str, authority: Authority) -> Request:
        if not pem.strip():
            raise InvalidArgument("csr: is required", field="csr")
        try:
            return cacrypto.read_csr(pem, authority)
        except CertificateError as exc:
            raise InvalidArgument(str(exc), field="csr") from exc

    async def _certifiable(self, conn: AsyncConnection, caller: Caller, ref: DeviceRef) -> Device:
        device = await self.devices.load(conn, caller, ref)
        product = await self.devices.products.load(conn, caller, device.product_key)
        if not product.bidirectional_auth:
            raise InvalidArgument(f"productKey: product {device.product_key} does not use bi-directional "
                                  "authentication (biDirectionalAuth is false)", field="productKey")
        return device

    async def _own(self, conn: AsyncConnection, caller: Caller, device: Device, cert_sn: str, *,
                   for_update: bool = False) -> CertRecord:
        if not cert_sn.isdigit() or len(cert_sn) > 20:
            raise InvalidArgument(f"certSn: {cert_sn!r} is not a certificate number", field="certSn")
        rec = await self.core.certificates.get(conn, caller.org_id, str(int(cert_sn)),
                                               for_update=for_update)
        if rec is None or rec.asset_id != device.asset_id:
            raise NotFound(f"certSn: certificate {cert_sn} is not bound to device {device.asset_id}", field="certSn")
        return rec

    async def _issue(self, tx: Tx, caller: Caller, device: Device, csr: Request,
                     valid_day: int | None, authority: Authority) -> IssuedCert:
        days = DEFAULT_VALID_DAY if valid_day is None else valid_day
        limit = self.core.settings.certificate_max_valid_days
        if days < 1:
            raise InvalidArgument(f"validDay: must be at least 1, not {days}", field="validDay")
        if days > limit:
            raise InvalidArgument(f"validDay: {days} exceeds the product's maximum validity of {limit} days",
                                  field="validDay")
        ca = await self._signing_ca(tx, caller.org_id, authority)
        not_before = tx.now - int(cacrypto.BACKDATE.total_seconds() * 1000)
        not_after = min(tx.now + days * DAY_MS, ca.not_after)  # never beyond the CA's own life
        serial = cacrypto.serial_number()
        while await self.core.certificates.exists(tx.conn, str(serial)):
            serial = cacrypto.serial_number()
        issued = cacrypto.issue(ca.cert_pem, ca.key_pem, csr, not_before, not_after, serial)
        rec = CertRecord(str(serial), caller.org_id, device.asset_id, ca.ca_id, authority, issued.fingerprint,
                         issued.pem, issued.subject, issued.issuer, -(-(not_after - tx.now) // DAY_MS), tx.now,
                         not_before, not_after, caller.app_key)
        await self.core.certificates.insert(tx.conn, rec)
        return IssuedCert(rec, ca.cert_pem)

    async def _revoke(self, tx: Tx, caller: Caller, device: Device, rec: CertRecord, reason: int, *,
                      at: int | None = None) -> None:
        """Revoke now, or at ``at`` (a renewal's grace period): then :meth:`due` announces it."""
        when = tx.now if at is None else at
        if not await self.core.certificates.revoke(tx.conn, rec.cert_sn, tx.now, when, reason, caller.app_key):
            raise Conflict(f"certSn: certificate {rec.cert_sn} was revoked meanwhile", field="certSn")
        if when <= tx.now:
            await tx.emit(events.CertificateRevoked(product_key=device.product_key, device_key=device.device_key,
                                                    cert_sn=rec.cert_sn), device.asset_id)

    async def due(self, after: int, until: int) -> builtins.list[events.Event]:
        """The revocations that took effect in (after, until] (renewals' grace periods ending), as the
        events that end their sessions: each node's broker asks and publishes them to itself."""
        out: builtins.list[events.Event] = []
        async with self.core.read() as conn:
            for rec in await self.core.certificates.revoked_between(conn, after, until):
                device = await self.core.devices.by_id(conn, rec.asset_id)
                if device is not None:
                    out.append(events.Event(events.CertificateRevoked(
                        product_key=device.product_key, device_key=device.device_key, cert_sn=rec.cert_sn),
                        rec.org_id, rec.asset_id))
        return out

    # --- logins -----------------------------------------------------------------------------

    async def login(self, der: bytes) -> CertLogin:
        """The device a client certificate proves, checked now: known, issued by the CA on record,
        not revoked, within its validity; the device exists. :class:`Unauthenticated` otherwise."""
        fp = cacrypto.fingerprint(der)
        found = await self.credentials.remember(("x509", fp), lambda: self._read_login(fp), lambda c: c.asset_id)
        if found is None:
            raise Unauthenticated("certificate: not issued by this platform to any device", field="certificate")
        now = now_ms()
        if now >= found.expire_time or now < found.not_before:
            raise Unauthenticated(f"certificate: {found.cert_sn} is expired or not yet valid", field="certificate")
        if found.revoke_time is not None and now >= found.revoke_time:
            raise Unauthenticated(f"certificate: {found.cert_sn} is revoked (or superseded, its grace period over)",
                                  field="certificate")
        if not cacrypto.signed_by(der, found.ca_pem):
            raise Unauthenticated("certificate: not signed by its organization's CA", field="certificate")
        return found

    async def _read_login(self, fp: str) -> CertLogin | None:
        async with self.core.read() as conn:
            rec = await self.core.certificates.by_fingerprint(conn, fp)
            if rec is None:
                return None
            device = await self.core.devices.by_id(conn, rec.asset_id)
            ca = await self.core.certificates.ca(conn, rec.ca_id)
        if device is None or ca is None or device.org_id != rec.org_id:
            return None
        return CertLogin(rec.cert_sn, rec.org_id, rec.asset_id, device.product_key, device.device_key,
                         rec.expire_time, rec.not_before, ca.cert_pem, rec.revoke_time)
