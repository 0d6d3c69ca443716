"""The Connect Service Certificate APIs: ``/connect-service/v2.0/certificates?action=apply|renew|revoke|list``.

Registered in the ``ACTIONS`` table like every other action (``routes.py`` imports this module
before it builds its routes). The device is named as everywhere (assetId, or productKey +
deviceKey, in the query); the certificate number travels as a decimal string in answers
(``certSN``) and is taken as an integer or a string (``certSn``) in requests. Choices where the
vendor's pages are silent are in docs/enos.md, "Certificates".
"""

from __future__ import annotations

from typing import Any

from thingport.dialects.enos import schemas
from thingport.dialects.enos.routes import DEVICE, Call, Reply, action
from thingport.domain.errors import InvalidArgument
from thingport.domain.models import now_ms
from thingport.services.certificates import IssuedCert, authority_of, status_of
from thingport.store.certificates import CertRecord

V20 = frozenset({"v2.0"})
#: RevokeReason names, as List gives ``revokerReason``.
REASONS = {0: "UNSPECIFIED", 1: "KEY_COMPROMISE", 3: "AFFILIATION_CHANGED", 4: "SUPERSEDED",
           5: "CESSATION_OF_OPERATION", 6: "CERTIFICATE_HOLD", 9: "PRIVILEGE_WITHDRAWN"}


def issued(new: IssuedCert) -> dict[str, Any]:
    """``data`` of Apply and Renew; ``caCert`` is Thingport's: the CA that signed it, for the chain."""
    rec = new.record
    return {"cert": rec.cert_pem, "certSN": rec.cert_sn, "issueAuthority": rec.authority, "validDay": rec.valid_day,
            "caCert": new.ca_pem}


def detail(rec: CertRecord, now: int) -> dict[str, Any]:
    """A DeviceCertDetailInfo."""
    status = status_of(rec, now)
    out: dict[str, Any] = {"certSN": rec.cert_sn, "cert": rec.cert_pem, "certStatus": status, "issuer": rec.issuer,
                           "subject": rec.subject, "signDate": rec.issue_time, "effectiveDate": rec.not_before,
                           "expireDate": rec.expire_time, "issueAuthority": rec.authority}
    if rec.revoke_time is not None:
        out["revoker"] = rec.revoke_by or "operator"
        out["revokerReason"] = REASONS.get(rec.revoke_reason or 0, str(rec.revoke_reason))
    return out


def cert_sn(value: int | str | None, query: dict[str, str]) -> str:
    """``certSn`` from the body, else the query (the vendor's pages show both)."""
    raw = query.get("certSn") if value is None else value
    if raw is None or raw == "":
        raise InvalidArgument("certSn: certSn is missing", field="certSn")
    text = str(raw)
    if not text.isdigit():  # a negative number too
        raise InvalidArgument(f"certSn: {text!r} is not a certificate number", field="certSn")
    return text


@action("certificates", "apply", "POST", V20, body=schemas.CertApply, query=DEVICE)
async def apply(c: Call) -> Reply:
    b = c.read(schemas.CertApply)
    return Reply(issued(await c.services.certificates.apply(c.caller, c.ref(), b.csr or "", b.validDay,
                                                            authority_of(b.issueAuthority))))


@action("certificates", "renew", "POST", V20, body=schemas.CertRenew, query=DEVICE)
async def renew(c: Call) -> Reply:
    b = c.read(schemas.CertRenew)
    kind = authority_of(b.issueAuthority) if b.issueAuthority else None
    return Reply(issued(await c.services.certificates.renew(c.caller, c.ref(), cert_sn(b.certSn, c.query), b.csr,
                                                            b.validDay, kind, grace_s=b.gracePeriod)))


@action("certificates", "revoke", "POST", V20, body=schemas.CertRevoke, query=DEVICE)
async def revoke(c: Call) -> Reply:
    b = c.read(schemas.CertRevoke) if c.body.strip() else schemas.CertRevoke()
    reason = b.reason
    if reason is None and c.query.get("reason"):
        text = c.query["reason"]
        if not text.isdigit():
            raise InvalidArgument(f"reason: {text!r} is not a RevokeReason", field="reason")
        reason = int(text)
    await c.services.certificates.revoke(c.caller, c.ref(), cert_sn(b.certSn, c.query), reason or 0)
    return Reply(None)


@action("certificates", "list", "GET", V20, query=DEVICE)
async def list_certificates(c: Call) -> Reply:
    now = now_ms()
    return Reply([detail(r, now) for r in await c.services.certificates.list(c.caller, c.ref())])
