"""Device CAs and the certificates they issued.

Owns ``device_cas`` and ``device_certificates``, so a class (the store rule, ``store/__init__.py``).
A CA's private key is stored only as a keyring ciphertext bound to its id (``device-ca:{ca_id}``,
in :data:`thingport.store.rekey.SECRET_COLUMNS`). Revocation is a column here, so every node
sharing the database sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring
from thingport.store.schema import device_cas, device_certificates


@dataclass(frozen=True, slots=True)
class DeviceCa:
    ca_id: str
    org_id: str
    authority: str
    cert_pem: str
    key_pem: str
    not_after: int
    imported: bool
    create_time: int
    retire_time: int | None


@dataclass(frozen=True, slots=True)
class CertRecord:
    cert_sn: str
    org_id: str
    asset_id: str
    ca_id: str
    authority: str
    fingerprint: str
    cert_pem: str
    subject: str
    issuer: str
    valid_day: int
    issue_time: int
    not_before: int
    expire_time: int
    issue_by: str | None = None
    revoke_time: int | None = None
    revoke_reason: int | None = None
    revoke_by: str | None = None


class CertificateStore:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def _ctx(self, ca_id: str) -> str:
        return f"device-ca:{ca_id}"

    def _ca(self, r: RowMapping) -> DeviceCa:
        return DeviceCa(r["ca_id"], r["org_id"], r["authority"], r["cert_pem"],
                        self.keyring.decrypt(r["key_enc"], context=self._ctx(r["ca_id"])), r["not_after"],
                        bool(r["imported"]), r["create_time"], r["retire_time"])

    # --- CAs --------------------------------------------------------------------------------

    async def insert_ca(self, conn: AsyncConnection, ca: DeviceCa) -> None:
        await conn.execute(insert(device_cas).values(
            ca_id=ca.ca_id, org_id=ca.org_id, authority=ca.authority, cert_pem=ca.cert_pem,
            key_enc=self.keyring.encrypt(ca.key_pem, context=self._ctx(ca.ca_id)), not_after=ca.not_after,
            imported=ca.imported, create_time=ca.create_time, retire_time=None))

    async def retire_cas(self, conn: AsyncConnection, org_id: str, authority: str, now: int) -> None:
        """The organization's signing CA of this kind stops signing (it still vouches until it expires)."""
        c = device_cas.c
        await conn.execute(update(device_cas).where(c.org_id == org_id, c.authority == authority,
                                                    c.retire_time.is_(None)).values(retire_time=now))

    async def signing_ca(self, conn: AsyncConnection, org_id: str, authority: str, *,
                         for_update: bool = False) -> DeviceCa | None:
        c = device_cas.c
        q = select(device_cas).where(c.org_id == org_id, c.authority == authority, c.retire_time.is_(None))
        if for_update:
            q = q.with_for_update()
        row = (await conn.execute(q)).mappings().first()
        return self._ca(row) if row is not None else None

    async def ca(self, conn: AsyncConnection, ca_id: str) -> DeviceCa | None:
        row = (await conn.execute(select(device_cas).where(device_cas.c.ca_id == ca_id))).mappings().first()
        return self._ca(row) if row is not None else None

    async def cas_of(self, conn: AsyncConnection, org_id: str) -> list[DeviceCa]:
        """Every CA the organization ever had, newest first."""
        c = device_cas.c
        q = select(device_cas).where(c.org_id == org_id).order_by(c.create_time.desc(), c.ca_id)
        return [self._ca(r) for r in (await conn.execute(q)).mappings()]

    async def trusted_pems(self, conn: AsyncConnection, now: int, org_id: str | None = None) -> list[str]:
        """The certificates of every CA that still vouches for something (not expired), newest first;
        keys are not read."""
        c = device_cas.c
        q = select(c.cert_pem).where(c.not_after > now).order_by(c.create_time.desc())
        if org_id is not None:
            q = q.where(c.org_id == org_id)
        return [r.cert_pem for r in await conn.execute(q)]

    # --- certificates -----------------------------------------------------------------------

    async def insert(self, conn: AsyncConnection, rec: CertRecord) -> None:
        await conn.execute(insert(device_certificates).values(
            cert_sn=rec.cert_sn, org_id=rec.org_id, asset_id=rec.asset_id, ca_id=rec.ca_id, authority=rec.authority,
            fingerprint=rec.fingerprint, cert_pem=rec.cert_pem, subject=rec.subject, issuer=rec.issuer,
            valid_day=rec.valid_day, issue_time=rec.issue_time, not_before=rec.not_before,
            expire_time=rec.expire_time, issue_by=rec.issue_by))

    async def exists(self, conn: AsyncConnection, cert_sn: str) -> bool:
        q = select(device_certificates.c.cert_sn).where(device_certificates.c.cert_sn == cert_sn)
        return (await conn.execute(q)).first() is not None

    async def get(self, conn: AsyncConnection, org_id: str, cert_sn: str, *,
                  for_update: bool = False) -> CertRecord | None:
        c = device_certificates.c
        q = select(device_certificates).where(c.org_id == org_id, c.cert_sn == cert_sn)
        if for_update:
            q = q.with_for_update()
        row = (await conn.execute(q)).mappings().first()
        return CertRecord(**dict(row)) if row is not None else None

    async def by_fingerprint(self, conn: AsyncConnection, fingerprint: str) -> CertRecord | None:
        q = select(device_certificates).where(device_certificates.c.fingerprint == fingerprint)
        row = (await conn.execute(q)).mappings().first()
        return CertRecord(**dict(row)) if row is not None else None

    async def of_device(self, conn: AsyncConnection, org_id: str, asset_id: str) -> list[CertRecord]:
        c = device_certificates.c
        q = select(device_certificates).where(c.org_id == org_id, c.asset_id == asset_id).order_by(
            c.issue_time.desc(), c.cert_sn)
        return [CertRecord(**dict(r)) for r in (await conn.execute(q)).mappings()]

    async def revoke(self, conn: AsyncConnection, cert_sn: str, now: int, when: int, reason: int,
                     by: str | None) -> bool:
        """Revoke at ``when`` (now, or the end of a renewal's grace period) a certificate not revoked
        yet; revoking now also cuts a pending grace period short, a later revocation never moves one.
        Whether this call did it: of racing revocations, one wins."""
        c = device_certificates.c
        open_ = or_(c.revoke_time.is_(None), c.revoke_time > now) if when <= now else c.revoke_time.is_(None)
        result = await conn.execute(update(device_certificates).where(c.cert_sn == cert_sn, open_)
                                    .values(revoke_time=when, revoke_reason=reason, revoke_by=by))
        return bool(result.rowcount)

    async def revoked_between(self, conn: AsyncConnection, after: int, until: int) -> list[CertRecord]:
        """Certificates whose revocation took effect in (after, until]."""
        c = device_certificates.c
        q = select(device_certificates).where(c.revoke_time > after, c.revoke_time <= until)
        return [CertRecord(**dict(r)) for r in (await conn.execute(q)).mappings()]
