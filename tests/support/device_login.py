"""CONNECT fields, sub-device signs and enrollee IEs as device SDKs build them, written from the vendor docs.

Independent of :mod:`thingport.crypto.device_sign` and :mod:`thingport.crypto.awss` on purpose: these
are the tests' own reading of the formulas (docs/reference/enos.md §5.2, docs/reference/living.md §4.1
and §4.4, docs/reference/oceanconnect.md §7.5).
"""

from __future__ import annotations

import hashlib
import hmac
import time


def enos_connect(pk: str, dk: str, secret: str, *, method: str = "sha256", mode: int = 2,
                 ts: str | None = None, cid: str | None = None) -> tuple[str, str, str]:
    ts = ts or str(int(time.time() * 1000))
    cid = cid or dk
    content = f"clientId{cid}deviceKey{dk}productKey{pk}timestamp{ts}{secret}"
    alg = {"sha256": "sha256", "hmacsha256": "sha256", "sha1": "sha1", "hmacsha1": "sha1", "md5": "md5",
           "hmacmd5": "md5"}[method]
    password = hashlib.new(alg, content.encode()).hexdigest()
    if alg == "sha1":
        password = password.upper()
    return f"{cid}|securemode={mode},signmethod={method},timestamp={ts}|", f"{dk}&{pk}", password


def enos_sub_sign(pk: str, dk: str, secret: str, *, cid: str, ts: str, method: str = "sha256") -> str:
    content = f"clientId{cid}deviceKey{dk}productKey{pk}timestamp{ts}{secret}"
    digest = hashlib.new(method.replace("hmac", ""), content.encode()).hexdigest()
    return digest.upper() if "sha1" in method else digest


def alink_sign(secret: str, content: str, alg: str = "sha1") -> str:
    return hmac.new(secret.encode(), content.encode(), alg).hexdigest()


def alink_connect(pk: str, dn: str, secret: str, *, ts: str = "2524608000000") -> tuple[str, str, str]:
    cid = f"{pk}.{dn}"
    password = alink_sign(secret, f"clientId{cid}deviceName{dn}productKey{pk}timestamp{ts}").upper()
    return f"{cid}|securemode=3,signmethod=hmacsha1,timestamp={ts},_v=sdk-c-3.2.0|", f"{dn}&{pk}", password


def alink_sub(pk: str, dn: str, secret: str, ts: str = "1000") -> dict[str, str]:
    cid = f"{pk}.{dn}"
    sign = alink_sign(secret, f"clientId{cid}deviceName{dn}productKey{pk}timestamp{ts}", "sha256")
    return {"productKey": pk, "deviceName": dn, "clientId": cid, "timestamp": ts, "signmethod": "hmacSha256",
            "sign": sign}


def oceanconnect_connect(identifier: str, secret: str, *, ts: str | None = None, sig_type: int = 1,
                         auth_type: int = 0) -> tuple[str, str, str]:
    """CONNECT fields of an OceanConnect device: by deviceId (auth_type 0) or nodeId (2), with its
    secret or, to bind, its verify code."""
    ts = ts or time.strftime("%Y%m%d%H", time.gmtime())
    password = hmac.new(ts.encode(), secret.encode(), hashlib.sha256).hexdigest()
    return f"{identifier}_{auth_type}_{sig_type}_{ts}", identifier, password


def enrollee_ie(pk: str, dn: str, secret: str, random: bytes, security: int = 3) -> str:
    """The hex IE body a registrar reports on ``thing/awss/enrollee/found`` (docs/reference/living.md §4.4): dn, pk,
    random, security, sign method 0 and ``HMAC-SHA1(secret, random ‖ dn ‖ pk)``, each length-prefixed."""
    sign = hmac.new(secret.encode(), random + dn.encode() + pk.encode(), hashlib.sha1).digest()
    fields = (bytes([len(dn)]), dn.encode(), bytes([len(pk)]), pk.encode(), bytes([len(random)]), random,
              bytes([security, 0, len(sign)]), sign)
    return b"".join(fields).hex()
