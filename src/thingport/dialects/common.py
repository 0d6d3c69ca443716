"""The dialect kit: what every dialect does the same way, written once.

* The limits on what a request may carry (:mod:`thingport.domain.limits`: nesting, string and
  array sizes, 64-bit integers; and no NUL anywhere), applied by :func:`screen` to every JSON body
  and by :func:`query_pairs` / :func:`form_pairs` / :func:`path_params` / :func:`int_param` to
  query strings, forms and paths (docs/security.md, "Limits").
* :func:`read_body` — the request body under ``max_body_bytes``; :class:`BodyTooLarge` otherwise.
* :func:`decode` and :func:`convert` — msgspec decoding whose errors name the field at fault, with
  the dialect's prefix where it has one (``params.time``, ``deviceList[0].productKey``).
* :class:`ErrorHandlers` — exception class → answer, registered once on a dialect's ``Router`` as
  Litestar exception handlers (Starlette's registry, in effect): routes raise and never catch, and
  an unexpected exception is logged once and answered with the dialect's internal-error envelope.
* :func:`scoped` — what an error answer needs from the request that failed (EnOS ``requestId``,
  the OceanConnect operation), kept in ``request.state``.
* Query parsing, request ids and projection.
* :data:`UNEXPECTED` — the :class:`~thingport.logs.LogLimiter` of unexpected errors, so a flood of
  requests that hit one fault cannot fill the log.

One module rather than a ``kit/`` package: every dialect imports most of it, each part is a few
lines, and split over four files it would gain imports, not clarity.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from itertools import accumulate
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.exceptions.responses import create_exception_response
from litestar.types import ExceptionHandlersMap

from thingport.domain import limits
from thingport.domain.errors import InvalidArgument
from thingport.domain.limits import INT64, MAX_DEPTH, MAX_ITEMS, MAX_STRING
from thingport.logs import LogLimiter
from thingport.services import audit
from thingport.services.container import Services

T = TypeVar("T")
E = TypeVar("E", bound=Exception)
Req = Request[Any, Any, Any]
Renderer = Callable[[Req, E], Response[Any]]

_MSGSPEC_PATH = re.compile(r"(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)

# ---------------------------------------------------------------------------------------------
# limits (the numbers: domain/limits.py)

#: An integer field of a struct some other decoder fills (Litestar's, which also reads "123"
#: as 123, so the screen's walk never sees the number).
Int64 = Annotated[int, msgspec.Meta(ge=INT64[0], le=INT64[1])]

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: linear on an unterminated string
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_STEP = tuple(1 if c in b"[{" else -1 if c in b"]}" else 0 for c in range(256))
_LONG_NUMBER = re.compile(rb"[0-9]{19}|[eE][+-]?[0-9]{3}")  # past 64 bits, or an exponent past a double's


#: Decodes a body for the walk of :func:`thingport.domain.limits.check`, numbers beyond a double
#: kept as markers that name their field (msgspec names none inside a free-form value).
_WALKER = msgspec.json.Decoder(float_hook=limits.json_float)


def request_id() -> str:
    """The id of the request being answered (the one its access log line and ``X-Request-Id``
    carry, docs/operations.md "Logs"), or a fresh one outside a request."""
    return audit.current_request_id() or str(uuid.uuid4())


def _failure(exc: Exception) -> str:
    """What the audit trail says of a failed request: the error's message, which names fields
    and never a secret's value."""
    for name in ("message", "detail"):
        text = getattr(exc, name, None)
        if isinstance(text, str) and text:
            return text
    return type(exc).__name__


def _no_nul(name: str, value: str) -> None:
    """NUL is refused wherever a request carries text: PostgreSQL cannot store it, and no
    identifier or name of any vendor contains it."""
    if "\x00" in name or "\x00" in value:
        field = name.replace("\x00", "\\0")
        raise InvalidArgument(f"{field}: contains a NUL character", field=field)


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """Decoded query parameters in order; a NUL in a name or value is refused naming it.

    ``enos-api-sdk-python`` appends ``?accessKey=…`` to a URL that may already have a query, so a
    second ``?`` is read as ``&``.
    """
    pairs = split_query(raw)
    for name, value in pairs:
        _no_nul(name, value)
    return pairs


