"""Provisioning keys and enrollee signatures of the Living Platform (seed `Device provisioning service`).

``/awss/cipher/get`` and ``thing/cipher/get`` answer ``hex(SHA-256(content))`` with content =
``secret ‖ 0x2c ‖ random`` (cipherType 3: productSecret, 4: deviceSecret) or
``secret ‖ 0x2c ‖ mac ‖ 0x2c ‖ random`` (6: productSecret, 7: deviceSecret, Bluetooth). A device
uses the first 16 bytes as its AES-128 key (iotkit ``awss_crypt.c``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

PER_PRODUCT = frozenset({3, 6})
PER_DEVICE = frozenset({4, 7})
WITH_MAC = frozenset({6, 7})
CIPHER_TYPES = PER_PRODUCT | PER_DEVICE


def cipher_key(secret: str, random: bytes, mac: bytes | None = None) -> str:
    content = secret.encode() + b"," + (mac + b"," if mac is not None else b"") + random
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True, slots=True)
class EnrolleeIe:
    """The body of an enrollee's probe-request vendor IE, as a registrar reports it (hex)."""

    device_name: str
    product_key: str
    random: bytes
    security: int
    sign_method: int
    sign: bytes

    def signed_text(self) -> bytes:
        return self.random + self.device_name.encode() + self.product_key.encode()

    def verify(self, secret: str) -> bool:
        """``sign = HMAC-SHA1(secret, random ‖ dn ‖ pk)`` (sign_method 0), or SHA-256 of the same (1)."""
        if self.sign_method == 0:
            expected = hmac.new(secret.encode(), self.signed_text(), hashlib.sha1).digest()
        elif self.sign_method == 1:
            expected = hashlib.sha256(secret.encode() + self.signed_text()).digest()
        else:
            return False
        return hmac.compare_digest(expected, self.sign[: len(expected)]) and len(self.sign) >= len(expected)


def parse_enrollee_ie(hex_payload: str) -> EnrolleeIe:
    """``dn_len dn pk_len pk rand_len random security sign_method sign_len sign``; ValueError if malformed."""
    raw = bytes.fromhex(hex_payload)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise ValueError("payload is truncated")
        part = raw[pos:pos + n]
        pos += n
        return part

    dn = take(take(1)[0]).decode()
    pk = take(take(1)[0]).decode()
    random = take(take(1)[0])
    security, sign_method = take(1)[0], take(1)[0]
    sign = take(take(1)[0])
    return EnrolleeIe(dn, pk, random, security, sign_method, sign)


def build_enrollee_ie(device_name: str, product_key: str, random: bytes, secret: str, security: int = 3) -> str:
    """What an enrollee broadcasts (used by the simulator and tests)."""
    sign = hmac.new(secret.encode(), random + device_name.encode() + product_key.encode(), hashlib.sha1).digest()
    parts = [bytes([len(device_name)]), device_name.encode(), bytes([len(product_key)]), product_key.encode(),
             bytes([len(random)]), random, bytes([security, 0, len(sign)]), sign]
    return b"".join(parts).hex()
