"""A device certificate authority: make or import a CA, check a CSR, sign a device certificate.

Pure functions over PEM text (no I/O): the store keeps the CA's key encrypted under the master key,
the services decide who may ask. Two kinds of authority, as EnOS offers them
(docs/enos.md, "Certificates"): ``RSA`` (RSA-2048 keys, SHA256withRSA) and ``ECC`` (prime256v1 keys,
SHA256withECDSA). A CSR's key must be of its authority's kind: a device cannot get an RSA-1024 or a
P-384 certificate by asking.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Authority = Literal["RSA", "ECC"]
AUTHORITIES: tuple[Authority, ...] = ("RSA", "ECC")
#: A CA made here lives this long; a device certificate never outlives its CA (validDay is capped).
CA_DAYS = 3650
#: Certificates are valid from a little before they are signed: clocks of devices drift.
BACKDATE = dt.timedelta(minutes=5)

CaKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CertificateError(ValueError):
    """A CSR, certificate or key that cannot be used; the message says why (no secret in it)."""


@dataclass(frozen=True, slots=True)
class Issued:
    serial: int
    pem: str
    fingerprint: str  # SHA-256 of the DER, lower-case hex: how a TLS login finds it
    subject: str
    issuer: str
    not_before: int  # epoch ms
    not_after: int


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def serial_number() -> int:
    """A random positive 63-bit serial: unique in practice (the store refuses a repeat) and an
    integer every EnOS client can hold (``certSn`` is an Integer, a Java long on the vendor's side)."""
    return secrets.randbits(63) | 1 << 62


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def new_ca(authority: Authority, org_id: str, now_ms: int, days: int = CA_DAYS) -> tuple[str, str]:
    """A self-signed CA for an organization's devices: (certificate PEM, private key PEM)."""
    key: CaKey = rsa.generate_private_key(65537, 2048) if authority == "RSA" else ec.generate_private_key(
        ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Thingport"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, org_id[:64]),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Thingport device CA {authority} {now_ms}")])
    start = _utc(now_ms) - BACKDATE
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@dataclass(frozen=True, slots=True)
class CaInfo:
    authority: Authority
    not_before: int
    not_after: int
    subject: str


def read_ca(cert_pem: str, key_pem: str) -> CaInfo:
    """Check an operator's CA (a CA certificate and its key, which match, of a kind we sign with)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise CertificateError("certificate: not a PEM X.509 certificate") from exc
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), None)
    except (ValueError, TypeError) as exc:
        raise CertificateError("key: not an unencrypted PEM private key") from exc
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise CertificateError("certificate: is not a CA certificate (basicConstraints CA:TRUE)")
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CertificateError("key: does not belong to the certificate")
    authority = _authority_of(key.public_key(), "key")
    return CaInfo(authority, _ms(cert.not_valid_before_utc), _ms(cert.not_valid_after_utc),
                  cert.subject.rfc4514_string())


def _authority_of(public: object, field: str) -> Authority:
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size != 2048:
            raise CertificateError(f"{field}: RSA keys must be 2048 bits, not {public.key_size}")
        return "RSA"
    if isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, ec.SECP256R1):
            raise CertificateError(f"{field}: EC keys must be on prime256v1, not {public.curve.name}")
        return "ECC"
    raise CertificateError(f"{field}: the key must be RSA-2048 or EC prime256v1")


def read_csr(pem: str, authority: Authority) -> Request:
    """A CSR that is well-formed, signed by its own key, and of ``authority``'s key kind."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as exc:
        raise CertificateError("csr: not a PEM certificate signing request") from exc
    try:
        valid = csr.is_signature_valid
        subject = csr.subject.rfc4514_string()
    except (ValueError, InvalidSignature) as exc:
        raise CertificateError("csr: cannot be read") from exc
    if not valid:
        raise CertificateError("csr: its signature does not match its key")
    if not subject:
        raise CertificateError("csr: the subject is empty (give at least CN)")
    try:
        public = csr.public_key()
    except ValueError as exc:
        raise CertificateError("csr: its key cannot be read") from exc
    kind = _authority_of(public, "csr")
    if kind != authority:
        raise CertificateError(f"csr: an {kind} key, but issueAuthority is {authority}")
    return request_of_csr(csr)


Request = tuple[x509.Name, rsa.RSAPublicKey | ec.EllipticCurvePublicKey]


def request_of_csr(csr: x509.CertificateSigningRequest) -> Request:
    """What a certificate is issued for, of a CSR :func:`read_csr` accepted: subject and key (no
    extension of the CSR is copied: the CA decides what a device certificate may do)."""
    public = csr.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CertificateError("csr: the key must be RSA-2048 or EC prime256v1")
    return csr.subject, public


def request_of_cert(cert_pem: str) -> Request:
    """Renewal without a CSR: the old certificate's subject and key, certified again."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CertificateError("certificate: the key must be RSA-2048 or EC prime256v1")
    return cert.subject, public


def issue(ca_cert_pem: str, ca_key_pem: str, request: Request, not_before_ms: int, not_after_ms: int,
          serial: int) -> Issued:
    """Sign a client certificate for the request's subject and key."""
    ca = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = serialization.load_pem_private_key(ca_key_pem.encode(), None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA key is neither RSA nor EC")
    subject, public = request
    rsa_key = isinstance(public, rsa.RSAPublicKey)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(public)
               .serial_number(serial).not_valid_before(_utc(not_before_ms)).not_valid_after(_utc(not_after_ms))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=rsa_key, data_encipherment=False,
                                            key_agreement=not rsa_key, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False))
    cert = builder.sign(key, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    return Issued(serial, cert.public_bytes(serialization.Encoding.PEM).decode(), fingerprint(der),
                  cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), not_before_ms, not_after_ms)


def signed_by(cert_der: bytes, ca_cert_pem: str) -> bool:
    """Whether ``ca_cert_pem``'s key signed this certificate (the TLS layer checked it already; a
    login checks again against the one CA the store names, so that a CA of another organization
    trusted by the listener cannot vouch for it)."""
    cert = x509.load_der_x509_certificate(cert_der)
    ca = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    public, algorithm = ca.public_key(), cert.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True
