"""The dialect kit: what every dialect does the same way, written once.

* :func:`read_body` — the request body under ``max_body_bytes``; :class:`BodyTooLarge` otherwise.
* :func:`decode` and :func:`convert` — msgspec decoding whose errors name the field at fault, with
  the dialect's prefix where it has one (``params.time``, ``deviceList[0].productKey``).
* :class:`ErrorHandlers` — exception class → answer, registered once on a dialect's ``Router`` as
  Litestar exception handlers (Starlette's registry, in effect): routes raise and never catch, and
  an unexpected exception is logged once and answered with the dialect's internal-error envelope.
* :func:`scoped` — what an error answer needs from the request that failed (EnOS ``requestId``,
  the OceanConnect operation), kept in ``request.state``.
* Query parsing, request ids and projection.

One module rather than a ``kit/`` package: every dialect imports most of it, each part is a few
lines, and split over four files it would gain imports, not clarity.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from thingport.domain.errors import InvalidArgument
from thingport.services.container import Services

T = TypeVar("T")
E = TypeVar("E", bound=Exception)
Req = Request[Any, Any, Any]
Renderer = Callable[[Req, E], Response[Any]]

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


# ---------------------------------------------------------------------------------------------
# bodies

class BodyTooLarge(InvalidArgument):
    """A body over ``max_body_bytes``; each dialect answers it its own way (EnOS with HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: at most {limit} bytes", field="body")
        self.limit = limit


async def read_body(request: Req, services: Services) -> bytes:
    """The whole body, at most the ``max_body_bytes`` setting.

    The server refuses a body one byte over the limit while streaming it (``request_max_body_size``);
    that refusal and a body of exactly one byte over both become :class:`BodyTooLarge`.
    """
    limit = services.core.settings.max_body_bytes
    try:
        body = await request.body()
    except HTTPException as exc:
        raise BodyTooLarge(limit) from exc
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return body


# ---------------------------------------------------------------------------------------------
# decoding

def decode(body: bytes, kind: type[T]) -> T:
    """Decode a JSON body (blank: ``{}``) into ``kind``; a failure names the field (``deviceName.defaultValue``).

    Every JSON body of every dialect enters here, so limits on the input as a whole (nesting depth,
    string length, numeric range) belong in this function; :func:`convert` only re-types values
    that passed through it.
    """
    if not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "") from exc
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"body: is not valid JSON ({exc})", field="body") from exc


def convert(value: Any, kind: type[T], *, prefix: str) -> T:
    """Type part of a decoded body (Living ``params``, an EnOS batch item) as ``kind``; a failure
    names the field under ``prefix`` (``params.time``, ``deviceList[0].productKey``)."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, prefix) from exc


def _invalid(exc: msgspec.ValidationError, prefix: str) -> InvalidArgument:
    """``Expected `int`, got `str` - at `$.a[0].b``` → ``{prefix}.a[0].b: Expected `int`, got `str```."""
    m = _MSGSPEC_PATH.match(str(exc))
    path = (m.group("path") or "") if m else ""
    msg = m.group("msg") if m else str(exc)
    name = (prefix + path if prefix else path.lstrip(".")) or "body"
    return InvalidArgument(f"{name}: {msg}", field=name)


# ---------------------------------------------------------------------------------------------
# errors

class ErrorHandlers:
    """One dialect's answers to exceptions by class, as Litestar exception handlers of its Router.

    Litestar picks the handler of the most specific class in the exception's MRO, so a dialect
    registers its ``DomainError`` envelope once and refines it for subclasses (``Unauthenticated``)
    or adds its own error types. An exception no registered class claims is unexpected: logged once
    with its traceback and answered by :meth:`unexpected`'s renderer.
    """

    def __init__(self) -> None:
        self.map: ExceptionHandlersMap = {}

    def on(self, kind: type[E]) -> Callable[[Renderer[E]], Renderer[E]]:
        """Register the decorated ``(request, error) -> Response`` for ``kind`` and its subclasses."""
        def register(render: Renderer[E]) -> Renderer[E]:
            self.map[kind] = render
            return render
        return register

    def unexpected(self, log: logging.Logger, describe: Callable[[Req], str]
                   ) -> Callable[[Callable[[Req], Response[Any]]], Callable[[Req], Response[Any]]]:
        """Register the decorated ``(request) -> Response`` for any other exception, which is logged
        as ``"{describe(request)} failed"`` with its traceback; the answer shows no details."""
        def register(render: Callable[[Req], Response[Any]]) -> Callable[[Req], Response[Any]]:
            def handle(request: Req, exc: Exception) -> Response[Any]:
                log.exception("%s failed", describe(request), exc_info=exc)
                return render(request)
            self.map[Exception] = handle
            return render
        return register


def scoped(request: Req, kind: type[T]) -> T:
    """This request's one ``kind`` (``kind()`` on first use), kept in ``request.state``: what a
    dispatcher learns of its request, where the error handlers of the same request find it."""
    key = f"thingport:{kind.__module__}.{kind.__qualname__}"
    found = request.state.get(key)
    if isinstance(found, kind):
        return found
    made = request.state[key] = kind()
    return made


# ---------------------------------------------------------------------------------------------
# projection

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
