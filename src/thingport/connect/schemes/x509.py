"""X.509 logins: a client certificate, presented on the TLS listener, names the device.

The certificate must be one this platform issued (its fingerprint is on record), under the CA on
record, unrevoked, within its validity, for a device that exists and is enabled
(:meth:`thingport.services.certificates.CertificateService.login`). With it, the CONNECT may be:

- EnOS's signed login (what enos-mqtt-sdk-python sends with its SSL context): the signature is
  checked too, against the device the certificate names, as EnOS does (docs/enos.md, "Certificates");
- anything else: the certificate alone logs the device in (a client without the secret), speaking
  EnOS topics. A user name, if given, must name the same device (``{deviceKey}&{productKey}``).

This scheme comes first in :data:`~thingport.connect.schemes.SCHEMES`: a CONNECT carrying a
certificate is decided here; only such a login satisfies a product with ``biDirectionalAuth``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thingport.connect import family
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes.base import ByKey, UnreadableLogin, user_and_password
from thingport.connect.schemes.signed import SignedLogin, SignedScheme, parse
from thingport.connect.session import DeviceSession
from thingport.domain.errors import Unauthenticated
from thingport.services.container import Services

_SIGNED = SignedScheme()


@dataclass(frozen=True, slots=True)
class CertificateLogin:
    der: bytes = field(repr=False)
    #: The signed login sent with it, if any (checked too).
    signed: SignedLogin | None
    #: A user name without a signed login: ``{deviceKey}&{productKey}`` (must match), or None.
    username: str | None


class X509Scheme:
    def read(self, conn: ConnectInfo) -> CertificateLogin | None:
        if conn.peer_cert is None:
            return None
        if "|" in conn.client_id:
            username, password = user_and_password(conn)
            return CertificateLogin(conn.peer_cert, parse(conn.client_id, username, password), None)
        if conn.username and "&" not in conn.username:
            raise UnreadableLogin("user name must be '{deviceKey}&{productKey}' (or absent) with a certificate")
        return CertificateLogin(conn.peer_cert, None, conn.username or None)

    async def login(self, claim: CertificateLogin, services: Services, *, remote: bool) -> DeviceSession:
        cert = await services.certificates.login(claim.der)
        named = None
        if claim.signed is not None:
            named = (claim.signed.product_key, claim.signed.device_key)
        elif claim.username is not None:
            device_key, _, product_key = claim.username.partition("&")
            named = (product_key, device_key)
        if named is not None and named != (cert.product_key, cert.device_key):
            raise Unauthenticated("certificate: issued to another device than the login names", field="certificate")
        if claim.signed is not None:
            session = await _SIGNED.login_certified(claim.signed, services, remote=remote)
            session.cert_sn = cert.cert_sn
            return session
        login = await services.connectivity.login_certified(cert.product_key, cert.device_key, online=not remote)
        rec = login.device
        return DeviceSession(rec.asset_id, rec.org_id, rec.product_key, rec.device_key, family.ENOS,
                             is_gateway=login.product.is_gateway, announced=login.online, cert_sn=cert.cert_sn)

    def names(self, username: str) -> bool:
        return False  # an external broker's user names are the signed scheme's; it sees no certificate

    async def session_for(self, username: str, services: Services, by_key: ByKey) -> DeviceSession | None:
        return None
