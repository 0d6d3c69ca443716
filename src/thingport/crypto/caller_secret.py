"""Secrets returned encrypted for the calling application (EnOS v2.4 ``requireSecret``).

The vendor never published the algorithm (docs/reference/enos.md §4). Thingport implements the hybrid
scheme the reference proposes, with the Java defaults EnOS's stack most likely uses:

* ``sessionKey`` = base64(RSA PKCS#1 v1.5 encrypt(app public key, K)), K a fresh 16-byte AES key
  per returned record;
* ``deviceSecret`` / ``productSecret`` = base64(AES-128-ECB, PKCS#7 padding, key K, UTF-8 secret).

:func:`decrypt` is the client side (used by ``thingport decrypt-secret`` and the tests).
"""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class CallerKeyError(ValueError):
    pass


def load_public_key(pem: str) -> RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise CallerKeyError("not a PEM public key") from exc
    if not isinstance(key, RSAPublicKey) or key.key_size < 2048:
        raise CallerKeyError("an RSA public key of at least 2048 bits is required")
    return key


def encrypt(public_key_pem: str, secret: str) -> tuple[str, str]:
    """Return ``(encrypted secret, session key)``, both base64."""
    public_key = load_public_key(public_key_pem)
    key = secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(secret.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    ct = enc.update(data) + enc.finalize()
    wrapped = public_key.encrypt(key, asym_padding.PKCS1v15())
    return base64.b64encode(ct).decode(), base64.b64encode(wrapped).decode()


def decrypt(private_key_pem: str, encrypted_secret: str, session_key: str) -> str:
    private_key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(private_key, RSAPrivateKey):
        raise CallerKeyError("an RSA private key is required")
    key = private_key.decrypt(base64.b64decode(session_key), asym_padding.PKCS1v15())
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    data = dec.update(base64.b64decode(encrypted_secret)) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(data) + unpadder.finalize()).decode()
