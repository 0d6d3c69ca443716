"""The JSON request/reply envelope EnOS and Alink devices share.

Request ``{"id", "version", "method", "params"}``; reply on the request topic + ``_reply``:
``{"id", "code", "data", "message"}`` (docs/reference/enos.md §5.4, docs/reference/living.md §4).
Domain errors become each family's documented codes.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from thingport.crypto.device_sign import Family
from thingport.domain import limits
from thingport.domain.errors import DomainError, ErrorKind

OK = 200
PARAM_ERROR = 460

#: Domain error → reply code; every kind has one in both families (tests/dialects/test_error_tables.py).
#: EnOS documents 401 auth failed, 402 device not exist, 460 parameter error, 400 internal or other;
#: Alink 460 parameter error, 6100 device not found, 6204 device disabled, 6250 product not found,
#: 400 other. A kind with no code of its own takes its class's: a conflict or a refused state is a
#: parameter error; a refused credential, binding or ownership an auth failure (EnOS 401, Alink 460);
#: a server fault 400 (docs/mqtt.md, "Reply codes").
_CODES: dict[str, dict[ErrorKind, int]] = {
    "enos": {
        ErrorKind.INVALID_ARGUMENT: 460, ErrorKind.UNAUTHENTICATED: 401, ErrorKind.PERMISSION_DENIED: 401,
        ErrorKind.DEVICE_NOT_FOUND: 402, ErrorKind.PRODUCT_NOT_FOUND: 402, ErrorKind.NOT_FOUND: 402,
        ErrorKind.DEVICE_STATUS_INVALID: 401, ErrorKind.LIMIT_EXCEEDED: 460, ErrorKind.TOPOLOGY_CONFLICT: 460,
        ErrorKind.NOT_GATEWAY: 460, ErrorKind.DEVICE_KEY_EXISTS: 460, ErrorKind.MODEL_NOT_FOUND: 460,
        ErrorKind.PERMIT_JOIN_CLOSED: 460,
        ErrorKind.PRODUCT_HAS_DEVICES: 460, ErrorKind.DEVICE_KEY_UNCHANGED: 460, ErrorKind.PUBLIC_KEY_MISSING: 460,
        ErrorKind.CONFLICT: 460, ErrorKind.DEVICE_ONLINE: 460, ErrorKind.VERIFY_CODE_EXISTS: 460,
        ErrorKind.BIND_TOKEN_NOT_FOUND: 460, ErrorKind.NOT_IN_BIND_WINDOW: 460,
        ErrorKind.REFRESH_TOKEN_INVALID: 401, ErrorKind.NOT_BOUND: 401, ErrorKind.NOT_OWNER: 401,
        ErrorKind.BOUND_TO_OTHER: 401, ErrorKind.REGISTRATION_NOT_FOUND: 402,
        ErrorKind.INTERNAL: 400, ErrorKind.DEVICE_KEY_GENERATION_FAILED: 400,
    },
    "alink": {
        ErrorKind.INVALID_ARGUMENT: 460, ErrorKind.UNAUTHENTICATED: 460, ErrorKind.PERMISSION_DENIED: 460,
        ErrorKind.DEVICE_NOT_FOUND: 6100, ErrorKind.PRODUCT_NOT_FOUND: 6250, ErrorKind.NOT_FOUND: 6100,
        ErrorKind.DEVICE_STATUS_INVALID: 6204, ErrorKind.LIMIT_EXCEEDED: 460, ErrorKind.TOPOLOGY_CONFLICT: 460,
        ErrorKind.NOT_GATEWAY: 460, ErrorKind.DEVICE_KEY_EXISTS: 460, ErrorKind.MODEL_NOT_FOUND: 460,
        ErrorKind.PERMIT_JOIN_CLOSED: 460,
        ErrorKind.PRODUCT_HAS_DEVICES: 460, ErrorKind.DEVICE_KEY_UNCHANGED: 460, ErrorKind.PUBLIC_KEY_MISSING: 460,
        ErrorKind.CONFLICT: 460, ErrorKind.DEVICE_ONLINE: 460, ErrorKind.VERIFY_CODE_EXISTS: 460,
        ErrorKind.BIND_TOKEN_NOT_FOUND: 460, ErrorKind.NOT_IN_BIND_WINDOW: 460,
        ErrorKind.REFRESH_TOKEN_INVALID: 460, ErrorKind.NOT_BOUND: 460, ErrorKind.NOT_OWNER: 460,
        ErrorKind.BOUND_TO_OTHER: 460, ErrorKind.REGISTRATION_NOT_FOUND: 6100,
        ErrorKind.INTERNAL: 400, ErrorKind.DEVICE_KEY_GENERATION_FAILED: 400,
    },
}

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    method: str
    params: Any


class BadRequest(Exception):
    """The payload is not a request; ``id`` is what could be read of it, for the error reply."""

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


def parse_request(payload: bytes) -> Request:
    """The request in ``payload``, held to the limits of every request (:mod:`thingport.domain.limits`,
    as every HTTP body; a packet is at most the broker's ``max_packet_size`` and each handler bounds
    its lists, :mod:`thingport.connect.requests`); a :class:`BadRequest` naming the field otherwise."""
    try:
        body = json.loads(payload.decode("utf-8"), parse_int=limits.json_int, parse_float=limits.json_float,
                          parse_constant=limits.json_constant)
    except RecursionError:  # the decoder's own limit, near 1,000 levels; the walk below stops at 32
        raise BadRequest(f"payload: arrays and objects nested more than {limits.MAX_DEPTH} levels deep") from None
    except ValueError:  # not UTF-8, not JSON
        raise BadRequest("payload: not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("payload: must be a JSON object")
    rid = body.get("id")
    if rid is None or isinstance(rid, bool):
        rid = ""
    elif isinstance(rid, str | int | float):
        rid = str(rid)
    else:
        raise BadRequest("id: must be a string or a number")
    try:
        limits.check(body)
    except limits.Beyond as beyond:
        raise BadRequest(beyond.message("payload"), rid if beyond.field != "id" else "") from None
    if "params" not in body:
        raise BadRequest("params: missing", rid)
    method = body.get("method")
    return Request(rid, method if isinstance(method, str) else "", body["params"])


def encode(body: Any) -> bytes:
    """Compact JSON, as every payload to a device is sent."""
    return json.dumps(body, separators=(",", ":")).encode()


def reply(request_id: str, code: int = OK, data: Any = None, message: str = "success") -> bytes:
    return encode({"id": request_id, "code": code, "data": {} if data is None else data, "message": message})


def error_code(family: Family, err: DomainError) -> int:
    return _CODES[family][err.kind]


def command(method: str, params: Any) -> bytes:
    """A request from the platform to a device, with a fresh id."""
    return encode({"id": str(next(_ids)), "version": "1.0", "method": method, "params": params})