def split_query(raw: bytes) -> list[tuple[str, str]]:
    """A raw query string as pairs, as :func:`query_pairs` reads it, without refusing anything
    (for what describes a request, such as its log line, rather than answers it)."""
    return split_pairs(raw.decode("latin-1").replace("?", "&"))


def form_pairs(text: str) -> list[tuple[str, str]]:
    """An ``application/x-www-form-urlencoded`` text (a form body, a query string) as pairs; a NUL
    in a name or value is refused naming it."""
    pairs = split_pairs(text)
    for name, value in pairs:
        _no_nul(name, value)
    return pairs


def split_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``, with a short cut for the usual query (nothing
    escaped): every signed call parses its query, and ``parse_qsl`` unquotes each name and value."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8")
    pairs = []
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def path_params(request: Req) -> None:
    """Hold the path's parameters (a deviceId, an orgId) to the rules of query values."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            _no_nul(name, value)


_DIGITS = re.compile(r"[0-9]{1,18}")


def digits(text: str) -> int | None:
    """``text`` as a non-negative integer when it is 1-18 ASCII digits, else None.

    ``str.isdigit`` also takes superscripts that ``int`` refuses, and ``int`` takes other scripts'
    digits, ``_`` and spaces: neither is a safe test for a number on the wire.
    """
    return int(text) if _DIGITS.fullmatch(text) else None


def int_param(query: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter in ``lo..hi`` (``default`` when absent or blank), in ASCII digits."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = digits(raw)
    if value is None or not lo <= value <= hi:
        raise InvalidArgument(f"{name}: must be an integer from {lo} to {hi}", field=name)
    return value


# ---------------------------------------------------------------------------------------------
# bodies

class BodyTooLarge(InvalidArgument):
    """A body over ``max_body_bytes``; each dialect answers it its own way (EnOS with HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: at most {limit} bytes", field="body")
        self.limit = limit


class ClientGone(Exception):
    """The client went away before its body was read (or the server cut it off as too slow):
    nobody waits for an answer, so nothing is logged (:class:`ErrorHandlers` answers it)."""


async def read_body(request: Req, services: Services) -> bytes:
    """The whole body, at most the ``max_body_bytes`` setting.

    The server refuses a body one byte over the limit while streaming it (``request_max_body_size``);
    that refusal and a body of exactly one byte over both become :class:`BodyTooLarge`.
    """
    limit = services.core.settings.max_body_bytes
    try:
        body = await request.body()
    except RequestEntityTooLarge as exc:
        raise BodyTooLarge(limit) from exc
    except HTTPException as exc:  # "client disconnected prematurely"; a bad Content-Length
        if exc.status_code >= 500:
            raise ClientGone() from exc
        raise InvalidArgument(f"body: {exc.detail}", field="body") from exc
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return body


# ---------------------------------------------------------------------------------------------
# decoding

def decode(body: bytes, kind: type[T]) -> T:
    """Decode a JSON body (blank: ``{}``) into ``kind``; a failure names the field (``deviceName.defaultValue``).

    Every JSON body of every dialect enters here, and :func:`screen` holds it to the limits first;
    :func:`convert` only re-types values that passed through it.
    """
    if not body.strip():
        body = b"{}"
    screen(body)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, "") from exc
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"body: is not valid JSON ({exc})", field="body") from exc


def screen(body: bytes, *, whole: bool = False) -> None:
    """Refuse a JSON body beyond the limits, naming the field, before it is decoded into a type.

    Nesting is measured on the raw bytes (strings removed), since decoding a body nested too deep
    is what fails. The other limits need the decoded values, but only a body that could break one
    is decoded and walked: one with a NUL escape, a run of 19 digits, a 3-digit exponent, more than
    ``MAX_STRING`` bytes or ``MAX_ITEMS`` commas. Anything else passes at the cost of a few byte
    counts, unless ``whole`` asks for the walk (a body some other decoder reads next, so that
    malformed JSON is refused here, naming the body).
    """
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
        if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
            raise InvalidArgument(f"body: arrays and objects nested more than {MAX_DEPTH} levels deep",
                                  field="body")
    if (whole or b"\\u0000" in body or _LONG_NUMBER.search(body) is not None or len(body) > MAX_STRING
            or body.count(b",") >= MAX_ITEMS):
        try:
            value = _WALKER.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidArgument(f"body: is not valid JSON ({exc})", field="body") from exc
        try:
            limits.check(value)
        except limits.Beyond as beyond:
            raise InvalidArgument(beyond.message("body"), field=beyond.field or "body") from None


