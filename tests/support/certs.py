"""Device keys and CSRs as a device makes them (RSA-2048 or prime256v1), and TLS contexts that present them."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def device_key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    return rsa.generate_private_key(65537, 2048) if kind == "RSA" else ec.generate_private_key(ec.SECP256R1())


def csr(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cn: str = "device") -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    req = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return req.public_bytes(serialization.Encoding.PEM).decode()


def write_identity(directory: Path, name: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                   cert_pem: str) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_text(cert_pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def client_context(server_cert: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Trusts the listener's (self-signed, ``localhost``) certificate; presents ``cert`` if given."""
    ctx = ssl.create_default_context(cafile=str(server_cert))
    ctx.check_hostname = False  # the listener's certificate names localhost, tests dial 127.0.0.1
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM): what an application
    registers to have secrets encrypted for it (EnOS v2.4, exports) and keeps to decrypt them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public
