"""The Alibaba Cloud API-gateway request signature (docs/reference/living.md §1.2), as pure functions.

``StringToSign = METHOD\\nAccept\\nContent-MD5\\nContent-Type\\nDate\\n`` + one ``name:value\\n`` per
signed header (names lower-case, sorted) + path (+ ``?k=v&…`` sorted by key);
``X-Ca-Signature = base64(HMAC-SHA256(appSecret, StringToSign))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping


def signed_header_names(value: str) -> list[str]:
    """``X-Ca-Signature-Headers``: the SDK joins with commas, a doc reads as colons; accept both."""
    return sorted({n.strip().lower() for n in value.replace(":", ",").split(",") if n.strip()})


def path_and_query(path: str, query: Iterable[tuple[str, str]]) -> str:
    pairs = sorted(query, key=lambda kv: kv[0])
    if not pairs:
        return path
    return path + "?" + "&".join(k if v == "" else f"{k}={v}" for k, v in pairs)


def string_to_sign(method: str, headers: Mapping[str, str], signed: list[str], path: str,
                   query: Iterable[tuple[str, str]] = ()) -> str:
    """``headers`` is looked up by lower-case name."""
    head = [method.upper()] + [headers.get(n, "") for n in ("accept", "content-md5", "content-type", "date")]
    canonical = "".join(f"{n}:{headers.get(n, '')}\n" for n in signed)
    return "\n".join(head) + "\n" + canonical + path_and_query(path, query)


def signature(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
