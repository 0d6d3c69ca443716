"""The EnOS request signing schemes (docs/reference/enos.md §3), as pure functions.

* APIM token service: ``encryption = sha256hex(appKey + timestamp + appSecret)`` and per request
  ``apim-signature = sha256hex(accessToken + sorted(k+v of query) + body + timestamp + appSecret)``.
* Query-string signature of ``enos-api-sdk-python``:
  ``sign = UPPER(sha1hex(accessKey + sorted(k+v of params) + body + secret))``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def sorted_params(params: Iterable[tuple[str, str]]) -> str:
    return "".join(k + v for k, v in sorted(params, key=lambda kv: kv[0]))


def apim_token_encryption(app_key: str, timestamp: str, app_secret: str) -> str:
    return hashlib.sha256((app_key + timestamp + app_secret).encode()).hexdigest()


def apim_signature(access_token: str, params: Iterable[tuple[str, str]], body: str, timestamp: str,
                   app_secret: str) -> str:
    data = access_token + sorted_params(params) + body + timestamp + app_secret
    return hashlib.sha256(data.encode()).hexdigest()


def access_key_signature(access_key: str, params: Iterable[tuple[str, str]], body: str, secret: str) -> str:
    data = access_key + sorted_params(params) + body + secret
    return hashlib.sha1(data.encode()).hexdigest().upper()


def equal(a: str, b: str) -> bool:
    """Constant-time, case-insensitive comparison of hex digests."""
    return hmac.compare_digest(a.lower().encode(), b.lower().encode())
