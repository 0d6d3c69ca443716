"""Signatures devices make: MQTT passwords and the per-sub-device ``sign`` of gateway requests.

Two families share one input, the parameters sorted by name with each name followed by its value:

* **EnOS** (docs/reference/enos.md §5.2): a *plain* digest of ``sorted(k+v) + secret``. The method names
  say ``hmac…`` but the SDKs hash; sha1 is sent upper-case, sha256 and md5 lower-case.
* **Alink** (docs/reference/living.md §4.1): ``HMAC(key=secret, msg=sorted(k+v))``.

A device names its method (``signmethod=hmacsha1``) but not its family, and both families use
the same method names, so :func:`verify` tries both and says which one matched. Hex is compared
case-insensitively and in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

from thingport.crypto.signing import equal

Family = Literal["enos", "alink"]

#: Method name (lower-cased) → hashlib algorithm. ``sha256`` alone is Alink's ``Sha256`` too.
_ALGORITHMS = {
    "sha1": "sha1", "hmacsha1": "sha1",
    "sha256": "sha256", "hmacsha256": "sha256",
    "md5": "md5", "hmacmd5": "md5",
}


def algorithm(method: str) -> str | None:
    """The hash behind a device's sign method name, or None for a method nobody defined."""
    return _ALGORITHMS.get(method.strip().lower())


def content(params: Mapping[str, str]) -> str:
    return "".join(k + str(params[k]) for k in sorted(params))


def enos_sign(secret: str, params: Mapping[str, str], method: str) -> str:
    alg = algorithm(method)
    if alg is None:
        raise ValueError(f"unknown sign method {method!r}")
    digest = hashlib.new(alg, (content(params) + secret).encode()).hexdigest()
    return digest.upper() if alg == "sha1" else digest


def alink_sign(secret: str, params: Mapping[str, str], method: str) -> str:
    alg = algorithm(method)
    if alg is None:
        raise ValueError(f"unknown sign method {method!r}")
    return hmac.new(secret.encode(), content(params).encode(), alg).hexdigest()


def verify(secret: str, fields: Mapping[str, str], device_key: str, method: str, sign: str,
           prefer: Family | None = None) -> Family | None:
    """Which family's signature ``sign`` is over ``fields`` plus the device's key; None if neither.

    EnOS names the key ``deviceKey``, Alink ``deviceName``; each family is tried with its own name,
    ``prefer`` first (the one the device used last time: a good login then costs one digest).
    """
    if algorithm(method) is None or not sign:
        return None
    order: tuple[Family, Family] = ("alink", "enos") if prefer == "alink" else ("enos", "alink")
    for family in order:
        if family == "enos":
            expected = enos_sign(secret, {**fields, "deviceKey": device_key}, method)
        else:
            expected = alink_sign(secret, {**fields, "deviceName": device_key}, method)
        if equal(expected, sign):
            return family
    return None
