"""The device CA's pure functions: CAs, CSR checks by authority, issued certificates, imported CAs."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.certs import csr, device_key
from thingport.crypto import ca
from thingport.domain.models import now_ms


@pytest.mark.parametrize("authority", ["RSA", "ECC"])
def test_issued_certificates_chain_to_their_ca(authority: ca.Authority) -> None:
    now = now_ms()
    cert_pem, key_pem = ca.new_ca(authority, "o1", now)
    info = ca.read_ca(cert_pem, key_pem)
    assert info.authority == authority and info.not_after - info.not_before == ca.CA_DAYS * 86_400_000
    key = device_key(authority)
    issued = ca.issue(cert_pem, key_pem, ca.read_csr(csr(key, "meter-1"), authority), now, now + 86_400_000, 7 << 40)
    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(cert_pem.encode()))
    assert cert.serial_number == 7 << 40 and "CN=meter-1" in issued.subject
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    der = cert.public_bytes(serialization.Encoding.DER)
    assert ca.signed_by(der, cert_pem) and ca.fingerprint(der) == issued.fingerprint
    other_pem, _ = ca.new_ca(authority, "o2", now)
    assert not ca.signed_by(der, other_pem)


@pytest.mark.parametrize(("key", "authority", "message"), [
    (lambda: rsa.generate_private_key(65537, 1024), "RSA", "2048 bits"),
    (lambda: ec.generate_private_key(ec.SECP384R1()), "ECC", "prime256v1"),
    (lambda: device_key("RSA"), "ECC", "issueAuthority is ECC"),
    (lambda: device_key("ECC"), "RSA", "issueAuthority is RSA"),
])
def test_csrs_of_the_wrong_kind_are_refused(key: object, authority: ca.Authority, message: str) -> None:
    with pytest.raises(ca.CertificateError, match=message):
        ca.read_csr(csr(key()), authority)  # type: ignore[operator]


def test_garbage_is_a_certificate_error() -> None:
    for text in ("", "not pem", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"):
        with pytest.raises(ca.CertificateError, match="csr"):
            ca.read_csr(text, "RSA")


def test_an_imported_ca_must_be_a_ca_with_its_key() -> None:
    cert_pem, key_pem = ca.new_ca("ECC", "o1", now_ms())
    other_cert, other_key = ca.new_ca("ECC", "o1", now_ms())
    with pytest.raises(ca.CertificateError, match="does not belong"):
        ca.read_ca(cert_pem, other_key)
    with pytest.raises(ca.CertificateError, match="certificate: not a PEM"):
        ca.read_ca("nope", key_pem)
    key = device_key("RSA")
    leaf = ca.issue(cert_pem, key_pem, ca.read_csr(csr(key), "RSA"), now_ms(), now_ms() + 1000, 5)
    leaf_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    with pytest.raises(ca.CertificateError, match="not a CA"):
        ca.read_ca(leaf.pem, leaf_key)
    assert ca.read_ca(other_cert, other_key).authority == "ECC"
