"""Helpers every dialect uses: query parsing, request ids, projection, JSON bodies."""

from __future__ import annotations

import re
import uuid
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec

from thingport.domain.errors import InvalidArgument

T = TypeVar("T")

_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")


def request_id() -> str:
    return str(uuid.uuid4())


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Decoded query parameters in order.

    ``enos-api-sdk-python`` appends ``?accessKey=…`` to a URL that may already have a query, so a
    second ``?`` is read as ``&``.
    """
    text = raw.decode("latin-1").replace("?", "&")
    return parse_qsl(text, keep_blank_values=True, encoding="utf-8")


def decode(body: bytes, kind: type[T], *, what: str = "body") -> T:
    """Decode JSON into ``kind``; a failure names the field, e.g. ``deviceList[0].productKey``."""
    if not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        m = _MSGSPEC_PATH.match(str(exc))
        path = (m.group("path") or "").lstrip(".") if m else ""
        msg = m.group("msg") if m else str(exc)
        raise InvalidArgument(f"{path or what}: {msg}", field=path or what) from exc
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"{what}: is not valid JSON ({exc})", field=what) from exc


def project(value: Any, paths: list[str] | None) -> Any:
    """Crop ``value`` to the projection (``["assetId", "deviceName.defaultValue", "a[*].b", "*"]``)."""
    if not paths or "*" in paths:
        return value
    if isinstance(value, list):
        return [project(v, paths) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for path in paths:
        _copy(value, out, path.split("."))
    return out


def _copy(src: dict[str, Any], dst: dict[str, Any], parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    is_list = head.endswith("[*]")
    key = head[:-3] if is_list else head
    if key not in src:
        return
    val = src[key]
    if not rest:
        dst[key] = val
    elif is_list and isinstance(val, list):
        prev = dst.get(key)
        items = prev if isinstance(prev, list) and len(prev) == len(val) else [{} for _ in val]
        for s, d in zip(val, items, strict=True):
            if isinstance(s, dict):
                _copy(s, d, rest)
        dst[key] = items
    elif isinstance(val, dict):
        sub = dst.setdefault(key, {})
        if isinstance(sub, dict):
            _copy(val, sub, rest)