def convert(value: Any, kind: type[T], *, prefix: str) -> T:
    """Type part of a decoded body (Living ``params``, an EnOS batch item) as ``kind``; a failure
    names the field under ``prefix`` (``params.time``, ``deviceList[0].productKey``)."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, prefix) from exc


def _invalid(exc: msgspec.ValidationError, prefix: str) -> InvalidArgument:
    """``Expected `int`, got `str` - at `$.a[0].b``` → ``{prefix}.a[0].b: Expected `int`, got `str```."""
    m = _MSGSPEC_PATH.fullmatch(str(exc))
    path = (m.group("path") or "") if m else ""
    msg = m.group("msg") if m else str(exc)
    name = (prefix + path if prefix else path.lstrip(".")) or "body"
    return InvalidArgument(f"{name}: {msg}", field=name)


# ---------------------------------------------------------------------------------------------
# errors

#: Unexpected errors of every dialect: one traceback per kind (class and place) a minute.
UNEXPECTED = LogLimiter()


def _log_unexpected(log: logging.Logger, what: str, exc: Exception) -> None:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    UNEXPECTED.log(log, logging.ERROR, f"{type(exc).__qualname__}@{place}", "%s failed", what, exc_info=exc)


class ErrorHandlers:
    """One dialect's answers to exceptions by class, as Litestar exception handlers of its Router.

    Litestar picks the handler of the most specific class in the exception's MRO, so a dialect
    registers its ``DomainError`` envelope once and refines it for subclasses (``Unauthenticated``)
    or adds its own error types. An exception no registered class claims is unexpected: logged with
    its traceback (once a minute for the same class and place, :data:`UNEXPECTED`) and answered by
    :meth:`unexpected`'s renderer. :class:`ClientGone` is answered without a word in the log, and
    Litestar's own client errors (a guard's 401, a 405) keep Litestar's answer.
    """

    def __init__(self) -> None:
        self.map: ExceptionHandlersMap = {ClientGone: _gone, HTTPException: self._litestar}

    def _litestar(self, request: Req, exc: HTTPException) -> Response[Any]:
        audit.failed(_failure(exc))
        unexpected = self.map.get(Exception)
        if exc.status_code >= 500 and unexpected is not None:
            return unexpected(request, exc)
        return create_exception_response(request, exc)

    def on(self, kind: type[E]) -> Callable[[Renderer[E]], Renderer[E]]:
        """Register the decorated ``(request, error) -> Response`` for ``kind`` and its subclasses."""
        def register(render: Renderer[E]) -> Renderer[E]:
            def handle(request: Req, exc: E) -> Response[Any]:
                audit.failed(_failure(exc))
                return render(request, exc)
            self.map[kind] = handle
            return render
        return register

    def unexpected(self, log: logging.Logger, describe: Callable[[Req], str]
                   ) -> Callable[[Callable[[Req], Response[Any]]], Callable[[Req], Response[Any]]]:
        """Register the decorated ``(request) -> Response`` for any other exception, which is logged
        as ``"{describe(request)} failed"`` with its traceback (rate-limited); the answer shows no
        details."""
        def register(render: Callable[[Req], Response[Any]]) -> Callable[[Req], Response[Any]]:
            def handle(request: Req, exc: Exception) -> Response[Any]:
                audit.failed("internal error")
                _log_unexpected(log, describe(request), exc)
                return render(request)
            self.map[Exception] = handle
            return render
        return register


def _gone(_: Req, __: ClientGone) -> Response[Any]:
    return Response(b"", status_code=400)


def scoped(request: Req, kind: type[T]) -> T:
    """This request's one ``kind`` (``kind()`` on first use), kept in ``request.state``: what a
    dispatcher learns of its request, where the error handlers of the same request find it."""
    key = f"thingport:{kind.__module__}.{kind.__qualname__}"
    state = request.scope.setdefault("state", {})  # the dict ``request.state`` wraps, without the wrapper
    found = state.get(key)
    if isinstance(found, kind):
        return found
    made = state[key] = kind()
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
